//! The exit handler every partition's vCPU runs (`vcpu::ExitHandler`), whatever the backend:
//! requests from other CPUs first (a posted flush, a stop), then the exit itself — hypercalls to
//! `hypercall`, device accesses to the partition's buses, stage-2 faults to `mmu`'s fast fix
//! (dirty and young tracking), interrupts to the vCPU's virtual timer (`vintr`) and, for a
//! device line's vector, to the vCPU the line is routed to (`device_irq`), and anything the
//! partition may not do to a stop with a reason. Before each entry it hands the run loop the
//! virtual interrupt to deliver, if any. Nothing a guest does here can stop another partition or
//! the hypervisor. The exits only one architecture has (MSRs and ACPI ports; IOCSR, EIOINTC and
//! the power block) are answered in `x86` and `loongarch`.

#[cfg(feature = "loongarch")]
mod loongarch;
#[cfg(feature = "x86")]
mod x86;

use crate::arch::{PartitionArch, VirtualUartAt};
#[cfg(feature = "x86")]
use crate::devices::CmosClock;
use crate::devices::VirtualUart;
use crate::vintr::VirtualInterrupts;
use crate::{hypercall, lapic, Partition, Partitions};
use alloc::boxed::Box;
use core::sync::atomic::Ordering;
use mmu::{FastFix, Gpa};
use vcpu::{
    Access, Action, BusError, Completion, Delivery, ExitHandler, ExitKind, IoBus, ShutdownKind,
    StopReason, VmExit,
};

/// The handler of one vCPU of one partition on one CPU.
pub struct Handler<A: PartitionArch> {
    partitions: &'static Partitions<A>,
    partition: &'static Partition<A>,
    cpu: usize,
    /// The vCPU's index in its partition.
    index: u32,
    mmio: IoBus,
    ports: IoBus,
    irqs: VirtualInterrupts<A>,
    #[cfg(feature = "x86")]
    msrs: x86::Msrs,
    ports_seen: UnownedPorts,
}

/// A Linux partition's accesses to ports it does not own: a PC operating system probes for
/// devices it may not have (PIC, PIT, CMOS, PCI configuration, legacy UARTs), and on a PC an
/// absent device reads as all-ones and ignores writes. So for such a partition, and only for it,
/// that is what an unowned port does: nothing reaches hardware, the access is counted, and the
/// first access to each of a few ports is logged. The test guests keep the strict rule (an
/// unowned port stops the partition), which the hostile guest's attack checks.
#[derive(Default)]
struct UnownedPorts {
    logged: [u16; 16],
    distinct: usize,
    reads: u64,
    writes: u64,
}

impl UnownedPorts {
    fn note<A: PartitionArch>(&mut self, p: &Partition<A>, index: u32, port: u16, write: bool) {
        if write {
            self.writes += 1;
        } else {
            self.reads += 1;
        }
        if !self.logged[..self.distinct].contains(&port) && self.distinct < self.logged.len() {
            self.logged[self.distinct] = port;
            self.distinct += 1;
            let what = if write { "write to" } else { "read of" };
            say!(
                A,
                "partition {}: vCPU {index}: {what} unowned port {port:#x}: absent device",
                p.name()
            );
        }
    }
}

/// What a read of an absent device's port returns in a Linux partition: all ones, as on a PC
/// bus, except the PIT's counters (0x40-0x42), which read 0. Linux's fast TSC calibration polls
/// the PIT channel 2 counter until its high byte leaves 0xff, up to 50,000 times (measured:
/// 120,000 port exits, a third of the Linux partition's exits during boot); a counter that
/// reads 0 ends the loop at its first read, and Linux takes the TSC rate from
/// `tsc_early_khz` as it would after a failed calibration.
fn absent_port_value(port: u16, size: vcpu::AccessSize) -> u64 {
    if (0x40..=0x42).contains(&port) {
        0
    } else {
        size.mask()
    }
}

