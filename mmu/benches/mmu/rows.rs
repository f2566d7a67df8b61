//! The rows of one format at one guest size.

use std::hint::black_box;

use super::*;
use layout::Leaves;
use mmu::format::make_leaf;
use mmu::{Access, FastFix, Gfn, GfnBitmap, HeapFrameAllocator, UnmapMode};

/// Collects rows for one format and size.
struct Rows<'a> {
    out: &'a mut Vec<Row>,
    format: &'static str,
    size: u64,
}

impl Rows<'_> {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        op: &str,
        entries: u64,
        ns: f64,
        flushes: u64,
        floor: Option<(&'static str, f64)>,
        peers: Option<(f64, f64)>,
        target: Target,
    ) {
        self.out.push(Row {
            op: op.into(),
            format: self.format,
            size: self.size,
            entries,
            ns,
            flushes,
            floor,
            peers,
            target,
        });
    }
}

/// The bits the hardware sets on a read (young) and on a write (dirty) of a clean old leaf.
fn hw_bits<F: PteFormat + Default>() -> (u64, u64) {
    let f = F::default();
    let leaf = make_leaf(&f, Hpa(0), 0, &LeafAttrs::ram(Perms::RWX)).unwrap();
    let young = leaf ^ f.mkold(leaf);
    let dirty = f.fast_fix(leaf, Access::Write).unwrap() ^ leaf;
    (young, dirty)
}

fn map_rows<F: PteFormat + Default>(size: u64, peers: Option<&Peers>, r: &mut Rows<'_>) {
    let page = F::level_size(0);
    let n = size / page;
    // Base pages, fill floor over the resulting leaves.
    let (ns, fill) = best(REPS, || {
        let (t, ns, _) = map_once::<F, ArenaFrames>(size, HPA_BASE, 0);
        let fill = Leaves::of(&t).fill(page);
        (ns, fill)
    });
    let fl = map_once::<F, ArenaFrames>(size, HPA_BASE, 0).2;
    r.push(
        "map_range base pages",
        n,
        ns,
        fl,
        Some(("fill", fill)),
        peers.map(|p| p.base),
        Target::Floor(3.0),
    );
    let (ns_heap, _) = best(REPS, || {
        let (_, ns, _) = map_once::<F, HeapFrameAllocator>(size, HPA_BASE, 0);
        (ns, 0.0)
    });
    r.push(
        "map_range base pages, heap",
        n,
        ns_heap,
        fl,
        Some(("fill", fill)),
        None,
        Target::None,
    );
    // Huge pages of the first level only, then (x86) 1 GiB leaves, each against the peers
    // mapping with the same page size.
    let mut huge = |kind: PageKind, level: usize, label: &str, peer: Option<(f64, f64)>| {
        let hpa = HPA_BASE
            + if kind == PageKind::Mid {
                F::level_size(1)
            } else {
                0
            };
        let guess = map_once::<F, ArenaFrames>(size, hpa, level).1;
        let (ns, _) = best(reps_for(guess), || {
            (map_once::<F, ArenaFrames>(size, hpa, level).1, 0.0)
        });
        let (t, _, fl) = map_once::<F, ArenaFrames>(size, hpa, level);
        assert_eq!(t.stats().leaves[level], size / F::level_size(level));
        // A 1 GiB row is one table page and one entry per GiB: both sides mostly allocate and
        // clear a page, so it is shown, not held to the 2x target (which the 4K and 2M rows are).
        let target = if peer.is_some() && kind == PageKind::Mid {
            Target::Peers
        } else {
            Target::None
        };
        r.push(
            label,
            size / F::level_size(level),
            ns,
            fl,
            None,
            peer,
            target,
        );
    };
    let mid = if F::PAGE_SHIFT == 12 {
        "map_range 2M pages"
    } else {
        "map_range 32M pages"
    };
    huge(PageKind::Mid, 1, mid, peers.map(|p| p.mid));
    if F::MAX_LEAF_LEVEL >= 2 && size >= F::level_size(2) {
        huge(PageKind::Top, 2, "map_range 1G pages", peers.map(|p| p.top));
    }
}

