//! A PC's CMOS real-time clock as a partition without one should see it: present, stopped at a
//! fixed date, never updating. A partition has no clock of the machine's (the hypervisor keeps
//! none to give), yet Linux reads the CMOS time at boot whatever the FADT says, and on an absent
//! device (every port reading all-ones) it sees the "update in progress" bit forever and polls
//! the data port until its timeout: about 20,000 index/data exits per boot, measured. Here the
//! index port (0x70) selects a register and the data port (0x71) reads it: the time registers
//! hold the fixed date in BCD, status register A says no update is in progress, B says BCD and
//! 24-hour mode, D says the battery is good, and every other register reads 0. Writes are
//! accepted and dropped (the clock cannot be set, the NMI mask bit in the index is ignored).

/// The index port's offset and the data port's.
pub const INDEX: u64 = 0;
pub const DATA: u64 = 1;

/// Status registers A, B, D and their values: no update in progress (UIP, A bit 7, clear)
/// with the usual divider; BCD, 24-hour; valid RAM and time.
const REG_A: u8 = 0x0a;
const REG_B: u8 = 0x0b;
const REG_D: u8 = 0x0d;
const A_IDLE: u8 = 0x26;
const B_BCD_24H: u8 = 0x02;
const D_VALID: u8 = 0x80;
/// The century register most PCs (and Linux's ACPI-less default) use.
const REG_CENTURY: u8 = 0x32;

/// The fixed date: 2026-01-01 00:00:00, a Thursday.
const SECONDS: u8 = 0x00;
const MINUTES: u8 = 0x00;
const HOURS: u8 = 0x00;
const WEEKDAY: u8 = 0x05;
const DAY: u8 = 0x01;
const MONTH: u8 = 0x01;
const YEAR: u8 = 0x26;
const CENTURY: u8 = 0x20;

/// The clock: only the selected register index is state.
#[derive(Clone, Copy, Debug, Default)]
pub struct CmosRtc {
    index: u8,
}

impl CmosRtc {
    pub const fn new() -> Self {
        Self { index: 0 }
    }

    /// A guest read of port offset `offset` (0: index, 1: data).
    pub fn read(&self, offset: u64) -> u8 {
        match offset {
            INDEX => self.index,
            DATA => register(self.index),
            _ => 0xff,
        }
    }

    /// A guest write: the index port selects a register (bit 7, the NMI mask, is dropped); data
    /// writes change nothing.
    pub fn write(&mut self, offset: u64, value: u8) {
        if offset == INDEX {
            self.index = value & 0x7f;
        }
    }
}

fn register(index: u8) -> u8 {
    match index {
        0x00 => SECONDS,
        0x02 => MINUTES,
        0x04 => HOURS,
        0x06 => WEEKDAY,
        0x07 => DAY,
        0x08 => MONTH,
        0x09 => YEAR,
        REG_A => A_IDLE,
        REG_B => B_BCD_24H,
        REG_D => D_VALID,
        REG_CENTURY => CENTURY,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_reg(c: &mut CmosRtc, r: u8) -> u8 {
        c.write(INDEX, r);
        c.read(DATA)
    }

    #[test]
    fn no_update_is_ever_in_progress() {
        let mut c = CmosRtc::new();
        for _ in 0..3 {
            assert_eq!(read_reg(&mut c, REG_A) & 0x80, 0, "UIP clear");
        }
        // With the NMI-mask bit set in the index too.
        assert_eq!(read_reg(&mut c, 0x80 | REG_A) & 0x80, 0);
    }

    #[test]
    fn the_time_is_a_valid_bcd_date() {
        let mut c = CmosRtc::new();
        let bcd = |v: u8| (v >> 4) * 10 + (v & 0xf);
        assert_eq!(read_reg(&mut c, REG_B) & 0x04, 0, "BCD mode");
        assert_eq!(read_reg(&mut c, REG_B) & 0x02, 0x02, "24-hour mode");
        let (day, month, year) = (
            bcd(read_reg(&mut c, 0x07)),
            bcd(read_reg(&mut c, 0x08)),
            bcd(read_reg(&mut c, 0x09)),
        );
        assert!((1..=31).contains(&day) && (1..=12).contains(&month));
        assert_eq!(
            u32::from(bcd(read_reg(&mut c, REG_CENTURY))) * 100 + u32::from(year),
            2026
        );
        assert!(bcd(read_reg(&mut c, 0x04)) < 24 && bcd(read_reg(&mut c, 0x02)) < 60);
        assert_eq!(read_reg(&mut c, REG_D), D_VALID);
    }

    #[test]
    fn writes_never_set_the_clock() {
        let mut c = CmosRtc::new();
        c.write(INDEX, 0x09);
        c.write(DATA, 0x99);
        assert_eq!(c.read(DATA), YEAR);
        assert_eq!(read_reg(&mut c, 0x40), 0, "other registers read 0");
    }
}
