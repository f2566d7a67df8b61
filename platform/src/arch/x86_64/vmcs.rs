//! One vCPU's VMCS, filled for a partition: the controls (`arch_x86::vmx::controls`), the host
//! state of the calling CPU (the exit lands on its GDT, TSS, IDT, page tables and GS base), and
//! the guest's start state. A partition starts in 64-bit mode at its board file's `entry`, on an
//! identity page table the backend writes into the partition's own memory ([`GUEST_PML4`]): the
//! test guests' runtime (`platform/guests/src/rt/x86_64.rs`) expects exactly that, and no real
//! mode or mode-switch code has to run under Bochs. The guest gets no IDT: any exception it
//! raises becomes a triple fault, which stops that partition alone.

use super::percpu::{self, KERNEL_CS, KERNEL_DS, KERNEL_TSS};
use arch_x86::msr::{rdmsr, EFER_LMA, EFER_LME, IA32_EFER, IA32_GS_BASE};
use arch_x86::regs::{read_cr0, read_cr3, read_cr4, sidt_base, CR4_VMXE};
use arch_x86::vmx::controls::Controls;
use arch_x86::vmx::fields::{w16, w32, w64, wn};
use arch_x86::vmx::instr::vmwrite;
use arch_x86::vmx::VmxCapabilities;

/// Guest-physical address of the guest's PML4; its PDPT follows in the next page. Both lie in
/// the low 1 MiB of a partition's first region, below any image (loaded at 1 MiB or above).
pub const GUEST_PML4: u64 = 0x1000;
/// The guest's page tables map `[0, 4 GiB)` with four 1 GiB pages: all memory and devices a
/// partition can be given; anything else it touches is a page fault, hence a triple fault.
pub const GUEST_MAPPED_GIB: u64 = 4;

const IA32_PAT: u32 = 0x277;
/// The power-on PAT value (WB, WT, UC-, UC repeated).
const PAT_DEFAULT: u64 = 0x0007_0406_0007_0406;
const CR0_PE: u64 = 1 << 0;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
/// Segment access rights: 64-bit code (L, G, present, code execute/read accessed).
const AR_CODE64: u64 = 0xa09b;
/// Flat data (G, D/B, present, read/write accessed).
const AR_DATA: u64 = 0xc093;
/// Busy 64-bit TSS, present.
const AR_TSS: u64 = 0x8b;
/// Real-mode code and data segments (present, accessed, execute/read or read/write).
const AR_REAL_CODE: u64 = 0x9b;
const AR_REAL_DATA: u64 = 0x93;
/// Unusable (LDTR).
const AR_UNUSABLE: u64 = 0x1_0000;

/// What a vCPU's VMCS needs beyond the CPU it is on.
pub struct VcpuSetup {
    /// The EPT pointer of the partition's table (A/D enabled).
    pub eptp: u64,
    /// The vCPU's VPID (non-zero).
    pub vpid: u16,
    /// Physical addresses of the I/O bitmaps (A, then B 4 KiB later) and of the MSR bitmap.
    pub io_bitmap: u64,
    /// See `io_bitmap`.
    pub msr_bitmap: u64,
    /// First instruction.
    pub entry: u64,
    /// Start as a STARTUP IPI starts a processor (real mode at `entry`), not in 64-bit mode.
    pub real_mode: bool,
}

/// Writes `(field, value)` pairs to the current VMCS, stopping at the first refusal.
fn write_all(pairs: &[(u32, u64)]) -> Result<(), u32> {
    for &(field, value) in pairs {
        // SAFETY: called only with this CPU's current VMCS loaded, which this vCPU owns.
        unsafe { vmwrite(field, value) }.map_err(|_| field)?;
    }
    Ok(())
}

