//! The exits only x86 has, for the exit handler: RDMSR/WRMSR (the policy of
//! `arch_x86::guest_msr`, the virtual x2APIC's registers, #GP for the rest, said once per MSR)
//! and a Linux partition's ACPI power ports. x86 has no IOCSR space and no EIOINTC, so those
//! questions have empty answers here.

use super::{violation, Handler};
use crate::arch::PartitionArch;
use crate::Partition;
use vcpu::{Action, Completion, StopReason};

/// The MSRs a vCPU's RDMSR/WRMSR exits reach and what was refused, for the log (x86 only: no
/// other architecture has MSRs).
#[derive(Default)]
pub(super) struct Msrs {
    model: arch_x86::guest_msr::GuestMsrs,
    /// The distinct MSRs refused so far (the first few, each logged once).
    refused: [u32; 16],
    distinct: usize,
    /// Every refused access.
    pub(super) refusals: u64,
}

impl Msrs {
    /// Counts a refused access and logs the first of each MSR.
    fn refuse<A: PartitionArch>(
        &mut self,
        p: &Partition<A>,
        index: u32,
        msr: u32,
        write: bool,
    ) -> Action {
        self.refusals += 1;
        let seen = self.refused[..self.distinct].contains(&msr);
        if !seen && self.distinct < self.refused.len() {
            self.refused[self.distinct] = msr;
            self.distinct += 1;
            let what = if write { "WRMSR to" } else { "RDMSR of" };
            say!(
                A,
                "partition {}: vCPU {index}: {what} {msr:#x} refused (#GP)",
                p.name()
            );
        }
        Action::Resume(Completion::GENERAL_PROTECTION)
    }
}

impl<A: PartitionArch> Handler<A> {
    /// A Linux partition's write to its ACPI sleep control or reset register (the ports its FADT
    /// names): SLP_EN with the S5 type powers it off with code 0, the reset value resets it (the
    /// run restarts it, `run`); any other value is no transition this platform has, and is
    /// dropped. `None` for every other port or partition.
    pub(super) fn linux_power_port(&self, port: u16, value: u32) -> Option<Action> {
        use arch_x86::acpi_sleep::{sleep_request, SleepRequest, RESET_PORT_OFFSET, RESET_VALUE};
        let sleep = board_config::LINUX_SLEEP_PORT;
        if !self.absent_devices() {
            return None;
        }
        let stop = |why| Some(Action::Stop(why));
        match port {
            p if p == sleep => match sleep_request(value as u8) {
                SleepRequest::PowerOff => stop(StopReason::PowerOff { code: 0 }),
                SleepRequest::None => Some(Action::Resume(Completion::Skip)),
            },
            p if p == sleep + RESET_PORT_OFFSET && value as u8 == RESET_VALUE => {
                stop(StopReason::Reset)
            }
            p if p == sleep + RESET_PORT_OFFSET => Some(Action::Resume(Completion::Skip)),
            _ => None,
        }
    }

    /// Elsewhere device lines arrive as vectors (the virtual APIC).
    pub(super) fn device_lines(&self) -> u32 {
        0
    }

    /// No IOCSR space elsewhere.
    pub(super) fn eiointc_read(&self, _csr: u32) -> Option<u64> {
        None
    }

    pub(super) fn eiointc_write(&self, _csr: u32, _value: u64) -> Option<()> {
        None
    }

    /// No IOCSR space elsewhere.
    pub(super) fn iocsr_identity(&self, _csr: u32) -> Option<u64> {
        None
    }

    /// A guest RDMSR: the policy's answer (`arch_x86::guest_msr`), the virtual APIC's, or #GP.
    pub(super) fn msr_read(&mut self, msr: u32) -> Action {
        use arch_x86::guest_msr::MsrAnswer;
        let value = match self.msrs.model.read(msr, A::now()) {
            MsrAnswer::Done(v) => Some(v),
            MsrAnswer::Apic => self.irqs.apic_read(msr),
            MsrAnswer::Refuse => None,
        };
        match value {
            Some(v) => Action::Resume(Completion::Value(v)),
            None => self.msrs.refuse(self.partition, self.index, msr, false),
        }
    }

    /// A guest WRMSR: taken by the policy or the virtual APIC, or #GP; never the hardware's.
    pub(super) fn msr_write(&mut self, msr: u32, value: u64) -> Action {
        use arch_x86::guest_msr::MsrAnswer;
        let done = match self.msrs.model.write(msr, value) {
            MsrAnswer::Done(_) => Some(()),
            // Rewriting IA32_APIC_BASE as it reads changes nothing; moving or disabling the APIC
            // is not something this partition's APIC can do, and it stops the partition (the
            // test guests' hostile attack).
            MsrAnswer::Apic if msr == arch_x86::guest_msr::IA32_APIC_BASE => {
                if self.irqs.apic_read(msr) != Some(value) {
                    return violation("write to MSR", u64::from(msr));
                }
                Some(())
            }
            MsrAnswer::Apic => self.irqs.apic_write(msr, value),
            MsrAnswer::Refuse => None,
        };
        match done {
            Some(()) => Action::Resume(Completion::Skip),
            None => self.msrs.refuse(self.partition, self.index, msr, true),
        }
    }
}
