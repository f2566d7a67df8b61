//! What the arch entry code hands the boot sequence: the firmware's name for how the image was
//! started, the command line, and the RAM and reserved ranges it reported, gathered before the
//! heap exists.

use board_config::MemRange;

/// A fixed-capacity list of physical ranges, filled before the heap exists.
#[derive(Clone, Copy)]
pub struct RangeList {
    items: [MemRange; 32],
    len: usize,
}

impl RangeList {
    pub const fn new() -> Self {
        Self {
            items: [MemRange { start: 0, size: 0 }; 32],
            len: 0,
        }
    }

    /// Adds a range; a full list drops it and says so.
    pub fn push(&mut self, range: MemRange) {
        if self.len == self.items.len() {
            log::warn!(
                "memory: more than 32 ranges, ignoring {:#x}+{:#x}",
                range.start,
                range.size
            );
            return;
        }
        self.items[self.len] = range;
        self.len += 1;
    }

    pub fn as_slice(&self) -> &[MemRange] {
        &self.items[..self.len]
    }
}

/// What the firmware told the arch entry code.
pub struct BootInfo {
    /// How the image was started ("multiboot1", "QEMU -kernel with FDT", ...).
    pub firmware: &'static str,
    pub cmdline: &'static str,
    /// Usable RAM.
    pub ram: RangeList,
    /// Ranges inside `ram` that the firmware or boot protocol still uses (FDT, boot data, low 1 MiB).
    pub reserved: RangeList,
}
