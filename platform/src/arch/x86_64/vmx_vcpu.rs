//! The VMX vCPU of the running CPU: [`RealVmx`], the `arch_x86::vmx::vcpu::VmxHw` whose
//! VMREAD/VMWRITE/INVEPT/INVVPID are the instructions on this CPU's current VMCS, whose entry is
//! the trampoline (`arch_x86::vmx::enter`) and whose host facts are this CPU's (`virt`:
//! capabilities and the preemption timer's rate; `percpu`: GDT, TSS, selectors; `timer`: the
//! deadline behind the preemption countdown; `ioapic` and the local APIC: ending an acknowledged
//! interrupt), its VMCS region and MMIO decode in flight (`mmio`: instruction fetch and decode
//! for the emulated interrupt controller window), both the vCPU's own, and the creation of a vCPU from what
//! the partition layer gives. The vCPU's logic (start state, exits, completions, event
//! re-injection, interrupt windows, NMI unblocking, EFER) is `arch_x86::vmx::vcpu::VmxVcpu`,
//! host-tested.

use super::lapic::local_apic;
use super::mmio::GuestMmio;
use super::percpu::{self, KERNEL_CS, KERNEL_DS, KERNEL_TSS};
use super::{ioapic, timer, virt};
use crate::memory;
use crate::partitions::Partition;
use arch_x86::guest_boot::{Selectors, GUEST_PML4};
use arch_x86::msr::{rdmsr, IA32_EFER, IA32_GS_BASE};
use arch_x86::regs::{read_cr0, read_cr3, read_cr4, sidt_base};
use arch_x86::vmx::caps::VmxCapabilities;
use arch_x86::vmx::enter::{enter, GuestRegs};
use arch_x86::vmx::exit::ExitInfo;
use arch_x86::vmx::instr::{invept, invvpid, vmclear, vmptrld, vmread, vmwrite, InvType};
use arch_x86::vmx::start::{HostState, VcpuConfig};
use arch_x86::vmx::vcpu::VmxHw;
use arch_x86::vmx::VmFail;
use vcpu::{Completion, VmExit};

/// A vCPU on the running CPU.
pub type VmxVcpu = arch_x86::vmx::vcpu::VmxVcpu<RealVmx>;

const IA32_PAT: u32 = 0x277;

/// Everything the creation of a vCPU needs from the partition layer.
pub struct VmxSetup {
    /// The partition the vCPU runs (its MMIO decode reads its memory).
    pub partition: &'static Partition,
    /// The partition's EPT pointer.
    pub eptp: u64,
    /// The vCPU's VPID.
    pub vpid: u16,
    /// First instruction.
    pub entry: u64,
    /// rdi, rsi, rdx, rcx, r8 at entry (the test guests' boot arguments).
    pub args: [u64; 5],
    /// The ports the partition owns, which do not exit.
    pub ports: &'static [board_config::PortRange],
    /// Start in real mode, as a STARTUP IPI starts a processor.
    pub real_mode: bool,
    /// The CPU's kick flag, which the entry stub checks with interrupts off.
    pub kick: &'static core::sync::atomic::AtomicBool,
}

/// Creates a vCPU on the calling CPU (which must be in VMX operation).
pub fn new(setup: &VmxSetup) -> VmxVcpu {
    let hw = match RealVmx::with_new_vmcs(setup.partition) {
        Ok(hw) => hw,
        Err((hw, why)) => {
            log::error!("vmx: vCPU not created: {why}");
            return VmxVcpu::unavailable(hw, why);
        }
    };
    let config = VcpuConfig {
        eptp: setup.eptp,
        vpid: setup.vpid,
        entry: setup.entry,
        args: setup.args,
        real_mode: setup.real_mode,
        page_tables: GUEST_PML4,
        selectors: SELECTORS,
        kick: setup.kick,
    };
    let ports = setup.ports.iter().map(|r| (r.start, r.size));
    VmxVcpu::new(hw, &config, ports)
}

/// A vCPU that cannot run; its first `run` reports why as an invalid state.
pub fn unavailable(why: &'static str) -> VmxVcpu {
    VmxVcpu::unavailable(RealVmx::without_vmcs(), why)
}

/// Drops every translation of the EPT at `eptp` on the calling CPU (in VMX operation).
pub fn flush_ept(eptp: u64) -> Result<(), VmFail> {
    arch_x86::vmx::vcpu::flush_ept(&mut RealVmx::without_vmcs(), eptp)
}

/// The hypervisor's selectors, which the host state and the 64-bit start share.
const SELECTORS: Selectors = Selectors {
    code: KERNEL_CS,
    data: KERNEL_DS,
    tss: KERNEL_TSS,
};

/// The calling CPU, to the VMX vCPU created on it (vCPUs never move), with that vCPU's VMCS
/// region (physical address; 0 for none), current on this CPU from its creation on, and its
/// MMIO access in flight.
pub struct RealVmx {
    vmcs: u64,
    mmio: GuestMmio,
}

