//! Virtual interrupts of one vCPU, arch-neutral: its timer (`TIMER_SET`: a deadline in the arch's
//! counter, kept here and armed on the CPU's own timer through [`PartitionArch::arm_timer`]), the
//! IPIs other vCPUs of its partition send it (`SEND_IPI`), the device lines routed to it
//! (`IRQ_ROUTE`), and their delivery as upcalls (`vcpu::upcall`: `UPCALL_SET`, `UPCALL_RETURN`).
//!
//! Every cross-vCPU request names vCPUs by their index inside the caller's partition, so a
//! partition cannot even name a CPU outside itself; an index it does not have, or a device line
//! the board file did not give it, is refused with an error code and a console line that says why.
//!
//! Timing: a timer is due when [`PartitionArch::now`] reaches its deadline, checked at every
//! interrupt exit (which also re-arms the arch timer for a deadline not yet reached), so the arch
//! timer only has to make the guest exit in time. Delivery latencies
//! (deadline → handler entry, `SEND_IPI` → handler entry) are recorded per vCPU in counter ticks.

use crate::arch::PartitionArch;
use crate::Partition;
use core::sync::atomic::Ordering;
use vcpu::slot::{VcpuSlot, VcpuState};
use vcpu::x2apic::X2Apic;
use vcpu::{Delivery, HypercallError, Upcall, VirtualIrq};

type Result = core::result::Result<u64, HypercallError>;

/// The interrupt state of the vCPU a handler runs; lives on its CPU.
pub struct VirtualInterrupts<A: PartitionArch> {
    pub(super) partition: &'static Partition<A>,
    pub(super) index: u32,
    /// The vCPU's x2APIC (x86 guests that program interrupts the hardware way, `lapic`).
    pub(super) apic: X2Apic,
    /// Who the timer fires for: the upcall ABI's `TIMER_SET`, or the x2APIC timer.
    pub(super) timer_for: TimerOwner,
    upcall: Option<Upcall>,
    in_upcall: bool,
    /// The timer's next deadline and period, in counter ticks (period 0: one-shot).
    pub(super) deadline: Option<u64>,
    pub(super) period: u64,
    /// The deadline that raised the pending timer interrupt, for its latency.
    pub(super) fired: u64,
    /// A periodic tick was raised and the guest has not taken it yet (upcalls: until its
    /// handler returns; x2APIC: until the vector is injected). Meanwhile the CPU's timer is not
    /// armed: the next tick could only merge into the pending one, and a period shorter than an
    /// exit would otherwise make the guest exit again before it ran a single instruction (seen
    /// in Bochs, where 10 µs is 40 instructions: the vCPU never reached its handler's return).
    pub(super) held: bool,
}

/// Which interface armed a vCPU's one timer (the last one to program it wins).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerOwner {
    Upcall,
    Apic,
}

impl<A: PartitionArch> VirtualInterrupts<A> {
    pub fn new(partition: &'static Partition<A>, index: u32) -> Self {
        Self {
            partition,
            index,
            apic: X2Apic::new(index),
            timer_for: TimerOwner::Upcall,
            upcall: None,
            in_upcall: false,
            deadline: None,
            period: 0,
            fired: 0,
            held: false,
        }
    }

