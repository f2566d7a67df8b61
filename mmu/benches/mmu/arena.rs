//! Table pages for the benchmark: one pre-faulted arena handing out naturally aligned pages.
//!
//! On bare metal the hypervisor draws table pages from a pool that is already mapped (through a
//! huge-page direct map) and contiguous. The host heap is neither: glibc's aligned allocations
//! leave a gap after every page, and trimming returns freed memory to the kernel, so each run
//! pays first-touch page faults again. Those costs belong to the host, not to the engine, so the
//! engine and the peer crates all get their pages from this arena: mapped once, pre-faulted
//! before any timing, backed by transparent huge pages where the kernel allows, recycled in
//! first-freed-first-reused order. Filling or zeroing a page stays in the measured time (the
//! engine writes every entry of a new table; the peers zero theirs on allocation). The `heap`
//! rows of the bench show the same operation over the host heap for comparison.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};

use mmu::{FrameAllocator, Hpa};

struct State {
    next: usize,
    end: usize,
    /// Free pages by size class: 4 KiB, 16 KiB.
    free: [VecDeque<usize>; 2],
}

static ARENA: OnceLock<Mutex<State>> = OnceLock::new();

const HUGE: usize = 2 << 20;

/// Map and pre-fault `bytes` of arena. Call once, before timing anything.
pub fn init(bytes: usize) {
    ARENA.get_or_init(|| {
        let len = bytes + HUGE;
        // SAFETY: an anonymous private mapping; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert!(p != libc::MAP_FAILED, "arena mmap failed");
        let start = (p as usize).next_multiple_of(HUGE);
        // SAFETY: the range lies inside the mapping just created; advice only.
        unsafe { libc::madvise(start as *mut libc::c_void, bytes, libc::MADV_HUGEPAGE) };
        // Pre-fault: one write per 4 KiB page.
        for off in (0..bytes).step_by(4096) {
            // SAFETY: inside the mapping, which is readable and writable.
            unsafe { ((start + off) as *mut u8).write_volatile(0) };
        }
        Mutex::new(State {
            next: start,
            end: start + bytes,
            free: [VecDeque::new(), VecDeque::new()],
        })
    });
}

fn class(size: usize) -> usize {
    match size {
        4096 => 0,
        16384 => 1,
        _ => panic!("unsupported table size {size}"),
    }
}

/// A page of `size` bytes aligned to `size`, contents arbitrary.
pub fn alloc(size: usize) -> Option<usize> {
    let mut s = ARENA.get().expect("arena::init first").lock().unwrap();
    if let Some(p) = s.free[class(size)].pop_front() {
        return Some(p);
    }
    let p = s.next.next_multiple_of(size);
    if p + size > s.end {
        return None;
    }
    s.next = p + size;
    Some(p)
}

/// A zeroed 4 KiB page, for the peer crates (their contract is a zeroed frame).
pub fn alloc_zeroed_4k() -> Option<usize> {
    let p = alloc(4096)?;
    // SAFETY: the page is ours, 4 KiB, inside the arena mapping.
    unsafe { std::ptr::write_bytes(p as *mut u8, 0, 4096) };
    Some(p)
}

/// Give a page back.
pub fn free(p: usize, size: usize) {
    let mut s = ARENA.get().expect("arena::init first").lock().unwrap();
    s.free[class(size)].push_back(p);
}

/// The engine's view of the arena: "physical" addresses are the arena pointers.
#[derive(Default)]
pub struct ArenaFrames;

// SAFETY: every page is handed out once until freed, aligned to its size, inside a mapping that
// lives for the whole process, and phys_to_virt is the identity.
unsafe impl FrameAllocator for ArenaFrames {
    fn alloc_table(&self, size: usize) -> Option<Hpa> {
        alloc(size).map(|p| Hpa(p as u64))
    }

    unsafe fn free_table(&self, pa: Hpa, size: usize) {
        free(pa.0 as usize, size);
    }

    fn phys_to_virt(&self, pa: Hpa) -> *mut u8 {
        pa.0 as *mut u8
    }
}
