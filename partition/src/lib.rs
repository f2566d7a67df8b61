//! The partition engine, arch-neutral and host-tested: each [`Partition`] is built from its
//! `board_config::Partition` (its stage-2 table made with `mmu` from the board file's regions,
//! huge pages where alignment allows, emulated device ranges left unmapped so accesses trap), runs
//! on the CPUs the board gives it, and moves through the states created → running → stopped (with
//! a reason) or finished (with a code), and back to running when the manager starts it again.
//! [`Partitions`] is the board's set of them, a value: the image keeps one, a host test as many as
//! it likes.
//!
//! The machine plugs in through [`arch::PartitionArch`] (the only seam, every method required):
//! the stage-2 format, the vCPU, the CPU's counter, timer, kicks and interrupt controller, the
//! table pages' allocator and the console. Everything else is written once here: the exit
//! handling (`handler`), hypercalls (`hypercall`), management calls (`manage`), virtual devices
//! (`devices`), the interrupt-controller view (`irqchip`) and device interrupts (`device_irq`),
//! guest memory access (`guest_mem`), cross-CPU requests (the flush shootdown in `remote`), the
//! run of a partition's vCPUs (`run`), virtual timers, IPIs and upcalls (`vintr`) and the
//! console's final table (`report`). A partition owns every CPU the board file lists; vCPU k runs
//! on the k-th, the first starts with the partition, the others when vCPU 0 asks (`VCPU_START`).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

#[cfg(all(feature = "x86", feature = "loongarch"))]
compile_error!("the partition engine is built for one architecture: features `x86` and `loongarch` exclude each other");
#[cfg(not(any(feature = "x86", feature = "loongarch")))]
compile_error!("the partition engine needs its architecture: feature `x86` or `loongarch`");

/// One console line through the seam (`PartitionArch::print_line`).
macro_rules! say {
    ($A:ty, $($arg:tt)*) => {
        <$A as $crate::arch::MachineServices>::print_line(format_args!($($arg)*))
    };
}

#[cfg(feature = "x86")]
mod apic_msrs;
pub mod arch;
mod console_input;
mod device_irq;
mod devices;
#[cfg(feature = "loongarch")]
mod eiointc;
pub mod guest_mem;
mod handler;
mod hypercall;
mod irqchip;
mod irqchip_view;
mod lapic;
mod mailbox;
mod manage;
mod registry;
mod remote;
mod report;
mod requests;
mod run;
mod vintr;

#[cfg(test)]
mod tests;

use crate::arch::PartitionArch;
use alloc::vec::Vec;
use board_config::MAX_CPUS;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use mmu::{FlushBatch, Gpa, GpaRange, Hpa, HugePolicy, LeafAttrs, MemType, Perms, StageTwoTable};
use spin::Mutex;
use vcpu::irqchip::line_routes::LineRoutes;
use vcpu::{ExitCounters, ExitKind, StopReason};

pub use registry::{GuestImages, Partitions, RunEnv};
pub use remote::{PartitionFlush, ACK_POLLS};
pub use vcpu::PartitionId;

/// The machine's flush shootdown state (`mmu::shootdown`), one for all partitions.
pub type Shootdown = mmu::shootdown::Shootdown<MAX_CPUS>;

/// The stage-2 table type of an architecture.
pub type Table<A> =
    StageTwoTable<<A as PartitionArch>::Format, <A as PartitionArch>::Frames, PartitionFlush<A>>;

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
pub struct Partition<A: PartitionArch> {
    pub id: PartitionId,
    pub config: &'static board_config::Partition,
    /// The board it is part of.
    board: &'static board_config::Board,
    /// The machine's shootdown state: its flushes, kicks and running marks (`remote`).
    shootdown: &'static Shootdown,
    table: Table<A>,
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
    #[cfg(feature = "loongarch")]
    eiointc: Mutex<vcpu::irqchip::eiointc::Eiointc>,
}

impl<A: PartitionArch> Partition<A> {
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
    pub fn table(&self) -> &Table<A> {
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

impl<A: PartitionArch> Partition<A> {
    /// Builds partition `id` of `board` (its table mapped, nothing run).
    fn build(
        board: &'static board_config::Board,
        id: PartitionId,
        shootdown: &'static Shootdown,
        frames: A::Frames,
    ) -> Result<Self, mmu::Error> {
        let config = &board.partitions[id as usize];
        let table = Table::<A>::new(
            A::stage2_format(),
            frames,
            PartitionFlush::new(id, shootdown),
        )?;
        table.tlb().set_root(table.root());
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
            let page = board.base_page;
            maps(base & !(page - 1), base & !(page - 1), page, device)?;
        }
        let _ = table.commit(batch);
        Ok(Partition {
            id,
            config,
            board,
            shootdown,
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
            irqchip: Mutex::new(irqchip::Chip::new(&board.irqchip)),
            view_lines: view_lines::<A>(config),
            console: Mutex::new(devices::ConsoleUart::new()),
            view_refusals: AtomicU64::new(0),
            #[cfg(feature = "loongarch")]
            eiointc: Mutex::new(vcpu::irqchip::eiointc::Eiointc::new(
                config.cpus.len() as u32
            )),
        })
    }
}

/// The lines `config`'s partition may route in its controller view (`Partition::view_lines`).
fn view_lines<A: PartitionArch>(config: &board_config::Partition) -> Vec<u32> {
    let mut lines = config.irqs.to_vec();
    let console =
        A::VIRTUAL_UART_LINE.filter(|_| config.console == board_config::PartitionConsole::Virtual);
    if let Some(line) = console {
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    lines
}
