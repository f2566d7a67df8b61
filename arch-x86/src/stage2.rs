//! The stage-2 entry format of x86 partitions, chosen at boot: Intel EPT under VMX, AMD nested
//! page tables under SVM. One image runs on both kinds of CPU, so the partition engine's single
//! `PartitionArch::Format` is this enum (the image picks the variant for the CPU it found), and
//! every `PteFormat` operation goes to the format inside. Both are 4-level tables of 4 KiB pages
//! with 2 MiB and 1 GiB leaves, so the geometry constants are shared; only the encodings differ.

use mmu::format::Result;
use mmu::{Access, Ept, Hpa, LeafAttrs, Npt, PteFormat};

/// EPT or NPT, as the CPU needs.
#[derive(Clone, Copy, Debug)]
pub enum X86Stage2 {
    /// Intel EPT (A/D enabled).
    Ept(Ept),
    /// AMD nested paging.
    Npt(Npt),
}

impl X86Stage2 {
    /// The EPT pointer for a table rooted at `root` (VMX).
    pub fn eptp(&self, root: Hpa) -> u64 {
        match self {
            Self::Ept(f) => f.eptp(root),
            Self::Npt(_) => 0,
        }
    }

    /// The nested CR3 for a table rooted at `root` (SVM).
    pub fn ncr3(&self, root: Hpa) -> u64 {
        match self {
            Self::Ept(_) => 0,
            Self::Npt(f) => f.ncr3(root),
        }
    }
}

/// Calls the same method on whichever format is in use.
macro_rules! each {
    ($self:ident, $f:ident => $e:expr) => {
        match $self {
            X86Stage2::Ept($f) => $e,
            X86Stage2::Npt($f) => $e,
        }
    };
}

// The geometry both formats share; a mismatch would be a compile error here.
const _: () = {
    assert!(Ept::PAGE_SHIFT == Npt::PAGE_SHIFT && Ept::LEVELS == Npt::LEVELS);
    assert!(Ept::MAX_LEAF_LEVEL == Npt::MAX_LEAF_LEVEL);
    assert!(!Ept::SHARED_INVALID_TABLES && !Npt::SHARED_INVALID_TABLES);
    assert!(!Ept::CACHES_NONPRESENT && !Npt::CACHES_NONPRESENT);
    assert!(!Ept::SPLIT_NEEDS_FLUSH && !Npt::SPLIT_NEEDS_FLUSH);
};

impl PteFormat for X86Stage2 {
    const NAME: &'static str = "ept/npt";
    const PAGE_SHIFT: u32 = Ept::PAGE_SHIFT;
    const LEVELS: usize = Ept::LEVELS;
    const MAX_LEAF_LEVEL: usize = Ept::MAX_LEAF_LEVEL;
    const SHARED_INVALID_TABLES: bool = false;
    const CACHES_NONPRESENT: bool = false;
    const SPLIT_NEEDS_FLUSH: bool = false;

