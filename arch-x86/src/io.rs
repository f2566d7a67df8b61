//! Port I/O (`in`/`out`). Ports reach legacy devices (the 16550 console, the PIT, the emulators'
//! exit ports); a stray write can reset the machine or reprogram a device, hence `unsafe`.

use core::arch::asm;

/// Reads a byte from `port`.
///
/// # Safety
/// The port must belong to a device the hypervisor owns; a read can have side effects (it may pop
/// a FIFO or acknowledge an interrupt).
#[inline]
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: the caller guarantees the port may be read; `in` touches no memory.
    unsafe {
        asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    value
}

/// Writes a byte to `port`.
///
/// # Safety
/// The port must belong to a device the hypervisor owns and the value must be valid for it.
#[inline]
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller guarantees the write is meaningful for the device; no memory is touched.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Reads a 32-bit value from `port`.
///
/// # Safety
/// As for [`inb`].
#[inline]
pub unsafe fn inl(port: u16) -> u32 {
    let value: u32;
    // SAFETY: the caller guarantees the port may be read; `in` touches no memory.
    unsafe {
        asm!("in eax, dx", out("eax") value, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    value
}

/// Writes a 32-bit value to `port`.
///
/// # Safety
/// As for [`outb`].
#[inline]
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: the caller guarantees the write is meaningful for the device; no memory is touched.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    };
}
