//! The manager test guest: checks its own memory, then drives the management interface over the
//! worker it shares a region with (dirty logging: exactly the pages the worker wrote, then none;
//! aging: the worker's working set), restarts the partitions that get stopped (the hostile guest,
//! which attacks in a different way on each start), and powers off once every other partition has
//! ended. Each result line says what was expected, so the boot test can match it.
#![no_std]
#![no_main]

use test_guests::shared::*;
use test_guests::{call, nr, println, read, rt, state, wait_until, write, BootArgs};

/// Restarts granted to a partition that keeps getting stopped (the hostile guest attacks once
/// per run); none in the volume scenarios, which stop and start it themselves.
const RESTARTS: u64 = test_guests::HOSTILE_ATTACKS - 1;
/// The storm may slow the worker by at most this much (percent of its quiet run time). Measured
/// on the 2-core development host, where the emulator's own threads compete for the host CPUs
/// (see the storm boot tests for the figures); the bound leaves room for that noise, and a
/// hypervisor that let the storm reach the worker's CPUs (a lock held across the storm's exits,
/// a kick sent to the wrong CPU) would blow far past it.
const STORM_BOUND_PCT: i64 = 500;
/// Interrupts the storm must have delivered to the hostile guest before the worker is timed.
const STORM_WARMUP: u64 = 200;
/// Bitmap for dirty harvests: room for 64 MiB of target memory per KiB, 16 KiB = 512 MiB.
const BITMAP_BYTES: usize = 16 * 1024;
/// Hypercalls timed for the round-trip figure.
const BENCH_CALLS: u64 = 1000;
/// Polls before a wait is declared failed.
const POLLS: u64 = 400_000_000;
/// Harvests while the worker's vCPUs write, in the multi-vCPU dirty phase.
const SMP_HARVESTS: u64 = 12;
/// Pages the multi-vCPU phase can cover (two writers).
const SMP_MAX: usize = 2 * SMP_PAGES as usize;

#[repr(C, align(8))]
struct Bitmap([u8; BITMAP_BYTES]);

static mut BITMAP: Bitmap = Bitmap([0; BITMAP_BYTES]);

fn bitmap() -> &'static mut [u8; BITMAP_BYTES] {
    // SAFETY: the manager is single-threaded and only this function hands out the bitmap, one
    // use at a time.
    unsafe { &mut (*core::ptr::addr_of_mut!(BITMAP)).0 }
}

/// Bitmap bits per stage-2 page (the bitmap has one bit per 4 KiB).
const BITS_PER_PAGE: u64 = rt::PAGE / 4096;
/// Bits in the harvest bitmap.
const TOTAL_BITS: u64 = BITMAP_BYTES as u64 * 8;

/// One `DIRTY_HARVEST` of `target` into the (cleared) bitmap: the bits the hypervisor reported
/// and the bitmap, or its error code.
fn harvest_bitmap(target: u64) -> Result<(i64, &'static [u8; BITMAP_BYTES]), i64> {
    let map = bitmap();
    map.fill(0);
    let n = call(
        nr::DIRTY_HARVEST,
        target,
        map.as_ptr() as u64,
        BITMAP_BYTES as u64,
    );
    if n < 0 {
        Err(n)
    } else {
        Ok((n, map))
    }
}

/// Whether stage-2 page `page`, counted from bitmap bit `first`, has any of its bits set.
fn page_dirty(map: &[u8; BITMAP_BYTES], first: u64, page: u64) -> bool {
    let base = first + page * BITS_PER_PAGE;
    (base..base + BITS_PER_PAGE).any(|i| map[(i / 8) as usize] >> (i % 8) & 1 != 0)
}

