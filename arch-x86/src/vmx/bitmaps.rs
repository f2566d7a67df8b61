//! The I/O and MSR bitmaps a VMCS points at: one bit per port or MSR, set = the access exits.
//! Septum starts from "everything exits" and clears only what the partition was given, so a
//! forgotten entry fails closed. The bitmaps are page-aligned so their addresses go straight into
//! the VMCS (the image's heap is identity-mapped, so a heap address is a physical one).

/// The two 4 KiB I/O bitmaps: A covers ports 0x0000-0x7fff, B covers 0x8000-0xffff.
#[repr(C, align(4096))]
pub struct IoBitmap {
    /// A then B, one bit per port.
    pub bits: [u8; 8192],
}

impl IoBitmap {
    /// Every port exits.
    pub const fn all_exit() -> Self {
        Self { bits: [0xff; 8192] }
    }

    /// Lets the guest use ports `[start, start + size)` directly.
    pub fn allow(&mut self, start: u16, size: u16) {
        for port in u32::from(start)..(u32::from(start) + u32::from(size)).min(0x1_0000) {
            self.bits[(port / 8) as usize] &= !(1 << (port % 8));
        }
    }

    /// Whether an access to `port` exits.
    pub fn exits(&self, port: u16) -> bool {
        self.bits[usize::from(port / 8)] & (1 << (port % 8)) != 0
    }

    /// Offset of bitmap B from A (its own VMCS field).
    pub const B_OFFSET: u64 = 4096;
}

/// The 4 KiB MSR bitmap: read-low, read-high, write-low, write-high, 1 KiB each. "Low" is MSRs
/// 0x0000_0000-0x0000_1fff, "high" is 0xc000_0000-0xc000_1fff; every other MSR always exits.
#[repr(C, align(4096))]
pub struct MsrBitmap {
    /// The four quarters.
    pub bits: [u8; 4096],
}

/// MSRs whose state lives in the VMCS or is private to the CPU the guest owns, so the guest may
/// read and write them without an exit: segment bases, the SYSCALL/SYSENTER entry points, TSC_AUX,
/// and PAT (saved and loaded on every exit and entry).
pub const GUEST_OWNED_MSRS: &[u32] = &[
    0x174,       // IA32_SYSENTER_CS
    0x175,       // IA32_SYSENTER_ESP
    0x176,       // IA32_SYSENTER_EIP
    0x277,       // IA32_PAT
    0xc000_0081, // STAR
    0xc000_0082, // LSTAR
    0xc000_0083, // CSTAR
    0xc000_0084, // SFMASK
    0xc000_0100, // FS_BASE
    0xc000_0101, // GS_BASE
    0xc000_0102, // KERNEL_GS_BASE
    0xc000_0103, // TSC_AUX
];

impl MsrBitmap {
    /// Every MSR exits.
    pub const fn all_exit() -> Self {
        Self { bits: [0xff; 4096] }
    }

    /// The byte and bit of `msr` in the read quarter, if the bitmap covers it.
    fn slot(msr: u32) -> Option<(usize, u8)> {
        let (base, index) = match msr {
            0..=0x1fff => (0, msr),
            0xc000_0000..=0xc000_1fff => (1024, msr - 0xc000_0000),
            _ => return None,
        };
        Some((base + (index / 8) as usize, 1 << (index % 8)))
    }

    /// Lets the guest read (`read`) and/or write (`write`) `msr` directly. MSRs outside the two
    /// covered ranges always exit, whatever is asked.
    pub fn allow(&mut self, msr: u32, read: bool, write: bool) {
        if let Some((byte, bit)) = Self::slot(msr) {
            if read {
                self.bits[byte] &= !bit;
            }
            if write {
                self.bits[byte + 2048] &= !bit;
            }
        }
    }

    /// Whether a read (`write == false`) or write of `msr` exits.
    pub fn exits(&self, msr: u32, write: bool) -> bool {
        match Self::slot(msr) {
            Some((byte, bit)) => self.bits[byte + if write { 2048 } else { 0 }] & bit != 0,
            None => true,
        }
    }

    /// The bitmap of a partition: [`GUEST_OWNED_MSRS`] pass through, everything else exits.
    pub fn for_partition() -> Self {
        let mut b = Self::all_exit();
        for &msr in GUEST_OWNED_MSRS {
            b.allow(msr, true, true);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::boxed::Box;

    #[test]
    fn io_bitmap_opens_exactly_the_given_ports() {
        let mut b = Box::new(IoBitmap::all_exit());
        b.allow(0x2f8, 8);
        b.allow(0xfff8, 8);
        assert!(b.exits(0x2f7) && !b.exits(0x2f8) && !b.exits(0x2ff) && b.exits(0x300));
        assert!(!b.exits(0xffff) && b.exits(0x3f8));
        // Port 0x8000 is the first bit of bitmap B.
        b.allow(0x8000, 1);
        assert_eq!(b.bits[IoBitmap::B_OFFSET as usize], 0xfe);
    }

    #[test]
    fn msr_bitmap_quarters() {
        let b = Box::new(MsrBitmap::for_partition());
        assert!(!b.exits(0xc000_0100, false) && !b.exits(0xc000_0100, true));
        assert!(!b.exits(0x277, true));
        assert!(b.exits(0x1b, false), "APIC base exits");
        assert!(b.exits(0xc000_0080, true), "EFER exits");
        assert!(b.exits(0x4000_0000, false), "uncovered MSRs exit");
        // FS_BASE is bit 0x100 of the high read quarter and of the high write quarter.
        assert_eq!(b.bits[1024 + 0x20] & 1, 0);
        assert_eq!(b.bits[3072 + 0x20] & 1, 0);
    }
}
