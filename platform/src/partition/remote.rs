//! Cross-CPU requests: the stage-2 flush shootdown that reaches every CPU running a partition
//! before a table change counts, and the bookkeeping of which CPU runs which partition.
//!
//! The protocol. A CPU that changed a partition's table (its own vCPU's fault fix excepted: only
//! that CPU cached the entry) flushes its own TLB for the `mmu::Flush` descriptor, then, for every
//! other CPU running the partition, merges the descriptor into that CPU's mailbox, takes a ticket,
//! and sends it the flush IPI ([`PartitionArch::send_flush_ipi`]); then it waits until every
//! target's serviced ticket reaches its own. The IPI makes the target's guest exit whatever it is
//! doing; the first thing the exit handler does is [`service`]: take the mailbox's descriptor,
//! flush exactly that (a range stays a range), publish the ticket, and resume the guest. So when
//! `clear_dirty`, `age`, `write_protect` or `unmap` returns, no CPU can still use a stale entry.
//!
//! Why it cannot deadlock: a waiter holds no lock a target needs (the mailbox lock is held only
//! to merge or take one descriptor), and a waiter that itself runs a partition services its own
//! mailbox while it waits, so two CPUs shooting each other down both progress. A CPU that stops
//! running the partition counts as done: every run begins with a full flush, and the running mark
//! is published before that flush. The wait is still bounded, and a CPU that never answers is
//! reported ("did not acknowledge", which the boot tests treat as a failure).
//!
//! Costs: each shootdown's round trip (first local flush to last acknowledgement, in the arch's
//! counter ticks) is recorded in [`STATS`] and printed in the console's final table.

use super::arch::PartitionArch;
use super::vcpus::Latency;
use super::PartitionId;
use crate::arch::{Current, Machine};
use board_config::MAX_CPUS;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use mmu::flush::DEFAULT_FLUSH_THRESHOLD;
use mmu::{Flush, TlbFlush};
use spin::Mutex;

/// `id + 1` of the partition each CPU runs now, 0 for none.
static RUNNING_ON: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];

/// Per CPU: a request (flush, stop, virtual interrupt) was posted for it since its last exit.
/// Set before the kick is sent, cleared by the exit handler before it services anything. A
/// backend whose kick can be lost (x86: the NMI, taken and dropped by the hypervisor when it
/// arrives between an exit and the next entry) checks it in the last instructions before entering
/// the guest, where that NMI cannot be lost (`kick_flag`), and exits at once if it is set.
static KICKED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// One CPU's flush mailbox: the merged descriptor of every flush posted and not yet serviced,
/// tickets handed out, and the last ticket serviced.
struct Mailbox {
    pending: Mutex<Flush>,
    requested: AtomicU64,
    serviced: AtomicU64,
}

static MAILBOX: [Mailbox; MAX_CPUS] = [const {
    Mailbox {
        pending: Mutex::new(Flush::None),
        requested: AtomicU64::new(0),
        serviced: AtomicU64::new(0),
    }
}; MAX_CPUS];

/// Shootdown counters, for the console and the note on costs.
pub struct Stats {
    /// Shootdowns that had at least one other CPU to reach, and their round trips.
    pub round_trip: Latency,
    /// Flush IPIs sent.
    pub ipis: AtomicU64,
    /// Descriptors serviced by targets, and how many of them were ranges (not whole flushes).
    pub serviced: AtomicU64,
    pub serviced_ranges: AtomicU64,
    /// Flushes that needed no other CPU.
    pub local_only: AtomicU64,
}

pub static STATS: Stats = Stats {
    round_trip: Latency::new(),
    ipis: AtomicU64::new(0),
    serviced: AtomicU64::new(0),
    serviced_ranges: AtomicU64::new(0),
    local_only: AtomicU64::new(0),
};

/// Polls before a CPU that does not acknowledge is reported (seconds on QEMU TCG).
const ACK_POLLS: u64 = 500_000_000;

/// Marks the calling CPU as running partition `id` and drops its stale translations of it.
pub fn begin_run(cpu: usize, id: PartitionId) {
    RUNNING_ON[cpu].store(id + 1, Ordering::SeqCst);
    let m = &MAILBOX[cpu];
    {
        let mut p = m.pending.lock();
        *p = Flush::None;
        m.serviced
            .store(m.requested.load(Ordering::SeqCst), Ordering::SeqCst);
    }
    Current::flush_local(id, Flush::All);
}

