//! One vCPU of a partition as every CPU sees it, arch-neutral: which physical CPU it runs on (the
//! board file's `cpus` list, in order: vCPU k runs on `cpus[k]`), where it is in the current run
//! (off, starting, running, ended) and how it is started (`VCPU_START`, the LoongArch mailbox,
//! x86 INIT and STARTUP), its pending virtual interrupts, and its counters (exits per kind,
//! interrupts delivered, upcalls, IPIs sent, delivery latencies in counter ticks). Other CPUs
//! touch a slot only through atomics: a start request, a pending bit of a `SEND_IPI` or device
//! line, a vector; the manager and the console read counters; everything else belongs to the CPU
//! that runs the vCPU. No hardware here: the start and interrupt rules are tested on the host.

use crate::{ExitKind, VirtualIrq};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Where a vCPU is in its partition's current run; the numbers are what `VCPU_INFO` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum VcpuState {
    /// Not started in this run (a secondary waits for `VCPU_START`).
    Off = 0,
    /// `VCPU_START` asked for it; its CPU picks it up.
    Starting = 1,
    /// Running guest code (or handling one of its exits).
    Running = 2,
    /// Ended in this run (the partition stopped or finished).
    Ended = 3,
}

impl VcpuState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Off,
            1 => Self::Starting,
            2 => Self::Running,
            _ => Self::Ended,
        }
    }

    /// A short name for the console table.
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Ended => "ended",
        }
    }
}

/// Pending-interrupt bits of [`VcpuSlot::pending`]: timer, IPI, then device line n at bit
/// `DEVICE_SHIFT + n` (lines below 62 are deliverable; board files give at most 64 lines and the
/// test boards use the low ones).
const TIMER_BIT: u64 = 1 << 0;
const IPI_BIT: u64 = 1 << 1;
const DEVICE_SHIFT: u32 = 2;

fn bit(irq: VirtualIrq) -> u64 {
    match irq {
        VirtualIrq::Timer => TIMER_BIT,
        VirtualIrq::Ipi => IPI_BIT,
        VirtualIrq::Device(line) => 1u64.checked_shl(DEVICE_SHIFT + line).unwrap_or(0),
    }
}

/// A set of the 256 interrupt vectors that other CPUs add to: one bit per vector.
#[derive(Default)]
pub struct VectorSet([AtomicU64; 4]);

impl VectorSet {
    pub const fn new() -> Self {
        Self([const { AtomicU64::new(0) }; 4])
    }

    fn word(&self, vector: u8) -> (&AtomicU64, u64) {
        (&self.0[usize::from(vector >> 6)], 1 << (vector & 63))
    }

    pub fn insert(&self, vector: u8) {
        let (w, bit) = self.word(vector);
        w.fetch_or(bit, Ordering::SeqCst);
    }

    /// Removes `vector`; whether it was in the set.
    pub fn remove(&self, vector: u8) -> bool {
        let (w, bit) = self.word(vector);
        w.fetch_and(!bit, Ordering::SeqCst) & bit != 0
    }

    /// The set as four words, vector `v` at bit `v % 64` of word `v / 64`.
    pub fn snapshot(&self) -> [u64; 4] {
        core::array::from_fn(|i| self.0[i].load(Ordering::SeqCst))
    }

    pub fn clear(&self) {
        for w in &self.0 {
            w.store(0, Ordering::SeqCst);
        }
    }
}

