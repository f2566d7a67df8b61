//! `split` huge leaves into smaller ones and `collapse` tables back into huge leaves.
//!
//! Neither changes a translation. A split builds the replacement subtree unpublished (every child
//! inherits the huge leaf's attributes, young and dirty state) and swaps it in with one
//! compare-and-swap against the leaf value it was built from; if the hardware or another thread
//! changed the leaf meanwhile (say, set its dirty bit) the swap fails and the subtree is rebuilt,
//! so no state is lost. On x86 no flush is needed; on LoongArch the huge page is flushed so a
//! stale huge TLB entry cannot coexist with the new small ones.
//!
//! A collapse (exclusive) replaces a table whose leaves map one contiguous, suitably aligned host
//! range with identical attributes by one huge leaf. Children are retired with an atomic exchange
//! first, so young/dirty set by the hardware up to that point is carried into the huge leaf; the
//! table page is freed after the batch's flush.

use core::sync::atomic::Ordering;

use super::touched::Touched;
use super::{Error, Result, Slot, StageTwoTable};
use crate::addr::{Gpa, GpaRange, Hpa};
use crate::attrs::LeafAttrs;
use crate::flush::{FlushBatch, TlbFlush};
use crate::format::PteFormat;
use crate::frame::FrameAllocator;
use crate::mirror::MirrorHook;
use crate::stats::StatDelta;

struct ResizeState {
    delta: StatDelta,
    done: u64,
    touched: Touched,
}

impl<F: PteFormat, A: FrameAllocator, T: TlbFlush, M: MirrorHook> StageTwoTable<F, A, T, M> {
    /// Split every huge leaf overlapping `range` down to leaves of `target_level`.
    /// Returns how many huge leaves were replaced. Shared mode.
    ///
    /// A huge leaf entirely inside the range is rebuilt straight down to `target_level` and
    /// published with one swap; one that sticks out is split a level at a time, only the part in
    /// the range going further down.
    pub fn split(
        &self,
        range: GpaRange,
        target_level: usize,
        batch: &mut FlushBatch,
    ) -> Result<u64> {
        self.check_range(&range)?;
        let mut st = ResizeState {
            delta: StatDelta::default(),
            done: 0,
            touched: Touched::none(),
        };
        let r = if range.is_empty() {
            Ok(())
        } else {
            self.split_level(
                F::LEVELS - 1,
                self.root,
                0,
                range.start.as_u64(),
                range.end.as_u64(),
                target_level,
                &mut st,
            )
        };
        self.stats.add_delta(&st.delta);
        if F::SPLIT_NEEDS_FLUSH {
            st.touched.flush_into(batch);
        }
        r.map(|()| st.done)
    }