/// Harvests `target`'s dirty pages: (bits the hypervisor reported, stage-2 pages set in the
/// workload window, stage-2 pages set in total).
fn harvest(target: u64) -> Result<(i64, u64, u64), i64> {
    let (n, map) = harvest_bitmap(target)?;
    let pages_in =
        |first: u64, count: u64| (0..count).filter(|&p| page_dirty(map, first, p)).count() as u64;
    let window = pages_in(rt::WORKLOAD_BIT, WORKLOAD_PAGES);
    let total = pages_in(0, TOTAL_BITS / BITS_PER_PAGE);
    Ok((n, window, total))
}

/// The last harvest (1..) each page of the multi-vCPU phase was seen dirty in (0: never); the
/// harvests also count dirty pages of the writers' window outside their page sets (strays).
static mut SEEN: [u64; SMP_MAX] = [0; SMP_MAX];

/// Harvest `h` of the multi-vCPU phase: records which writer pages it saw.
fn smp_harvest(target: u64, h: u64, outside: &mut u64) -> bool {
    let map = match harvest_bitmap(target) {
        Ok((_, map)) => map,
        Err(n) => {
            println!("manager: harvest {h} failed {n}");
            return false;
        }
    };
    // SAFETY: single-threaded; only this function and the check below touch SEEN.
    let seen = unsafe { &mut *core::ptr::addr_of_mut!(SEEN) };
    // The window the writers' pages lie in (on x86 the rest of the bitmap is ordinary guest
    // memory, stack and data included, so strays are only counted here).
    let window = ((TOTAL_BITS - rt::WORKLOAD_BIT) / BITS_PER_PAGE).min(smp_first_page(2));
    for p in 0..window {
        if !page_dirty(map, rt::WORKLOAD_BIT, p) {
            continue;
        }
        let slot = (0..2).find_map(|v| {
            let f = smp_first_page(v);
            (p >= f && p < f + SMP_PAGES).then(|| (v * SMP_PAGES + p - f) as usize)
        });
        match slot {
            Some(i) => seen[i] = h,
            None => *outside += 1,
        }
    }
    true
}

/// The multi-vCPU dirty scenario: the worker's vCPUs write their pages over and over while this
/// harvests `SMP_HARVESTS` times; then one last harvest after they stop. The union of the
/// harvests must equal the set of pages written, and every page's last write must show up in a
/// harvest no earlier than the epoch the writer saw before that write (a write lost across a
/// shootdown would leave its page's last sighting too early).
fn smp_dirty_scenario(sh: u64, w: u64) -> bool {
    write(sh + EPOCH, 0);
    write(sh + SMP_STOP, 0);
    write(sh + SMP_WRITERS, 0);
    // SAFETY: single-threaded.
    unsafe { (*core::ptr::addr_of_mut!(SEEN)).fill(0) };
    let r = call(nr::DIRTY_LOG_START, w, 0, 0);
    write(sh + COMMAND, CMD_DIRTY_SMP);
    let mut outside = 0;
    let mut ok = r == 0;
    for h in 1..=SMP_HARVESTS {
        write(sh + EPOCH, h);
        ok &= smp_harvest(w, h, &mut outside);
        for _ in 0..2000 {
            rt::relax();
        }
    }
    write(sh + SMP_STOP, 1);
    if !wait_until(POLLS, || read(sh + ACK) == CMD_DIRTY_SMP) {
        println!("manager: the worker did not finish the multi-vCPU dirty phase");
        return false;
    }
    let last = SMP_HARVESTS + 1;
    write(sh + EPOCH, last);
    ok &= smp_harvest(w, last, &mut outside);
    call(nr::DIRTY_LOG_STOP, w, 0, 0);
    let writers = read(sh + SMP_WRITERS).min(2);
    // SAFETY: single-threaded.
    let seen = unsafe { &*core::ptr::addr_of!(SEEN) };
    let (mut written, mut union, mut late, mut lost) = (0, 0, 0, 0);
    for i in 0..(writers * SMP_PAGES) as usize {
        let record = read(sh + SMP_RECORDS + i as u64 * 8);
        written += (record != 0) as u64;
        union += (seen[i] != 0) as u64;
        if record != 0 && seen[i] == 0 {
            lost += 1;
        } else if record != 0 && seen[i] < record - 1 {
            late += 1;
        }
    }
    let good = ok && writers >= 1 && written == union && lost == 0 && late == 0 && outside == 0;
    println!(
        "manager: {writers} vCPUs wrote {written} pages over {last} harvests, union of harvests \
         {union} pages, {lost} never seen, {late} last writes missed, {outside} strays {}",
        if good { "ok" } else { "MISMATCH" }
    );
    good
}

