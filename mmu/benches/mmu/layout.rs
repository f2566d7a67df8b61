//! The floors, measured over the very memory an operation works on.
//!
//! A floor is the cost of the least work an operation must do per base-page entry: one load
//! (`scan`, for a walk that finds nothing to change), one atomic read-modify-write (`atomic`, for
//! one that changes every entry), one plain store (`fill`, for building new tables). Each is
//! measured over the table's own leaf pages (pages of 512 or 2048 entries, in guest-address
//! order, wherever the allocator put them) and right before or after the operation it is
//! compared with, so memory layout, cache and TLB state and the load of the shared machine are
//! the same for both. No tree walk, no bookkeeping: the page list is collected beforehand.
//!
//! The floors leave the entries as they found them: the atomic floor toggles a bit no operation
//! looks at mid-measurement in two passes (each timed; the faster counts), the fill floor
//! rewrites the values the entries already hold.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use mmu::{FrameAllocator, MirrorHook, PteFormat, StageTwoTable, TlbFlush};

/// Bit the atomic floor toggles. Only floors touch it, and they restore it.
const PROBE: u64 = 1 << 62;

/// The base-page table pages of a table.
pub struct Leaves {
    pages: Vec<usize>,
    per: usize,
    entries: usize,
}

impl Leaves {
    /// Every level-0 table page of `t`, in guest-address order.
    pub fn of<F: PteFormat, A: FrameAllocator, T: TlbFlush, M: MirrorHook>(
        t: &StageTwoTable<F, A, T, M>,
    ) -> Self {
        let mut pages = Vec::new();
        t.for_each_table(|pa, level| {
            if level == 0 {
                pages.push(t.allocator().phys_to_virt(pa) as usize);
            }
        });
        let entries = pages.len() * F::ENTRIES;
        Self {
            pages,
            per: F::ENTRIES,
            entries,
        }
    }

    /// The first `entries` entries only.
    pub fn prefix(&self, entries: usize) -> Self {
        let n = entries.div_ceil(self.per).min(self.pages.len());
        Self {
            pages: self.pages[..n].to_vec(),
            per: self.per,
            entries: entries.min(n * self.per),
        }
    }

    /// Number of entries covered.
    pub fn len(&self) -> usize {
        self.entries
    }

    fn each(&self, mut f: impl FnMut(&[AtomicU64])) {
        let mut left = self.entries;
        for &p in &self.pages {
            let n = left.min(self.per);
            // SAFETY: `p` is a live table page of `per` 8-byte entries of a table the caller
            // keeps alive (and does not unmap) while this `Leaves` is used.
            let ents = unsafe { std::slice::from_raw_parts(p as *const AtomicU64, n) };
            f(ents);
            left -= n;
        }
    }

    fn per_entry(&self, t: Instant) -> f64 {
        t.elapsed().as_nanos() as f64 / self.entries.max(1) as f64
    }

    /// One load per entry, OR-reduced (which the compiler vectorizes), ns per entry (best of
    /// three passes).
    pub fn scan(&self) -> f64 {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let mut acc = 0u64;
            self.each(|ents| {
                for e in ents {
                    acc |= e.load(Ordering::Relaxed);
                }
            });
            black_box(acc);
            best = best.min(self.per_entry(t));
        }
        best
    }

    /// One atomic read-modify-write per entry, ns per entry (best of two passes, which set and
    /// then clear the probe bit).
    pub fn atomic(&self) -> f64 {
        let mut best = f64::MAX;
        for _ in 0..2 {
            let t = Instant::now();
            self.each(|ents| {
                for e in ents {
                    e.fetch_xor(PROBE, Ordering::AcqRel);
                }
            });
            best = best.min(self.per_entry(t));
        }
        best
    }

    /// One plain store per entry, ns per entry (best of three passes). The pages must hold
    /// contiguous base-page leaves (entry k = entry 0 + k × `step`), which are written back.
    pub fn fill(&self, step: u64) -> f64 {
        let mut firsts = Vec::with_capacity(self.pages.len());
        self.each(|ents| {
            let v0 = ents[0].load(Ordering::Relaxed);
            for (k, e) in ents.iter().enumerate() {
                assert_eq!(e.load(Ordering::Relaxed), v0 + k as u64 * step);
            }
            firsts.push(v0);
        });
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let mut i = 0;
            self.each(|ents| {
                let mut v = firsts[i];
                for e in ents {
                    e.store(v, Ordering::Relaxed);
                    v += step;
                }
                i += 1;
            });
            best = best.min(self.per_entry(t));
        }
        best
    }

    /// What the hardware does on guest accesses: OR `bits` into every `every`-th entry.
    pub fn hw_set(&self, bits: u64, every: usize) {
        let mut k = 0usize;
        self.each(|ents| {
            for e in ents {
                if k.is_multiple_of(every) {
                    e.fetch_or(bits, Ordering::Relaxed);
                }
                k += 1;
            }
        });
    }
}
