//! Access and dirty tracking over ranges: `age`, `test_age`, `clear_dirty`,
//! `clear_dirty_masked` and `write_protect`. All shared mode.
//!
//! Each visits the present leaves of a range and changes them with compare-and-swap, so a
//! concurrent fast fault or hardware A/D update is never overwritten: a failed swap re-reads the
//! entry (which may meanwhile have become a table, after a split) and decides again. Harvests go
//! into a `GfnBitmap`; a dirty huge leaf is reported whole and cleaned only when the bitmap can
//! hold all of its frames, so no dirty frame is cleaned unreported.
//!
//! Aging adds no flush: as in KVM since 6.13, a translation still cached with the accessed bit (or
//! valid bit) set only makes the page look idle for longer. Clearing dirty state or write access
//! does need one, since a cached writable translation would let writes through unrecorded.

use core::sync::atomic::{AtomicU64, Ordering};

use super::touched::Touched;
use super::{Error, Result, Slot, StageTwoTable};
use crate::addr::{Gfn, Gpa, GpaRange, Hpa};
use crate::bitmap::GfnBitmap;
use crate::flush::{FlushBatch, TlbFlush};
use crate::format::PteFormat;
use crate::frame::FrameAllocator;
use crate::mirror::MirrorHook;

/// A visitor's verdict on one leaf.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Visit {
    /// Done with this leaf.
    Next,
    /// The entry changed under us: read it again.
    Retry,
    /// Stop the whole walk.
    Stop,
}

/// Bits gathered for a `GfnBitmap`, one 64-frame word at a time, so the level-0 loops do not
/// touch the bitmap per entry.
struct Harvest<'a> {
    log: &'a mut GfnBitmap,
    word: u64,
    bits: u64,
    pages: u64,
    touched: Touched,
}

impl<'a> Harvest<'a> {
    fn new(log: &'a mut GfnBitmap) -> Self {
        Self {
            log,
            word: u64::MAX,
            bits: 0,
            pages: 0,
            touched: Touched::none(),
        }
    }

    #[inline(always)]
    fn page(&mut self, gfn: u64) {
        let rel = gfn - self.log.base().0;
        let w = rel & !63;
        if w != self.word {
            self.flush_word();
            self.word = w;
        }
        self.bits |= 1 << (rel & 63);
        self.pages += 1;
    }

    fn span(&mut self, first: u64, n: u64, in_range: u64) {
        self.flush_word();
        self.log.set_range(first, n);
        self.pages += in_range;
    }

    #[inline(always)]
    fn touched(&mut self, start: u64, end: u64) {
        self.touched.add(start, end);
    }

    fn flush_word(&mut self) {
        if self.bits != 0 {
            let first = self.log.base().0 + self.word;
            self.log.or_word(first, self.bits);
            self.bits = 0;
        }
    }

    fn finish(mut self, batch: Option<&mut FlushBatch>) -> u64 {
        self.flush_word();
        if let Some(b) = batch {
            self.touched.flush_into(b);
        }
        self.pages
    }
}

