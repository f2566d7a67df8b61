//! Partitions, arch-neutral: each [`Partition`] is built from its `board_config::Partition` (its
//! stage-2 table made with `mmu` from the board file's regions, huge pages where alignment
//! allows, emulated device ranges left unmapped so accesses trap), runs on the CPUs the board
//! gives it, and moves through the states created → running → stopped (with a reason) or
//! finished (with a code), and back to running when the manager starts it again.
//!
//! The architecture plugs in through [`arch::PartitionArch`] (the only seam); the exit handling
//! (`handler`), hypercalls (`hypercall`), management calls (`manage`), virtual devices
//! (`devices`), the interrupt-controller view (`irqchip`) and device interrupts (`device_irq`),
//! guest memory access (`guest_mem`),
//! table pages (`frames`) and cross-CPU requests (the flush shootdown in `remote`), the run of a
//! partition's vCPUs (`run`), per-vCPU state (`vcpus`), virtual timers, IPIs and upcalls
//! (`vintr`) and the console's final table (`report`) are written once here. A partition owns
//! every CPU the board file lists; vCPU k runs on the k-th, the first starts with the partition,
//! the others when vCPU 0 asks (`VCPU_START`).

#[cfg(target_arch = "x86_64")]
mod apic_msrs;
pub mod arch;
mod console_input;
mod device_irq;
mod devices;
#[cfg(target_arch = "loongarch64")]
mod eiointc;
mod frames;
pub(crate) mod guest_mem;
mod handler;
mod hypercall;
mod irqchip;
mod irqchip_view;
mod lapic;
mod mailbox;
mod manage;
mod remote;
mod report;
mod requests;
mod run;
mod selfcheck;
mod vintr;

use crate::arch::Current;
use crate::board::BOARD;
use alloc::vec::Vec;
use arch::PartitionArch;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use mmu::{FlushBatch, Gpa, GpaRange, Hpa, HugePolicy, LeafAttrs, MemType, Perms, StageTwoTable};
use spin::{Mutex, Once};
use vcpu::irqchip::line_routes::LineRoutes;
use vcpu::{ExitCounters, ExitKind, StopReason};

// Used by backends that build a table of their own (LoongArch's high-half invalid root).
#[allow(unused_imports)]
pub use frames::TableFrames;
pub use remote::PartitionFlush;
pub use report::summary;
pub use run::{all_ended, run_cpu};
use selfcheck::record_image_hash;
pub use selfcheck::self_check;
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
    /// Counter value when the manager's `PARTITION_STOP` came (0: none pending), so the run's
    /// end can say how long stopping took (`run`).
    stop_asked_at: AtomicU64,
    /// Completed starts (the guest gets the count of earlier ones at entry).
    starts: AtomicU64,
    /// Resets the guest asked for since the manager last started it (`run`).
    reboots: AtomicU64,
    /// Exits per `ExitKind`, over all runs.
    exits: [AtomicU64; ExitKind::COUNT],
    /// How the last run ended, for the summary.
    last_end: Mutex<Option<StopReason>>,
    /// Dirty logging is on.
    dirty_logging: AtomicBool,
    /// One slot per vCPU, in board-file CPU order.
    vcpus: Vec<vcpu::slot::VcpuSlot>,
    /// Set by the first vCPU whose end ends the current run (the others are then stopped).
    run_ended: AtomicBool,
    /// How each of its device lines (`config.irqs`) is routed, and what an interrupt of it
    /// becomes (`vcpu::irqchip::line_routes`).
    line_routes: LineRoutes,
    /// Its view of the board's interrupt controller (`irqchip`), shared by its vCPUs.
    irqchip: Mutex<irqchip::Chip>,
    /// The lines it may route in that view: its own device lines, then the line its virtual
    /// console drives (which reaches no physical controller).
    view_lines: Vec<u32>,
    /// Its virtual console's chip (`devices`), shared by its vCPUs.
    console: Mutex<devices::ConsoleUart>,
    /// Writes its controller view refused in this run (only the first is printed).
    view_refusals: AtomicU64,
    /// LoongArch: its EIOINTC view (`eiointc`), which only a Linux partition reaches.
    #[cfg(target_arch = "loongarch64")]
    eiointc: Mutex<vcpu::irqchip::eiointc::Eiointc>,
}

impl Partition {
    /// The partition's name from the board file.
    pub fn name(&self) -> &'static str {
        self.config.name
    }

    /// Copies guest-physical `[gpa, gpa + buf.len())` of this partition's memory into `buf`;
    /// false (and `buf` untouched) if no one region holds all of it.
    #[allow(dead_code)] // the x86 MMIO decoder reads instructions with it
    pub fn read_guest(&self, gpa: u64, buf: &mut [u8]) -> bool {
        match guest_mem::host_slice(self, gpa, buf.len() as u64, false) {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                true
            }
            None => false,
        }
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

    fn count_exit(&self, vcpu: usize, kind: ExitKind) {
        self.exits[kind as usize].fetch_add(1, Ordering::Relaxed);
        self.vcpus[vcpu].count_exit(kind);
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

/// The partition a management call names, or the call's error.
pub fn target(id: PartitionId) -> Result<&'static Partition, vcpu::HypercallError> {
    get(id).ok_or(vcpu::HypercallError::NoPartition)
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
        stop_asked_at: AtomicU64::new(0),
        starts: AtomicU64::new(0),
        reboots: AtomicU64::new(0),
        exits: [const { AtomicU64::new(0) }; ExitKind::COUNT],
        last_end: Mutex::new(None),
        dirty_logging: AtomicBool::new(false),
        vcpus: config
            .cpus
            .iter()
            .map(|&c| vcpu::slot::VcpuSlot::new(c as usize))
            .collect(),
        run_ended: AtomicBool::new(false),
        line_routes: LineRoutes::new(config.irqs),
        irqchip: Mutex::new(irqchip::Chip::new()),
        view_lines: view_lines(config),
        console: Mutex::new(devices::ConsoleUart::new()),
        view_refusals: AtomicU64::new(0),
        #[cfg(target_arch = "loongarch64")]
        eiointc: Mutex::new(vcpu::irqchip::eiointc::Eiointc::new(
            config.cpus.len() as u32
        )),
    })
}

/// The lines `config`'s partition may route in its controller view (`Partition::view_lines`).
fn view_lines(config: &board_config::Partition) -> Vec<u32> {
    let mut lines = config.irqs.to_vec();
    let console = <Current as PartitionArch>::VIRTUAL_UART_LINE
        .filter(|_| config.console == board_config::PartitionConsole::Virtual);
    if let Some(line) = console {
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    lines
}

/// Builds every partition of the board (on the boot CPU, before the other CPUs start). A
/// partition that cannot be built fails the boot: the board file promised it.
pub fn build_all() -> Result<(), &'static str> {
    log::info!("partition: backend {}", Current::backend());
    device_irq::mask_all();
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
    console_input::init(PARTITIONS.call_once(|| v));
    // Before any other CPU starts, so before any partition runs.
    record_image_hash();
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
