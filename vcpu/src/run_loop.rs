//! The run loop every vCPU runs, on either architecture: enter the guest, classify the exit, let
//! the handler decide, complete the exit the way the handler said, and go again until the handler
//! stops the vCPU. Exit counts are kept here so the management interface can read them per kind.

use crate::exit::{Completion, VmExit};
use crate::upcall::Delivery;

/// What an architecture backend offers the run loop.
pub trait ArchVcpu {
    /// Enters the guest and returns at its next exit.
    fn run(&mut self) -> VmExit;
    /// Applies the handler's decision before the next entry (advance the PC, set a register).
    fn complete(&mut self, completion: Completion);
    /// Enters the upcall handler before the next entry (`crate::upcall`): saves the whole
    /// guest context in the vCPU, sets PC, stack pointer and the two argument registers. Returns
    /// false if this backend cannot (the interrupt then stays pending).
    fn deliver_upcall(&mut self, delivery: Delivery) -> bool;
    /// Restores the context saved by the last [`ArchVcpu::deliver_upcall`] (`UPCALL_RETURN`).
    fn return_from_upcall(&mut self);
    /// Injects external interrupt `vector` through the guest's own IDT at the next entry, if the
    /// guest can take one now (interrupts on, no interrupt shadow, no event being re-delivered).
    /// When it cannot, the backend arranges an exit as soon as it can (an interrupt window) and
    /// returns false; the vector stays requested.
    fn inject_interrupt(&mut self, vector: u8) -> bool;
    /// Sets the levels of the guest's CPU-local interrupt lines for the next entry, the way the
    /// hardware injects them (LoongArch LVZ: the IPI line in guest ESTAT.IS, device lines in
    /// GINTC.VIP); `lines` uses the architecture's pending-line layout (LoongArch: ESTAT.IS).
    /// Backends that deliver interrupts otherwise ignore it (and say so).
    fn set_irq_lines(&mut self, lines: u32);
}

/// Why a vCPU stopped for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The guest powered off with this code.
    PowerOff { code: u64 },
    /// The guest asked to reboot.
    Reset,
    /// x86: the guest raised an exception it could not deliver (VMX exit 2, SVM SHUTDOWN); the
    /// hardware would reset, so the partition stops.
    TripleFault,
    /// The manager (or the board's policy) stopped it.
    Stopped,
    /// The guest did something its partition may not do; `what` says what, at `addr`.
    Violation { what: &'static str, addr: u64 },
    /// The hardware refused the guest state.
    InvalidState { raw: u64 },
    /// x86: another vCPU of the partition sent this one INIT: it leaves its guest and waits for
    /// a STARTUP; the partition runs on (the one reason that ends a vCPU, not the run).
    Init,
}

/// The handler's decision for one exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Resume(Completion),
    Stop(StopReason),
    /// Resume the context the current upcall interrupted (`UPCALL_RETURN`); only returned when
    /// the handler knows an upcall is in progress.
    ReturnFromUpcall,
}

/// Decides what each exit means for the partition.
pub trait ExitHandler {
    fn handle(&mut self, exit: &VmExit) -> Action;
    /// Before each entry: the virtual interrupt to deliver now, if one is pending and the vCPU can
    /// take it. The handler treats it as delivered unless [`ExitHandler::undelivered`] follows.
    fn next_upcall(&mut self) -> Option<Delivery>;
    /// The backend could not deliver `delivery`: keep it pending.
    fn undelivered(&mut self, delivery: Delivery);
    /// Before each entry: the interrupt vector to inject through the guest's IDT (its virtual
    /// local APIC's highest deliverable request), if any.
    fn next_vector(&mut self) -> Option<u8>;
    /// `vector` was injected: it moves from requested to in service.
    fn vector_injected(&mut self, vector: u8);
    /// Before each entry: the levels of the vCPU's CPU-local interrupt lines its virtual
    /// devices drive (LoongArch: the IPI block's line, ESTAT.IS bit 12), if it has any.
    fn irq_lines(&mut self) -> Option<u32>;
}

