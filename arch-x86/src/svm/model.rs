//! The host model the SVM vCPU tests run against: a CPU with settable features, ASID and flush
//! request, a record of every VMRUN (the VMCB fields the CPU would act on, and the registers),
//! and a script of exits for VMRUN to play back by writing the VMCB's exit fields and guest state
//! as the CPU would. The host side is modelled too: a pending host interrupt that INTR exits take,
//! device vectors waiting to be reported, and an MMIO decoder that turns a nested page fault into
//! a scripted access. It stands in for the CPU so intercepts, start state, completions and
//! injections are checked without SVM hardware. The vCPU the tests build on it, and the exits
//! they script, are made here too.

extern crate std;

use super::enter::GuestRegs;
use super::exit::ExitInfo;
use super::start::VcpuConfig;
use super::vcpu::{SvmHw, SvmVcpu};
use super::vmcb::{off, Vmcb};
use super::SvmFeatures;
use crate::guest_boot::Selectors;
use crate::mmio_script::MmioScript;
use core::sync::atomic::AtomicBool;
use std::boxed::Box;
use std::collections::VecDeque;
use std::vec::Vec;
use vcpu::{Completion, VmExit};

/// The guest's run until its exit: what the CPU writes into the VMCB and the registers.
type Run = Box<dyn FnOnce(&mut Vmcb, &mut GuestRegs)>;

/// One VMRUN: what it was asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub tlb_control: u8,
    pub eventinj: u64,
    pub rip: u64,
    pub v_intr: u64,
    pub misc1: u32,
    pub regs: GuestRegs,
}

/// One scripted VMRUN.
pub enum Step {
    /// The guest runs and exits.
    Exit(Run),
    /// The kick flag was set: the entry is abandoned before VMRUN.
    Kicked,
}

/// The CPU and host as the vCPU sees them.
pub struct Model {
    pub on: bool,
    pub features: SvmFeatures,
    pub asid: u32,
    /// This CPU's flush request.
    pub flush: bool,
    pub flush_requests: usize,
    pub script: VecDeque<Step>,
    pub entries: Vec<Entry>,
    /// Device vectors the host interrupt an INTR exit leaves pending will record when taken.
    pub pending_host_irq: Vec<u8>,
    pub host_interrupts_taken: usize,
    /// Device vectors taken and not yet reported.
    pub device_vectors: VecDeque<u8>,
    /// The host's MMIO decode, as the test scripts it.
    pub mmio: MmioScript,
}

/// QEMU 10.0.2 TCG's SVM (`notes/svm-facts.md`): nested paging, 16 ASIDs, no NRIP save, no
/// flush by ASID.
pub const QEMU_TCG: SvmFeatures = SvmFeatures::decode(1, 0x10, 0x1001_0001);

impl Model {
    pub fn new() -> Self {
        Self {
            on: true,
            features: QEMU_TCG,
            asid: 3,
            flush: false,
            flush_requests: 0,
            script: VecDeque::new(),
            entries: Vec::new(),
            pending_host_irq: Vec::new(),
            host_interrupts_taken: 0,
            device_vectors: VecDeque::new(),
            mmio: MmioScript::default(),
        }
    }

    /// Queues a run that does whatever `run` does to the VMCB and the registers.
    pub fn exit_with(&mut self, run: impl FnOnce(&mut Vmcb, &mut GuestRegs) + 'static) {
        self.script.push_back(Step::Exit(Box::new(run)));
    }
}

/// Writes the exit fields as the CPU does at every #VMEXIT.
pub fn write_exit(v: &mut Vmcb, code: u64, info1: u64, info2: u64, int_info: u64) {
    v.write64(off::EXITCODE, code);
    v.write64(off::EXITINFO1, info1);
    v.write64(off::EXITINFO2, info2);
    v.write64(off::EXITINTINFO, int_info);
}

impl SvmHw for Model {
    fn svm_on(&self) -> bool {
        self.on
    }

    fn features(&self) -> SvmFeatures {
        self.features
    }

    fn asid(&self) -> u32 {
        self.asid
    }

