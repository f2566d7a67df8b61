//! The `PteFormat` trait: how one architecture encodes stage-2 entries, level by level.
//!
//! Formats: Intel EPT (`ept`), AMD nested paging (`npt`), LoongArch LVZ GPA tables (`loongarch`).
//!
//! The table engine never looks at a bit directly; it asks the format. The format is also where the
//! architecture's choice of young/dirty tracking lives: EPT with A/D enabled lets the hardware set
//! accessed and dirty bits, while LoongArch (and EPT without A/D) removes a permission and restores
//! it when the guest faults. The engine only ever calls `mkold`, `mkclean` and `fast_fix`, so both
//! strategies run through the same walk.
//!
//! Levels follow the crate convention: level 0 holds base pages, the root is `LEVELS - 1`.

pub mod ept;
pub mod loongarch;
pub mod npt;

use crate::addr::Hpa;
use crate::attrs::{Access, LeafAttrs, MemType, Perms};

/// Upper bound on `PteFormat::LEVELS`, for fixed-size per-level arrays.
pub const MAX_LEVELS: usize = 5;

/// Errors a format reports when asked to encode something it cannot express.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FormatError {
    /// The memory type has no encoding in this format.
    UnsupportedMemType(MemType),
    /// The permission combination is illegal (e.g. EPT write without read) or empty.
    UnsupportedPerms(Perms),
    /// The level cannot hold a leaf.
    NotALeafLevel(usize),
}

/// Result alias for format operations.
pub type Result<T> = core::result::Result<T, FormatError>;

/// How one architecture encodes stage-2 entries.
///
/// Contract the engine relies on:
/// * a leaf is `leaf_template(level, attrs) | hpa` for an `hpa` aligned to the level's page size
///   (the address field is a plain OR, so bulk fills add an increment per entry);
/// * `frozen`, `table_entry` and every leaf differ from the level's `none` value, and `is_frozen`
///   recognises only frozen values;
/// * tracking transforms (`mkold`, `mkclean`, `write_protect`, `fast_fix`) keep the address.
pub trait PteFormat: Send + Sync {
    /// Short name for reports.
    const NAME: &'static str;
    /// log2 of the base page size; a table page is one base page of 8-byte entries.
    const PAGE_SHIFT: u32;
    /// Number of levels; the root is `LEVELS - 1`.
    const LEVELS: usize;
    /// Highest level that may hold a leaf.
    const MAX_LEAF_LEVEL: usize;
    /// Empty directory entries point at a shared all-invalid table instead of holding 0, because
    /// the hardware walker follows directory entries without checking them (LoongArch `lddir`).
    const SHARED_INVALID_TABLES: bool;
    /// The TLB caches non-present entries, so installs and fixed faults need a flush of the page.
    const CACHES_NONPRESENT: bool;
    /// Replacing a huge leaf with a table of equal translations still needs a flush (LoongArch:
    /// a huge and a small TLB entry for one address may otherwise both hit).
    const SPLIT_NEEDS_FLUSH: bool;

    /// Index bits per level.
    const BITS_PER_LEVEL: u32 = Self::PAGE_SHIFT - 3;
    /// Bytes per table page.
    const TABLE_SIZE: usize = 1 << Self::PAGE_SHIFT;
    /// Entries per table page.
    const ENTRIES: usize = 1 << (Self::PAGE_SHIFT - 3);
    /// Bits of guest-physical address the table translates.
    const GPA_BITS: u32 = Self::PAGE_SHIFT + Self::LEVELS as u32 * (Self::PAGE_SHIFT - 3);

    /// log2 of the bytes one entry at `level` covers.
    #[inline(always)]
    fn shift(level: usize) -> u32 {
        Self::PAGE_SHIFT + level as u32 * Self::BITS_PER_LEVEL
    }

    /// Bytes one entry at `level` covers.
    #[inline(always)]
    fn level_size(level: usize) -> u64 {
        1u64 << Self::shift(level)
    }

    /// The value that marks an entry as being changed by another thread. `none` is the level's
    /// empty value, which a LoongArch directory frozen entry must still point at.
    fn frozen(&self, none: u64) -> u64;
    /// Whether `e` is a frozen value.
    fn is_frozen(&self, e: u64) -> bool;
    /// Whether `e` (known not to be `none` or frozen) is a present leaf at `level`.
    fn is_leaf(&self, e: u64, level: usize) -> bool;

    /// A directory entry pointing at the table page `child`.
    fn table_entry(&self, child: Hpa) -> u64;
    /// The table page a directory entry points at.
    fn table_hpa(&self, e: u64) -> Hpa;

    /// A leaf at `level` with `attrs` and address 0; OR in the host address.
    fn leaf_template(&self, level: usize, attrs: &LeafAttrs) -> Result<u64>;
    /// The host address a leaf at `level` maps (page-aligned for that level).
    fn leaf_hpa(&self, e: u64, level: usize) -> Hpa;
    /// The attributes of a leaf, tracking state included.
    fn leaf_attrs(&self, e: u64, level: usize) -> LeafAttrs;

    /// Accessed since the last `mkold`.
    fn is_young(&self, e: u64) -> bool;
    /// The leaf made old (hardware A cleared, or access removed until the next fault).
    fn mkold(&self, e: u64) -> u64;
    /// Written since the last `mkclean`.
    fn is_dirty(&self, e: u64) -> bool;
    /// The leaf made clean (hardware D cleared, or write access removed until the next fault).
    fn mkclean(&self, e: u64) -> u64;
    /// Whether the leaf may be written at all (the software "writable" permission).
    fn is_writable(&self, e: u64) -> bool;
    /// The leaf with write permission revoked; dirtiness is kept so no dirty page is lost.
    fn write_protect(&self, e: u64) -> u64;
    /// The fix for a fault of kind `access` on leaf `e`: the value with the access allowed and the
    /// leaf young (and dirty for a write), or `None` when only the slow path can help.
    fn fast_fix(&self, e: u64, access: Access) -> Option<u64>;
    /// Whether the hardware may change `e` by itself (setting A or D), so that retiring it needs
    /// an atomic exchange rather than a load and a store.
    fn hw_may_modify(&self, e: u64) -> bool;
}

/// A young leaf of `F` with attributes `attrs` at `hpa`, for tests and tools.
pub fn make_leaf<F: PteFormat>(f: &F, hpa: Hpa, level: usize, attrs: &LeafAttrs) -> Result<u64> {
    Ok(f.leaf_template(level, attrs)? | hpa.as_u64())
}
