//! LoongArch: the worker's physical device interrupt, the last step of its mailbox-start
//! scenario. The RTC's line (`test_guests::rtc_irq`) goes to vCPU 1, which stays interruptible
//! after its half of the scenario; vCPU 0 turns the RTC on and counts what vCPU 1 takes.
//! * Under LVZ the line is level-triggered and stays asserted: the hypervisor keeps it masked
//!   from each interrupt until the guest unmasks it in its PCH-PIC view, so vCPU 1's handler
//!   masks and unmasks it (Linux's level flow) for [`LEVEL_IRQS`] interrupts and then leaves it
//!   masked; exactly that many arrive.
//! * In the deprivileged backend the `IRQ_ROUTE` hypercall routes it as an edge: the one rise
//!   arrives as one upcall, and nothing after it (the line never falls).

use core::sync::atomic::{AtomicU64, Ordering};
use test_guests::smp::{self, IRQ_DEVICE, IRQ_VECTOR};
use test_guests::{println, rt, rtc_irq};

/// The vCPU the line goes to.
const TARGET: u32 = 1;
/// Interrupts the level-triggered path takes before leaving the line masked.
const LEVEL_IRQS: u64 = 5;
/// How long vCPU 0 waits for them: 1 s of the counter (a bound, never needed when delivery
/// works).
const PATIENCE: u64 = rt::COUNTER_HZ;

/// Interrupts per line of `rtc_irq::LINES`, those taken on [`TARGET`], and the counter at the
/// last one.
static SEEN: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
static ON_TARGET: AtomicU64 = AtomicU64::new(0);
static LAST: AtomicU64 = AtomicU64::new(0);

fn total() -> u64 {
    SEEN.iter().map(|s| s.load(Ordering::SeqCst)).sum()
}

/// From the worker's interrupt handler: true if `irq`/`detail` was the RTC's line (counted; under
/// LVZ the line is re-armed until [`LEVEL_IRQS`] were taken).
pub fn on_interrupt(irq: u64, detail: u64) -> bool {
    let line = match irq {
        IRQ_VECTOR => rtc_irq::line_of(detail as u32),
        d if d >= IRQ_DEVICE => Some((d - IRQ_DEVICE) as u32),
        _ => None,
    };
    let Some(pos) = line.and_then(|l| rtc_irq::LINES.iter().position(|&x| x == l)) else {
        return false;
    };
    SEEN[pos].fetch_add(1, Ordering::SeqCst);
    LAST.store(rt::now(), Ordering::SeqCst);
    if smp::vcpu_id() == u64::from(TARGET) {
        ON_TARGET.fetch_add(1, Ordering::SeqCst);
    }
    if irq == IRQ_VECTOR {
        let line = rtc_irq::LINES[pos];
        rtc_irq::set_masked(line, true);
        if total() < LEVEL_IRQS {
            rtc_irq::set_masked(line, false);
        }
    }
    true
}

/// vCPU 0's half; true if exactly the expected interrupts arrived, on one line, all on vCPU 1.
pub fn scenario() -> bool {
    for s in &SEEN {
        s.store(0, Ordering::SeqCst);
    }
    ON_TARGET.store(0, Ordering::SeqCst);
    let lvz = rt::under_lvz();
    let (expected, how) = if lvz {
        rtc_irq::route_views(TARGET);
        (LEVEL_IRQS, "level, PCH-PIC and EIOINTC views")
    } else if rtc_irq::route_hypercall(TARGET) {
        (1, "edge, IRQ_ROUTE upcall")
    } else {
        println!("worker: IRQ_ROUTE of the RTC's lines refused");
        return false;
    };
    let start = rt::now();
    rtc_irq::start();
    while total() < expected && rt::now() - start < PATIENCE {
        rt::relax();
    }
    // A little longer, so an interrupt too many would show.
    for _ in 0..1000 {
        rt::relax();
    }
    rtc_irq::stop();
    let n = total();
    let fired: usize = SEEN
        .iter()
        .filter(|s| s.load(Ordering::SeqCst) != 0)
        .count();
    let line = rtc_irq::LINES
        .iter()
        .zip(&SEEN)
        .find(|(_, s)| s.load(Ordering::SeqCst) != 0)
        .map_or(0, |(&l, _)| l);
    let each = LAST.load(Ordering::SeqCst).saturating_sub(start) / n.max(1);
    let ok = n == expected && fired == 1 && ON_TARGET.load(Ordering::SeqCst) == n;
    println!(
        "worker: device IRQ line {line} (RTC, {how}) -> vCPU {TARGET}: {n} interrupts (expected {expected}) {}; {each} counter ticks each (emulator clock: a proxy)",
        if ok { "ok" } else { "MISMATCH" }
    );
    ok
}
