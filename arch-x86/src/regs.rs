//! Control registers, descriptor-table loads and the few one-instruction helpers (`cli`, `hlt`) that
//! change how the CPU runs. Each is a thin wrapper; the callers say why a change is safe.

use core::arch::asm;

/// CR0.PE: protected mode.
pub const CR0_PE: u64 = 1 << 0;
/// CR0.NE: native x87 error reporting (required in VMX operation).
pub const CR0_NE: u64 = 1 << 5;
/// CR0.PG: paging.
pub const CR0_PG: u64 = 1 << 31;
/// CR4.PAE: physical address extension (required for long mode).
pub const CR4_PAE: u64 = 1 << 5;
/// CR4.VMXE: VMX enable; VMXON raises #UD without it.
pub const CR4_VMXE: u64 = 1 << 13;

/// Reads CR0.
pub fn read_cr0() -> u64 {
    let v: u64;
    // SAFETY: reading CR0 has no side effect; we run at CPL 0.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Writes CR0.
///
/// # Safety
/// Changing PG, PE, WP or CD changes how every later memory access works; the caller must keep
/// the value consistent with the current paging and VMX state.
pub unsafe fn write_cr0(v: u64) {
    // SAFETY: the caller guarantees the new value keeps the machine consistent.
    unsafe { asm!("mov cr0, {}", in(reg) v, options(nostack, preserves_flags)) };
}

/// Reads CR2, the faulting linear address of the last page fault.
pub fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effect.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Reads CR3, the physical address of the current top-level page table.
pub fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effect.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Reads CR4.
pub fn read_cr4() -> u64 {
    let v: u64;
    // SAFETY: reading CR4 has no side effect.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Writes CR4.
///
/// # Safety
/// As for [`write_cr0`]: clearing PAE in long mode faults, and VMXE may not be cleared in VMX
/// operation.
pub unsafe fn write_cr4(v: u64) {
    // SAFETY: the caller guarantees the new value keeps the machine consistent.
    unsafe { asm!("mov cr4, {}", in(reg) v, options(nostack, preserves_flags)) };
}

/// The operand of `lgdt`/`lidt`: limit and linear base.
#[repr(C, packed)]
pub struct DescriptorTablePointer {
    /// Size of the table in bytes, minus one.
    pub limit: u16,
    /// Linear address of the table.
    pub base: u64,
}

/// Loads the GDT register.
///
/// # Safety
/// The table must stay valid and unchanged in the entries in use for as long as it is loaded.
pub unsafe fn lgdt(ptr: &DescriptorTablePointer) {
    // SAFETY: the caller guarantees the table outlives its use.
    unsafe { asm!("lgdt [{}]", in(reg) ptr, options(readonly, nostack, preserves_flags)) };
}

/// Loads the IDT register.
///
/// # Safety
/// The table must stay valid for as long as it is loaded, with handlers that are sound to run.
pub unsafe fn lidt(ptr: &DescriptorTablePointer) {
    // SAFETY: the caller guarantees the table and its handlers are valid.
    unsafe { asm!("lidt [{}]", in(reg) ptr, options(readonly, nostack, preserves_flags)) };
}

/// The IDT register's base (what `lidt` loaded), for a VMCS's host state.
pub fn sidt_base() -> u64 {
    let mut ptr = DescriptorTablePointer { limit: 0, base: 0 };
    // SAFETY: SIDT only stores the 10-byte register into `ptr`.
    unsafe { asm!("sidt [{}]", in(reg) &mut ptr, options(nostack, preserves_flags)) };
    ptr.base
}

/// Loads the task register with `selector`, marking that TSS descriptor busy.
///
/// # Safety
/// `selector` must name an available 64-bit TSS descriptor in the loaded GDT whose TSS stays valid.
pub unsafe fn ltr(selector: u16) {
    // SAFETY: the caller guarantees the descriptor and TSS are valid.
    unsafe { asm!("ltr {0:x}", in(reg) selector, options(nostack, preserves_flags)) };
}

/// Reloads CS with `code` (by a far return) and DS, ES, SS with `data`; FS and GS get the null
/// selector (their 64-bit bases live in MSRs).
///
/// # Safety
/// Both selectors must name valid 64-bit code and data descriptors in the loaded GDT.
pub unsafe fn reload_segments(code: u16, data: u16) {
    // SAFETY: the caller guarantees the selectors; the far return lands on the next instruction
    // with the same stack, so control flow and RSP are unchanged.
    unsafe {
        asm!(
            "push {code}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {data:e}",
            "mov es, {data:e}",
            "mov ss, {data:e}",
            "xor {tmp:e}, {tmp:e}",
            "mov fs, {tmp:e}",
            "mov gs, {tmp:e}",
            code = in(reg) u64::from(code),
            data = in(reg) u32::from(data),
            tmp = out(reg) _,
        )
    };
}

/// Executes an IRETQ to the next instruction, on the same stack with the same flags. Its only
/// effect is the one every IRET has: it ends NMI blocking. After a VM exit caused by an NMI the
/// host stays NMI-blocked until an IRET (Bochs 2.7 does not lift it at the next VM entry), so
/// without this every later NMI would stay pending.
pub fn unblock_nmi() {
    // SAFETY: builds a 64-bit interrupt frame that returns to the label below with the current
    // SS, RSP, RFLAGS and CS, so control flow, stack and flags are as before.
    unsafe {
        asm!(
            "mov {tmp}, rsp",
            "push {ss}",
            "push {tmp}",
            "pushfq",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "iretq",
            "2:",
            tmp = out(reg) _,
            ss = in(reg) read_segment_ss(),
            cs = in(reg) read_segment_cs(),
        )
    };
}

fn read_segment_ss() -> u64 {
    let v: u64;
    // SAFETY: reading a segment selector has no side effect.
    unsafe { asm!("mov {0:x}, ss", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v & 0xffff
}

fn read_segment_cs() -> u64 {
    let v: u64;
    // SAFETY: reading a segment selector has no side effect.
    unsafe { asm!("mov {0:x}, cs", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v & 0xffff
}

/// Disables interrupts and halts forever; NMIs and SMIs return into the loop.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: cli/hlt only stop this CPU; no memory or other CPU is affected.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC only reads the counter (CR4.TSD is clear in the hypervisor).
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Opens a one-instruction interrupt window: a pending maskable interrupt is taken (by its IDT
/// handler) here, and interrupts are off again afterwards.
///
/// # Safety
/// Every vector that can be pending must have an IDT handler that returns.
pub unsafe fn take_pending_interrupt() {
    // SAFETY: per the contract; STI's shadow covers the NOP, so the window is exactly there.
    unsafe { asm!("sti", "nop", "cli", options(nomem, nostack)) };
}
