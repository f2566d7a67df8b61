//! The x86 vCPU on AMD SVM, as a `vcpu::ArchVcpu`: one VMCB with the partition's intercepts,
//! permission maps and nested table ([`super::start`]), the guest's general-purpose registers,
//! and the loop steps. `run` applies a pending TLB flush through the VMCB's TLB control, enters
//! the guest and turns the #VMEXIT into a `VmExit` ([`super::exit::decode`]), emulating on the
//! way the MSRs the guest owns outright (EFER, PAT); `complete` writes back what the handler
//! decided and re-injects an event the exit interrupted; `inject_interrupt` injects a vector or,
//! when the guest cannot take one, opens an interrupt window (a virtual interrupt whose VINTR
//! intercept reports when it could be delivered). A device interrupt, left pending by the INTR
//! intercept, is taken in the host right after the exit and reported as `ExternalInterrupt` with
//! its vector.
//!
//! Everything outside the VMCB (VMRUN, the CPU's features, ASID and flush requests, the host's
//! interrupts, instruction fetches for MMIO) goes through [`SvmHw`], so all of this is tested on
//! the host against a model (`vcpu_tests.rs`); the image holds the one implementation that runs
//! VMRUN.

use super::bitmaps::{Iopm, Msrpm};
use super::enter::GuestRegs;
use super::exit::{self, ExitInfo};
use super::start::{self, ControlAddrs, VcpuConfig, FLAG_VMMCALL};
use super::vmcb::{self, misc1, off, tlb, Vmcb};
use super::{SvmFeatures, EFER_SVME};
use crate::guest_msr::{pat_valid, IA32_PAT};
use crate::msr::{guest_efer_write, IA32_EFER};
use crate::upcall::{handler_rsp, UpcallFrame, HANDLER_RFLAGS};
use alloc::boxed::Box;
use vcpu::{ArchVcpu, Completion, Delivery, VmExit};

/// `InvalidState` raw value when the vCPU could not be created (no VMRUN happened).
pub const NOT_CREATED: u64 = 1 << 32;

/// EXITINTINFO / EVENTINJ valid bit.
const EVENT_VALID: u64 = 1 << 31;
/// RFLAGS.IF.
const RFLAGS_IF: u64 = 1 << 9;
/// What a kick reports as: the NMI vector.
const KICK_VECTOR: u32 = 2;

/// The CPU a vCPU runs on and the host around it; one implementation per world (the running
/// CPU in the image, a model in the host tests). A vCPU stays on the CPU that created it, so
/// "this CPU" is always the same one.
pub trait SvmHw {
    /// Whether SVM is on on this CPU (EFER.SVME with a host save area).
    fn svm_on(&self) -> bool;
    /// What this CPU's SVM offers.
    fn features(&self) -> SvmFeatures;
    /// The ASID of vCPUs on this CPU (never 0, the host's).
    fn asid(&self) -> u32;
    /// The physical address of the host memory at virtual address `addr` (the VMCB's
    /// permission maps, which the CPU reads by physical address).
    fn phys_addr(&self, addr: usize) -> u64;
    /// Asks this CPU's next VMRUN to drop its guest translations.
    fn request_flush(&mut self);
    /// Consumes this CPU's flush request: whether the next VMRUN must flush.
    fn take_flush_request(&mut self) -> bool;
    /// Runs the guest of `vmcb` with `regs` until its next #VMEXIT (the exit fields and the
    /// guest state are then in `vmcb`, its other registers in `regs`): `true`; `false` when the
    /// CPU's kick flag abandoned the entry and the guest did not run.
    fn vmrun(&mut self, vmcb: &mut Vmcb, regs: &mut GuestRegs) -> bool;
    /// Takes and ends the host interrupt an INTR exit left pending in the local APIC (the
    /// intercept does not acknowledge it), recording a device vector for
    /// [`SvmHw::take_device_vector`].
    fn take_host_interrupt(&mut self);
    /// The lowest device vector the host took on this CPU and has not reported yet.
    fn take_device_vector(&mut self) -> Option<u8>;
    /// `exit` as the handler should see it: a nested page fault in an emulated device window
    /// becomes an MMIO access once the instruction at `last.rip` (under the guest's page tables
    /// at `cr3`) is fetched and decoded; anything else passes through.
    fn decode_mmio(&mut self, exit: VmExit, last: &ExitInfo, cr3: u64, regs: &GuestRegs) -> VmExit;
    /// Applies the handler's `completion` of the MMIO access [`SvmHw::decode_mmio`] decoded last
    /// (a load's register, the instruction's length into `last.nrip`), returning what is left to
    /// complete; any other completion passes through.
    fn complete_mmio(
        &mut self,
        completion: Completion,
        regs: &mut GuestRegs,
        last: &mut ExitInfo,
    ) -> Completion;
}

