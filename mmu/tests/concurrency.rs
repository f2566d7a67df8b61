//! Multi-threaded stress: shared-mode operations (map, age, clear_dirty, split, fast_fix) racing
//! on one table from real threads. The key property: no dirty bit is ever lost — every write a
//! thread made through `fast_fix` is reported by some harvest.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;

use common::CountingTlb;
use mmu::{
    Access, Ept, EptConfig, FastFix, FlushBatch, Gfn, GfnBitmap, Gpa, GpaRange, HeapFrameAllocator,
    Hpa, HugePolicy, LeafAttrs, LoongArch4K, Npt, Perms, PteFormat, StageTwoTable,
};

type Table<F> = StageTwoTable<F, HeapFrameAllocator, CountingTlb>;

fn iterations() -> u64 {
    std::env::var("MMU_STRESS_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// Two writers each dirty every page of their half exactly once, in order, while an ager ages a
/// small window around each writer's position (so ageing and writing hit the same entries at the
/// same time), a harvester cleans the whole range and the huge half gets split. Each page is
/// written once, so a single lost dirty bit shows: afterwards every page must have been harvested.
fn no_dirty_bit_lost<F: PteFormat>(fmt: F) {
    let t: Table<F> =
        StageTwoTable::new(fmt, HeapFrameAllocator::new(), CountingTlb::default()).unwrap();
    let huge = F::level_size(1);
    let ps = 1u64 << F::PAGE_SHIFT;
    let len = 8 * huge;
    let mut b = FlushBatch::new();
    let attrs = LeafAttrs::ram(Perms::RWX);
    let low = GpaRange::from_len(Gpa(0), len / 2).unwrap();
    t.map_range(low, Hpa(1 << 32), attrs, HugePolicy::BASE_PAGES, &mut b)
        .unwrap();
    let high = GpaRange::from_len(Gpa(len / 2), len / 2).unwrap();
    t.map_range(
        high,
        Hpa((1 << 32) + len / 2),
        attrs,
        HugePolicy::LARGEST,
        &mut b,
    )
    .unwrap();
    let _ = t.commit(b);
    let pages = len / ps;
    let all = GpaRange::from_len(Gpa(0), len).unwrap();
    for round in 0..rounds() {
        dirty_round(&t, pages, all, round);
    }
    // Translations survived the races.
    for g in (0..pages).step_by(97) {
        assert_eq!(
            t.translate(Gpa(g * ps)).unwrap().hpa,
            Hpa((1 << 32) + g * ps)
        );
    }
}

fn rounds() -> u64 {
    std::env::var("MMU_STRESS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}

fn dirty_round<F: PteFormat>(t: &Table<F>, pages: u64, all: GpaRange, first_round: u64) {
    let huge = F::level_size(1);
    let ps = 1u64 << F::PAGE_SHIFT;
    let len = pages * ps;
    let harvested = Mutex::new(GfnBitmap::new(Gfn(0), pages));
    let pos = [AtomicU64::new(0), AtomicU64::new(pages / 2)];
    let stop = AtomicBool::new(false);
    let per_writer = pages / 2;
    thread::scope(|s| {
        let mut writers = Vec::new();
        for w in 0..2usize {
            let pos = &pos;
            writers.push(s.spawn(move || {
                let first = w as u64 * pages / 2;
                for gfn in first..first + per_writer {
                    pos[w].store(gfn, Ordering::Relaxed);
                    for access in [Access::Read, Access::Write] {
                        loop {
                            match t.fast_fix(Gpa(gfn * ps), access) {
                                FastFix::Fixed { .. } | FastFix::Spurious { .. } => break,
                                FastFix::Retry => std::hint::spin_loop(),
                                FastFix::Slow => panic!("mapped page took the slow path"),
                            }
                        }
                    }
                }
            }));
        }
        {
            let (harvested, stop) = (&harvested, &stop);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut log = GfnBitmap::new(Gfn(0), pages);
                    let mut b = FlushBatch::new();
                    t.clear_dirty(all, &mut log, &mut b).unwrap();
                    let _ = t.commit(b);
                    let mut h = harvested.lock().unwrap();
                    for g in log.iter() {
                        h.set(g);
                    }
                }
            });
        }
        {
            let (stop, pos) = (&stop, &pos);
            s.spawn(move || {
                let mut round = first_round * 64;
                let mut log = GfnBitmap::new(Gfn(0), pages);
                while !stop.load(Ordering::Relaxed) {
                    for p in pos {
                        let g = p.load(Ordering::Relaxed).saturating_sub(2).min(pages - 8);
                        t.age(GpaRange::from_len(Gpa(g * ps), 8 * ps).unwrap(), &mut log)
                            .unwrap();
                    }
                    if round.is_multiple_of(64) {
                        // Split one huge page now and then while everything else runs.
                        let h = len / 2 + ((round / 64) % 4) * huge;
                        let mut b = FlushBatch::new();
                        t.split(GpaRange::from_len(Gpa(h), huge).unwrap(), 0, &mut b)
                            .unwrap();
                        let _ = t.commit(b);
                        let _ = t.test_age(all).unwrap();
                    }
                    round += 1;
                }
            });
        }
        for w in writers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
    });
    // Final harvest after everything stopped.
    let mut log = GfnBitmap::new(Gfn(0), pages);
    let mut b = FlushBatch::new();
    t.clear_dirty(all, &mut log, &mut b).unwrap();
    let _ = t.commit(b);
    let mut h = harvested.into_inner().unwrap();
    for g in log.iter() {
        h.set(g);
    }
    for w in 0..2 {
        let first = w * pages / 2;
        for g in first..first + per_writer {
            assert!(h.get(Gfn(g)), "dirty bit of gfn {g} lost");
        }
    }
}

#[test]
fn ept_ad_no_dirty_bit_lost() {
    no_dirty_bit_lost(Ept::default());
}

#[test]
fn ept_without_ad_no_dirty_bit_lost() {
    no_dirty_bit_lost(Ept::new(EptConfig {
        ad: false,
        ..EptConfig::default()
    }));
}

#[test]
fn npt_no_dirty_bit_lost() {
    no_dirty_bit_lost(Npt::default());
}

#[test]
fn loongarch_no_dirty_bit_lost() {
    no_dirty_bit_lost(LoongArch4K::default());
}

/// Threads mapping overlapping ranges with the same frames: every race to link a table or install
/// a leaf resolves to one winner, the losers' unpublished tables are freed, nothing conflicts.
fn racing_maps<F: PteFormat>(fmt: F) {
    let t: Table<F> =
        StageTwoTable::new(fmt, HeapFrameAllocator::new(), CountingTlb::default()).unwrap();
    let huge = F::level_size(1);
    let ps = 1u64 << F::PAGE_SHIFT;
    let rounds = (iterations() / 2000).max(2);
    thread::scope(|s| {
        for w in 0..2u64 {
            let t = &t;
            s.spawn(move || {
                for r in 0..rounds {
                    let base = r * 8 * huge;
                    let mut b = FlushBatch::new();
                    // Offsets differ per thread so the ranges overlap partially.
                    let start = base + w * 3 * ps;
                    let range = GpaRange::from_len(Gpa(start), 6 * huge).unwrap();
                    let policy = if r % 2 == 0 {
                        HugePolicy::LARGEST
                    } else {
                        HugePolicy::BASE_PAGES
                    };
                    let attrs = LeafAttrs::ram(Perms::RWX);
                    // Small pages first where the other thread may map huge: a huge request over a
                    // table falls back to small leaves, never a conflict.
                    t.map_range(range, Hpa((1 << 34) + start), attrs, policy, &mut b)
                        .unwrap();
                    let _ = t.commit(b);
                }
            });
        }
    });
    let mut tables = 0;
    t.for_each_table(|_, _| tables += 1);
    assert_eq!(t.stats().tables, tables);
    assert_eq!(
        t.allocator().live() as u64,
        tables + t.invalid_tables() as u64,
        "unpublished tables freed"
    );
    for r in 0..rounds {
        for p in (0..6 * huge / ps).step_by(61) {
            let gpa = r * 8 * huge + p * ps;
            assert_eq!(t.translate(Gpa(gpa)).unwrap().hpa, Hpa((1 << 34) + gpa));
        }
    }
}

#[test]
fn ept_racing_maps() {
    racing_maps(Ept::default());
}

#[test]
fn loongarch_racing_maps() {
    racing_maps(LoongArch4K::default());
}
