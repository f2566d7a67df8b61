//! `StageTwoTable`: the GPA→HPA table engine, generic over format, allocator, TLB backend and
//! mirror.
//!
//! Lock modes are carried by the borrow: methods on `&self` are the *shared-mode* operations
//! (`map`, `map_range`, `age`, `test_age`, `clear_dirty`, `clear_dirty_masked`, `write_protect`,
//! `split`, `fast_fix`, `translate`, `walk`, `commit`) and may run on several threads at once, e.g.
//! under the read side of an `RwLock`; every change they make to a reachable entry is a single
//! compare-and-swap. Methods on `&mut self` are *exclusive* (`unmap`, `collapse`, teardown): no
//! software walker runs beside them, but hardware walkers still do, so entries the CPU may modify
//! are retired with an atomic exchange.
//!
//! Table pages are never freed while reachable: shared-mode operations never unlink a table (a
//! table they built but lost a race to publish was never visible and is freed at once), and
//! exclusive operations put unlinked tables in the caller's `FlushBatch`, which frees them in
//! `commit` only after the TLB flush.
//!
//! Errors of range operations carry the address where work stopped: everything in
//! `[range.start, at)` was done and nothing in `[at, range.end)` was, so the table is always
//! consistent and the caller knows exactly what it holds.

mod fast;
mod inspect;
mod map;
mod resize;
mod touched;
mod track;
mod unmap;

use core::sync::atomic::{AtomicU64, Ordering};

use crate::addr::{AddrError, Gpa, GpaRange, Hpa};
use crate::attrs::LeafAttrs;
use crate::flush::{Flush, FlushBatch, TlbFlush};
use crate::format::{FormatError, PteFormat, MAX_LEVELS};
use crate::frame::FrameAllocator;
use crate::mirror::{MirrorError, MirrorHook, NoMirror};
use crate::stats::{StatCounters, TableStats};

pub use fast::FastFix;
pub use map::{HugePolicy, MapReport};
pub use unmap::{UnmapMode, UnmapReport};

/// Errors of table operations.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Error {
    /// The allocator had no table page; `[start, at)` was done.
    OutOfMemory {
        /// First address not processed.
        at: Gpa,
    },
    /// `gpa` already maps to a different frame (or with different permissions or memory type);
    /// replacing a present translation needs an unmap and a flush first.
    AlreadyMapped {
        /// The address that conflicts (first address not processed).
        gpa: Gpa,
        /// What it maps to now.
        existing: Hpa,
    },
    /// An address or size is not aligned to the page size the call needs.
    Misaligned {
        /// The offending address.
        gpa: Gpa,
    },
    /// The range reaches beyond the table's guest-physical address width.
    OutOfRange {
        /// End of the range.
        end: Gpa,
        /// First address the table cannot translate.
        limit: Gpa,
    },
    /// The format cannot encode the requested attributes or level.
    Format(FormatError),
    /// The mirror refused an install; `[start, at)` was done.
    Mirror {
        /// First address not processed.
        at: Gpa,
        /// The mirror's reason.
        error: MirrorError,
    },
    /// The range is pinned by the mirror and cannot be write-protected.
    Pinned {
        /// Start of the range.
        at: Gpa,
    },
    /// The bitmap passed for harvesting does not cover the range.
    BitmapTooSmall,
    /// Address arithmetic overflowed.
    Addr(AddrError),
}

impl From<FormatError> for Error {
    fn from(e: FormatError) -> Self {
        Error::Format(e)
    }
}

impl From<AddrError> for Error {
    fn from(e: AddrError) -> Self {
        Error::Addr(e)
    }
}

/// Result alias for table operations.
pub type Result<T> = core::result::Result<T, Error>;

/// A present translation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Translation {
    /// Host address of the guest address itself (leaf base plus offset).
    pub hpa: Hpa,
    /// Level of the leaf (0 = base page).
    pub level: usize,
    /// The leaf's attributes and tracking state.
    pub attrs: LeafAttrs,
}

/// The entries a walk saw.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Walk {
    /// Raw entry read at each visited level (indices `last_level..LEVELS`).
    pub entries: [u64; MAX_LEVELS],
    /// The lowest level visited.
    pub last_level: usize,
    /// The translation, if the walk ended on a present leaf.
    pub leaf: Option<Translation>,
}

/// How the engine sees one entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Slot {
    /// Nothing mapped.
    Empty,
    /// Another thread is changing it.
    Frozen,
    /// A present leaf.
    Leaf,
    /// A pointer to a lower table.
    Table,
}

/// A stage-2 table.
pub struct StageTwoTable<F: PteFormat, A: FrameAllocator, T: TlbFlush, M: MirrorHook = NoMirror> {
    format: F,
    alloc: A,
    tlb: T,
    mirror: M,
    root: Hpa,
    /// The empty value of an entry at each level.
    none: [u64; MAX_LEVELS],
    /// Shared all-invalid tables, one per level below the root (LoongArch only).
    invalid: [Option<Hpa>; MAX_LEVELS],
    stats: StatCounters,
}