    pub(super) fn slot(&self) -> &'static VcpuSlot {
        &self.partition.vcpus[self.index as usize]
    }

    /// `TIMER_SET`.
    pub fn timer_set(&mut self, ns: u64, periodic: bool) -> Result {
        let hz = A::counter_hz();
        if hz == 0 {
            return Err(HypercallError::Unknown);
        }
        if ns == 0 {
            self.stop();
            return Ok(0);
        }
        let ticks = ((u128::from(ns) * u128::from(hz) / 1_000_000_000) as u64).max(1);
        self.timer_for = TimerOwner::Upcall;
        self.arm(ticks, periodic);
        Ok(0)
    }

    /// Starts the timer: due in `ticks` counter ticks, then every `ticks` if periodic.
    /// No period is shorter than `TIMER_MIN_NS` (the x2APIC timer's count is clamped to it, as
    /// `TIMER_SET` refuses anything shorter), so a guest cannot make its timer a storm.
    pub(super) fn arm(&mut self, ticks: u64, periodic: bool) {
        let floor =
            u128::from(vcpu::hypercall::TIMER_MIN_NS) * u128::from(A::counter_hz()) / 1_000_000_000;
        let ticks = ticks.max(floor as u64).max(1);
        let deadline = A::now().wrapping_add(ticks);
        self.deadline = Some(deadline);
        self.period = if periodic { ticks } else { 0 };
        self.held = false;
        A::arm_timer(self.deadline);
    }

    /// The guest took the tick that held the timer: the next one keeps its place in the period,
    /// but comes no sooner than half a period from now (a guest whose handler is slower than
    /// its period gets ticks back to back, each one taken, rather than exits that deliver
    /// nothing), and the CPU's timer is armed for it again.
    pub(super) fn release_timer(&mut self) {
        if !core::mem::replace(&mut self.held, false) {
            return;
        }
        let earliest = A::now().wrapping_add(self.period / 2);
        self.deadline = self.deadline.map(|d| d.max(earliest));
        A::arm_timer(self.deadline);
    }

    /// After every interrupt exit: a due timer becomes pending (and a periodic one re-arms,
    /// skipping ticks it can no longer make rather than bunching them).
    pub fn on_interrupt(&mut self) {
        if self.held {
            return;
        }
        let Some(d) = self.deadline else { return };
        let now = A::now();
        if now < d {
            // This exit may have acknowledged a timer interrupt that came a little early (the
            // emulated countdown and the counter are rounded apart): arm again so the deadline
            // cannot pass unseen.
            A::arm_timer(Some(d));
            return;
        }
        self.fired = d;
        let raised = match self.timer_for {
            TimerOwner::Upcall => {
                self.slot().raise(VirtualIrq::Timer);
                true
            }
            // A masked (or disabled) LVT entry loses the tick, as on hardware.
            TimerOwner::Apic => match self.apic.timer_vector() {
                Some(v) => {
                    self.slot().raise_vector(v);
                    true
                }
                None => false,
            },
        };
        self.deadline = match self.period {
            0 => None,
            p if d.wrapping_add(p) > now => Some(d.wrapping_add(p)),
            p => Some(now.wrapping_add(p)),
        };
        // Periodic: held until the guest takes this tick (`release_timer`).
        self.held = raised && self.deadline.is_some();
        A::arm_timer(if self.held { None } else { self.deadline });
    }

    /// Stops the timer (also when the vCPU's run ended: it must not fire into the next guest on
    /// this CPU).
    pub fn stop(&mut self) {
        self.deadline = None;
        self.held = false;
        A::arm_timer(None);
    }

    /// `UPCALL_SET`.
    pub fn upcall_set(&mut self, entry: u64, stack: u64) -> Result {
        if entry == 0 {
            self.upcall = None;
            return Ok(0);
        }
        // Checked in the partition's table: the entry is readable, executable memory and the
        // stack's first slot is memory (not a device window).
        let table = self.partition.table();
        let code = table
            .translate(mmu::Gpa(entry))
            .is_some_and(|t| t.attrs.perms.contains(mmu::Perms::R | mmu::Perms::X));
        let stack_ok = table
            .translate(mmu::Gpa(stack.wrapping_sub(8)))
            .is_some_and(|t| t.attrs.mem == mmu::MemType::WriteBack);
        if !code || !stack_ok {
            return Err(HypercallError::BadAddress);
        }
        self.upcall = Some(Upcall { entry, stack });
        Ok(0)
    }

    /// `UPCALL_RETURN`: whether there is an upcall to return from.
    pub fn upcall_return(&mut self) -> bool {
        let was = core::mem::replace(&mut self.in_upcall, false);
        if was && self.timer_for == TimerOwner::Upcall {
            self.release_timer();
        }
        was
    }

    /// The interrupt to deliver before the next entry, if the vCPU takes upcalls now.
    /// When the vCPU's timer next needs the hypervisor (`None`: not armed, or a periodic tick is
    /// held until the guest takes the last one).
    pub fn deadline(&self) -> Option<u64> {
        if self.held {
            None
        } else {
            self.deadline
        }
    }

    /// Whether an interrupt waits for this vCPU: an x2APIC vector it can take, or an upcall.
    pub fn anything_pending(&self) -> bool {
        self.next_vector().is_some() || (self.upcall.is_some() && self.slot().has_pending())
    }

    /// Whether the guest registered an upcall handler (`UPCALL_SET`) that still takes upcalls.
    pub fn has_upcall_handler(&self) -> bool {
        self.upcall.is_some()
    }

    pub fn next(&mut self) -> Option<Delivery> {
        if self.in_upcall {
            return None;
        }
        let upcall = self.upcall?;
        let slot = self.slot();
        let irq = slot.take_pending()?;
        let now = A::now();
        let detail = match irq {
            VirtualIrq::Timer => {
                slot.timer_irqs.fetch_add(1, Ordering::Relaxed);
                slot.timer_latency.record(now.wrapping_sub(self.fired));
                0
            }
            VirtualIrq::Ipi => {
                let (from, at) = slot.ipi_source();
                slot.ipi_irqs.fetch_add(1, Ordering::Relaxed);
                slot.ipi_latency.record(now.wrapping_sub(at));
                from
            }
            VirtualIrq::Device(_) => {
                slot.device_irqs.fetch_add(1, Ordering::Relaxed);
                slot.device_latency
                    .record(now.wrapping_sub(slot.device_seen_at()));
                0
            }
        };
        slot.upcalls.fetch_add(1, Ordering::Relaxed);
        self.in_upcall = true;
        Some(Delivery {
            upcall,
            irq,
            detail,
        })
    }

    /// The backend cannot deliver upcalls: keep the interrupt pending and stop trying (the guest
    /// sees no handler calls, as if it had never registered one).
    pub fn undelivered(&mut self, d: Delivery) {
        self.in_upcall = false;
        self.upcall = None;
        let slot = self.slot();
        slot.raise(d.irq);
        slot.upcalls.fetch_sub(1, Ordering::Relaxed);
        say!(
            A,
            "partition {}: vCPU {}: this backend cannot deliver upcalls yet",
            self.partition.name(),
            self.index
        );
    }
}

