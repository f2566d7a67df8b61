//! The reference model and the harness that runs one operation on both the table and the model,
//! then checks them against each other.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::common::{Event, History, LoggingAlloc, LoggingTlb};
use crate::ops::{attrs_of, Op, WINDOW_HUGE};
use mmu::{
    Access, Error, FastFix, FlushBatch, Gfn, GfnBitmap, Gpa, GpaRange, Hpa, HugePolicy, LeafAttrs,
    MemType, MirrorHook, Perms, PteFormat, StageTwoTable, UnmapMode,
};

#[derive(Clone, Copy, Debug, PartialEq)]
struct MPage {
    hpa: u64,
    perms: Perms,
    mem: MemType,
    young: bool,
    dirty: bool,
}

type Table<F, M> = StageTwoTable<F, LoggingAlloc, LoggingTlb, M>;

struct Harness<F: PteFormat, M: MirrorHook> {
    t: Table<F, M>,
    h: Arc<History>,
    model: BTreeMap<u64, MPage>,
    batch: FlushBatch,
    windows: [u64; 2],
    wsize: u64,
}

impl<F: PteFormat, M: MirrorHook> Harness<F, M> {
    fn new(fmt: F, mirror: M) -> Self {
        let h = Arc::new(History::default());
        let t = StageTwoTable::with_mirror(
            fmt,
            LoggingAlloc::new(h.clone()),
            LoggingTlb { history: h.clone() },
            mirror,
        )
        .unwrap();
        let huge = F::level_size(1);
        let wsize = huge * WINDOW_HUGE;
        let limit = t.gpa_limit().0;
        // One window low (but above the first top-level entry), one at the very top.
        let windows = [F::level_size(F::LEVELS - 1).min(limit / 2), limit - wsize];
        Self {
            t,
            h,
            model: BTreeMap::new(),
            batch: FlushBatch::new(),
            windows,
            wsize,
        }
    }

    fn ps() -> u64 {
        1 << F::PAGE_SHIFT
    }

    fn range(&self, win: bool, page: u64, pages: u64) -> GpaRange {
        let base = self.windows[win as usize];
        let start = base + (page * Self::ps()).min(self.wsize - Self::ps());
        let end = (start + pages * Self::ps()).min(base + self.wsize);
        GpaRange::new(Gpa(start), Gpa(end)).unwrap()
    }

    fn hpa_for(&self, gpa: u64, choice: u8) -> u64 {
        let huge = F::level_size(1);
        let off = gpa - self.windows[(gpa >= self.windows[1]) as usize];
        let base = 1u64 << 36;
        base + off
            + match choice {
                0 => 0,
                1 => huge * 8,
                2 => huge * 8 + Self::ps(),
                _ => huge * 16,
            }
    }

    /// Every present base page in the windows: gpa -> (hpa, attrs).
    fn snapshot(&self) -> BTreeMap<u64, (u64, LeafAttrs, usize)> {
        let mut s = BTreeMap::new();
        for w in self.windows {
            let r = GpaRange::new(Gpa(w), Gpa(w + self.wsize)).unwrap();
            self.t.for_each_leaf(r, |gpa, tr| {
                let size = F::level_size(tr.level);
                let mut off = 0;
                while off < size {
                    if r.contains(Gpa(gpa.0 + off)) {
                        s.insert(gpa.0 + off, (tr.hpa.0 + off, tr.attrs, tr.level));
                    }
                    off += Self::ps();
                }
            });
        }
        s
    }