impl<F: PteFormat, A: FrameAllocator, T: TlbFlush> StageTwoTable<F, A, T, NoMirror> {
    /// An empty table without a mirror.
    pub fn new(format: F, alloc: A, tlb: T) -> Result<Self> {
        Self::with_mirror(format, alloc, tlb, NoMirror)
    }
}

impl<F: PteFormat, A: FrameAllocator, T: TlbFlush, M: MirrorHook> StageTwoTable<F, A, T, M> {
    /// An empty table whose changes are mirrored to `mirror`.
    pub fn with_mirror(format: F, alloc: A, tlb: T, mirror: M) -> Result<Self> {
        assert!(F::LEVELS <= MAX_LEVELS && F::MAX_LEAF_LEVEL < F::LEVELS);
        let mut t = Self {
            format,
            alloc,
            tlb,
            mirror,
            root: Hpa(0),
            none: [0; MAX_LEVELS],
            invalid: [None; MAX_LEVELS],
            stats: StatCounters::default(),
        };
        let oom = Error::OutOfMemory { at: Gpa(0) };
        if F::SHARED_INVALID_TABLES {
            // Bottom-up: the invalid table of level l holds none(l), which points at the invalid
            // table of level l-1.
            for level in 0..F::LEVELS - 1 {
                let pa = t.alloc.alloc_table(F::TABLE_SIZE).ok_or(oom)?;
                t.fill(pa, t.none[level]);
                t.invalid[level] = Some(pa);
                t.none[level + 1] = t.format.table_entry(pa);
            }
        }
        t.root = t.alloc.alloc_table(F::TABLE_SIZE).ok_or(oom)?;
        t.fill(t.root, t.none[F::LEVELS - 1]);
        t.stats.add_tables(1);
        Ok(t)
    }

    /// Physical address of the root table: what goes into the EPTP or `PGDL`.
    pub fn root(&self) -> Hpa {
        self.root
    }

    /// The format.
    pub fn format(&self) -> &F {
        &self.format
    }

    /// The table-page allocator.
    pub fn allocator(&self) -> &A {
        &self.alloc
    }

    /// The TLB backend.
    pub fn tlb(&self) -> &T {
        &self.tlb
    }

    /// The mirror.
    pub fn mirror(&self) -> &M {
        &self.mirror
    }

    /// First guest-physical address the table cannot translate.
    pub fn gpa_limit(&self) -> Gpa {
        Gpa(1u64 << F::GPA_BITS)
    }

    /// Base page size in bytes.
    pub fn page_size(&self) -> u64 {
        1 << F::PAGE_SHIFT
    }

    /// The shared invalid tables (LoongArch): counted apart from `stats().tables`.
    pub fn invalid_tables(&self) -> usize {
        self.invalid.iter().flatten().count()
    }

    /// What the table holds now.
    pub fn stats(&self) -> TableStats {
        self.stats.snapshot()
    }

    /// Issue the batch's flush (one call to the backend, whatever it covers), then free the table
    /// pages it carries. Returns the flush that was issued.
    pub fn commit(&self, mut batch: FlushBatch) -> Flush {
        let (flush, frees) = batch.take();
        if !flush.is_none() {
            self.tlb.flush(flush);
        }
        for pa in frees {
            // SAFETY: only exclusive operations put pages in a batch, after unlinking them, so no
            // software walker can reach them now, and the flush above removed them from every
            // hardware walker's caches.
            unsafe { self.alloc.free_table(pa, F::TABLE_SIZE) };
            if M::ENABLED {
                self.mirror.on_free_table(pa);
            }
        }
        flush
    }

    /// The translation of `gpa`, if mapped.
    pub fn translate(&self, gpa: Gpa) -> Option<Translation> {
        self.walk(gpa).leaf
    }

    /// Walk the table for `gpa`, recording each entry seen.
    pub fn walk(&self, gpa: Gpa) -> Walk {
        let mut w = Walk {
            entries: [0; MAX_LEVELS],
            last_level: F::LEVELS - 1,
            leaf: None,
        };
        if gpa >= self.gpa_limit() {
            return w;
        }
        let mut table = self.root;
        let mut level = F::LEVELS - 1;
        loop {
            let e = &self.entries(table)[Self::index(gpa.as_u64(), level)];
            let v = e.load(Ordering::Acquire);
            w.entries[level] = v;
            w.last_level = level;
            match self.classify(v, level) {
                Slot::Empty => return w,
                // An install is publishing this entry; its owner finishes in a few instructions.
                Slot::Frozen => core::hint::spin_loop(),
                Slot::Leaf => {
                    let off = gpa.as_u64() & (F::level_size(level) - 1);
                    let hpa = Hpa(self.format.leaf_hpa(v, level).as_u64() + off);
                    let attrs = self.format.leaf_attrs(v, level);
                    w.leaf = Some(Translation { hpa, level, attrs });
                    return w;
                }
                Slot::Table => {
                    table = self.format.table_hpa(v);
                    level -= 1;
                }
            }
        }
    }

