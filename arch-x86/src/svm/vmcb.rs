//! The virtual machine control block (AMD APM Vol. 2, Appendix B): one 4 KiB page per vCPU, a
//! control area at offset 0 (intercepts, bitmap addresses, ASID, TLB control, exit code and
//! information, nested CR3) and a state-save area at 0x400 (segments, control registers, RIP,
//! RSP, RAX, the MSRs VMLOAD/VMSAVE move). Unlike a VMCS it is plain memory, so it is modelled as
//! a page of bytes with typed accessors at the APM's offsets; the offsets are checked by host
//! tests against the table in the APM, and nothing here touches hardware.

/// Byte offsets of the VMCB fields Septum uses.
pub mod off {
    /// Intercepts of CR reads (bits 15:0) and writes (31:16).
    pub const INTERCEPT_CR: usize = 0x000;
    /// Intercepts of DR reads and writes.
    pub const INTERCEPT_DR: usize = 0x004;
    /// Intercepts of exception vectors 0-31.
    pub const INTERCEPT_EXCEPTIONS: usize = 0x008;
    /// The first word of instruction and event intercepts (`super::misc1`).
    pub const INTERCEPT_MISC1: usize = 0x00c;
    /// The second word (`super::misc2`).
    pub const INTERCEPT_MISC2: usize = 0x010;
    /// Physical address of the I/O permission map.
    pub const IOPM_BASE: usize = 0x040;
    /// Physical address of the MSR permission map.
    pub const MSRPM_BASE: usize = 0x048;
    /// Added to the TSC the guest reads.
    pub const TSC_OFFSET: usize = 0x050;
    /// The guest's address-space id (u32).
    pub const ASID: usize = 0x058;
    /// What VMRUN flushes (u8, `super::tlb`).
    pub const TLB_CONTROL: usize = 0x05c;
    /// Virtual interrupt control: V_TPR, V_IRQ, V_INTR_MASKING (bit 24), ...
    pub const V_INTR: usize = 0x060;
    /// Interrupt shadow.
    pub const INTERRUPT_SHADOW: usize = 0x068;
    /// Why the guest exited (`super::super::exit::code`).
    pub const EXITCODE: usize = 0x070;
    /// Exit-specific information.
    pub const EXITINFO1: usize = 0x078;
    /// Exit-specific information.
    pub const EXITINFO2: usize = 0x080;
    /// An event that was being delivered when the exit happened.
    pub const EXITINTINFO: usize = 0x088;
    /// Bit 0: nested paging on.
    pub const NP_CONTROL: usize = 0x090;
    /// An event to inject at VMRUN.
    pub const EVENTINJ: usize = 0x0a8;
    /// The nested page table root.
    pub const N_CR3: usize = 0x0b0;
    /// Fields the CPU may keep cached between VMRUNs (u32).
    pub const CLEAN_BITS: usize = 0x0c0;
    /// The guest RIP after the intercepted instruction (only with the NRIP-save feature).
    pub const NRIP: usize = 0x0c8;

    /// ES, then CS, SS, DS, FS, GS, GDTR, LDTR, IDTR, TR, 16 bytes each.
    pub const ES: usize = 0x400;
    /// Code segment.
    pub const CS: usize = 0x410;
    /// Stack segment.
    pub const SS: usize = 0x420;
    /// Data segment.
    pub const DS: usize = 0x430;
    /// FS (loaded by VMLOAD, not VMRUN).
    pub const FS: usize = 0x440;
    /// GS (loaded by VMLOAD, not VMRUN).
    pub const GS: usize = 0x450;
    /// GDTR (base and limit only).
    pub const GDTR: usize = 0x460;
    /// LDTR (loaded by VMLOAD).
    pub const LDTR: usize = 0x470;
    /// IDTR (base and limit only).
    pub const IDTR: usize = 0x480;
    /// TR (loaded by VMLOAD).
    pub const TR: usize = 0x490;
    /// Current privilege level (u8).
    pub const CPL: usize = 0x4cb;
    /// Guest EFER.
    pub const EFER: usize = 0x4d0;
    /// Guest CR4.
    pub const CR4: usize = 0x548;
    /// Guest CR3.
    pub const CR3: usize = 0x550;
    /// Guest CR0.
    pub const CR0: usize = 0x558;
    /// Guest DR7.
    pub const DR7: usize = 0x560;
    /// Guest DR6.
    pub const DR6: usize = 0x568;
    /// Guest RFLAGS.
    pub const RFLAGS: usize = 0x570;
    /// Guest RIP.
    pub const RIP: usize = 0x578;
    /// Guest RSP.
    pub const RSP: usize = 0x5d8;
    /// Guest RAX (the only general-purpose register the VMCB holds).
    pub const RAX: usize = 0x5f8;
    /// Guest CR2.
    pub const CR2: usize = 0x640;
    /// The guest's PAT under nested paging.
    pub const G_PAT: usize = 0x668;
}

