//! Control and status registers: their numbers, the few field values the hypervisor writes, and
//! `csrrd` / `csrwr` / `csrxchg` over a CSR number given as a const generic (the instructions
//! encode the number as an immediate, so it must be known at compile time).
//!
//! Reads are safe: a CSR read at PLV0 has no side effects. Writes are `unsafe` because they change
//! translation, exception routing or interrupt state under the caller's feet.

/// Current mode: PLV, IE, DA/PG and the direct-access memory types.
pub const CRMD: u16 = 0x0;
/// Mode before the last exception (restored by `ertn`).
pub const PRMD: u16 = 0x1;
/// Extended unit enables (FP, LSX, LASX, LBT).
pub const EUEN: u16 = 0x2;
/// Exception configuration: vector spacing and local interrupt enables.
pub const ECFG: u16 = 0x4;
/// Exception status: pending interrupts, Ecode, EsubCode.
pub const ESTAT: u16 = 0x5;
/// Exception return address.
pub const ERA: u16 = 0x6;
/// Bad virtual address of the last address-related exception.
pub const BADV: u16 = 0x7;
/// The instruction word that raised the last synchronous exception.
pub const BADI: u16 = 0x8;
/// Exception entry (general exceptions and interrupts), a virtual address.
pub const EENTRY: u16 = 0xc;
/// TLB index register (its PS field is the page size `tlbfill` uses outside refill).
pub const TLBIDX: u16 = 0x10;
/// Guest TLB control (LVZ).
pub const GTLBC: u16 = 0x15;
/// TLBRD read guest info (LVZ).
pub const TRGP: u16 = 0x16;
/// Address-space id of translated accesses.
pub const ASID: u16 = 0x18;
/// Low-half page-table root.
pub const PGDL: u16 = 0x19;
/// High-half page-table root.
pub const PGDH: u16 = 0x1a;
/// The root the refill walk starts from (PGDL or PGDH by the faulting address), read-only.
pub const PGD: u16 = 0x1b;
/// Page-walk controller, low half (PT and Dir1/Dir2 geometry).
pub const PWCL: u16 = 0x1c;
/// Page-walk controller, high half (Dir3/Dir4 geometry).
pub const PWCH: u16 = 0x1d;
/// Page size of the set-associative TLB.
pub const STLBPS: u16 = 0x1e;
/// This core's id.
pub const CPUID: u16 = 0x20;
/// Scratch register 0; the trap entry parks the interrupted stack pointer here.
pub const KS0: u16 = 0x30;
/// Scratch register 1; holds this CPU's trap stack top.
pub const KS1: u16 = 0x31;
/// Scratch register 2; the guest exit path parks the guest's t0 here.
pub const KS2: u16 = 0x32;
/// Scratch register 3; the running vCPU's context while a guest runs.
pub const KS3: u16 = 0x33;
/// Timer interrupt clear (write bit 0).
pub const TICLR: u16 = 0x44;
/// Guest status (LVZ): VM, PVM, GID.
pub const GSTAT: u16 = 0x50;
/// Guest configuration (LVZ): trap controls and their "present" bits.
pub const GCFG: u16 = 0x51;
/// Guest interrupt control (LVZ).
pub const GINTC: u16 = 0x52;
/// Guest counter compensation (LVZ).
pub const GCNTC: u16 = 0x53;
/// TLB refill entry, a physical address (refill runs in direct-address mode).
pub const TLBRENTRY: u16 = 0x88;
/// Bad virtual address of the TLB refill.
pub const TLBRBADV: u16 = 0x89;
/// Return address of the TLB refill (bit 0 = IsTLBR).
pub const TLBRERA: u16 = 0x8a;
/// Scratch register reserved for the TLB refill handler.
pub const TLBRSAVE: u16 = 0x8b;
/// Entry high half of the refill (its PS field is the page size of the refill's `tlbfill`).
pub const TLBREHI: u16 = 0x8e;
/// Mode before the TLB refill (restored by the refill's `ertn`).
pub const TLBRPRMD: u16 = 0x8f;
/// Direct-mapped window 0.
pub const DMW0: u16 = 0x180;
/// Direct-mapped window 1.
pub const DMW1: u16 = 0x181;

/// CRMD.IE: global interrupt enable.
pub const CRMD_IE: u64 = 1 << 2;
/// CRMD for the hypervisor: PLV0, interrupts off, paging on (DA=0, PG=1) so the DMW windows apply,
/// and coherent-cached accesses for direct-address fetches and loads (DATF = DATM = 1).
pub const CRMD_HYPERVISOR: u64 = 0xb0;
/// DMW0: the uncached window at 0x8000_0000_0000_0000 (PLV0, MAT = strongly-ordered uncached),
/// used for device registers.
pub const DMW0_UNCACHED: u64 = 0x8000_0000_0000_0001;
/// DMW1: the cached window at 0x9000_0000_0000_0000 (PLV0, MAT = coherent cached), where the
/// image runs and RAM is reached.
pub const DMW1_CACHED: u64 = 0x9000_0000_0000_0011;
/// Base of the uncached window.
pub const UNCACHED_BASE: u64 = 0x8000_0000_0000_0000;
/// Base of the cached window.
pub const CACHED_BASE: u64 = 0x9000_0000_0000_0000;

/// Reads CSR `N`.
#[cfg(target_arch = "loongarch64")]
#[inline(always)]
pub fn read<const N: u16>() -> u64 {
    let value;
    // SAFETY: csrrd at PLV0 only copies the register; it has no side effect on machine state.
    unsafe { core::arch::asm!("csrrd {0}, {1}", out(reg) value, const N, options(nomem, nostack)) };
    value
}

/// Writes `value` to CSR `N` and returns the old value.
///
/// # Safety
/// The caller must know what CSR `N` controls and that changing it keeps the running code valid
/// (translation, exception entry, interrupt state).
#[cfg(target_arch = "loongarch64")]
#[inline(always)]
pub unsafe fn write<const N: u16>(value: u64) -> u64 {
    let mut v = value;
    // SAFETY: the caller upholds this function's contract; csrwr touches no memory.
    unsafe { core::arch::asm!("csrwr {0}, {1}", inout(reg) v, const N, options(nostack)) };
    v
}

/// Replaces the bits of CSR `N` selected by `mask` with those of `value` in one instruction (no
/// read-modify-write window) and returns the old value.
///
/// # Safety
/// As for [`write`].
#[cfg(target_arch = "loongarch64")]
#[inline(always)]
pub unsafe fn xchg<const N: u16>(value: u64, mask: u64) -> u64 {
    let mut v = value;
    // SAFETY: the caller upholds this function's contract. The mask register must not be r0 or
    // r1 (those encodings mean csrrd / csrwr), so it is pinned to t1 rather than left to LLVM,
    // which may hand out r1 (ra) as a general register.
    unsafe {
        core::arch::asm!("csrxchg {0}, $t1, {1}", inout(reg) v, const N, in("$t1") mask,
            options(nostack))
    };
    v
}
