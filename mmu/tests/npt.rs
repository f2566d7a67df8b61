//! NPT-specific edges: the nested CR3, U=1 on every level of every walk, the page-size and NX bits
//! per level, the memory-type encoding, and young/dirty harvested from accessed/dirty bits set by
//! "hardware" (the test ORs them into the entries, as the processor does during a nested walk).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::CountingTlb;
use mmu::format::FormatError;
use mmu::{
    ncr3, Access, Error, FastFix, FlushBatch, Gfn, GfnBitmap, Gpa, GpaRange, HeapFrameAllocator,
    Hpa, HugePolicy, LeafAttrs, MemType, Npt, Perms, PteFormat, StageTwoTable,
};

const K4: u64 = 4096;
const M2: u64 = 2 << 20;
const G1: u64 = 1 << 30;
const P: u64 = 1;
const RW: u64 = 1 << 1;
const US: u64 = 1 << 2;
const PWT: u64 = 1 << 3;
const PCD: u64 = 1 << 4;
const A: u64 = 1 << 5;
const D: u64 = 1 << 6;
const PS: u64 = 1 << 7;
const NX: u64 = 1 << 63;

type NptTable = StageTwoTable<Npt, HeapFrameAllocator, CountingTlb>;

fn npt() -> NptTable {
    StageTwoTable::new(
        Npt::default(),
        HeapFrameAllocator::new(),
        CountingTlb::default(),
    )
    .unwrap()
}

fn range(start: u64, len: u64) -> GpaRange {
    GpaRange::from_len(Gpa(start), len).unwrap()
}

/// The leaf entry mapping `gpa`, as the processor would reach it (the heap allocator's "physical"
/// addresses are host pointers).
fn leaf_entry(t: &NptTable, gpa: u64) -> &AtomicU64 {
    let w = t.walk(Gpa(gpa));
    let level = w.leaf.expect("mapped").level;
    let table = if level == Npt::LEVELS - 1 {
        t.root().0
    } else {
        w.entries[level + 1] & 0x000f_ffff_ffff_f000
    };
    let idx = (gpa >> Npt::shift(level)) & 511;
    let p = (table + idx * 8) as *const AtomicU64;
    // SAFETY: `table` is a live table page of `t` (4 KiB, 8-byte aligned entries) that stays
    // allocated while `t` is borrowed and no unmap runs.
    unsafe { &*p }
}

#[test]
fn ncr3_is_the_root_address() {
    let t = npt();
    assert_eq!(t.format().ncr3(t.root()), t.root().0);
    assert_eq!(ncr3(t.root()), t.root().0);
    assert_eq!(t.root().0 & 0xfff, 0);
}

#[test]
fn every_level_is_user_and_page_size_only_on_large_leaves() {
    let t = npt();
    let mut b = FlushBatch::new();
    let rwx = LeafAttrs::ram(Perms::RWX);
    // A 1 GiB leaf, 2 MiB leaves, and 4 KiB leaves, in distinct top-level slots.
    t.map(Gpa(G1), Hpa(8 * G1), 2, rwx, &mut b).unwrap();
    t.map_range(
        range(4 * G1, 4 * M2),
        Hpa(16 * G1),
        rwx,
        HugePolicy::LARGEST,
        &mut b,
    )
    .unwrap();
    let ro = LeafAttrs::ram(Perms::R);
    t.map_range(
        range(1 << 40, 3 * K4),
        Hpa(32 * G1),
        ro,
        HugePolicy::LARGEST,
        &mut b,
    )
    .unwrap();
    assert!(b.is_empty(), "x86 does not cache non-present entries");
    let _ = t.commit(b);
    for (gpa, level, nx) in [
        (G1 + 5, 2, false),
        (4 * G1 + M2 + 9, 1, false),
        ((1 << 40) + K4, 0, true),
    ] {
        let w = t.walk(Gpa(gpa));
        assert_eq!(w.leaf.unwrap().level, level);
        for (l, &e) in w.entries.iter().enumerate().take(Npt::LEVELS).skip(level) {
            assert_eq!(e & (P | US), P | US, "level {l} of {gpa:#x}: {e:#x}");
            if l > level {
                assert_eq!(e & (RW | PS | NX | D), RW, "table entry {e:#x}");
            }
        }
        let leaf = w.entries[level];
        assert_eq!(leaf & PS != 0, level > 0, "PS on {leaf:#x}");
        assert_eq!(leaf & NX != 0, nx, "NX on {leaf:#x}");
        assert_eq!(leaf & RW != 0, !nx, "RW on {leaf:#x}");
        assert_eq!(leaf & (PCD | PWT), 0, "write-back is PAT index 0");
    }
}

