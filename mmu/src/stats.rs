//! Counters of what a table holds: leaves per level and table pages.
//!
//! Shared-mode operations update them from several threads, so they are atomics; every operation
//! adds its totals once at the end rather than per entry, keeping the counters off the hot loops.

use core::sync::atomic::{AtomicI64, Ordering};

use crate::format::MAX_LEVELS;

/// A snapshot of a table's contents.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TableStats {
    /// Present leaves at each level (level 0 = base pages).
    pub leaves: [u64; MAX_LEVELS],
    /// Table pages reachable from the root, the root included (shared invalid tables excluded).
    pub tables: u64,
}

/// The live counters behind `TableStats`.
#[derive(Debug, Default)]
pub(crate) struct StatCounters {
    leaves: [AtomicI64; MAX_LEVELS],
    tables: AtomicI64,
}

impl StatCounters {
    pub(crate) fn add_leaves(&self, level: usize, n: i64) {
        if n != 0 {
            self.leaves[level].fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn add_tables(&self, n: i64) {
        if n != 0 {
            self.tables.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn add_delta(&self, d: &StatDelta) {
        for (l, n) in d.leaves.iter().enumerate() {
            self.add_leaves(l, *n);
        }
        self.add_tables(d.tables);
    }

    pub(crate) fn snapshot(&self) -> TableStats {
        let mut s = TableStats::default();
        for (l, c) in self.leaves.iter().enumerate() {
            s.leaves[l] = u64::try_from(c.load(Ordering::Relaxed)).unwrap_or(0);
        }
        s.tables = u64::try_from(self.tables.load(Ordering::Relaxed)).unwrap_or(0);
        s
    }
}

/// Changes gathered by one operation before they are published.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StatDelta {
    pub(crate) leaves: [i64; MAX_LEVELS],
    pub(crate) tables: i64,
}
