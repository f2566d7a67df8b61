//! The x2APIC registers of a vCPU's virtual local APIC as x86 guests reach them: RDMSR/WRMSR
//! of IA32_APIC_BASE, IA32_TSC_DEADLINE and the x2APIC range, answered from the register model
//! (`vcpu::x2apic`) and acted on through the partition's own vCPUs. Only x86 has MSRs; the
//! delivery side every architecture shares is in `lapic`.
//!
//! What a partition can reach: destinations are APIC IDs, and a vCPU's APIC ID is its index in
//! its partition, so an IPI can only name the partition's own vCPUs; a destination beyond them
//! is refused with a console line, like the `SEND_IPI` hypercall. The timer counts at the
//! counter's rate (x86: the TSC), which CPUID leaf 0x4000_0010 reports to the guest; in
//! TSC-deadline mode IA32_TSC_DEADLINE (0x6e0) is compared with that same counter.
//! IA32_APIC_BASE reads as an enabled x2APIC at the architectural address (the boot vCPU marked
//! BSP); writing it stays a violation, since the real one is the hypervisor's.

use crate::arch::PartitionArch;
use crate::vintr::{ipi_to, no_such_vcpu, wake_for_start, TimerOwner, VirtualInterrupts};
use vcpu::slot::VcpuState;
use vcpu::x2apic::{self, Destination, Effect, ReadContext};

const IA32_APIC_BASE: u32 = 0x1b;
/// The TSC-deadline register of the local APIC's timer.
const IA32_TSC_DEADLINE: u32 = 0x6e0;
/// Base 0xfee00000, x2APIC mode (bit 10), enabled (bit 11).
const APIC_BASE_VALUE: u64 = 0xfee0_0000 | (1 << 10) | (1 << 11);
const APIC_BASE_BSP: u64 = 1 << 8;

impl<A: PartitionArch> VirtualInterrupts<A> {
    /// A guest RDMSR of its APIC: the value, or `None` if `msr` is no APIC register.
    pub fn apic_read(&self, msr: u32) -> Option<u64> {
        if msr == IA32_APIC_BASE {
            let bsp = if self.index == 0 { APIC_BASE_BSP } else { 0 };
            return Some(APIC_BASE_VALUE | bsp);
        }
        if msr == IA32_TSC_DEADLINE {
            return Some(self.apic.tsc_deadline());
        }
        if !x2apic::is_x2apic_msr(msr) {
            return None;
        }
        let ctx = ReadContext {
            irr: self.slot().vectors(),
            timer_left: self.apic_timer_left(),
        };
        self.apic.read(msr, &ctx).ok()
    }

    /// A guest WRMSR to its APIC: `None` if `msr` is no writable APIC register (the caller
    /// treats it like any other MSR); otherwise the write is done, or refused with a console line.
    pub fn apic_write(&mut self, msr: u32, value: u64) -> Option<()> {
        let effect = if msr == IA32_TSC_DEADLINE {
            self.apic.write_tsc_deadline(value, A::now())
        } else if x2apic::is_x2apic_msr(msr) {
            self.apic.write(msr, value).ok()?
        } else {
            return None;
        };
        match effect {
            Effect::None | Effect::Eoi { vector: None } => {}
            Effect::Eoi { vector: Some(v) } => super::device_irq::guest_eoi(self.partition, v),
            Effect::Timer { ticks, periodic } => {
                self.timer_for = TimerOwner::Apic;
                if ticks == 0 {
                    self.stop();
                } else {
                    self.arm(ticks, periodic);
                }
            }
            Effect::Ipi { to, vector } => self.apic_ipi(to, vector),
            Effect::Init { to } => self.apic_init(msr, to),
            Effect::Startup { to, vector } => self.apic_startup(to, vector),
            Effect::Refused(why) => self.refused(msr, "write", why),
        }
        Some(())
    }

    fn refused(&self, msr: u32, what: &str, why: &str) {
        say!(
            A,
            "partition {}: vCPU {}: x2APIC {what} (MSR {msr:#x}) refused: {why}",
            self.partition.name(),
            self.index
        );
    }

    /// The vCPUs `to` names (`Destination::targets`: only the partition's own), or `None`
    /// after refusing a destination outside the partition.
    fn targets(&self, to: Destination) -> Option<impl Iterator<Item = u32>> {
        match to.targets(self.index, self.partition.vcpus.len() as u32) {
            Ok(t) => Some(t),
            Err(i) => {
                no_such_vcpu(self.partition, "IPI", i);
                None
            }
        }
    }

    /// A fixed IPI: requests `vector` of every destination vCPU that runs, and kicks its CPU.
    fn apic_ipi(&mut self, to: Destination, vector: u8) {
        let Some(targets) = self.targets(to) else {
            return;
        };
        let me = self.index;
        let now = A::now();
        let p = self.partition;
        for i in targets {
            // A vCPU that is not running has no APIC to take it (it waits for its start).
            ipi_to(p, me, i, |t| {
                t.raise_vector_ipi(vector, me, now);
                true
            });
        }
    }

    /// The vCPUs an INIT or STARTUP goes to (never the sender), or `None` after refusing a
    /// destination outside the partition.
    fn start_targets(&self, to: Destination) -> Option<impl Iterator<Item = u32>> {
        let me = self.index;
        Some(self.targets(to)?.filter(move |&i| i != me))
    }

    /// INIT: a vCPU that has not started already waits for its STARTUP, which is what INIT
    /// leaves it doing; a running one leaves its guest at its next exit (its CPU is kicked), its
    /// state is reset, and it waits for a STARTUP, while the partition runs on. The boot vCPU
    /// cannot be INITed (the partition's run is tied to it), which is refused.
    fn apic_init(&self, msr: u32, to: Destination) {
        let Some(targets) = self.start_targets(to) else {
            return;
        };
        for i in targets {
            let slot = &self.partition.vcpus[i as usize];
            if i == 0 {
                self.refused(msr, "INIT", "the boot vCPU cannot be reset on its own");
            } else if slot.state() == VcpuState::Running {
                slot.request_init();
                self.partition.kick(slot.cpu);
            }
        }
    }

    /// STARTUP: a waiting vCPU starts in real mode at `vector << 12` on its own CPU; one that
    /// already started ignores it, as a processor outside wait-for-SIPI does (operating systems
    /// send STARTUP twice).
    fn apic_startup(&self, to: Destination, vector: u8) {
        let Some(targets) = self.start_targets(to) else {
            return;
        };
        for i in targets {
            let slot = &self.partition.vcpus[i as usize];
            let entry = u64::from(vector) << 12;
            if slot.request_startup(entry) {
                wake_for_start(self.partition, slot);
            } else {
                // Running: ignored, unless an INIT is still on its way to it.
                slot.defer_startup(entry);
            }
        }
    }

    /// Counter ticks left in the APIC timer's countdown.
    fn apic_timer_left(&self) -> u64 {
        match (self.timer_for, self.deadline) {
            (TimerOwner::Apic, Some(d)) => d.saturating_sub(A::now()),
            _ => 0,
        }
    }
}
