//! The mirror hook: a second translation structure (e.g. an IOMMU) kept in lockstep.
//!
//! The hook is told in terms of guest ranges, not entries, so a mirror with a different page
//! granularity stays correct: an install of `[gpa, gpa + size)` at `hpa`, the removal of a range
//! (possibly part of an earlier install, when an unmap splits a huge page), and the release of each
//! table page after its flush. Splitting and collapsing change no translation and are not reported.
//!
//! Installs follow the frozen-entry protocol: the primary entry is frozen while the hook runs, then
//! published if the hook accepts or restored if it refuses, so no walker ever sees a translation
//! the mirror does not have. Devices cannot take and retry stage-2 faults, so ranges the mirror
//! pins are never aged or write-protected by removing permissions (they are reported as young and
//! dirty instead).

use crate::addr::{Gpa, GpaRange, Hpa};
use crate::attrs::LeafAttrs;

/// Why a mirror refused an install.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MirrorError {
    /// Temporarily unable (e.g. out of its own table pages); the caller may retry.
    Busy,
    /// Refused for good (e.g. the range is outside what the device may reach).
    Refused,
}

/// Result alias for mirror hooks.
pub type Result<T> = core::result::Result<T, MirrorError>;

/// A second table kept in lockstep with the primary.
pub trait MirrorHook: Sync {
    /// Whether the hook is real; `NoMirror` sets this to `false` so the fast paths compile without
    /// any hook call.
    const ENABLED: bool = true;

    /// `[gpa, gpa + size)` is about to map to `hpa` with `attrs`. Runs with the primary entry
    /// frozen; an error leaves the primary unchanged.
    fn on_install(&self, gpa: Gpa, size: u64, hpa: Hpa, attrs: &LeafAttrs) -> Result<()>;

    /// `range` no longer maps anything in the primary (the flush is still pending in the batch).
    fn on_remove(&self, range: GpaRange);

    /// A primary table page was freed after its flush.
    fn on_free_table(&self, pa: Hpa) {
        let _ = pa;
    }

    /// Whether any page of `range` is pinned for device access.
    fn pins(&self, range: GpaRange) -> bool {
        let _ = range;
        false
    }
}

/// The absent mirror.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoMirror;

impl MirrorHook for NoMirror {
    const ENABLED: bool = false;

    fn on_install(&self, _gpa: Gpa, _size: u64, _hpa: Hpa, _attrs: &LeafAttrs) -> Result<()> {
        Ok(())
    }

    fn on_remove(&self, _range: GpaRange) {}
}
