//! The per-core timer (TCFG / TICLR) and its encodings. TCFG holds EN (bit 0), PERIODIC (bit 1)
//! and the initial count in bits 47:2 (so counts are multiples of 4); the countdown runs at the
//! stable counter's rate and raises ESTAT.IS bit 11 at zero, acknowledged by writing 1 to TICLR.
//! The deprivileged backend owns this timer and multiplexes the vCPU's virtual timer onto it as
//! one-shot countdowns; under LVZ the guest has a timer of its own (guest TCFG) and this one stays
//! the hypervisor's.

/// Timer configuration CSR.
pub const TCFG: u16 = 0x41;
/// The largest count TCFG holds (bits 47:2).
pub const MAX_TICKS: u64 = ((1 << 46) - 1) << 2;
/// The ESTAT.IS / ECFG.LIE bit of the timer line.
pub const LINE: u64 = 1 << 11;

/// The TCFG value of a one-shot countdown of at least `ticks` counter ticks (rounded up to a
/// multiple of 4, at least 4, at most [`MAX_TICKS`]).
pub const fn oneshot(ticks: u64) -> u64 {
    let t = if ticks > MAX_TICKS {
        MAX_TICKS
    } else if ticks < 4 {
        4
    } else {
        (ticks + 3) & !3
    };
    t | 1
}

/// The TCFG value of a timer that never fires.
pub const OFF: u64 = 0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oneshot_rounds_up_to_a_multiple_of_four_and_enables() {
        assert_eq!(oneshot(0), 4 | 1);
        assert_eq!(oneshot(5), 8 | 1);
        assert_eq!(oneshot(100_000), 100_000 | 1);
        assert_eq!(oneshot(u64::MAX), MAX_TICKS | 1);
        assert_eq!(oneshot(17) & 2, 0, "never periodic");
    }
}
