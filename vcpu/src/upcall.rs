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
