//! AMD nested paging (NPT): the x86-64 long-mode page-table format, 4-level (48-bit
//! guest-physical), with 4 KiB, 2 MiB and 1 GiB leaves.
//!
//! Layout (AMD APM Vol. 2, "Long-mode page translation" and "Nested paging"): present 0,
//! read/write 1, user/supervisor 2, PWT 3, PCD 4, accessed 5, dirty 6 (leaves only), page size 7
//! (in levels 1 and 2: a 2 MiB or 1 GiB leaf; must be 0 in the root level), PAT 7 in a 4 KiB leaf
//! and 12 in a large one, available bits 9–11, address 12–51, no-execute 63.
//!
//! Every entry the engine writes has U=1, tables included: the processor performs nested walks as
//! user accesses, so a supervisor entry anywhere on the path faults. Table entries are P|RW|U and
//! leave the permission decision to the leaf.
//!
//! Permissions: a present leaf is always readable (there is no execute-only or write-only
//! encoding), W is RW, X is the absence of NX. NX needs `EFER.NXE` in the host at VMRUN; with
//! `NptConfig { nx: false }` bit 63 is never set (it would be reserved) and leaves without X are
//! refused rather than silently made executable.
//!
//! Memory type: the nested leaf's PAT/PCD/PWT select an entry of the *host* PAT MSR, which the
//! processor then combines with the guest's own type. This format relies only on the power-on PAT
//! layout of indices 0–3 (WB, WT, UC-, UC), which hypervisors leave alone: write-back is index 0
//! (no bits), write-through PWT (index 1), uncached PCD|PWT (index 3). The PAT bit itself is never
//! set, so its position (7 or 12) never matters. Write-combining and write-protect would need a
//! reprogrammed host PAT and are refused.
//!
//! Young and dirty come from the hardware accessed and dirty bits, which the processor sets in
//! nested leaves (measured under QEMU TCG: A on every level walked, D only on written leaves), as
//! EPT does with A/D enabled. Write permission the guest may get back after `write_protect` is
//! remembered in software bit 9; a frozen entry is not present and carries only software bit 11.
//! A non-present entry is 0.

use super::{FormatError, PteFormat, Result};
use crate::addr::Hpa;
use crate::attrs::{Access, LeafAttrs, MemType, Perms};

const P: u64 = 1 << 0;
const RW: u64 = 1 << 1;
const US: u64 = 1 << 2;
const PWT: u64 = 1 << 3;
const PCD: u64 = 1 << 4;
const A: u64 = 1 << 5;
const D: u64 = 1 << 6;
const PS: u64 = 1 << 7;
const SW_WRITABLE: u64 = 1 << 9;
const FROZEN: u64 = 1 << 11;
const NX: u64 = 1 << 63;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Runtime choices for the NPT encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NptConfig {
    /// The host runs with `EFER.NXE = 1`, so bit 63 is the no-execute bit in nested tables.
    pub nx: bool,
}

impl Default for NptConfig {
    fn default() -> Self {
        Self { nx: true }
    }
}

/// The AMD nested-paging encoding.
#[derive(Clone, Copy, Debug, Default)]
pub struct Npt {
    cfg: NptConfig,
}

impl Npt {
    /// An encoding with `cfg`.
    pub const fn new(cfg: NptConfig) -> Self {
        Self { cfg }
    }

    /// The configuration.
    pub const fn config(&self) -> NptConfig {
        self.cfg
    }

    /// The nested CR3 (VMCB `N_CR3`) for a table rooted at `root`: the root's physical address.
    /// PWT/PCD stay 0, so the walker reads the tables write-back.
    pub fn ncr3(&self, root: Hpa) -> u64 {
        ncr3(root)
    }
}

/// The nested CR3 (VMCB `N_CR3`) for a table rooted at `root`: the root's physical address, with
/// PWT/PCD clear (write-back table walks).
pub const fn ncr3(root: Hpa) -> u64 {
    root.0 & ADDR_MASK
}