/// Fills the current VMCS for `setup` on the calling CPU. On failure, names the field.
pub fn fill(caps: &VmxCapabilities, setup: &VcpuSetup) -> Result<(), &'static str> {
    let c = Controls::for_partition(caps, !setup.real_mode).map_err(|r| {
        log::error!("vmx: the CPU refuses {} controls {:#x}", r.word, r.bits);
        "a VMX control the partition needs is not supported"
    })?;
    write_all(&[
        (w32::PIN_CONTROLS, c.pin.into()),
        (w32::PROC_CONTROLS, c.proc.into()),
        (w32::PROC_CONTROLS2, c.proc2.into()),
        (w32::EXIT_CONTROLS, c.exit.into()),
        (w32::ENTRY_CONTROLS, c.entry.into()),
        (w32::EXCEPTION_BITMAP, 0),
        (w32::CR3_TARGET_COUNT, 0),
        (w32::EXIT_MSR_STORE_COUNT, 0),
        (w32::EXIT_MSR_LOAD_COUNT, 0),
        (w32::ENTRY_MSR_LOAD_COUNT, 0),
        (w32::ENTRY_INTERRUPTION_INFO, 0),
        (w64::IO_BITMAP_A, setup.io_bitmap),
        (w64::IO_BITMAP_B, setup.io_bitmap + 4096),
        (w64::MSR_BITMAP, setup.msr_bitmap),
        (w64::EPT_POINTER, setup.eptp),
        (w16::VPID, setup.vpid.into()),
        (w64::VMCS_LINK_POINTER, u64::MAX),
    ])
    .map_err(|f| field_error("control", f))?;
    fill_host().map_err(|f| field_error("host", f))?;
    fill_guest(caps, setup.entry).map_err(|f| field_error("guest", f))?;
    if setup.real_mode {
        real_mode(caps, setup.entry).map_err(|f| field_error("guest", f))?;
    }
    Ok(())
}

/// Turns the 64-bit start state into the one a STARTUP IPI gives a processor: real mode with
/// CS = `entry >> 4` and IP 0, paging and protection off (unrestricted guest allows both), EFER
/// clear, 64 KiB segments, descriptor tables at 0. The guest's own code goes to long mode from
/// there (its EFER writes are emulated by the vCPU, which keeps the IA-32e entry control in step).
fn real_mode(caps: &VmxCapabilities, entry: u64) -> Result<(), u32> {
    let cr0 = caps.cr0.apply(CR0_ET | CR0_NE) & !(CR0_PE | CR0_PG);
    let cr4 = caps.cr4.apply(0);
    let mut pairs = alloc::vec![
        (wn::GUEST_CR0, cr0),
        (wn::CR0_READ_SHADOW, cr0),
        (wn::GUEST_CR3, 0),
        (wn::GUEST_CR4, cr4),
        (wn::CR4_READ_SHADOW, cr4 & !CR4_VMXE),
        (w64::GUEST_EFER, 0),
        (w16::GUEST_CS_SELECTOR, entry >> 4),
        (wn::GUEST_CS_BASE, entry),
        (w32::GUEST_CS_LIMIT, 0xffff),
        (w32::GUEST_CS_AR, AR_REAL_CODE),
        (w16::GUEST_TR_SELECTOR, 0),
        (w32::GUEST_TR_LIMIT, 0xffff),
        (w32::GUEST_GDTR_LIMIT, 0xffff),
        (w32::GUEST_IDTR_LIMIT, 0xffff),
        (wn::GUEST_RIP, 0),
    ];
    for (sel, base, limit, ar) in [
        (
            w16::GUEST_DS_SELECTOR,
            wn::GUEST_DS_BASE,
            w32::GUEST_DS_LIMIT,
            w32::GUEST_DS_AR,
        ),
        (
            w16::GUEST_ES_SELECTOR,
            wn::GUEST_ES_BASE,
            w32::GUEST_ES_LIMIT,
            w32::GUEST_ES_AR,
        ),
        (
            w16::GUEST_SS_SELECTOR,
            wn::GUEST_SS_BASE,
            w32::GUEST_SS_LIMIT,
            w32::GUEST_SS_AR,
        ),
        (
            w16::GUEST_FS_SELECTOR,
            wn::GUEST_FS_BASE,
            w32::GUEST_FS_LIMIT,
            w32::GUEST_FS_AR,
        ),
        (
            w16::GUEST_GS_SELECTOR,
            wn::GUEST_GS_BASE,
            w32::GUEST_GS_LIMIT,
            w32::GUEST_GS_AR,
        ),
    ] {
        pairs.extend_from_slice(&[(sel, 0), (base, 0), (limit, 0xffff), (ar, AR_REAL_DATA)]);
    }
    write_all(&pairs)
}

