//! x86_64: one ELF64 image, linked at 1 MiB and identity-mapped, that boots from QEMU `-kernel`
//! (multiboot1) and GRUB (multiboot1 or multiboot2). The submodules, leaves first (each names
//! only modules before it; `cargo xtask test "module cycles"` fails on a cycle): per-CPU data,
//! one typed slot per CPU (`percpu`), the calling CPU's local APIC (`lapic`), PIT delays
//! (`delay`), the loader's and firmware's information (`multiboot`, `acpi`), the console (`uart`)
//! and the end of a run (`power`); the IDT, with exceptions and the handlers other modules
//! register for their interrupt vectors (`idt`); the timer (`timer`) and the physical I/O APIC
//! with its device vectors (`ioapic`); the other CPUs (`smp`); hardware virtualization (`svm`,
//! and `virt`: VMX on, or SVM) and MMIO instruction decode (`mmio`); the running CPU under the
//! VMX and SVM vCPUs of `arch_x86::vmx::vcpu` and `arch_x86::svm::vcpu` (`vmx_vcpu`,
//! `svm_vcpu`); the backend CPUID chose (`backend`) and its stage-2 format (`stage2`: EPT or
//! NPT); a CPU waiting for its vCPU's next event (`idle`); and on top the boot stub (`entry`)
//! and the partition seam (`guests`). The instructions themselves come from the `arch-x86`
//! crate.

mod acpi;
mod backend;
mod delay;
mod entry;
#[cfg(septum_partitions)]
mod guests;
mod idle;
mod idt;
mod ioapic;
mod lapic;
mod mmio;
mod multiboot;
mod percpu;
mod power;
mod smp;
mod svm;
mod svm_vcpu;
mod timer;
mod uart;
mod virt;
mod vmx_vcpu;

use crate::arch::{Machine, Outcome};

/// The x86_64 machine.
pub struct Current;

impl Current {
    /// [`Machine::phys_to_virt`] as a pointer-sized address for the arch code's own use.
    fn phys_to_virt_ptr(pa: u64) -> usize {
        <Self as Machine>::phys_to_virt(pa)
    }
}

impl Machine for Current {
    fn cpu_index() -> usize {
        percpu::cpu_index()
    }

    fn report_features() {
        virt::report_features();
        timer::calibrate();
    }

    fn enable_virtualization(cpu: usize) -> Result<Option<&'static str>, &'static str> {
        virt::enable(cpu)
    }

    fn start_secondaries(max: usize) -> usize {
        smp::start_secondaries(max)
    }

    fn phys_to_virt(pa: u64) -> usize {
        // The boot page tables identity-map [0, 4 GiB); multiboot parsing keeps RAM below that.
        debug_assert!(
            pa < 4 << 30,
            "physical address {pa:#x} beyond the identity map"
        );
        pa as usize
    }

    fn exit(outcome: Outcome) -> ! {
        power::exit(outcome)
    }

    fn park() -> ! {
        arch_x86::regs::halt_forever()
    }
}
