//! The worker test guest: fills and checks a set of pages (printing checksums), then, if it shares
//! a region with the manager, follows the manager's commands on that region so the dirty-logging
//! and aging scenarios see an exact, known set of pages: in the dirty phase it writes exactly
//! `DIRTY_PAGES` workload pages, in the aging phase it reads exactly `AGE_PAGES`. Between phases it
//! only reads the shared page, so nothing else it does shows up as dirty.
//!
//! With two or more vCPUs, when the boot flags ask for it (bit 1), it first runs the multi-vCPU
//! scenario: vCPU 0 starts vCPU 1, both tick
//! their own timers `TICKS` times, and they exchange `IPIS` IPI round trips (vCPU 1 answers each
//! IPI from its upcall handler); on LoongArch, when vCPU 1 was started the firmware way, a
//! physical device interrupt follows (the RTC's line to vCPU 1, `rtc`). vCPU 1 then waits; in the manager's multi-vCPU dirty phase both
//! vCPUs write their own pages over and over while the manager harvests (`CMD_DIRTY_SMP`).
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
use test_guests::shared::*;
use test_guests::smp::{self, IRQ_IPI, IRQ_TIMER};
use test_guests::{println, read, rt, wait_until, write, BootArgs};

/// Timer ticks each vCPU waits for, at this period.
const TICKS: u64 = 10;
const TICK_NS: u64 = 1_000_000;
/// IPI round trips vCPU 0 makes with vCPU 1.
const IPIS: u64 = 5;
/// Polls before the multi-vCPU scenario gives up on something: a guard against hangs only. Waits
/// on vCPU 0 are bounded in time by its own timer ticks ([`PATIENCE`]), which do not depend on
/// how fast the emulator runs the other vCPU.
const SMP_POLLS: u64 = 400_000_000;
/// vCPU 0's own timer ticks a wait may take (2 s at `TICK_NS`).
const PATIENCE: u64 = 2000;

/// Per vCPU: timer ticks and IPIs taken in the upcall handler.
static TICKS_SEEN: [AtomicU64; smp::MAX_VCPUS] = [const { AtomicU64::new(0) }; smp::MAX_VCPUS];
static IPIS_SEEN: [AtomicU64; smp::MAX_VCPUS] = [const { AtomicU64::new(0) }; smp::MAX_VCPUS];
/// vCPU 1's command from vCPU 0: 0 wait, [`CMD_DIRTY_SMP`] write, [`CMD_FINISH`] park; and its
/// acknowledgement (the last command it finished).
static SECONDARY_CMD: AtomicU64 = AtomicU64::new(0);
static SECONDARY_ACK: AtomicU64 = AtomicU64::new(0);
/// The shared region's address, for vCPU 1.
static SHARED: AtomicU64 = AtomicU64::new(0);
/// Set by vCPU 1 as its first action.
static SECONDARY_UP: AtomicU64 = AtomicU64::new(0);

/// Pages the start-up workload fills and checks.
const WORK_PAGES: u64 = WORKLOAD_PAGES;

/// Where the workload pages are: the board's workload region when the manager drives the
/// scenario (its layout is in `rt`), else 16 MiB into low RAM, which every test board gives.
static BASE: AtomicU64 = AtomicU64::new(rt::WORKLOAD_BASE);

fn page(i: u64) -> u64 {
    BASE.load(Ordering::Relaxed) + i * rt::PAGE
}

/// Fills `WORK_PAGES` pages with a pattern and reads it back; the checksum is the sum of the
/// words read, compared with the same sum computed arithmetically.
fn workload(seed: u64) -> (u64, u64) {
    let words = rt::PAGE / 8;
    let mut expected = 0u64;
    for i in 0..WORK_PAGES {
        for w in (0..words).step_by(64) {
            let v = seed ^ (i << 32 | w);
            write(page(i) + w * 8, v);
            expected = expected.wrapping_add(v);
        }
    }
    let mut got = 0u64;
    for i in 0..WORK_PAGES {
        for w in (0..words).step_by(64) {
            got = got.wrapping_add(read(page(i) + w * 8));
        }
    }
    (got, expected)
}