/// Refuses a request that names a vCPU the partition does not have, saying so.
pub(super) fn no_such_vcpu<A: PartitionArch>(
    p: &Partition<A>,
    what: &str,
    index: u32,
) -> HypercallError {
    say!(
        A,
        "partition {}: {what} refused: vCPU {index} is outside its {} vCPUs",
        p.name(),
        p.vcpus.len()
    );
    HypercallError::InvalidArgument
}

/// `VCPU_START` from vCPU `from`: vCPU `index` of the same partition starts at `entry`.
pub fn vcpu_start<A: PartitionArch>(
    p: &Partition<A>,
    from: u32,
    index: u32,
    entry: u64,
    arg: u64,
) -> Result {
    let Some(slot) = p.vcpus.get(index as usize) else {
        return Err(no_such_vcpu(p, "vCPU start", index));
    };
    if index == 0 || index == from {
        return Err(HypercallError::BadState);
    }
    if !p
        .config
        .memory
        .iter()
        .any(|r| r.access.exec && entry >= r.guest && entry < r.guest + r.size)
    {
        return Err(HypercallError::BadAddress);
    }
    if !slot.request_start(entry, arg) {
        return Err(HypercallError::BadState);
    }
    wake_for_start(p, slot);
    Ok(0)
}

/// A start was just posted for `slot`, by any interface (`VCPU_START`, STARTUP, mailbox + IPI):
/// its CPU may be halted waiting (`PartitionArch::wait`); one still in the firmware's wait loop
/// is left alone (it picks the request up when it joins).
pub(super) fn wake_for_start<A: PartitionArch>(p: &Partition<A>, slot: &VcpuSlot) {
    if slot.joined() {
        p.kick(slot.cpu);
    }
}

/// An IPI from vCPU `from` to vCPU `index` of `p` (which has it), by any interface (`SEND_IPI`,
/// the x2APIC ICR, IOCSR IPI_SEND): only a running vCPU takes it. `raise` makes it pending and
/// says whether it is to be delivered now; the target's CPU is then kicked (unless the sender
/// sent it to itself). Counted as sent. False if the target does not run.
pub(super) fn ipi_to<A: PartitionArch>(
    p: &Partition<A>,
    from: u32,
    index: u32,
    raise: impl FnOnce(&VcpuSlot) -> bool,
) -> bool {
    let target = &p.vcpus[index as usize];
    if target.state() != VcpuState::Running {
        return false;
    }
    let deliver = raise(target);
    p.vcpus[from as usize]
        .ipis_sent
        .fetch_add(1, Ordering::Relaxed);
    if deliver && index != from {
        p.kick(target.cpu);
    }
    true
}

/// `SEND_IPI` from vCPU `from` to vCPU `index` of the same partition.
pub fn send_ipi<A: PartitionArch>(p: &Partition<A>, from: u32, index: u32) -> Result {
    if p.vcpus.get(index as usize).is_none() {
        return Err(no_such_vcpu(p, "IPI", index));
    }
    let sent = ipi_to(p, from, index, |t| {
        t.raise_ipi(from, A::now());
        true
    });
    if !sent {
        return Err(HypercallError::BadState);
    }
    Ok(0)
}

/// `IRQ_ROUTE`: device line `line` goes to vCPU `index` as an upcall, if the board file gives
/// the line to this partition (and the physical controller delivers it there, `device_irq`).
pub fn irq_route<A: PartitionArch>(p: &Partition<A>, line: u32, index: u32) -> Result {
    let Some(pos) = p.config.irqs.iter().position(|&l| l == line) else {
        say!(
            A,
            "partition {}: IRQ route refused: line {line} is not one of its lines {:?}",
            p.name(),
            p.config.irqs
        );
        return Err(HypercallError::Permission);
    };
    if p.vcpus.get(index as usize).is_none() {
        return Err(no_such_vcpu(p, "IRQ route", index));
    }
    super::device_irq::route_by_hypercall(p, pos, index);
    Ok(0)
}
