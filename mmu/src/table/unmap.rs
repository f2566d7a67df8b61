//! `unmap`: remove translations, optionally freeing the tables a range covers completely.
//!
//! Exclusive mode. Leaves the hardware may still modify (a clean writable EPT leaf can get its
//! dirty bit set by a CPU walking through a cached upper entry) are retired with an atomic
//! exchange, so a dirty bit set up to the very last moment is still harvested. A table is unlinked
//! only when the range covers its whole span, and its page goes into the batch to be freed after
//! the flush. A huge leaf the range covers only in part is split first, so its neighbours stay
//! mapped.

use core::sync::atomic::Ordering;

use super::touched::Touched;
use super::{Error, Result, Slot, StageTwoTable};
use crate::addr::{Gpa, GpaRange, Hpa};
use crate::bitmap::GfnBitmap;
use crate::flush::{FlushBatch, TlbFlush};
use crate::format::PteFormat;
use crate::frame::FrameAllocator;
use crate::mirror::MirrorHook;
use crate::stats::StatDelta;

/// What `unmap` does with tables it empties.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UnmapMode {
    /// Clear leaves only; every table stays (cheap to map again).
    LeavesOnly,
    /// Also unlink and free (after the flush) every table the range covers completely.
    FreeTables,
}

/// What an unmap removed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct UnmapReport {
    /// Base pages no longer mapped.
    pub pages: u64,
    /// Of those, pages whose leaf was dirty when removed.
    pub dirty_pages: u64,
}

pub(crate) struct UnmapState<'a> {
    delta: StatDelta,
    report: UnmapReport,
    touched: Touched,
    dirty: Option<&'a mut GfnBitmap>,
}

impl<F: PteFormat, A: FrameAllocator, T: TlbFlush, M: MirrorHook> StageTwoTable<F, A, T, M> {
    /// Remove every translation in `range`. Dirty leaves removed are reported into `dirty` (if
    /// given) and counted. Exclusive mode.
    ///
    /// Splitting a partly covered huge leaf needs a table page; if none is available the call
    /// stops there with `OutOfMemory { at }`, `[range.start, at)` unmapped.
    pub fn unmap(
        &mut self,
        range: GpaRange,
        mode: UnmapMode,
        batch: &mut FlushBatch,
        dirty: Option<&mut GfnBitmap>,
    ) -> Result<UnmapReport> {
        self.check_range(&range)?;
        self.unmap_inner(range, mode, batch, dirty)
    }

    pub(crate) fn unmap_inner(
        &self,
        range: GpaRange,
        mode: UnmapMode,
        batch: &mut FlushBatch,
        dirty: Option<&mut GfnBitmap>,
    ) -> Result<UnmapReport> {
        let mut st = UnmapState {
            delta: StatDelta::default(),
            report: UnmapReport::default(),
            touched: Touched::none(),
            dirty,
        };
        let r = if range.is_empty() {
            Ok(())
        } else {
            self.unmap_level(
                F::LEVELS - 1,
                self.root,
                0,
                range.start.as_u64(),
                range.end.as_u64(),
                mode,
                batch,
                &mut st,
            )
        };
        self.stats.add_delta(&st.delta);
        st.touched.flush_into(batch);
        r.map(|()| st.report)
    }

    #[allow(clippy::too_many_arguments)]
    fn unmap_level(
        &self,
        level: usize,
        table: Hpa,
        base: u64,
        start: u64,
        end: u64,
        mode: UnmapMode,
        batch: &mut FlushBatch,
        st: &mut UnmapState<'_>,
    ) -> Result<()> {
        let ents = self.entries(table);
        let size = F::level_size(level);
        let first = Self::index(start, level);
        let last = Self::index(end - 1, level);
        let none = self.none(level);
        for (i, e) in ents.iter().enumerate().take(last + 1).skip(first) {
            let slot = base + i as u64 * size;
            let (s, t) = (start.max(slot), end.min(slot + size));
            let full = s == slot && t == slot + size;
            let mut v = e.load(Ordering::Acquire);
            let mut kind = self.classify(v, level);
            if kind == Slot::Leaf && !full {
                let child = self
                    .split_one(v, level)
                    .ok_or(Error::OutOfMemory { at: Gpa(s) })?;
                // Exclusive: only the hardware may change the leaf meanwhile (A/D), and it keeps
                // the translation; rebuild from the fresh value until the swap sticks.
                let link = self.format.table_entry(child);
                match e.compare_exchange(v, link, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => {
                        st.delta.leaves[level] -= 1;
                        st.delta.leaves[level - 1] += F::ENTRIES as i64;
                        st.delta.tables += 1;
                        v = link;
                        kind = Slot::Table;
                    }
                    Err(_) => {
                        self.free_unpublished(child, level - 1);
                        return self.unmap_level(level, table, base, s, end, mode, batch, st);
                    }
                }
            }
            match kind {
                Slot::Empty | Slot::Frozen => {}
                Slot::Leaf => {
                    let old = if self.format.hw_may_modify(v) {
                        e.swap(none, Ordering::AcqRel)
                    } else {
                        e.store(none, Ordering::Release);
                        v
                    };
                    let pages = size >> F::PAGE_SHIFT;
                    st.report.pages += pages;
                    if self.format.is_dirty(old) {
                        st.report.dirty_pages += pages;
                        if let Some(log) = st.dirty.as_deref_mut() {
                            log.set_range(slot >> F::PAGE_SHIFT, pages);
                        }
                    }
                    st.delta.leaves[level] -= 1;
                    st.touched.add(slot, slot + size);
                    if M::ENABLED {
                        self.mirror.on_remove(GpaRange {
                            start: Gpa(slot),
                            end: Gpa(slot + size),
                        });
                    }
                }
                Slot::Table => {
                    let child = self.format.table_hpa(v);
                    self.unmap_level(level - 1, child, slot, s, t, mode, batch, st)?;
                    if full && mode == UnmapMode::FreeTables {
                        e.store(none, Ordering::Release);
                        st.delta.tables -= 1;
                        batch.defer_free(child, Gpa(slot), Gpa(slot + size));
                    }
                }
            }
        }
        Ok(())
    }
}