fn violation(what: &'static str, addr: u64) -> Action {
    Action::Stop(StopReason::Violation { what, addr })
}

/// A CSR or IOCSR access outside the partition's IPI block: its reason names the IOCSR address
/// for an IOCSR access (`ipi_mailbox::exit_word`), the CSR number otherwise.
fn csr_violation(csr: u32) -> Action {
    match vcpu::ipi_mailbox::split_exit_word(csr) {
        Some((addr, _)) => violation("IOCSR access outside its devices at", addr),
        None => violation("CSR access", u64::from(csr)),
    }
}

impl<A: PartitionArch> Handler<A> {
    pub fn new(
        partitions: &'static Partitions<A>,
        partition: &'static Partition<A>,
        cpu: usize,
        index: u32,
    ) -> Self {
        let (mut mmio, mut ports) = (IoBus::new(), IoBus::new());
        if partition.config.console == board_config::PartitionConsole::Virtual {
            let uart = Box::new(VirtualUart::new(partition, cpu));
            // A fresh bus cannot refuse its first device.
            let _ = match A::VIRTUAL_UART {
                VirtualUartAt::Mmio(base) => mmio.register(base, 8, "virtual uart", uart),
                VirtualUartAt::Port(base) => {
                    ports.register(u64::from(base), 8, "virtual uart", uart)
                }
            };
        }
        super::irqchip_view::register(&mut mmio, partition, cpu);
        // A PC operating system reads the CMOS clock whatever its firmware tables say.
        #[cfg(feature = "x86")]
        if matches!(partition.config.image, board_config::Image::Linux(_)) {
            let port = u64::from(CmosClock::PORT);
            if let Err(e) = ports.register(port, 2, "cmos rtc", Box::new(CmosClock::new())) {
                log::warn!("partition {}: no CMOS clock: {e}", partition.name());
            }
        }
        Self {
            partitions,
            partition,
            cpu,
            index,
            mmio,
            ports,
            irqs: VirtualInterrupts::new(partition, index),
            #[cfg(feature = "x86")]
            msrs: x86::Msrs::default(),
            ports_seen: UnownedPorts::default(),
        }
    }

    /// The vCPU's run is over: its timer stops.
    pub fn stop(&mut self) {
        self.irqs.stop();
        let u = &self.ports_seen;
        if u.reads + u.writes != 0 {
            say!(
                A,
                "partition {}: vCPU {}: unowned ports: {} reads (all-ones), {} writes (dropped)",
                self.partition.name(),
                self.index,
                u.reads,
                u.writes
            );
        }
        #[cfg(feature = "x86")]
        if self.msrs.refusals != 0 {
            say!(
                A,
                "partition {}: vCPU {}: {} MSR accesses refused with #GP",
                self.partition.name(),
                self.index,
                self.msrs.refusals
            );
        }
    }

    /// Whether an unowned port is an absent device (a Linux partition, [`UnownedPorts`]) rather
    /// than a violation.
    fn absent_devices(&self) -> bool {
        matches!(self.partition.config.image, board_config::Image::Linux(_))
    }

    fn bus_error(e: BusError, write: bool) -> Action {
        match e {
            BusError::Device { addr, .. } => violation("device refused the access at", addr),
            BusError::Unclaimed { addr, .. } if write => {
                violation("write to unowned address", addr)
            }
            BusError::Unclaimed { addr, .. } => violation("read of unowned address", addr),
            _ => violation("bad device access", 0),
        }
    }

    /// As [`Self::bus_error`] for the x86 port space, so the reason names a port, not memory.
    fn port_error(e: BusError, write: bool) -> Action {
        match e {
            BusError::Device { addr, .. } => violation("device refused the access at port", addr),
            BusError::Unclaimed { addr, .. } if write => violation("write to unowned port", addr),
            BusError::Unclaimed { addr, .. } => violation("read of unowned port", addr),
            _ => violation("bad port access", 0),
        }
    }

