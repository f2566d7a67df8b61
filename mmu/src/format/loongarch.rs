//! LoongArch LVZ GPA table, as walked by the root-mode TLB refill (`lddir`/`ldpte`).
//!
//! Leaf bits (pgtable-bits.h, matching KVM): V 0, D 1, PLV 3:2 (always 0 here), MAT 5:4, huge 6 in
//! a directory-level leaf (bit 6 is G at level 0 and stays 0), software P 7 and W 8, software
//! MODIFIED 9, address from `PAGE_SHIFT` to 47, NR 61, NX 62, RPLV 63. Directory entries hold the
//! raw address of the next table. An empty directory entry points at a shared all-invalid table of
//! the next level (the engine allocates those), never 0, because the refill walker follows
//! directory entries blindly.
//!
//! There are no hardware A/D bits, so the format tracks them by permission, as KVM does: young is
//! V (cleared by `mkold`, set again by the fast fault path), dirty is D (the hardware write enable,
//! cleared by `mkclean` and set again on the page-modify exception while the software W bit allows
//! the write). `write_protect` clears D, so a page dirtied before it keeps that fact in MODIFIED.
//!
//! The frozen value sets bit 11 (unused by hardware and by KVM) on the level's empty value, so a
//! refill walker that meets a frozen directory entry still lands on an invalid table. Whether
//! `lddir` ignores bit 11 of a directory entry is to be verified on hardware; tables are aligned to
//! at least 4 KiB, so the bit lies below any table address.

use super::{FormatError, PteFormat, Result};
use crate::addr::Hpa;
use crate::attrs::{Access, LeafAttrs, MemType, Perms};

const V: u64 = 1 << 0;
const D: u64 = 1 << 1;
const MAT_SHIFT: u32 = 4;
const MAT_MASK: u64 = 3 << MAT_SHIFT;
const HUGE: u64 = 1 << 6;
const P: u64 = 1 << 7;
const W: u64 = 1 << 8;
const MODIFIED: u64 = 1 << 9;
const FROZEN_MARK: u64 = 1 << 11;
const NR: u64 = 1 << 61;
const NX: u64 = 1 << 62;
const PA_TOP: u64 = (1 << 48) - 1;

/// The LoongArch GPA-table encoding for base pages of `1 << SHIFT` bytes and `LEVELS` levels.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoongArch<const SHIFT: u32, const LEVELS: usize>;

/// The default geometry: 16 KiB base pages, 32 MiB huge leaves, 3 levels (47-bit GPA).
pub type LoongArch16K = LoongArch<14, 3>;
/// The optional geometry: 4 KiB base pages, 2 MiB huge leaves, 3 levels (39-bit GPA).
pub type LoongArch4K = LoongArch<12, 3>;

impl<const SHIFT: u32, const LEVELS: usize> LoongArch<SHIFT, LEVELS> {
    #[inline(always)]
    fn addr_mask(level: usize) -> u64 {
        PA_TOP & !(Self::level_size(level) - 1)
    }
}

impl<const SHIFT: u32, const LEVELS: usize> PteFormat for LoongArch<SHIFT, LEVELS> {
    const NAME: &'static str = if SHIFT == 14 { "la-16k" } else { "la-4k" };
    const PAGE_SHIFT: u32 = SHIFT;
    const LEVELS: usize = LEVELS;
    const MAX_LEAF_LEVEL: usize = 1;
    const SHARED_INVALID_TABLES: bool = true;
    const CACHES_NONPRESENT: bool = true;
    const SPLIT_NEEDS_FLUSH: bool = true;

    fn frozen(&self, none: u64) -> u64 {
        none | FROZEN_MARK
    }

    #[inline(always)]
    fn is_frozen(&self, e: u64) -> bool {
        e & (FROZEN_MARK | P) == FROZEN_MARK
    }

    #[inline(always)]
    fn is_leaf(&self, e: u64, level: usize) -> bool {
        e & P != 0 && (level == 0 || e & HUGE != 0)
    }

    fn table_entry(&self, child: Hpa) -> u64 {
        child.as_u64()
    }

    #[inline(always)]
    fn table_hpa(&self, e: u64) -> Hpa {
        Hpa(e & Self::addr_mask(0))
    }

