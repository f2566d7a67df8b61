//! The stage-2 entry format of x86 partitions, chosen at boot: Intel EPT under VMX, AMD nested
//! page tables under SVM. One image runs on both kinds of CPU, so the partition layer's single
//! `PartitionArch::Format` is this enum, and every `PteFormat` operation goes to the format the
//! CPU uses. Both are 4-level tables of 4 KiB pages with 2 MiB and 1 GiB leaves, so the
//! geometry constants are shared; only the encodings differ.

use super::backend::{self, Backend};
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

impl Default for X86Stage2 {
    fn default() -> Self {
        match backend::chosen() {
            Backend::Svm => Self::Npt(Npt::default()),
            Backend::Vmx | Backend::None => Self::Ept(Ept::default()),
        }
    }
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
