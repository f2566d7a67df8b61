//! Intel EPT, 4-level (48-bit guest-physical), with 4 KiB, 2 MiB and 1 GiB leaves.
//!
//! Layout (SDM Vol. 3C, "EPT paging structures"): R/W/X in bits 0–2, memory type 3–5, ignore-PAT 6,
//! large page 7, accessed 8 and dirty 9 when the EPTP enables A/D. Software bits follow KVM's
//! allocation: bit 11 is "present to the MMU" (an access-tracked leaf is present but has no RWX),
//! bit 53 marks an access-tracked leaf, bits 54/56 save R/X while tracked, bit 58 says the page may
//! be written. With A/D disabled, bits 8 and 9 are ignored by the CPU; bit 9 then becomes the
//! software dirty bit and W is granted only on a write fault, so dirtiness is tracked by
//! write-protection. A non-present entry is 0: this engine does not use #VE, so bit 63
//! (suppress-#VE) need not be set.

use super::{FormatError, PteFormat, Result};
use crate::addr::Hpa;
use crate::attrs::{Access, LeafAttrs, MemType, Perms};

const R: u64 = 1 << 0;
const W: u64 = 1 << 1;
const X: u64 = 1 << 2;
const RWX: u64 = R | W | X;
const MT_SHIFT: u32 = 3;
const MT_MASK: u64 = 7 << MT_SHIFT;
const IPAT: u64 = 1 << 6;
const PS: u64 = 1 << 7;
const A: u64 = 1 << 8;
const D: u64 = 1 << 9;
const PRESENT: u64 = 1 << 11;
const TRACKED: u64 = 1 << 53;
const SAVED_R: u64 = 1 << 54;
const SAVED_X: u64 = 1 << 56;
const SW_WRITABLE: u64 = 1 << 58;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// The frozen value: no RWX, no address, not MMU-present, no A/D bits (the 2024 proposal).
const FROZEN: u64 = 0x498;

/// Runtime choices for the EPT encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EptConfig {
    /// Accessed/dirty bits enabled in the EPTP (bit 6): young and dirty come from the hardware.
    pub ad: bool,
    /// Set ignore-PAT on write-back leaves, so guest PAT cannot make RAM uncached.
    pub ipat_for_wb: bool,
    /// The CPU supports execute-only leaves (IA32_VMX_EPT_VPID_CAP bit 0).
    pub exec_only: bool,
}

impl Default for EptConfig {
    fn default() -> Self {
        Self {
            ad: true,
            ipat_for_wb: true,
            exec_only: false,
        }
    }
}

/// The EPT encoding.
#[derive(Clone, Copy, Debug)]
pub struct Ept {
    cfg: EptConfig,
    /// `is_young(e)` is `e & young_mask == young_want`: A set with A/D, not tracked without.
    /// Kept as data so range scans test it without a branch on the configuration.
    young_mask: u64,
    young_want: u64,
}

impl Default for Ept {
    fn default() -> Self {
        Self::new(EptConfig::default())
    }
}

impl Ept {
    /// An encoding with `cfg`.
    pub const fn new(cfg: EptConfig) -> Self {
        let (young_mask, young_want) = if cfg.ad { (A, A) } else { (TRACKED, 0) };
        Self {
            cfg,
            young_mask,
            young_want,
        }
    }

    /// The configuration.
    pub const fn config(&self) -> EptConfig {
        self.cfg
    }

    /// The EPTP value for a table rooted at `root`, with A/D as configured.
    pub fn eptp(&self, root: Hpa) -> u64 {
        Eptp::new(root).with_ad(self.cfg.ad).value()
    }

    fn mem_bits(&self, mem: MemType) -> u64 {
        let mt = match mem {
            MemType::Uncached => 0,
            MemType::WriteCombining => 1,
            MemType::WriteThrough => 4,
            MemType::WriteProtect => 5,
            MemType::WriteBack => 6,
        };
        let ipat = if mem == MemType::WriteBack && self.cfg.ipat_for_wb {
            IPAT
        } else {
            0
        };
        (mt << MT_SHIFT) | ipat
    }

    /// Start access tracking (A/D disabled): RWX removed, R/X saved. Out of line, so the A/D
    /// configuration's scans stay small.
    #[inline(never)]
    fn track(e: u64) -> u64 {
        if e & TRACKED != 0 {
            return e;
        }
        let mut n = (e & !RWX) | TRACKED;
        if e & R != 0 {
            n |= SAVED_R;
        }
        if e & X != 0 {
            n |= SAVED_X;
        }
        n
    }

