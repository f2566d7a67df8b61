//! Test doubles shared by the integration tests: an allocator and a TLB backend that log events
//! into one ordered history, and a mirror that keeps its own page map.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mmu::{
    Flush, FrameAllocator, Gpa, GpaRange, HeapFrameAllocator, Hpa, LeafAttrs, MirrorError,
    MirrorHook, TlbFlush,
};

/// One event of the shared history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Alloc(u64),
    Free(u64),
    Flush(Flush),
}

#[derive(Default)]
pub struct History {
    pub events: Mutex<Vec<Event>>,
    pub live: Mutex<BTreeSet<u64>>,
    pub flushes: AtomicU64,
}

/// A heap allocator that records every page it hands out and takes back.
pub struct LoggingAlloc {
    pub inner: HeapFrameAllocator,
    pub history: Arc<History>,
}

impl LoggingAlloc {
    pub fn new(history: Arc<History>) -> Self {
        Self {
            inner: HeapFrameAllocator::new(),
            history,
        }
    }
}

// SAFETY: delegates to HeapFrameAllocator, which upholds the contract.
unsafe impl FrameAllocator for LoggingAlloc {
    fn alloc_table(&self, size: usize) -> Option<Hpa> {
        let pa = self.inner.alloc_table(size)?;
        self.history.events.lock().unwrap().push(Event::Alloc(pa.0));
        assert!(self.history.live.lock().unwrap().insert(pa.0));
        Some(pa)
    }

    unsafe fn free_table(&self, pa: Hpa, size: usize) {
        self.history.events.lock().unwrap().push(Event::Free(pa.0));
        assert!(
            self.history.live.lock().unwrap().remove(&pa.0),
            "double free"
        );
        // Poison first, so a walker still using the page would read garbage.
        let p = pa.0 as *mut u64;
        for i in 0..size / 8 {
            // SAFETY: the page is still allocated and ours until the call below.
            unsafe { p.add(i).write_volatile(0xdead_beef_dead_beef) };
        }
        // SAFETY: forwarded contract.
        unsafe { self.inner.free_table(pa, size) }
    }

    fn phys_to_virt(&self, pa: Hpa) -> *mut u8 {
        self.inner.phys_to_virt(pa)
    }
}

/// A TLB backend that records flushes.
pub struct LoggingTlb {
    pub history: Arc<History>,
}

impl TlbFlush for LoggingTlb {
    fn flush(&self, what: Flush) {
        self.history.flushes.fetch_add(1, Ordering::SeqCst);
        self.history.events.lock().unwrap().push(Event::Flush(what));
    }
}

/// A TLB backend that only counts.
#[derive(Default)]
pub struct CountingTlb {
    pub count: AtomicU64,
}

impl TlbFlush for CountingTlb {
    fn flush(&self, _what: Flush) {
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// A mirror (a fake IOMMU) keeping gpa page -> hpa, with injectable refusal and pinned ranges.
pub struct MapMirror {
    pub page: u64,
    pub map: Mutex<BTreeMap<u64, u64>>,
    pub refuse: AtomicBool,
    pub pinned: Mutex<Vec<GpaRange>>,
    pub freed_tables: AtomicU64,
}

impl MapMirror {
    pub fn new(page: u64) -> Self {
        Self {
            page,
            map: Mutex::new(BTreeMap::new()),
            refuse: AtomicBool::new(false),
            pinned: Mutex::new(Vec::new()),
            freed_tables: AtomicU64::new(0),
        }
    }
}

impl MirrorHook for MapMirror {
    fn on_install(
        &self,
        gpa: Gpa,
        size: u64,
        hpa: Hpa,
        _attrs: &LeafAttrs,
    ) -> Result<(), MirrorError> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(MirrorError::Refused);
        }
        let mut m = self.map.lock().unwrap();
        let mut off = 0;
        while off < size {
            assert!(
                m.insert(gpa.0 + off, hpa.0 + off).is_none(),
                "mirror install over a present page"
            );
            off += self.page;
        }
        Ok(())
    }

    fn on_remove(&self, range: GpaRange) {
        let mut m = self.map.lock().unwrap();
        let mut a = range.start.0;
        while a < range.end.0 {
            assert!(
                m.remove(&a).is_some(),
                "mirror removal of an absent page {a:#x}"
            );
            a += self.page;
        }
    }

    fn on_free_table(&self, _pa: Hpa) {
        self.freed_tables.fetch_add(1, Ordering::SeqCst);
    }

    fn pins(&self, range: GpaRange) -> bool {
        self.pinned
            .lock()
            .unwrap()
            .iter()
            .any(|p| !p.intersect(&range).is_empty())
    }
}
