//! Cross-CPU requests: the stage-2 flush that reaches every CPU running a partition, and the
//! bookkeeping of which CPU runs which partition.
//!
//! The approach (a simple one; a real shootdown with range descriptors is a later issue): a CPU
//! that changed a partition's table flushes its own TLB for the range, then, for every other CPU
//! running that partition, bumps that CPU's request counter, kicks it (an IPI, which makes its
//! guest exit) and waits until the CPU acknowledges. The kicked CPU services requests at every
//! exit, before it re-enters its guest: it drops *all* cached translations of its partition and
//! acknowledges. A CPU that is not running the partition needs nothing: each run starts with a
//! full local flush, and the running mark is published before that flush, so a change made
//! before the mark is seen is covered by it.
//!
//! Nobody waits for an acknowledgement while holding a lock another CPU's exit path may take, so
//! the wait cannot deadlock; it is still bounded, and a CPU that never answers is reported.

use super::arch::PartitionArch;
use super::PartitionId;
use crate::arch::{Current, Machine};
use crate::boot::MAX_CPUS;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use mmu::{Flush, TlbFlush};

/// `id + 1` of the partition each CPU runs now, 0 for none.
static RUNNING_ON: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
/// Flush requests posted to each CPU, and how many it has serviced.
static REQUESTED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static SERVICED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Polls before a CPU that does not acknowledge is reported (seconds on QEMU TCG).
const ACK_POLLS: u64 = 500_000_000;

/// Marks the calling CPU as running partition `id` and drops its stale translations of it.
pub fn begin_run(cpu: usize, id: PartitionId) {
    RUNNING_ON[cpu].store(id + 1, Ordering::SeqCst);
    SERVICED[cpu].store(REQUESTED[cpu].load(Ordering::SeqCst), Ordering::SeqCst);
    Current::flush_local(id, Flush::All);
}

/// Marks the calling CPU as running no partition.
pub fn end_run(cpu: usize) {
    RUNNING_ON[cpu].store(0, Ordering::SeqCst);
}

/// Services the calling CPU's pending flush requests for partition `id` (at every exit).
pub fn service(cpu: usize, id: PartitionId) {
    let want = REQUESTED[cpu].load(Ordering::SeqCst);
    if SERVICED[cpu].load(Ordering::SeqCst) != want {
        Current::flush_local(id, Flush::All);
        SERVICED[cpu].store(want, Ordering::SeqCst);
    }
}

/// Every CPU other than the caller that runs partition `id`.
pub fn cpus_running(id: PartitionId) -> impl Iterator<Item = usize> {
    let me = Current::cpu_index();
    (0..MAX_CPUS).filter(move |&c| c != me && RUNNING_ON[c].load(Ordering::SeqCst) == id + 1)
}

/// Makes `cpu` exit its guest and service its requests; waits for it when `wait` is set.
pub fn kick(cpu: usize, wait: bool) {
    let ticket = REQUESTED[cpu].fetch_add(1, Ordering::SeqCst) + 1;
    Current::kick(cpu);
    if !wait {
        return;
    }
    for _ in 0..ACK_POLLS {
        if SERVICED[cpu].load(Ordering::SeqCst) >= ticket
            || RUNNING_ON[cpu].load(Ordering::SeqCst) == 0
        {
            return;
        }
        core::hint::spin_loop();
    }
    log::warn!("partition: cpu{cpu} did not acknowledge a TLB flush");
}

/// The `mmu` flush backend of one partition's table: local flush plus a kick of every other CPU
/// running the partition (see the module comment).
pub struct PartitionFlush {
    pub id: PartitionId,
}

impl TlbFlush for PartitionFlush {
    fn flush(&self, what: Flush) {
        if what.is_none() {
            return;
        }
        Current::flush_local(self.id, what);
        for cpu in cpus_running(self.id) {
            kick(cpu, true);
        }
    }
}
