//! Partitions, arch-neutral: each [`Partition`] is built from its `board_config::Partition` (its
//! stage-2 table made with `mmu` from the board file's regions, huge pages where alignment
//! allows, emulated device ranges left unmapped so accesses trap), runs on the CPUs the board
//! gives it, and moves through the states created → running → stopped (with a reason) or
//! finished (with a code), and back to running when the manager starts it again.
//!
//! The architecture plugs in through [`arch::PartitionArch`] (the only seam); the exit handling
//! (`handler`), hypercalls (`hypercall`), management calls (`manage`), virtual devices
//! (`devices`), guest memory access (`guest_mem`), table pages (`frames`) and cross-CPU requests
//! (`remote`) are written once here. Multi-vCPU partitions run only their first vCPU for now
//! (issue 9); their other CPUs say so and idle.

pub mod arch;
mod devices;
mod frames;
mod guest_mem;
mod handler;
mod hypercall;
mod manage;
mod remote;

use crate::arch::Current;
use crate::board::BOARD;
use alloc::vec::Vec;
use arch::{GuestBoot, PartitionArch};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use mmu::{FlushBatch, Gpa, GpaRange, Hpa, HugePolicy, LeafAttrs, MemType, Perms, StageTwoTable};
use spin::{Mutex, Once};
use vcpu::{ExitCounters, ExitKind, StopReason};

// Used by backends that build a table of their own (LoongArch's high-half invalid root).
#[allow(unused_imports)]
pub use frames::TableFrames;
pub use remote::PartitionFlush;
pub use vcpu::PartitionId;

/// The stage-2 table type of this architecture.
pub type Table =
    StageTwoTable<<Current as PartitionArch>::Format, frames::TableFrames, PartitionFlush>;

/// Where a partition is in its life; the numbers are what `PARTITION_STATE` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Built, never run.
    Created = 0,
    /// Running (or about to, after a start request).
    Running = 1,
    /// Stopped by a violation or by the manager.
    Stopped = 2,
    /// Powered off by itself.
    Finished = 3,
}

impl State {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Created,
            1 => Self::Running,
            2 => Self::Stopped,
            _ => Self::Finished,
        }
    }
}

/// One partition.
pub struct Partition {
    pub id: PartitionId,
    pub config: &'static board_config::Partition,
    table: Table,
    state: AtomicU8,
    /// The manager asked for this partition to stop; its CPU stops it at the next exit.
    stop_requested: AtomicBool,
    /// The manager asked for this stopped partition to run again.
    start_requested: AtomicBool,
    /// Completed starts (the guest gets the count of earlier ones at entry).
    starts: AtomicU64,
    /// Exits per `ExitKind`, over all runs.
    exits: [AtomicU64; ExitKind::COUNT],
    /// How the last run ended, for the summary.
    last_end: Mutex<Option<StopReason>>,
    /// Dirty logging is on.
    dirty_logging: AtomicBool,
}

impl Partition {
    /// The partition's name from the board file.
    pub fn name(&self) -> &'static str {
        self.config.name
    }

    /// The stage-2 table.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The current state.
    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::SeqCst))
    }

    fn set_state(&self, s: State) {
        self.state.store(s as u8, Ordering::SeqCst);
    }

    /// How the last run ended (`None` while it has not ended).
    pub fn last_end(&self) -> Option<StopReason> {
        *self.last_end.lock()
    }

    /// Exit counts over all runs.
    pub fn exit_counters(&self) -> ExitCounters {
        let mut c = ExitCounters::default();
        for (d, s) in c.counts.iter_mut().zip(&self.exits) {
            *d = s.load(Ordering::Relaxed);
        }
        c
    }

    fn count_exit(&self, kind: ExitKind) {
        self.exits[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Every region of guest memory, in board-file order, as guest-physical ranges.
    fn regions(&self) -> impl Iterator<Item = (&'static board_config::Region, GpaRange)> {
        self.config.memory.iter().map(|r| {
            (
                r,
                GpaRange {
                    start: Gpa(r.guest),
                    end: Gpa(r.guest + r.size),
                },
            )
        })
    }
}

static PARTITIONS: Once<Vec<Partition>> = Once::new();

/// All partitions (empty before [`build_all`]).
pub fn all() -> &'static [Partition] {
    PARTITIONS.get().map_or(&[], |v| v.as_slice())
}

/// A partition by id.
pub fn get(id: PartitionId) -> Option<&'static Partition> {
    all().get(id as usize)
}

fn attrs(r: &board_config::Region) -> LeafAttrs {
    let mut perms = Perms::NONE;
    if r.access.read {
        perms = perms | Perms::R;
    }
    if r.access.write {
        perms = perms | Perms::W;
    }
    if r.access.exec {
        perms = perms | Perms::X;
    }
    let mut a = LeafAttrs::ram(perms);
    a.mem = match r.cache {
        board_config::Cache::Cacheable => MemType::WriteBack,
        board_config::Cache::Device => MemType::Uncached,
    };
    // Mapped dirty where writable, so a partition does not take a fault on the first write to
    // every page; dirty logging cleans the pages when it starts.
    a.dirty = r.access.write;
    a
}

