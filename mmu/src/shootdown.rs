//! The stage-2 flush shootdown across CPUs: after a table change, every CPU that may cache the
//! old entries of that table (because it runs the table's guest) has flushed them before the
//! change counts. The protocol, the per-CPU mailboxes and the running marks live here, generic
//! over [`CpuSignals`] (the calling CPU's index and local flush, the flush IPI, a counter), so
//! they are tested on the host with threads as CPUs; the image supplies the real signals.
//!
//! The protocol. A CPU that changed a table (`id`) flushes its own TLB for the [`Flush`]
//! descriptor, then, for every other CPU running `id`, merges the descriptor into that CPU's
//! mailbox, takes a ticket, marks the CPU kicked and sends it the flush IPI; then it waits until
//! every target's serviced ticket reaches its own. The IPI makes the target's guest exit; the
//! first thing its exit handler does is [`Shootdown::service`]: take the mailbox's descriptor,
//! flush exactly that (a range stays a range), publish the ticket, and resume the guest.
//!
//! Why it cannot deadlock: a waiter holds no lock a target needs (a mailbox lock is held only to
//! merge or take one descriptor), and a waiter that itself runs a guest services its own mailbox
//! while it waits, so two CPUs shooting each other down both progress. A CPU that stops running
//! the table counts as done: every run begins with a full flush ([`Shootdown::begin_run`]), and
//! the running mark is published before that flush. The wait is still bounded, and a CPU that
//! never answers is returned as an error for the caller to report.

use crate::flush::{Flush, DEFAULT_FLUSH_THRESHOLD};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use spin::Mutex;

/// The CPUs as the shootdown reaches them; one implementation per world (the image's real CPUs,
/// threads in the tests).
pub trait CpuSignals {
    /// The calling CPU's index.
    fn this_cpu(&self) -> usize;
    /// Drops the calling CPU's cached translations of table `id` that `what` names.
    fn flush_local(&self, id: u32, what: Flush);
    /// Sends CPU `cpu` the interrupt that makes its guest exit (and so service its mailbox).
    fn send_flush_ipi(&self, cpu: usize);
    /// A free-running counter, for the round-trip figures.
    fn now(&self) -> u64;
}

/// A shootdown some CPU did not acknowledge within the bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unacknowledged {
    /// The CPU that did not answer.
    pub cpu: usize,
}

/// One CPU's flush mailbox: the merged descriptor of every flush posted and not yet serviced,
/// tickets handed out, and the last ticket serviced.
struct Mailbox {
    pending: Mutex<Flush>,
    requested: AtomicU64,
    serviced: AtomicU64,
}

/// Counters of the shootdowns, for the console and the notes on cost.
pub struct ShootdownStats {
    /// Shootdowns that reached at least one other CPU: how many, and their round trips (first
    /// local flush to last acknowledgement, in counter ticks) summed and at most.
    pub remote: AtomicU64,
    /// Sum of the round trips.
    pub round_trip_sum: AtomicU64,
    /// Longest round trip.
    pub round_trip_max: AtomicU64,
    /// Flush IPIs sent.
    pub ipis: AtomicU64,
    /// Descriptors serviced by targets.
    pub serviced: AtomicU64,
    /// Of those, ranges (not whole flushes).
    pub serviced_ranges: AtomicU64,
    /// Flushes that needed no other CPU.
    pub local_only: AtomicU64,
}

/// The shootdown state of a machine of `N` CPUs.
pub struct Shootdown<const N: usize> {
    /// `id + 1` of the table each CPU runs now, 0 for none.
    running_on: [AtomicU32; N],
    /// Per CPU: a request (flush, stop, virtual interrupt) was posted for it since its last
    /// exit; set before the kick is sent, cleared by the exit handler before it services
    /// anything, so a backend whose kick can be lost checks it just before entering a guest.
    kicked: [AtomicBool; N],
    mailbox: [Mailbox; N],
    /// Polls of a target's acknowledgement before it is reported.
    ack_polls: u64,
    /// The counters.
    pub stats: ShootdownStats,
}

impl<const N: usize> Shootdown<N> {
    /// No CPU running anything; a target is given `ack_polls` polls to acknowledge.
    pub const fn new(ack_polls: u64) -> Self {
        Self {
            running_on: [const { AtomicU32::new(0) }; N],
            kicked: [const { AtomicBool::new(false) }; N],
            mailbox: [const {
                Mailbox {
                    pending: Mutex::new(Flush::None),
                    requested: AtomicU64::new(0),
                    serviced: AtomicU64::new(0),
                }
            }; N],
            ack_polls,
            stats: ShootdownStats {
                remote: AtomicU64::new(0),
                round_trip_sum: AtomicU64::new(0),
                round_trip_max: AtomicU64::new(0),
                ipis: AtomicU64::new(0),
                serviced: AtomicU64::new(0),
                serviced_ranges: AtomicU64::new(0),
                local_only: AtomicU64::new(0),
            },
        }
    }

    /// Marks CPU `cpu` (the caller) as running table `id` and drops its stale translations of
    /// it; flushes posted before count as serviced.
    pub fn begin_run<H: CpuSignals>(&self, hw: &H, cpu: usize, id: u32) {
        self.running_on[cpu].store(id + 1, Ordering::SeqCst);
        let m = &self.mailbox[cpu];
        {
            let mut p = m.pending.lock();
            *p = Flush::None;
            m.serviced
                .store(m.requested.load(Ordering::SeqCst), Ordering::SeqCst);
        }
        hw.flush_local(id, Flush::All);
    }

