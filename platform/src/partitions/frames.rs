//! Table pages for stage-2 tables, from the hypervisor's frame allocator. A LoongArch table page
//! is 16 KiB, so pages are taken as aligned runs of 4 KiB frames (the buddy allocator hands out
//! naturally aligned blocks), and reached through the arch's direct map.

use crate::arch::{Current, Machine};
use crate::memory::{self, FRAME_SIZE};
use mmu::{FrameAllocator, Hpa};

/// The frame allocator as `mmu` sees it.
#[derive(Clone, Copy, Debug, Default)]
pub struct TableFrames;

// SAFETY: `memory::alloc_frames` hands out each run once, aligned to its size (a power of two),
// from RAM nothing else owns, and `phys_to_virt` maps all of that RAM for the whole run.
unsafe impl FrameAllocator for TableFrames {
    fn alloc_table(&self, size: usize) -> Option<Hpa> {
        let frames = (size as u64).div_ceil(FRAME_SIZE) as usize;
        memory::alloc_frames(frames).map(Hpa)
    }

    unsafe fn free_table(&self, pa: Hpa, size: usize) {
        let frames = (size as u64).div_ceil(FRAME_SIZE) as usize;
        memory::free_frames(pa.as_u64(), frames);
    }

    fn phys_to_virt(&self, pa: Hpa) -> *mut u8 {
        Current::phys_to_virt(pa.as_u64()) as *mut u8
    }
}