fn build(
    id: PartitionId,
    config: &'static board_config::Partition,
) -> Result<Partition, mmu::Error> {
    let table = Table::new(
        Default::default(),
        frames::TableFrames,
        PartitionFlush { id },
    )?;
    let mut batch = FlushBatch::new();
    let mut maps = |guest: u64, host: u64, size: u64, a: LeafAttrs| {
        let range = GpaRange {
            start: Gpa(guest),
            end: Gpa(guest + size),
        };
        table.map_range(range, Hpa(host), a, HugePolicy::LARGEST, &mut batch)
    };
    for r in config.memory {
        maps(r.guest, r.host, r.size, attrs(r))?;
    }
    // Passthrough windows are the partition's own devices: identity, uncached, no execute.
    let device = LeafAttrs {
        mem: MemType::Uncached,
        ..LeafAttrs::ram(Perms::R | Perms::W)
    };
    for w in config.mmio {
        maps(w.start, w.start, w.size, device)?;
    }
    if let Some(board_config::PassthroughUart {
        access: board_config::UartAccess::Mmio { base },
        ..
    }) = config.uart
    {
        let page = BOARD.base_page;
        maps(base & !(page - 1), base & !(page - 1), page, device)?;
    }
    let _ = table.commit(batch);
    Ok(Partition {
        id,
        config,
        table,
        state: AtomicU8::new(State::Created as u8),
        stop_requested: AtomicBool::new(false),
        start_requested: AtomicBool::new(false),
        starts: AtomicU64::new(0),
        exits: [const { AtomicU64::new(0) }; ExitKind::COUNT],
        last_end: Mutex::new(None),
        dirty_logging: AtomicBool::new(false),
    })
}

/// Builds every partition of the board (on the boot CPU, before the other CPUs start). A
/// partition that cannot be built fails the boot: the board file promised it.
pub fn build_all() -> Result<(), &'static str> {
    log::info!("partition: backend {}", Current::backend());
    let mut v = Vec::new();
    for (i, config) in BOARD.partitions.iter().enumerate() {
        let p = build(i as PartitionId, config).map_err(|e| {
            log::error!("partition {}: stage-2 table: {e:?}", config.name);
            "a partition's stage-2 table could not be built"
        })?;
        let stats = p.table.stats();
        log::info!(
            "partition {} (id {i}): cpus {:?}, {} regions, stage-2 root {:#x}, {:?}{}",
            config.name,
            config.cpus,
            config.memory.len(),
            p.table.root().as_u64(),
            stats,
            if config.manager { ", manager" } else { "" }
        );
        v.push(p);
    }
    PARTITIONS.call_once(|| v);
    Ok(())
}

/// The partition CPU `cpu` belongs to and its vCPU number there.
pub fn of_cpu(cpu: usize) -> Option<(&'static Partition, usize)> {
    all().iter().find_map(|p| {
        p.config
            .cpus
            .iter()
            .position(|&c| c as usize == cpu)
            .map(|v| (p, v))
    })
}

/// Copies the partition's image to its memory at the load address.
fn load_image(p: &Partition) -> Result<(), &'static str> {
    let bytes: &[u8] = match p.config.image {
        board_config::Image::File { bytes, .. } => bytes,
        board_config::Image::Guest(g) => match g {
            board_config::TestGuest::Worker => crate::guests::WORKER,
            board_config::TestGuest::Manager => crate::guests::MANAGER,
            board_config::TestGuest::Hostile => crate::guests::HOSTILE,
        },
    };
    if bytes.is_empty() {
        return Err("the image is empty (test guests not built in)");
    }
    let dst = guest_mem::host_slice(p, p.config.load, bytes.len() as u64, false)
        .ok_or("the image does not fit in the memory at its load address")?;
    dst.copy_from_slice(bytes);
    Ok(())
}

/// The boot arguments of a run (see [`GuestBoot::args`]). The shared region passed is the one
/// shared with the manager (for the manager, its first shared region): that is the region the
/// management scenario talks over; other links are the partitions' own business.
fn boot_args(p: &Partition, starts: u64) -> GuestBoot {
    let manager = BOARD.manager().map(|m| m.name);
    let shared = p
        .config
        .memory
        .iter()
        .find(|r| match r.shared_with {
            Some(other) => p.config.manager || Some(other) == manager,
            None => false,
        })
        .map_or((0, 0), |r| (r.guest, r.size));
    GuestBoot {
        entry: p.config.entry,
        args: [u64::from(p.id), 0, starts, shared.0, shared.1],
    }
}

