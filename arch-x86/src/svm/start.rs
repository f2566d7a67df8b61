//! The VMCB an SVM vCPU starts from: the control area (what exits, where the permission maps and
//! the nested table are, the ASID, virtual interrupt masking) and the guest's first state, either
//! the 64-bit start every partition's boot vCPU gets or the real-mode start a STARTUP IPI gives a
//! processor. Everything the partition decides (entry, boot arguments, nested table, page tables,
//! selectors) arrives in a [`VcpuConfig`]; nothing here reads the CPU.

use super::vmcb::{self, misc1, misc2, off, Segment, Vmcb};
use super::EFER_SVME;
use crate::guest_boot::Selectors;
use crate::msr::{EFER_LMA, EFER_LME};
use core::sync::atomic::AtomicBool;

/// Boot-argument flag (rsi bit 0) telling the test guests to use VMMCALL for hypercalls: AMD
/// raises #UD on VMCALL.
pub const FLAG_VMMCALL: u64 = 1 << 0;

/// The power-on PAT value (WB, WT, UC-, UC repeated).
pub const PAT_DEFAULT: u64 = 0x0007_0406_0007_0406;
const CR0_ET: u64 = 1 << 4;
/// CR0: PE, ET, NE, PG.
const GUEST_CR0: u64 = (1 << 0) | (1 << 4) | (1 << 5) | (1 << 31);
/// CR4: PAE.
const GUEST_CR4: u64 = 1 << 5;

/// The first intercept word: physical interrupts and NMIs (the host's, and the kick), the
/// instructions the handler emulates or refuses, I/O and MSRs through their maps, and shutdown
/// (a triple fault stops this partition alone).
pub const INTERCEPTS_MISC1: u32 = misc1::INTR
    | misc1::NMI
    | misc1::CPUID
    | misc1::INVD
    | misc1::HLT
    | misc1::INVLPGA
    | misc1::IOIO_PROT
    | misc1::MSR_PROT
    | misc1::SHUTDOWN;

/// The second intercept word: VMMCALL (hypercalls) and every SVM instruction (no nested
/// virtualization; VMRUN's intercept is also one VMRUN itself requires), and XSETBV (XCR0 is not
/// switched).
pub const INTERCEPTS_MISC2: u32 = misc2::VMRUN
    | misc2::VMMCALL
    | misc2::VMLOAD
    | misc2::VMSAVE
    | misc2::STGI
    | misc2::CLGI
    | misc2::SKINIT
    | misc2::XSETBV;

/// Everything the creation of a vCPU needs from the partition layer.
#[derive(Clone, Copy, Debug)]
pub struct VcpuConfig {
    /// The nested CR3: the partition's table root.
    pub ncr3: u64,
    /// First instruction.
    pub entry: u64,
    /// rdi, rsi, rdx, rcx, r8 at entry (the test guests' boot arguments).
    pub args: [u64; 5],
    /// Whether rsi carries the test guests' boot flags (their boot vCPU), so [`FLAG_VMMCALL`] is
    /// added.
    pub flags_in_rsi: bool,
    /// Start in real mode, as a STARTUP IPI starts a processor.
    pub real_mode: bool,
    /// The guest-physical root of the identity page tables a 64-bit start runs on (guest CR3).
    pub page_tables: u64,
    /// The 64-bit start's selectors.
    pub selectors: Selectors,
    /// The CPU's kick flag, which the entry stub checks with interrupts off.
    pub kick: &'static AtomicBool,
}

/// Where the control area points and which ASID it runs under: host facts, not the
/// partition's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlAddrs {
    /// Physical address of the I/O permission map.
    pub iopm: u64,
    /// Physical address of the MSR permission map.
    pub msrpm: u64,
    /// The ASID (never 0, the host's).
    pub asid: u32,
}

/// Fills `v` for `config`: the control area, then the start state.
pub fn fill(v: &mut Vmcb, config: &VcpuConfig, addrs: ControlAddrs) {
    v.write32(off::INTERCEPT_MISC1, INTERCEPTS_MISC1);
    v.write32(off::INTERCEPT_MISC2, INTERCEPTS_MISC2);
    v.write64(off::IOPM_BASE, addrs.iopm);
    v.write64(off::MSRPM_BASE, addrs.msrpm);
    v.write32(off::ASID, addrs.asid);
    v.write64(off::V_INTR, vmcb::V_INTR_MASKING);
    v.write64(off::NP_CONTROL, vmcb::NP_ENABLE);
    v.write64(off::N_CR3, config.ncr3);
    long_mode(v, config);
    if config.real_mode {
        real_mode(v, config.entry);
    }
}

/// The guest's 64-bit start state: flat segments, paging on the identity tables at
/// `config.page_tables`, interrupts off, no IDT (an exception becomes a shutdown, which stops
/// this partition alone). EFER.SVME must be set in the guest too, or VMRUN refuses the VMCB.
fn long_mode(v: &mut Vmcb, config: &VcpuConfig) {
    let sel = config.selectors;
    let data = Segment::flat(sel.data, Segment::DATA_ATTRIB);
    for at in [off::ES, off::SS, off::DS, off::FS, off::GS] {
        v.set_segment(at, data);
    }
    v.set_segment(off::CS, Segment::flat(sel.code, Segment::CODE64_ATTRIB));
    v.set_segment(
        off::TR,
        Segment {
            selector: sel.tss,
            attrib: Segment::TSS_ATTRIB,
            limit: 0x67,
            base: 0,
        },
    );
    v.set_segment(off::LDTR, Segment::default());
    v.set_segment(off::GDTR, Segment::default());
    v.set_segment(off::IDTR, Segment::default());
    v.write8(off::CPL, 0);
    v.write64(off::EFER, EFER_SVME | EFER_LME | EFER_LMA);
    v.write64(off::CR0, GUEST_CR0);
    v.write64(off::CR3, config.page_tables);
    v.write64(off::CR4, GUEST_CR4);
    v.write64(off::DR7, 0x400);
    v.write64(off::DR6, 0xffff_0ff0);
    v.write64(off::RFLAGS, 0x2);
    v.write64(off::RSP, 0);
    v.set_rip(config.entry);
    v.write64(off::G_PAT, PAT_DEFAULT);
}

/// The start state a STARTUP IPI gives a processor: real mode with CS = `entry >> 4` and IP 0,
/// paging and protection off, EFER only SVME (which VMRUN needs), 64 KiB segments, descriptor
/// tables at 0.
fn real_mode(v: &mut Vmcb, entry: u64) {
    let seg = |selector: u16, base: u64, attrib: u16| Segment {
        selector,
        attrib,
        limit: 0xffff,
        base,
    };
    v.set_segment(off::CS, seg((entry >> 4) as u16, entry, 0x9b));
    for at in [off::ES, off::SS, off::DS, off::FS, off::GS] {
        v.set_segment(at, seg(0, 0, 0x93));
    }
    v.set_segment(off::TR, seg(0, 0, Segment::TSS_ATTRIB));
    v.set_segment(off::GDTR, seg(0, 0, 0));
    v.set_segment(off::IDTR, seg(0, 0, 0));
    v.write64(off::EFER, EFER_SVME);
    v.write64(off::CR0, CR0_ET);
    v.write64(off::CR3, 0);
    v.write64(off::CR4, 0);
    v.set_rip(0);
}