    fn phys_addr(&self, addr: usize) -> u64 {
        addr as u64
    }

    fn request_flush(&mut self) {
        self.flush = true;
        self.flush_requests += 1;
    }

    fn take_flush_request(&mut self) -> bool {
        core::mem::take(&mut self.flush)
    }

    fn vmrun(&mut self, vmcb: &mut Vmcb, regs: &mut GuestRegs) -> bool {
        let step = self.script.pop_front().expect("a VMRUN nobody scripted");
        let Step::Exit(run) = step else {
            return false;
        };
        self.entries.push(Entry {
            tlb_control: vmcb.read8(off::TLB_CONTROL),
            eventinj: vmcb.read64(off::EVENTINJ),
            rip: vmcb.rip(),
            v_intr: vmcb.read64(off::V_INTR),
            misc1: vmcb.read32(off::INTERCEPT_MISC1),
            regs: *regs,
        });
        run(vmcb, regs);
        true
    }

    fn take_host_interrupt(&mut self) {
        self.host_interrupts_taken += 1;
        self.device_vectors.extend(self.pending_host_irq.drain(..));
    }

    fn take_device_vector(&mut self) -> Option<u8> {
        self.device_vectors.pop_front()
    }

    fn decode_mmio(&mut self, exit: VmExit, _: &ExitInfo, cr3: u64, _: &GuestRegs) -> VmExit {
        self.mmio.decode(exit, cr3)
    }

    fn complete_mmio(
        &mut self,
        completion: Completion,
        regs: &mut GuestRegs,
        last: &mut ExitInfo,
    ) -> Completion {
        let (left, done) = self.mmio.complete(completion, &mut regs.rax);
        if let Some(len) = done {
            last.nrip = last.rip + u64::from(len);
        }
        left
    }
}

/// The kick flag of the tests' CPU.
pub static KICK: AtomicBool = AtomicBool::new(false);

/// The tests' entry point.
pub const ENTRY: u64 = 0x10_0000;
/// Where the scripted exits leave the guest.
pub const AT: u64 = 0x10_2000;
/// APM Vol. 2 Appendix B, the first intercept word: INTR 0, NMI 1, CPUID 18, INVD 22, HLT 24,
/// INVLPGA 26, IOIO_PROT 27, MSR_PROT 28, SHUTDOWN 31. Spelled out rather than taken from the
/// code's constants, so a wrong constant fails the tests too.
pub const MISC1: u32 = 0x9d44_0003;
/// V_INTR_MASKING (bit 24 of the V_INTR quadword).
pub const MASKING: u64 = 1 << 24;

/// A test guest's boot vCPU: 64-bit start at [`ENTRY`], boot arguments 1-5.
pub fn config() -> VcpuConfig {
    VcpuConfig {
        ncr3: 0x50_0000,
        entry: ENTRY,
        args: [1, 2, 3, 4, 5],
        flags_in_rsi: true,
        real_mode: false,
        page_tables: 0x1000,
        selectors: Selectors {
            code: 0x08,
            data: 0x10,
            tss: 0x18,
        },
        kick: &KICK,
    }
}

/// A vCPU on `model` owning the COM1 ports.
pub fn vcpu_with(model: Model, config: &VcpuConfig) -> SvmVcpu<Model> {
    SvmVcpu::new(model, config, [(0x3f8, 8)])
}

/// The [`config`] vCPU on a QEMU-like model.
pub fn vcpu() -> SvmVcpu<Model> {
    vcpu_with(Model::new(), &config())
}

/// Queues an exit at [`AT`] that also lets `guest` change the registers first.
pub fn exit_at(
    v: &mut SvmVcpu<Model>,
    code: u64,
    info1: u64,
    info2: u64,
    guest: fn(&mut GuestRegs),
) {
    v.hw().exit_with(move |vmcb, regs| {
        guest(regs);
        vmcb.set_rip(AT);
        write_exit(vmcb, code, info1, info2, 0);
    });
}

/// A guest that leaves its registers alone.
pub fn nothing(_: &mut GuestRegs) {}
