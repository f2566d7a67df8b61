//! IOCSR, the per-core I/O configuration space reached with `iocsrrd` / `iocsrwr`: the addresses
//! the hypervisor uses (identification, inter-processor interrupts and mailboxes) and 32/64-bit
//! accessors. Reads are safe (the registers used here have no read side effects); writes are not.

/// Feature word (MSI, EXTIOI, CSR IPI, ...).
pub const FEATURES: u64 = 0x8;
/// Vendor string, 8 ASCII bytes ("Loongson").
pub const VENDOR: u64 = 0x10;
/// CPU name, 8 ASCII bytes ("3A5000").
pub const CPU_NAME: u64 = 0x20;
/// This core's pending IPI vectors.
pub const IPI_STATUS: u64 = 0x1000;
/// This core's enabled IPI vectors.
pub const IPI_ENABLE: u64 = 0x1004;
/// Clears this core's pending IPI vectors (write 1s).
pub const IPI_CLEAR: u64 = 0x100c;
/// This core's mailbox 0 (64 bits); QEMU's secondary boot code jumps to its value.
pub const MBUF0: u64 = 0x1020;
/// Sends an IPI vector to any core (see [`crate::ipi`]).
pub const IPI_SEND: u64 = 0x1040;
/// Writes 32 bits into any core's mailbox (see [`crate::ipi`]).
pub const MBUF_SEND: u64 = 0x1048;

/// Reads the 32-bit IOCSR at `addr`.
#[cfg(target_arch = "loongarch64")]
#[inline]
pub fn read32(addr: u64) -> u32 {
    let value: u64;
    // SAFETY: the IOCSR registers this crate names have no read side effects; iocsrrd touches
    // no memory.
    unsafe {
        core::arch::asm!("iocsrrd.w {0}, {1}", out(reg) value, in(reg) addr, options(nostack))
    };
    value as u32
}

/// Reads the 64-bit IOCSR at `addr`.
#[cfg(target_arch = "loongarch64")]
#[inline]
pub fn read64(addr: u64) -> u64 {
    let value: u64;
    // SAFETY: as for read32.
    unsafe {
        core::arch::asm!("iocsrrd.d {0}, {1}", out(reg) value, in(reg) addr, options(nostack))
    };
    value
}

/// Writes the 32-bit IOCSR at `addr`.
///
/// # Safety
/// IOCSR writes reach other cores and the interrupt system: the caller must know the effect.
#[cfg(target_arch = "loongarch64")]
#[inline]
pub unsafe fn write32(addr: u64, value: u32) {
    // SAFETY: the caller upholds this function's contract.
    unsafe {
        core::arch::asm!("iocsrwr.w {0}, {1}", in(reg) value as u64, in(reg) addr,
            options(nostack))
    };
}

/// Writes the 64-bit IOCSR at `addr`.
///
/// # Safety
/// As for [`write32`].
#[cfg(target_arch = "loongarch64")]
#[inline]
pub unsafe fn write64(addr: u64, value: u64) {
    // SAFETY: the caller upholds this function's contract.
    unsafe {
        core::arch::asm!("iocsrwr.d {0}, {1}", in(reg) value, in(reg) addr, options(nostack))
    };
}
