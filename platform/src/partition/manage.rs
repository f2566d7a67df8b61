//! The manager's view into other partitions: dirty logging and aging over their stage-2 tables
//! with `mmu` (`split` to base pages so harvests are per page, `clear_dirty` and `age`/`test_age`
//! per region, each change committed through the partition's flush, which reaches the CPU the
//! target runs on), its exit counters, and its per-vCPU records. All of it runs in `mmu`'s shared mode, beside the
//! target's own fault fixes, so the target keeps running while it is harvested.
//!
//! Units: harvest bitmaps and young counts are in 4 KiB pages of the target's memory, regions
//! concatenated in board-file order (`vcpu/README.md`); with 16 KiB stage-2 pages one page sets
//! four bits.

use super::target;
use super::{guest_mem, Partition};
use alloc::vec;
use core::sync::atomic::Ordering;
use mmu::{Flush, FlushBatch, Gfn, GfnBitmap, GpaRange, TlbFlush};
use vcpu::hypercall::VCPU_INFO_WORDS;
use vcpu::{HypercallError, PartitionId};

type Result = core::result::Result<u64, HypercallError>;

const SMALL: u64 = 4096;

fn page_shift(t: &Partition) -> u32 {
    t.table().page_size().trailing_zeros()
}

fn bitmap_for(t: &Partition, range: &GpaRange) -> GfnBitmap {
    let shift = page_shift(t);
    GfnBitmap::new(Gfn::of(range.start, shift), range.len() >> shift)
}

/// Splits every huge leaf of `t` to base pages, so tracking is per page.
fn split_all(t: &Partition) -> core::result::Result<(), HypercallError> {
    let mut batch = FlushBatch::new();
    for (_, range) in t.regions() {
        t.table()
            .split(range, 0, &mut batch)
            .map_err(|_| HypercallError::InvalidArgument)?;
    }
    let _ = t.table().commit(batch);
    Ok(())
}

pub fn dirty_log_start(id: PartitionId) -> Result {
    let t = target(id)?;
    split_all(t)?;
    // Clean everything: only writes from now on count.
    let mut batch = FlushBatch::new();
    for (_, range) in t.regions() {
        let mut scratch = bitmap_for(t, &range);
        let _ = t.table().clear_dirty(range, &mut scratch, &mut batch);
    }
    let _ = t.table().commit(batch);
    t.dirty_logging.store(true, Ordering::SeqCst);
    Ok(0)
}

pub fn dirty_log_stop(id: PartitionId) -> Result {
    let t = target(id)?;
    if !t.dirty_logging.swap(false, Ordering::SeqCst) {
        return Err(HypercallError::BadState);
    }
    Ok(0)
}

pub fn dirty_harvest(caller: &Partition, id: PartitionId, gpa: u64, bytes: u64) -> Result {
    let t = target(id)?;
    if !t.dirty_logging.load(Ordering::SeqCst) {
        return Err(HypercallError::BadState);
    }
    let total: u64 = t.regions().map(|(_, r)| r.len() / SMALL).sum();
    if bytes * 8 < total {
        return Err(HypercallError::InvalidArgument);
    }
    let out = guest_mem::host_slice(caller, gpa, bytes, true).ok_or(HypercallError::BadAddress)?;
    let mut bits = vec![0u8; bytes as usize];
    let mut set = 0u64;
    let mut base = 0u64;
    let mut batch = FlushBatch::new();
    let per_page = t.table().page_size() / SMALL;
    for (_, range) in t.regions() {
        let mut log = bitmap_for(t, &range);
        t.table()
            .clear_dirty(range, &mut log, &mut batch)
            .map_err(|_| HypercallError::InvalidArgument)?;
        let first = log.base().0;
        for i in 0..log.len() {
            if log.get(Gfn(first + i)) {
                for k in 0..per_page {
                    let bit = base + i * per_page + k;
                    bits[(bit / 8) as usize] |= 1 << (bit % 8);
                    set += 1;
                }
            }
        }
        base += range.len() / SMALL;
    }
    // The flush reaches the target's CPU before the caller sees the bitmap.
    let _ = t.table().commit(batch);
    out.copy_from_slice(&bits);
    Ok(set)
}

/// Makes every page of `t` old and drops its cached translations everywhere: on LoongArch a
/// cached valid entry would keep serving accesses without the fault that marks the page young.
fn age_all(t: &Partition) -> u64 {
    let mut young = 0;
    for (_, range) in t.regions() {
        if !t.table().test_age(range).unwrap_or(true) {
            continue;
        }
        let mut log = bitmap_for(t, &range);
        young += t.table().age(range, &mut log).unwrap_or(0);
    }
    t.table().tlb().flush(Flush::All);
    young
}

pub fn age_start(id: PartitionId) -> Result {
    let t = target(id)?;
    split_all(t)?;
    age_all(t);
    Ok(0)
}

pub fn age_harvest(id: PartitionId) -> Result {
    let t = target(id)?;
    let per_page = t.table().page_size() / SMALL;
    Ok(age_all(t) * per_page)
}

pub fn exit_counters(caller: &Partition, id: PartitionId, gpa: u64, bytes: u64) -> Result {
    let t = target(id)?;
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
pub fn vcpu_info(caller: &Partition, id: PartitionId, gpa: u64, bytes: u64) -> Result {
    let t = target(id)?;
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
