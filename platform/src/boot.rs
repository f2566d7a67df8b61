//! The arch-neutral boot sequence: console and log first, then what the CPU and firmware report,
//! memory, the partitions built, every CPU joining (each then runs its partition), and the end
//! of the run once every partition has ended. Arch entry code calls in here.

use crate::arch::{Current, Machine, Outcome};
use crate::board::BOARD;
use crate::boot_info::BootInfo;
use board_config::MAX_CPUS;
use core::sync::atomic::{AtomicUsize, Ordering};

static ONLINE: AtomicUsize = AtomicUsize::new(0);

fn fail(what: &str) -> ! {
    log::error!("boot failed: {what}");
    Current::exit(Outcome::Failure)
}

fn enable_virtualization(cpu: usize) {
    match Current::enable_virtualization(cpu) {
        Ok(Some(what)) => log::info!("virt: {what} enabled on cpu{cpu}"),
        Ok(None) => log::info!("virt: no hardware virtualization on cpu{cpu}"),
        Err(e) => fail(e),
    }
}

/// The boot CPU's Rust entry.
pub fn primary_main(info: BootInfo) -> ! {
    crate::cmdline::set(info.cmdline);
    crate::console::init(BOARD.console.clock_hz, BOARD.console.baud);
    crate::logger::init(info.cmdline);
    log::info!(
        "Septum {} on board {} ({:?}, {} CPUs)",
        env!("CARGO_PKG_VERSION"),
        BOARD.name,
        BOARD.arch,
        BOARD.cpus
    );
    log::info!("boot: {}, cmdline {:?}", info.firmware, info.cmdline);
    Current::report_features();
    for r in info.ram.as_slice() {
        log::info!(
            "memory: ram [{:#x}, {:#x}) {} MiB",
            r.start,
            r.end(),
            r.size >> 20
        );
    }
    for r in info.reserved.as_slice() {
        log::info!("memory: reserved [{:#x}, {:#x})", r.start, r.end());
    }
    crate::memory::init(&info);
    if let Err(e) = crate::memory::self_test() {
        fail(e);
    }
    // Lets a boot test prove that a panic ends the run with a failing status.
    if info
        .cmdline
        .split_ascii_whitespace()
        .any(|w| w == "panic=1")
    {
        panic!("panic requested on the command line");
    }
    ONLINE.fetch_add(1, Ordering::SeqCst);
    enable_virtualization(0);
    #[cfg(septum_partitions)]
    if let Err(e) = crate::partitions::build_all() {
        fail(e);
    }

    let wanted = (BOARD.cpus as usize).min(MAX_CPUS);
    let started = Current::start_secondaries(wanted - 1);
    // Bounded wait: a CPU that never reports is a boot failure, not a hang.
    let mut spins = 0u64;
    while ONLINE.load(Ordering::SeqCst) < started + 1 && spins < 2_000_000_000 {
        core::hint::spin_loop();
        spins += 1;
    }
    let online = ONLINE.load(Ordering::SeqCst);
    if online < started + 1 {
        fail("a secondary CPU did not report in");
    }
    log::info!("smp: {online} of {} CPUs online", BOARD.cpus);
    log::info!("boot complete");
    #[cfg(septum_partitions)]
    run_partitions();
    Current::exit(Outcome::Success)
}

/// The boot CPU's share of the partitions: it runs its own (the manager on the test boards),
/// then waits, bounded, for every other partition to end, and fails the run unless they all
/// ended as the board's scenario expects.
#[cfg(septum_partitions)]
fn run_partitions() {
    if BOARD.partitions.is_empty() {
        return;
    }
    if !partitions_can_run() {
        log::info!(
            "partitions: skipped, {} built but none can run on this machine",
            BOARD.partitions.len()
        );
        return;
    }
    let Some(all) = crate::partitions::get() else {
        return;
    };
    all.run_cpu(0, || false);
    let mut spins = 0u64;
    while !all.all_ended() && spins < 4_000_000_000 {
        core::hint::spin_loop();
        spins += 1;
    }
    if !all.summary() {
        fail("partitions did not end as expected");
    }
    if !crate::partitions::self_check(all) {
        fail("the hypervisor's self-check failed");
    }
    log::info!("partitions: all ended as expected");
}

/// Whether the machine has the hardware the partition backend needs (`PartitionArch::available`).
#[cfg(septum_partitions)]
fn partitions_can_run() -> bool {
    <Current as partition::arch::PartitionArch>::available()
}

/// A secondary CPU's Rust entry, on the stack from [`cpu_stack_top`].
pub fn secondary_main(cpu: usize) -> ! {
    log::info!("smp: cpu{cpu} online");
    enable_virtualization(cpu);
    ONLINE.fetch_add(1, Ordering::SeqCst);
    #[cfg(septum_partitions)]
    if let Some(all) = crate::partitions::get().filter(|_| partitions_can_run()) {
        all.run_cpu(cpu, || true);
    }
    Current::park()
}
