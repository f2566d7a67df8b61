//! The counter and the per-CPU deadline behind vCPUs' virtual timers on x86. The counter is the
//! TSC; its rate, and the local APIC timer's, are measured once at boot against the 8254 PIT
//! (`delay`), which counts emulated time in QEMU and Bochs alike, so deadlines mean the same in
//! both. A CPU's deadline makes its guest exit at or after that TSC value: under VMX through the
//! VMX-preemption timer (no interrupt at all: the VMX vCPU loads the countdown before each entry),
//! elsewhere through a one-shot local APIC timer whose interrupt exits the guest (VMX
//! acknowledges it on exit; SVM intercepts it, and the host takes it through the handler
//! [`register_interrupt`] gives `idt`, and ends it). Whether deadlines ride the
//! VMX-preemption timer is the backend's fact (`virt::preemption_rate`); callers say which.

use super::lapic::local_apic;
use super::{idt, percpu};
use core::sync::atomic::{AtomicU64, Ordering};

/// The local APIC timer's vector (never a guest's: guests get upcalls, not vectors).
pub const TIMER_VECTOR: u8 = 0xf0;
/// The calibration window: 10 ms of PIT time.
const CALIBRATION_US: u64 = 10_000;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static APIC_TIMER_HZ: AtomicU64 = AtomicU64::new(0);

/// The time-stamp counter.
pub fn now() -> u64 {
    arch_x86::regs::rdtsc()
}

/// The TSC's rate in Hz (0 before [`calibrate`]).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Measures the TSC and local APIC timer rates. Boot CPU, before the others start (the PIT is
/// one for the machine).
pub fn calibrate() {
    let apic = local_apic();
    apic.timer_start_masked(u32::MAX);
    let t0 = now();
    super::delay::wait_us(CALIBRATION_US);
    let t1 = now();
    let left = apic.timer_current();
    apic.timer_stop();
    let per_second = 1_000_000 / CALIBRATION_US;
    let tsc = t1.wrapping_sub(t0) * per_second;
    let apic_hz = u64::from(u32::MAX - left) * per_second;
    TSC_HZ.store(tsc, Ordering::Relaxed);
    APIC_TIMER_HZ.store(apic_hz, Ordering::Relaxed);
    log::info!(
        "timer: TSC {} kHz, local APIC timer {} kHz (measured against the PIT)",
        tsc / 1000,
        apic_hz / 1000
    );
}

/// The calling CPU's deadline, if one is armed.
pub fn deadline() -> Option<u64> {
    let d = percpu::this_cpu().timer_deadline.load(Ordering::Relaxed);
    (d != u64::MAX).then_some(d)
}

/// Arms (or with `None` disarms) the calling CPU's deadline. `preemption`: the vCPU loads it
/// into the VMX-preemption timer itself, so only the value is kept.
pub fn arm(deadline: Option<u64>, preemption: bool) {
    // Only this CPU reads its deadline, so no ordering is needed.
    percpu::this_cpu()
        .timer_deadline
        .store(deadline.unwrap_or(u64::MAX), Ordering::Relaxed);
    if preemption {
        return;
    }
    let apic = local_apic();
    let Some(d) = deadline else {
        apic.timer_stop();
        return;
    };
    let (tsc, apic_hz) = (tsc_hz(), APIC_TIMER_HZ.load(Ordering::Relaxed));
    if tsc == 0 || apic_hz == 0 {
        return;
    }
    let ticks = u128::from(d.saturating_sub(now())) * u128::from(apic_hz) / u128::from(tsc);
    apic.timer_oneshot(TIMER_VECTOR, ticks.clamp(1, u128::from(u32::MAX)) as u32);
}

/// The VMX-preemption timer value for the calling CPU's deadline at TSC rate shift `rate`
/// (the largest countdown when none is armed: a spurious exit every few seconds costs nothing).
pub fn preemption_value(rate: u32) -> u32 {
    match deadline() {
        Some(d) => (d.saturating_sub(now()) >> rate).min(u64::from(u32::MAX)) as u32,
        None => u32::MAX,
    }
}

/// Gives `idt` the host's handler of [`TIMER_VECTOR`]. Boot CPU, before the others start.
pub fn register_interrupt() {
    idt::register(TIMER_VECTOR, on_timer_interrupt);
}

/// The host's handler of [`TIMER_VECTOR`] (SVM: the interrupt stays pending after the
/// intercept and the host takes it with interrupts briefly on): just end it.
fn on_timer_interrupt(_vector: u8) {
    local_apic().eoi();
}
