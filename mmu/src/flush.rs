//! TLB-flush descriptors, their batching, and the backend trait the architectures implement.
//!
//! Flushes, not PTE bytes, dominate the cost of range operations once they flush more than about
//! once per 10–100 MiB (a remote flush is 1–100 µs). So every mutating call only *describes* what
//! must be flushed, in a `FlushBatch` that merges across calls and is committed once. The batch
//! also carries the table pages unlinked by the calls: they are freed only after the flush that
//! covers them has completed, because until then a hardware walker may still use them.

use alloc::vec::Vec;

use crate::addr::{Gpa, Hpa};

/// What has to be invalidated.
#[must_use = "a flush that is dropped leaves stale translations in the TLB"]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Flush {
    /// Nothing.
    #[default]
    None,
    /// The guest-physical range `[start, end)`.
    Range {
        /// First address.
        start: Gpa,
        /// First address past the range.
        end: Gpa,
    },
    /// Every translation of the table.
    All,
}

impl Flush {
    /// A flush of `[start, end)`, or `None` if it is empty.
    pub fn range(start: Gpa, end: Gpa) -> Flush {
        if end > start {
            Flush::Range { start, end }
        } else {
            Flush::None
        }
    }

    /// The smallest descriptor covering both; a merged range larger than `threshold` bytes
    /// becomes `All`, because past that point one full flush is cheaper than many page flushes.
    pub fn merge(self, other: Flush, threshold: u64) -> Flush {
        match (self, other) {
            (Flush::None, f) | (f, Flush::None) => f.limit(threshold),
            (Flush::All, _) | (_, Flush::All) => Flush::All,
            (Flush::Range { start: a, end: b }, Flush::Range { start: c, end: d }) => {
                Flush::Range {
                    start: a.min(c),
                    end: b.max(d),
                }
                .limit(threshold)
            }
        }
    }

    fn limit(self, threshold: u64) -> Flush {
        match self {
            Flush::Range { start, end } if end.as_u64() - start.as_u64() > threshold => Flush::All,
            f => f,
        }
    }

    /// Whether the descriptor asks for anything.
    pub fn is_none(&self) -> bool {
        *self == Flush::None
    }
}

/// The architecture's TLB invalidation: INVEPT single-context on x86, INVTLB by GID (and address)
/// on LoongArch.
///
/// `flush` must return only once every CPU that may cache translations of this table has dropped
/// those covered by `what`; the engine frees table pages right after it returns.
pub trait TlbFlush: Sync {
    /// Invalidate `what` everywhere.
    fn flush(&self, what: Flush);
}

/// A backend that does nothing, for tables no CPU ever loads.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoTlb;

impl TlbFlush for NoTlb {
    fn flush(&self, _what: Flush) {}
}

/// Default merge threshold: 256 KiB (64 pages of 4 KiB, 16 of 16 KiB).
pub const DEFAULT_FLUSH_THRESHOLD: u64 = 256 << 10;

/// The pending flush and deferred frees of one or more calls; committed with
/// `StageTwoTable::commit`.
///
/// Dropping a batch that still holds pages leaks them (safe: freeing before the flush would not
/// be). A batch must be committed to the table whose calls filled it.
#[must_use = "commit the batch: its flush is needed for correctness and its pages are leaked otherwise"]
#[derive(Debug)]
pub struct FlushBatch {
    flush: Flush,
    frees: Vec<Hpa>,
    threshold: u64,
}

impl Default for FlushBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl FlushBatch {
    /// An empty batch with the default threshold.
    pub const fn new() -> Self {
        Self::with_threshold(DEFAULT_FLUSH_THRESHOLD)
    }

    /// An empty batch whose ranges collapse to `All` above `threshold` bytes.
    pub const fn with_threshold(threshold: u64) -> Self {
        Self {
            flush: Flush::None,
            frees: Vec::new(),
            threshold,
        }
    }

    /// Add a flush.
    pub fn add(&mut self, f: Flush) {
        self.flush = self.flush.merge(f, self.threshold);
    }

    /// Add a flush of `[start, end)`.
    pub fn add_range(&mut self, start: Gpa, end: Gpa) {
        self.add(Flush::range(start, end));
    }

    /// The flush the batch would issue now.
    pub fn pending(&self) -> Flush {
        self.flush
    }

    /// Table pages waiting for the flush.
    pub fn pending_frees(&self) -> usize {
        self.frees.len()
    }

    /// Whether committing would do nothing.
    pub fn is_empty(&self) -> bool {
        self.flush.is_none() && self.frees.is_empty()
    }

    pub(crate) fn defer_free(&mut self, pa: Hpa, start: Gpa, end: Gpa) {
        self.frees.push(pa);
        self.add_range(start, end);
    }

    pub(crate) fn take(&mut self) -> (Flush, Vec<Hpa>) {
        let f = core::mem::take(&mut self.flush);
        (f, core::mem::take(&mut self.frees))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_a_hull_and_collapses_to_all() {
        let a = Flush::range(Gpa(0x1000), Gpa(0x2000));
        let b = Flush::range(Gpa(0x5000), Gpa(0x6000));
        assert_eq!(a.merge(b, 1 << 20), Flush::range(Gpa(0x1000), Gpa(0x6000)));
        assert_eq!(a.merge(b, 0x1000), Flush::All);
        assert_eq!(Flush::None.merge(a, 1 << 20), a);
        assert_eq!(Flush::All.merge(a, 1 << 20), Flush::All);
        assert_eq!(Flush::range(Gpa(5), Gpa(5)), Flush::None);
        let mut batch = FlushBatch::with_threshold(1 << 20);
        batch.add(a);
        batch.add(b);
        assert_eq!(batch.pending(), Flush::range(Gpa(0x1000), Gpa(0x6000)));
        let _ = batch.take();
        assert!(batch.is_empty());
    }
}
