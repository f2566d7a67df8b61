//! The host model the VMX vCPU tests run against: a VMCS held as a map of fields, a CPU with
//! settable capabilities, host state and preemption countdown, a record of every VMLAUNCH and
//! VMRESUME (what the entry was asked to do, and the registers), of every INVEPT and INVVPID,
//! of NMI unblocks and of ended host interrupts, and a script of exits for the entries to play
//! back by writing the exit-reason, qualification, interruption-information and IDT-vectoring
//! fields and the guest state as the CPU would. It stands in for the CPU so start state,
//! decoding, completions and injections are checked without VMX hardware. The vCPU the tests
//! build on it, and the exits they script, are made here too.

extern crate std;

use super::caps::VmxCapabilities;
use super::enter::GuestRegs;
use super::exit::ExitInfo;
use super::fields::{w32, w64, wn};
use super::instr::InvType;
use super::start::{HostState, VcpuConfig};
use super::vcpu::{VmxHw, VmxVcpu};
use super::VmFail;
use crate::guest_boot::Selectors;
use crate::mmio_script::MmioScript;
use core::sync::atomic::AtomicBool;
use std::boxed::Box;
use std::collections::{BTreeMap, VecDeque};
use std::vec::Vec;
use vcpu::{Completion, VmExit};

/// The VMCS: every field written, by encoding.
pub type Vmcs = BTreeMap<u32, u64>;

/// The guest's run until its exit: what the CPU writes into the VMCS and the registers.
type Run = Box<dyn FnOnce(&mut Vmcs, &mut GuestRegs)>;

/// One entry: what it was asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// VMRESUME (else VMLAUNCH).
    pub resume: bool,
    pub rip: u64,
    pub entry_info: u64,
    pub entry_error: u64,
    pub entry_len: u64,
    pub entry_controls: u64,
    pub proc: u64,
    pub interruptibility: u64,
    pub preemption: Option<u64>,
    pub regs: GuestRegs,
}

/// One scripted entry.
pub enum Step {
    /// The guest runs and exits.
    Exit(Run),
    /// The kick flag was set: the entry is abandoned before VMLAUNCH/VMRESUME.
    Kicked,
    /// VMLAUNCH/VMRESUME fails the way given (with this VM-instruction error when valid).
    Fail(VmFail, u64),
}

/// The CPU and host as the vCPU sees them.
pub struct Model {
    pub vmcs: Vmcs,
    pub caps: VmxCapabilities,
    pub host: HostState,
    /// A field whose VMWRITE fails.
    pub refuse: Option<u32>,
    pub countdown: Option<u32>,
    pub script: VecDeque<Step>,
    pub entries: Vec<Entry>,
    pub invept: Vec<(InvType, u64)>,
    pub invvpid: Vec<(InvType, u16, u64)>,
    pub nmi_unblocks: usize,
    pub ended: Vec<u8>,
    /// The host's MMIO decode, as the test scripts it.
    pub mmio: MmioScript,
}

/// The host state of the tests' CPU: distinct values, so a swapped pair shows.
pub const HOST: HostState = HostState {
    cr0: 0x8005_0033,
    cr3: 0x20_0000,
    cr4: 0x2620,
    efer: 0xd01,
    pat: 0x0007_0406_0007_0406,
    gs_base: 0x30_0000,
    tr_base: 0x30_1000,
    gdtr_base: 0x30_2000,
    idtr_base: 0x30_3000,
    selectors: SELECTORS,
};

/// The hypervisor's selectors, which the 64-bit start shares.
pub const SELECTORS: Selectors = Selectors {
    code: 0x08,
    data: 0x10,
    tss: 0x18,
};

impl Model {
    /// Bochs 2.7 `corei7_skylake_x`, the CPU the VMX boot tests run on.
    pub fn new() -> Self {
        Self {
            vmcs: Vmcs::new(),
            caps: VmxCapabilities::decode(&super::caps::tests::skylake_x()),
            host: HOST,
            refuse: None,
            countdown: None,
            script: VecDeque::new(),
            entries: Vec::new(),
            invept: Vec::new(),
            invvpid: Vec::new(),
            nmi_unblocks: 0,
            ended: Vec::new(),
            mmio: MmioScript::default(),
        }
    }

    /// Queues a run that does whatever `run` does to the VMCS and the registers.
    pub fn exit_with(&mut self, run: impl FnOnce(&mut Vmcs, &mut GuestRegs) + 'static) {
        self.script.push_back(Step::Exit(Box::new(run)));
    }

    /// Queues the exit `e` at [`AT`], after `guest` changed the registers.
    pub fn exit(&mut self, e: Exit, guest: fn(&mut GuestRegs)) {
        self.exit_with(move |vmcs, regs| {
            guest(regs);
            e.write(vmcs);
        });
    }

    /// A field as the next entry will find it (0 if never written).
    pub fn field(&self, field: u32) -> u64 {
        self.vmcs.get(&field).copied().unwrap_or(0)
    }
}

/// The exit-information fields of one exit, as the CPU writes them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Exit {
    pub reason: u64,
    pub qualification: u64,
    pub len: u64,
    pub interruption_info: u64,
    pub vectoring: u64,
    pub vectoring_error: u64,
    pub gpa: u64,
}

