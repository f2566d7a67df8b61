//! The stage-2 format both LoongArch backends use: `mmu`'s LoongArch GPA-table format with the
//! leaf PLV field set to 3. The deprivileged backend walks the GPA table as the partition's own
//! page table from PLV3, where a PLV0 leaf would raise a privilege fault on every access; under
//! LVZ the field of a GPA-table leaf is not checked for the guest's privilege (Linux KVM leaves 0
//! there), so PLV3 is harmless and one table serves both. Everything else is delegated.
//!
//! Also here: the page-walk geometry the refill handler's `lddir`/`ldpte` need for that format.

use mmu::{Access, Hpa, LeafAttrs, LoongArch16K, PteFormat};

/// Leaf PLV field (bits 3:2) = 3: reachable from every privilege level.
const PLV3: u64 = 3 << 2;

/// PWCL for 16 KiB pages, 3 levels: PT at bit 14 (11 bits), Dir1 at 25 (11 bits), 64-bit PTEs.
pub const PWCL_16K: u64 = 0x5e56e;
/// PWCH for 16 KiB pages, 3 levels: Dir3 at bit 36 (11 bits).
pub const PWCH_16K: u64 = 0x2e4;
/// The base page shift.
pub const PAGE_SHIFT_16K: u64 = 14;

/// `LoongArch16K` with PLV3 leaves.
#[derive(Clone, Copy, Debug, Default)]
pub struct GpaTable16K(LoongArch16K);

impl PteFormat for GpaTable16K {
    const NAME: &'static str = "la-16k-plv3";
    const PAGE_SHIFT: u32 = LoongArch16K::PAGE_SHIFT;
    const LEVELS: usize = LoongArch16K::LEVELS;
    const MAX_LEAF_LEVEL: usize = LoongArch16K::MAX_LEAF_LEVEL;
    const SHARED_INVALID_TABLES: bool = LoongArch16K::SHARED_INVALID_TABLES;
    const CACHES_NONPRESENT: bool = LoongArch16K::CACHES_NONPRESENT;
    const SPLIT_NEEDS_FLUSH: bool = LoongArch16K::SPLIT_NEEDS_FLUSH;

    fn frozen(&self, none: u64) -> u64 {
        self.0.frozen(none)
    }
    fn is_frozen(&self, e: u64) -> bool {
        self.0.is_frozen(e)
    }
    fn is_leaf(&self, e: u64, level: usize) -> bool {
        self.0.is_leaf(e, level)
    }
    fn table_entry(&self, child: Hpa) -> u64 {
        self.0.table_entry(child)
    }
    fn table_hpa(&self, e: u64) -> Hpa {
        self.0.table_hpa(e)
    }
    fn leaf_template(&self, level: usize, attrs: &LeafAttrs) -> mmu::format::Result<u64> {
        self.0.leaf_template(level, attrs).map(|e| e | PLV3)
    }
    fn leaf_hpa(&self, e: u64, level: usize) -> Hpa {
        self.0.leaf_hpa(e, level)
    }
    fn leaf_attrs(&self, e: u64, level: usize) -> LeafAttrs {
        self.0.leaf_attrs(e, level)
    }
    fn is_young(&self, e: u64) -> bool {
        self.0.is_young(e)
    }
    fn mkold(&self, e: u64) -> u64 {
        self.0.mkold(e)
    }
    fn is_dirty(&self, e: u64) -> bool {
        self.0.is_dirty(e)
    }
    fn mkclean(&self, e: u64) -> u64 {
        self.0.mkclean(e)
    }
    fn is_writable(&self, e: u64) -> bool {
        self.0.is_writable(e)
    }
    fn write_protect(&self, e: u64) -> u64 {
        self.0.write_protect(e)
    }
    fn fast_fix(&self, e: u64, access: Access) -> Option<u64> {
        self.0.fast_fix(e, access)
    }
    fn hw_may_modify(&self, e: u64) -> bool {
        self.0.hw_may_modify(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmu::{
        FlushBatch, Gpa, GpaRange, HeapFrameAllocator, HugePolicy, NoTlb, Perms, StageTwoTable,
    };

    #[test]
    fn leaves_are_plv3_and_track_like_the_base_format() {
        let t =
            StageTwoTable::new(GpaTable16K::default(), HeapFrameAllocator::new(), NoTlb).unwrap();
        let mut b = FlushBatch::new();
        let range = GpaRange {
            start: Gpa(0),
            end: Gpa(64 << 20),
        };
        t.map_range(
            range,
            Hpa(0x400_0000),
            LeafAttrs::ram(Perms::RWX),
            HugePolicy::LARGEST,
            &mut b,
        )
        .unwrap();
        let _ = t.commit(b);
        let w = t.walk(Gpa(0x12_3456));
        let leaf = w.entries[w.last_level];
        assert_eq!(leaf & (3 << 2), PLV3, "leaf {leaf:#x}");
        assert_eq!(w.leaf.unwrap().level, 1, "32 MiB huge leaf");
        assert_eq!(w.leaf.unwrap().hpa, Hpa(0x412_3456));
        // The walk geometry matches the format: 3 levels of 2^11 entries above 16 KiB pages.
        assert_eq!(PWCL_16K & 0x1f, PAGE_SHIFT_16K);
        assert_eq!((PWCL_16K >> 5) & 0x1f, 11);
        assert_eq!((PWCL_16K >> 10) & 0x1f, 25);
        assert_eq!(PWCH_16K & 0x3f, 36);
    }
}
