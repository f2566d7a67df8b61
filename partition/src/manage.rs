//! The manager's view into other partitions: dirty logging and aging over their stage-2 tables
//! (`mmu::tracking`, host-tested: base pages, harvests in 4 KiB pages of the regions concatenated
//! in board-file order, every change committed through the partition's flush, which reaches the
//! CPU the target runs on, before the answer), its exit counters, and its per-vCPU records. All of
//! it runs in `mmu`'s shared mode, beside the target's own fault fixes, so the target keeps
//! running while it is harvested. This file checks the call (the target exists, logging is on,
//! the caller's buffer is its own memory) and maps the answers to the hypercall ABI.

use crate::arch::PartitionArch;
use crate::{guest_mem, Partition, Partitions};
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use mmu::tracking::HarvestError;
use mmu::GpaRange;
use vcpu::hypercall::VCPU_INFO_WORDS;
use vcpu::{HypercallError, PartitionId};

type Result = core::result::Result<u64, HypercallError>;

/// `t`'s memory regions, in board-file order: what the harvests cover.
fn regions<A: PartitionArch>(t: &Partition<A>) -> Vec<GpaRange> {
    t.regions().map(|(_, r)| r).collect()
}

pub fn dirty_log_start<A: PartitionArch>(all: &Partitions<A>, id: PartitionId) -> Result {
    let t = all.target(id)?;
    t.table()
        .start_dirty_log(&regions(t))
        .map_err(|_| HypercallError::InvalidArgument)?;
    t.dirty_logging.store(true, Ordering::SeqCst);
    Ok(0)
}

pub fn dirty_log_stop<A: PartitionArch>(all: &Partitions<A>, id: PartitionId) -> Result {
    let t = all.target(id)?;
    if !t.dirty_logging.swap(false, Ordering::SeqCst) {
        return Err(HypercallError::BadState);
    }
    Ok(0)
}

pub fn dirty_harvest<A: PartitionArch>(
    all: &Partitions<A>,
    caller: &Partition<A>,
    id: PartitionId,
    gpa: u64,
    bytes: u64,
) -> Result {
    let t = all.target(id)?;
    if !t.dirty_logging.load(Ordering::SeqCst) {
        return Err(HypercallError::BadState);
    }
    let regions = regions(t);
    // A bitmap too small for the regions is refused by the harvest before it changes anything.
    let out = guest_mem::host_slice(caller, gpa, bytes, true).ok_or(HypercallError::BadAddress)?;
    t.table()
        .harvest_dirty_log(&regions, out)
        .map_err(|e| match e {
            HarvestError::TooSmall | HarvestError::Table(_) => HypercallError::InvalidArgument,
        })
}

pub fn age_start<A: PartitionArch>(all: &Partitions<A>, id: PartitionId) -> Result {
    let t = all.target(id)?;
    let regions = regions(t);
    t.table()
        .split_to_base(&regions)
        .map_err(|_| HypercallError::InvalidArgument)?;
    t.table().age_all(&regions);
    Ok(0)
}

pub fn age_harvest<A: PartitionArch>(all: &Partitions<A>, id: PartitionId) -> Result {
    let t = all.target(id)?;
    Ok(t.table().age_all(&regions(t)))
}

pub fn exit_counters<A: PartitionArch>(
    all: &Partitions<A>,
    caller: &Partition<A>,
    id: PartitionId,
    gpa: u64,
    bytes: u64,
) -> Result {
    let t = all.target(id)?;
    let counts = t.exit_counters().counts;
    let n = ((bytes / 8) as usize).min(counts.len());
    let out = guest_mem::host_slice(caller, gpa, bytes, true).ok_or(HypercallError::BadAddress)?;
    for (chunk, c) in out.chunks_exact_mut(8).zip(&counts[..n]) {
        chunk.copy_from_slice(&c.to_le_bytes());
    }
    Ok(n as u64)
}

/// One `VCPU_INFO` record per vCPU of `id` (`vcpu/README.md`): physical CPU, state, exits, timer,
/// IPI and device interrupts delivered, upcalls, IPIs sent.
pub fn vcpu_info<A: PartitionArch>(
    all: &Partitions<A>,
    caller: &Partition<A>,
    id: PartitionId,
    gpa: u64,
    bytes: u64,
) -> Result {
    let t = all.target(id)?;
    let out = guest_mem::host_slice(caller, gpa, bytes, true).ok_or(HypercallError::BadAddress)?;
    let record = (VCPU_INFO_WORDS * 8) as usize;
    let mut n = 0;
    for (chunk, v) in out.chunks_exact_mut(record).zip(&t.vcpus) {
        for (w, value) in chunk.chunks_exact_mut(8).zip(v.info()) {
            w.copy_from_slice(&value.to_le_bytes());
        }
        n += 1;
    }
    Ok(n)
}
