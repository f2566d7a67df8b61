//! The world switch of the deprivileged backend: entering a partition's code at PLV3 and coming
//! back on its next exception. Entry saves the hypervisor's callee-saved registers and stack in
//! the vCPU's `GuestContext` (`arch_loongarch::depriv`, `#[repr(C)]` for this asm), points EENTRY
//! at the guest exit vector and KS3 at the context, loads ERA, PRMD (PLV3, interrupts on) and the
//! guest's registers, and `ertn`s. The exit vector (every exception and interrupt taken from the
//! guest lands there) saves the guest's registers and the exception CSRs into the context,
//! restores EENTRY, the hypervisor's stack and registers, and returns from [`enter`] as if it
//! were an ordinary call. Guest translation is set up by the caller (PGDL, ASID); the TLB refill
//! handler in `trap.rs` walks PGDL.

use arch_loongarch::csr;
use arch_loongarch::depriv::GuestContext;
use core::arch::global_asm;
use core::mem::offset_of;

const REGS: usize = offset_of!(GuestContext, regs);
const ERA: usize = offset_of!(GuestContext, era);
const PRMD: usize = offset_of!(GuestContext, prmd);
const ESTAT: usize = offset_of!(GuestContext, estat);
const BADV: usize = offset_of!(GuestContext, badv);
const BADI: usize = offset_of!(GuestContext, badi);
const HOST_SP: usize = offset_of!(GuestContext, host_sp);

global_asm!(
    ".section .text, \"ax\"",
    ".global septum_guest_enter",
    "septum_guest_enter:",
    "    addi.d  $sp, $sp, -96",
    "    st.d    $ra, $sp, 0",
    "    st.d    $fp, $sp, 8",
    "    .irp n, 0,1,2,3,4,5,6,7,8",
    "    st.d    $s\\n, $sp, 16 + \\n * 8",
    "    .endr",
    "    st.d    $sp, $a0, {host_sp}",
    "    move    $t0, $a0",
    "    csrwr   $t0, {KS3}",
    "    la.abs  $t0, septum_guest_exit",
    "    csrwr   $t0, {EENTRY}",
    "    ld.d    $t0, $a0, {era}",
    "    csrwr   $t0, {ERA}",
    "    ld.d    $t0, $a0, {prmd}",
    "    csrwr   $t0, {PRMD}",
    "    .irp n, 1,2,3,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    "    ld.d    $r\\n, $a0, {regs} + \\n * 8",
    "    .endr",
    "    ld.d    $a0, $a0, {regs} + 4 * 8",
    "    ertn",
    "",
    // EENTRY needs 4 KiB alignment.
    ".balign 4096",
    "septum_guest_exit:",
    "    csrwr   $t0, {KS2}",
    "    csrrd   $t0, {KS3}",
    "    .irp n, 1,2,3,4,5,6,7,8,9,10,11,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    "    st.d    $r\\n, $t0, {regs} + \\n * 8",
    "    .endr",
    "    csrrd   $t1, {KS2}",
    "    st.d    $t1, $t0, {regs} + 12 * 8",
    "    csrrd   $t1, {ERA}",
    "    st.d    $t1, $t0, {era}",
    "    csrrd   $t1, {PRMD}",
    "    st.d    $t1, $t0, {prmd}",
    "    csrrd   $t1, {ESTAT}",
    "    st.d    $t1, $t0, {estat}",
    "    csrrd   $t1, {BADV}",
    "    st.d    $t1, $t0, {badv}",
    "    csrrd   $t1, {BADI}",
    "    st.d    $t1, $t0, {badi}",
    "    la.abs  $t1, septum_trap_vector",
    "    csrwr   $t1, {EENTRY}",
    "    ld.d    $sp, $t0, {host_sp}",
    "    ld.d    $ra, $sp, 0",
    "    ld.d    $fp, $sp, 8",
    "    .irp n, 0,1,2,3,4,5,6,7,8",
    "    ld.d    $s\\n, $sp, 16 + \\n * 8",
    "    .endr",
    "    addi.d  $sp, $sp, 96",
    "    jirl    $zero, $ra, 0",
    KS2 = const csr::KS2,
    KS3 = const csr::KS3,
    EENTRY = const csr::EENTRY,
    ERA = const csr::ERA,
    PRMD = const csr::PRMD,
    ESTAT = const csr::ESTAT,
    BADV = const csr::BADV,
    BADI = const csr::BADI,
    regs = const REGS,
    era = const ERA,
    prmd = const PRMD,
    estat = const ESTAT,
    badv = const BADV,
    badi = const BADI,
    host_sp = const HOST_SP,
);

extern "C" {
    fn septum_guest_enter(ctx: *mut GuestContext);
}

/// Runs the guest described by `ctx` until its next exception; `ctx` then holds its registers,
/// ERA, PRMD, ESTAT, BADV and BADI.
///
/// # Safety
/// `ctx.prmd` must select PLV3 (so the guest cannot touch hypervisor state), the calling CPU's
/// PGDL and ASID must hold the partition's table and address-space id, and interrupts must be
/// off (CRMD.IE = 0) so nothing but the guest's own exceptions can reach the exit vector.
pub unsafe fn enter(ctx: &mut GuestContext) {
    // SAFETY: the caller upholds the contract; the asm saves and restores every callee-saved
    // register and the stack, and returns here through the exit vector with `ctx` filled in.
    unsafe { septum_guest_enter(ctx) }
}