    /// The guest halted (x86 `hlt`): with nothing to deliver, the CPU waits for the vCPU's
    /// next event (`PartitionArch::idle`), then whatever came is handled as an interrupt exit
    /// would handle it. The guest resumes after its halt either way, as a halt ends on an
    /// interrupt.
    fn halted(&mut self) {
        if self.irqs.anything_pending() {
            return;
        }
        let (p, cpu) = (self.partition, self.cpu);
        A::idle(self.irqs.deadline(), p.kick_flag(cpu), &mut |vector| {
            super::device_irq::deliver(p, cpu, vector)
        });
        self.partitions.poll_input(cpu);
        self.irqs.on_interrupt();
    }

    /// A fault on guest memory: the fast fix makes the page young (and dirty on a write) if the
    /// region allows the access; otherwise the access was not the partition's to make.
    fn stage_two_fault(&mut self, gpa: u64, access: Access) -> Action {
        let p = self.partition;
        let mmu_access = match access {
            Access::Read => mmu::Access::Read,
            Access::Write => mmu::Access::Write,
            Access::Execute => mmu::Access::Exec,
        };
        match p.table().fast_fix(Gpa(gpa), mmu_access) {
            FastFix::Fixed { flush, .. } | FastFix::Spurious { flush } => {
                // Only this CPU cached the entry that faulted.
                A::flush_local(p.id, p.table().root(), flush);
                Action::Resume(Completion::Retry)
            }
            FastFix::Retry => Action::Resume(Completion::Retry),
            FastFix::Slow => {
                let owned = p.table().translate(Gpa(gpa)).is_some();
                let what = match (owned, access) {
                    (true, Access::Read) => "read not permitted at",
                    (true, Access::Write) => "write not permitted at",
                    (true, Access::Execute) => "execute not permitted at",
                    (false, Access::Read) => "read of unowned address",
                    (false, Access::Write) => "write to unowned address",
                    (false, Access::Execute) => "fetch from unowned address",
                };
                violation(what, gpa)
            }
        }
    }
}

