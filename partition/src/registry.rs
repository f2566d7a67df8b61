//! The board's partitions as one value: built once from the checked board (on the boot CPU,
//! before any other CPU starts), then shared by every CPU for the life of the machine. What the
//! engine needs beyond the board arrives here too, as data ([`RunEnv`]: the hypervisor's command
//! line and the test guests' images), so nothing below reads a global: the image keeps one
//! `Partitions` in a static, a host test builds its own from a board of its own.

use crate::arch::PartitionArch;
use crate::console_input::InputFocus;
use crate::{Partition, PartitionId, Shootdown, State};
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use vcpu::HypercallError;

/// The test guests' flat binaries (empty when the image carries none).
#[derive(Clone, Copy, Debug, Default)]
pub struct GuestImages {
    pub worker: &'static [u8],
    pub manager: &'static [u8],
    pub hostile: &'static [u8],
}

impl GuestImages {
    /// The image of test guest `g`.
    pub fn get(&self, g: board_config::TestGuest) -> &'static [u8] {
        match g {
            board_config::TestGuest::Worker => self.worker,
            board_config::TestGuest::Manager => self.manager,
            board_config::TestGuest::Hostile => self.hostile,
        }
    }
}

/// What a run needs from outside the board file.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunEnv {
    /// The hypervisor's command line: the boot tests' switches (`smp-test=1`, `hostile=storm`,
    /// `linux:WORD`...).
    pub cmdline: &'static str,
    pub guests: GuestImages,
}

impl RunEnv {
    /// The command line's words.
    pub fn words(&self) -> impl Iterator<Item = &'static str> {
        self.cmdline.split_ascii_whitespace()
    }

    /// Whether the command line has the word `word`.
    pub fn has(&self, word: &str) -> bool {
        self.words().any(|w| w == word)
    }
}

/// Every partition of one board.
pub struct Partitions<A: PartitionArch> {
    pub board: &'static board_config::Board,
    pub env: RunEnv,
    list: Vec<Partition<A>>,
    /// The machine's flush shootdown, which every partition's table flushes through.
    pub(crate) shootdown: &'static Shootdown,
    /// Which partition typed console input goes to (`console_input`).
    pub(crate) input: InputFocus,
}

impl<A: PartitionArch> Partitions<A> {
    /// Builds every partition of `board`, each table from `frames`, all flushing through
    /// `shootdown`. A partition that cannot be built fails the whole: the board file promised it.
    pub fn build(
        board: &'static board_config::Board,
        env: RunEnv,
        shootdown: &'static Shootdown,
        frames: A::Frames,
    ) -> Result<Self, &'static str> {
        log::info!("partition: backend {}", A::backend());
        crate::device_irq::mask_all::<A>(board);
        let mut list = Vec::new();
        for (i, config) in board.partitions.iter().enumerate() {
            let p = Partition::<A>::build(board, i as PartitionId, shootdown, frames.clone())
                .map_err(|e| {
                    log::error!("partition {}: stage-2 table: {e:?}", config.name);
                    "a partition's stage-2 table could not be built"
                })?;
            let stats = p.table().stats();
            log::info!(
                "partition {} (id {i}): cpus {:?}, {} regions, stage-2 root {:#x}, {:?}{}",
                config.name,
                config.cpus,
                config.memory.len(),
                p.table().root().as_u64(),
                stats,
                if config.manager { ", manager" } else { "" }
            );
            list.push(p);
        }
        let input = InputFocus::new(&list);
        Ok(Self {
            board,
            env,
            list,
            shootdown,
            input,
        })
    }

    /// All partitions, in board-file order (the index is the id).
    pub fn all(&self) -> &[Partition<A>] {
        &self.list
    }

    /// A partition by id.
    pub fn get(&self, id: PartitionId) -> Option<&Partition<A>> {
        self.list.get(id as usize)
    }

    /// The partition a management call names, or the call's error.
    pub fn target(&self, id: PartitionId) -> Result<&Partition<A>, HypercallError> {
        self.get(id).ok_or(HypercallError::NoPartition)
    }

    /// The partition CPU `cpu` belongs to and its vCPU number there.
    pub fn of_cpu(&self, cpu: usize) -> Option<(&Partition<A>, usize)> {
        self.list.iter().find_map(|p| {
            p.config
                .cpus
                .iter()
                .position(|&c| c as usize == cpu)
                .map(|v| (p, v))
        })
    }

    /// Whether every partition has ended (finished, or stopped with no start pending).
    pub fn all_ended(&self) -> bool {
        self.list.iter().all(|p| {
            matches!(p.state(), State::Finished | State::Stopped)
                && !p.start_requested.load(Ordering::SeqCst)
        })
    }
}