    fn check(
        &self,
        before: &BTreeMap<u64, (u64, LeafAttrs, usize)>,
    ) -> BTreeMap<u64, (u64, LeafAttrs, usize)> {
        let snap = self.snapshot();
        // Translations agree, both ways, and translate() agrees with the enumeration.
        assert_eq!(snap.len(), self.model.len(), "mapped page count");
        for (gpa, m) in &self.model {
            let (hpa, attrs, _) = snap
                .get(gpa)
                .unwrap_or_else(|| panic!("model page {gpa:#x} not mapped"));
            assert_eq!(*hpa, m.hpa, "hpa of {gpa:#x}");
            assert_eq!(
                (attrs.perms, attrs.mem),
                (m.perms, m.mem),
                "attrs of {gpa:#x}"
            );
            assert!(!m.young || attrs.young, "young lost at {gpa:#x}");
            assert!(!m.dirty || attrs.dirty, "dirty lost at {gpa:#x}");
            let tr = self.t.translate(Gpa(gpa + 8)).unwrap();
            assert_eq!(tr.hpa.0, m.hpa + 8, "translate returns base + offset");
        }
        // No present leaf changed frame within one operation.
        for (gpa, (hpa, _, _)) in &snap {
            if let Some((old, _, _)) = before.get(gpa) {
                assert_eq!(old, hpa, "present leaf at {gpa:#x} replaced without unmap");
            }
        }
        // Leaks and stats.
        let mut reachable = BTreeSet::new();
        self.t
            .for_each_table(|pa, _| assert!(reachable.insert(pa.0)));
        let mut invalid = 0;
        self.t.for_each_invalid_table(|_| invalid += 1);
        let live = self.h.live.lock().unwrap();
        assert!(
            reachable.iter().all(|p| live.contains(p)),
            "reachable page not live"
        );
        assert_eq!(
            live.len(),
            reachable.len() + invalid + self.batch.pending_frees(),
            "page leak"
        );
        let stats = self.t.stats();
        assert_eq!(stats.tables, reachable.len() as u64, "table count");
        let mut leaves = [0u64; mmu::MAX_LEVELS];
        for w in self.windows {
            let r = GpaRange::new(Gpa(w), Gpa(w + self.wsize)).unwrap();
            self.t.for_each_leaf(r, |_, tr| leaves[tr.level] += 1);
        }
        assert_eq!(stats.leaves, leaves, "leaf counts");
        snap
    }

    fn check_mirror(&self, mirror_map: Option<&BTreeMap<u64, u64>>) {
        if let Some(m) = mirror_map {
            let expect: BTreeMap<u64, u64> = self.model.iter().map(|(g, p)| (*g, p.hpa)).collect();
            assert_eq!(*m, expect, "mirror out of lockstep");
        }
    }

    fn apply_map(&mut self, start: u64, end: u64, hpa: u64, attrs: LeafAttrs) {
        let mut g = start;
        while g < end {
            let hp = hpa + (g - start);
            self.model.entry(g).or_insert(MPage {
                hpa: hp,
                perms: attrs.perms,
                mem: attrs.mem,
                young: attrs.young,
                dirty: attrs.dirty,
            });
            g += Self::ps();
        }
    }

    /// Where a map of `[start, end)` at `hpa` must stop: the first page mapped differently.
    fn expected_conflict(&self, start: u64, end: u64, hpa: u64, attrs: &LeafAttrs) -> Option<u64> {
        let mut g = start;
        while g < end {
            if let Some(p) = self.model.get(&g) {
                if p.hpa != hpa + (g - start) || p.perms != attrs.perms || p.mem != attrs.mem {
                    return Some(g);
                }
            }
            g += Self::ps();
        }
        None
    }

    /// A bitmap covering the window of `win` (windows are huge-aligned, so whole huge leaves fit).
    fn log(&self, win: bool) -> GfnBitmap {
        let first = self.windows[win as usize] >> F::PAGE_SHIFT;
        GfnBitmap::new(Gfn(first), self.wsize >> F::PAGE_SHIFT)
    }

    fn collect(&self, log: &GfnBitmap) -> BTreeSet<u64> {
        log.iter().map(|g| g.0 << F::PAGE_SHIFT).collect()
    }

    fn commit(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        let pending = batch.pending();
        let frees = batch.pending_frees();
        let n0 = self.h.events.lock().unwrap().len();
        let f0 = self.h.flushes.load(Ordering::SeqCst);
        let issued = self.t.commit(batch);
        assert_eq!(issued, pending);
        let ev = self.h.events.lock().unwrap();
        let new = &ev[n0..];
        let flushes = self.h.flushes.load(Ordering::SeqCst) - f0;
        assert_eq!(
            flushes,
            u64::from(!pending.is_none()),
            "one flush per commit"
        );
        if frees > 0 {
            assert!(
                matches!(new[0], Event::Flush(_)),
                "free before flush: {new:?}"
            );
            assert!(new[1..].iter().all(|e| matches!(e, Event::Free(_))));
            assert_eq!(new.len(), frees + 1);
        }
    }