pub fn bench_format<F: PteFormat + Default>(size: u64, peers: Option<&Peers>, out: &mut Vec<Row>) {
    let mut r = Rows {
        out,
        format: F::NAME,
        size,
    };
    map_rows::<F>(size, peers, &mut r);

    let page = F::level_size(0);
    let n = size / page;
    let range = GpaRange::from_len(Gpa(0), size).unwrap();
    let (young_bits, dirty_bits) = hw_bits::<F>();
    let (mut t, _, _) = map_once::<F, ArenaFrames>(size, HPA_BASE, 0);
    let leaves = Leaves::of(&t);
    assert_eq!(leaves.len() as u64, n);
    let mut log = GfnBitmap::new(Gfn(0), n);
    let scan = |f| Some(("scan", f));
    let atomic = |f| Some(("atomic", f));

    // Aging. All young: the hardware sets the accessed bits again before each run.
    let mut fl = 0;
    let (ns, floor) = best(REPS, || {
        leaves.hw_set(young_bits, 1);
        log.clear();
        let floor = leaves.atomic();
        let (ns, f) = measure(&mut t, |t| {
            assert_eq!(t.age(range, &mut log).unwrap(), n);
        });
        fl = f;
        (ns, floor)
    });
    r.push(
        "age, all young",
        n,
        ns,
        fl,
        atomic(floor),
        None,
        Target::Floor(2.0),
    );
    let (ns, floor) = best(REPS, || {
        let floor = leaves.scan();
        let (ns, f) = measure(&mut t, |t| {
            assert_eq!(t.age(range, &mut log).unwrap(), 0);
        });
        fl = f;
        (ns, floor)
    });
    r.push(
        "age, none young",
        n,
        ns,
        fl,
        scan(floor),
        None,
        Target::Floor(2.0),
    );
    let (ns, floor) = best(REPS, || {
        let floor = leaves.scan();
        let (ns, f) = measure(&mut t, |t| assert!(!t.test_age(range).unwrap()));
        fl = f;
        (ns, floor)
    });
    r.push(
        "test_age, none young",
        n,
        ns,
        fl,
        scan(floor),
        None,
        Target::Floor(2.0),
    );

    // clear_dirty at 0%, 1%, 100%: the hardware dirties every `every`-th page before each run.
    for (label, every) in [
        ("clear_dirty, 0% dirty", 0usize),
        ("clear_dirty, 1% dirty", 100),
        ("clear_dirty, 100% dirty", 1),
    ] {
        let (ns, floor) = best(REPS, || {
            if every > 0 {
                leaves.hw_set(dirty_bits, every);
            }
            log.clear();
            let floor = if every == 1 {
                leaves.atomic()
            } else {
                leaves.scan()
            };
            let (ns, f) = measure(&mut t, |t| {
                let mut b = FlushBatch::new();
                let d = t.clear_dirty(range, &mut log, &mut b).unwrap();
                assert_eq!(
                    d,
                    if every == 0 {
                        0
                    } else {
                        n.div_ceil(every as u64)
                    }
                );
                let _ = t.commit(b);
            });
            fl = f;
            (ns, floor)
        });
        let floor = if every == 1 {
            atomic(floor)
        } else {
            scan(floor)
        };
        r.push(label, n, ns, fl, floor, None, Target::Floor(2.0));
    }

    // The 64-frame form over (up to) the first 1M frames, nothing dirty.
    let words = (n / 64).min(1 << 14);
    let part = leaves.prefix((words * 64) as usize);
    let (ns, floor) = best(REPS, || {
        let floor = part.scan();
        let (ns, f) = measure(&mut t, |t| {
            let mut b = FlushBatch::new();
            let mut d = 0;
            for w in 0..words {
                d += t
                    .clear_dirty_masked(Gfn(w * 64), u64::MAX, &mut log, &mut b)
                    .unwrap();
            }
            black_box(d);
            let _ = t.commit(b);
        });
        fl = f;
        (ns, floor)
    });
    r.push(
        "clear_dirty_masked x64, 0%",
        words * 64,
        ns,
        fl,
        scan(floor),
        None,
        Target::None,
    );

    // fast_fix on old pages: one walk from the root and one compare-and-swap each.
    let calls = n.min(1 << 20);
    let part = leaves.prefix(calls as usize);
    let (ns, floor) = best(REPS, || {
        let mut young = GfnBitmap::new(Gfn(0), n);
        t.age(range, &mut young).unwrap();
        let floor = part.atomic();
        let (ns, f) = measure(&mut t, |t| {
            for g in 0..calls {
                match t.fast_fix(Gpa(g * page), Access::Read) {
                    FastFix::Fixed { flush, .. } | FastFix::Spurious { flush } => {
                        let _ = black_box(flush);
                    }
                    other => panic!("{other:?}"),
                }
            }
        });
        fl = f;
        (ns, floor)
    });
    r.push(
        "fast_fix (old -> young)",
        calls,
        ns,
        fl,
        atomic(floor),
        None,
        Target::None,
    );

    drop(leaves);
    drop(t);

    // write_protect and unmap change the table for good: a fresh table for each run.
    for (label, unmap) in [("write_protect", false), ("unmap + free tables", true)] {
        let (ns, floor) = best(REPS, || {
            let (mut t, _, _) = map_once::<F, ArenaFrames>(size, HPA_BASE, 0);
            let floor = Leaves::of(&t).atomic();
            let (ns, f) = measure(&mut t, |t| {
                let mut b = FlushBatch::new();
                if unmap {
                    t.unmap(range, UnmapMode::FreeTables, &mut b, None).unwrap();
                } else {
                    t.write_protect(range, &mut b).unwrap();
                }
                let _ = t.commit(b);
            });
            fl = f;
            (ns, floor)
        });
        r.push(label, n, ns, fl, atomic(floor), None, Target::None);
    }

    // split the largest leaves down to base pages; fill floor over the new leaves.
    let top = F::MAX_LEAF_LEVEL;
    let mut fl = 0;
    let (ns, floor) = best(REPS, || {
        let (mut t, _, _) = map_once::<F, ArenaFrames>(size, HPA_BASE, top);
        let (ns, f) = measure(&mut t, |t| {
            let mut b = FlushBatch::new();
            t.split(range, 0, &mut b).unwrap();
            let _ = t.commit(b);
        });
        fl = f;
        (ns, Leaves::of(&t).fill(page))
    });
    let label = if top == 2 {
        "split 1G -> 4K"
    } else {
        "split 32M -> 16K"
    };
    r.push(
        label,
        n,
        ns,
        fl,
        Some(("fill", floor)),
        None,
        Target::Floor(3.0),
    );

    // collapse base pages into first-level huge leaves.
    let (ns, floor) = best(REPS, || {
        let (mut t, _, _) = map_once::<F, ArenaFrames>(size, HPA_BASE, 0);
        let floor = Leaves::of(&t).atomic();
        let (ns, f) = measure(&mut t, |t| {
            let mut b = FlushBatch::new();
            t.collapse(range, 1, &mut b).unwrap();
            let _ = t.commit(b);
        });
        fl = f;
        (ns, floor)
    });
    let label = if F::PAGE_SHIFT == 12 {
        "collapse 4K -> 2M"
    } else {
        "collapse 16K -> 32M"
    };
    r.push(label, n, ns, fl, atomic(floor), None, Target::None);
}
