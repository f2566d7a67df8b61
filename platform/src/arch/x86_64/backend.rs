//! Which hardware virtualization x86 partitions run on, chosen once at boot from CPUID: Intel
//! VMX when the CPU has it (Bochs, Intel boards), else AMD SVM with nested paging (AMD boards,
//! QEMU's TCG), else none (partitions cannot run, and say so). [`X86Vcpu`] is the vCPU of
//! whichever backend was chosen, so the partition seam has one `Vcpu` type for both.

use super::svm_vcpu::SvmVcpu;
use super::vmx_vcpu::VmxVcpu;
use arch_x86::cpuid::CpuSummary;
use spin::Once;
use vcpu::{ArchVcpu, Completion, Delivery, VmExit};

/// A hardware virtualization backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Intel VMX with EPT.
    Vmx,
    /// AMD SVM with nested paging.
    Svm,
    /// Neither.
    None,
}

static CHOSEN: Once<Backend> = Once::new();

/// The backend of this machine: VMX preferred, else SVM when CPUID 8000_0001 ECX.SVM and
/// 8000_000A EDX.NP are both set.
pub fn chosen() -> Backend {
    *CHOSEN.call_once(|| {
        let cpu = CpuSummary::read();
        if cpu.vmx {
            Backend::Vmx
        } else if cpu.svm && cpu.nested_paging {
            Backend::Svm
        } else {
            Backend::None
        }
    })
}

/// The vCPU of the chosen backend.
pub enum X86Vcpu {
    /// Under VMX.
    Vmx(VmxVcpu),
    /// Under SVM.
    Svm(SvmVcpu),
}

impl ArchVcpu for X86Vcpu {
    fn run(&mut self) -> VmExit {
        match self {
            Self::Vmx(v) => v.run(),
            Self::Svm(v) => v.run(),
        }
    }

    fn complete(&mut self, completion: Completion) {
        match self {
            Self::Vmx(v) => v.complete(completion),
            Self::Svm(v) => v.complete(completion),
        }
    }

    fn deliver_upcall(&mut self, delivery: Delivery) -> bool {
        match self {
            Self::Vmx(v) => v.deliver_upcall(delivery),
            Self::Svm(v) => v.deliver_upcall(delivery),
        }
    }

    fn return_from_upcall(&mut self) {
        match self {
            Self::Vmx(v) => v.return_from_upcall(),
            Self::Svm(v) => v.return_from_upcall(),
        }
    }

    fn inject_interrupt(&mut self, vector: u8) -> bool {
        match self {
            Self::Vmx(v) => v.inject_interrupt(vector),
            Self::Svm(v) => v.inject_interrupt(vector),
        }
    }
    /// Ignored: x86 interrupts are vectors (`inject_interrupt`), not lines.
    fn set_irq_lines(&mut self, _lines: u32) {}
}

/// What an upcall replaces and `UPCALL_RETURN` puts back, under either backend: every register
/// the guest can see change (the backend's general-purpose set `R`, and RIP, RSP, RFLAGS, which
/// live in its VMCS or VMCB).
#[derive(Clone, Copy)]
pub struct UpcallFrame<R: Copy> {
    pub regs: R,
    pub rip: u64,
    pub rsp: u64,
    pub rflags: u64,
}

/// RFLAGS an upcall handler starts with: only the always-one bit (DF clear, as the ABI wants;
/// interrupts off, so a vector waits for the handler's return).
pub const HANDLER_RFLAGS: u64 = 0x2;

/// The stack pointer a handler starts with: `stack` as if a call had pushed a return address,
/// so the handler (a normal function) finds the alignment the x86_64 ABI promises.
pub fn handler_rsp(stack: u64) -> u64 {
    stack.wrapping_sub(8)
}