fn checksum() -> (u64, u64) {
    // A buffer of the manager's own memory, summed after filling.
    let base = core::ptr::addr_of!(BITMAP) as u64;
    let mut want = 0u64;
    for i in 0..(BITMAP_BYTES as u64 / 8) {
        let v = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        write(base + i * 8, v);
        want = want.wrapping_add(v);
    }
    let got = (0..(BITMAP_BYTES as u64 / 8)).fold(0u64, |s, i| s.wrapping_add(read(base + i * 8)));
    (got, want)
}

fn command(sh: u64, cmd: u64) -> bool {
    write(sh + COMMAND, cmd);
    wait_until(POLLS, || read(sh + ACK) == cmd)
}

/// The dirty-logging and aging scenario over the worker. True if every result matched.
fn worker_scenario(sh: u64) -> bool {
    if !wait_until(POLLS, || read(sh + READY) != 0) {
        println!("manager: the worker never became ready");
        return false;
    }
    let w = read(sh + READY) - 1;
    println!("manager: worker is partition {w}");
    let mut ok = true;

    println!(
        "manager: dirty log start -> {}",
        call(nr::DIRTY_LOG_START, w, 0, 0)
    );
    if !command(sh, CMD_DIRTY) {
        println!("manager: the worker did not finish the dirty phase");
        return false;
    }
    match harvest(w) {
        Ok((bits, window, total)) => {
            let good = window == DIRTY_PAGES;
            ok &= good;
            println!(
                "manager: dirty pages {window} (expected {DIRTY_PAGES}) {}",
                if good { "ok" } else { "MISMATCH" }
            );
            println!(
                "manager: dirty total {total} pages, {bits} bits of 4 KiB (workload + flag page)"
            );
        }
        Err(e) => {
            println!("manager: dirty harvest failed {e}");
            ok = false;
        }
    }
    match harvest(w) {
        Ok((bits, window, total)) => {
            ok &= window == 0;
            println!(
                "manager: second harvest {window} {} ({total} pages, {bits} bits in all)",
                if window == 0 { "ok" } else { "MISMATCH" }
            );
        }
        Err(e) => {
            println!("manager: second harvest failed {e}");
            ok = false;
        }
    }
    println!(
        "manager: dirty log stop -> {}",
        call(nr::DIRTY_LOG_STOP, w, 0, 0)
    );

    println!("manager: age start -> {}", call(nr::AGE_START, w, 0, 0));
    if !command(sh, CMD_AGE) {
        println!("manager: the worker did not finish the aging phase");
        return false;
    }
    let young = call(nr::AGE_HARVEST, w, 0, 0);
    let pages = young.max(0) as u64 / (rt::PAGE / 4096);
    let good = (AGE_PAGES..=AGE_PAGES + AGE_SLACK).contains(&pages);
    ok &= good;
    println!(
        "manager: working set {pages} pages (expected {AGE_PAGES} to {}) {}",
        AGE_PAGES + AGE_SLACK,
        if good { "ok" } else { "MISMATCH" }
    );

    ok &= smp_dirty_scenario(sh, w);

    let mut info = [0u64; 2 * 8];
    let n = call(nr::VCPU_INFO, w, info.as_mut_ptr() as u64, 16 * 8);
    for v in 0..n.max(0) as usize {
        let r = &info[v * 8..v * 8 + 8];
        println!(
            "manager: worker vCPU {v} on cpu{}: state {}, {} exits, {} timer, {} IPI, {} device \
             interrupts, {} upcalls, {} IPIs sent",
            r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]
        );
    }

    let mut counters = [0u64; 13];
    let r = call(nr::EXIT_COUNTERS, w, counters.as_mut_ptr() as u64, 13 * 8);
    println!(
        "manager: worker exits: {} hypercalls, {} stage-2 faults (call -> {r})",
        counters[0], counters[3]
    );
    write(sh + COMMAND, CMD_FINISH);
    ok
}

