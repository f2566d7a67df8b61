//! The ACPI sleep control register and reset register a Linux partition's FADT names
//! (hardware-reduced ACPI, ACPI 6.5 sections 4.8.3.6-7): the fixed ACPI hardware the hypervisor
//! emulates, so that `poweroff` in the guest, through the DSDT's `\_S5` package, ends the
//! partition, and `reboot` restarts it. Both are I/O ports: the sleep register at the port the
//! board model reserves, the reset register at the next one. The tables that point at them are
//! built with the image (`linux::acpi`); the decode runs in the image.

/// The `\_S5` sleep type the DSDT declares; the register decodes it.
pub const S5_SLEEP_TYPE: u8 = 5;
/// Where SLP_TYPx sits in the register (bits 4:2).
pub const SLP_TYP_SHIFT: u8 = 2;
/// SLP_EN (bit 5): enter the sleep state written with it.
pub const SLP_EN: u8 = 1 << 5;

/// The reset register's port, after the sleep register's.
pub const RESET_PORT_OFFSET: u16 = 1;
/// The value the FADT tells the guest to write to the reset register (as to a PC's 0xcf9).
pub const RESET_VALUE: u8 = 0x06;

/// What a guest's byte written to the sleep control register asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SleepRequest {
    /// SLP_EN with the S5 type: power off.
    PowerOff,
    /// Anything else (another sleep type, or SLP_EN clear): not a transition this platform has.
    None,
}

/// Decodes a write to the sleep control register.
pub fn sleep_request(byte: u8) -> SleepRequest {
    let typ = (byte >> SLP_TYP_SHIFT) & 0x7;
    if byte & SLP_EN != 0 && typ == S5_SLEEP_TYPE {
        SleepRequest::PowerOff
    } else {
        SleepRequest::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_slp_en_with_the_s5_type_powers_off() {
        assert_eq!(
            sleep_request(SLP_EN | (S5_SLEEP_TYPE << SLP_TYP_SHIFT)),
            SleepRequest::PowerOff
        );
        assert_eq!(
            sleep_request(S5_SLEEP_TYPE << SLP_TYP_SHIFT),
            SleepRequest::None
        );
        assert_eq!(
            sleep_request(SLP_EN | (3 << SLP_TYP_SHIFT)),
            SleepRequest::None
        );
    }
}
