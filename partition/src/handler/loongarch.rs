//! The exits only LoongArch has, for the exit handler: a Linux partition's power register block
//! (`arch_loongarch::linux::power`), its EIOINTC view reached by IOCSR, and the CPU's identity
//! words it reads by IOCSR. LoongArch has no MSRs: an MSR exit is a violation.

use super::{violation, Handler};
use crate::arch::PartitionArch;
use vcpu::{Action, Completion, StopReason, VmExit};

impl<A: PartitionArch> Handler<A> {
    /// LoongArch: whether `gpa` is in a Linux partition's power register block.
    pub(super) fn linux_power_block(&self, gpa: u64) -> bool {
        use arch_loongarch::linux::{power, POWER};
        self.absent_devices() && (POWER..POWER + power::SIZE).contains(&gpa)
    }

    /// LoongArch: an access to a Linux partition's power register block
    /// (`arch_loongarch::linux::power`): the power-off value ends the run with code 0, the reset
    /// value restarts it (`run`); reads are 0 and other writes are dropped.
    pub(super) fn linux_power(&self, exit: &VmExit, gpa: u64, size: vcpu::AccessSize) -> Action {
        use arch_loongarch::linux::{power, POWER};
        let VmExit::MmioWrite { value, .. } = *exit else {
            return Action::Resume(Completion::Value(0));
        };
        match power::write(gpa - POWER, size.bytes() as u32, value) {
            power::PowerRequest::PowerOff => Action::Stop(StopReason::PowerOff { code: 0 }),
            power::PowerRequest::Reset => Action::Stop(StopReason::Reset),
            power::PowerRequest::None => Action::Resume(Completion::Skip),
        }
    }

    /// LoongArch: whether the partition has an EIOINTC view: a Linux partition, and any partition
    /// owning device lines (they arrive through it). The other test guests have none: IOCSR
    /// outside their IPI block stays refused to them.
    pub(super) fn has_eiointc(&self) -> bool {
        self.absent_devices() || !self.partition.config.irqs.is_empty()
    }

    /// LoongArch: the hardware lines the partition's EIOINTC view raises on this vCPU (ESTAT.IS
    /// layout: HWIn is bit n + 2); none without the view.
    pub(super) fn device_lines(&self) -> u32 {
        if self.has_eiointc() {
            u32::from(self.partition.eiointc_lines(self.index)) << 2
        } else {
            0
        }
    }

    /// LoongArch: an IOCSR read of the partition's EIOINTC view.
    pub(super) fn eiointc_read(&self, csr: u32) -> Option<u64> {
        let (addr, size) = vcpu::ipi_mailbox::split_exit_word(csr)?;
        if !self.has_eiointc() {
            return None;
        }
        self.partition.eiointc_read(self.index, addr, size)
    }

    /// LoongArch: an IOCSR write to the partition's EIOINTC view.
    pub(super) fn eiointc_write(&self, csr: u32, value: u64) -> Option<()> {
        let (addr, size) = vcpu::ipi_mailbox::split_exit_word(csr)?;
        if !self.has_eiointc() {
            return None;
        }
        self.partition.eiointc_write(self.index, addr, size, value)
    }

    /// LoongArch: a guest IOCSR read of the CPU's identity words (`arch_loongarch::linux::
    /// iocsr_view`: the features, filtered, and the vendor and CPU name); `None` for every other
    /// register.
    pub(super) fn iocsr_identity(&self, csr: u32) -> Option<u64> {
        let (addr, size) = vcpu::ipi_mailbox::split_exit_word(csr)?;
        arch_loongarch::linux::iocsr_view::read(addr, size, A::iocsr_read64)
    }

    /// No other architecture has MSRs.
    pub(super) fn msr_read(&mut self, msr: u32) -> Action {
        violation("read of MSR", u64::from(msr))
    }

    pub(super) fn msr_write(&mut self, msr: u32, _value: u64) -> Action {
        violation("write to MSR", u64::from(msr))
    }
}