/// The hostile partition's interrupts so far: (timer, IPI) upcalls delivered to its vCPU 0.
fn interrupts_of(h: u64) -> (u64, u64) {
    let mut info = [0u64; 8];
    if call(nr::VCPU_INFO, h, info.as_mut_ptr() as u64, 8 * 8) < 1 {
        return (0, 0);
    }
    (info[3], info[4])
}

fn hypercalls_of(h: u64) -> u64 {
    let mut counters = [0u64; 13];
    call(nr::EXIT_COUNTERS, h, counters.as_mut_ptr() as u64, 13 * 8);
    counters[0]
}

fn state_of(id: u64) -> i64 {
    call(nr::PARTITION_STATE, id, 0, 0)
}

fn wait_state(id: u64, want: i64) -> bool {
    wait_until(POLLS, || state_of(id) == want)
}

/// Issue 13, the storm: the worker's timed work with the hostile partition quiet (its first run
/// only arms and finishes), then again while it floods itself with interrupts (started again,
/// and timed only once the flood is under way); then the hostile partition is stopped. The
/// slowdown is the figure, with its bound.
fn storm_scenario(sh: u64, h: u64) -> bool {
    if !wait_until(POLLS, || read(sh + READY) != 0) || !wait_state(h, state::FINISHED) {
        println!("manager: storm: the worker or the hostile partition never got ready MISMATCH");
        return false;
    }
    if !command(sh, CMD_TIMED_QUIET) {
        println!("manager: storm: the worker did not finish its quiet run MISMATCH");
        return false;
    }
    let quiet = read(sh + TIMED_TICKS).max(1);
    let (t0, i0) = interrupts_of(h);
    let r = call(nr::PARTITION_START, h, 0, 0);
    let flooding = wait_until(POLLS, || {
        let (t, i) = interrupts_of(h);
        t + i >= t0 + i0 + STORM_WARMUP
    });
    if r != 0 || !flooding {
        println!("manager: storm: the storm did not start (start -> {r}) MISMATCH");
        return false;
    }
    let timed = command(sh, CMD_TIMED_STORM);
    let stormy = read(sh + TIMED_TICKS);
    let (t1, i1) = interrupts_of(h);
    let stop = call(nr::PARTITION_STOP, h, 0, 0);
    let stopped = wait_state(h, state::STOPPED);
    let pct = (stormy as i64 - quiet as i64) * 100 / quiet as i64;
    let (timer, ipi) = (t1 - t0, i1 - i0);
    let good = timed && stop == 0 && stopped && pct <= STORM_BOUND_PCT;
    println!(
        "manager: storm: worker run time {quiet} ticks quiet, {stormy} under the storm: slowdown \
         {pct}% (bound {STORM_BOUND_PCT}%); the storm took {} interrupts ({timer} timer, {ipi} \
         IPI), then stop -> {stop} {}",
        timer + ipi,
        if good { "ok" } else { "MISMATCH" }
    );
    good
}

/// Issue 13, the guest that never exits: the hostile partition spins with its interrupts masked
/// from its first instruction after two console lines; it is stopped (the hypervisor prints how
/// long that took), started again, spins again, and is stopped again.
fn spin_scenario(h: u64) -> bool {
    let mut ok = true;
    for round in 0..2u64 {
        // Its two console lines of this run are out: it is in its loop (or about to be).
        let printed = wait_until(POLLS, || {
            state_of(h) == state::RUNNING && hypercalls_of(h) >= 2 * (round + 1)
        });
        for _ in 0..20_000 {
            rt::relax();
        }
        let r = call(nr::PARTITION_STOP, h, 0, 0);
        let stopped = wait_state(h, state::STOPPED);
        let good = printed && r == 0 && stopped;
        ok &= good;
        println!(
            "manager: spin: partition {h} stopped while spinning (round {}) -> {r} {}",
            round + 1,
            if good { "ok" } else { "MISMATCH" }
        );
        if round == 0 {
            println!(
                "manager: spin: restart -> {}",
                call(nr::PARTITION_START, h, 0, 0)
            );
        }
    }
    ok
}