    #[allow(clippy::too_many_arguments)]
    fn split_level(
        &self,
        level: usize,
        table: Hpa,
        base: u64,
        start: u64,
        end: u64,
        target: usize,
        st: &mut ResizeState,
    ) -> Result<()> {
        if level <= target {
            return Ok(());
        }
        let ents = self.entries(table);
        let size = F::level_size(level);
        let first = Self::index(start, level);
        let last = Self::index(end - 1, level);
        for (i, e) in ents.iter().enumerate().take(last + 1).skip(first) {
            let slot = base + i as u64 * size;
            let (s, t) = (start.max(slot), end.min(slot + size));
            loop {
                let v = e.load(Ordering::Acquire);
                match self.classify(v, level) {
                    Slot::Empty | Slot::Frozen => break,
                    Slot::Table => {
                        self.split_level(
                            level - 1,
                            self.format.table_hpa(v),
                            slot,
                            s,
                            t,
                            target,
                            st,
                        )?;
                        break;
                    }
                    Slot::Leaf => {
                        let full = s == slot && t == slot + size;
                        let down_to = if full { target } else { level - 1 };
                        let attrs = self.format.leaf_attrs(v, level);
                        let hpa = self.format.leaf_hpa(v, level);
                        let mut built = StatDelta::default();
                        let child = self
                            .build_subtree(level, hpa, &attrs, down_to, &mut built)
                            .ok_or(Error::OutOfMemory { at: Gpa(s) })?;
                        let link = self.format.table_entry(child);
                        if e.compare_exchange(v, link, Ordering::AcqRel, Ordering::Acquire)
                            .is_err()
                        {
                            self.free_unpublished(child, level - 1);
                            continue;
                        }
                        built.leaves[level] -= 1;
                        for (d, b) in st.delta.leaves.iter_mut().zip(built.leaves) {
                            *d += b;
                        }
                        st.delta.tables += built.tables;
                        st.done += 1;
                        st.touched.add(slot, slot + size);
                        if !full {
                            // Loop again: the slot is now a table, split further in range.
                            continue;
                        }
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// The table replacing a huge leaf at `level` mapping `hpa`: the children one level down, or
    /// whole subtrees down to `target`. Unpublished; `None` if a page could not be allocated
    /// (everything built so far is freed).
    fn build_subtree(
        &self,
        level: usize,
        hpa: Hpa,
        attrs: &LeafAttrs,
        target: usize,
        delta: &mut StatDelta,
    ) -> Option<Hpa> {
        let child_level = level - 1;
        let child_size = F::level_size(child_level);
        let page = self.new_table_unfilled()?;
        let ents = self.entries(page);
        if child_level <= target {
            let tmpl = self.format.leaf_template(child_level, attrs).ok()?;
            let mut h = hpa.as_u64();
            for e in ents {
                e.store(tmpl | h, Ordering::Relaxed);
                h += child_size;
            }
            delta.leaves[child_level] += F::ENTRIES as i64;
        } else {
            for (i, e) in ents.iter().enumerate() {
                let sub_hpa = Hpa(hpa.as_u64() + i as u64 * child_size);
                match self.build_subtree(child_level, sub_hpa, attrs, target, delta) {
                    Some(sub) => e.store(self.format.table_entry(sub), Ordering::Relaxed),
                    None => {
                        for f in &ents[i..] {
                            f.store(self.none(child_level), Ordering::Relaxed);
                        }
                        self.free_unpublished(page, child_level);
                        return None;
                    }
                }
            }
        }
        delta.tables += 1;
        Some(page)
    }

    /// One level of split for `unmap`: the unpublished table of children of leaf `v`.
    pub(crate) fn split_one(&self, v: u64, level: usize) -> Option<Hpa> {
        let attrs = self.format.leaf_attrs(v, level);
        let mut d = StatDelta::default();
        self.build_subtree(
            level,
            self.format.leaf_hpa(v, level),
            &attrs,
            level - 1,
            &mut d,
        )
    }

    /// Replace every table inside `range` whose leaves map a contiguous host range with equal
    /// attributes by one huge leaf, up to leaves of `max_level`. Bottom-up, so 4K → 2M → 1G
    /// happens in one call. Returns the number of huge leaves created. Exclusive mode.
    pub fn collapse(
        &mut self,
        range: GpaRange,
        max_level: usize,
        batch: &mut FlushBatch,
    ) -> Result<u64> {
        self.check_range(&range)?;
        let cap = max_level.min(F::MAX_LEAF_LEVEL);
        let mut st = ResizeState {
            delta: StatDelta::default(),
            done: 0,
            touched: Touched::none(),
        };
        if !range.is_empty() {
            self.collapse_level(
                F::LEVELS - 1,
                self.root,
                0,
                range.start.as_u64(),
                range.end.as_u64(),
                cap,
                batch,
                &mut st,
            );
        }
        self.stats.add_delta(&st.delta);
        st.touched.flush_into(batch);
        Ok(st.done)
    }

    #[allow(clippy::too_many_arguments)]
    fn collapse_level(
        &self,
        level: usize,
        table: Hpa,
        base: u64,
        start: u64,
        end: u64,
        cap: usize,
        batch: &mut FlushBatch,
        st: &mut ResizeState,
    ) {
        let ents = self.entries(table);
        let size = F::level_size(level);
        let first = Self::index(start, level);
        let last = Self::index(end - 1, level);
        for (i, e) in ents.iter().enumerate().take(last + 1).skip(first) {
            let v = e.load(Ordering::Acquire);
            if self.classify(v, level) != Slot::Table {
                continue;
            }
            let slot = base + i as u64 * size;
            let (s, t) = (start.max(slot), end.min(slot + size));
            let child = self.format.table_hpa(v);
            if level - 1 > 0 {
                self.collapse_level(level - 1, child, slot, s, t, cap, batch, st);
            }
            let full = s == slot && t == slot + size;
            if full && level <= cap {
                self.try_collapse(e, child, level, slot, batch, st);
            }
        }
    }

    fn try_collapse(
        &self,
        e: &core::sync::atomic::AtomicU64,
        child: Hpa,
        level: usize,
        slot: u64,
        batch: &mut FlushBatch,
        st: &mut ResizeState,
    ) {
        let cl = level - 1;
        let child_size = F::level_size(cl);
        let ents = self.entries(child);
        let v0 = ents[0].load(Ordering::Acquire);
        if self.classify(v0, cl) != Slot::Leaf {
            return;
        }
        let base = self.format.leaf_hpa(v0, cl).as_u64();
        if base & (F::level_size(level) - 1) != 0 {
            return;
        }
        let mut attrs = self.format.leaf_attrs(v0, cl);
        for (i, c) in ents.iter().enumerate() {
            let v = c.load(Ordering::Acquire);
            if self.classify(v, cl) != Slot::Leaf
                || self.format.leaf_hpa(v, cl).as_u64() != base + i as u64 * child_size
                || !self.format.leaf_attrs(v, cl).same_mapping(&attrs)
            {
                return;
            }
        }
        if self.format.leaf_template(level, &attrs).is_err() {
            return;
        }
        let none = self.none(cl);
        let (mut young, mut dirty) = (false, false);
        for c in ents {
            let v = c.load(Ordering::Acquire);
            let old = if self.format.hw_may_modify(v) {
                c.swap(none, Ordering::AcqRel)
            } else {
                c.store(none, Ordering::Relaxed);
                v
            };
            young |= self.format.is_young(old);
            dirty |= self.format.is_dirty(old);
        }
        attrs.young = young;
        attrs.dirty = dirty;
        // Only young/dirty changed since the check above, so the template still encodes.
        let huge = self.format.leaf_template(level, &attrs).map_or(0, |t| t) | base;
        e.store(huge, Ordering::Release);
        batch.defer_free(child, Gpa(slot), Gpa(slot + F::level_size(level)));
        st.delta.leaves[cl] -= F::ENTRIES as i64;
        st.delta.leaves[level] += 1;
        st.delta.tables -= 1;
        st.done += 1;
        st.touched.add(slot, slot + F::level_size(level));
    }
}
