//! Edge cases: the top of the address space, one-page ranges, misaligned huge requests, allocator
//! failure mid-operation, double maps, flush accounting, masks straddling huge pages, 1 GiB
//! split/collapse, the mirror's refusals and pins, and LoongArch's invalid directory entries.

mod common;

use std::sync::atomic::Ordering;

use common::{CountingTlb, MapMirror};
use mmu::{
    Access, Ept, Error, FastFix, Flush, FlushBatch, Gfn, GfnBitmap, Gpa, GpaRange,
    HeapFrameAllocator, Hpa, HugePolicy, LeafAttrs, LoongArch16K, LoongArch4K, MemType, Perms,
    PteFormat, StageTwoTable, UnmapMode,
};

const K4: u64 = 4096;
const M2: u64 = 2 << 20;
const G1: u64 = 1 << 30;

type EptTable = StageTwoTable<Ept, HeapFrameAllocator, CountingTlb>;

fn ept() -> EptTable {
    StageTwoTable::new(
        Ept::default(),
        HeapFrameAllocator::new(),
        CountingTlb::default(),
    )
    .unwrap()
}

fn range(start: u64, len: u64) -> GpaRange {
    GpaRange::from_len(Gpa(start), len).unwrap()
}

fn rwx() -> LeafAttrs {
    LeafAttrs::ram(Perms::RWX)
}

#[test]
fn top_of_address_space() {
    let t = ept();
    let limit = t.gpa_limit().0;
    assert_eq!(limit, 1 << 48);
    let mut b = FlushBatch::new();
    t.map_range(
        range(limit - M2, M2),
        Hpa(G1),
        rwx(),
        HugePolicy::LARGEST,
        &mut b,
    )
    .unwrap();
    assert_eq!(t.translate(Gpa(limit - 1)).unwrap().hpa, Hpa(G1 + M2 - 1));
    assert_eq!(t.stats().leaves[1], 1);
    let err = t.map_range(
        range(limit - K4, 2 * K4),
        Hpa(0),
        rwx(),
        HugePolicy::LARGEST,
        &mut b,
    );
    assert!(matches!(err, Err(Error::OutOfRange { .. })), "{err:?}");
    assert!(t.translate(Gpa(limit)).is_none());
    assert_eq!(t.fast_fix(Gpa(limit), Access::Read), FastFix::Slow);
    let mut t = t;
    let rep = t
        .unmap(range(limit - K4, K4), UnmapMode::FreeTables, &mut b, None)
        .unwrap();
    assert_eq!(rep.pages, 1);
    assert_eq!(
        t.stats().leaves[0],
        511,
        "the huge page was split around the removed page"
    );
    assert!(t.translate(Gpa(limit - K4)).is_none());
    assert!(t.translate(Gpa(limit - 2 * K4)).is_some());
    let _ = t.commit(b);
}

#[test]
fn one_page_ranges_and_empty_ranges() {
    let mut t = ept();
    let mut b = FlushBatch::new();
    t.map_range(
        range(0x5000, K4),
        Hpa(0x9000),
        rwx(),
        HugePolicy::LARGEST,
        &mut b,
    )
    .unwrap();
    assert_eq!(t.stats().leaves[0], 1);
    assert_eq!(t.stats().tables, 4);
    t.map_range(range(0x7000, 0), Hpa(0), rwx(), HugePolicy::LARGEST, &mut b)
        .unwrap();
    let mut log = GfnBitmap::new(Gfn(0), 64);
    assert_eq!(t.age(range(0x5000, K4), &mut log).unwrap(), 1);
    assert!(log.get(Gfn(5)) && log.count() == 1);
    assert!(!t.test_age(range(0, 64 * K4)).unwrap());
    // Half-open: [0x6000, 0x7000) does not touch the page at 0x5000.
    t.unmap(range(0x6000, K4), UnmapMode::FreeTables, &mut b, None)
        .unwrap();
    assert!(t.translate(Gpa(0x5000)).is_some());
    t.unmap(range(0x5000, K4), UnmapMode::FreeTables, &mut b, None)
        .unwrap();
    assert_eq!(t.stats().leaves[0], 0);
    // A one-page range frees no table (none is covered whole).
    assert_eq!(t.stats().tables, 4);
    let _ = t.commit(b);
}