/// x86: CPUID exits to the hypervisor, which counts the exit and answers for the partition: the
/// hypervisor leaves name Septum and its ABI, and neither VMX nor SVM shows (no nesting).
#[cfg(target_arch = "x86_64")]
fn cpuid_check(me: u64, version: i64) -> bool {
    const QUERIES: u64 = 4;
    let cpuid_exits = || {
        let mut counters = [0u64; 13];
        call(nr::EXIT_COUNTERS, me, counters.as_mut_ptr() as u64, 13 * 8);
        counters[5]
    };
    let before = cpuid_exits();
    let [_, b, c, d] = rt::cpuid(0x4000_0000);
    let [abi, ..] = rt::cpuid(0x4000_0001);
    let [_, _, basic, _] = rt::cpuid(1);
    let [_, _, extended, _] = rt::cpuid(0x8000_0001);
    let counted = cpuid_exits() - before;
    let mut name = [0u8; 12];
    for (i, w) in [b, c, d].iter().enumerate() {
        name[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    let name = core::str::from_utf8(&name).unwrap_or("?");
    // Leaf 1 ECX: VMX bit 5, hypervisor bit 31; leaf 8000_0001 ECX: SVM bit 2.
    let hidden = basic & (1 << 5) == 0 && basic >> 31 == 1 && extended & (1 << 2) == 0;
    let good = name == "SeptumSeptum" && i64::from(abi) == version && hidden && counted == QUERIES;
    println!(
        "manager: cpuid {name} ABI {}.{}, VMX and SVM hidden {}, {counted} exits counted (expected {QUERIES}) {}",
        abi >> 16,
        abi & 0xffff,
        if hidden { "yes" } else { "no" },
        if good { "ok" } else { "MISMATCH" }
    );
    good
}

/// What the Linux partition's `/init` writes (a 32 MiB file on its initramfs), in 4 KiB pages:
/// the floor of its dirty union and of its peak working set.
const LINUX_WRITTEN_PAGES: u64 = 32 * 256;
/// Spins (no hypercall) between two harvests of the Linux partition: about 0.3 s of QEMU TCG
/// (measured: 20M took 3 s), a few seconds of Bochs, either way many harvests over a boot.
#[cfg(target_arch = "x86_64")]
const LINUX_HARVEST_GAP: u64 = 2_000_000;
/// LoongArch's spin is about ten times quicker under QEMU-LVZ (measured: 2M spins and a harvest
/// took 31 ms). Each harvest write-protects Linux's memory again (LoongArch has no stage-2
/// dirty bit), so harvesting much more often than x86 would mostly measure refaults.
#[cfg(target_arch = "loongarch64")]
const LINUX_HARVEST_GAP: u64 = 24_000_000;
/// Harvests at most, so a Linux that never ends cannot keep the manager here forever.
const LINUX_MAX_HARVESTS: u64 = 100_000;

static mut UNION: Bitmap = Bitmap([0; BITMAP_BYTES]);

/// Turns dirty logging and aging on for Linux partition `id`, first thing, so nothing it writes
/// while the manager runs its other scenarios is missed (a small kernel reaches `/init` in a
/// second or two); true if both started.
fn linux_watch_start(id: u64) -> bool {
    let dirty = call(nr::DIRTY_LOG_START, id, 0, 0);
    let age = call(nr::AGE_START, id, 0, 0);
    println!(
        "manager: watching Linux partition {id}: dirty log start -> {dirty}, age start -> {age}"
    );
    dirty == 0 && age == 0
}

/// Watches Linux partition `id` (logging and aging started by [`linux_watch_start`]) to the end
/// of its run: a harvest every [`LINUX_HARVEST_GAP`] polls (the union of all of them is every
/// page Linux wrote), and aging windows between them (the largest is its working set),
/// `between` run after each harvest. Checks both against what `/init` writes, and prints the
/// harvest's cost and the partition's exits by kind.
fn linux_watch(id: u64, between: &mut dyn FnMut()) -> bool {
    // SAFETY: single-threaded; only this function uses UNION.
    let union = unsafe { &mut (*core::ptr::addr_of_mut!(UNION)).0 };
    let (mut harvests, mut ticks, mut peak_young) = (0u64, 0u64, 0i64);
    let ended = || {
        let s = call(nr::PARTITION_STATE, id, 0, 0);
        s == state::STOPPED || s == state::FINISHED
    };
    loop {
        // One more harvest after the end catches the last writes.
        let last = ended() || harvests >= LINUX_MAX_HARVESTS;
        let t0 = rt::now();
        let map = match harvest_bitmap(id) {
            Ok((_, map)) => map,
            Err(e) => {
                println!("manager: Linux dirty harvest -> {e} MISMATCH");
                return false;
            }
        };
        ticks += rt::now() - t0;
        harvests += 1;
        for (u, m) in union.iter_mut().zip(map.iter()) {
            *u |= *m;
        }
        peak_young = peak_young.max(call(nr::AGE_HARVEST, id, 0, 0));
        if last {
            break;
        }
        between();
        for _ in 0..LINUX_HARVEST_GAP {
            core::hint::spin_loop();
        }
    }
    call(nr::DIRTY_LOG_STOP, id, 0, 0);
    let written: u64 = union.iter().map(|b| u64::from(b.count_ones())).sum();
    // The bitmap holds one bit per 4 KiB of the partition's memory and nothing else, so the
    // counts cannot pass its size; the floor is what `/init` itself wrote.
    let dirty_ok = written >= LINUX_WRITTEN_PAGES;
    let young = peak_young.max(0) as u64;
    let young_ok = young >= LINUX_WRITTEN_PAGES;
    println!(
        "manager: Linux wrote {written} pages over {harvests} harvests (expected at least {LINUX_WRITTEN_PAGES}) {}",
        if dirty_ok { "ok" } else { "MISMATCH" }
    );
    println!(
        "manager: Linux working set peak {young} pages (expected at least {LINUX_WRITTEN_PAGES}) {}",
        if young_ok { "ok" } else { "MISMATCH" }
    );
    println!(
        "manager: Linux dirty harvest mean {} ticks per harvest (emulator clock: a proxy)",
        ticks / harvests.max(1)
    );
    // Exits by kind over the whole run (`vcpu::ExitKind` order).
    let mut c = [0u64; 13];
    call(nr::EXIT_COUNTERS, id, c.as_mut_ptr() as u64, 13 * 8);
    println!(
        "manager: Linux exits: {} hypercall, {} MMIO, {} port, {} stage-2 fault, {} HLT, {} CPUID, \
         {} MSR, {} interrupt, {} shutdown, {} other",
        c[0],
        c[1],
        c[2],
        c[3],
        c[4],
        c[5],
        c[6],
        c[8],
        c[9],
        c[7] + c[10] + c[11] + c[12]
    );
    dirty_ok && young_ok
}

#[no_mangle]
fn guest_main(args: BootArgs) -> ! {
    let me = call(nr::SELF_ID, 0, 0, 0);
    let version = call(nr::VERSION, 0, 0, 0);
    let count = call(nr::PARTITION_COUNT, 0, 0, 0);
    println!(
        "manager: partition {me} of {count}, ABI {}.{}",
        version >> 16,
        version & 0xffff
    );
    println!(
        "manager: hypercall round trip {} counter ticks (emulator clock proxy, mean of {BENCH_CALLS})",
        test_guests::hypercall_round_trip(BENCH_CALLS)
    );
    let (got, want) = checksum();
    let mut ok = got == want;
    #[cfg(target_arch = "x86_64")]
    {
        ok &= cpuid_check(me as u64, version);
    }
    println!(
        "manager: checksum {got:#018x} (expected {want:#018x}) {}",
        if ok { "ok" } else { "MISMATCH" }
    );
    let linux = test_guests::linux_to_watch(args.flags);
    let watching = linux.map(linux_watch_start);
    let volume = args.flags & test_guests::volume::ANY;
    // The hostile partition: the one that is neither this one nor the worker.
    let hostile = |sh: u64| {
        let w = read(sh + READY).checked_sub(1);
        (0..count.max(0) as u64).find(|&id| id != me as u64 && Some(id) != w)
    };
    let worker = if args.shared != 0 {
        if volume != 0 && !wait_until(POLLS, || read(args.shared + READY) != 0) {
            println!("manager: the worker never became ready MISMATCH");
            ok = false;
        }
        match (volume, hostile(args.shared)) {
            (0, _) => {}
            (_, None) => {
                println!("manager: no hostile partition for the volume scenario MISMATCH");
                ok = false;
            }
            (v, Some(h)) if v & test_guests::volume::STORM != 0 => {
                ok &= storm_scenario(args.shared, h)
            }
            (v, Some(h)) if v & test_guests::volume::SPIN != 0 => ok &= spin_scenario(h),
            // The fuzzer runs by itself; the hypervisor's self-check judges it at the end.
            _ => {}
        }
        ok &= worker_scenario(args.shared);
        read(args.shared + READY).checked_sub(1)
    } else {
        println!("manager: no shared region, no worker scenario");
        None
    };

    let mut restarts = [0u64; 16];
    let allowed = if volume != 0 { 0 } else { RESTARTS };
    if let (Some(id), Some(started)) = (linux, watching) {
        ok &= started;
        // A neighbour stopped while Linux runs (the hostile guest) is restarted meanwhile, so
        // its attacks come while Linux boots.
        let mut restart_others = || {
            for other in (0..count.max(0) as u64).filter(|&o| o != me as u64 && o != id) {
                let slot = &mut restarts[other as usize % 16];
                if Some(other) != worker && state_of(other) == state::STOPPED && *slot < allowed {
                    *slot += 1;
                    let r = call(nr::PARTITION_START, other, 0, 0);
                    println!("manager: restart {} of partition {other} -> {r}", *slot);
                }
            }
        };
        if started {
            ok &= linux_watch(id, &mut restart_others);
        }
    }

    // Every other partition must end: finished by itself, or stopped and then restarted until
    // its restarts run out.
    let others = (0..count.max(0) as u64).filter(|&id| id != me as u64);
    for id in others {
        loop {
            let ended = wait_until(POLLS, || {
                let s = call(nr::PARTITION_STATE, id, 0, 0);
                s == state::STOPPED || s == state::FINISHED
            });
            let s = call(nr::PARTITION_STATE, id, 0, 0);
            if !ended {
                println!("manager: partition {id} still running, stopping it");
                call(nr::PARTITION_STOP, id, 0, 0);
                ok = false;
                break;
            }
            let slot = &mut restarts[id as usize % 16];
            if s == state::STOPPED && *slot < allowed && Some(id) != worker {
                *slot += 1;
                let r = call(nr::PARTITION_START, id, 0, 0);
                println!("manager: restart {} of partition {id} -> {r}", *slot);
                continue;
            }
            println!(
                "manager: partition {id} {} after {} restarts",
                if s == state::FINISHED {
                    "finished"
                } else {
                    "stopped"
                },
                *slot
            );
            break;
        }
    }
    println!("manager: done {}", if ok { "ok" } else { "with FAILURES" });
    test_guests::power_off(if ok { 0 } else { 1 })
}