fn field_error(kind: &str, field: u32) -> &'static str {
    log::error!("vmx: VMWRITE of {kind} field {field:#06x} failed");
    "VMWRITE failed"
}

/// The host state: this CPU exactly as it runs now. HOST_RSP/HOST_RIP are written on each entry.
fn fill_host() -> Result<(), u32> {
    let (gdt, tss) = percpu::host_tables();
    // SAFETY: these MSRs exist on every x86_64 CPU that has VMX; reading them has no effect.
    let (efer, pat, gs) = unsafe { (rdmsr(IA32_EFER), rdmsr(IA32_PAT), rdmsr(IA32_GS_BASE)) };
    write_all(&[
        (wn::HOST_CR0, read_cr0()),
        (wn::HOST_CR3, read_cr3()),
        (wn::HOST_CR4, read_cr4()),
        (w16::HOST_CS_SELECTOR, KERNEL_CS.into()),
        (w16::HOST_SS_SELECTOR, KERNEL_DS.into()),
        (w16::HOST_DS_SELECTOR, KERNEL_DS.into()),
        (w16::HOST_ES_SELECTOR, KERNEL_DS.into()),
        (w16::HOST_FS_SELECTOR, 0),
        (w16::HOST_GS_SELECTOR, 0),
        (w16::HOST_TR_SELECTOR, KERNEL_TSS.into()),
        (wn::HOST_FS_BASE, 0),
        (wn::HOST_GS_BASE, gs),
        (wn::HOST_TR_BASE, tss),
        (wn::HOST_GDTR_BASE, gdt),
        (wn::HOST_IDTR_BASE, sidt_base()),
        (w32::HOST_SYSENTER_CS, 0),
        (wn::HOST_SYSENTER_ESP, 0),
        (wn::HOST_SYSENTER_EIP, 0),
        (w64::HOST_EFER, efer),
        (w64::HOST_PAT, pat),
    ])
}

