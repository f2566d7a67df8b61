//! The hypervisor's memory: a heap inside the image (so it exists before any firmware table is read)
//! and a page-frame allocator over all RAM the firmware reports, less the hypervisor's own region and
//! what the firmware, the board file and the partitions own. Table pages and anything else
//! page-sized come from frames.

use crate::arch::{Current, Machine};
use crate::boot_info::BootInfo;
use board_config::MemRange;
use buddy_system_allocator::{FrameAllocator, LockedHeap};
use core::ptr::addr_of_mut;
use spin::Mutex;

/// Bytes of heap, carved from the image's .bss.
const HEAP_SIZE: usize = 8 << 20;
/// The frame allocator hands out 4 KiB frames.
pub const FRAME_SIZE: u64 = 4096;

#[repr(C, align(4096))]
struct HeapSpace([u8; HEAP_SIZE]);

static mut HEAP_SPACE: HeapSpace = HeapSpace([0; HEAP_SIZE]);

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

static FRAMES: Mutex<FrameAllocator<32>> = Mutex::new(FrameAllocator::new());

/// Counts printed at boot and kept for the management interface.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameStats {
    pub ranges: usize,
    pub total: usize,
}

static STATS: Mutex<FrameStats> = Mutex::new(FrameStats {
    ranges: 0,
    total: 0,
});

/// Subtracts every range of `holes` from `range`, calling `f` on each piece left.
fn subtract(range: MemRange, holes: &[MemRange], f: &mut dyn FnMut(MemRange)) {
    if range.size == 0 {
        return;
    }
    let Some((hole, rest)) = holes.split_first() else {
        f(range);
        return;
    };
    let (start, end) = (range.start, range.end());
    if hole.end() <= start || hole.start >= end {
        subtract(range, rest, f);
        return;
    }
    if hole.start > start {
        subtract(
            MemRange {
                start,
                size: hole.start - start,
            },
            rest,
            f,
        );
    }
    if hole.end() < end {
        subtract(
            MemRange {
                start: hole.end(),
                size: end - hole.end(),
            },
            rest,
            f,
        );
    }
}

/// Sets up the heap and the frame allocator. Called once, on the boot CPU.
pub fn init(info: &BootInfo) {
    // SAFETY: runs once on the boot CPU before any allocation; HEAP_SPACE is used by nothing else.
    unsafe {
        HEAP.lock()
            .init(addr_of_mut!(HEAP_SPACE) as usize, HEAP_SIZE);
    }
    log::info!("memory: heap {} KiB in the image", HEAP_SIZE / 1024);

    // Frames are what nobody else owns: not the hypervisor image, not what the firmware or the
    // board file reserves, and not any partition's memory (which belongs to its partition alone).
    let board = &crate::board::BOARD;
    let mut holes = alloc::vec![board.hypervisor];
    holes.extend_from_slice(info.reserved.as_slice());
    holes.extend_from_slice(board.reserved);
    holes.extend(
        board
            .partitions
            .iter()
            .flat_map(|p| p.memory.iter().map(|r| r.host_range())),
    );
    let holes = holes.as_slice();

    let mut frames = FRAMES.lock();
    let mut stats = STATS.lock();
    for &range in info.ram.as_slice() {
        subtract(range, holes, &mut |piece| {
            let first = piece.start.div_ceil(FRAME_SIZE);
            let last = piece.end() / FRAME_SIZE;
            if last > first {
                frames.add_frame(first as usize, last as usize);
                stats.ranges += 1;
                stats.total += (last - first) as usize;
            }
        });
    }
    log::info!(
        "memory: frame allocator {} free 4 KiB frames ({} MiB) in {} ranges",
        stats.total,
        (stats.total as u64 * FRAME_SIZE) >> 20,
        stats.ranges
    );
}

/// One free 4 KiB frame's physical address, or `None` when RAM is exhausted.
pub fn alloc_frame() -> Option<u64> {
    FRAMES.lock().alloc(1).map(|f| f as u64 * FRAME_SIZE)
}

/// Gives back a frame from [`alloc_frame`].
pub fn free_frame(pa: u64) {
    FRAMES.lock().dealloc((pa / FRAME_SIZE) as usize, 1);
}

/// `count` contiguous frames (a power of two), aligned to their total size, or `None`.
pub fn alloc_frames(count: usize) -> Option<u64> {
    let first = FRAMES.lock().alloc(count)?;
    let pa = first as u64 * FRAME_SIZE;
    debug_assert_eq!(
        pa % (count as u64 * FRAME_SIZE),
        0,
        "buddy blocks are aligned"
    );
    Some(pa)
}

/// Gives back frames from [`alloc_frames`].
pub fn free_frames(pa: u64, count: usize) {
    FRAMES.lock().dealloc((pa / FRAME_SIZE) as usize, count);
}

/// Boot-time check that both allocators hand out usable, distinct memory: fails the boot loudly
/// rather than letting a partition find out later.
pub fn self_test() -> Result<(), &'static str> {
    let v: alloc::vec::Vec<u64> = (0..4096).collect();
    if v.iter().sum::<u64>() != 4095 * 4096 / 2 {
        return Err("heap returned corrupt memory");
    }
    let a = alloc_frame().ok_or("no free frame")?;
    let b = alloc_frame().ok_or("no second free frame")?;
    if a == b || a % FRAME_SIZE != 0 {
        return Err("frame allocator returned overlapping frames");
    }
    let pa = Current::phys_to_virt(a) as *mut u64;
    let pb = Current::phys_to_virt(b) as *mut u64;
    // SAFETY: both frames were just taken from the allocator, so nothing else uses them, and
    // phys_to_virt maps all RAM the allocator owns.
    unsafe {
        pa.write_volatile(0x5e97_0a11_0000_0001);
        pb.write_volatile(0x5e97_0a11_0000_0002);
        if pa.read_volatile() != 0x5e97_0a11_0000_0001 {
            return Err("frame memory does not hold a written value");
        }
    }
    free_frame(a);
    free_frame(b);
    log::info!("memory: self-test passed (heap and frames at {a:#x}, {b:#x})");
    Ok(())
}