    fn step(&mut self, op: &Op) {
        let before = self.snapshot();
        let alloc = &self.t.allocator().inner;
        match *op {
            Op::MapRange {
                win,
                page,
                pages,
                hpa,
                attrs,
                huge,
                budget,
            } => {
                let r = self.range(win, page, pages);
                let hp = self.hpa_for(r.start.0, hpa);
                let a = attrs_of(attrs);
                alloc.set_budget(budget.map(u64::from));
                let policy = if huge {
                    HugePolicy::LARGEST
                } else {
                    HugePolicy::BASE_PAGES
                };
                let res = self.t.map_range(r, Hpa(hp), a, policy, &mut self.batch);
                alloc.set_budget(None);
                let conflict = self.expected_conflict(r.start.0, r.end.0, hp, &a);
                match res {
                    Ok(_) => {
                        assert_eq!(conflict, None, "map should have conflicted");
                        self.apply_map(r.start.0, r.end.0, hp, a);
                    }
                    Err(Error::AlreadyMapped { gpa, existing }) => {
                        assert_eq!(Some(gpa.0), conflict);
                        assert_eq!(existing.0, self.model[&gpa.0].hpa);
                        self.apply_map(r.start.0, gpa.0, hp, a);
                    }
                    Err(Error::OutOfMemory { at }) => {
                        assert!(budget.is_some());
                        assert!(conflict.is_none_or(|c| at.0 <= c));
                        self.apply_map(r.start.0, at.0, hp, a);
                    }
                    Err(e) => panic!("unexpected {e:?}"),
                }
            }
            Op::Map {
                win,
                page,
                level,
                hpa,
                attrs,
            } => {
                let level = usize::from(level);
                let size = F::level_size(level);
                let r = self.range(win, page, 1);
                let gpa = r.start.0 & !(size - 1);
                let hp = self.hpa_for(gpa, hpa);
                let a = attrs_of(attrs);
                let res = self.t.map(Gpa(gpa), Hpa(hp), level, a, &mut self.batch);
                if !hp.is_multiple_of(size) {
                    assert!(matches!(res, Err(Error::Misaligned { .. })), "{res:?}");
                    return self.finish(before);
                }
                let conflict = self.expected_conflict(gpa, gpa + size, hp, &a);
                match res {
                    Ok(_) => {
                        assert_eq!(conflict, None);
                        self.apply_map(gpa, gpa + size, hp, a);
                    }
                    Err(Error::AlreadyMapped { gpa: at, .. }) => {
                        assert_eq!(Some(at.0), conflict);
                        self.apply_map(gpa, at.0, hp, a);
                    }
                    Err(e) => panic!("unexpected {e:?}"),
                }
            }
            Op::Unmap {
                win,
                page,
                pages,
                free,
                budget,
            } => {
                let r = self.range(win, page, pages);
                let mode = if free {
                    UnmapMode::FreeTables
                } else {
                    UnmapMode::LeavesOnly
                };
                let mut log = self.log(win);
                alloc.set_budget(budget.map(u64::from));
                let res = self.t.unmap(r, mode, &mut self.batch, Some(&mut log));
                self.t.allocator().inner.set_budget(None);
                let end = match res {
                    Ok(rep) => {
                        let n = self.model.range(r.start.0..r.end.0).count() as u64;
                        assert_eq!(rep.pages, n);
                        r.end.0
                    }
                    Err(Error::OutOfMemory { at }) => at.0,
                    Err(e) => panic!("unexpected {e:?}"),
                };
                let harvested = self.collect(&log);
                let gone: Vec<u64> = self.model.range(r.start.0..end).map(|(g, _)| *g).collect();
                for g in gone {
                    let p = self.model.remove(&g).unwrap();
                    assert!(
                        !p.dirty || harvested.contains(&g),
                        "dirty page {g:#x} unmapped unreported"
                    );
                }
            }
            Op::Age { win, page, pages } => {
                let r = self.range(win, page, pages);
                let mut log = self.log(win);
                self.t.age(r, &mut log).unwrap();
                let young = self.collect(&log);
                for g in &young {
                    let p = self
                        .model
                        .get_mut(g)
                        .unwrap_or_else(|| panic!("young report of unmapped {g:#x}"));
                    p.young = false;
                }
                for (g, p) in self.model.range(r.start.0..r.end.0) {
                    assert!(!p.young, "young page {g:#x} not reported");
                }
            }
            Op::TestAge { win, page, pages } => {
                let r = self.range(win, page, pages);
                let any = self.t.test_age(r).unwrap();
                if self.model.range(r.start.0..r.end.0).any(|(_, p)| p.young) {
                    assert!(any);
                }
                if self.model.range(r.start.0..r.end.0).next().is_none() {
                    // Whole leaves are tested, so a huge leaf overlapping the range may answer.
                    let overlaps = before.range(r.start.0..r.end.0).next().is_some();
                    assert!(!any || overlaps);
                }
            }
            Op::ClearDirty { win, page, pages } => {
                let r = self.range(win, page, pages);
                let mut log = self.log(win);
                self.t.clear_dirty(r, &mut log, &mut self.batch).unwrap();
                self.absorb_dirty(&log, |g| r.contains(Gpa(g)));
            }
            Op::ClearMasked { win, page, mask } => {
                let r = self.range(win, page, 64);
                let base = r.start.0 >> F::PAGE_SHIFT;
                let room = (r.end.0 - r.start.0) >> F::PAGE_SHIFT;
                let mask = if room >= 64 {
                    mask
                } else {
                    mask & ((1 << room) - 1)
                };
                let mut log = self.log(win);
                self.t
                    .clear_dirty_masked(Gfn(base), mask, &mut log, &mut self.batch)
                    .unwrap();
                let ps = F::PAGE_SHIFT;
                self.absorb_dirty(&log, |g| {
                    let i = (g >> ps).wrapping_sub(base);
                    i < 64 && mask & (1 << i) != 0
                });
            }
            Op::WriteProtect { win, page, pages } => {
                let r = self.range(win, page, pages);
                self.t.write_protect(r, &mut self.batch).unwrap();
                // Whole leaves are protected: extend to the leaves that overlapped the range.
                for (g, (_, _, level)) in &before {
                    let size = F::level_size(*level);
                    let leaf = g & !(size - 1);
                    if leaf < r.end.0 && leaf + size > r.start.0 {
                        let p = self.model.get_mut(g).unwrap();
                        p.perms = p.perms.without(Perms::W);
                    }
                }
            }
            Op::Split {
                win,
                page,
                pages,
                budget,
            } => {
                let r = self.range(win, page, pages);
                alloc.set_budget(budget.map(u64::from));
                let res = self.t.split(r, 0, &mut self.batch);
                self.t.allocator().inner.set_budget(None);
                assert!(res.is_ok() || budget.is_some(), "{res:?}");
                if res.is_ok() {
                    let mut max = 0;
                    self.t.for_each_leaf(r, |_, tr| max = max.max(tr.level));
                    assert_eq!(max, 0, "split left a huge leaf");
                }
            }
            Op::Collapse { win, page, pages } => {
                let r = self.range(win, page, pages);
                self.t.collapse(r, usize::MAX, &mut self.batch).unwrap();
            }
            Op::FastFix { win, page, access } => {
                let r = self.range(win, page, 1);
                let access = [Access::Read, Access::Write, Access::Exec][usize::from(access)];
                let res = self.t.fast_fix(r.start, access);
                match self.model.get_mut(&r.start.0) {
                    None => assert_eq!(res, FastFix::Slow),
                    Some(p) => {
                        let need = match access {
                            Access::Read => Perms::R,
                            Access::Write => Perms::W,
                            Access::Exec => Perms::X,
                        };
                        if p.perms.contains(need) {
                            assert!(
                                matches!(res, FastFix::Fixed { .. } | FastFix::Spurious { .. }),
                                "{res:?}"
                            );
                            p.young = true;
                            if access == Access::Write {
                                p.dirty = true;
                            }
                        } else {
                            assert_eq!(res, FastFix::Slow);
                        }
                    }
                }
            }
            Op::Commit => self.commit(),
        }
        self.finish(before);
    }