#[test]
fn memory_types() {
    let t = npt();
    let mut b = FlushBatch::new();
    let dev = LeafAttrs {
        mem: MemType::Uncached,
        ..LeafAttrs::ram(Perms::R | Perms::W)
    };
    t.map(Gpa(M2), Hpa(0xfe00_0000), 1, dev, &mut b).unwrap();
    let e = t.walk(Gpa(M2)).entries[1];
    assert_eq!(e & (PCD | PWT | (1 << 12)), PCD | PWT, "UC = PAT index 3");
    assert_eq!(t.translate(Gpa(M2)).unwrap().attrs.mem, MemType::Uncached);
    let wt = LeafAttrs {
        mem: MemType::WriteThrough,
        ..LeafAttrs::ram(Perms::R)
    };
    t.map(Gpa(0), Hpa(0x1000), 0, wt, &mut b).unwrap();
    assert_eq!(t.walk(Gpa(0)).entries[0] & (PCD | PWT), PWT);
    let wc = LeafAttrs {
        mem: MemType::WriteCombining,
        ..LeafAttrs::ram(Perms::R)
    };
    assert_eq!(
        t.map(Gpa(K4), Hpa(K4), 0, wc, &mut b),
        Err(Error::Format(FormatError::UnsupportedMemType(
            MemType::WriteCombining
        )))
    );
    let _ = t.commit(b);
}

#[test]
fn hardware_accessed_and_dirty_bits_are_harvested() {
    let t = npt();
    let mut b = FlushBatch::new();
    let old_clean = LeafAttrs {
        young: false,
        ..LeafAttrs::ram(Perms::RWX)
    };
    // 4 KiB pages in [0, 2M), one 2 MiB leaf at [2M, 4M).
    t.map_range(
        range(0, M2),
        Hpa(G1),
        old_clean,
        HugePolicy::BASE_PAGES,
        &mut b,
    )
    .unwrap();
    t.map(Gpa(M2), Hpa(G1 + M2), 1, old_clean, &mut b).unwrap();
    let _ = t.commit(b);
    assert!(!t.test_age(range(0, 2 * M2)).unwrap());

    // The processor reads page 3 and writes page 7 and the huge page.
    leaf_entry(&t, 3 * K4).fetch_or(A, Ordering::SeqCst);
    leaf_entry(&t, 7 * K4).fetch_or(A | D, Ordering::SeqCst);
    leaf_entry(&t, M2 + 5 * K4).fetch_or(A | D, Ordering::SeqCst);
    assert!(t.test_age(range(0, 2 * M2)).unwrap());

    let n = 2 * M2 / K4;
    let mut young = GfnBitmap::new(Gfn(0), n);
    assert_eq!(t.age(range(0, 2 * M2), &mut young).unwrap(), 2 + 512);
    let got: Vec<u64> = young.iter().map(|g| g.0).take(3).collect();
    assert_eq!(got, [3, 7, 512]);
    assert_eq!(leaf_entry(&t, 3 * K4).load(Ordering::SeqCst) & A, 0);
    assert!(!t.test_age(range(0, 2 * M2)).unwrap());

    let mut dirty = GfnBitmap::new(Gfn(0), n);
    let mut b = FlushBatch::new();
    assert_eq!(
        t.clear_dirty(range(0, 2 * M2), &mut dirty, &mut b).unwrap(),
        1 + 512
    );
    assert!(!b.is_empty(), "cleaning needs a flush");
    let _ = t.commit(b);
    assert_eq!(dirty.iter().next(), Some(Gfn(7)));
    assert_eq!(leaf_entry(&t, 7 * K4).load(Ordering::SeqCst) & (D | RW), RW);

    // Write-protect: the next write goes to the slow path; a clean writable page is fixed fast.
    assert!(matches!(
        t.fast_fix(Gpa(9 * K4), Access::Write),
        FastFix::Fixed { dirtied: true, .. }
    ));
    let mut b = FlushBatch::new();
    t.write_protect(range(0, M2), &mut b).unwrap();
    let _ = t.commit(b);
    assert_eq!(t.fast_fix(Gpa(9 * K4), Access::Write), FastFix::Slow);
    assert!(t.translate(Gpa(9 * K4)).unwrap().attrs.dirty, "dirty kept");
}

#[test]
fn split_keeps_hardware_dirty_state() {
    let t = npt();
    let mut b = FlushBatch::new();
    let clean = LeafAttrs::ram(Perms::RWX);
    t.map(Gpa(G1), Hpa(4 * G1), 2, clean, &mut b).unwrap();
    leaf_entry(&t, G1).fetch_or(D, Ordering::SeqCst);
    assert_eq!(t.split(range(G1, G1), 0, &mut b).unwrap(), 1);
    assert!(b.is_empty(), "an x86 split needs no flush");
    let _ = t.commit(b);
    let tr = t.translate(Gpa(G1 + 77 * K4 + 3)).unwrap();
    assert_eq!((tr.level, tr.hpa), (0, Hpa(4 * G1 + 77 * K4 + 3)));
    assert!(tr.attrs.dirty && tr.attrs.young);
}
