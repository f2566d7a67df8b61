//! Single instructions with no register file behind them: `idle`, barriers, the stable counter,
//! `break`. Only built for `loongarch64`.

/// Waits for an interrupt (or returns at once if one is pending). With CRMD.IE clear the CPU
/// still wakes, but takes no exception.
#[inline]
pub fn idle() {
    // SAFETY: idle only stalls this CPU until an interrupt is pending.
    unsafe { core::arch::asm!("idle 0", options(nomem, nostack)) };
}

/// Full memory barrier: every earlier load and store completes before any later one.
#[inline]
pub fn dbar() {
    // SAFETY: a barrier has no effect beyond ordering.
    unsafe { core::arch::asm!("dbar 0", options(nostack)) };
}

/// Instruction barrier: later fetches see earlier stores (after writing code).
#[inline]
pub fn ibar() {
    // SAFETY: a barrier has no effect beyond ordering.
    unsafe { core::arch::asm!("ibar 0", options(nostack)) };
}

/// The stable counter (constant rate, shared by all cores; see `CpuCfg::counter_hz`).
#[inline]
pub fn rdtime() -> u64 {
    let t: u64;
    // SAFETY: rdtime.d reads the counter; the counter id goes to a discarded register.
    unsafe { core::arch::asm!("rdtime.d {0}, $zero", out(reg) t, options(nomem, nostack)) };
    t
}

/// Raises a breakpoint exception (BRK) with `CODE` in the instruction's low 15 bits.
#[inline]
pub fn breakpoint<const CODE: u16>() {
    // SAFETY: `break` only raises an exception, which the installed exception vector handles;
    // the caller gets control back only if that handler returns.
    unsafe { core::arch::asm!("break {0}", const CODE, options(nostack)) };
}

/// Returns from an exception to CSR.ERA with the mode from CSR.PRMD.
///
/// # Safety
/// ERA, PRMD (and, for a guest, GSTAT.PVM) must describe a context that is safe to resume, and
/// every register that context expects must already be loaded.
#[inline]
pub unsafe fn ertn() -> ! {
    // SAFETY: the caller upholds this function's contract.
    unsafe { core::arch::asm!("ertn", options(noreturn, nostack)) }
}

/// `invtlb 5`: drops this CPU's TLB entries of address-space `asid` (G = 0) that map `va`.
#[inline]
pub fn invtlb_asid_addr(asid: u64, va: u64) {
    // SAFETY: invalidating TLB entries only makes later accesses walk the page tables again;
    // the hypervisor itself runs in the DMW windows, which the TLB does not hold.
    unsafe {
        core::arch::asm!("dbar 0", "invtlb 5, {0}, {1}", in(reg) asid, in(reg) va, options(nostack))
    };
}

/// `invtlb 4`: drops every TLB entry of address-space `asid` with G = 0 on this CPU.
#[inline]
pub fn invtlb_asid(asid: u64) {
    // SAFETY: as for `invtlb_asid_addr`.
    unsafe { core::arch::asm!("dbar 0", "invtlb 4, {0}, $zero", in(reg) asid, options(nostack)) };
}

/// `invtlb 0`: drops every entry of this CPU's TLB.
#[inline]
pub fn invtlb_all() {
    // SAFETY: as for `invtlb_asid_addr`.
    unsafe { core::arch::asm!("dbar 0", "invtlb 0, $zero, $zero", options(nostack)) };
}