    fn finish(&mut self, before: BTreeMap<u64, (u64, LeafAttrs, usize)>) {
        let _ = self.check(&before);
    }

    fn absorb_dirty(&mut self, log: &GfnBitmap, must: impl Fn(u64) -> bool) {
        let got = self.collect(log);
        for g in &got {
            let p = self
                .model
                .get_mut(g)
                .unwrap_or_else(|| panic!("dirty report of unmapped {g:#x}"));
            p.dirty = false;
        }
        for (g, p) in &self.model {
            assert!(!(p.dirty && must(*g)), "dirty page {g:#x} not harvested");
        }
    }
}

pub fn run<F: PteFormat, M: MirrorHook>(
    fmt: F,
    mirror: M,
    ops: &[Op],
    mirror_map: impl Fn(&M) -> Option<BTreeMap<u64, u64>>,
) {
    let mut h = Harness::new(fmt, mirror);
    for op in ops {
        h.step(op);
        h.check_mirror(mirror_map(h.t.mirror()).as_ref());
    }
    h.commit();
    // Unmap everything, commit: only the root (and invalid tables) stay.
    for w in h.windows {
        let r = GpaRange::new(Gpa(w), Gpa(w + h.wsize)).unwrap();
        h.t.unmap(r, UnmapMode::FreeTables, &mut h.batch, None)
            .unwrap();
    }
    h.model.clear();
    h.commit();
    let _ = h.check(&BTreeMap::new());
    h.check_mirror(mirror_map(h.t.mirror()).as_ref());
    let hist = h.h.clone();
    drop(h);
    assert!(
        hist.live.lock().unwrap().is_empty(),
        "pages leaked after drop"
    );
}