/// The dirty phase: one store per page, nothing else (no calls, no stack).
#[inline(never)]
fn dirty_phase() {
    let mut i = 0;
    while i < DIRTY_PAGES {
        write(page(i) + 8, i);
        i += 1;
    }
}

/// The aging phase: one load per page.
#[inline(never)]
fn age_phase() -> u64 {
    let mut sum = 0u64;
    let mut i = 0;
    while i < AGE_PAGES {
        sum = sum.wrapping_add(read(page(i) + 16));
        i += 1;
    }
    sum
}

#[cfg(target_arch = "loongarch64")]
#[path = "worker/rtc.rs"]
mod rtc;

/// The upcall handler of every vCPU: count, and vCPU 1 answers each IPI.
fn on_interrupt(irq: u64, detail: u64) {
    #[cfg(target_arch = "loongarch64")]
    if rtc::on_interrupt(irq, detail) {
        return;
    }
    let me = smp::vcpu_id() as usize % smp::MAX_VCPUS;
    match irq {
        IRQ_TIMER => {
            TICKS_SEEN[me].fetch_add(1, Ordering::SeqCst);
        }
        IRQ_IPI => {
            IPIS_SEEN[me].fetch_add(1, Ordering::SeqCst);
            if me != 0 {
                smp::send_ipi(detail);
            }
        }
        _ => {}
    }
}

/// The multi-vCPU dirty phase on vCPU `v`: writes its `SMP_PAGES` pages round after round,
/// recording the epoch read before each write, until the manager says stop.
fn smp_dirty(sh: u64, v: u64) {
    let mut round = 0u64;
    while read(sh + SMP_STOP) == 0 {
        round += 1;
        for i in 0..SMP_PAGES {
            let epoch = read(sh + EPOCH);
            write(page(smp_first_page(v) + i) + 24, round);
            write(sh + SMP_RECORDS + (v * SMP_PAGES + i) * 8, epoch + 1);
        }
    }
}

/// vCPU 1's life: its own timer ticks, IPIs answered from the handler, then commands from vCPU 0.
fn secondary_main(index: u64) -> ! {
    SECONDARY_UP.store(1, Ordering::SeqCst);
    smp::set_handler(on_interrupt);
    smp::timer_periodic(TICK_NS);
    let me = index as usize % smp::MAX_VCPUS;
    wait_until(SMP_POLLS, || TICKS_SEEN[me].load(Ordering::SeqCst) >= TICKS);
    smp::timer_periodic(0);
    let mut done = 0;
    loop {
        let cmd = SECONDARY_CMD.load(Ordering::SeqCst);
        if cmd == done {
            rt::relax();
            continue;
        }
        if cmd == CMD_DIRTY_SMP {
            smp_dirty(SHARED.load(Ordering::SeqCst), index);
        }
        #[cfg(target_arch = "x86_64")]
        if cmd == apic::CMD_X2APIC {
            apic::secondary(index);
        }
        done = cmd;
        SECONDARY_ACK.store(cmd, Ordering::SeqCst);
    }
}

