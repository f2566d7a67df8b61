//! Virtual interrupts as upcalls, the one delivery mechanism every backend can offer a guest that
//! knows Septum's ABI (the deprivileged LoongArch backend has nothing else; the hardware backends
//! can use it until they inject real vectors). A vCPU registers a handler entry and a stack with
//! `UPCALL_SET`; when one of its virtual interrupts is pending and it is not already in a handler,
//! the hypervisor saves the whole interrupted context *in the hypervisor* (never in guest memory,
//! so the guest cannot forge a return context), enters the handler with the stack pointer set, the
//! interrupt number in the first argument register and a detail word in the second, and masks
//! further upcalls. `UPCALL_RETURN` restores the saved context exactly and unmasks. Numbers:
//! [`VirtualIrq::code`].

/// One virtual interrupt a vCPU can be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtualIrq {
    /// The vCPU's own timer (`TIMER_SET`) reached its deadline.
    Timer,
    /// Another vCPU of the same partition sent an IPI (`SEND_IPI`).
    Ipi,
    /// A device line the board file gives the partition.
    Device(u32),
}

impl VirtualIrq {
    /// The number the handler receives: 0 timer, 1 IPI, 16 + line for a device line.
    pub const fn code(self) -> u64 {
        match self {
            Self::Timer => 0,
            Self::Ipi => 1,
            Self::Device(line) => 16 + line as u64,
        }
    }

    /// The interrupt a handler number stands for.
    pub const fn from_code(code: u64) -> Option<Self> {
        match code {
            0 => Some(Self::Timer),
            1 => Some(Self::Ipi),
            16..=0xffff_ffff => Some(Self::Device((code - 16) as u32)),
            _ => None,
        }
    }
}

/// Where a vCPU's upcall handler runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Upcall {
    /// Guest address of the first instruction of the handler.
    pub entry: u64,
    /// The stack pointer the handler starts with (the top of a stack the guest set aside).
    pub stack: u64,
}

/// One delivery: which handler, which interrupt, and the detail word (the sending vCPU's index
/// for an IPI, 0 otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub upcall: Upcall,
    pub irq: VirtualIrq,
    pub detail: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for irq in [
            VirtualIrq::Timer,
            VirtualIrq::Ipi,
            VirtualIrq::Device(0),
            VirtualIrq::Device(63),
        ] {
            assert_eq!(VirtualIrq::from_code(irq.code()), Some(irq));
        }
        assert_eq!(VirtualIrq::from_code(2), None);
        assert_eq!(VirtualIrq::Device(3).code(), 19);
    }
}

/// Which bit of the pending set `pending` to take next, when the last one taken was bit
/// `from - 1` (so `from` is where the search starts, wrapping past bit 63): the first pending
/// bit at or after `from`. Taking in turn rather than by fixed priority means a source that is
/// always pending again (a timer whose period is shorter than its handler) cannot starve the
/// others. `None` if nothing is pending.
pub const fn next_in_turn(pending: u64, from: u32) -> Option<u32> {
    if pending == 0 {
        return None;
    }
    let from = from % 64;
    Some((pending.rotate_right(from).trailing_zeros() + from) % 64)
}

#[cfg(test)]
mod turn_tests {
    use super::next_in_turn;

    #[test]
    fn takes_the_first_pending_bit_from_where_it_left_off() {
        assert_eq!(next_in_turn(0, 5), None);
        assert_eq!(next_in_turn(0b11, 0), Some(0));
        assert_eq!(next_in_turn(0b11, 1), Some(1));
        // Past the last one it wraps to the lowest.
        assert_eq!(next_in_turn(0b11, 2), Some(0));
        assert_eq!(next_in_turn(1 << 63 | 1, 63), Some(63));
        assert_eq!(next_in_turn(1 << 63 | 1, 64), Some(0));
    }

    #[test]
    fn a_source_always_pending_again_does_not_starve_the_others() {
        // Timer (bit 0) raised again before every take; an IPI (bit 1) and device line bit 5
        // raised once: both are taken within three takes.
        let (mut pending, mut from) = (0b10_0011u64, 0u32);
        let mut taken = [false; 64];
        for _ in 0..3 {
            pending |= 1;
            let b = next_in_turn(pending, from).unwrap();
            taken[b as usize] = true;
            pending &= !(1 << b);
            from = b + 1;
        }
        assert!(taken[0] && taken[1] && taken[5]);
    }
}
