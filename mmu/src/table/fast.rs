//! `fast_fix`: the lock-free fault fix-up.
//!
//! A guest fault on a page that is mapped but old (access-tracked) or clean-but-writable does not
//! need the slow path: walk without a lock, compute the fixed leaf with the format's `fast_fix`,
//! and compare-and-swap it in. A lost race is retried a few times and then handed back as `Retry`
//! (re-enter the guest; the fault recurs if still needed). Anything the fast path cannot prove
//! safe — no leaf, a frozen entry, a permission the leaf does not grant — is `Slow`.

use core::sync::atomic::Ordering;

use super::{Slot, StageTwoTable};
use crate::addr::Gpa;
use crate::attrs::Access;
use crate::flush::{Flush, TlbFlush};
use crate::format::PteFormat;
use crate::frame::FrameAllocator;
use crate::mirror::MirrorHook;

/// How often a lost compare-and-swap is retried before giving up (as KVM does).
const MAX_TRIES: usize = 4;

/// Outcome of `fast_fix`.
#[must_use]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FastFix {
    /// The leaf was changed to allow the access.
    Fixed {
        /// Level of the leaf.
        level: usize,
        /// The leaf went from clean to dirty: log the page.
        dirtied: bool,
        /// What to flush before re-entering the guest (LoongArch caches the invalid entry).
        flush: Flush,
    },
    /// The leaf already allows the access (a stale TLB entry or another vCPU fixed it).
    Spurious {
        /// What to flush before re-entering the guest.
        flush: Flush,
    },
    /// Take the slow path.
    Slow,
    /// Contention: re-enter the guest and let the fault recur.
    Retry,
}

impl<F: PteFormat, A: FrameAllocator, T: TlbFlush, M: MirrorHook> StageTwoTable<F, A, T, M> {
    /// Try to fix a fault of kind `access` at `gpa` without a lock. Shared mode (and safe with no
    /// lock at all against other shared-mode operations).
    pub fn fast_fix(&self, gpa: Gpa, access: Access) -> FastFix {
        if gpa >= self.gpa_limit() {
            return FastFix::Slow;
        }
        let mut table = self.root;
        let mut level = F::LEVELS - 1;
        let (e, mut v) = loop {
            let e = &self.entries(table)[Self::index(gpa.as_u64(), level)];
            let v = e.load(Ordering::Acquire);
            match self.classify(v, level) {
                Slot::Empty => return FastFix::Slow,
                Slot::Frozen => return FastFix::Retry,
                Slot::Leaf => break (e, v),
                Slot::Table => {
                    table = self.format.table_hpa(v);
                    level -= 1;
                }
            }
        };
        let flush = if F::CACHES_NONPRESENT {
            let page = gpa.align_down(1 << F::PAGE_SHIFT);
            Flush::range(page, Gpa(page.as_u64() + (1 << F::PAGE_SHIFT)))
        } else {
            Flush::None
        };
        for _ in 0..MAX_TRIES {
            let Some(n) = self.format.fast_fix(v, access) else {
                return FastFix::Slow;
            };
            if n == v {
                return FastFix::Spurious { flush };
            }
            match e.compare_exchange(v, n, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    let dirtied = self.format.is_dirty(n) && !self.format.is_dirty(v);
                    return FastFix::Fixed {
                        level,
                        dirtied,
                        flush,
                    };
                }
                Err(cur) => {
                    if self.classify(cur, level) != Slot::Leaf {
                        return FastFix::Retry;
                    }
                    v = cur;
                }
            }
        }
        FastFix::Retry
    }
}