    // ---- internals shared by the operation modules ----

    #[inline(always)]
    pub(crate) fn index(gpa: u64, level: usize) -> usize {
        ((gpa >> F::shift(level)) as usize) & (F::ENTRIES - 1)
    }

    /// The entries of the table page at `pa`.
    #[inline(always)]
    pub(crate) fn entries(&self, pa: Hpa) -> &[AtomicU64] {
        let p = self.alloc.phys_to_virt(pa) as *const AtomicU64;
        // SAFETY: `pa` is a table page of this table (the root, a shared invalid table, or a page
        // reached through a table entry or just allocated by the caller). `FrameAllocator`
        // guarantees it is `TABLE_SIZE` bytes, aligned, and ours until freed; pages are freed only
        // by `commit` after they became unreachable, by teardown under `&mut self`, or — never
        // published ones — by their builder, so the page outlives this borrow of `self`.
        unsafe { core::slice::from_raw_parts(p, F::ENTRIES) }
    }

    #[inline(always)]
    pub(crate) fn classify(&self, v: u64, level: usize) -> Slot {
        if v == self.none[level] {
            Slot::Empty
        } else if self.format.is_leaf(v, level) {
            Slot::Leaf
        } else if self.format.is_frozen(v) {
            Slot::Frozen
        } else if level == 0 {
            Slot::Empty
        } else {
            Slot::Table
        }
    }

    #[inline(always)]
    pub(crate) fn none(&self, level: usize) -> u64 {
        self.none[level]
    }

    fn fill(&self, pa: Hpa, value: u64) {
        for e in self.entries(pa) {
            e.store(value, Ordering::Relaxed);
        }
    }

    /// A fresh table page for entries of `level`, every entry empty.
    pub(crate) fn new_table(&self, level: usize) -> Option<Hpa> {
        let pa = self.alloc.alloc_table(F::TABLE_SIZE)?;
        self.fill(pa, self.none[level]);
        Some(pa)
    }

    /// A fresh page whose entries the caller writes in full.
    pub(crate) fn new_table_unfilled(&self) -> Option<Hpa> {
        self.alloc.alloc_table(F::TABLE_SIZE)
    }

    /// Free a subtree that was never published (no walker ever saw it).
    pub(crate) fn free_unpublished(&self, pa: Hpa, level: usize) {
        if level > 0 {
            for e in self.entries(pa) {
                let v = e.load(Ordering::Relaxed);
                if self.classify(v, level) == Slot::Table {
                    self.free_unpublished(self.format.table_hpa(v), level - 1);
                }
            }
        }
        // SAFETY: the subtree was built by the caller and never linked into the table, so nothing
        // else references it.
        unsafe { self.alloc.free_table(pa, F::TABLE_SIZE) };
    }

    /// Check a range: base-page aligned and below the address limit.
    pub(crate) fn check_range(&self, r: &GpaRange) -> Result<()> {
        let page = 1u64 << F::PAGE_SHIFT;
        if !r.start.is_aligned(page) {
            return Err(Error::Misaligned { gpa: r.start });
        }
        if !r.end.is_aligned(page) {
            return Err(Error::Misaligned { gpa: r.end });
        }
        if r.end > self.gpa_limit() {
            return Err(Error::OutOfRange {
                end: r.end,
                limit: self.gpa_limit(),
            });
        }
        Ok(())
    }

    /// Span `[start, end)` of the table page at `level` that contains `gpa`.
    #[inline(always)]
    pub(crate) fn table_span(gpa: u64, level: usize) -> (u64, u64) {
        let span = F::level_size(level) << F::BITS_PER_LEVEL;
        let base = gpa & !(span - 1);
        (base, base + span)
    }
}

impl<F: PteFormat, A: FrameAllocator, T: TlbFlush, M: MirrorHook> Drop
    for StageTwoTable<F, A, T, M>
{
    fn drop(&mut self) {
        let mut batch = FlushBatch::new();
        let all = GpaRange {
            start: Gpa(0),
            end: self.gpa_limit(),
        };
        // A whole-space unmap never splits, so it needs no allocation and cannot fail.
        let _ = self.unmap_inner(all, UnmapMode::FreeTables, &mut batch, None);
        batch.add(Flush::All);
        let _ = self.commit(batch);
        // SAFETY: the tree is empty and the flush above dropped every cached walk through the
        // root and the invalid tables; `&mut self` excludes software walkers.
        unsafe { self.alloc.free_table(self.root, F::TABLE_SIZE) };
        for pa in self.invalid.iter().flatten() {
            // SAFETY: as above; nothing points at the invalid tables any more.
            unsafe { self.alloc.free_table(*pa, F::TABLE_SIZE) };
        }
    }
}