impl<A: PartitionArch> ExitHandler for Handler<A> {
    fn handle(&mut self, exit: &VmExit) -> Action {
        let p = self.partition;
        p.count_exit(self.index as usize, ExitKind::of(exit));
        // Cleared before anything is looked at: a request posted from now on kicks again.
        p.take_kick(self.cpu);
        p.service_flushes(self.cpu);
        if p.stop_requested.load(Ordering::SeqCst) {
            return Action::Stop(StopReason::Stopped);
        }
        if p.vcpus[self.index as usize].init_pending() {
            return Action::Stop(StopReason::Init);
        }
        match *exit {
            VmExit::Hypercall { nr, args, .. } => {
                hypercall::handle(self.partitions, p, self.index, &mut self.irqs, nr, args)
            }
            #[cfg(feature = "loongarch")]
            VmExit::MmioRead { gpa, size } | VmExit::MmioWrite { gpa, size, .. }
                if self.linux_power_block(gpa) =>
            {
                self.linux_power(exit, gpa, size)
            }
            VmExit::MmioRead { gpa, size } => match self.mmio.read(gpa, size) {
                Ok(v) => Action::Resume(Completion::Value(v)),
                Err(e) => Self::bus_error(e, false),
            },
            VmExit::MmioWrite { gpa, size, value } => match self.mmio.write(gpa, size, value) {
                Ok(()) => Action::Resume(Completion::Skip),
                Err(e) => Self::bus_error(e, true),
            },
            VmExit::PortIn { port, size } => match self.ports.read(u64::from(port), size) {
                Ok(v) => Action::Resume(Completion::Value(v)),
                Err(BusError::Unclaimed { .. }) if self.absent_devices() => {
                    self.ports_seen.note(p, self.index, port, false);
                    Action::Resume(Completion::Value(absent_port_value(port, size)))
                }
                Err(e) => Self::port_error(e, false),
            },
            VmExit::PortOut { port, size, value } => {
                #[cfg(feature = "x86")]
                if let Some(action) = self.linux_power_port(port, value) {
                    return action;
                }
                match self.ports.write(u64::from(port), size, u64::from(value)) {
                    Ok(()) => Action::Resume(Completion::Skip),
                    Err(BusError::Unclaimed { .. }) if self.absent_devices() => {
                        self.ports_seen.note(p, self.index, port, true);
                        Action::Resume(Completion::Skip)
                    }
                    Err(e) => Self::port_error(e, true),
                }
            }
            VmExit::StageTwoFault { gpa, access } => self.stage_two_fault(gpa, access),
            VmExit::ExternalInterrupt { vector } => {
                self.partitions.poll_input(self.cpu);
                super::device_irq::deliver(p, self.cpu, vector);
                self.irqs.on_interrupt();
                Action::Resume(Completion::Retry)
            }
            VmExit::Halt => {
                self.halted();
                Action::Resume(Completion::Skip)
            }
            VmExit::CpuId { leaf, subleaf } => Action::Resume(Completion::CpuId(
                lapic::with_apic_id(leaf, A::cpuid(leaf, subleaf), self.index),
            )),
            VmExit::CpuCfg { index } => {
                Action::Resume(Completion::Value(u64::from(A::cpuid(index, 0)[0])))
            }
            // The MSRs a partition owns never exit (the backends' MSR maps); the rest have a
            // defined virtual answer, are its virtual APIC's (`lapic`), or raise #GP in the
            // guest, as on a CPU without them; no write reaches a hardware MSR.
            VmExit::MsrRead { msr } => self.msr_read(msr),
            VmExit::MsrWrite { msr, value } => self.msr_write(msr, value),
            // LoongArch IOCSR accesses arrive as CSR exits; the IPI block is the partition's
            // view (`mailbox`), everything else is the hypervisor's.
            VmExit::CsrRead { csr } => match self
                .irqs
                .iocsr_read(csr)
                .or_else(|| self.eiointc_read(csr))
                .or_else(|| self.iocsr_identity(csr))
            {
                Some(v) => Action::Resume(Completion::Value(v)),
                None => csr_violation(csr),
            },
            VmExit::CsrWrite { csr, value } => match self
                .irqs
                .iocsr_write(csr, value)
                .or_else(|| self.eiointc_write(csr, value))
            {
                Some(()) => Action::Resume(Completion::Skip),
                None => csr_violation(csr),
            },
            VmExit::Shutdown {
                kind: ShutdownKind::PowerOff,
            } => Action::Stop(StopReason::PowerOff { code: 0 }),
            VmExit::Shutdown {
                kind: ShutdownKind::TripleFault,
            } => Action::Stop(StopReason::TripleFault),
            VmExit::Shutdown {
                kind: ShutdownKind::Reboot,
            } => Action::Stop(StopReason::Reset),
            VmExit::ForbiddenInstruction { pc, .. } => violation("privileged instruction at", pc),
            VmExit::InvalidState { raw } => Action::Stop(StopReason::InvalidState { raw }),
            VmExit::Unknown { raw } => violation("unexpected exception, cause", raw),
        }
    }

    fn next_upcall(&mut self) -> Option<Delivery> {
        self.irqs.next()
    }

    fn undelivered(&mut self, d: Delivery) {
        self.irqs.undelivered(d);
    }

    fn next_vector(&mut self) -> Option<u8> {
        self.irqs.next_vector()
    }

    fn vector_injected(&mut self, vector: u8) {
        self.irqs.vector_injected(vector);
    }

    fn irq_lines(&mut self) -> Option<u32> {
        Some(self.irqs.iocsr_lines() | self.device_lines())
    }
}
