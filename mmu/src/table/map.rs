//! `map` and `map_range`: install translations, choosing the largest page alignment allows.
//!
//! Where a whole table's worth of the range is new, the table is built while still unlinked, with
//! plain stores, and published with one release compare-and-swap: a concurrent walker sees either
//! nothing or the finished subtree. If another thread publishes a table in the same slot first, the
//! unpublished subtree is freed and the range continues through the winner's table. A present leaf
//! is never replaced: the same frame with the same attributes is a no-op, anything else an error.

use core::sync::atomic::{AtomicU64, Ordering};

use super::{Error, Result, Slot, StageTwoTable};
use crate::addr::{Gpa, GpaRange, Hpa};
use crate::attrs::LeafAttrs;
use crate::flush::{FlushBatch, TlbFlush};
use crate::format::{PteFormat, MAX_LEVELS};
use crate::frame::FrameAllocator;
use crate::mirror::MirrorHook;
use crate::stats::StatDelta;

/// The largest leaf `map_range` may use.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HugePolicy {
    /// Highest leaf level allowed (0 = base pages only); capped by the format.
    pub max_level: usize,
}

impl HugePolicy {
    /// Base pages only.
    pub const BASE_PAGES: HugePolicy = HugePolicy { max_level: 0 };
    /// Whatever the format supports.
    pub const LARGEST: HugePolicy = HugePolicy {
        max_level: usize::MAX,
    };
}

/// What a map call installed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct MapReport {
    /// New leaves per level (already-present identical leaves are not counted).
    pub installed: [u64; MAX_LEVELS],
}

#[derive(Clone, Copy)]
struct Cursor {
    gpa: u64,
    end: u64,
    hpa: u64,
    cap: usize,
    tmpl: [u64; MAX_LEVELS],
    delta: StatDelta,
}

impl Cursor {
    #[inline(always)]
    fn advance(&mut self, bytes: u64) {
        self.gpa += bytes;
        self.hpa += bytes;
    }
}

impl<F: PteFormat, A: FrameAllocator, T: TlbFlush, M: MirrorHook> StageTwoTable<F, A, T, M> {
    /// Map one page of `level` (0 = base page) at `gpa` to `hpa`; both must be aligned to it.
    pub fn map(
        &self,
        gpa: Gpa,
        hpa: Hpa,
        level: usize,
        attrs: LeafAttrs,
        batch: &mut FlushBatch,
    ) -> Result<MapReport> {
        if level > F::MAX_LEAF_LEVEL {
            return Err(Error::Format(crate::format::FormatError::NotALeafLevel(
                level,
            )));
        }
        let size = F::level_size(level);
        if !gpa.is_aligned(size) || !hpa.is_aligned(size) {
            return Err(Error::Misaligned { gpa });
        }
        let range = GpaRange::from_len(gpa, size)?;
        self.map_range(range, hpa, attrs, HugePolicy { max_level: level }, batch)
    }

    /// Map `range` to the host range starting at `hpa`, using the largest leaves that the
    /// alignment of both addresses, the range and `policy` allow.
    ///
    /// Shared mode. On error, `[range.start, at)` is mapped and the rest untouched (see `Error`).
    pub fn map_range(
        &self,
        range: GpaRange,
        hpa: Hpa,
        attrs: LeafAttrs,
        policy: HugePolicy,
        batch: &mut FlushBatch,
    ) -> Result<MapReport> {
        self.check_range(&range)?;
        if !hpa.is_aligned(1 << F::PAGE_SHIFT) {
            return Err(Error::Misaligned { gpa: range.start });
        }
        hpa.checked_add(range.len())?;
        let cap = policy.max_level.min(F::MAX_LEAF_LEVEL);
        let mut c = Cursor {
            gpa: range.start.as_u64(),
            end: range.end.as_u64(),
            hpa: hpa.as_u64(),
            cap,
            tmpl: [0; MAX_LEVELS],
            delta: StatDelta::default(),
        };
        for (level, t) in c.tmpl.iter_mut().enumerate().take(cap + 1) {
            *t = self.format.leaf_template(level, &attrs)?;
        }
        let r = if range.is_empty() {
            Ok(())
        } else {
            self.map_level(F::LEVELS - 1, self.root, false, &mut c, &attrs)
        };
        self.stats.add_delta(&c.delta);
        if F::CACHES_NONPRESENT {
            // The TLB may hold the invalid entries we just replaced.
            batch.add_range(range.start, Gpa(c.gpa));
        }
        let mut report = MapReport::default();
        for (i, n) in c.delta.leaves.iter().enumerate() {
            report.installed[i] = *n as u64;
        }
        r.map(|()| report)
    }

