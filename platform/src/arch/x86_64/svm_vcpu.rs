//! The x86 vCPU on AMD SVM: one VMCB with the partition's intercepts, permission maps and nested
//! table, the guest's general-purpose registers, and the `vcpu::ArchVcpu` loop steps. `run`
//! applies a pending TLB flush through the VMCB's TLB control, enters the guest and turns the
//! #VMEXIT into a `VmExit` (`arch_x86::svm::exit::decode`); `complete` writes back what the
//! handler decided; a device interrupt, left pending by the INTR intercept, is taken in the host
//! right after the exit and reported as `ExternalInterrupt` with its vector (`ioapic`). The guest
//! starts exactly as under VMX (64-bit mode on the identity tables
//! `vmcs::write_guest_page_tables` put in its memory, no IDT, boot arguments in rdi, rsi, rdx,
//! rcx, r8), with flag bit 0 set in rsi: AMD raises #UD on VMCALL, so the guest must make its
//! hypercalls with VMMCALL.

use super::percpu::{KERNEL_CS, KERNEL_DS, KERNEL_TSS};
use super::vmcs::GUEST_PML4;
use super::{ioapic, svm};
use alloc::boxed::Box;
use arch_x86::guest_msr::{pat_valid, IA32_PAT};
use arch_x86::msr::{guest_efer_write, EFER_LMA, EFER_LME, IA32_EFER};
use arch_x86::svm::bitmaps::{Iopm, Msrpm};
use arch_x86::svm::enter::{enter, GuestRegs};
use arch_x86::svm::exit::{self, ExitInfo};
use arch_x86::svm::vmcb::{self, misc1, misc2, off, Segment, Vmcb};
use arch_x86::svm::{SvmFeatures, EFER_SVME};
use arch_x86::upcall::{handler_rsp, UpcallFrame, HANDLER_RFLAGS};
use vcpu::{ArchVcpu, Completion, Delivery, VmExit};

/// Boot-argument flag (rsi bit 0) telling the test guests to use VMMCALL for hypercalls.
pub const FLAG_VMMCALL: u64 = 1 << 0;
/// `InvalidState` raw value when the vCPU could not be created (no VMRUN happened).
pub const NOT_CREATED: u64 = 1 << 32;

/// The power-on PAT value (WB, WT, UC-, UC repeated).
const PAT_DEFAULT: u64 = 0x0007_0406_0007_0406;
const CR0_ET: u64 = 1 << 4;
/// CR0: PE, ET, NE, PG.
const GUEST_CR0: u64 = (1 << 0) | (1 << 4) | (1 << 5) | (1 << 31);
/// CR4: PAE.
const GUEST_CR4: u64 = 1 << 5;
/// EXITINTINFO / EVENTINJ valid bit.
const EVENT_VALID: u64 = 1 << 31;
/// RFLAGS.IF.
const RFLAGS_IF: u64 = 1 << 9;

/// Everything the creation of a vCPU needs from the partition layer.
pub struct SvmSetup {
    /// The nested CR3: the partition's table root.
    pub ncr3: u64,
    /// First instruction.
    pub entry: u64,
    /// rdi, rsi, rdx, rcx, r8 at entry (the test guests' boot arguments).
    pub args: [u64; 5],
    /// The ports the partition owns, which do not exit.
    pub ports: &'static [board_config::PortRange],
    /// Whether rsi carries the test guests' boot flags (their boot vCPU), so VMMCALL is added.
    pub flags_in_rsi: bool,
    /// Start in real mode, as a STARTUP IPI starts a processor.
    pub real_mode: bool,
    /// The CPU's kick flag, which the entry stub checks with interrupts off.
    pub kick: &'static core::sync::atomic::AtomicBool,
}

/// One vCPU, bound to the CPU that created it.
pub struct SvmVcpu {
    vmcb: Box<Vmcb>,
    regs: GuestRegs,
    last: ExitInfo,
    features: SvmFeatures,
    /// Kept alive (and at a fixed address) for as long as the VMCB points at them.
    _iopm: Box<Iopm>,
    _msrpm: Box<Msrpm>,
    /// Set when the vCPU cannot run; `run` reports it as the first exit.
    broken: Option<&'static str>,
    /// The context an upcall interrupted, while its handler runs.
    saved: Option<UpcallFrame<GuestRegs>>,
    /// The last exit reported was a device vector taken earlier, not a VMRUN's.
    replayed: bool,
}