/// Bits of [`off::INTERCEPT_MISC1`].
pub mod misc1 {
    /// Physical interrupts.
    pub const INTR: u32 = 1 << 0;
    /// Non-maskable interrupts (Septum's kick).
    pub const NMI: u32 = 1 << 1;
    /// The guest became able to take the virtual interrupt V_IRQ asks for (an interrupt window).
    pub const VINTR: u32 = 1 << 4;
    /// CPUID.
    pub const CPUID: u32 = 1 << 18;
    /// INVD.
    pub const INVD: u32 = 1 << 22;
    /// HLT.
    pub const HLT: u32 = 1 << 24;
    /// INVLPGA.
    pub const INVLPGA: u32 = 1 << 26;
    /// IN/OUT through the I/O permission map.
    pub const IOIO_PROT: u32 = 1 << 27;
    /// RDMSR/WRMSR through the MSR permission map.
    pub const MSR_PROT: u32 = 1 << 28;
    /// Shutdown (a triple fault in the guest).
    pub const SHUTDOWN: u32 = 1 << 31;
}

/// Bits of [`off::INTERCEPT_MISC2`].
pub mod misc2 {
    /// VMRUN; the CPU refuses a VMCB without it.
    pub const VMRUN: u32 = 1 << 0;
    /// VMMCALL, the hypercall.
    pub const VMMCALL: u32 = 1 << 1;
    /// VMLOAD.
    pub const VMLOAD: u32 = 1 << 2;
    /// VMSAVE.
    pub const VMSAVE: u32 = 1 << 3;
    /// STGI.
    pub const STGI: u32 = 1 << 4;
    /// CLGI.
    pub const CLGI: u32 = 1 << 5;
    /// SKINIT.
    pub const SKINIT: u32 = 1 << 6;
    /// XSETBV: XCR0 is not switched by VMRUN, so a guest write would reach the host.
    pub const XSETBV: u32 = 1 << 13;
}

/// Values of [`off::TLB_CONTROL`].
pub mod tlb {
    /// Flush nothing.
    pub const NONE: u8 = 0;
    /// Flush every ASID (the only choice without the FlushByAsid feature).
    pub const ALL: u8 = 1;
    /// Flush this guest's ASID only.
    pub const THIS_ASID: u8 = 3;
}

/// V_INTR_MASKING in [`off::V_INTR`]: the guest's RFLAGS.IF masks only virtual interrupts, the
/// host's masks physical ones, so a guest cannot block the host's interrupts.
pub const V_INTR_MASKING: u64 = 1 << 24;
/// V_IRQ in [`off::V_INTR`]: a virtual interrupt is requested (with the VINTR intercept, only to
/// learn when the guest can take one), at priority 15 ignoring V_TPR.
pub const V_IRQ_WINDOW: u64 = (1 << 8) | (0xf << 16) | (1 << 20);
/// NP_ENABLE in [`off::NP_CONTROL`].
pub const NP_ENABLE: u64 = 1 << 0;

/// A segment register in the VMCB: selector, packed attributes (descriptor byte 5 in bits 7:0,
/// the flags nibble G/D/L/AVL in bits 11:8), limit and base.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Selector.
    pub selector: u16,
    /// Packed attributes.
    pub attrib: u16,
    /// Limit (expanded, in bytes).
    pub limit: u32,
    /// Base.
    pub base: u64,
}

impl Segment {
    /// 64-bit code: present, DPL 0, execute/read, accessed, L and G.
    pub const CODE64_ATTRIB: u16 = 0xa9b;
    /// Flat data: present, DPL 0, read/write, accessed, D/B and G.
    pub const DATA_ATTRIB: u16 = 0xc93;
    /// A busy 64-bit TSS.
    pub const TSS_ATTRIB: u16 = 0x08b;

    /// A flat 4 GiB segment with `attrib`.
    pub const fn flat(selector: u16, attrib: u16) -> Self {
        Self {
            selector,
            attrib,
            limit: 0xffff_ffff,
            base: 0,
        }
    }
}