/// A latency series in counter ticks: count, sum, maximum.
#[derive(Default)]
pub struct Latency {
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Latency {
    pub const fn new() -> Self {
        Self {
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    pub fn record(&self, ticks: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(ticks, Ordering::Relaxed);
        self.max.fetch_max(ticks, Ordering::Relaxed);
    }

    /// (count, mean, max).
    pub fn get(&self) -> (u64, u64, u64) {
        let n = self.count.load(Ordering::Relaxed);
        let sum = self.sum.load(Ordering::Relaxed);
        (
            n,
            sum.checked_div(n).unwrap_or(0),
            self.max.load(Ordering::Relaxed),
        )
    }
}

/// One vCPU of a partition.
pub struct VcpuSlot {
    /// The physical CPU it runs on.
    pub cpu: usize,
    /// Its CPU has joined the partition (is past the firmware's wait loop, which would take any
    /// IPI as its wake-up call).
    joined: AtomicBool,
    state: AtomicU8,
    /// The start request of a secondary: entry and argument.
    start_entry: AtomicU64,
    start_arg: AtomicU64,
    /// The start is an x86 STARTUP IPI's: real mode at `start_entry` (see `GuestBoot`).
    start_real_mode: AtomicBool,
    /// An INIT of the running vCPU is pending (x86, `lapic`), and the entry of a STARTUP that
    /// came before the INIT took effect (0: none): on hardware INIT is immediate, so a STARTUP
    /// right behind it must still start the vCPU.
    init_requested: AtomicBool,
    startup_after_init: AtomicU64,
    pending: AtomicU64,
    /// The pending bit [`Self::take_pending`] looks at first next time (one past the last one
    /// it took), so no source starves another: only the vCPU's own CPU takes interrupts.
    take_from: AtomicU32,
    /// Interrupt vectors requested of its virtual local APIC (x86 x2APIC, `lapic`): the IRR.
    vectors: VectorSet,
    /// Which of those a device line requested (`device_irq`), so their delivery counts as one.
    device_vectors: VectorSet,
    /// When the hypervisor saw the last device interrupt for this vCPU (counter ticks).
    device_seen_at: AtomicU64,
    /// LoongArch IOCSR IPI block (`mailbox`): pending IPI bits, their enable mask, mailboxes.
    pub iocsr_ipi: AtomicU32,
    pub iocsr_enable: AtomicU32,
    pub mailboxes: [AtomicU64; 4],
    /// The index of the vCPU that sent the last IPI, and when (counter ticks).
    ipi_from: AtomicU64,
    ipi_sent_at: AtomicU64,
    exits: [AtomicU64; ExitKind::COUNT],
    /// Interrupts delivered: timer, IPI, device.
    pub timer_irqs: AtomicU64,
    pub ipi_irqs: AtomicU64,
    pub device_irqs: AtomicU64,
    /// Upcalls entered (one per delivered interrupt).
    pub upcalls: AtomicU64,
    /// IPIs this vCPU sent.
    pub ipis_sent: AtomicU64,
    /// Deadline to handler entry of its timer ticks, and `SEND_IPI` to handler entry of the IPIs
    /// it received.
    pub timer_latency: Latency,
    pub ipi_latency: Latency,
    /// Host exit on the physical device interrupt to its delivery to the guest.
    pub device_latency: Latency,
}

impl VcpuSlot {
    pub fn new(cpu: usize) -> Self {
        Self {
            cpu,
            joined: AtomicBool::new(false),
            state: AtomicU8::new(VcpuState::Off as u8),
            start_entry: AtomicU64::new(0),
            start_arg: AtomicU64::new(0),
            start_real_mode: AtomicBool::new(false),
            init_requested: AtomicBool::new(false),
            startup_after_init: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            take_from: AtomicU32::new(0),
            vectors: VectorSet::new(),
            device_vectors: VectorSet::new(),
            device_seen_at: AtomicU64::new(0),
            iocsr_ipi: AtomicU32::new(0),
            iocsr_enable: AtomicU32::new(0),
            mailboxes: [const { AtomicU64::new(0) }; 4],
            ipi_from: AtomicU64::new(0),
            ipi_sent_at: AtomicU64::new(0),
            exits: [const { AtomicU64::new(0) }; ExitKind::COUNT],
            timer_irqs: AtomicU64::new(0),
            ipi_irqs: AtomicU64::new(0),
            device_irqs: AtomicU64::new(0),
            upcalls: AtomicU64::new(0),
            ipis_sent: AtomicU64::new(0),
            timer_latency: Latency::new(),
            ipi_latency: Latency::new(),
            device_latency: Latency::new(),
        }
    }

    /// Records that the vCPU's CPU waits in the hypervisor for its starts.
    pub fn set_joined(&self) {
        self.joined.store(true, Ordering::SeqCst);
    }

    /// Whether the vCPU's CPU may be kicked.
    pub fn joined(&self) -> bool {
        self.joined.load(Ordering::SeqCst)
    }

    pub fn state(&self) -> VcpuState {
        VcpuState::from_u8(self.state.load(Ordering::SeqCst))
    }

    pub fn set_state(&self, s: VcpuState) {
        self.state.store(s as u8, Ordering::SeqCst);
    }

    /// Posts a start request if the vCPU is off; false if it already runs (or ran) in this run.
    pub fn request_start(&self, entry: u64, arg: u64) -> bool {
        self.request(entry, arg, false)
    }

    /// Posts an x86 STARTUP: real mode at `entry` (the page the vector names); false if the vCPU
    /// is not waiting for one.
    pub fn request_startup(&self, entry: u64) -> bool {
        self.request(entry, 0, true)
    }

    fn request(&self, entry: u64, arg: u64, real_mode: bool) -> bool {
        if self.state() != VcpuState::Off {
            return false;
        }
        self.start_entry.store(entry, Ordering::SeqCst);
        self.start_arg.store(arg, Ordering::SeqCst);
        self.start_real_mode.store(real_mode, Ordering::SeqCst);
        self.state
            .compare_exchange(
                VcpuState::Off as u8,
                VcpuState::Starting as u8,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
    }

    /// The posted start request, if one is waiting: (entry, argument, real mode); the vCPU is
    /// then running.
    pub fn take_start(&self) -> Option<(u64, u64, bool)> {
        self.state
            .compare_exchange(
                VcpuState::Starting as u8,
                VcpuState::Running as u8,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .ok()
            .map(|_| {
                (
                    self.start_entry.load(Ordering::SeqCst),
                    self.start_arg.load(Ordering::SeqCst),
                    self.start_real_mode.load(Ordering::SeqCst),
                )
            })
    }

    /// Asks the running vCPU to leave its guest for an INIT (its CPU is kicked by the caller).
    pub fn request_init(&self) {
        self.init_requested.store(true, Ordering::SeqCst);
    }

    /// Whether an INIT is on its way (the flag stays up until [`VcpuSlot::finish_init`]).
    pub fn init_pending(&self) -> bool {
        self.init_requested.load(Ordering::SeqCst)
    }

    /// A STARTUP for `entry` arrived while an INIT was still on its way: kept for when the
    /// INIT is done. False if no INIT is pending (the STARTUP is then ignored, the vCPU runs).
    pub fn defer_startup(&self, entry: u64) -> bool {
        if !self.init_requested.load(Ordering::SeqCst) {
            return false;
        }
        self.startup_after_init.store(entry, Ordering::SeqCst);
        true
    }

    /// The INIT is done: the vCPU is reset and waits; a STARTUP that came while the INIT was on
    /// its way starts it. The order closes every gap: a STARTUP before the state is `Off` is
    /// deferred (the INIT flag is still up), one after it starts the vCPU itself.
    pub fn finish_init(&self) {
        self.clear_interrupts();
        self.set_state(VcpuState::Off);
        self.init_requested.store(false, Ordering::SeqCst);
        let entry = self.startup_after_init.swap(0, Ordering::SeqCst);
        if entry != 0 {
            self.request_startup(entry);
        }
    }

    pub fn reset_for_run(&self) {
        self.clear_interrupts();
        self.init_requested.store(false, Ordering::SeqCst);
        self.startup_after_init.store(0, Ordering::SeqCst);
        self.set_state(VcpuState::Off);
    }

    /// Drops everything pending for the vCPU (a reset).
    fn clear_interrupts(&self) {
        self.pending.store(0, Ordering::SeqCst);
        self.vectors.clear();
        self.device_vectors.clear();
        for m in &self.mailboxes {
            m.store(0, Ordering::SeqCst);
        }
        self.iocsr_ipi.store(0, Ordering::SeqCst);
        self.iocsr_enable.store(0, Ordering::SeqCst);
    }

    pub fn count_exit(&self, kind: ExitKind) {
        self.exits[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The `VCPU_INFO` record (`vcpu/README.md`): physical CPU, state, exits, timer, IPI and
    /// device interrupts delivered, upcalls, IPIs sent. The console's table shows the same.
    pub fn info(&self) -> [u64; crate::hypercall::VCPU_INFO_WORDS as usize] {
        [
            self.cpu as u64,
            self.state() as u64,
            self.exits_total(),
            self.timer_irqs.load(Ordering::Relaxed),
            self.ipi_irqs.load(Ordering::Relaxed),
            self.device_irqs.load(Ordering::Relaxed),
            self.upcalls.load(Ordering::Relaxed),
            self.ipis_sent.load(Ordering::Relaxed),
        ]
    }

    pub fn exits_total(&self) -> u64 {
        self.exits.iter().map(|e| e.load(Ordering::Relaxed)).sum()
    }

    /// Makes `irq` pending.
    pub fn raise(&self, irq: VirtualIrq) {
        self.pending.fetch_or(bit(irq), Ordering::SeqCst);
    }

    /// Requests interrupt `vector` of the vCPU's virtual local APIC.
    pub fn raise_vector(&self, vector: u8) {
        self.vectors.insert(vector);
    }

    /// Requests `vector` as an IPI from vCPU `from` sent at counter value `at`.
    pub fn raise_vector_ipi(&self, vector: u8, from: u32, at: u64) {
        self.note_ipi(from, at);
        self.raise_vector(vector);
    }

    /// Who sent the IPI about to be raised, and when (for its latency and upcall detail).
    fn note_ipi(&self, from: u32, at: u64) {
        self.ipi_from.store(u64::from(from), Ordering::SeqCst);
        self.ipi_sent_at.store(at, Ordering::SeqCst);
    }

    /// Requests `vector` for a device line whose interrupt the hypervisor saw at counter value
    /// `at` (x86: LoongArch's lines go through the partition's EIOINTC view).
    pub fn raise_device_vector(&self, vector: u8, at: u64) {
        self.device_seen_at.store(at, Ordering::SeqCst);
        self.device_vectors.insert(vector);
        self.raise_vector(vector);
    }

    /// Records that a device line's upcall is pending, seen by the hypervisor at `at`.
    pub fn raise_device(&self, line: u32, at: u64) {
        self.device_seen_at.store(at, Ordering::SeqCst);
        self.raise(VirtualIrq::Device(line));
    }

    /// Whether `vector`, just delivered, was a device line's (and forgets that it was), with
    /// the time the hypervisor saw the interrupt.
    pub fn take_device_vector(&self, vector: u8) -> Option<u64> {
        self.device_vectors
            .remove(vector)
            .then(|| self.device_seen_at.load(Ordering::SeqCst))
    }

    /// When the hypervisor saw the last device interrupt for this vCPU.
    pub fn device_seen_at(&self) -> u64 {
        self.device_seen_at.load(Ordering::SeqCst)
    }

    /// The requested vectors (IRR).
    pub fn vectors(&self) -> [u64; 4] {
        self.vectors.snapshot()
    }

    /// `vector` was delivered: no longer requested.
    pub fn clear_vector(&self, vector: u8) {
        self.vectors.remove(vector);
    }

    /// Records an IPI from vCPU `from` sent at counter value `at`, and makes it pending.
    /// Whether an upcall's interrupt is pending.
    pub fn has_pending(&self) -> bool {
        self.pending.load(Ordering::SeqCst) != 0
    }

    pub fn raise_ipi(&self, from: u32, at: u64) {
        self.note_ipi(from, at);
        self.raise(VirtualIrq::Ipi);
    }

    /// The sender and send time of the last IPI.
    pub fn ipi_source(&self) -> (u64, u64) {
        (
            self.ipi_from.load(Ordering::SeqCst),
            self.ipi_sent_at.load(Ordering::SeqCst),
        )
    }

    /// Takes the next pending interrupt in turn: the first pending bit at or after the one
    /// after the last taken (timer, IPI, then device lines, wrapping around). Strict priority
    /// would let a source that is always pending again, such as a timer whose period is
    /// shorter than its handler, starve every other one (seen with the storm scenario on
    /// Bochs: its IPIs never got through its 10 µs timer).
    pub fn take_pending(&self) -> Option<VirtualIrq> {
        let p = self.pending.load(Ordering::SeqCst);
        if p == 0 {
            return None;
        }
        let low = crate::upcall::next_in_turn(p, self.take_from.load(Ordering::Relaxed))?;
        self.take_from.store(low + 1, Ordering::Relaxed);
        let irq = match low {
            0 => VirtualIrq::Timer,
            1 => VirtualIrq::Ipi,
            n => VirtualIrq::Device(n - DEVICE_SHIFT),
        };
        self.pending.fetch_and(!(1 << low), Ordering::SeqCst);
        Some(irq)
    }
}

#[cfg(test)]
mod tests;