impl PteFormat for Npt {
    const NAME: &'static str = "npt";
    const PAGE_SHIFT: u32 = 12;
    const LEVELS: usize = 4;
    const MAX_LEAF_LEVEL: usize = 2;
    const SHARED_INVALID_TABLES: bool = false;
    const CACHES_NONPRESENT: bool = false;
    // As for EPT: a split keeps every translation, so a stale huge TLB entry beside the new small
    // ones maps the same frames.
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
        e & P != 0 && (level == 0 || e & PS != 0)
    }

    fn table_entry(&self, child: Hpa) -> u64 {
        // The processor sets A in table entries; the engine never reads it.
        child.as_u64() | P | RW | US
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
        if !p.contains(Perms::R) || (!self.cfg.nx && !p.contains(Perms::X)) {
            return Err(FormatError::UnsupportedPerms(p));
        }
        let mut e = P
            | US
            | match attrs.mem {
                MemType::WriteBack => 0,
                MemType::WriteThrough => PWT,
                MemType::Uncached => PCD | PWT,
                m => return Err(FormatError::UnsupportedMemType(m)),
            };
        if level > 0 {
            e |= PS;
        }
        if p.contains(Perms::W) {
            e |= RW | SW_WRITABLE;
        }
        if !p.contains(Perms::X) {
            e |= NX;
        }
        if attrs.young {
            e |= A;
        }
        if attrs.dirty {
            e |= D;
        }
        Ok(e)
    }

    #[inline(always)]
    fn leaf_hpa(&self, e: u64, level: usize) -> Hpa {
        // For a large leaf the level mask also drops the PAT bit (12).
        Hpa(e & ADDR_MASK & !(Self::level_size(level) - 1))
    }

    fn leaf_attrs(&self, e: u64, _level: usize) -> LeafAttrs {
        let mut perms = Perms::R;
        if e & SW_WRITABLE != 0 {
            perms = perms | Perms::W;
        }
        if e & NX == 0 {
            perms = perms | Perms::X;
        }
        let mem = match e & (PCD | PWT) {
            0 => MemType::WriteBack,
            PWT => MemType::WriteThrough,
            _ => MemType::Uncached,
        };
        LeafAttrs {
            perms,
            mem,
            young: e & A != 0,
            dirty: e & D != 0,
        }
    }

    #[inline(always)]
    fn is_young(&self, e: u64) -> bool {
        e & A != 0
    }

    #[inline(always)]
    fn mkold(&self, e: u64) -> u64 {
        e & !A
    }

    #[inline(always)]
    fn is_dirty(&self, e: u64) -> bool {
        e & D != 0
    }

    #[inline(always)]
    fn mkclean(&self, e: u64) -> u64 {
        e & !D
    }

    #[inline(always)]
    fn is_writable(&self, e: u64) -> bool {
        e & SW_WRITABLE != 0
    }

    #[inline(always)]
    fn write_protect(&self, e: u64) -> u64 {
        e & !(RW | SW_WRITABLE)
    }

    #[inline]
    fn fast_fix(&self, e: u64, access: Access) -> Option<u64> {
        match access {
            Access::Read => Some(e | A),
            Access::Exec if e & NX == 0 => Some(e | A),
            Access::Write if e & SW_WRITABLE != 0 => Some(e | A | RW | D),
            _ => None,
        }
    }

    #[inline(always)]
    fn hw_may_modify(&self, e: u64) -> bool {
        e & A == 0 || (e & RW != 0 && e & D == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ncr3_is_the_root() {
        assert_eq!(ncr3(Hpa(0x1234_5000)), 0x1234_5000);
        assert_eq!(Npt::default().ncr3(Hpa(0xabc_d000)), 0xabc_d000);
    }

    #[test]
    fn leaf_and_table_bits() {
        let f = Npt::default();
        let t = f.table_entry(Hpa(0x7000));
        assert_eq!(t, 0x7000 | P | RW | US);
        assert!(!f.is_leaf(t, 1) && !f.is_frozen(t));

        let e = f.leaf_template(1, &LeafAttrs::ram(Perms::RWX)).unwrap() | 0x20_0000;
        assert_eq!(e, 0x20_0000 | P | RW | US | A | PS | SW_WRITABLE);
        assert!(f.is_leaf(e, 1) && f.leaf_hpa(e, 1) == Hpa(0x20_0000));
        let small = f.leaf_template(0, &LeafAttrs::ram(Perms::R)).unwrap() | 0x5000;
        assert_eq!(small, 0x5000 | P | US | A | NX);
        assert!(f.is_leaf(small, 0));

        let dev = LeafAttrs {
            mem: MemType::Uncached,
            ..LeafAttrs::ram(Perms::R | Perms::W)
        };
        let d = f.leaf_template(0, &dev).unwrap();
        assert_eq!(d & (PCD | PWT), PCD | PWT);
        assert_eq!(f.leaf_attrs(d, 0).mem, MemType::Uncached);
        assert_eq!(f.leaf_attrs(d, 0).perms, Perms::R | Perms::W);

        assert!(f.leaf_template(0, &LeafAttrs::ram(Perms::W)).is_err());
        assert!(f.leaf_template(0, &LeafAttrs::ram(Perms::X)).is_err());
        assert!(f.leaf_template(3, &LeafAttrs::ram(Perms::R)).is_err());
        let wc = LeafAttrs {
            mem: MemType::WriteCombining,
            ..LeafAttrs::ram(Perms::R)
        };
        assert!(f.leaf_template(0, &wc).is_err());
        let no_nx = Npt::new(NptConfig { nx: false });
        assert!(no_nx.leaf_template(0, &LeafAttrs::ram(Perms::R)).is_err());
        assert_eq!(
            no_nx.leaf_template(0, &LeafAttrs::ram(Perms::RWX)).unwrap() & NX,
            0
        );
    }

    #[test]
    fn tracking_by_hardware_bits() {
        let f = Npt::default();
        let e = f.leaf_template(0, &LeafAttrs::ram(Perms::RWX)).unwrap() | 0x9000;
        assert!(f.is_young(e) && !f.is_dirty(e) && f.hw_may_modify(e));
        let old = f.mkold(e);
        assert!(!f.is_young(old) && f.is_leaf(old, 0));
        assert_eq!(f.fast_fix(old, Access::Read), Some(e));
        let dirty = f.fast_fix(old, Access::Write).unwrap();
        assert!(f.is_dirty(dirty) && f.is_young(dirty) && !f.hw_may_modify(dirty));
        let wp = f.write_protect(dirty);
        assert!(f.is_dirty(wp) && wp & RW == 0 && !f.is_writable(wp));
        assert_eq!(f.fast_fix(wp, Access::Write), None);
        assert!(!f.is_dirty(f.mkclean(wp)));
        assert!(f.is_frozen(f.frozen(0)) && f.frozen(0) & P == 0);
    }
}
