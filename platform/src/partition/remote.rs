//! Cross-CPU requests on this machine: the stage-2 flush shootdown that reaches every CPU
//! running a partition before a table change counts, the bookkeeping of which CPU runs which
//! partition, and the kick flags. The protocol itself is `mmu::shootdown`'s (host-tested, with
//! threads as CPUs); this file gives it this machine's CPUs ([`ThisCpu`]: the arch's local flush,
//! flush IPI and counter) and keeps the one instance. A CPU that does not acknowledge a flush
//! within the bound is reported ("did not acknowledge", which the boot tests treat as a failure).
//! The shootdowns' counters are printed in the console's final table (`report`).

use super::arch::PartitionArch;
use super::PartitionId;
use crate::arch::{Current, Machine};
use board_config::MAX_CPUS;
use core::sync::atomic::AtomicBool;
use mmu::shootdown::{CpuSignals, Shootdown};
use mmu::{Flush, TlbFlush};

/// Polls before a CPU that does not acknowledge is reported (seconds on QEMU TCG).
const ACK_POLLS: u64 = 500_000_000;

/// The machine's shootdown state: running marks, mailboxes, kick flags, counters.
pub static SHOOTDOWN: Shootdown<MAX_CPUS> = Shootdown::new(ACK_POLLS);

/// The calling CPU, as the shootdown reaches CPUs.
struct ThisCpu;

impl CpuSignals for ThisCpu {
    fn this_cpu(&self) -> usize {
        Current::cpu_index()
    }

    fn flush_local(&self, id: u32, what: Flush) {
        Current::flush_local(id, what);
    }

    fn send_flush_ipi(&self, cpu: usize) {
        Current::send_flush_ipi(cpu);
    }

    fn now(&self) -> u64 {
        Current::now()
    }
}

/// Marks the calling CPU as running partition `id` and drops its stale translations of it.
pub fn begin_run(cpu: usize, id: PartitionId) {
    SHOOTDOWN.begin_run(&ThisCpu, cpu, id);
}

/// Marks the calling CPU as running no partition.
pub fn end_run(cpu: usize) {
    SHOOTDOWN.end_run(cpu);
}

/// Services the calling CPU's posted flushes for partition `id`: the exit handler's first step.
pub fn service(cpu: usize, id: PartitionId) {
    SHOOTDOWN.service(&ThisCpu, cpu, id);
}

/// Every CPU other than the caller that runs partition `id`.
pub fn cpus_running(id: PartitionId) -> impl Iterator<Item = usize> {
    SHOOTDOWN.cpus_running(Current::cpu_index(), id)
}

/// Makes `cpu` exit its guest soon (a stop request, a virtual interrupt to deliver): its kick
/// flag first, then the arch's kick.
pub fn kick(cpu: usize) {
    SHOOTDOWN.mark_kicked(cpu);
    Current::kick(cpu);
}

/// CPU `cpu`'s kick flag, for a backend's entry and wait code: set before every kick, so a
/// backend whose kick can be lost (x86: the NMI, dropped when it arrives between an exit and the
/// next entry) checks it in the last instructions before entering the guest.
pub fn kick_flag(cpu: usize) -> &'static AtomicBool {
    SHOOTDOWN.kick_flag(cpu)
}

/// Clears the calling CPU's kick flag: its exit handler is about to look at every request.
pub fn take_kick(cpu: usize) {
    SHOOTDOWN.take_kick(cpu);
}

/// The shootdown of partition `id`'s translations `what`, here and on every other CPU running
/// it (see `mmu::shootdown`).
pub fn shootdown(id: PartitionId, what: Flush) {
    if let Err(e) = SHOOTDOWN.shootdown(&ThisCpu, id, what) {
        log::warn!("partition: cpu{} did not acknowledge a TLB flush", e.cpu);
    }
}

/// The `mmu` flush backend of one partition's table: the shootdown above.
pub struct PartitionFlush {
    pub id: PartitionId,
}

impl TlbFlush for PartitionFlush {
    fn flush(&self, what: Flush) {
        shootdown(self.id, what);
    }
}