/// One VMCB page.
#[repr(C, align(4096))]
pub struct Vmcb {
    bytes: [u8; 4096],
}

impl Default for Vmcb {
    fn default() -> Self {
        Self::new()
    }
}

impl Vmcb {
    /// An all-zero VMCB (no intercepts, nothing valid to run yet).
    pub const fn new() -> Self {
        Self { bytes: [0; 4096] }
    }

    fn get<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut b = [0; N];
        b.copy_from_slice(&self.bytes[at..at + N]);
        b
    }

    /// The u64 at byte offset `at`.
    pub fn read64(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.get(at))
    }

    /// Stores the u64 `v` at byte offset `at`.
    pub fn write64(&mut self, at: usize, v: u64) {
        self.bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// The u32 at byte offset `at`.
    pub fn read32(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.get(at))
    }

    /// Stores the u32 `v` at byte offset `at`.
    pub fn write32(&mut self, at: usize, v: u32) {
        self.bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// Stores the byte `v` at byte offset `at`.
    pub fn write8(&mut self, at: usize, v: u8) {
        self.bytes[at] = v;
    }

    /// The byte at offset `at`.
    pub fn read8(&self, at: usize) -> u8 {
        self.bytes[at]
    }

    /// Writes the segment register at `at` (one of the segment offsets in [`off`]).
    pub fn set_segment(&mut self, at: usize, s: Segment) {
        self.bytes[at..at + 2].copy_from_slice(&s.selector.to_le_bytes());
        self.bytes[at + 2..at + 4].copy_from_slice(&s.attrib.to_le_bytes());
        self.write32(at + 4, s.limit);
        self.write64(at + 8, s.base);
    }

    /// Reads the segment register at `at`.
    pub fn segment(&self, at: usize) -> Segment {
        Segment {
            selector: u16::from_le_bytes(self.get(at)),
            attrib: u16::from_le_bytes(self.get(at + 2)),
            limit: self.read32(at + 4),
            base: self.read64(at + 8),
        }
    }

    /// Guest RIP.
    pub fn rip(&self) -> u64 {
        self.read64(off::RIP)
    }

    /// Sets the guest RIP.
    pub fn set_rip(&mut self, v: u64) {
        self.write64(off::RIP, v);
    }

    /// Guest RAX.
    pub fn rax(&self) -> u64 {
        self.read64(off::RAX)
    }

    /// Sets the guest RAX.
    pub fn set_rax(&mut self, v: u64) {
        self.write64(off::RAX, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::boxed::Box;

    #[test]
    fn offsets_follow_the_apm_table() {
        // Control area: the exit fields follow one another, NRIP after the clean bits.
        assert_eq!(off::EXITINFO1 - off::EXITCODE, 8);
        assert_eq!(off::EXITINTINFO, 0x88);
        assert_eq!(off::N_CR3, 0xb0);
        assert_eq!(off::NRIP, 0xc8);
        // State-save area: ten 16-byte segment registers from 0x400, then the rest.
        assert_eq!(off::TR, off::ES + 9 * 16);
        assert_eq!(off::CR0 - off::CR3, 8);
        assert_eq!(off::RIP - off::RFLAGS, 8);
        assert_eq!(off::RAX, 0x400 + 0x1f8);
        assert_eq!(off::G_PAT, 0x400 + 0x268);
        assert_eq!(core::mem::size_of::<Vmcb>(), 4096);
        assert_eq!(core::mem::align_of::<Vmcb>(), 4096);
    }

    #[test]
    fn fields_round_trip_little_endian() {
        let mut v = Box::new(Vmcb::new());
        v.write64(off::N_CR3, 0x1234_5000);
        v.write32(off::ASID, 3);
        v.write8(off::TLB_CONTROL, tlb::ALL);
        assert_eq!(v.read64(off::N_CR3), 0x1234_5000);
        // ASID and TLB_CONTROL share one quadword: ASID in the low half, the control byte above.
        assert_eq!(v.read64(off::ASID), 3 | (1 << 32));
        v.set_rip(0x10_0000);
        v.set_rax(7);
        assert_eq!((v.rip(), v.rax()), (0x10_0000, 7));
        let cs = Segment::flat(8, Segment::CODE64_ATTRIB);
        v.set_segment(off::CS, cs);
        assert_eq!(v.segment(off::CS), cs);
        assert_eq!(v.read64(off::CS), 8 | (0xa9b << 16) | (0xffff_ffff << 32));
        assert_eq!(v.read8(off::CPL), 0);
    }
}
