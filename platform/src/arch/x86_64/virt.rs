//! Hardware virtualization on x86: what the CPU offers (reported at boot) and turning it on per
//! CPU: Intel VMX (VMXON) where the CPU has it, else AMD SVM with nested paging (`svm`), and
//! whether vCPU deadlines ride the VMX-preemption timer (`timer` keeps the deadline either way).

use super::{multiboot, percpu};
use arch_x86::cpuid::CpuSummary;
use arch_x86::msr::{rdmsr, wrmsr, IA32_FEATURE_CONTROL};
use arch_x86::regs::{read_cr0, read_cr4, write_cr0, write_cr4, CR4_VMXE};
use arch_x86::vmx::caps::FeatureControl;
use arch_x86::vmx::{self, VmFail, VmxCapabilities};
use core::sync::atomic::Ordering;
use spin::Once;

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// Reads and decodes this CPU's VMX capability MSRs.
pub(super) fn capabilities() -> VmxCapabilities {
    // SAFETY: only called after CPUID reported VMX, so the MSRs exist.
    VmxCapabilities::decode(&unsafe { vmx::read_msrs() })
}

/// The VMX-preemption timer's TSC shift when the VMX backend carries deadlines with it (VMX is
/// the chosen backend whenever the CPU has it, `backend`); read once, since every CPU of a
/// machine reports the same capabilities.
pub fn preemption_rate() -> Option<u32> {
    static RATE: Once<Option<u32>> = Once::new();
    *RATE.call_once(|| {
        CpuSummary::read()
            .vmx
            .then(|| capabilities().preemption_timer())
            .flatten()
    })
}

/// Whether the calling CPU is in VMX operation (VMXON succeeded at boot).
pub fn vmx_on() -> bool {
    percpu::this_cpu().vmxon_region.load(Ordering::SeqCst) != 0
}

/// Prints the CPU and its virtualization features, then honours `fault=1` on the command line.
pub fn report_features() {
    let cpu = CpuSummary::read();
    log::info!(
        "cpu: {} {}, family {:#x} model {:#x} stepping {}, APIC ID {}, x2APIC {}, 1G pages {}",
        cpu.vendor(),
        cpu.brand(),
        cpu.family,
        cpu.model,
        cpu.stepping,
        cpu.apic_id,
        yes(cpu.x2apic),
        yes(cpu.gib_pages)
    );
    if cpu.vmx {
        let c = capabilities();
        log::info!("virt: VMX present");
        log::info!(
            "vmx: revision {:#x}, EPT {}, EPT A/D {}, EPT 1G pages {}, VPID {}, PML {}, unrestricted guest {}, INVEPT single {}",
            c.basic.revision_id,
            yes(c.ept()),
            yes(c.ept_ad()),
            yes(c.ept_1g()),
            yes(c.vpid()),
            yes(c.pml()),
            yes(c.unrestricted_guest()),
            yes(c.invept_single())
        );
        log::debug!(
            "vmx: feature control {:?}, basic {:?}, CR0 {:x?}, CR4 {:x?}",
            c.feature_control,
            c.basic,
            c.cr0,
            c.cr4
        );
    } else {
        log::info!("virt: VMX not available on this CPU");
        if cpu.svm {
            log::info!(
                "virt: AMD SVM present, nested paging {}",
                yes(cpu.nested_paging)
            );
            if super::svm::usable() {
                super::svm::report();
            }
        } else {
            log::info!("virt: no AMD SVM either");
        }
    }
    if multiboot::cmdline()
        .split_ascii_whitespace()
        .any(|w| w == "fault=1")
    {
        log::info!("fault=1: raising #UD on purpose");
        // SAFETY: ud2 only raises #UD, which the IDT reports and turns into a failed run.
        unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
    }
}

/// Enters VMX root operation on the calling CPU when it has VMX.
/// Without VMX, AMD SVM with nested paging is turned on instead where the CPU has it.
pub fn enable(cpu: usize) -> Result<Option<&'static str>, &'static str> {
    if !CpuSummary::read().vmx {
        return super::svm::enable(cpu);
    }
    let caps = capabilities();
    if !caps.feature_control.vmxon_possible() {
        return Err("VMXON failed: firmware locked IA32_FEATURE_CONTROL with VMX disabled");
    }
    if !caps.feature_control.locked {
        // SAFETY: the MSR exists (VMX is reported) and is unlocked; allowing VMX outside SMX and
        // locking is what firmware normally does.
        unsafe {
            let v = rdmsr(IA32_FEATURE_CONTROL);
            wrmsr(
                IA32_FEATURE_CONTROL,
                v | FeatureControl::LOCK | FeatureControl::VMX_OUTSIDE_SMX,
            );
        }
    }
    let region_size = caps.basic.region_size as u64;
    if region_size > crate::memory::FRAME_SIZE {
        return Err("VMXON failed: VMXON region larger than a frame");
    }
    let region =
        crate::memory::alloc_frame().ok_or("VMXON failed: no free frame for the VMXON region")?;
    let ptr = super::Current::phys_to_virt_ptr(region) as *mut u32;
    // SAFETY: the frame was just allocated for this CPU alone and is mapped; the CR writes apply
    // the VMX fixed bits (which our long-mode state already satisfies apart from NE and VMXE).
    unsafe {
        core::ptr::write_bytes(ptr as *mut u8, 0, crate::memory::FRAME_SIZE as usize);
        ptr.write_volatile(caps.basic.revision_id);
        write_cr0(caps.cr0.apply(read_cr0()));
        write_cr4(caps.cr4.apply(read_cr4() | CR4_VMXE));
    }
    // SAFETY: CR4.VMXE and the fixed bits are set, feature control allows VMXON, and the region
    // is an aligned page holding the revision id, owned by this CPU from now on.
    match unsafe { vmx::vmxon(region) } {
        Ok(()) => {
            percpu::this_cpu()
                .vmxon_region
                .store(region, Ordering::SeqCst);
            Ok(Some("VMXON"))
        }
        Err(VmFail::Invalid) => {
            crate::memory::free_frame(region);
            Err("VMXON failed: VMfailInvalid (region or CPU state rejected)")
        }
        Err(VmFail::Valid) => {
            crate::memory::free_frame(region);
            Err("VMXON failed: VMfailValid (already in VMX operation)")
        }
    }
}