#[test]
fn misaligned_huge_requests() {
    let t = ept();
    let mut b = FlushBatch::new();
    assert!(matches!(
        t.map(Gpa(M2 + K4), Hpa(0), 1, rwx(), &mut b),
        Err(Error::Misaligned { .. })
    ));
    assert!(matches!(
        t.map(Gpa(M2), Hpa(K4), 1, rwx(), &mut b),
        Err(Error::Misaligned { .. })
    ));
    assert!(matches!(
        t.map(Gpa(0), Hpa(0), 3, rwx(), &mut b),
        Err(Error::Format(_))
    ));
    assert!(matches!(
        t.map_range(
            range(K4 / 2, K4),
            Hpa(0),
            rwx(),
            HugePolicy::LARGEST,
            &mut b
        ),
        Err(Error::Misaligned { .. })
    ));
    // gpa and hpa not congruent modulo 2 MiB: base pages only, whatever the policy.
    let rep = t
        .map_range(
            range(4 * M2, 4 * M2),
            Hpa(8 * M2 + K4),
            rwx(),
            HugePolicy::LARGEST,
            &mut b,
        )
        .unwrap();
    assert_eq!(rep.installed[0], 4 * 512);
    assert_eq!(rep.installed[1], 0);
    // Congruent but starting 2 pages before a huge boundary: 2 small pages, one huge page, then
    // the 510 pages left of the next huge page.
    let rep = t.map_range(
        range(64 * M2 - 2 * K4, 2 * M2),
        Hpa(G1 - 2 * K4),
        rwx(),
        HugePolicy::LARGEST,
        &mut b,
    );
    let rep = rep.unwrap();
    assert_eq!((rep.installed[0], rep.installed[1]), (512, 1));
    assert_eq!(t.translate(Gpa(64 * M2 + 5)).unwrap().level, 1);
    assert_eq!(t.translate(Gpa(65 * M2)).unwrap().level, 0);
    assert!(t.translate(Gpa(66 * M2 - 2 * K4)).is_none());
    assert!(b.is_empty(), "EPT installs need no flush");
}

#[test]
fn allocator_failure_mid_operation() {
    let t = ept();
    let mut b = FlushBatch::new();
    // The root exists; a 3-table path plus the 2nd L0 table: fail after 4 allocations.
    t.allocator().set_budget(Some(3));
    let err = t.map_range(
        range(0, 2 * M2),
        Hpa(0x4000_0000 + K4),
        rwx(),
        HugePolicy::LARGEST,
        &mut b,
    );
    t.allocator().set_budget(None);
    assert_eq!(err, Err(Error::OutOfMemory { at: Gpa(M2) }));
    assert!(t.translate(Gpa(M2 - K4)).is_some());
    assert!(t.translate(Gpa(M2)).is_none());
    assert_eq!(t.stats().leaves[0], 512);
    assert_eq!(t.stats().tables as i64, t.allocator().live());
    // Split under pressure: reports the error and changes no translation.
    t.map(Gpa(G1), Hpa(G1), 2, rwx(), &mut b).unwrap();
    t.allocator().set_budget(Some(10));
    let err = t.split(range(G1, G1), 0, &mut b);
    t.allocator().set_budget(None);
    assert!(matches!(err, Err(Error::OutOfMemory { .. })));
    assert_eq!(t.translate(Gpa(G1 + 12345)).unwrap().hpa, Hpa(G1 + 12345));
    assert_eq!(
        t.stats().tables as i64,
        t.allocator().live(),
        "nothing leaked by the failed split"
    );
    assert_eq!(t.stats().leaves[2], 1);
    // And the retry succeeds.
    assert_eq!(t.split(range(G1, G1), 0, &mut b).unwrap(), 1);
    assert_eq!(t.stats().leaves[0], 512 + 512 * 512);
}

