//! The first instructions on every CPU. QEMU (and the Linux boot protocol) starts the boot CPU in
//! direct-address mode with no stack, a0 = EFI flag, a1 = command line PA, a2 = system table PA;
//! secondaries come out of QEMU's mailbox wait loop, also in direct-address mode, at the physical
//! address we posted. Both paths open the two DMW windows, jump from wherever the PC happens to be
//! (physical or not) to the image's link address in the cached window, turn paging on so only
//! the windows translate, install the trap vectors, take a stack, and call Rust.

use super::trap;
use arch_loongarch::csr;
use board_config::MAX_CPUS;
use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Stack tops for CPUs 1.., indexed by CPUID and read by the secondary trampoline (0 = not
/// started); the boot CPU posts them (`smp`).
pub(super) static SECONDARY_SP: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];

/// Set by each secondary as its first Rust action, so the boot CPU stops posting its wake-up.
pub(super) static ARRIVED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// The boot CPU's stack, used until the boot sequence ends; secondaries use
/// [`crate::cpu_stacks::cpu_stack_top`] instead.
const BOOT_STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
struct Stack([u8; BOOT_STACK_SIZE]);

/// Only the entry code touches it, through its symbol, on the boot CPU.
#[link_section = ".bss.stack"]
static mut BOOT_STACK: Stack = Stack([0; BOOT_STACK_SIZE]);

global_asm!(
    // The shared prologue: DMW windows (DMW2/3, which the UEFI path borrows, cleared), jump to
    // the link address, paging on, FP/vector units off, one exception vector for everything,
    // timer off. Leaves a0-a7 alone (they carry the boot arguments).
    ".macro SEPTUM_ENTER_WINDOWS",
    "    li.d    $t0, {dmw0}",
    "    csrwr   $t0, {DMW0}",
    "    li.d    $t0, {dmw1}",
    "    csrwr   $t0, {DMW1}",
    "    la.abs  $t0, 1f",
    "    jirl    $zero, $t0, 0",
    "1:  li.d    $t0, {crmd}",
    "    csrwr   $t0, {CRMD}",
    "    csrwr   $zero, {EUEN}",
    "    csrwr   $zero, {ECFG}",
    "    csrwr   $zero, {TCFG}",
    "    csrwr   $zero, {DMW2}",
    "    csrwr   $zero, {DMW3}",
    ".endm",
    "",
    ".section .text.entry, \"ax\"",
    ".global _start",
    "_start:",
    "    SEPTUM_ENTER_WINDOWS",
    // Zero .bss (the boot stack is in it, and is not in use yet).
    "    la.abs  $t0, __bss_start",
    "    la.abs  $t1, __bss_end",
    "2:  bgeu    $t0, $t1, 3f",
    "    st.d    $zero, $t0, 0",
    "    addi.d  $t0, $t0, 8",
    "    b       2b",
    "3:  la.abs  $sp, {boot_stack}",
    "    li.d    $t0, {boot_stack_size}",
    "    add.d   $sp, $sp, $t0",
    "    move    $fp, $zero",
    "    bl      {install_traps}",
    "    bl      {primary}",
    "4:  idle    0",
    "    b       4b",
    "",
    // Secondary CPUs arrive here at the physical address, from QEMU's mailbox loop.
    ".balign 8",
    ".global septum_secondary_entry",
    "septum_secondary_entry:",
    "    SEPTUM_ENTER_WINDOWS",
    "    bl      {install_traps}",
    "    csrrd   $a0, {CPUID}",
    "    andi    $a0, $a0, 0x1ff",
    "    li.d    $t0, {max_cpus}",
    "    bgeu    $a0, $t0, 5f",
    "    la.abs  $t0, {secondary_sp}",
    "    slli.d  $t1, $a0, 3",
    "    ldx.d   $sp, $t0, $t1",
    "    beqz    $sp, 5f",
    "    move    $fp, $zero",
    "    bl      {secondary}",
    // No stack posted for this CPU (or an index beyond the tables): it was not meant to run.
    "5:  idle    0",
    "    b       5b",
    dmw0 = const csr::DMW0_UNCACHED,
    dmw1 = const csr::DMW1_CACHED,
    crmd = const csr::CRMD_HYPERVISOR,
    DMW0 = const csr::DMW0,
    DMW1 = const csr::DMW1,
    CRMD = const csr::CRMD,
    EUEN = const csr::EUEN,
    ECFG = const csr::ECFG,
    CPUID = const csr::CPUID,
    TCFG = const 0x41,
    DMW2 = const csr::DMW0 + 2,
    DMW3 = const csr::DMW0 + 3,
    boot_stack = sym BOOT_STACK,
    boot_stack_size = const BOOT_STACK_SIZE,
    install_traps = sym trap::septum_install_traps,
    primary = sym primary_entry,
    secondary = sym secondary_entry,
    secondary_sp = sym SECONDARY_SP,
    max_cpus = const MAX_CPUS,
);

/// The boot CPU's first Rust code, on the boot stack with the trap vectors installed.
extern "C" fn primary_entry(efi_flag: usize, cmdline_pa: usize, systab_pa: usize) -> ! {
    crate::console::attach(super::uart::console_regs(&crate::board::BOARD.console));
    let info = super::firmware::boot_info(efi_flag, cmdline_pa, systab_pa);
    crate::boot::primary_main(info)
}

/// A secondary CPU's first Rust code, on the stack the boot CPU posted for it.
extern "C" fn secondary_entry(cpu: usize) -> ! {
    if let Some(flag) = ARRIVED.get(cpu) {
        flag.store(true, Ordering::SeqCst);
    }
    crate::boot::secondary_main(cpu)
}

extern "C" {
    /// The secondary trampoline above; its physical address goes into the target's mailbox.
    pub(super) fn septum_secondary_entry();
}