/// Exit kinds for counting; the order is the ABI of the exit-counters hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    Hypercall,
    Mmio,
    Port,
    StageTwoFault,
    Halt,
    CpuId,
    Msr,
    Csr,
    ExternalInterrupt,
    Shutdown,
    Forbidden,
    InvalidState,
    Unknown,
}

impl ExitKind {
    /// How many kinds there are.
    pub const COUNT: usize = 13;

    /// The kind of an exit.
    pub const fn of(exit: &VmExit) -> Self {
        match exit {
            VmExit::Hypercall { .. } => Self::Hypercall,
            VmExit::MmioRead { .. } | VmExit::MmioWrite { .. } => Self::Mmio,
            VmExit::PortIn { .. } | VmExit::PortOut { .. } => Self::Port,
            VmExit::StageTwoFault { .. } => Self::StageTwoFault,
            VmExit::Halt => Self::Halt,
            VmExit::CpuId { .. } | VmExit::CpuCfg { .. } => Self::CpuId,
            VmExit::MsrRead { .. } | VmExit::MsrWrite { .. } => Self::Msr,
            VmExit::CsrRead { .. } | VmExit::CsrWrite { .. } => Self::Csr,
            VmExit::ExternalInterrupt { .. } => Self::ExternalInterrupt,
            VmExit::Shutdown { .. } => Self::Shutdown,
            VmExit::ForbiddenInstruction { .. } => Self::Forbidden,
            VmExit::InvalidState { .. } => Self::InvalidState,
            VmExit::Unknown { .. } => Self::Unknown,
        }
    }
}

/// Per-kind exit counts of one vCPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitCounters {
    pub counts: [u64; ExitKind::COUNT],
}

impl ExitCounters {
    /// The count for one kind.
    pub fn get(&self, kind: ExitKind) -> u64 {
        self.counts[kind as usize]
    }