#[test]
fn double_map_same_frame_is_a_no_op_different_frame_is_refused() {
    let t = ept();
    let mut b = FlushBatch::new();
    t.map(Gpa(M2), Hpa(4 * M2), 1, rwx(), &mut b).unwrap();
    let rep = t.map(Gpa(M2), Hpa(4 * M2), 1, rwx(), &mut b).unwrap();
    assert_eq!(rep.installed, [0; mmu::MAX_LEVELS]);
    // A base page inside the huge page, same frame: also a no-op.
    let rep = t
        .map(Gpa(M2 + K4), Hpa(4 * M2 + K4), 0, rwx(), &mut b)
        .unwrap();
    assert_eq!(rep.installed, [0; mmu::MAX_LEVELS]);
    let err = t.map(Gpa(M2 + K4), Hpa(9 * M2), 0, rwx(), &mut b);
    assert_eq!(
        err,
        Err(Error::AlreadyMapped {
            gpa: Gpa(M2 + K4),
            existing: Hpa(4 * M2 + K4)
        })
    );
    let err = t.map(Gpa(M2), Hpa(4 * M2), 1, LeafAttrs::ram(Perms::R), &mut b);
    assert!(
        matches!(err, Err(Error::AlreadyMapped { .. })),
        "different permissions"
    );
    assert_eq!(t.translate(Gpa(M2 + K4)).unwrap().hpa, Hpa(4 * M2 + K4));
}

#[test]
fn one_flush_per_commit_whatever_the_size() {
    let mut t = StageTwoTable::new(
        LoongArch4K::default(),
        HeapFrameAllocator::new(),
        CountingTlb::default(),
    )
    .unwrap();
    let mut b = FlushBatch::new();
    t.map_range(
        range(0, 64 * M2),
        Hpa(0),
        rwx(),
        HugePolicy::BASE_PAGES,
        &mut b,
    )
    .unwrap();
    assert_eq!(
        b.pending(),
        Flush::All,
        "LoongArch caches invalid entries; large ranges collapse to All"
    );
    let _ = t.commit(b);
    assert_eq!(t.tlb().count.load(Ordering::Relaxed), 1);
    let mut b = FlushBatch::with_threshold(u64::MAX);
    let mut log = GfnBitmap::new(Gfn(0), 64 * 512);
    let v = t.fast_fix(Gpa(3 * K4), Access::Write);
    assert!(
        matches!(
            v,
            FastFix::Fixed {
                dirtied: true,
                flush: Flush::Range { .. },
                ..
            }
        ),
        "{v:?}"
    );
    assert_eq!(
        t.clear_dirty(range(0, 64 * M2), &mut log, &mut b).unwrap(),
        1
    );
    assert_eq!(b.pending(), Flush::range(Gpa(3 * K4), Gpa(4 * K4)));
    t.unmap(range(0, 64 * M2), UnmapMode::FreeTables, &mut b, None)
        .unwrap();
    assert_eq!(b.pending_frees(), 64);
    let _ = t.commit(b);
    assert_eq!(t.tlb().count.load(Ordering::Relaxed), 2);
    assert_eq!(
        t.allocator().live() as u64,
        t.stats().tables + t.invalid_tables() as u64
    );
}