    /// Undo access tracking: the R/X saved at `mkold` come back; W only if already dirty, so the
    /// first write after a clean still faults and is logged.
    #[inline]
    fn untrack(e: u64) -> u64 {
        if e & TRACKED == 0 {
            return e;
        }
        let mut n = e & !(TRACKED | SAVED_R | SAVED_X);
        if e & SAVED_R != 0 {
            n |= R;
        }
        if e & SAVED_X != 0 {
            n |= X;
        }
        if e & D != 0 && e & SW_WRITABLE != 0 {
            n |= W;
        }
        n
    }
}

impl PteFormat for Ept {
    const NAME: &'static str = "ept";
    const PAGE_SHIFT: u32 = 12;
    const LEVELS: usize = 4;
    const MAX_LEAF_LEVEL: usize = 2;
    const SHARED_INVALID_TABLES: bool = false;
    const CACHES_NONPRESENT: bool = false;
    const SPLIT_NEEDS_FLUSH: bool = false;

    fn frozen(&self, _none: u64) -> u64 {
        FROZEN
    }

    #[inline(always)]
    fn is_frozen(&self, e: u64) -> bool {
        e == FROZEN
    }

    #[inline(always)]
    fn is_leaf(&self, e: u64, level: usize) -> bool {
        e & PRESENT != 0 && (level == 0 || e & PS != 0)
    }

    fn table_entry(&self, child: Hpa) -> u64 {
        // A/D of non-leaf entries are set by the CPU but never read by us.
        child.as_u64() | RWX | PRESENT
    }

    #[inline(always)]
    fn table_hpa(&self, e: u64) -> Hpa {
        Hpa(e & ADDR_MASK)
    }

    fn leaf_template(&self, level: usize, attrs: &LeafAttrs) -> Result<u64> {
        if level > Self::MAX_LEAF_LEVEL {
            return Err(FormatError::NotALeafLevel(level));
        }
        let p = attrs.perms;
        let legal = !(p == Perms::NONE
            || (p.contains(Perms::W) && !p.contains(Perms::R))
            || (p == Perms::X && !self.cfg.exec_only));
        if !legal {
            return Err(FormatError::UnsupportedPerms(p));
        }
        let mut e = PRESENT | self.mem_bits(attrs.mem);
        if level > 0 {
            e |= PS;
        }
        if p.contains(Perms::R) {
            e |= R;
        }
        if p.contains(Perms::X) {
            e |= X;
        }
        if p.contains(Perms::W) {
            e |= SW_WRITABLE;
        }
        if self.cfg.ad {
            if p.contains(Perms::W) {
                e |= W;
            }
            if attrs.young {
                e |= A;
            }
            if attrs.dirty {
                e |= D;
            }
        } else {
            if attrs.dirty {
                e |= D;
                if p.contains(Perms::W) {
                    e |= W;
                }
            }
            if !attrs.young {
                e = self.mkold(e);
            }
        }
        Ok(e)
    }

    #[inline(always)]
    fn leaf_hpa(&self, e: u64, level: usize) -> Hpa {
        Hpa(e & ADDR_MASK & !(Self::level_size(level) - 1))
    }

    fn leaf_attrs(&self, e: u64, _level: usize) -> LeafAttrs {
        let (r, x) = if e & TRACKED != 0 {
            (e & SAVED_R != 0, e & SAVED_X != 0)
        } else {
            (e & R != 0, e & X != 0)
        };
        let mut perms = Perms::NONE;
        if r {
            perms = perms | Perms::R;
        }
        if x {
            perms = perms | Perms::X;
        }
        if e & SW_WRITABLE != 0 {
            perms = perms | Perms::W;
        }
        let mem = match (e & MT_MASK) >> MT_SHIFT {
            0 => MemType::Uncached,
            1 => MemType::WriteCombining,
            4 => MemType::WriteThrough,
            5 => MemType::WriteProtect,
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
        e & self.young_mask == self.young_want
    }

    #[inline(always)]
    fn mkold(&self, e: u64) -> u64 {
        if self.cfg.ad {
            e & !A
        } else {
            Self::track(e)
        }
    }

    #[inline(always)]
    fn is_dirty(&self, e: u64) -> bool {
        e & D != 0
    }

    #[inline(always)]
    fn mkclean(&self, e: u64) -> u64 {
        if self.cfg.ad {
            e & !D
        } else {
            e & !(D | W)
        }
    }

    #[inline(always)]
    fn is_writable(&self, e: u64) -> bool {
        e & SW_WRITABLE != 0
    }

    #[inline(always)]
    fn write_protect(&self, e: u64) -> u64 {
        e & !(W | SW_WRITABLE)
    }

    #[inline]
    fn fast_fix(&self, e: u64, access: Access) -> Option<u64> {
        let attrs_r = if e & TRACKED != 0 {
            e & SAVED_R != 0
        } else {
            e & R != 0
        };
        let attrs_x = if e & TRACKED != 0 {
            e & SAVED_X != 0
        } else {
            e & X != 0
        };
        let allowed = match access {
            Access::Read => attrs_r,
            Access::Exec => attrs_x,
            Access::Write => e & SW_WRITABLE != 0,
        };
        if !allowed {
            return None;
        }
        if self.cfg.ad {
            let n = e | A;
            return Some(if access == Access::Write {
                n | W | D
            } else {
                n
            });
        }
        let n = Self::untrack(e);
        Some(if access == Access::Write {
            n | W | D
        } else {
            n
        })
    }

    #[inline(always)]
    fn hw_may_modify(&self, e: u64) -> bool {
        self.cfg.ad && (e & A == 0 || (e & W != 0 && e & D == 0))
    }
}

/// Builder for the EPT pointer loaded into the VMCS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Eptp {
    root: Hpa,
    walk_levels: u8,
    ad: bool,
    mem: MemType,
}

