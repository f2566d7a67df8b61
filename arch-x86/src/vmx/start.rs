//! The VMCS a VMX vCPU starts from, as data: a list of `(field, value)` pairs ([`fields`]) that
//! the vCPU writes in order (`vcpu::VmxVcpu::new`), so a host test reads the exact VMCS a vCPU
//! starts with. It holds the controls (`controls`: what exits) and what they point at (bitmaps,
//! EPT, VPID), the host state of the CPU the vCPU is created on (the exit lands on its GDT,
//! TSS, IDT, page tables and GS base), and the guest's first state: the 64-bit start every
//! partition's boot vCPU gets (`guest_boot`), or the real-mode start a STARTUP IPI gives a
//! processor. The partition's choices arrive in a [`VcpuConfig`], the CPU's in a [`HostState`]
//! and the capabilities; nothing here reads the CPU.

use super::caps::VmxCapabilities;
use super::controls::{Controls, Refused};
use super::fields::{w16, w32, w64, wn};
use crate::guest_boot::Selectors;
use crate::msr::{EFER_LMA, EFER_LME};
use crate::regs::CR4_VMXE;
use alloc::vec::Vec;
use core::sync::atomic::AtomicBool;

/// The power-on PAT value (WB, WT, UC-, UC repeated).
pub const PAT_DEFAULT: u64 = 0x0007_0406_0007_0406;
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

/// The data segments' (selector, base, limit, access rights) fields, which every start sets
/// alike.
const DATA_SEGMENTS: [[u32; 4]; 5] = [
    [
        w16::GUEST_DS_SELECTOR,
        wn::GUEST_DS_BASE,
        w32::GUEST_DS_LIMIT,
        w32::GUEST_DS_AR,
    ],
    [
        w16::GUEST_ES_SELECTOR,
        wn::GUEST_ES_BASE,
        w32::GUEST_ES_LIMIT,
        w32::GUEST_ES_AR,
    ],
    [
        w16::GUEST_SS_SELECTOR,
        wn::GUEST_SS_BASE,
        w32::GUEST_SS_LIMIT,
        w32::GUEST_SS_AR,
    ],
    [
        w16::GUEST_FS_SELECTOR,
        wn::GUEST_FS_BASE,
        w32::GUEST_FS_LIMIT,
        w32::GUEST_FS_AR,
    ],
    [
        w16::GUEST_GS_SELECTOR,
        wn::GUEST_GS_BASE,
        w32::GUEST_GS_LIMIT,
        w32::GUEST_GS_AR,
    ],
];

/// Everything the creation of a vCPU needs from the partition layer.
#[derive(Clone, Copy, Debug)]
pub struct VcpuConfig {
    /// The partition's EPT pointer (A/D enabled).
    pub eptp: u64,
    /// The vCPU's VPID (non-zero).
    pub vpid: u16,
    /// First instruction.
    pub entry: u64,
    /// rdi, rsi, rdx, rcx, r8 at entry (the test guests' boot arguments).
    pub args: [u64; 5],
    /// Start in real mode, as a STARTUP IPI starts a processor.
    pub real_mode: bool,
    /// The guest-physical root of the identity page tables a 64-bit start runs on (guest CR3).
    pub page_tables: u64,
    /// The 64-bit start's selectors.
    pub selectors: Selectors,
    /// The CPU's kick flag, which the entry stub checks with interrupts off.
    pub kick: &'static AtomicBool,
}

/// The CPU a vCPU is created on, as its VMCS host state must describe it (HOST_RSP and HOST_RIP
/// are the entry trampoline's, written at each entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostState {
    /// CR0.
    pub cr0: u64,
    /// CR3: the hypervisor's page tables.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// IA32_EFER.
    pub efer: u64,
    /// IA32_PAT.
    pub pat: u64,
    /// IA32_GS_BASE: the CPU's per-CPU slot.
    pub gs_base: u64,
    /// The CPU's TSS.
    pub tr_base: u64,
    /// The CPU's GDT.
    pub gdtr_base: u64,
    /// The IDT.
    pub idtr_base: u64,
    /// The hypervisor's code, data and TSS selectors.
    pub selectors: Selectors,
}

/// Physical addresses of what the controls point at: host facts, not the partition's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlAddrs {
    /// The I/O bitmaps (A, then B 4 KiB later).
    pub io_bitmap: u64,
    /// The MSR bitmap.
    pub msr_bitmap: u64,
}

/// The start VMCS for `config` on a CPU with `caps` and `host`, in the order to write it (a later
/// pair overrides an earlier one of the same field); `Err` names the control word the CPU
/// refuses.
pub fn fields(
    caps: &VmxCapabilities,
    config: &VcpuConfig,
    addrs: ControlAddrs,
    host: &HostState,
) -> Result<Vec<(u32, u64)>, Refused> {
    let c = Controls::for_partition(caps, !config.real_mode)?;
    let mut pairs = Vec::with_capacity(128);
    pairs.extend_from_slice(&[
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
        (w64::IO_BITMAP_A, addrs.io_bitmap),
        (w64::IO_BITMAP_B, addrs.io_bitmap + 4096),
        (w64::MSR_BITMAP, addrs.msr_bitmap),
        (w64::EPT_POINTER, config.eptp),
        (w16::VPID, config.vpid.into()),
        (w64::VMCS_LINK_POINTER, u64::MAX),
    ]);
    host_state(&mut pairs, host);
    long_mode(&mut pairs, caps, config);
    if config.real_mode {
        real_mode(&mut pairs, caps, config.entry);
    }
    Ok(pairs)
}