/// A heap address as the physical address the VMCB needs (the heap is identity-mapped).
fn pa<T>(b: &T) -> u64 {
    b as *const T as u64
}

impl SvmVcpu {
    /// Creates the vCPU on the calling CPU (which must have SVM on).
    pub fn new(setup: &SvmSetup) -> Self {
        let mut iopm = Box::new(Iopm::all_exit());
        for r in setup.ports {
            iopm.allow(r.start, r.size);
        }
        let msrpm = Box::new(Msrpm::for_partition());
        let [rdi, rsi, rdx, rcx, r8] = setup.args;
        let mut v = Self {
            vmcb: Box::new(Vmcb::new()),
            regs: GuestRegs {
                kick: setup.kick.as_ptr() as u64,
                rdi,
                rsi: if setup.flags_in_rsi {
                    rsi | FLAG_VMMCALL
                } else {
                    rsi
                },
                rdx,
                rcx,
                r8,
                ..GuestRegs::default()
            },
            last: ExitInfo::default(),
            features: svm::features(),
            _iopm: iopm,
            _msrpm: msrpm,
            broken: None,
            saved: None,
            replayed: false,
        };
        if svm::on() {
            v.fill(setup);
            // The ASID tagged the previous run's translations on this CPU.
            svm::request_flush();
        } else {
            v.broken = Some("SVM is not on on this CPU");
        }
        v
    }

    /// A vCPU that cannot run; its first `run` reports why as an invalid state.
    pub fn unavailable(why: &'static str) -> Self {
        Self {
            vmcb: Box::new(Vmcb::new()),
            regs: GuestRegs::default(),
            last: ExitInfo::default(),
            features: SvmFeatures::default(),
            _iopm: Box::new(Iopm::all_exit()),
            _msrpm: Box::new(Msrpm::all_exit()),
            broken: Some(why),
            saved: None,
            replayed: false,
        }
    }

    /// The control area: what exits, the maps, the ASID and nested paging.
    fn fill(&mut self, setup: &SvmSetup) {
        let iopm = pa(&*self._iopm);
        let msrpm = pa(&*self._msrpm);
        let v = &mut *self.vmcb;
        v.write32(
            off::INTERCEPT_MISC1,
            misc1::INTR
                | misc1::NMI
                | misc1::CPUID
                | misc1::INVD
                | misc1::HLT
                | misc1::INVLPGA
                | misc1::IOIO_PROT
                | misc1::MSR_PROT
                | misc1::SHUTDOWN,
        );
        v.write32(
            off::INTERCEPT_MISC2,
            misc2::VMRUN
                | misc2::VMMCALL
                | misc2::VMLOAD
                | misc2::VMSAVE
                | misc2::STGI
                | misc2::CLGI
                | misc2::SKINIT
                | misc2::XSETBV,
        );
        v.write64(off::IOPM_BASE, iopm);
        v.write64(off::MSRPM_BASE, msrpm);
        v.write32(off::ASID, svm::asid());
        v.write64(off::V_INTR, vmcb::V_INTR_MASKING);
        v.write64(off::NP_CONTROL, vmcb::NP_ENABLE);
        v.write64(off::N_CR3, setup.ncr3);
        fill_guest(v, setup.entry);
        if setup.real_mode {
            real_mode(v, setup.entry);
        }
    }
}

