//! Whole-guest dirty logging and aging (`mmu::tracking`) on a guest of two regions, with the
//! guest's accesses played as the faults a CPU would take (`fast_fix`), on EPT (4 KiB pages) and
//! the LoongArch GPA table (16 KiB pages, four harvest bits each).

mod common;

use common::CountingTlb;
use mmu::tracking::{harvest_bits, HarvestError, HARVEST_PAGE};
use mmu::{
    Access, Ept, FlushBatch, Gpa, GpaRange, HeapFrameAllocator, Hpa, HugePolicy, LeafAttrs,
    LoongArch16K, Perms, PteFormat, StageTwoTable,
};
use std::sync::atomic::Ordering;

const M2: u64 = 2 << 20;

/// Two regions, 4 MiB at 0 and 2 MiB at 1 GiB, mapped with huge pages where they fit.
fn guest<F: PteFormat>(
    f: F,
) -> (
    StageTwoTable<F, HeapFrameAllocator, CountingTlb>,
    Vec<GpaRange>,
) {
    let t = StageTwoTable::new(f, HeapFrameAllocator::new(), CountingTlb::default()).unwrap();
    let regions = vec![
        GpaRange::from_len(Gpa(0), 2 * M2).unwrap(),
        GpaRange::from_len(Gpa(1 << 30), M2).unwrap(),
    ];
    // Mapped dirty, as the image maps writable memory (no fault on the first write).
    let mut attrs = LeafAttrs::ram(Perms::RWX);
    attrs.dirty = true;
    let mut b = FlushBatch::new();
    for (r, host) in regions.iter().zip([0x1000_0000u64, 0x2000_0000]) {
        t.map_range(*r, Hpa(host), attrs, HugePolicy::LARGEST, &mut b)
            .unwrap();
    }
    let _ = t.commit(b);
    (t, regions)
}

/// The guest writes `gpa`: the fault a CPU takes on a clean page, fixed.
fn write<F: PteFormat>(t: &StageTwoTable<F, HeapFrameAllocator, CountingTlb>, gpa: u64) {
    let _ = t.fast_fix(Gpa(gpa), Access::Write);
}

fn set_bits(out: &[u8]) -> Vec<u64> {
    (0..out.len() as u64 * 8)
        .filter(|&b| out[(b / 8) as usize] & 1 << (b % 8) != 0)
        .collect()
}

fn dirty_log_reports_exactly_the_pages_written<F: PteFormat>(f: F) {
    let (t, regions) = guest(f);
    let per_page = t.page_size() / HARVEST_PAGE;
    let mapped: Vec<bool> = [0u64, 1 << 30]
        .iter()
        .map(|&g| t.translate(Gpa(g)).unwrap().attrs.dirty)
        .collect();
    assert_eq!(mapped, [true, true], "mapped dirty");
    t.start_dirty_log(&regions).unwrap();
    assert_eq!(t.stats().leaves[1], 0, "split to base pages");
    let mut out = vec![0u8; (harvest_bits(&regions) / 8) as usize];
    assert_eq!(
        t.harvest_dirty_log(&regions, &mut out),
        Ok(0),
        "clean after the start"
    );
    // A write in the first region and one in the second (its page 1), the second region's bits
    // coming after the first region's 4 MiB.
    write(&t, 0x5000);
    write(&t, (1 << 30) + t.page_size() + 8);
    let flushes = t.tlb().count.load(Ordering::Relaxed);
    let set = t.harvest_dirty_log(&regions, &mut out).unwrap();
    // Cleaning write-enabled entries is flushed before the answer.
    assert!(t.tlb().count.load(Ordering::Relaxed) > flushes, "no flush");
    assert_eq!(set, 2 * per_page);
    let first = 0x5000 / t.page_size() * per_page;
    let second = 2 * M2 / HARVEST_PAGE + per_page;
    let mut want: Vec<u64> = (first..first + per_page).collect();
    want.extend(second..second + per_page);
    assert_eq!(set_bits(&out), want);
    // Harvested pages are clean again.
    assert_eq!(t.harvest_dirty_log(&regions, &mut out), Ok(0));
    assert!(set_bits(&out).is_empty());
    // An output too small for every page is refused before anything is cleaned.
    write(&t, 0);
    let mut small = vec![0u8; out.len() - 1];
    assert_eq!(
        t.harvest_dirty_log(&regions, &mut small),
        Err(HarvestError::TooSmall)
    );
    assert_eq!(t.harvest_dirty_log(&regions, &mut out), Ok(per_page));
}

fn aging_counts_the_pages_touched_since_the_last_pass<F: PteFormat>(f: F) {
    let (t, regions) = guest(f);
    let per_page = t.page_size() / HARVEST_PAGE;
    t.split_to_base(&regions).unwrap();
    t.age_all(&regions);
    assert_eq!(t.age_all(&regions), 0, "nothing touched since");
    let _ = t.fast_fix(Gpa(0x9000), Access::Read);
    write(&t, (1 << 30) + 16);
    assert_eq!(t.age_all(&regions), 2 * per_page);
    assert_eq!(t.age_all(&regions), 0);
}

#[test]
fn ept_dirty_log_reports_exactly_the_pages_written() {
    dirty_log_reports_exactly_the_pages_written(Ept::default());
}

#[test]
fn loongarch_dirty_log_reports_exactly_the_pages_written() {
    dirty_log_reports_exactly_the_pages_written(LoongArch16K::default());
}

#[test]
fn ept_aging_counts_the_pages_touched_since_the_last_pass() {
    aging_counts_the_pages_touched_since_the_last_pass(Ept::default());
}

#[test]
fn loongarch_aging_counts_the_pages_touched_since_the_last_pass() {
    aging_counts_the_pages_touched_since_the_last_pass(LoongArch16K::default());
}
