//! The SVM vCPU of the running CPU: [`RealSvm`], the `arch_x86::svm::vcpu::SvmHw` whose VMRUN is
//! the world switch (`arch_x86::svm::enter`) and whose host facts are this CPU's (`svm`: ASID,
//! features, flush requests; `ioapic`: device vectors) and whose MMIO decode in flight is the
//! vCPU's own (`mmio`: instruction fetch and decode for the emulated interrupt controller
//! window), and the creation of a vCPU from what the partition
//! layer gives. The vCPU's logic (start state, intercepts, exits, completions, event
//! re-injection, interrupt windows, TLB control) is `arch_x86::svm::vcpu::SvmVcpu`, host-tested.
//!
//! The guest starts exactly as under VMX (64-bit mode on the identity tables of
//! `arch_x86::guest_boot` that `guests` put in its memory, no IDT, boot arguments in rdi, rsi, rdx,
//! rcx, r8), with flag bit 0 set in rsi: AMD raises #UD on VMCALL, so the guest must make its
//! hypercalls with VMMCALL.

use super::mmio::GuestMmio;
use super::percpu::{KERNEL_CS, KERNEL_DS, KERNEL_TSS};
use super::{ioapic, svm};
use crate::partitions::Partition;
use arch_x86::guest_boot::{Selectors, GUEST_PML4};
use arch_x86::svm::enter::{enter, GuestRegs};
use arch_x86::svm::exit::ExitInfo;
use arch_x86::svm::start::VcpuConfig;
use arch_x86::svm::vcpu::SvmHw;
use arch_x86::svm::vmcb::Vmcb;
use arch_x86::svm::SvmFeatures;
use vcpu::{Completion, VmExit};

/// A vCPU on the running CPU.
pub type SvmVcpu = arch_x86::svm::vcpu::SvmVcpu<RealSvm>;

/// Everything the creation of a vCPU needs from the partition layer.
pub struct SvmSetup {
    /// The partition the vCPU runs (its MMIO decode reads its memory).
    pub partition: &'static Partition,
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

/// Creates a vCPU on the calling CPU (which must have SVM on).
pub fn new(setup: &SvmSetup) -> SvmVcpu {
    let config = VcpuConfig {
        ncr3: setup.ncr3,
        entry: setup.entry,
        args: setup.args,
        flags_in_rsi: setup.flags_in_rsi,
        real_mode: setup.real_mode,
        page_tables: GUEST_PML4,
        selectors: Selectors {
            code: KERNEL_CS,
            data: KERNEL_DS,
            tss: KERNEL_TSS,
        },
        kick: setup.kick,
    };
    let ports = setup.ports.iter().map(|r| (r.start, r.size));
    let hw = RealSvm {
        mmio: GuestMmio::of(setup.partition),
    };
    SvmVcpu::new(hw, &config, ports)
}

/// A vCPU that cannot run; its first `run` reports why as an invalid state.
pub fn unavailable(why: &'static str) -> SvmVcpu {
    SvmVcpu::unavailable(RealSvm::default(), why)
}

/// The calling CPU, to the SVM vCPU created on it (vCPUs never move), with that vCPU's MMIO
/// access in flight.
#[derive(Default)]
pub struct RealSvm {
    mmio: GuestMmio,
}

impl SvmHw for RealSvm {
    fn svm_on(&self) -> bool {
        svm::on()
    }

    fn features(&self) -> SvmFeatures {
        svm::features()
    }

    fn asid(&self) -> u32 {
        svm::asid()
    }

    fn phys_addr(&self, addr: usize) -> u64 {
        // The heap, where the vCPU keeps its VMCB and maps, is identity-mapped.
        addr as u64
    }

    fn request_flush(&mut self) {
        svm::request_flush();
    }

    fn take_flush_request(&mut self) -> bool {
        svm::take_flush_request()
    }

    fn vmrun(&mut self, vmcb: &mut Vmcb, regs: &mut GuestRegs) -> bool {
        let vmcb_pa = self.phys_addr((vmcb as *const Vmcb).addr());
        // SAFETY: the only caller is the `SvmVcpu` created on this CPU, which runs only when it
        // found SVM on at creation (vCPUs never move, so the host save area is still this
        // CPU's), and passes its own VMCB: complete (VMRUN intercepted, ASID non-zero, from
        // `start::fill`), on the identity-mapped heap, with permission maps it owns and the
        // nested table of its partition, both alive as long as it is. The host-state page is
        // this CPU's.
        unsafe { enter(regs, vmcb, vmcb_pa, svm::host_state_pa()) }
    }

    fn take_host_interrupt(&mut self) {
        // SAFETY: the fixed vectors the hypervisor raises or programs are the timer's and the
        // device lines' (`ioapic`), whose IDT handlers end them and return (`idt`).
        unsafe { arch_x86::regs::take_pending_interrupt() };
    }

    fn take_device_vector(&mut self) -> Option<u8> {
        ioapic::take_pending()
    }

    fn decode_mmio(&mut self, exit: VmExit, last: &ExitInfo, cr3: u64, regs: &GuestRegs) -> VmExit {
        self.mmio.decode(exit, last, cr3, regs)
    }

    fn complete_mmio(
        &mut self,
        completion: Completion,
        regs: &mut GuestRegs,
        last: &mut ExitInfo,
    ) -> Completion {
        self.mmio.complete(completion, regs, last)
    }
}
