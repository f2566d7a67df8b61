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