#[test]
fn dirty_mask_straddling_two_huge_pages() {
    let t = ept();
    let mut b = FlushBatch::new();
    t.map_range(range(0, 4 * M2), Hpa(0), rwx(), HugePolicy::LARGEST, &mut b)
        .unwrap();
    assert_eq!(t.stats().leaves[1], 4);
    // Dirty one page in huge page 1 and one in huge page 2.
    let _ = t.fast_fix(Gpa(2 * M2 - K4), Access::Write);
    let _ = t.fast_fix(Gpa(2 * M2 + 5 * K4), Access::Write);
    let base = Gfn((2 * M2 - 32 * K4) / K4);
    let mut log = GfnBitmap::new(Gfn(0), 4 * 512);
    let n = t
        .clear_dirty_masked(base, u64::MAX, &mut log, &mut b)
        .unwrap();
    assert_eq!(n, 64);
    // Both huge pages are reported whole and are clean afterwards.
    assert_eq!(log.count(), 1024);
    assert!(log.get(Gfn(512)) && log.get(Gfn(1535)) && !log.get(Gfn(1536)));
    assert!(!t.translate(Gpa(M2)).unwrap().attrs.dirty);
    assert!(!t.translate(Gpa(2 * M2)).unwrap().attrs.dirty);
    // With a bitmap too small to hold a huge page, it is reported but left dirty.
    let _ = t.fast_fix(Gpa(2 * M2), Access::Write);
    let mut small = GfnBitmap::new(base, 64);
    t.clear_dirty_masked(base, u64::MAX, &mut small, &mut b)
        .unwrap();
    assert_eq!(small.count(), 32);
    assert!(
        t.translate(Gpa(2 * M2)).unwrap().attrs.dirty,
        "not cleaned: its other frames would be lost"
    );
    // Masks straddling base pages: only the masked ones are cleaned.
    t.map_range(
        range(G1, M2),
        Hpa(G1),
        rwx(),
        HugePolicy::BASE_PAGES,
        &mut b,
    )
    .unwrap();
    for i in 0..8 {
        let _ = t.fast_fix(Gpa(G1 + i * K4), Access::Write);
    }
    let mut log = GfnBitmap::new(Gfn(G1 / K4), 512);
    assert_eq!(
        t.clear_dirty_masked(Gfn(G1 / K4), 0b1010_0101, &mut log, &mut b)
            .unwrap(),
        4
    );
    assert_eq!(log.count(), 4);
    assert!(t.translate(Gpa(G1 + K4)).unwrap().attrs.dirty);
    assert!(!t.translate(Gpa(G1)).unwrap().attrs.dirty);
    assert!(t
        .clear_dirty_masked(Gfn(0), 1, &mut GfnBitmap::new(Gfn(9), 1), &mut b)
        .is_err());
    let _ = t.commit(b);
}

#[test]
fn split_one_gib_to_base_pages_and_collapse_back() {
    let mut t = ept();
    let mut b = FlushBatch::new();
    let mut attrs = rwx();
    attrs.dirty = true;
    t.map_range(
        range(G1, G1),
        Hpa(2 * G1),
        attrs,
        HugePolicy::LARGEST,
        &mut b,
    )
    .unwrap();
    assert_eq!(t.stats().leaves[2], 1);
    assert_eq!(t.split(range(G1, G1), 0, &mut b).unwrap(), 1);
    let s = t.stats();
    assert_eq!((s.leaves[0], s.leaves[1], s.leaves[2]), (512 * 512, 0, 0));
    // Root, the 1 GiB-entry table, then the new 2 MiB-entry table and its 512 tables.
    assert_eq!(s.tables, 2 + 1 + 512);
    assert!(b.is_empty(), "EPT split needs no flush");
    let tr = t.translate(Gpa(G1 + 777 * K4 + 5)).unwrap();
    assert_eq!(
        (tr.hpa, tr.level, tr.attrs.dirty),
        (Hpa(2 * G1 + 777 * K4 + 5), 0, true)
    );
    // Collapse to 2 MiB only, then to 1 GiB.
    assert_eq!(t.collapse(range(G1, G1), 1, &mut b).unwrap(), 512);
    assert_eq!(t.stats().leaves[1], 512);
    assert_eq!(t.collapse(range(G1, G1), usize::MAX, &mut b).unwrap(), 1);
    assert_eq!(t.stats().leaves[2], 1);
    assert_eq!(b.pending_frees(), 513);
    let _ = t.commit(b);
    assert_eq!(t.allocator().live() as u64, t.stats().tables);
    // Not contiguous: no collapse.
    let mut b = FlushBatch::new();
    t.map_range(
        range(0, M2 - K4),
        Hpa(0),
        rwx(),
        HugePolicy::LARGEST,
        &mut b,
    )
    .unwrap();
    t.map(Gpa(M2 - K4), Hpa(5 * M2), 0, rwx(), &mut b).unwrap();
    assert_eq!(t.collapse(range(0, M2), 1, &mut b).unwrap(), 0);
    // Partial split: a 2 MiB range of a 1 GiB page splits one level, then the part in range.
    assert_eq!(t.split(range(G1 + 4 * M2, M2), 0, &mut b).unwrap(), 2);
    let s = t.stats();
    assert_eq!((s.leaves[1], s.leaves[0] - 512), (511, 512));
    let _ = t.commit(b);
}

