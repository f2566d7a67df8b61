//! The power register block of a Linux partition ([`super::POWER`]): three byte registers laid
//! out as the ACPI generic event device's (sleep control, sleep status, reset), which the
//! device tree hands to Linux's `syscon-poweroff` (writes [`POWER_OFF_VALUE`] to sleep control)
//! and `syscon-reboot` (writes [`RESET_VALUE`] to reset). Any other write is no transition this
//! platform has and is dropped; reads return 0.

/// Offset of the sleep control register.
pub const SLEEP_CONTROL: u64 = 0;
/// Offset of the sleep status register (reads 0: no wake events).
pub const SLEEP_STATUS: u64 = 1;
/// Offset of the reset register.
pub const RESET: u64 = 2;
/// Bytes the block decodes.
pub const SIZE: u64 = 4;
/// SLP_EN (bit 5) with sleep type 5 (bits 4:2): enter S5, power off.
pub const POWER_OFF_VALUE: u8 = 0x20 | 5 << 2;
/// The reset value (as QEMU's GED takes it).
pub const RESET_VALUE: u8 = 0x42;

/// What a write to the block asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerRequest {
    /// End the partition's run with code 0.
    PowerOff,
    /// Restart the partition.
    Reset,
    /// Nothing: another value or register.
    None,
}

/// Decodes a write of `value` at byte `offset` of the block. A wider write is taken as its
/// bytes, lowest first, so a 32-bit store of the power-off value at offset 0 still powers off.
pub fn write(offset: u64, size: u32, value: u64) -> PowerRequest {
    for i in 0..u64::from(size.min(8)) {
        let byte = (value >> (8 * i)) as u8;
        match (offset + i, byte) {
            (SLEEP_CONTROL, POWER_OFF_VALUE) => return PowerRequest::PowerOff,
            (RESET, RESET_VALUE) => return PowerRequest::Reset,
            _ => {}
        }
    }
    PowerRequest::None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_values_linux_writes_are_the_transitions() {
        assert_eq!(write(SLEEP_CONTROL, 1, 0x34), PowerRequest::PowerOff);
        assert_eq!(write(RESET, 1, 0x42), PowerRequest::Reset);
        // As a 32-bit store of the whole block.
        assert_eq!(write(0, 4, 0x0042_0000), PowerRequest::Reset);
        assert_eq!(write(0, 4, 0x34), PowerRequest::PowerOff);
    }

    #[test]
    fn other_writes_do_nothing() {
        assert_eq!(write(SLEEP_CONTROL, 1, 0x14), PowerRequest::None); // S5 without SLP_EN
        assert_eq!(write(RESET, 1, 0x34), PowerRequest::None);
        assert_eq!(write(SLEEP_STATUS, 1, 0x42), PowerRequest::None);
        assert_eq!(write(SLEEP_CONTROL, 1, 0x42), PowerRequest::None);
    }
}