    fn frozen(&self, none: u64) -> u64 {
        each!(self, f => f.frozen(none))
    }
    #[inline(always)]
    fn is_frozen(&self, e: u64) -> bool {
        each!(self, f => f.is_frozen(e))
    }
    #[inline(always)]
    fn is_leaf(&self, e: u64, level: usize) -> bool {
        each!(self, f => f.is_leaf(e, level))
    }
    fn table_entry(&self, child: Hpa) -> u64 {
        each!(self, f => f.table_entry(child))
    }
    #[inline(always)]
    fn table_hpa(&self, e: u64) -> Hpa {
        each!(self, f => f.table_hpa(e))
    }
    fn leaf_template(&self, level: usize, attrs: &LeafAttrs) -> Result<u64> {
        each!(self, f => f.leaf_template(level, attrs))
    }
    #[inline(always)]
    fn leaf_hpa(&self, e: u64, level: usize) -> Hpa {
        each!(self, f => f.leaf_hpa(e, level))
    }
    fn leaf_attrs(&self, e: u64, level: usize) -> LeafAttrs {
        each!(self, f => f.leaf_attrs(e, level))
    }
    #[inline(always)]
    fn is_young(&self, e: u64) -> bool {
        each!(self, f => f.is_young(e))
    }
    #[inline(always)]
    fn mkold(&self, e: u64) -> u64 {
        each!(self, f => f.mkold(e))
    }
    #[inline(always)]
    fn is_dirty(&self, e: u64) -> bool {
        each!(self, f => f.is_dirty(e))
    }
    #[inline(always)]
    fn mkclean(&self, e: u64) -> u64 {
        each!(self, f => f.mkclean(e))
    }
    #[inline(always)]
    fn is_writable(&self, e: u64) -> bool {
        each!(self, f => f.is_writable(e))
    }
    #[inline(always)]
    fn write_protect(&self, e: u64) -> u64 {
        each!(self, f => f.write_protect(e))
    }
    #[inline]
    fn fast_fix(&self, e: u64, access: Access) -> Option<u64> {
        each!(self, f => f.fast_fix(e, access))
    }
    #[inline(always)]
    fn hw_may_modify(&self, e: u64) -> bool {
        each!(self, f => f.hw_may_modify(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmu::{MemType, Perms};

    /// Entries to try each operation on: leaves of every level and kind the formats make, their
    /// table entries, and scrambled words (a format must answer for any bit pattern).
    fn entries(f: &impl PteFormat) -> impl Iterator<Item = (u64, usize)> {
        let mut words = [0u64; 32];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for w in &mut words {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *w = x;
        }
        let mut made = alloc::vec::Vec::new();
        for level in 0..=Ept::MAX_LEAF_LEVEL {
            for perms in [
                Perms::R,
                Perms::R | Perms::W,
                Perms::R | Perms::W | Perms::X,
            ] {
                for mem in [MemType::WriteBack, MemType::Uncached] {
                    let mut a = LeafAttrs::ram(perms);
                    a.mem = mem;
                    a.dirty = perms.contains(Perms::W);
                    if let Ok(t) = f.leaf_template(level, &a) {
                        made.push((t | 0x4020_0000, level));
                    }
                }
            }
        }
        made.push((f.table_entry(Hpa(0x1234_5000)), 1));
        made.extend(words.iter().map(|&w| (w, 0)));
        made.into_iter()
    }

    /// Every operation of `both` (the enum) answers as `inner` (the format inside) does.
    fn same_as<F: PteFormat>(both: &X86Stage2, inner: &F) {
        for (e, level) in entries(inner) {
            assert_eq!(both.frozen(e), inner.frozen(e));
            assert_eq!(both.is_frozen(e), inner.is_frozen(e));
            assert_eq!(both.is_leaf(e, level), inner.is_leaf(e, level));
            assert_eq!(both.table_hpa(e), inner.table_hpa(e));
            assert_eq!(both.leaf_hpa(e, level), inner.leaf_hpa(e, level));
            assert_eq!(both.leaf_attrs(e, level), inner.leaf_attrs(e, level));
            assert_eq!(both.is_young(e), inner.is_young(e));
            assert_eq!(both.mkold(e), inner.mkold(e));
            assert_eq!(both.is_dirty(e), inner.is_dirty(e));
            assert_eq!(both.mkclean(e), inner.mkclean(e));
            assert_eq!(both.is_writable(e), inner.is_writable(e));
            assert_eq!(both.write_protect(e), inner.write_protect(e));
            assert_eq!(both.hw_may_modify(e), inner.hw_may_modify(e));
            for access in [Access::Read, Access::Write, Access::Exec] {
                assert_eq!(both.fast_fix(e, access), inner.fast_fix(e, access));
            }
        }
        assert_eq!(
            both.table_entry(Hpa(0x7000)),
            inner.table_entry(Hpa(0x7000))
        );
        let a = LeafAttrs::ram(Perms::R | Perms::X);
        for level in 0..=Ept::MAX_LEAF_LEVEL {
            assert_eq!(
                both.leaf_template(level, &a).ok(),
                inner.leaf_template(level, &a).ok()
            );
        }
    }

    #[test]
    fn each_variant_is_its_format() {
        let (ept, npt) = (Ept::default(), Npt::default());
        same_as(&X86Stage2::Ept(ept), &ept);
        same_as(&X86Stage2::Npt(npt), &npt);
        // And the two differ, so the comparison above can tell them apart.
        let a = LeafAttrs::ram(Perms::R | Perms::W);
        assert_ne!(ept.leaf_template(0, &a).ok(), npt.leaf_template(0, &a).ok());
    }

    #[test]
    fn each_backend_gets_its_root_pointer() {
        let root = Hpa(0x12_3000);
        let (ept, npt) = (Ept::default(), Npt::default());
        assert_eq!(X86Stage2::Ept(ept).eptp(root), ept.eptp(root));
        assert_eq!(X86Stage2::Ept(ept).ncr3(root), 0);
        assert_eq!(X86Stage2::Npt(npt).ncr3(root), npt.ncr3(root));
        assert_eq!(X86Stage2::Npt(npt).eptp(root), 0);
    }
}