    /// Marks CPU `cpu` as running nothing.
    pub fn end_run(&self, cpu: usize) {
        self.running_on[cpu].store(0, Ordering::SeqCst);
    }

    /// Services CPU `cpu`'s (the caller's) posted flushes of table `id`: the exit handler's first
    /// step. Cheap when nothing is posted.
    pub fn service<H: CpuSignals>(&self, hw: &H, cpu: usize, id: u32) {
        let m = &self.mailbox[cpu];
        if m.serviced.load(Ordering::SeqCst) == m.requested.load(Ordering::SeqCst) {
            return;
        }
        let (what, ticket) = {
            let mut p = m.pending.lock();
            (core::mem::take(&mut *p), m.requested.load(Ordering::SeqCst))
        };
        hw.flush_local(id, what);
        self.stats.serviced.fetch_add(1, Ordering::Relaxed);
        if matches!(what, Flush::Range { .. }) {
            self.stats.serviced_ranges.fetch_add(1, Ordering::Relaxed);
        }
        m.serviced.store(ticket, Ordering::SeqCst);
    }

    /// Every CPU other than `me` that runs table `id`.
    pub fn cpus_running(&self, me: usize, id: u32) -> impl Iterator<Item = usize> + '_ {
        (0..N).filter(move |&c| c != me && self.running_on[c].load(Ordering::SeqCst) == id + 1)
    }

    /// Marks CPU `cpu` as having a request posted (before the caller kicks it).
    pub fn mark_kicked(&self, cpu: usize) {
        self.kicked[cpu].store(true, Ordering::SeqCst);
    }

    /// CPU `cpu`'s kick flag, for a backend's entry and wait code.
    pub fn kick_flag(&self, cpu: usize) -> &AtomicBool {
        &self.kicked[cpu]
    }

    /// Clears CPU `cpu`'s kick flag: its exit handler is about to look at every request.
    pub fn take_kick(&self, cpu: usize) {
        self.kicked[cpu].store(false, Ordering::SeqCst);
    }

    /// Posts `what` to `cpu`'s mailbox; returns the ticket its acknowledgement must reach.
    fn post(&self, cpu: usize, what: Flush) -> u64 {
        let m = &self.mailbox[cpu];
        let mut p = m.pending.lock();
        *p = p.merge(what, DEFAULT_FLUSH_THRESHOLD);
        m.requested.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Flushes `what` of table `id` on the calling CPU and on every other CPU running it, and
    /// returns once all of them acknowledged; the first CPU that did not within the bound is the
    /// error (the others were still waited for).
    pub fn shootdown<H: CpuSignals>(
        &self,
        hw: &H,
        id: u32,
        what: Flush,
    ) -> Result<(), Unacknowledged> {
        if what.is_none() {
            return Ok(());
        }
        let start = hw.now();
        hw.flush_local(id, what);
        let me = hw.this_cpu();
        let mut tickets = [0u64; N];
        let mut any = false;
        for cpu in self.cpus_running(me, id) {
            tickets[cpu] = self.post(cpu, what);
            self.mark_kicked(cpu);
            hw.send_flush_ipi(cpu);
            self.stats.ipis.fetch_add(1, Ordering::Relaxed);
            any = true;
        }
        if !any {
            self.stats.local_only.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let mut result = Ok(());
        for (cpu, &ticket) in tickets.iter().enumerate() {
            if ticket != 0 && !self.wait_for(hw, me, cpu, id, ticket) && result.is_ok() {
                result = Err(Unacknowledged { cpu });
            }
        }
        let took = hw.now().wrapping_sub(start);
        self.stats.remote.fetch_add(1, Ordering::Relaxed);
        self.stats.round_trip_sum.fetch_add(took, Ordering::Relaxed);
        self.stats.round_trip_max.fetch_max(took, Ordering::Relaxed);
        result
    }

    /// Waits until `cpu` serviced `ticket` or stopped running `id`, servicing the caller's own
    /// mailbox meanwhile (a CPU shooting at us while we shoot at it must not wait forever).
    fn wait_for<H: CpuSignals>(&self, hw: &H, me: usize, cpu: usize, id: u32, ticket: u64) -> bool {
        for _ in 0..self.ack_polls {
            if self.mailbox[cpu].serviced.load(Ordering::SeqCst) >= ticket
                || self.running_on[cpu].load(Ordering::SeqCst) != id + 1
            {
                return true;
            }
            let mine = self.running_on[me].load(Ordering::SeqCst);
            if mine != 0 {
                self.service(hw, me, mine - 1);
            }
            core::hint::spin_loop();
        }
        false
    }

    /// (count, mean, max) of the remote shootdowns' round trips.
    pub fn round_trips(&self) -> (u64, u64, u64) {
        let s = &self.stats;
        let n = s.remote.load(Ordering::Relaxed);
        let sum = s.round_trip_sum.load(Ordering::Relaxed);
        (
            n,
            sum.checked_div(n).unwrap_or(0),
            s.round_trip_max.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests;