/// Marks the calling CPU as running no partition.
pub fn end_run(cpu: usize) {
    RUNNING_ON[cpu].store(0, Ordering::SeqCst);
}

/// Services the calling CPU's posted flushes for partition `id`: the exit handler's first step,
/// and what a backend's hypervisor-side IPI handler calls. Cheap when nothing is posted.
pub fn service(cpu: usize, id: PartitionId) {
    let m = &MAILBOX[cpu];
    if m.serviced.load(Ordering::SeqCst) == m.requested.load(Ordering::SeqCst) {
        return;
    }
    let (what, ticket) = {
        let mut p = m.pending.lock();
        (core::mem::take(&mut *p), m.requested.load(Ordering::SeqCst))
    };
    Current::flush_local(id, what);
    STATS.serviced.fetch_add(1, Ordering::Relaxed);
    if matches!(what, Flush::Range { .. }) {
        STATS.serviced_ranges.fetch_add(1, Ordering::Relaxed);
    }
    m.serviced.store(ticket, Ordering::SeqCst);
}

/// Every CPU other than the caller that runs partition `id`.
pub fn cpus_running(id: PartitionId) -> impl Iterator<Item = usize> {
    let me = Current::cpu_index();
    (0..MAX_CPUS).filter(move |&c| c != me && RUNNING_ON[c].load(Ordering::SeqCst) == id + 1)
}

/// Makes `cpu` exit its guest soon (a stop request, a virtual interrupt to deliver).
pub fn kick(cpu: usize) {
    KICKED[cpu].store(true, Ordering::SeqCst);
    Current::kick(cpu);
}

/// CPU `cpu`'s kick flag (see [`KICKED`]), for a backend's entry and wait code.
pub fn kick_flag(cpu: usize) -> &'static AtomicBool {
    &KICKED[cpu]
}

/// Clears the calling CPU's kick flag: its exit handler is about to look at every request.
pub fn take_kick(cpu: usize) {
    KICKED[cpu].store(false, Ordering::SeqCst);
}

/// Posts `what` to `cpu`'s mailbox; returns the ticket its acknowledgement must reach.
fn post(cpu: usize, what: Flush) -> u64 {
    let m = &MAILBOX[cpu];
    let mut p = m.pending.lock();
    *p = p.merge(what, DEFAULT_FLUSH_THRESHOLD);
    m.requested.fetch_add(1, Ordering::SeqCst) + 1
}

/// The shootdown: flushes `what` of partition `id` here and on every other CPU running it, and
/// returns once all of them acknowledged (see the module comment).
pub fn shootdown(id: PartitionId, what: Flush) {
    if what.is_none() {
        return;
    }
    let start = Current::now();
    Current::flush_local(id, what);
    let mut tickets = [0u64; MAX_CPUS];
    let mut any = false;
    for cpu in cpus_running(id) {
        tickets[cpu] = post(cpu, what);
        KICKED[cpu].store(true, Ordering::SeqCst);
        Current::send_flush_ipi(cpu);
        STATS.ipis.fetch_add(1, Ordering::Relaxed);
        any = true;
    }
    if !any {
        STATS.local_only.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let me = Current::cpu_index();
    for (cpu, &ticket) in tickets.iter().enumerate() {
        if ticket == 0 {
            continue;
        }
        let mut acked = false;
        for _ in 0..ACK_POLLS {
            if MAILBOX[cpu].serviced.load(Ordering::SeqCst) >= ticket
                || RUNNING_ON[cpu].load(Ordering::SeqCst) != id + 1
            {
                acked = true;
                break;
            }
            // A CPU shooting at us while we shoot at it must not wait forever.
            let mine = RUNNING_ON[me].load(Ordering::SeqCst);
            if mine != 0 {
                service(me, mine - 1);
            }
            core::hint::spin_loop();
        }
        if !acked {
            log::warn!("partition: cpu{cpu} did not acknowledge a TLB flush");
        }
    }
    STATS.round_trip.record(Current::now().wrapping_sub(start));
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
