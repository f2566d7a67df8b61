//! Table-page allocation: the `FrameAllocator` trait and a heap-backed allocator for host builds.
//!
//! The engine asks the platform for table pages by size (4 KiB for EPT, 16 KiB for LoongArch's
//! default geometry) and reaches them through the allocator's `phys_to_virt`, so the same code runs
//! on bare metal (a direct map or identity map) and on the host (where "physical" is a pointer).

use core::alloc::Layout;
use core::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::addr::Hpa;

/// A source of table pages.
///
/// # Safety
///
/// Implementors promise that for every address `alloc_table(size)` returned, until it is passed to
/// `free_table`, `phys_to_virt` yields a pointer to `size` bytes, aligned to `size`, readable and
/// writable by the caller and used by nothing else; and that the address is aligned to `size`.
pub unsafe trait FrameAllocator: Sync {
    /// One page of `size` bytes (a power of two), aligned to `size`. Contents are arbitrary: the
    /// engine fills every entry before the page becomes reachable.
    fn alloc_table(&self, size: usize) -> Option<Hpa>;

    /// Return a page.
    ///
    /// # Safety
    ///
    /// `pa` came from `alloc_table(size)` of this allocator, and no walker (software or hardware)
    /// can reach it any more: it was unlinked and the TLB flush covering it has completed.
    unsafe fn free_table(&self, pa: Hpa, size: usize);

    /// Where this CPU can read and write the page at `pa`.
    fn phys_to_virt(&self, pa: Hpa) -> *mut u8;
}

/// A `FrameAllocator` over the global heap, where the "physical" address is the pointer itself.
///
/// For host tests and benchmarks, and usable on bare metal wherever the heap is identity-mapped.
/// It counts pages and can be told to fail after a number of allocations, to test how operations
/// behave when the platform runs out of table pages mid-way.
#[derive(Debug)]
pub struct HeapFrameAllocator {
    live: AtomicI64,
    allocated: AtomicU64,
    freed: AtomicU64,
    /// Allocations still allowed before failing; negative means unlimited.
    budget: AtomicI64,
}

impl Default for HeapFrameAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl HeapFrameAllocator {
    /// An allocator with no limit.
    pub const fn new() -> Self {
        Self {
            live: AtomicI64::new(0),
            allocated: AtomicU64::new(0),
            freed: AtomicU64::new(0),
            budget: AtomicI64::new(-1),
        }
    }

    /// Allow `n` more allocations, then fail every later one (`None` lifts the limit).
    pub fn set_budget(&self, n: Option<u64>) {
        let v = n.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        self.budget.store(v, Ordering::SeqCst);
    }

    /// Pages allocated and not yet freed.
    pub fn live(&self) -> i64 {
        self.live.load(Ordering::SeqCst)
    }

    /// Pages ever allocated.
    pub fn allocated(&self) -> u64 {
        self.allocated.load(Ordering::SeqCst)
    }

    /// Pages ever freed.
    pub fn freed(&self) -> u64 {
        self.freed.load(Ordering::SeqCst)
    }

    fn take_budget(&self) -> bool {
        let mut cur = self.budget.load(Ordering::Relaxed);
        loop {
            if cur < 0 {
                return true;
            }
            if cur == 0 {
                return false;
            }
            match self.budget.compare_exchange_weak(
                cur,
                cur - 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }
}

// SAFETY: pages come from the global allocator with size == alignment, are handed out once, and
// the identity phys_to_virt returns the very pointer that was allocated.
unsafe impl FrameAllocator for HeapFrameAllocator {
    fn alloc_table(&self, size: usize) -> Option<Hpa> {
        if !self.take_budget() {
            return None;
        }
        let layout = Layout::from_size_align(size, size).ok()?;
        // SAFETY: the layout has a non-zero size (table pages are at least 4 KiB).
        let p = unsafe { alloc::alloc::alloc(layout) };
        if p.is_null() {
            return None;
        }
        self.live.fetch_add(1, Ordering::Relaxed);
        self.allocated.fetch_add(1, Ordering::Relaxed);
        Some(Hpa(p as u64))
    }

    unsafe fn free_table(&self, pa: Hpa, size: usize) {
        self.live.fetch_sub(1, Ordering::Relaxed);
        self.freed.fetch_add(1, Ordering::Relaxed);
        let layout = Layout::from_size_align(size, size).expect("table size is a power of two");
        // SAFETY: the caller guarantees `pa` came from `alloc_table(size)`, i.e. from `alloc` with
        // this very layout, and that nothing references it any more.
        unsafe { alloc::alloc::dealloc(pa.as_u64() as *mut u8, layout) }
    }

    fn phys_to_virt(&self, pa: Hpa) -> *mut u8 {
        pa.as_u64() as *mut u8
    }
}