/// The VMCB TLB control for a VMRUN: a requested flush drops this ASID's translations when the
/// CPU can flush by ASID, every ASID's otherwise.
pub const fn tlb_control(flush: bool, flush_by_asid: bool) -> u8 {
    if !flush {
        tlb::NONE
    } else if flush_by_asid {
        tlb::THIS_ASID
    } else {
        tlb::ALL
    }
}

/// One vCPU, bound to the CPU that created it.
pub struct SvmVcpu<H: SvmHw> {
    hw: H,
    vmcb: Box<Vmcb>,
    regs: GuestRegs,
    last: ExitInfo,
    features: SvmFeatures,
    /// Kept at a fixed address for as long as the VMCB points at them.
    iopm: Box<Iopm>,
    msrpm: Box<Msrpm>,
    /// Set when the vCPU cannot run; `run` reports it as the first exit.
    broken: Option<&'static str>,
    /// The context an upcall interrupted, while its handler runs.
    saved: Option<UpcallFrame<GuestRegs>>,
    /// The last exit reported was not a VMRUN's (a device vector taken earlier, or a kick that
    /// abandoned the entry), so its completion has nothing to apply.
    replayed: bool,
}

impl<H: SvmHw> SvmVcpu<H> {
    /// Creates the vCPU on the CPU of `hw` (which must have SVM on), letting the guest use the
    /// ports `[start, start + size)` of `ports` directly.
    pub fn new(hw: H, config: &VcpuConfig, ports: impl IntoIterator<Item = (u16, u16)>) -> Self {
        let mut iopm = Box::new(Iopm::all_exit());
        for (start, size) in ports {
            iopm.allow(start, size);
        }
        let [rdi, rsi, rdx, rcx, r8] = config.args;
        let features = hw.features();
        let mut v = Self {
            hw,
            vmcb: Box::new(Vmcb::new()),
            regs: GuestRegs {
                kick: config.kick.as_ptr() as u64,
                rdi,
                rsi: if config.flags_in_rsi {
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
            features,
            iopm,
            msrpm: Box::new(Msrpm::for_partition()),
            broken: None,
            saved: None,
            replayed: false,
        };
        if v.hw.svm_on() {
            let addrs = ControlAddrs {
                iopm: v.hw.phys_addr((&*v.iopm as *const Iopm).addr()),
                msrpm: v.hw.phys_addr((&*v.msrpm as *const Msrpm).addr()),
                asid: v.hw.asid(),
            };
            start::fill(&mut v.vmcb, config, addrs);
            // The ASID tagged the previous run's translations on this CPU.
            v.hw.request_flush();
        } else {
            v.broken = Some("SVM is not on on this CPU");
        }
        v
    }

    /// A vCPU that cannot run; its first `run` reports why as an invalid state.
    pub fn unavailable(hw: H, why: &'static str) -> Self {
        Self {
            hw,
            vmcb: Box::new(Vmcb::new()),
            regs: GuestRegs::default(),
            last: ExitInfo::default(),
            features: SvmFeatures::default(),
            iopm: Box::new(Iopm::all_exit()),
            msrpm: Box::new(Msrpm::all_exit()),
            broken: Some(why),
            saved: None,
            replayed: false,
        }
    }

    /// The VMCB as the next VMRUN will find it.
    pub fn vmcb(&self) -> &Vmcb {
        &self.vmcb
    }

    /// The guest's general-purpose registers (RAX included) as the next VMRUN will load them.
    pub fn regs(&self) -> &GuestRegs {
        &self.regs
    }

    /// The I/O permission map the VMCB points at.
    pub fn iopm(&self) -> &Iopm {
        &self.iopm
    }

    /// The CPU this vCPU runs on.
    pub fn hw(&mut self) -> &mut H {
        &mut self.hw
    }

    /// One VMRUN and the exit that ends it.
    fn run_once(&mut self) -> VmExit {
        if let Some(why) = self.broken {
            log::error!("svm: cannot enter the guest: {why}");
            return VmExit::InvalidState { raw: NOT_CREATED };
        }
        let flush = self.hw.take_flush_request();
        let control = tlb_control(flush, self.features.flush_by_asid);
        self.vmcb.write8(off::TLB_CONTROL, control);
        if !self.hw.vmrun(&mut self.vmcb, &mut self.regs) {
            // Kicked before the guest could run: report the kick as the exit it would have been
            // (`complete` then leaves the guest state alone, as for a replayed vector).
            self.replayed = true;
            return VmExit::ExternalInterrupt {
                vector: KICK_VECTOR,
            };
        }
        // An injected event was delivered or is in EXITINTINFO now (`complete` re-injects it);
        // either way it must not be injected again by a stale valid bit.
        self.vmcb.write64(off::EVENTINJ, 0);
        let code = self.vmcb.read64(off::EXITCODE);
        if code == exit::code::VINTR {
            // The window is open: withdraw the request; `inject_interrupt` injects for real.
            self.close_interrupt_window();
        }
        let intr = code == exit::code::INTR;
        if intr {
            // The interrupt is still pending in the local APIC: the hypervisor's timer or a
            // device line's vector. Take and end it, or every VMRUN would exit again at once.
            self.hw.take_host_interrupt();
        }
        let v = &*self.vmcb;
        self.last = ExitInfo {
            code,
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
            if let Some(vector) = self.hw.take_device_vector() {
                return VmExit::ExternalInterrupt {
                    vector: vector.into(),
                };
            }
        }
        let cr3 = self.vmcb.read64(off::CR3);
        self.hw.decode_mmio(exit, &self.last, cr3, &self.regs)
    }

    /// Asks for a virtual interrupt only to learn when the guest can take one: the VINTR
    /// intercept exits before it is delivered.
    fn open_interrupt_window(&mut self) {
        let v = &mut *self.vmcb;
        v.write64(off::V_INTR, vmcb::V_INTR_MASKING | vmcb::V_IRQ_WINDOW);
        let misc = v.read32(off::INTERCEPT_MISC1);
        v.write32(off::INTERCEPT_MISC1, misc | misc1::VINTR);
    }

    fn close_interrupt_window(&mut self) {
        let v = &mut *self.vmcb;
        v.write64(off::V_INTR, vmcb::V_INTR_MASKING);
        let misc = v.read32(off::INTERCEPT_MISC1);
        v.write32(off::INTERCEPT_MISC1, misc & !misc1::VINTR);
    }

    /// The guest-owned MSR access `exit` emulated in place, if it is one: the completion that
    /// finishes it.
    fn emulate_msr(&mut self, exit: &VmExit) -> Option<Completion> {
        let v = &mut *self.vmcb;
        Some(match *exit {
            // EFER is CPU state the guest owns (within limits); SVME is the hypervisor's and
            // stays set, since VMRUN needs it in the guest's EFER too.
            VmExit::MsrRead { msr: IA32_EFER } => {
                Completion::Value(v.read64(off::EFER) & !EFER_SVME)
            }
            VmExit::MsrWrite {
                msr: IA32_EFER,
                value,
            } => {
                let efer = guest_efer_write(v.read64(off::EFER), value) | EFER_SVME;
                v.write64(off::EFER, efer);
                Completion::Skip
            }
            // The guest's PAT is the VMCB's G_PAT under nested paging: switched by VMRUN.
            VmExit::MsrRead { msr: IA32_PAT } => Completion::Value(v.read64(off::G_PAT)),
            VmExit::MsrWrite {
                msr: IA32_PAT,
                value,
            } if pat_valid(value) => {
                v.write64(off::G_PAT, value);
                Completion::Skip
            }
            _ => return None,
        })
    }
}

impl<H: SvmHw> ArchVcpu for SvmVcpu<H> {
    fn run(&mut self) -> VmExit {
        // Device vectors the host took after an earlier exit and has not reported yet: one exit
        // each, without entering the guest (`complete` then leaves the guest state alone).
        if let Some(vector) = self.hw.take_device_vector() {
            self.replayed = true;
            return VmExit::ExternalInterrupt {
                vector: vector.into(),
            };
        }
        loop {
            let exit = self.run_once();
            let Some(value) = self.emulate_msr(&exit) else {
                return exit;
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
        let completion = self
            .hw
            .complete_mmio(completion, &mut self.regs, &mut self.last);
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
        let v = &*self.vmcb;
        let redelivering = v.read64(off::EVENTINJ) & EVENT_VALID != 0;
        let shadow = v.read64(off::INTERRUPT_SHADOW) & 1 != 0;
        let ready = !redelivering && !shadow && v.read64(off::RFLAGS) & RFLAGS_IF != 0;
        if !ready {
            self.open_interrupt_window();
            return false;
        }
        // Type 0 (external interrupt).
        self.vmcb
            .write64(off::EVENTINJ, EVENT_VALID | u64::from(vector));
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