impl Eptp {
    /// A 4-level, write-back EPTP for `root`, A/D disabled.
    pub const fn new(root: Hpa) -> Self {
        Self {
            root,
            walk_levels: 4,
            ad: false,
            mem: MemType::WriteBack,
        }
    }

    /// Page-walk length in levels (4 or 5).
    pub const fn with_walk_levels(mut self, levels: u8) -> Self {
        self.walk_levels = levels;
        self
    }

    /// Enable or disable accessed/dirty flags (bit 6).
    pub const fn with_ad(mut self, ad: bool) -> Self {
        self.ad = ad;
        self
    }

    /// Memory type used for the paging structures themselves (UC or WB).
    pub const fn with_mem(mut self, mem: MemType) -> Self {
        self.mem = mem;
        self
    }

    /// The raw EPTP: memory type in 2:0, walk length − 1 in 5:3, A/D in 6, root in 51:12.
    pub fn value(&self) -> u64 {
        let mt = if self.mem == MemType::Uncached { 0 } else { 6 };
        let walk = u64::from(self.walk_levels.saturating_sub(1)) & 7;
        mt | (walk << 3) | (u64::from(self.ad) << 6) | (self.root.as_u64() & ADDR_MASK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eptp_layout() {
        let v = Eptp::new(Hpa(0x1234_5000)).with_ad(true).value();
        assert_eq!(v, 0x1234_5000 | 6 | (3 << 3) | (1 << 6));
        assert_eq!(
            Eptp::new(Hpa(0x1000)).with_walk_levels(5).value() & 0x38,
            4 << 3
        );
    }

    #[test]
    fn leaf_bits_with_ad() {
        let f = Ept::default();
        let e = f.leaf_template(1, &LeafAttrs::ram(Perms::RWX)).unwrap() | 0x20_0000;
        assert_eq!(
            e & (R | W | X | PS | A | PRESENT | IPAT),
            R | W | X | PS | A | PRESENT | IPAT
        );
        assert_eq!((e & MT_MASK) >> MT_SHIFT, 6);
        assert_eq!(f.leaf_hpa(e, 1), Hpa(0x20_0000));
        assert!(f.fast_fix(f.mkclean(e), Access::Write).unwrap() & D != 0);
        assert!(f.leaf_template(0, &LeafAttrs::ram(Perms::W)).is_err());
        assert!(f.leaf_template(3, &LeafAttrs::ram(Perms::R)).is_err());
    }

    #[test]
    fn access_tracking_without_ad_keeps_dirty() {
        let f = Ept::new(EptConfig {
            ad: false,
            ..EptConfig::default()
        });
        let mut attrs = LeafAttrs::ram(Perms::RWX);
        attrs.dirty = true;
        let e = f.leaf_template(0, &attrs).unwrap() | 0x5000;
        assert!(e & W != 0 && f.is_dirty(e));
        let old = f.mkold(e);
        assert_eq!(old & RWX, 0);
        assert!(!f.is_young(old) && f.is_dirty(old) && f.is_leaf(old, 0));
        assert_eq!(f.leaf_attrs(old, 0).perms, Perms::RWX);
        let back = f.fast_fix(old, Access::Read).unwrap();
        assert_eq!(back, e);
        let clean = f.mkclean(e);
        assert_eq!(clean & W, 0);
        assert_eq!(f.fast_fix(clean, Access::Write).unwrap(), e);
    }
}