    /// All exits counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Runs `vcpu` until `handler` stops it; returns why, with `counters` updated for every exit.
pub fn run_until_stopped(
    vcpu: &mut impl ArchVcpu,
    handler: &mut impl ExitHandler,
    counters: &mut ExitCounters,
) -> StopReason {
    loop {
        let exit = vcpu.run();
        counters.counts[ExitKind::of(&exit) as usize] += 1;
        match handler.handle(&exit) {
            Action::Resume(completion) => vcpu.complete(completion),
            Action::ReturnFromUpcall => vcpu.return_from_upcall(),
            Action::Stop(reason) => return reason,
        }
        if let Some(d) = handler.next_upcall() {
            if !vcpu.deliver_upcall(d) {
                handler.undelivered(d);
            }
        }
        if let Some(v) = handler.next_vector() {
            if vcpu.inject_interrupt(v) {
                handler.vector_injected(v);
            }
        }
        if let Some(lines) = handler.irq_lines() {
            vcpu.set_irq_lines(lines);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{AccessSize, ShutdownKind};
    use alloc::vec::Vec;

    // What a mock leaves out of a seam it must implement in full: one line each.
    macro_rules! no_upcalls {
        () => {
            fn deliver_upcall(&mut self, _: Delivery) -> bool {
                false
            }
            fn return_from_upcall(&mut self) {}
        };
    }
    macro_rules! no_vectors {
        () => {
            fn inject_interrupt(&mut self, _: u8) -> bool {
                false
            }
        };
    }
    macro_rules! no_lines {
        () => {
            fn set_irq_lines(&mut self, _: u32) {}
        };
    }
    macro_rules! no_upcalls_pending {
        () => {
            fn next_upcall(&mut self) -> Option<Delivery> {
                None
            }
            fn undelivered(&mut self, _: Delivery) {}
        };
    }
    macro_rules! no_vectors_pending {
        () => {
            fn next_vector(&mut self) -> Option<u8> {
                None
            }
            fn vector_injected(&mut self, _: u8) {}
        };
    }
    macro_rules! no_lines_driven {
        () => {
            fn irq_lines(&mut self) -> Option<u32> {
                None
            }
        };
    }

    /// A guest that replays a script of exits and records completions.
    struct Scripted {
        exits: Vec<VmExit>,
        completions: Vec<Completion>,
    }

    impl ArchVcpu for Scripted {
        fn run(&mut self) -> VmExit {
            self.exits.remove(0)
        }
        fn complete(&mut self, completion: Completion) {
            self.completions.push(completion);
        }
        no_upcalls!();
        no_vectors!();
        no_lines!();
    }

    struct Policy;

    impl ExitHandler for Policy {
        fn handle(&mut self, exit: &VmExit) -> Action {
            match *exit {
                VmExit::MmioRead { gpa, .. } => Action::Resume(Completion::Value(gpa + 1)),
                VmExit::Halt => Action::Resume(Completion::Skip),
                VmExit::Shutdown {
                    kind: ShutdownKind::TripleFault,
                } => Action::Stop(StopReason::TripleFault),
                VmExit::ForbiddenInstruction { pc, .. } => Action::Stop(StopReason::Violation {
                    what: "forbidden instruction",
                    addr: pc,
                }),
                _ => Action::Resume(Completion::Retry),
            }
        }
        no_upcalls_pending!();
        no_vectors_pending!();
        no_lines_driven!();
    }

    #[test]
    fn loop_completes_each_exit_and_stops_where_the_handler_says() {
        let mut vcpu = Scripted {
            exits: alloc::vec![
                VmExit::MmioRead {
                    gpa: 0x10,
                    size: AccessSize::Word
                },
                VmExit::Halt,
                VmExit::ExternalInterrupt { vector: 32 },
                VmExit::ForbiddenInstruction { pc: 0x4000, raw: 0 },
                VmExit::Halt,
            ],
            completions: Vec::new(),
        };
        let mut counters = ExitCounters::default();
        let why = run_until_stopped(&mut vcpu, &mut Policy, &mut counters);
        assert_eq!(
            why,
            StopReason::Violation {
                what: "forbidden instruction",
                addr: 0x4000
            }
        );
        assert_eq!(
            vcpu.completions,
            [Completion::Value(0x11), Completion::Skip, Completion::Retry]
        );
        assert_eq!(vcpu.exits.len(), 1, "nothing runs after a stop");
        assert_eq!(counters.get(ExitKind::Mmio), 1);
        assert_eq!(counters.get(ExitKind::Forbidden), 1);
        assert_eq!(counters.total(), 4);
    }

    /// A vCPU that takes upcalls: records deliveries and returns.
    #[derive(Default)]
    struct Upcalls {
        left: u32,
        delivered: Vec<Delivery>,
        returns: u32,
    }

    impl ArchVcpu for Upcalls {
        fn run(&mut self) -> VmExit {
            self.left -= 1;
            if self.left == 0 {
                VmExit::Halt
            } else {
                VmExit::ExternalInterrupt { vector: 0 }
            }
        }
        fn complete(&mut self, _: Completion) {}
        fn deliver_upcall(&mut self, d: Delivery) -> bool {
            self.delivered.push(d);
            true
        }
        fn return_from_upcall(&mut self) {
            self.returns += 1;
        }
        no_vectors!();
        no_lines!();
    }

    /// One timer pending; the second exit is the guest's return from its handler.
    struct OneTimer {
        pending: bool,
        exits: u32,
    }

    impl ExitHandler for OneTimer {
        fn handle(&mut self, exit: &VmExit) -> Action {
            self.exits += 1;
            match (exit, self.exits) {
                (VmExit::Halt, _) => Action::Stop(StopReason::PowerOff { code: 0 }),
                (_, 2) => Action::ReturnFromUpcall,
                _ => Action::Resume(Completion::Retry),
            }
        }
        fn next_upcall(&mut self) -> Option<Delivery> {
            core::mem::take(&mut self.pending).then_some(Delivery {
                upcall: crate::upcall::Upcall {
                    entry: 0x1000,
                    stack: 0x2000,
                },
                irq: crate::upcall::VirtualIrq::Timer,
                detail: 0,
            })
        }
        no_vectors_pending!();
        no_lines_driven!();
        fn undelivered(&mut self, _: Delivery) {}
    }

    #[test]
    fn upcalls_are_delivered_before_entry_and_returned_from() {
        let mut vcpu = Upcalls {
            left: 3,
            ..Default::default()
        };
        let mut h = OneTimer {
            pending: true,
            exits: 0,
        };
        let why = run_until_stopped(&mut vcpu, &mut h, &mut ExitCounters::default());
        assert_eq!(why, StopReason::PowerOff { code: 0 });
        assert_eq!(vcpu.delivered.len(), 1);
        assert_eq!(vcpu.returns, 1);
    }

    /// Takes an injected vector only on its second chance (the first entry has interrupts off).
    #[derive(Default)]
    struct Injectable {
        exits: u32,
        offered: Vec<u8>,
        taken: Vec<u8>,
    }

    impl ArchVcpu for Injectable {
        fn run(&mut self) -> VmExit {
            self.exits += 1;
            if self.exits == 4 {
                VmExit::Halt
            } else {
                VmExit::ExternalInterrupt { vector: 0 }
            }
        }
        fn complete(&mut self, _: Completion) {}
        fn inject_interrupt(&mut self, vector: u8) -> bool {
            self.offered.push(vector);
            let ok = self.offered.len() >= 2;
            if ok {
                self.taken.push(vector);
            }
            ok
        }
        no_upcalls!();
        no_lines!();
    }

    /// One vector requested until injected.
    struct OneVector {
        requested: Option<u8>,
        injected: Vec<u8>,
    }

    impl ExitHandler for OneVector {
        fn handle(&mut self, exit: &VmExit) -> Action {
            match exit {
                VmExit::Halt => Action::Stop(StopReason::PowerOff { code: 0 }),
                _ => Action::Resume(Completion::Retry),
            }
        }
        fn next_vector(&mut self) -> Option<u8> {
            self.requested
        }
        fn vector_injected(&mut self, v: u8) {
            self.requested = None;
            self.injected.push(v);
        }
        no_upcalls_pending!();
        no_lines_driven!();
    }

    #[test]
    fn a_vector_stays_requested_until_the_guest_can_take_it() {
        let mut vcpu = Injectable::default();
        let mut h = OneVector {
            requested: Some(0x30),
            injected: Vec::new(),
        };
        run_until_stopped(&mut vcpu, &mut h, &mut ExitCounters::default());
        assert_eq!(vcpu.offered, [0x30, 0x30]);
        assert_eq!(vcpu.taken, [0x30]);
        assert_eq!(h.injected, [0x30]);
    }

    /// Records the line levels it is given before each entry.
    #[derive(Default)]
    struct Lines {
        exits: u32,
        set: Vec<u32>,
    }

    impl ArchVcpu for Lines {
        fn run(&mut self) -> VmExit {
            self.exits += 1;
            if self.exits == 3 {
                VmExit::Halt
            } else {
                VmExit::ExternalInterrupt { vector: 0 }
            }
        }
        fn complete(&mut self, _: Completion) {}
        fn set_irq_lines(&mut self, lines: u32) {
            self.set.push(lines);
        }
        no_upcalls!();
        no_vectors!();
    }

    /// The IPI line goes up after the first exit and down after the second.
    struct IpiLine(u32);

    impl ExitHandler for IpiLine {
        fn handle(&mut self, exit: &VmExit) -> Action {
            self.0 += 1;
            match exit {
                VmExit::Halt => Action::Stop(StopReason::PowerOff { code: 0 }),
                _ => Action::Resume(Completion::Retry),
            }
        }
        fn irq_lines(&mut self) -> Option<u32> {
            Some(if self.0 == 1 { 1 << 12 } else { 0 })
        }
        no_upcalls_pending!();
        no_vectors_pending!();
    }

    #[test]
    fn line_levels_are_handed_to_the_vcpu_before_every_entry_after_an_exit() {
        let mut vcpu = Lines::default();
        run_until_stopped(&mut vcpu, &mut IpiLine(0), &mut ExitCounters::default());
        assert_eq!(vcpu.set, [1 << 12, 0], "not after the stop");
    }

    #[test]
    fn every_exit_has_a_distinct_counter_slot() {
        assert_eq!(ExitKind::Unknown as usize, ExitKind::COUNT - 1);
        assert_eq!(ExitKind::of(&VmExit::CpuCfg { index: 2 }), ExitKind::CpuId);
        assert_eq!(
            ExitKind::of(&VmExit::CsrWrite { csr: 1, value: 0 }),
            ExitKind::Csr
        );
    }
}