#[test]
fn mirror_refusal_restores_and_pins_block_permission_tricks() {
    let mirror = MapMirror::new(K4);
    let mut t = StageTwoTable::with_mirror(
        Ept::default(),
        HeapFrameAllocator::new(),
        CountingTlb::default(),
        mirror,
    )
    .unwrap();
    let mut b = FlushBatch::new();
    t.map_range(
        range(0, 4 * K4),
        Hpa(0x10_0000),
        rwx(),
        HugePolicy::LARGEST,
        &mut b,
    )
    .unwrap();
    t.mirror().refuse.store(true, Ordering::SeqCst);
    let err = t.map_range(
        range(4 * K4, 4 * K4),
        Hpa(0x20_0000),
        rwx(),
        HugePolicy::LARGEST,
        &mut b,
    );
    assert!(
        matches!(
            err,
            Err(Error::Mirror {
                at: Gpa(0x4000),
                ..
            })
        ),
        "{err:?}"
    );
    assert!(
        t.translate(Gpa(4 * K4)).is_none(),
        "the frozen entry was restored"
    );
    t.mirror().refuse.store(false, Ordering::SeqCst);
    t.map_range(
        range(4 * K4, 4 * K4),
        Hpa(0x20_0000),
        rwx(),
        HugePolicy::LARGEST,
        &mut b,
    )
    .unwrap();
    assert_eq!(t.mirror().map.lock().unwrap().len(), 8);
    // Pinned: no write protection, aging and dirty clearing leave the leaves alone.
    t.mirror().pinned.lock().unwrap().push(range(0, 2 * K4));
    assert_eq!(
        t.write_protect(range(0, 8 * K4), &mut b),
        Err(Error::Pinned { at: Gpa(0) })
    );
    let mut log = GfnBitmap::new(Gfn(0), 8);
    assert_eq!(t.age(range(0, 8 * K4), &mut log).unwrap(), 8);
    assert!(
        t.translate(Gpa(0)).unwrap().attrs.young && !t.translate(Gpa(2 * K4)).unwrap().attrs.young
    );
    let mut log = GfnBitmap::new(Gfn(0), 8);
    assert_eq!(
        t.clear_dirty(range(0, 8 * K4), &mut log, &mut b).unwrap(),
        2,
        "pinned pages count as dirty"
    );
    t.unmap(range(0, 8 * K4), UnmapMode::FreeTables, &mut b, None)
        .unwrap();
    assert!(t.mirror().map.lock().unwrap().is_empty());
    let _ = t.commit(b);
}

