//! The worker test guest: fills and checks a set of pages (printing checksums), then, if it shares
//! a region with the manager, follows the manager's commands on that region so the dirty-logging
//! and aging scenarios see an exact, known set of pages: in the dirty phase it writes exactly
//! `DIRTY_PAGES` workload pages, in the aging phase it reads exactly `AGE_PAGES`. Between phases it
//! only reads the shared page, so nothing else it does shows up as dirty.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
use test_guests::shared::*;
use test_guests::{println, read, rt, wait_until, write, BootArgs};

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
    if args.shared == 0 {
        println!("worker: no shared region, no manager scenario");
        test_guests::power_off(if ok { 0 } else { 1 });
    }
    let sh = args.shared;
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
    test_guests::power_off(if ok && ok2 { 0 } else { 1 })
}