/// The multi-vCPU scenario, on vCPU 0; true if every step did what it should.
fn smp_scenario(count: u64, startup_ipi: bool) -> bool {
    println!("worker: {count} vCPUs, I am vCPU {}", smp::vcpu_id());
    let r = smp::set_handler(on_interrupt);
    #[cfg(target_arch = "x86_64")]
    let started = if startup_ipi {
        smp::start_by_startup(1, secondary_main)
    } else {
        smp::start(1, secondary_main)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let started = if startup_ipi {
        smp::start_by_mailbox(1, secondary_main)
    } else {
        smp::start(1, secondary_main)
    };
    let how = if startup_ipi && cfg!(target_arch = "loongarch64") {
        "mailbox + IPI"
    } else if startup_ipi {
        "INIT + STARTUP"
    } else {
        "VCPU_START"
    };
    let handler = if smp::hardware_interrupts() {
        "exception vector"
    } else {
        "upcall handler"
    };
    println!("worker: {handler} -> {r}, start vCPU 1 ({how}) -> {started}");
    // An IPI through the IOCSR block to a core the partition does not have: refused.
    #[cfg(target_arch = "loongarch64")]
    if startup_ipi {
        smp::iocsr_ipi(5);
    }
    if started != 0 {
        return false;
    }
    // Like an OS bringing up its CPUs, wait until vCPU 1 runs before relying on it.
    if !wait_until(SMP_POLLS, || SECONDARY_UP.load(Ordering::SeqCst) != 0) {
        println!("worker: vCPU 1 never came up");
        return false;
    }
    // vCPU 0's timer keeps ticking through the IPI exchange: it bounds the waits.
    smp::timer_periodic(TICK_NS);
    let ticks = |v: usize| TICKS_SEEN[v].load(Ordering::SeqCst);
    let ticked = wait_until(SMP_POLLS, || {
        (ticks(0) >= TICKS && ticks(1) >= TICKS) || ticks(0) >= PATIENCE
    }) && ticks(1) >= TICKS;
    println!(
        "worker: timer ticks vCPU 0 {} vCPU 1 {} (expected {TICKS} each) {}",
        TICKS_SEEN[0].load(Ordering::SeqCst).min(TICKS),
        TICKS_SEEN[1].load(Ordering::SeqCst).min(TICKS),
        if ticked { "ok" } else { "MISMATCH" }
    );
    let mut answered = 0;
    let start = rt::now();
    for _ in 0..IPIS {
        let before = IPIS_SEEN[0].load(Ordering::SeqCst);
        if smp::send_ipi(1) != 0 {
            break;
        }
        let give_up = ticks(0) + PATIENCE;
        wait_until(SMP_POLLS, || {
            IPIS_SEEN[0].load(Ordering::SeqCst) > before || ticks(0) >= give_up
        });
        if IPIS_SEEN[0].load(Ordering::SeqCst) == before {
            break;
        }
        answered += 1;
    }
    smp::timer_periodic(0);
    let round_trip = (rt::now() - start) / IPIS;
    let ipis_ok = answered == IPIS && IPIS_SEEN[1].load(Ordering::SeqCst) == IPIS;
    println!(
        "worker: IPIs {IPIS} sent, {answered} answered (expected {IPIS}) {}; round trip {round_trip} \
         counter ticks (emulator clock: a proxy)",
        if ipis_ok { "ok" } else { "MISMATCH" }
    );
    // LoongArch, mailbox start: then a physical device interrupt to vCPU 1.
    #[cfg(target_arch = "loongarch64")]
    let ipis_ok = ipis_ok && (!startup_ipi || rtc::scenario());
    ticked && ipis_ok
}

/// Runs command `cmd` on vCPU 1 and waits for it.
fn on_secondary(cmd: u64) -> bool {
    SECONDARY_CMD.store(cmd, Ordering::SeqCst);
    wait_until(SMP_POLLS * 4, || {
        SECONDARY_ACK.load(Ordering::SeqCst) == cmd
    })
}

#[no_mangle]
fn guest_main(args: BootArgs) -> ! {
    println!("worker: partition {} up (start {})", args.id, args.starts);
    if args.shared == 0 {
        BASE.store(16 << 20, Ordering::Relaxed);
    }
    let (got, want) = workload(0x5e97_0000_0000_0000);
    let ok = got == want;
    println!(
        "worker: checksum {got:#018x} (expected {want:#018x}) {}",
        if ok { "ok" } else { "MISMATCH" }
    );
    let vcpus = smp::vcpu_count();
    // The multi-vCPU scenario runs when the boot test asks for it (flag bit 1).
    let smp_on = vcpus >= 2 && args.flags & 2 != 0;
    // Flag bit 2 (x86): start vCPU 1 with INIT and STARTUP IPIs instead of `VCPU_START`.
    let smp_ok = !smp_on || smp_scenario(vcpus, args.flags & 4 != 0);
    // On x86 the same again the hardware way: x2APIC timers and IPIs through the guest's IDT.
    #[cfg(target_arch = "x86_64")]
    let smp_ok = smp_ok && (!smp_on || apic::scenario());
    if args.shared == 0 {
        println!("worker: no shared region, no manager scenario");
        test_guests::power_off(if ok && smp_ok { 0 } else { 1 });
    }
    let sh = args.shared;
    SHARED.store(sh, Ordering::SeqCst);
    write(sh + ACK, 0);
    write(sh + COMMAND, 0);
    write(sh + READY, args.id + 1);
    let mut done = 0;
    let mut age_sum = 0;
    loop {
        // Only reads until a command comes; bounded so a missing manager cannot hang the run.
        if !wait_until(200_000_000, || read(sh + COMMAND) != done) {
            println!("worker: no command from the manager, giving up");
            break;
        }
        let cmd = read(sh + COMMAND);
        match cmd {
            CMD_DIRTY => dirty_phase(),
            CMD_AGE => age_sum = age_phase(),
            CMD_DIRTY_SMP => {
                let writers = if smp_on { 2 } else { 1 };
                if writers > 1 {
                    SECONDARY_CMD.store(CMD_DIRTY_SMP, Ordering::SeqCst);
                }
                smp_dirty(sh, 0);
                if writers > 1 && !on_secondary(CMD_DIRTY_SMP) {
                    println!("worker: vCPU 1 did not finish the multi-vCPU dirty phase");
                }
                write(sh + SMP_WRITERS, writers);
            }
            CMD_TIMED_QUIET | CMD_TIMED_STORM => write(sh + TIMED_TICKS, test_guests::timed_work()),
            _ => break,
        }
        done = cmd;
        write(sh + ACK, cmd);
    }
    let (got2, want2) = workload(0x5e97_0000_0000_0001);
    let ok2 = got2 == want2;
    println!(
        "worker: final checksum {got2:#018x} (expected {want2:#018x}) {} (aged sum {age_sum:#x})",
        if ok2 { "ok" } else { "MISMATCH" }
    );
    println!("worker: done");
    test_guests::power_off(if ok && ok2 && smp_ok { 0 } else { 1 })
}

/// x86: the multi-vCPU scenario the hardware way. Each vCPU loads the guest's own GDT and IDT,
/// software-enables its x2APIC, runs its timer periodically until it has seen `TICKS` ticks;
/// then vCPU 0 and vCPU 1 exchange `IPIS` fixed IPIs through the ICR (vCPU 1 answers from its
/// interrupt handler), and an IPI to an APIC ID outside the partition must go nowhere. Last, a
/// device interrupt: COM2's line, routed through the I/O APIC view to vCPU 1 (`device_step`).
#[cfg(target_arch = "x86_64")]
mod apic {
    use super::{on_secondary, wait_until, IPIS, SMP_POLLS, TICKS};
    use core::sync::atomic::{AtomicU64, Ordering};
    use test_guests::x2apic::{self, *};
    use test_guests::{devirq, println, rt, smp};

    /// vCPU 1's command: run its half.
    pub const CMD_X2APIC: u64 = 0x100;
    const TIMER_VECTOR: u8 = FIRST_VECTOR;
    const IPI_VECTOR: u8 = FIRST_VECTOR + 1;
    /// The timer period: 2 ms of the virtual APIC timer's clock.
    const PERIOD_MS: u64 = 2;
    /// An APIC ID no vCPU of a 2-vCPU partition has.
    const OUTSIDE_ID: u32 = 7;
    /// COM2's line goes to this vCPU as this vector, for this many interrupts.
    const DEVICE_VECTOR: u8 = FIRST_VECTOR + 2;
    const DEVICE_VCPU: u32 = 1;
    const DEVICE_IRQS: u64 = 5;
    /// How long vCPU 0 waits for them: 1 s of the guest's TSC (a bound, never needed when
    /// delivery works).
    const DEVICE_PATIENCE_MS: u64 = 1000;

    static TICKS_SEEN: [AtomicU64; smp::MAX_VCPUS] = [const { AtomicU64::new(0) }; smp::MAX_VCPUS];
    static IPIS_SEEN: [AtomicU64; smp::MAX_VCPUS] = [const { AtomicU64::new(0) }; smp::MAX_VCPUS];
    static SECONDARY_ID: AtomicU64 = AtomicU64::new(u64::MAX);
    /// COM2 interrupts taken, per vCPU and in all, and the TSC at the last one.
    static DEVICE_SEEN: [AtomicU64; smp::MAX_VCPUS] = [const { AtomicU64::new(0) }; smp::MAX_VCPUS];
    static DEVICE_TOTAL: AtomicU64 = AtomicU64::new(0);
    static DEVICE_LAST: AtomicU64 = AtomicU64::new(0);

    fn me() -> usize {
        msr_read(ID) as usize % smp::MAX_VCPUS
    }

    fn on_vector(v: u8) {
        let me = me();
        if v == TIMER_VECTOR {
            TICKS_SEEN[me].fetch_add(1, Ordering::SeqCst);
        } else if v == IPI_VECTOR {
            IPIS_SEEN[me].fetch_add(1, Ordering::SeqCst);
            if me != 0 {
                send_ipi(0, IPI_VECTOR);
            }
        } else if v == DEVICE_VECTOR {
            DEVICE_SEEN[me].fetch_add(1, Ordering::SeqCst);
            let n = DEVICE_TOTAL.fetch_add(1, Ordering::SeqCst) + 1;
            DEVICE_LAST.store(rt::now(), Ordering::SeqCst);
            devirq::acknowledge(n < DEVICE_IRQS);
        }
    }

    /// COM2's line through the I/O APIC view to vCPU 1 (which stays interruptible after its
    /// half of the scenario): `DEVICE_IRQS` transmitter-empty interrupts, each answered with a
    /// byte that causes the next, then the line masked again; true if exactly those arrived,
    /// all on vCPU 1.
    fn device_step(level: bool) -> bool {
        let line = devirq::LINE;
        for seen in &DEVICE_SEEN {
            seen.store(0, Ordering::SeqCst);
        }
        DEVICE_TOTAL.store(0, Ordering::SeqCst);
        devirq::route(line, DEVICE_VCPU, DEVICE_VECTOR, level);
        let start = rt::now();
        let patience = u64::from(rt::cpuid(0x4000_0010)[0]) * DEVICE_PATIENCE_MS;
        devirq::start();
        let total = || DEVICE_TOTAL.load(Ordering::SeqCst);
        while total() < DEVICE_IRQS && rt::now() - start < patience {
            rt::relax();
        }
        // A little longer, so an interrupt too many would show.
        for _ in 0..1000 {
            rt::relax();
        }
        devirq::mask(line, DEVICE_VECTOR);
        devirq::stop();
        let n = total();
        let on_target = DEVICE_SEEN[DEVICE_VCPU as usize].load(Ordering::SeqCst);
        let each = DEVICE_LAST.load(Ordering::SeqCst).saturating_sub(start) / n.max(1);
        let ok = n == DEVICE_IRQS && on_target == n;
        let how = if level { "level" } else { "edge" };
        println!(
            "worker: device IRQ line {line} (COM2, {how}) -> vCPU {DEVICE_VCPU}: {n} interrupts (expected {DEVICE_IRQS}) {}; {each} TSC ticks each, interrupt to interrupt (emulator clock: a proxy)",
            if ok { "ok" } else { "MISMATCH" }
        );
        ok
    }

    /// Loads the tables, enables the APIC and its periodic timer, and turns interrupts on.
    fn start_timer() {
        x2apic::load();
        msr_write(SVR, SVR_ENABLED);
        msr_write(TIMER_DIVIDE, DIVIDE_BY_1);
        msr_write(LVT_TIMER, TIMER_PERIODIC | u64::from(TIMER_VECTOR));
        msr_write(TIMER_INITIAL, timer_khz() * PERIOD_MS);
        x2apic::enable();
    }

    fn stop_timer() {
        msr_write(TIMER_INITIAL, 0);
    }

    /// vCPU 1's half: its own ticks, then it stays interruptible to answer IPIs.
    pub fn secondary(index: u64) {
        SECONDARY_ID.store(msr_read(ID), Ordering::SeqCst);
        start_timer();
        let me = index as usize % smp::MAX_VCPUS;
        wait_until(SMP_POLLS, || TICKS_SEEN[me].load(Ordering::SeqCst) >= TICKS);
        stop_timer();
    }

    /// vCPU 0's half; true if every step did what it should.
    pub fn scenario() -> bool {
        x2apic::install(on_vector);
        let id = msr_read(ID);
        start_timer();
        let up = on_secondary(CMD_X2APIC);
        wait_until(SMP_POLLS, || TICKS_SEEN[0].load(Ordering::SeqCst) >= TICKS);
        stop_timer();
        let ticks = |v: usize| TICKS_SEEN[v].load(Ordering::SeqCst);
        let ticked = up && ticks(0) >= TICKS && ticks(1) >= TICKS;
        let other = SECONDARY_ID.load(Ordering::SeqCst);
        println!(
            "worker: x2APIC IDs {id} and {other}, timer ticks vCPU 0 {} vCPU 1 {} (expected {TICKS} each) {}",
            ticks(0).min(TICKS),
            ticks(1).min(TICKS),
            if ticked && id == 0 && other == 1 { "ok" } else { "MISMATCH" }
        );
        let mut answered = 0;
        let start = rt::now();
        for _ in 0..IPIS {
            let before = IPIS_SEEN[0].load(Ordering::SeqCst);
            send_ipi(1, IPI_VECTOR);
            if !wait_until(SMP_POLLS, || IPIS_SEEN[0].load(Ordering::SeqCst) > before) {
                break;
            }
            answered += 1;
        }
        let round_trip = (rt::now() - start) / IPIS;
        let seen_by_1 = IPIS_SEEN[1].load(Ordering::SeqCst);
        // Refused by the hypervisor (a console line says so): nobody may answer.
        let before = IPIS_SEEN[0].load(Ordering::SeqCst);
        send_ipi(OUTSIDE_ID, IPI_VECTOR);
        for _ in 0..1000 {
            rt::relax();
        }
        let stray = IPIS_SEEN[0].load(Ordering::SeqCst) - before
            + (IPIS_SEEN[1].load(Ordering::SeqCst) - seen_by_1);
        x2apic::disable();
        let ipis_ok = answered == IPIS && seen_by_1 == IPIS && stray == 0;
        println!(
            "worker: x2APIC IPIs {IPIS} sent, {answered} answered (expected {IPIS}), {stray} from the IPI to APIC ID {OUTSIDE_ID} {}; round trip {round_trip} TSC ticks (emulator clock: a proxy)",
            if ipis_ok { "ok" } else { "MISMATCH" }
        );
        let device_ok = device_step(false) & device_step(true);
        let restart_ok = restart_step();
        ticked && ipis_ok && device_ok && restart_ok
    }

    /// vCPU 1 taken down and brought back the way an OS takes a CPU offline and online: INIT
    /// resets it while it runs its command loop, STARTUP starts it again through the real-mode
    /// start code; it must come back up and take commands again (the manager's multi-vCPU dirty
    /// phase, later, depends on it).
    fn restart_step() -> bool {
        super::SECONDARY_CMD.store(0, Ordering::SeqCst);
        super::SECONDARY_ACK.store(0, Ordering::SeqCst);
        super::SECONDARY_UP.store(0, Ordering::SeqCst);
        let r = smp::start_by_startup(1, super::secondary_main);
        let up = r == 0
            && wait_until(SMP_POLLS, || {
                super::SECONDARY_UP.load(Ordering::SeqCst) != 0
            });
        println!(
            "worker: vCPU 1 reset by INIT and started again by STARTUP {}",
            if up { "ok" } else { "MISMATCH" }
        );
        up
    }
}