impl<F: PteFormat, A: FrameAllocator, T: TlbFlush, M: MirrorHook> StageTwoTable<F, A, T, M> {
    /// Call `f(level, entry, value, slot_gpa)` on every present leaf overlapping `[start, end)`
    /// for which `pre(value)` holds. Returns `false` if `f` stopped the walk.
    ///
    /// `pre` is a cheap filter on the raw value (e.g. "young bit set"); it may accept entries that
    /// are not leaves, but must never reject one `f` would act on. At level 0 it runs in a tight
    /// loop so a range with nothing to do costs little more than reading it.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn visit_leaves<P, V>(
        &self,
        level: usize,
        table: Hpa,
        base: u64,
        start: u64,
        end: u64,
        pre: &P,
        f: &mut V,
    ) -> bool
    where
        P: Fn(u64) -> bool,
        V: FnMut(usize, &AtomicU64, u64, u64) -> Visit,
    {
        let ents = self.entries(table);
        let size = F::level_size(level);
        let first = Self::index(start, level);
        let last = Self::index(end - 1, level);
        if level == 0 {
            return self.visit_base_pages(&ents[first..=last], base + first as u64 * size, pre, f);
        }
        for (i, e) in ents.iter().enumerate().take(last + 1).skip(first) {
            let slot = base + i as u64 * size;
            if !self.visit_entry(level, e, slot, start, end, pre, f) {
                return false;
            }
        }
        true
    }

    /// The level-0 loop. Entries are read a 64-byte line (8 entries) at a time and a line the
    /// filter rejects as a whole is skipped, so a range with nothing to do costs one load per
    /// entry and a few OR instructions per line. Base-page entries are never table pointers, so
    /// the value already read is acted on without a second (acquire) load.
    #[inline(always)]
    fn visit_base_pages<P, V>(
        &self,
        ents: &[AtomicU64],
        first_slot: u64,
        pre: &P,
        f: &mut V,
    ) -> bool
    where
        P: Fn(u64) -> bool,
        V: FnMut(usize, &AtomicU64, u64, u64) -> Visit,
    {
        const LINE: usize = 8;
        let size = F::level_size(0);
        let mut i = 0;
        while i < ents.len() {
            let n = LINE.min(ents.len() - i);
            let line = &ents[i..i + n];
            if n == LINE {
                let v: [u64; LINE] = core::array::from_fn(|k| line[k].load(Ordering::Relaxed));
                // Non-short-circuit OR, so the compiler can test the line without branches.
                if !v.iter().fold(false, |any, &x| any | pre(x)) {
                    i += LINE;
                    continue;
                }
            }
            for (k, e) in line.iter().enumerate() {
                let slot = first_slot + (i + k) as u64 * size;
                let mut v = e.load(Ordering::Relaxed);
                loop {
                    if !pre(v) || self.classify(v, 0) != Slot::Leaf {
                        break;
                    }
                    match f(0, e, v, slot) {
                        Visit::Next => break,
                        Visit::Retry => v = e.load(Ordering::Acquire),
                        Visit::Stop => return false,
                    }
                }
            }
            i += n;
        }
        true
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn visit_entry<P, V>(
        &self,
        level: usize,
        e: &AtomicU64,
        slot: u64,
        start: u64,
        end: u64,
        pre: &P,
        f: &mut V,
    ) -> bool
    where
        P: Fn(u64) -> bool,
        V: FnMut(usize, &AtomicU64, u64, u64) -> Visit,
    {
        let size = F::level_size(level);
        loop {
            let v = e.load(Ordering::Acquire);
            match self.classify(v, level) {
                Slot::Empty | Slot::Frozen => return true,
                Slot::Table => {
                    let (s, t) = (start.max(slot), end.min(slot + size));
                    return self.visit_leaves(
                        level - 1,
                        self.format.table_hpa(v),
                        slot,
                        s,
                        t,
                        pre,
                        f,
                    );
                }
                Slot::Leaf if !pre(v) => return true,
                Slot::Leaf => match f(level, e, v, slot) {
                    Visit::Next => return true,
                    Visit::Retry => continue,
                    Visit::Stop => return false,
                },
            }
        }
    }

    fn visit_range<P, V>(&self, range: &GpaRange, pre: &P, f: &mut V) -> bool
    where
        P: Fn(u64) -> bool,
        V: FnMut(usize, &AtomicU64, u64, u64) -> Visit,
    {
        if range.is_empty() {
            return true;
        }
        self.visit_leaves(
            F::LEVELS - 1,
            self.root,
            0,
            range.start.as_u64(),
            range.end.as_u64(),
            pre,
            f,
        )
    }

    #[inline(always)]
    fn pinned(&self, slot: u64, level: usize) -> bool {
        M::ENABLED
            && self.mirror.pins(GpaRange {
                start: Gpa(slot),
                end: Gpa(slot + F::level_size(level)),
            })
    }

    fn check_log(&self, range: &GpaRange, log: &GfnBitmap) -> Result<()> {
        let first = range.start.as_u64() >> F::PAGE_SHIFT;
        let n = range.len() >> F::PAGE_SHIFT;
        if !log.covers(first, n) {
            return Err(Error::BitmapTooSmall);
        }
        Ok(())
    }

    /// Make every young leaf in `range` old and report its frames in `young`. Returns the number
    /// of young base pages found inside the range. Pinned leaves are reported but left young.
    pub fn age(&self, range: GpaRange, young: &mut GfnBitmap) -> Result<u64> {
        self.check_range(&range)?;
        self.check_log(&range, young)?;
        let (rs, re) = (range.start.as_u64(), range.end.as_u64());
        let fmt = &self.format;
        let mut h = Harvest::new(young);
        self.visit_range(&range, &|v| fmt.is_young(v), &mut |level, e, v, slot| {
            if !fmt.is_young(v) {
                return Visit::Next;
            }
            if !self.pinned(slot, level)
                && e.compare_exchange(v, fmt.mkold(v), Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
            {
                return Visit::Retry;
            }
            report::<F>(&mut h, level, slot, rs, re);
            Visit::Next
        });
        Ok(h.finish(None))
    }

    /// Whether any leaf in `range` is young; changes nothing and stops at the first one.
    pub fn test_age(&self, range: GpaRange) -> Result<bool> {
        self.check_range(&range)?;
        let fmt = &self.format;
        let finished = self.visit_range(
            &range,
            &|v| M::ENABLED || fmt.is_young(v),
            &mut |level, _e, v, slot| {
                if fmt.is_young(v) || self.pinned(slot, level) {
                    Visit::Stop
                } else {
                    Visit::Next
                }
            },
        );
        Ok(!finished)
    }

    /// Harvest and clean the dirty leaves of `range` into `log`; the flush that makes the
    /// cleaning effective goes into `batch`. Returns the number of dirty base pages in the range.
    pub fn clear_dirty(
        &self,
        range: GpaRange,
        log: &mut GfnBitmap,
        batch: &mut FlushBatch,
    ) -> Result<u64> {
        self.check_range(&range)?;
        self.check_log(&range, log)?;
        let (rs, re) = (range.start.as_u64(), range.end.as_u64());
        let mut h = Harvest::new(log);
        let fmt = &self.format;
        let pre = |v| M::ENABLED || fmt.is_dirty(v);
        self.visit_range(&range, &pre, &mut |level, e, v, slot| {
            self.harvest_dirty(&mut h, level, e, v, slot, rs, re)
        });
        Ok(h.finish(Some(batch)))
    }

    /// The 64-frame form of `clear_dirty` used by dirty-log clearing: only frames
    /// `base + i` with bit `i` of `mask` set are harvested and cleaned. `base` need not be
    /// 64-aligned, so the window may straddle two huge leaves; a huge leaf touched by the mask is
    /// harvested whole. Returns the number of dirty base pages among the masked frames.
    pub fn clear_dirty_masked(
        &self,
        base: Gfn,
        mask: u64,
        log: &mut GfnBitmap,
        batch: &mut FlushBatch,
    ) -> Result<u64> {
        if mask == 0 {
            return Ok(0);
        }
        let lo_bit = u64::from(mask.trailing_zeros());
        let hi_bit = 63 - u64::from(mask.leading_zeros());
        let start = base.checked_add(lo_bit)?.to_gpa(F::PAGE_SHIFT)?;
        let end = base.checked_add(hi_bit + 1)?.to_gpa(F::PAGE_SHIFT)?;
        let range = GpaRange::new(start, end)?;
        self.check_range(&range)?;
        self.check_log(&range, log)?;
        let mut h = Harvest::new(log);
        let mut in_mask = 0u64;
        let fmt = &self.format;
        let pre = |v| M::ENABLED || fmt.is_dirty(v);
        self.visit_range(&range, &pre, &mut |level, e, v, slot| {
            let g0 = slot >> F::PAGE_SHIFT;
            let n = F::level_size(level) >> F::PAGE_SHIFT;
            // Mask bits this leaf covers.
            let lo = g0.max(base.0) - base.0;
            let hi = (g0 + n).min(base.0 + 64) - base.0;
            let bits = if hi - lo >= 64 {
                u64::MAX
            } else {
                ((1u64 << (hi - lo)) - 1) << lo
            };
            let hit = mask & bits;
            if hit == 0 {
                return Visit::Next;
            }
            let before = h.pages;
            let r = self.harvest_dirty(&mut h, level, e, v, slot, 0, u64::MAX);
            if h.pages != before {
                in_mask += u64::from(hit.count_ones());
            }
            r
        });
        h.finish(Some(batch));
        Ok(in_mask)
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn harvest_dirty(
        &self,
        h: &mut Harvest<'_>,
        level: usize,
        e: &AtomicU64,
        v: u64,
        slot: u64,
        rs: u64,
        re: u64,
    ) -> Visit {
        let fmt = &self.format;
        if !fmt.is_dirty(v) && !self.pinned(slot, level) {
            return Visit::Next;
        }
        let size = F::level_size(level);
        let fits = level == 0 || h.log.covers(slot >> F::PAGE_SHIFT, size >> F::PAGE_SHIFT);
        if fits && !self.pinned(slot, level) {
            if e.compare_exchange(v, fmt.mkclean(v), Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                return Visit::Retry;
            }
            h.touched(slot, slot + size);
        }
        report::<F>(h, level, slot, rs, re);
        Visit::Next
    }

    /// Revoke write permission on every leaf of `range` (dirty state is kept). Refused for ranges
    /// the mirror pins. Returns the number of base pages changed.
    pub fn write_protect(&self, range: GpaRange, batch: &mut FlushBatch) -> Result<u64> {
        self.check_range(&range)?;
        if M::ENABLED && self.mirror.pins(range) {
            return Err(Error::Pinned { at: range.start });
        }
        let fmt = &self.format;
        let (mut pages, mut lo, mut hi) = (0u64, u64::MAX, 0u64);
        self.visit_range(&range, &|v| fmt.is_writable(v), &mut |level, e, v, slot| {
            if !fmt.is_writable(v) {
                return Visit::Next;
            }
            if e.compare_exchange(v, fmt.write_protect(v), Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                return Visit::Retry;
            }
            let size = F::level_size(level);
            pages += size >> F::PAGE_SHIFT;
            lo = lo.min(slot);
            hi = hi.max(slot + size);
            Visit::Next
        });
        if lo < hi {
            batch.add_range(Gpa(lo), Gpa(hi));
        }
        Ok(pages)
    }
}

/// Report a leaf's frames: level 0 through the word accumulator, a huge leaf whole (the bitmap
/// clips it), counting only the pages inside `[rs, re)`.
#[inline(always)]
fn report<F: PteFormat>(h: &mut Harvest<'_>, level: usize, slot: u64, rs: u64, re: u64) {
    if level == 0 {
        h.page(slot >> F::PAGE_SHIFT);
    } else {
        let size = F::level_size(level);
        let inside = (slot + size).min(re).saturating_sub(slot.max(rs)) >> F::PAGE_SHIFT;
        h.span(slot >> F::PAGE_SHIFT, size >> F::PAGE_SHIFT, inside);
    }
}
