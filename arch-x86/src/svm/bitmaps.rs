//! The I/O and MSR permission maps a VMCB points at (AMD APM Vol. 2 §15.10 and §15.11): one bit per
//! port, two bits per MSR (read, write), set = the access exits. As on the VMX side, Septum starts
//! from "everything exits" and clears only what the partition was given, so a forgotten entry
//! fails closed. Both maps are page-aligned so their addresses go straight into the VMCB.

/// The 12 KiB I/O permission map: bits for ports 0-0xffff, then three more bits for accesses
/// that run past port 0xffff (kept set, so such an access always exits).
#[repr(C, align(4096))]
pub struct Iopm {
    /// One bit per port.
    pub bits: [u8; 12 * 1024],
}

impl Iopm {
    /// Every port exits.
    pub const fn all_exit() -> Self {
        Self {
            bits: [0xff; 12 * 1024],
        }
    }

    /// Lets the guest use ports `[start, start + size)` directly. A multi-byte access exits if
    /// any port it covers exits, so the ports just outside the range keep a wide access out.
    pub fn allow(&mut self, start: u16, size: u16) {
        for port in u32::from(start)..(u32::from(start) + u32::from(size)).min(0x1_0000) {
            self.bits[(port / 8) as usize] &= !(1 << (port % 8));
        }
    }

    /// Whether an access to `port` exits.
    pub fn exits(&self, port: u16) -> bool {
        self.bits[usize::from(port / 8)] & (1 << (port % 8)) != 0
    }
}

/// The 8 KiB MSR permission map: three 2 KiB vectors for MSRs 0-0x1fff, 0xc000_0000-0xc000_1fff
/// and 0xc001_0000-0xc001_1fff (bit 2n = read of MSR n of the range, 2n + 1 = write), and a
/// reserved fourth. Every other MSR always exits.
#[repr(C, align(4096))]
pub struct Msrpm {
    /// The vectors.
    pub bits: [u8; 8 * 1024],
}

/// MSRs whose state VMRUN, #VMEXIT, VMLOAD and VMSAVE switch (or that are private to the CPU the
/// partition owns), so the guest may read and write them without an exit: the SYSENTER and
/// SYSCALL entry points, the segment bases and TSC_AUX (private to the CPU, which the hypervisor
/// never reads). PAT and EFER are not among them: EFER must keep SVME, and the guest's PAT is the
/// VMCB's G_PAT, which the backend emulates with a check of the value.
pub const GUEST_OWNED_MSRS: &[u32] = &[
    0x174,       // SYSENTER_CS
    0x175,       // SYSENTER_ESP
    0x176,       // SYSENTER_EIP
    0xc000_0081, // STAR
    0xc000_0082, // LSTAR
    0xc000_0083, // CSTAR
    0xc000_0084, // SFMASK
    0xc000_0100, // FS_BASE
    0xc000_0101, // GS_BASE
    0xc000_0102, // KERNEL_GS_BASE
    0xc000_0103, // TSC_AUX (RDTSCP/RDPID's CPU number; the hypervisor never reads it)
];

impl Msrpm {
    /// Every MSR exits.
    pub const fn all_exit() -> Self {
        Self {
            bits: [0xff; 8 * 1024],
        }
    }

    /// The bit index of a read of `msr`, if the map covers it (the write bit follows it).
    fn read_bit(msr: u32) -> Option<usize> {
        let (vector, index) = match msr {
            0..=0x1fff => (0, msr),
            0xc000_0000..=0xc000_1fff => (1, msr - 0xc000_0000),
            0xc001_0000..=0xc001_1fff => (2, msr - 0xc001_0000),
            _ => return None,
        };
        Some(vector * 2048 * 8 + 2 * index as usize)
    }

    /// Lets the guest read (`read`) and/or write (`write`) `msr` directly. MSRs outside the
    /// three covered ranges always exit, whatever is asked.
    pub fn allow(&mut self, msr: u32, read: bool, write: bool) {
        if let Some(bit) = Self::read_bit(msr) {
            if read {
                self.bits[bit / 8] &= !(1 << (bit % 8));
            }
            if write {
                self.bits[(bit + 1) / 8] &= !(1 << ((bit + 1) % 8));
            }
        }
    }

    /// Whether a read (`write == false`) or write of `msr` exits.
    pub fn exits(&self, msr: u32, write: bool) -> bool {
        match Self::read_bit(msr) {
            Some(bit) => {
                let bit = bit + usize::from(write);
                self.bits[bit / 8] & (1 << (bit % 8)) != 0
            }
            None => true,
        }
    }

    /// The map of a partition: [`GUEST_OWNED_MSRS`] pass through, everything else exits.
    pub fn for_partition() -> Self {
        let mut m = Self::all_exit();
        for &msr in GUEST_OWNED_MSRS {
            m.allow(msr, true, true);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::boxed::Box;

    #[test]
    fn iopm_opens_exactly_the_given_ports() {
        let mut m = Box::new(Iopm::all_exit());
        m.allow(0x2f8, 8);
        m.allow(0xfffe, 8);
        assert!(m.exits(0x2f7) && !m.exits(0x2f8) && !m.exits(0x2ff) && m.exits(0x300));
        assert!(!m.exits(0xffff) && m.exits(0x3f8));
        // The three bits past port 0xffff stay set.
        assert_eq!(m.bits[0x2000] & 7, 7);
        assert_eq!(core::mem::size_of::<Iopm>(), 12 * 1024);
    }

    #[test]
    fn msrpm_vectors_and_bit_pairs() {
        let m = Box::new(Msrpm::for_partition());
        assert!(!m.exits(0xc000_0100, false) && !m.exits(0xc000_0100, true));
        assert!(!m.exits(0x174, true));
        assert!(m.exits(0x277, true), "PAT exits");
        assert!(m.exits(0xc000_0080, true), "EFER exits");
        assert!(m.exits(0xc001_0117, false), "HSAVE exits");
        assert!(m.exits(0x4000_0000, false), "uncovered MSRs exit");
        // FS_BASE (0xc000_0100) is MSR 0x100 of vector 1: bits 0x200 and 0x201 of 0x800..
        assert_eq!(m.bits[0x800 + 0x40] & 3, 0);
        // SYSENTER_CS (0x174): bits 0x2e8/0x2e9 of vector 0, byte 0x5d.
        assert_eq!(m.bits[0x5d] & 3, 0);
        let mut w = Box::new(Msrpm::all_exit());
        w.allow(0xc001_0000, false, true);
        assert!(w.exits(0xc001_0000, false) && !w.exits(0xc001_0000, true));
        assert_eq!(w.bits[0x1000], 0xfd);
    }
}
