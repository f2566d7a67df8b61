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

/// One core timer serving two deadlines (counter ticks): the vCPU's virtual timer and the LVZ
/// re-check of a raised line (`lvz::recheck`). Returns the deadline to count down to (the
/// earlier one) and the re-check deadline still to keep. A virtual-timer deadline already passed
/// still fires (at once); a re-check deadline already passed was served by the exit that brought
/// the hypervisor here, so it is dropped: kept, it would make every later countdown zero.
pub fn next_deadline(
    virtual_timer: Option<u64>,
    recheck: Option<u64>,
    now: u64,
) -> (Option<u64>, Option<u64>) {
    let recheck = recheck.filter(|&r| r > now);
    let earliest = match (virtual_timer, recheck) {
        (Some(v), Some(r)) => Some(v.min(r)),
        (v, r) => v.or(r),
    };
    (earliest, recheck)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earlier_deadline_is_armed_and_a_passed_recheck_is_dropped() {
        assert_eq!(next_deadline(None, None, 100), (None, None));
        assert_eq!(next_deadline(Some(500), None, 100), (Some(500), None));
        assert_eq!(next_deadline(None, Some(300), 100), (Some(300), Some(300)));
        assert_eq!(
            next_deadline(Some(500), Some(300), 100),
            (Some(300), Some(300))
        );
        assert_eq!(
            next_deadline(Some(200), Some(300), 100),
            (Some(200), Some(300))
        );
        // A passed virtual-timer deadline still fires; a passed re-check is gone.
        assert_eq!(next_deadline(Some(50), None, 100), (Some(50), None));
        assert_eq!(next_deadline(Some(500), Some(100), 100), (Some(500), None));
        assert_eq!(next_deadline(None, Some(90), 100), (None, None));
    }

    #[test]
    fn oneshot_rounds_up_to_a_multiple_of_four_and_enables() {
        assert_eq!(oneshot(0), 4 | 1);
        assert_eq!(oneshot(5), 8 | 1);
        assert_eq!(oneshot(100_000), 100_000 | 1);
        assert_eq!(oneshot(u64::MAX), MAX_TICKS | 1);
        assert_eq!(oneshot(17) & 2, 0, "never periodic");
    }
}