    fn map_level(
        &self,
        level: usize,
        table: Hpa,
        fresh: bool,
        c: &mut Cursor,
        attrs: &LeafAttrs,
    ) -> Result<()> {
        let ents = self.entries(table);
        let size = F::level_size(level);
        let stop = c.end.min(Self::table_span(c.gpa, level).1);
        while c.gpa < stop {
            let idx = Self::index(c.gpa, level);
            let leaf_ok = level <= c.cap
                && c.gpa & (size - 1) == 0
                && stop - c.gpa >= size
                && c.hpa & (size - 1) == 0;
            if fresh && !M::ENABLED && leaf_ok {
                // The bulk path: the rest of an unpublished table, one plain store per entry. Each
                // later entry keeps the alignment of the first, so all of them are leaves.
                let n = ((stop - c.gpa) / size) as usize;
                let (t, mut h) = (c.tmpl[level], c.hpa);
                for e in &ents[idx..idx + n] {
                    e.store(t | h, Ordering::Relaxed);
                    h += size;
                }
                c.delta.leaves[level] += n as i64;
                c.advance(n as u64 * size);
                continue;
            }
            let e = &ents[idx];
            let v = if fresh {
                self.none(level)
            } else {
                e.load(Ordering::Acquire)
            };
            match self.classify(v, level) {
                Slot::Frozen => core::hint::spin_loop(),
                Slot::Table => {
                    self.map_level(level - 1, self.format.table_hpa(v), false, c, attrs)?
                }
                Slot::Leaf => self.check_same(v, level, c, attrs)?,
                Slot::Empty if leaf_ok => self.install(e, v, level, c, attrs)?,
                Slot::Empty => self.map_new_table(e, v, level, fresh, c, attrs)?,
            }
        }
        Ok(())
    }

    /// Set to empty the entries of the fresh table page `pa` (entries of `level`) that a walk
    /// from `from` to `to` did not write: those before `from`'s entry and from the first entry
    /// `to` did not reach.
    fn clear_unwritten(&self, pa: Hpa, level: usize, from: u64, to: u64) {
        let size = F::level_size(level);
        let (span_base, span_end) = Self::table_span(from, level);
        let first = Self::index(from, level);
        // An entry is written once the walk got past its start; `from` itself may lie inside the
        // first entry, which then counts only if the walk moved at all.
        let done = if to == from {
            first
        } else {
            (to.min(span_end) - span_base).div_ceil(size) as usize
        };
        let none = self.none(level);
        let ents = self.entries(pa);
        for e in ents[..first].iter().chain(&ents[done..]) {
            e.store(none, Ordering::Relaxed);
        }
    }

    /// A present leaf covers `c.gpa`: fine if it already maps what we would, else refused.
    fn check_same(&self, v: u64, level: usize, c: &mut Cursor, attrs: &LeafAttrs) -> Result<()> {
        let size = F::level_size(level);
        let slot = c.gpa & !(size - 1);
        let existing = self.format.leaf_hpa(v, level).as_u64() + (c.gpa - slot);
        if existing != c.hpa || !self.format.leaf_attrs(v, level).same_mapping(attrs) {
            return Err(Error::AlreadyMapped {
                gpa: Gpa(c.gpa),
                existing: Hpa(existing),
            });
        }
        let next = (slot + size).min(c.end);
        c.advance(next - c.gpa);
        Ok(())
    }

    /// Publish a leaf into the empty entry `e` (which held `v`), through the mirror if any.
    fn install(
        &self,
        e: &AtomicU64,
        v: u64,
        level: usize,
        c: &mut Cursor,
        attrs: &LeafAttrs,
    ) -> Result<()> {
        let size = F::level_size(level);
        let new = c.tmpl[level] | c.hpa;
        if !M::ENABLED {
            if e.compare_exchange(v, new, Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                c.delta.leaves[level] += 1;
                c.advance(size);
            }
            // On failure the caller's loop re-reads the entry.
            return Ok(());
        }
        let frozen = self.format.frozen(v);
        if e.compare_exchange(v, frozen, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Ok(());
        }
        match self.mirror.on_install(Gpa(c.gpa), size, Hpa(c.hpa), attrs) {
            Ok(()) => {
                e.store(new, Ordering::Release);
                c.delta.leaves[level] += 1;
                c.advance(size);
                Ok(())
            }
            Err(error) => {
                e.store(v, Ordering::Release);
                Err(Error::Mirror {
                    at: Gpa(c.gpa),
                    error,
                })
            }
        }
    }

    /// The slot needs a table and has none: build one (unpublished, if we may) and link it.
    fn map_new_table(
        &self,
        e: &AtomicU64,
        v: u64,
        level: usize,
        fresh: bool,
        c: &mut Cursor,
        attrs: &LeafAttrs,
    ) -> Result<()> {
        // Without a mirror the child is filled by the walk below, so only the entries it does
        // not write are cleared afterwards (a fully covered table is written once, not twice).
        let child = if M::ENABLED {
            self.new_table(level - 1)
        } else {
            self.new_table_unfilled()
        }
        .ok_or(Error::OutOfMemory { at: Gpa(c.gpa) })?;
        let link = self.format.table_entry(child);
        if M::ENABLED {
            // The mirror must see each install with the entry frozen, so link an empty table and
            // let the caller's loop install through it.
            if e.compare_exchange(v, link, Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                c.delta.tables += 1;
            } else {
                self.free_unpublished(child, level - 1);
            }
            return Ok(());
        }
        let before = *c;
        let r = self.map_level(level - 1, child, true, c, attrs);
        self.clear_unwritten(child, level - 1, before.gpa, c.gpa);
        if c.gpa == before.gpa {
            self.free_unpublished(child, level - 1);
            return r;
        }
        if fresh {
            e.store(link, Ordering::Relaxed);
            c.delta.tables += 1;
            return r;
        }
        if e.compare_exchange(v, link, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            c.delta.tables += 1;
            return r;
        }
        // Another thread linked something here first: drop our copy and go through theirs.
        self.free_unpublished(child, level - 1);
        *c = before;
        match r {
            Ok(()) => Ok(()),
            Err(_) => Err(Error::OutOfMemory { at: Gpa(c.gpa) }),
        }
    }
}