/// Runs partition `p`'s first vCPU once on the calling CPU, from a fresh copy of its image until
/// it stops; records and prints how it ended.
fn run_once(p: &'static Partition, cpu: usize) {
    let starts = p.starts.fetch_add(1, Ordering::SeqCst);
    p.stop_requested.store(false, Ordering::SeqCst);
    *p.last_end.lock() = None;
    p.set_state(State::Running);
    if let Err(e) = load_image(p) {
        log::error!("partition {}: {e}", p.name());
        *p.last_end.lock() = Some(StopReason::Violation {
            what: "image could not be loaded",
            addr: p.config.load,
        });
        p.set_state(State::Stopped);
        return;
    }
    remote::begin_run(cpu, p.id);
    crate::println!(
        "partition {}: vCPU 0 starts on cpu{cpu} at {:#x} (run {starts})",
        p.name(),
        p.config.entry
    );
    let mut vcpu = Current::create_vcpu(p, boot_args(p, starts));
    let mut handler = handler::Handler::new(p, cpu);
    let mut counters = ExitCounters::default();
    let why = vcpu::run_until_stopped(&mut vcpu, &mut handler, &mut counters);
    remote::end_run(cpu);
    *p.last_end.lock() = Some(why);
    match why {
        StopReason::PowerOff { code } => {
            crate::println!("partition {} finished (code {code})", p.name());
            p.set_state(State::Finished);
        }
        StopReason::Stopped => {
            crate::println!("partition {} stopped: by the manager", p.name());
            p.set_state(State::Stopped);
        }
        StopReason::Reset => {
            crate::println!("partition {} stopped: reset requested", p.name());
            p.set_state(State::Stopped);
        }
        StopReason::TripleFault => {
            crate::println!("partition {} stopped: triple fault", p.name());
            p.set_state(State::Stopped);
        }
        StopReason::Violation { what, addr } => {
            crate::println!("partition {} stopped: {what} {addr:#x}", p.name());
            p.set_state(State::Stopped);
        }
        StopReason::InvalidState { raw } => {
            crate::println!(
                "partition {} stopped: invalid guest state {raw:#x}",
                p.name()
            );
            p.set_state(State::Stopped);
        }
    }
}

/// What a CPU does with its partition: the first vCPU runs it, and again each time the manager
/// starts it, while `keep_going` holds; other vCPUs idle (multi-vCPU partitions are issue 9).
pub fn run_cpu(cpu: usize, keep_going: impl Fn() -> bool) {
    let Some((p, vcpu)) = of_cpu(cpu) else {
        crate::println!("smp: cpu{cpu} has no partition, idle");
        return;
    };
    crate::println!("smp: cpu{cpu} joins partition {} as vCPU {vcpu}", p.name());
    if vcpu != 0 {
        crate::println!(
            "smp: cpu{cpu} idles: partition {} runs its first vCPU only (multi-vCPU is issue 9)",
            p.name()
        );
        return;
    }
    Current::prepare_cpu();
    run_once(p, cpu);
    while keep_going() {
        if p.start_requested.swap(false, Ordering::SeqCst) {
            run_once(p, cpu);
        }
        core::hint::spin_loop();
    }
}

/// Whether every partition has ended (finished, or stopped with no start pending).
pub fn all_ended() -> bool {
    all().iter().all(|p| {
        matches!(p.state(), State::Finished | State::Stopped)
            && !p.start_requested.load(Ordering::SeqCst)
    })
}

/// Stops partition `p` from another CPU: asks, and kicks its CPU so it sees the request.
pub fn request_stop(p: &Partition) {
    p.stop_requested.store(true, Ordering::SeqCst);
    for cpu in remote::cpus_running(p.id) {
        remote::kick(cpu, false);
    }
}

/// Starts a stopped or finished partition again on its CPU.
pub fn request_start(p: &Partition) {
    p.set_state(State::Running);
    p.start_requested.store(true, Ordering::SeqCst);
}

/// One line per partition on how it ended; true when they ended as the test scenarios expect:
/// every partition finished with code 0, except the hostile test guest, which must be stopped.
pub fn summary() -> bool {
    let mut ok = true;
    for p in all() {
        let end = p.last_end();
        let runs = p.starts.load(Ordering::SeqCst);
        let exits = p.exit_counters().total();
        match end {
            Some(StopReason::PowerOff { code }) => {
                ok &= code == 0;
                crate::println!(
                    "summary: {} finished with code {code} after {runs} runs, {exits} exits",
                    p.name()
                );
            }
            Some(r) => {
                ok &=
                    p.config.image == board_config::Image::Guest(board_config::TestGuest::Hostile);
                crate::println!(
                    "summary: {} stopped ({r:?}) after {runs} runs, {exits} exits",
                    p.name()
                );
            }
            None => {
                ok &= p
                    .config
                    .cpus
                    .first()
                    .is_none_or(|&c| c as usize >= crate::boot::MAX_CPUS);
                crate::println!("summary: {} never ended ({:?})", p.name(), p.state());
            }
        }
    }
    ok
}