    fn leaf_template(&self, level: usize, attrs: &LeafAttrs) -> Result<u64> {
        if level > Self::MAX_LEAF_LEVEL {
            return Err(FormatError::NotALeafLevel(level));
        }
        if attrs.perms == Perms::NONE {
            return Err(FormatError::UnsupportedPerms(attrs.perms));
        }
        let mat = match attrs.mem {
            MemType::Uncached => 0,
            MemType::WriteBack => 1,
            MemType::WriteCombining => 2,
            m => return Err(FormatError::UnsupportedMemType(m)),
        };
        let mut e = P | (mat << MAT_SHIFT);
        if level > 0 {
            e |= HUGE;
        }
        if !attrs.perms.contains(Perms::R) {
            e |= NR;
        }
        if !attrs.perms.contains(Perms::X) {
            e |= NX;
        }
        if attrs.perms.contains(Perms::W) {
            e |= W;
        }
        if attrs.young {
            e |= V;
        }
        if attrs.dirty {
            e |= if attrs.perms.contains(Perms::W) {
                D
            } else {
                MODIFIED
            };
        }
        Ok(e)
    }

    #[inline(always)]
    fn leaf_hpa(&self, e: u64, level: usize) -> Hpa {
        Hpa(e & Self::addr_mask(level))
    }

    fn leaf_attrs(&self, e: u64, _level: usize) -> LeafAttrs {
        let mut perms = Perms::NONE;
        if e & NR == 0 {
            perms = perms | Perms::R;
        }
        if e & NX == 0 {
            perms = perms | Perms::X;
        }
        if e & W != 0 {
            perms = perms | Perms::W;
        }
        let mem = match (e & MAT_MASK) >> MAT_SHIFT {
            0 => MemType::Uncached,
            2 => MemType::WriteCombining,
            _ => MemType::WriteBack,
        };
        LeafAttrs {
            perms,
            mem,
            young: self.is_young(e),
            dirty: self.is_dirty(e),
        }
    }

    #[inline(always)]
    fn is_young(&self, e: u64) -> bool {
        e & V != 0
    }

    #[inline(always)]
    fn mkold(&self, e: u64) -> u64 {
        e & !V
    }

    #[inline(always)]
    fn is_dirty(&self, e: u64) -> bool {
        e & (D | MODIFIED) != 0
    }

    #[inline(always)]
    fn mkclean(&self, e: u64) -> u64 {
        e & !(D | MODIFIED)
    }

    #[inline(always)]
    fn is_writable(&self, e: u64) -> bool {
        e & W != 0
    }

    #[inline(always)]
    fn write_protect(&self, e: u64) -> u64 {
        if e & D != 0 {
            (e & !(D | W)) | MODIFIED
        } else {
            e & !W
        }
    }

    #[inline]
    fn fast_fix(&self, e: u64, access: Access) -> Option<u64> {
        match access {
            Access::Read if e & NR == 0 => Some(e | V),
            Access::Exec if e & NX == 0 => Some(e | V),
            Access::Write if e & W != 0 => Some(e | V | D),
            _ => None,
        }
    }

    #[inline(always)]
    fn hw_may_modify(&self, _e: u64) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_machine() {
        let f = LoongArch16K::default();
        let mut attrs = LeafAttrs::ram(Perms::RWX);
        attrs.young = true;
        let e = f.leaf_template(0, &attrs).unwrap() | 0x4000;
        assert_eq!(
            e & (V | D | P | W | HUGE),
            V | P | W,
            "read-fault map is clean but writable"
        );
        assert_eq!(e & MAT_MASK, 1 << MAT_SHIFT);
        let old = f.mkold(e);
        assert_eq!(old & V, 0);
        assert_eq!(f.fast_fix(old, Access::Read), Some(e));
        let dirty = f.fast_fix(old, Access::Write).unwrap();
        assert!(f.is_dirty(dirty) && f.is_young(dirty));
        let wp = f.write_protect(dirty);
        assert!(f.is_dirty(wp) && wp & D == 0 && f.fast_fix(wp, Access::Write).is_none());
        assert!(!f.is_dirty(f.mkclean(wp)));
        let huge = f.leaf_template(1, &attrs).unwrap() | (32 << 20);
        assert!(f.is_leaf(huge, 1) && f.leaf_hpa(huge, 1) == Hpa(32 << 20));
        assert!(f
            .leaf_template(
                0,
                &LeafAttrs {
                    mem: MemType::WriteThrough,
                    ..attrs
                }
            )
            .is_err());
        assert!(f.is_frozen(f.frozen(0x8000)) && !f.is_frozen(0x8000));
    }
}
