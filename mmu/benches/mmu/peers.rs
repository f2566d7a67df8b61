//! The peer crates mapping the same range: `page_table_multiarch` (x86-64 layout, its
//! `map_region`) and the `x86_64` crate's `OffsetPageTable::map_to`, page by page. Both get
//! zeroed table pages from the same pre-faulted arena as the engine.
//!
//! Page sizes are forced to match the engine's row: `page_table_multiarch` picks the largest page
//! the alignment allows, so the 2 MiB rows give it a host address that is 2 MiB- but not
//! 1 GiB-aligned (the engine's row uses the same address), and the 1 GiB rows a 1 GiB-aligned one.

use super::{arena, timed, PageKind, HPA_BASE};

pub mod ptm {
    use super::*;
    use memory_addr::{PhysAddr, VirtAddr};
    use page_table_multiarch::x86_64::X64PageTable;
    use page_table_multiarch::{MappingFlags, PagingHandler};

    pub struct Arena;

    impl PagingHandler for Arena {
        fn alloc_frames(num: usize, align: usize) -> Option<PhysAddr> {
            assert!(num == 1 && align <= 4096, "tables are single pages");
            arena::alloc_zeroed_4k().map(PhysAddr::from)
        }

        fn dealloc_frames(paddr: PhysAddr, num: usize) {
            assert_eq!(num, 1);
            arena::free(paddr.as_usize(), 4096);
        }

        fn phys_to_virt(paddr: PhysAddr) -> VirtAddr {
            VirtAddr::from(paddr.as_usize())
        }
    }

    /// Nanoseconds to map `size` bytes at 0 with pages of `kind`.
    pub fn map(size: u64, kind: PageKind) -> f64 {
        let mut pt = X64PageTable::<Arena>::try_new().unwrap();
        let flags = MappingFlags::READ | MappingFlags::WRITE | MappingFlags::EXECUTE;
        let base = HPA_BASE + kind.hpa_offset();
        let (_, ns) = timed(|| {
            let mut c = pt.cursor();
            c.map_region(
                VirtAddr::from(0usize),
                |va| PhysAddr::from(va.as_usize() + base as usize),
                size as usize,
                flags,
                kind != PageKind::Base,
            )
            .unwrap();
        });
        drop(pt);
        ns
    }
}

pub mod x86 {
    use super::*;
    use x86_64::structures::paging::{
        FrameAllocator, Mapper, OffsetPageTable, Page, PageSize, PageTable, PageTableFlags,
        PhysFrame, Size1GiB, Size2MiB, Size4KiB,
    };
    use x86_64::{PhysAddr, VirtAddr};

    struct Frames(Vec<usize>);

    // SAFETY: hands out distinct, zeroed, 4 KiB-aligned pages that stay allocated until dropped.
    unsafe impl FrameAllocator<Size4KiB> for Frames {
        fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
            let p = arena::alloc_zeroed_4k()?;
            self.0.push(p);
            Some(PhysFrame::containing_address(PhysAddr::new(p as u64)))
        }
    }

    impl Drop for Frames {
        fn drop(&mut self) {
            for p in self.0.drain(..) {
                arena::free(p, 4096);
            }
        }
    }

    fn map_all<S: PageSize + std::fmt::Debug>(
        m: &mut OffsetPageTable<'_>,
        frames: &mut Frames,
        size: u64,
        base: u64,
    ) where
        for<'a> OffsetPageTable<'a>: Mapper<S>,
    {
        let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
        for i in 0..size / S::SIZE {
            let a = i * S::SIZE;
            let page = Page::<S>::containing_address(VirtAddr::new(a));
            let frame = PhysFrame::<S>::containing_address(PhysAddr::new(a + base));
            // SAFETY: a host-side table no CPU loads; the frames are never accessed.
            unsafe { m.map_to(page, frame, flags, frames).unwrap().ignore() };
        }
    }

    /// Nanoseconds to map `size` bytes at 0 with pages of `kind`.
    pub fn map(size: u64, kind: PageKind) -> f64 {
        let mut frames = Frames(Vec::new());
        let root = frames.allocate_frame().unwrap();
        // SAFETY: the root page is ours, zeroed, and "physical" equals virtual (offset 0).
        let l4 = unsafe { &mut *(root.start_address().as_u64() as *mut PageTable) };
        // SAFETY: every table page is reachable at its physical address (offset 0).
        let mut m = unsafe { OffsetPageTable::new(l4, VirtAddr::new(0)) };
        let base = HPA_BASE + kind.hpa_offset();
        let (_, ns) = timed(|| match kind {
            PageKind::Base => map_all::<Size4KiB>(&mut m, &mut frames, size, base),
            PageKind::Mid => map_all::<Size2MiB>(&mut m, &mut frames, size, base),
            PageKind::Top => map_all::<Size1GiB>(&mut m, &mut frames, size, base),
        });
        ns
    }
}