/// An exit for basic reason `reason` by a 2-byte instruction.
pub fn exit(reason: u16) -> Exit {
    Exit {
        reason: reason.into(),
        len: 2,
        ..Exit::default()
    }
}

impl Exit {
    /// Writes the fields, and the guest RIP at [`AT`].
    pub fn write(&self, vmcs: &mut Vmcs) {
        vmcs.insert(w32::EXIT_REASON, self.reason);
        vmcs.insert(wn::EXIT_QUALIFICATION, self.qualification);
        vmcs.insert(w32::EXIT_INSTRUCTION_LEN, self.len);
        vmcs.insert(w32::EXIT_INTERRUPTION_INFO, self.interruption_info);
        vmcs.insert(w32::IDT_VECTORING_INFO, self.vectoring);
        vmcs.insert(w32::IDT_VECTORING_ERROR, self.vectoring_error);
        vmcs.insert(w64::GUEST_PHYSICAL_ADDRESS, self.gpa);
        vmcs.insert(wn::GUEST_RIP, AT);
    }
}

impl VmxHw for Model {
    fn capabilities(&self) -> VmxCapabilities {
        self.caps
    }

    fn host_state(&self) -> HostState {
        self.host
    }

    fn phys_addr(&self, addr: usize) -> u64 {
        addr as u64
    }

    fn vmread(&self, field: u32) -> Result<u64, VmFail> {
        Ok(self.field(field))
    }

    fn vmwrite(&mut self, field: u32, value: u64) -> Result<(), VmFail> {
        if self.refuse == Some(field) {
            return Err(VmFail::Valid);
        }
        self.vmcs.insert(field, value);
        Ok(())
    }

    fn enter(&mut self, regs: &mut GuestRegs, launched: bool) -> Result<bool, VmFail> {
        let step = self.script.pop_front().expect("an entry nobody scripted");
        let run = match step {
            Step::Exit(run) => run,
            Step::Kicked => return Ok(false),
            Step::Fail(how, error) => {
                self.vmcs.insert(w32::VM_INSTRUCTION_ERROR, error);
                return Err(how);
            }
        };
        self.entries.push(Entry {
            resume: launched,
            rip: self.field(wn::GUEST_RIP),
            entry_info: self.field(w32::ENTRY_INTERRUPTION_INFO),
            entry_error: self.field(w32::ENTRY_EXCEPTION_ERROR),
            entry_len: self.field(w32::ENTRY_INSTRUCTION_LEN),
            entry_controls: self.field(w32::ENTRY_CONTROLS),
            proc: self.field(w32::PROC_CONTROLS),
            interruptibility: self.field(w32::GUEST_INTERRUPTIBILITY),
            preemption: self.vmcs.get(&w32::PREEMPTION_TIMER_VALUE).copied(),
            regs: *regs,
        });
        // Every exit clears the valid bit of the entry's event (SDM Vol. 3C §28.2.3) and
        // rewrites the exit-information fields, which the script then fills.
        let info = self.field(w32::ENTRY_INTERRUPTION_INFO);
        self.vmcs
            .insert(w32::ENTRY_INTERRUPTION_INFO, info & !(1 << 31));
        exit(0).write(&mut self.vmcs);
        run(&mut self.vmcs, regs);
        Ok(true)
    }

    fn invept(&mut self, kind: InvType, eptp: u64) -> Result<(), VmFail> {
        self.invept.push((kind, eptp));
        Ok(())
    }

    fn invvpid(&mut self, kind: InvType, vpid: u16, addr: u64) -> Result<(), VmFail> {
        self.invvpid.push((kind, vpid, addr));
        Ok(())
    }

    fn preemption_countdown(&self) -> Option<u32> {
        self.countdown
    }

    fn unblock_host_nmi(&mut self) {
        self.nmi_unblocks += 1;
    }

    fn end_host_interrupt(&mut self, vector: u8) {
        self.ended.push(vector);
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
            last.instruction_len = len.into();
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
/// The tests' partition's EPT pointer and the vCPU's VPID.
pub const EPTP: u64 = 0x50_005e;
pub const VPID: u16 = 3;

/// A test guest's boot vCPU: 64-bit start at [`ENTRY`], boot arguments 1-5.
pub fn config() -> VcpuConfig {
    VcpuConfig {
        eptp: EPTP,
        vpid: VPID,
        entry: ENTRY,
        args: [1, 2, 3, 4, 5],
        real_mode: false,
        page_tables: 0x1000,
        selectors: SELECTORS,
        kick: &KICK,
    }
}

/// A vCPU on `model` owning the COM1 ports.
pub fn vcpu_with(model: Model, config: &VcpuConfig) -> VmxVcpu<Model> {
    VmxVcpu::new(model, config, [(0x3f8, 8)])
}

/// The [`config`] vCPU on a Skylake-X model.
pub fn vcpu() -> VmxVcpu<Model> {
    vcpu_with(Model::new(), &config())
}

/// A guest that leaves its registers alone.
pub fn nothing(_: &mut GuestRegs) {}