/// Which part of the VMCS a field belongs to (bits 11:10 of its encoding), for error messages.
pub const fn field_kind(field: u32) -> &'static str {
    match (field >> 10) & 3 {
        0 => "control",
        1 => "exit information",
        2 => "guest",
        _ => "host",
    }
}

/// The host state: the CPU exactly as it runs when the vCPU is created on it.
fn host_state(pairs: &mut Vec<(u32, u64)>, h: &HostState) {
    let sel = h.selectors;
    pairs.extend_from_slice(&[
        (wn::HOST_CR0, h.cr0),
        (wn::HOST_CR3, h.cr3),
        (wn::HOST_CR4, h.cr4),
        (w16::HOST_CS_SELECTOR, sel.code.into()),
        (w16::HOST_SS_SELECTOR, sel.data.into()),
        (w16::HOST_DS_SELECTOR, sel.data.into()),
        (w16::HOST_ES_SELECTOR, sel.data.into()),
        (w16::HOST_FS_SELECTOR, 0),
        (w16::HOST_GS_SELECTOR, 0),
        (w16::HOST_TR_SELECTOR, sel.tss.into()),
        (wn::HOST_FS_BASE, 0),
        (wn::HOST_GS_BASE, h.gs_base),
        (wn::HOST_TR_BASE, h.tr_base),
        (wn::HOST_GDTR_BASE, h.gdtr_base),
        (wn::HOST_IDTR_BASE, h.idtr_base),
        (w32::HOST_SYSENTER_CS, 0),
        (wn::HOST_SYSENTER_ESP, 0),
        (wn::HOST_SYSENTER_EIP, 0),
        (w64::HOST_EFER, h.efer),
        (w64::HOST_PAT, h.pat),
    ]);
}

/// The guest's 64-bit start state: flat segments, paging on `config.page_tables`, interrupts
/// off, no IDT (any exception it raises becomes a triple fault, which stops that partition
/// alone). CR4.VMXE must stay set while in VMX non-root operation (a fixed bit), so the CR4 read
/// shadow hides it and the mask makes a guest write to it exit; CR0.NE likewise.
fn long_mode(pairs: &mut Vec<(u32, u64)>, caps: &VmxCapabilities, config: &VcpuConfig) {
    let cr0 = caps.cr0.apply(CR0_PE | CR0_ET | CR0_NE | CR0_PG);
    let cr4 = caps.cr4.apply(CR4_PAE | CR4_VMXE);
    let sel = config.selectors;
    pairs.extend_from_slice(&[
        (wn::GUEST_CR0, cr0),
        (wn::GUEST_CR3, config.page_tables),
        (wn::GUEST_CR4, cr4),
        (wn::CR0_GUEST_HOST_MASK, CR0_NE),
        (wn::CR0_READ_SHADOW, cr0),
        (wn::CR4_GUEST_HOST_MASK, CR4_VMXE),
        (wn::CR4_READ_SHADOW, cr4 & !CR4_VMXE),
        (w64::GUEST_EFER, EFER_LME | EFER_LMA),
        (w64::GUEST_PAT, PAT_DEFAULT),
        (w64::GUEST_DEBUGCTL, 0),
        (w16::GUEST_CS_SELECTOR, sel.code.into()),
        (wn::GUEST_CS_BASE, 0),
        (w32::GUEST_CS_LIMIT, 0xffff_ffff),
        (w32::GUEST_CS_AR, AR_CODE64),
        (w16::GUEST_TR_SELECTOR, sel.tss.into()),
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
        (wn::GUEST_RIP, config.entry),
        (wn::GUEST_RFLAGS, 0x2),
        (wn::GUEST_PENDING_DEBUG, 0),
        (w32::GUEST_INTERRUPTIBILITY, 0),
        (w32::GUEST_ACTIVITY_STATE, 0),
        (w32::GUEST_SYSENTER_CS, 0),
        (wn::GUEST_SYSENTER_ESP, 0),
        (wn::GUEST_SYSENTER_EIP, 0),
    ]);
    for [selector, base, limit, ar] in DATA_SEGMENTS {
        pairs.extend_from_slice(&[
            (selector, sel.data.into()),
            (base, 0),
            (limit, 0xffff_ffff),
            (ar, AR_DATA),
        ]);
    }
}

/// Turns the 64-bit start state into the one a STARTUP IPI gives a processor: real mode with
/// CS = `entry >> 4` and IP 0, paging and protection off (unrestricted guest allows both), EFER
/// clear, 64 KiB segments, descriptor tables at 0. The guest's own code goes to long mode from
/// there (its EFER writes are emulated by the vCPU, which keeps the IA-32e entry control in step).
fn real_mode(pairs: &mut Vec<(u32, u64)>, caps: &VmxCapabilities, entry: u64) {
    let cr0 = caps.cr0.apply(CR0_ET | CR0_NE) & !(CR0_PE | CR0_PG);
    let cr4 = caps.cr4.apply(0);
    pairs.extend_from_slice(&[
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
    ]);
    for [selector, base, limit, ar] in DATA_SEGMENTS {
        pairs.extend_from_slice(&[
            (selector, 0),
            (base, 0),
            (limit, 0xffff),
            (ar, AR_REAL_DATA),
        ]);
    }
}