/// The guest's start state: 64-bit mode, flat segments, paging on [`GUEST_PML4`], interrupts
/// off, no IDT. CR4.VMXE must stay set while in VMX non-root operation (a fixed bit), so the CR4
/// read shadow hides it and the mask makes a guest write to it exit; CR0.NE likewise.
fn fill_guest(caps: &VmxCapabilities, entry: u64) -> Result<(), u32> {
    let cr0 = caps.cr0.apply(CR0_PE | CR0_ET | CR0_NE | CR0_PG);
    let cr4 = caps.cr4.apply(CR4_PAE | CR4_VMXE);
    let flat = |sel, base, limit, ar, selector: u16| {
        [
            (sel, u64::from(selector)),
            (base, 0),
            (limit, 0xffff_ffff),
            (ar, AR_DATA),
        ]
    };
    let mut pairs = alloc::vec![
        (wn::GUEST_CR0, cr0),
        (wn::GUEST_CR3, GUEST_PML4),
        (wn::GUEST_CR4, cr4),
        (wn::CR0_GUEST_HOST_MASK, CR0_NE),
        (wn::CR0_READ_SHADOW, cr0),
        (wn::CR4_GUEST_HOST_MASK, CR4_VMXE),
        (wn::CR4_READ_SHADOW, cr4 & !CR4_VMXE),
        (w64::GUEST_EFER, EFER_LME | EFER_LMA),
        (w64::GUEST_PAT, PAT_DEFAULT),
        (w64::GUEST_DEBUGCTL, 0),
        (w16::GUEST_CS_SELECTOR, KERNEL_CS.into()),
        (wn::GUEST_CS_BASE, 0),
        (w32::GUEST_CS_LIMIT, 0xffff_ffff),
        (w32::GUEST_CS_AR, AR_CODE64),
        (w16::GUEST_TR_SELECTOR, KERNEL_TSS.into()),
        (wn::GUEST_TR_BASE, 0),
        (w32::GUEST_TR_LIMIT, 0x67),
        (w32::GUEST_TR_AR, AR_TSS),
        (w16::GUEST_LDTR_SELECTOR, 0),
        (wn::GUEST_LDTR_BASE, 0),
        (w32::GUEST_LDTR_LIMIT, 0),
        (w32::GUEST_LDTR_AR, AR_UNUSABLE),
        (wn::GUEST_GDTR_BASE, 0),
        (w32::GUEST_GDTR_LIMIT, 0),
        (wn::GUEST_IDTR_BASE, 0),
        (w32::GUEST_IDTR_LIMIT, 0),
        (wn::GUEST_DR7, 0x400),
        (wn::GUEST_RSP, 0),
        (wn::GUEST_RIP, entry),
        (wn::GUEST_RFLAGS, 0x2),
        (wn::GUEST_PENDING_DEBUG, 0),
        (w32::GUEST_INTERRUPTIBILITY, 0),
        (w32::GUEST_ACTIVITY_STATE, 0),
        (w32::GUEST_SYSENTER_CS, 0),
        (wn::GUEST_SYSENTER_ESP, 0),
        (wn::GUEST_SYSENTER_EIP, 0),
    ];
    let data = KERNEL_DS;
    for seg in [
        flat(
            w16::GUEST_DS_SELECTOR,
            wn::GUEST_DS_BASE,
            w32::GUEST_DS_LIMIT,
            w32::GUEST_DS_AR,
            data,
        ),
        flat(
            w16::GUEST_ES_SELECTOR,
            wn::GUEST_ES_BASE,
            w32::GUEST_ES_LIMIT,
            w32::GUEST_ES_AR,
            data,
        ),
        flat(
            w16::GUEST_SS_SELECTOR,
            wn::GUEST_SS_BASE,
            w32::GUEST_SS_LIMIT,
            w32::GUEST_SS_AR,
            data,
        ),
        flat(
            w16::GUEST_FS_SELECTOR,
            wn::GUEST_FS_BASE,
            w32::GUEST_FS_LIMIT,
            w32::GUEST_FS_AR,
            data,
        ),
        flat(
            w16::GUEST_GS_SELECTOR,
            wn::GUEST_GS_BASE,
            w32::GUEST_GS_LIMIT,
            w32::GUEST_GS_AR,
            data,
        ),
    ] {
        pairs.extend_from_slice(&seg);
    }
    write_all(&pairs)
}

/// Writes the guest's boot page tables into its memory: a PML4 at [`GUEST_PML4`] with one entry,
/// and a PDPT in the next page mapping [`GUEST_MAPPED_GIB`] GiB identity with 1 GiB pages (two
/// table pages, so the guest's own page walks touch as few pages as possible when it is aged).
pub fn write_guest_page_tables(partition: &board_config::Partition) -> Result<(), &'static str> {
    let host = |gpa: u64| {
        let r = partition
            .memory
            .iter()
            .find(|r| gpa >= r.guest && gpa + 4096 <= r.guest + r.size && r.access.write)?;
        r.translate(gpa)
    };
    let (Some(pml4), Some(pdpt)) = (host(GUEST_PML4), host(GUEST_PML4 + 4096)) else {
        return Err("its memory does not hold the boot page tables at 0x1000-0x3000");
    };
    let pml4 = super::Current::phys_to_virt_ptr(pml4) as *mut u64;
    let pdpt = super::Current::phys_to_virt_ptr(pdpt) as *mut u64;
    // Present, writable, user (so the guest may run ring 3 on them if it wants), accessed and
    // dirty already set, so the CPU has no reason to write these pages back.
    const TABLE: u64 = 0x1 | 0x2 | 0x4 | 0x20;
    const HUGE: u64 = TABLE | 0x40 | 0x80;
    // SAFETY: both pages lie in writable regions of the partition, which is not running (its
    // vCPU is being created on this CPU), and the direct map reaches them.
    unsafe {
        core::ptr::write_bytes(pml4, 0, 512);
        core::ptr::write_bytes(pdpt, 0, 512);
        pml4.write_volatile((GUEST_PML4 + 4096) | TABLE);
        for gib in 0..GUEST_MAPPED_GIB {
            pdpt.add(gib as usize).write_volatile((gib << 30) | HUGE);
        }
    }
    Ok(())
}