impl RealVmx {
    /// The CPU alone: enough for INVEPT, or for a vCPU that never runs.
    fn without_vmcs() -> Self {
        Self {
            vmcs: 0,
            mmio: GuestMmio::default(),
        }
    }

    /// The CPU with a fresh VMCS, cleared and made current; on failure, what owns whatever was
    /// allocated, and why.
    fn with_new_vmcs(partition: &'static Partition) -> Result<Self, (Self, &'static str)> {
        let Some(vmcs) = memory::alloc_frame() else {
            return Err((Self::without_vmcs(), "no free frame for the VMCS"));
        };
        let hw = Self {
            vmcs,
            mmio: GuestMmio::of(partition),
        };
        let ptr = super::Current::phys_to_virt_ptr(vmcs) as *mut u32;
        // SAFETY: the frame was just allocated for this VMCS alone and is mapped.
        unsafe {
            core::ptr::write_bytes(ptr as *mut u8, 0, memory::FRAME_SIZE as usize);
            ptr.write_volatile(virt::capabilities().basic.revision_id);
        }
        // SAFETY: the CPU is in VMX operation (the caller's contract) and the region holds the
        // revision id.
        if unsafe { vmclear(vmcs) }.is_err() {
            return Err((hw, "VMCLEAR failed"));
        }
        // SAFETY: as above; the region was just cleared and is current on no other CPU.
        if unsafe { vmptrld(vmcs) }.is_err() {
            return Err((hw, "VMPTRLD failed"));
        }
        Ok(hw)
    }
}

impl Drop for RealVmx {
    fn drop(&mut self) {
        if self.vmcs != 0 {
            // SAFETY: the VMCS is this vCPU's; clearing it makes it inactive before the frame
            // goes back to the allocator.
            let _ = unsafe { vmclear(self.vmcs) };
            memory::free_frame(self.vmcs);
        }
    }
}

impl VmxHw for RealVmx {
    fn capabilities(&self) -> VmxCapabilities {
        virt::capabilities()
    }

    fn host_state(&self) -> HostState {
        let (gdt, tss) = percpu::host_tables();
        // SAFETY: these MSRs exist on every x86_64 CPU that has VMX; reading them has no effect.
        let (efer, pat, gs) = unsafe { (rdmsr(IA32_EFER), rdmsr(IA32_PAT), rdmsr(IA32_GS_BASE)) };
        HostState {
            cr0: read_cr0(),
            cr3: read_cr3(),
            cr4: read_cr4(),
            efer,
            pat,
            gs_base: gs,
            tr_base: tss,
            gdtr_base: gdt,
            idtr_base: sidt_base(),
            selectors: SELECTORS,
        }
    }

    fn phys_addr(&self, addr: usize) -> u64 {
        // The heap, where the vCPU keeps its bitmaps, is identity-mapped.
        addr as u64
    }

    fn vmread(&self, field: u32) -> Result<u64, VmFail> {
        // SAFETY: only the vCPU created with this VMCS calls, on the CPU where the VMCS is
        // current (vCPUs never move); a vCPU without one never reads (it is broken).
        unsafe { vmread(field) }
    }

    fn vmwrite(&mut self, field: u32, value: u64) -> Result<(), VmFail> {
        // SAFETY: as for `vmread`; the VMCS is this vCPU's alone, so a write changes no one
        // else's guest.
        unsafe { vmwrite(field, value) }
    }

    fn enter(&mut self, regs: &mut GuestRegs, launched: bool) -> Result<bool, VmFail> {
        // SAFETY: only the `VmxVcpu` created on this CPU enters, and only when its creation
        // filled this VMCS completely (`arch_x86::vmx::start`, host state read on this CPU), so
        // it is current here (loaded at creation; vCPUs never move) with bitmaps it owns and the
        // EPT of its partition, both alive as long as it is; `launched` tracks VMLAUNCH since
        // the VMCLEAR.
        unsafe { enter(regs, launched) }
    }

    fn invept(&mut self, kind: InvType, eptp: u64) -> Result<(), VmFail> {
        // SAFETY: the CPU is in VMX operation (its vCPU or flush runs only then) and the kind
        // is one its capabilities report (`arch_x86::vmx::vcpu::flush_ept`).
        unsafe { invept(kind, eptp) }
    }

    fn invvpid(&mut self, kind: InvType, vpid: u16, addr: u64) -> Result<(), VmFail> {
        // SAFETY: VMX operation; the vCPU asks only when the CPU reports VPID, with its own
        // non-zero VPID.
        unsafe { invvpid(kind, vpid, addr) }
    }

    fn preemption_countdown(&self) -> Option<u32> {
        virt::preemption_rate().map(timer::preemption_value)
    }

    fn unblock_host_nmi(&mut self) {
        arch_x86::regs::unblock_nmi();
    }

    fn end_host_interrupt(&mut self, vector: u8) {
        // A level device line is masked first, until its guest ends the interrupt (`ioapic`).
        if let Some(line) = ioapic::line_of(vector) {
            ioapic::hold(line);
        }
        local_apic().eoi();
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