#[test]
fn loongarch_empty_directories_point_at_invalid_tables() {
    let t = StageTwoTable::new(
        LoongArch16K::default(),
        HeapFrameAllocator::new(),
        CountingTlb::default(),
    )
    .unwrap();
    assert_eq!(t.invalid_tables(), 2);
    let w = t.walk(Gpa(0x1234_0000));
    assert!(w.leaf.is_none());
    let root_level = LoongArch16K::LEVELS - 1;
    assert_ne!(
        w.entries[root_level], 0,
        "an empty directory entry is never 0"
    );
    let mut invalid = vec![];
    t.for_each_invalid_table(|pa| invalid.push(pa.0));
    assert!(invalid.contains(&w.entries[root_level]));
    let mut b = FlushBatch::new();
    t.map_range(
        range(0, 64 << 20),
        Hpa(1 << 30),
        rwx(),
        HugePolicy::LARGEST,
        &mut b,
    )
    .unwrap();
    assert_eq!(
        t.stats().leaves[1],
        2,
        "16K base pages give 32 MiB huge leaves"
    );
    let tr = t.translate(Gpa((32 << 20) + 5)).unwrap();
    assert_eq!((tr.hpa, tr.level), (Hpa((1 << 30) + (32 << 20) + 5), 1));
    assert!(!b.is_empty(), "LoongArch flushes after installs");
    let _ = t.commit(b);
}

#[test]
fn eptp_for_the_root() {
    let t = ept();
    let eptp = t.format().eptp(t.root());
    assert_eq!(eptp & 0xfff, 6 | (3 << 3) | (1 << 6));
    assert_eq!(eptp & !0xfff, t.root().0);
}

#[test]
fn translate_range_follows_one_contiguous_run_of_usable_pages() {
    let t = ept();
    let mut b = FlushBatch::new();
    let wb = MemType::WriteBack;
    // [0, 4M) on a 2M huge page run at 1G, then [4M, 4M + 8K) continuing it in 4K pages.
    t.map_range(
        range(0, 2 * M2),
        Hpa(G1),
        rwx(),
        HugePolicy::LARGEST,
        &mut b,
    )
    .unwrap();
    t.map_range(
        range(2 * M2, 2 * K4),
        Hpa(G1 + 2 * M2),
        rwx(),
        HugePolicy::LARGEST,
        &mut b,
    )
    .unwrap();
    // A read-only page after a gap in host memory, and an uncached (device) page.
    let ro = LeafAttrs::ram(Perms::R);
    t.map_range(
        range(2 * M2 + 2 * K4, K4),
        Hpa(3 * G1),
        ro,
        HugePolicy::LARGEST,
        &mut b,
    )
    .unwrap();
    let device = LeafAttrs {
        mem: MemType::Uncached,
        ..LeafAttrs::ram(Perms::R | Perms::W)
    };
    t.map_range(
        range(8 * M2, K4),
        Hpa(8 * M2),
        device,
        HugePolicy::LARGEST,
        &mut b,
    )
    .unwrap();
    let rw = Perms::R | Perms::W;
    // Across the huge pages and into the 4K ones.
    assert_eq!(
        t.translate_range(range(M2 - 16, M2 + 16 + 2 * K4), rw, wb),
        Some(Hpa(G1 + M2 - 16))
    );
    // One byte too far: the next page is elsewhere in host memory and read-only.
    assert_eq!(
        t.translate_range(range(2 * M2, 2 * K4 + 1), Perms::R, wb),
        None
    );
    assert_eq!(
        t.translate_range(range(2 * M2 + 2 * K4, 8), Perms::R, wb),
        Some(Hpa(3 * G1))
    );
    assert_eq!(t.translate_range(range(2 * M2 + 2 * K4, 8), rw, wb), None);
    // Absent pages and the device page are never plain memory.
    assert_eq!(t.translate_range(range(5 * M2, 8), Perms::R, wb), None);
    assert_eq!(t.translate_range(range(8 * M2, 8), rw, wb), None);
    assert_eq!(
        t.translate_range(range(8 * M2, 8), rw, MemType::Uncached),
        Some(Hpa(8 * M2))
    );
    // An empty range asks about its start.
    assert_eq!(t.translate_range(range(K4, 0), rw, wb), Some(Hpa(G1 + K4)));
}
