//! Cross-CPU requests: the stage-2 flush shootdown that reaches every CPU running a partition
//! before a table change counts, the bookkeeping of which CPU runs which partition, and the kick
//! flags. The protocol itself is `mmu::shootdown`'s (host-tested, with threads as CPUs); this
//! file gives it the machine's CPUs through the seam ([`ThisCpu`]: the arch's local flush, flush
//! IPI and counter). The one [`Shootdown`] of the machine is the caller's (the image's static, a
//! test's own); every partition holds a reference to it. A CPU that does not acknowledge a flush
//! within the bound is reported ("did not acknowledge", which the boot tests treat as a failure).
//! The shootdowns' counters are printed in the console's final table (`report`).

use crate::arch::PartitionArch;
use crate::{Partition, PartitionId, Shootdown};
use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use mmu::shootdown::CpuSignals;
use mmu::{Flush, Hpa, TlbFlush};

/// Polls before a CPU that does not acknowledge is reported (seconds on QEMU TCG): the bound
/// the image's [`Shootdown`] is made with.
pub const ACK_POLLS: u64 = 500_000_000;

/// The calling CPU, as the shootdown of one partition's translations reaches CPUs: `root` is
/// that partition's table root, which every flush the shootdown asks of this CPU is for.
struct ThisCpu<A> {
    root: Hpa,
    arch: PhantomData<fn() -> A>,
}

impl<A: PartitionArch> CpuSignals for ThisCpu<A> {
    fn this_cpu(&self) -> usize {
        A::cpu_index()
    }

    fn flush_local(&self, id: u32, what: Flush) {
        A::flush_local(id, self.root, what);
    }

    fn send_flush_ipi(&self, cpu: usize) {
        A::send_flush_ipi(cpu);
    }

    fn now(&self) -> u64 {
        A::now()
    }
}

fn this_cpu<A>(root: Hpa) -> ThisCpu<A> {
    ThisCpu {
        root,
        arch: PhantomData,
    }
}

impl<A: PartitionArch> Partition<A> {
    /// Marks CPU `cpu` (the caller) as running this partition and drops its stale translations.
    pub(crate) fn begin_run_on(&self, cpu: usize) {
        self.shootdown
            .begin_run(&this_cpu::<A>(self.table().root()), cpu, self.id);
    }

    /// Marks CPU `cpu` (the caller) as running no partition.
    pub(crate) fn end_run_on(&self, cpu: usize) {
        self.shootdown.end_run(cpu);
    }

    /// Services CPU `cpu`'s (the caller's) posted flushes for this partition: the exit
    /// handler's first step.
    pub(crate) fn service_flushes(&self, cpu: usize) {
        self.shootdown
            .service(&this_cpu::<A>(self.table().root()), cpu, self.id);
    }

    /// Every CPU other than the caller that runs this partition.
    pub(crate) fn cpus_running(&self) -> impl Iterator<Item = usize> + '_ {
        self.shootdown.cpus_running(A::cpu_index(), self.id)
    }

    /// Makes `cpu` exit its guest soon (a stop request, a virtual interrupt to deliver): its
    /// kick flag first, then the arch's kick.
    pub(crate) fn kick(&self, cpu: usize) {
        self.shootdown.mark_kicked(cpu);
        A::kick(cpu);
    }

    /// CPU `cpu`'s kick flag, for a backend's entry and wait code: set before every kick, so a
    /// backend whose kick can be lost (x86: the NMI, dropped when it arrives between an exit
    /// and the next entry) checks it in the last instructions before entering the guest.
    pub fn kick_flag(&self, cpu: usize) -> &'static AtomicBool {
        self.shootdown.kick_flag(cpu)
    }

    /// Clears CPU `cpu`'s (the caller's) kick flag: its exit handler is about to look at every
    /// request.
    pub(crate) fn take_kick(&self, cpu: usize) {
        self.shootdown.take_kick(cpu);
    }
}

/// The `mmu` flush backend of one partition's table: the shootdown of its translations, here
/// and on every other CPU running it (see `mmu::shootdown`).
pub struct PartitionFlush<A> {
    id: PartitionId,
    shootdown: &'static Shootdown,
    /// The table's root, known once the table exists (`set_root`).
    root: AtomicU64,
    arch: PhantomData<fn() -> A>,
}

impl<A> PartitionFlush<A> {
    pub fn new(id: PartitionId, shootdown: &'static Shootdown) -> Self {
        Self {
            id,
            shootdown,
            root: AtomicU64::new(0),
            arch: PhantomData,
        }
    }

    /// Names the table this flush is for (right after the table is made, before any change).
    pub(crate) fn set_root(&self, root: Hpa) {
        self.root.store(root.as_u64(), Ordering::SeqCst);
    }
}

impl<A: PartitionArch> TlbFlush for PartitionFlush<A> {
    fn flush(&self, what: Flush) {
        let cpu = this_cpu::<A>(Hpa(self.root.load(Ordering::SeqCst)));
        if let Err(e) = self.shootdown.shootdown(&cpu, self.id, what) {
            say!(A, "partition: cpu{} did not acknowledge a TLB flush", e.cpu);
        }
    }
}