/// The guest's start state: 64-bit mode, flat segments, paging on the identity tables at
/// [`GUEST_PML4`], interrupts off, no IDT (an exception becomes a shutdown, which stops this
/// partition alone). EFER.SVME must be set in the guest too, or VMRUN refuses the VMCB.
fn fill_guest(v: &mut Vmcb, entry: u64) {
    let data = Segment::flat(KERNEL_DS, Segment::DATA_ATTRIB);
    for at in [off::ES, off::SS, off::DS, off::FS, off::GS] {
        v.set_segment(at, data);
    }
    v.set_segment(off::CS, Segment::flat(KERNEL_CS, Segment::CODE64_ATTRIB));
    v.set_segment(
        off::TR,
        Segment {
            selector: KERNEL_TSS,
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
    v.write64(off::CR3, GUEST_PML4);
    v.write64(off::CR4, GUEST_CR4);
    v.write64(off::DR7, 0x400);
    v.write64(off::DR6, 0xffff_0ff0);
    v.write64(off::RFLAGS, 0x2);
    v.write64(off::RSP, 0);
    v.set_rip(entry);
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

impl SvmVcpu {
    /// One VMRUN and the exit that ends it.
    fn run_once(&mut self) -> VmExit {
        if let Some(why) = self.broken {
            log::error!("svm: cannot enter the guest: {why}");
            return VmExit::InvalidState { raw: NOT_CREATED };
        }
        let control = svm::take_tlb_control();
        self.vmcb.write8(off::TLB_CONTROL, control);
        let vmcb_pa = pa(&*self.vmcb);
        // SAFETY: SVM is on on this CPU (checked at creation; vCPUs never move) with its host
        // save area; the VMCB is complete (VMRUN intercepted, ASID non-zero) and its permission
        // maps and nested table live as long as this vCPU and its partition; the host-state page
        // is this CPU's.
        let ran = unsafe {
            enter(
                &mut self.regs,
                &mut self.vmcb,
                vmcb_pa,
                svm::host_state_pa(),
            )
        };
        if !ran {
            // Kicked before the guest could run: report the kick as the exit it would have been
            // (`complete` then leaves the guest state alone, as for a replayed vector).
            self.replayed = true;
            return VmExit::ExternalInterrupt { vector: 2 };
        }
        // An injected event was delivered or is in EXITINTINFO now (`complete` re-injects it);
        // either way it must not be injected again by a stale valid bit.
        self.vmcb.write64(off::EVENTINJ, 0);
        let v = &*self.vmcb;
        if v.read64(off::EXITCODE) == exit::code::VINTR {
            // The window is open: withdraw the request; `inject_interrupt` injects for real.
            let v = &mut *self.vmcb;
            v.write64(off::V_INTR, vmcb::V_INTR_MASKING);
            let misc = v.read32(off::INTERCEPT_MISC1);
            v.write32(off::INTERCEPT_MISC1, misc & !misc1::VINTR);
        }
        let v = &*self.vmcb;
        let intr = v.read64(off::EXITCODE) == exit::code::INTR;
        if intr {
            // The interrupt is still pending in the local APIC (the intercept does not take it):
            // the hypervisor's timer or a device line's vector. Take and end it, or every VMRUN
            // would exit again at once; a device vector is recorded as it is taken.
            // SAFETY: the fixed vectors the hypervisor raises or programs are the timer's and the
            // device lines' (`ioapic`), whose IDT handlers end them and return (`idt`).
            unsafe { arch_x86::regs::take_pending_interrupt() };
        }
        self.last = ExitInfo {
            code: v.read64(off::EXITCODE),
            info1: v.read64(off::EXITINFO1),
            info2: v.read64(off::EXITINFO2),
            int_info: v.read64(off::EXITINTINFO),
            rip: v.rip(),
            nrip: if self.features.nrip_save {
                v.read64(off::NRIP)
            } else {
                0
            },
        };
        let exit = exit::decode(&self.last, &self.regs);
        if intr {
            // A device interrupt taken just now is what this exit reports (any others the
            // window let in follow as exits of their own, `run`).
            if let Some(vector) = ioapic::take_pending() {
                return VmExit::ExternalInterrupt {
                    vector: vector.into(),
                };
            }
        }
        super::mmio::decode(exit, &self.last, v.read64(off::CR3), &self.regs)
    }
}

impl ArchVcpu for SvmVcpu {
    fn run(&mut self) -> VmExit {
        // Device vectors the host took after an earlier exit and has not reported yet: one exit
        // each, without entering the guest (`complete` then leaves the guest state alone).
        if let Some(vector) = ioapic::take_pending() {
            self.replayed = true;
            return VmExit::ExternalInterrupt {
                vector: vector.into(),
            };
        }
        loop {
            let exit = self.run_once();
            // EFER is CPU state the guest owns (within limits, and SVME stays set for VMRUN):
            // emulated here, not an event.
            let value = match exit {
                VmExit::MsrRead { msr: IA32_EFER } => {
                    Completion::Value(self.vmcb.read64(off::EFER) & !EFER_SVME)
                }
                VmExit::MsrWrite {
                    msr: IA32_EFER,
                    value,
                } => {
                    // SVME is the hypervisor's: VMRUN needs it in the guest's EFER too.
                    let efer = guest_efer_write(self.vmcb.read64(off::EFER), value) | EFER_SVME;
                    self.vmcb.write64(off::EFER, efer);
                    Completion::Skip
                }
                // The guest's PAT is the VMCB's G_PAT under nested paging: switched by VMRUN.
                VmExit::MsrRead { msr: IA32_PAT } => {
                    Completion::Value(self.vmcb.read64(off::G_PAT))
                }
                VmExit::MsrWrite {
                    msr: IA32_PAT,
                    value,
                } if pat_valid(value) => {
                    self.vmcb.write64(off::G_PAT, value);
                    Completion::Skip
                }
                other => return other,
            };
            let rip = exit::complete(&self.last, value, &mut self.regs);
            self.vmcb.set_rip(rip);
        }
    }

    fn complete(&mut self, completion: Completion) {
        if core::mem::take(&mut self.replayed) {
            // No VMRUN happened since the last completion: nothing to advance or re-inject (and
            // an upcall entered in between keeps its entry point).
            return;
        }
        let completion = super::mmio::complete(completion, &mut self.regs, &mut self.last);
        let rip = exit::complete(&self.last, completion, &mut self.regs);
        self.vmcb.set_rip(rip);
        // An event the exit interrupted (e.g. a nested page fault while the CPU delivered an
        // exception) is delivered again, or the guest would lose it; a fault the handler raised
        // on the instruction itself is delivered instead (the instruction never completed, so
        // nothing it interrupted is lost).
        let again = if let Completion::Exception { vector, error_code } = completion {
            exit::exception_event(vector, error_code)
        } else if self.last.int_info & EVENT_VALID != 0 {
            self.last.int_info
        } else {
            0
        };
        self.vmcb.write64(off::EVENTINJ, again);
    }

    fn deliver_upcall(&mut self, d: Delivery) -> bool {
        if self.saved.is_some() || self.broken.is_some() {
            return false;
        }
        let v = &mut *self.vmcb;
        self.saved = Some(UpcallFrame {
            regs: self.regs,
            rip: v.rip(),
            rsp: v.read64(off::RSP),
            rflags: v.read64(off::RFLAGS),
        });
        self.regs.rdi = d.irq.code();
        self.regs.rsi = d.detail;
        v.set_rip(d.upcall.entry);
        v.write64(off::RSP, handler_rsp(d.upcall.stack));
        v.write64(off::RFLAGS, HANDLER_RFLAGS);
        true
    }

    fn inject_interrupt(&mut self, vector: u8) -> bool {
        if self.broken.is_some() {
            return false;
        }
        let v = &mut *self.vmcb;
        let redelivering = v.read64(off::EVENTINJ) & EVENT_VALID != 0;
        let shadow = v.read64(off::INTERRUPT_SHADOW) & 1 != 0;
        let ready = !redelivering && !shadow && v.read64(off::RFLAGS) & RFLAGS_IF != 0;
        if !ready {
            // Ask for a virtual interrupt only to learn when the guest can take one: the VINTR
            // intercept exits before it is delivered.
            v.write64(off::V_INTR, vmcb::V_INTR_MASKING | vmcb::V_IRQ_WINDOW);
            let misc = v.read32(off::INTERCEPT_MISC1);
            v.write32(off::INTERCEPT_MISC1, misc | misc1::VINTR);
            return false;
        }
        // Type 0 (external interrupt).
        v.write64(off::EVENTINJ, EVENT_VALID | u64::from(vector));
        true
    }

    fn return_from_upcall(&mut self) {
        let Some(f) = self.saved.take() else { return };
        self.regs = f.regs;
        let v = &mut *self.vmcb;
        v.set_rip(f.rip);
        v.write64(off::RSP, f.rsp);
        v.write64(off::RFLAGS, f.rflags);
    }
    /// Ignored: x86 interrupts are vectors (`inject_interrupt`), not lines.
    fn set_irq_lines(&mut self, _lines: u32) {}
}
