//! Read-only enumeration of a table: its leaves and its table pages.
//!
//! For dumps, leak checks and the tests' reference-model comparison. Shared mode; under
//! concurrent changes the result is a mix of before and after, entry by entry.

use core::sync::atomic::Ordering;

use super::{Slot, StageTwoTable, Translation};
use crate::addr::{Gpa, GpaRange, Hpa};
use crate::attrs::{MemType, Perms};
use crate::flush::TlbFlush;
use crate::format::PteFormat;
use crate::frame::FrameAllocator;
use crate::mirror::MirrorHook;

impl<F: PteFormat, A: FrameAllocator, T: TlbFlush, M: MirrorHook> StageTwoTable<F, A, T, M> {
    /// Call `f(leaf_start, translation_of_leaf_start)` for every present leaf overlapping `range`.
    pub fn for_each_leaf(&self, range: GpaRange, mut f: impl FnMut(Gpa, Translation)) {
        if range.is_empty() || range.start >= self.gpa_limit() {
            return;
        }
        let end = range.end.min(self.gpa_limit());
        let fmt = &self.format;
        self.visit_leaves(
            F::LEVELS - 1,
            self.root,
            0,
            range.start.as_u64(),
            end.as_u64(),
            &|_| true,
            &mut |level, _e, v, slot| {
                let t = Translation {
                    hpa: fmt.leaf_hpa(v, level),
                    level,
                    attrs: fmt.leaf_attrs(v, level),
                };
                f(Gpa(slot), t);
                super::track::Visit::Next
            },
        );
    }

    /// Call `f(page, level_of_its_entries)` for every table page reachable from the root, the root
    /// included (the shared invalid tables are not).
    pub fn for_each_table(&self, mut f: impl FnMut(Hpa, usize)) {
        self.tables_below(self.root, F::LEVELS - 1, &mut f);
    }

    fn tables_below(&self, pa: Hpa, level: usize, f: &mut impl FnMut(Hpa, usize)) {
        f(pa, level);
        if level == 0 {
            return;
        }
        for e in self.entries(pa) {
            let v = e.load(Ordering::Acquire);
            if self.classify(v, level) == Slot::Table {
                self.tables_below(self.format.table_hpa(v), level - 1, f);
            }
        }
    }

    /// The shared all-invalid table pages (LoongArch), for leak accounting.
    pub fn for_each_invalid_table(&self, mut f: impl FnMut(Hpa)) {
        for pa in self.invalid.iter().flatten() {
            f(*pa);
        }
    }

    /// The host address behind `range.start` when every byte of `range` is mapped, with at
    /// least `need` permissions and memory type `mem`, to one contiguous run of host memory:
    /// what the hypervisor may touch on the guest's behalf as plain bytes. `None` if any page is
    /// absent, lacks a permission, has another type, or breaks the run (an empty range asks only
    /// about its start). Shared mode: a concurrent unmap can still happen after the answer, as
    /// with [`StageTwoTable::translate`].
    pub fn translate_range(&self, range: GpaRange, need: Perms, mem: MemType) -> Option<Hpa> {
        let usable = |t: &Translation| t.attrs.perms.contains(need) && t.attrs.mem == mem;
        let first = self.translate(range.start).filter(usable)?;
        let mut gpa = range.start.as_u64();
        loop {
            let t = self.translate(Gpa(gpa)).filter(usable)?;
            if t.hpa.as_u64() != first.hpa.as_u64() + (gpa - range.start.as_u64()) {
                return None;
            }
            // The rest of this leaf is mapped the same way.
            let size = F::level_size(t.level);
            let next = (gpa & !(size - 1)).checked_add(size)?;
            if next >= range.end.as_u64() {
                return Some(first.hpa);
            }
            gpa = next;
        }
    }
}
