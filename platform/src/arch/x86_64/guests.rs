//! x86's side of the partition seam (`partition::arch::PartitionArch`), over whichever
//! backend CPUID chose (`backend`): Intel VMX with EPT, or AMD SVM with nested paging. Under VMX a
//! partition's EPT pointer comes from its table's root with A/D enabled (hardware young/dirty
//! tracking for aging and dirty logging), its vCPU gets VPID = CPU index + 1 (unique: a CPU runs
//! one vCPU at a time), a flush is INVEPT single-context, and a kick is an NMI (no guest state
//! masks it, and it needs no end-of-interrupt). Under SVM the same roles are played by the nested
//! CR3, the per-CPU ASID, the VMCB's TLB control and the same NMI. Device lines are programmed
//! in the physical I/O APIC (`ioapic`) to the CPU of the vCPU a partition routed them to.

use super::backend::{self, Backend, X86Vcpu};
use super::lapic::local_apic;
use super::svm_vcpu::{self, SvmSetup};
use super::vmx_vcpu::{self, VmxSetup, VmxVcpu};
use super::{ioapic, percpu, svm, timer, virt, Current};
use crate::partitions::Partition;
use arch_x86::guest_boot::{self, GUEST_PML4, TABLE_BYTES};
use arch_x86::stage2::X86Stage2;
use core::sync::atomic::{AtomicBool, Ordering};
use mmu::{Flush, Hpa};
use partition::arch::{BootAbi, DeviceRoute, GuestBoot, PartitionArch, VirtualUartAt};
use partition::guest_mem::host_slice;
use partition::PartitionId;

/// Whether the calling CPU can run a guest with the chosen backend.
fn ready() -> bool {
    match backend::chosen() {
        Backend::Vmx => virt::vmx_on(),
        Backend::Svm => svm::on(),
        Backend::None => false,
    }
}

/// The APIC ID CPU `cpu` recorded when it started.
fn apic_id_of(cpu: usize) -> u32 {
    percpu::of_cpu(cpu).apic_id.load(Ordering::SeqCst)
}

/// Writes the guest's boot page tables (`arch_x86::guest_boot`) into its memory at
/// [`GUEST_PML4`] and the page after it.
fn write_guest_page_tables(partition: &Partition) -> Result<(), &'static str> {
    let page = |gpa| {
        host_slice(partition, gpa, TABLE_BYTES as u64, true)
            .and_then(|bytes| <&mut [u8; TABLE_BYTES]>::try_from(bytes).ok())
    };
    let (Some(pml4), Some(pdpt)) = (page(GUEST_PML4), page(GUEST_PML4 + TABLE_BYTES as u64)) else {
        return Err("its memory does not hold the boot page tables at 0x1000-0x3000");
    };
    // The partition is not running: its vCPU is being created on this CPU.
    guest_boot::write_page_tables(pml4, pdpt);
    Ok(())
}

fn vmx_vcpu(partition: &'static Partition, boot: &GuestBoot, kick: &'static AtomicBool) -> VmxVcpu {
    if !virt::vmx_on() {
        return vmx_vcpu::unavailable("VMX is not on on this CPU");
    }
    vmx_vcpu::new(&VmxSetup {
        partition,
        eptp: partition.table().format().eptp(partition.table().root()),
        vpid: (percpu::cpu_index() + 1) as u16,
        entry: boot.entry,
        args: boot.args,
        ports: partition.config.ports,
        real_mode: boot.real_mode,
        kick,
    })
}

impl PartitionArch for Current {
    type Format = X86Stage2;
    type Frames = crate::partitions::TableFrames;
    type Vcpu = X86Vcpu;
    const VIRTUAL_UART: VirtualUartAt = VirtualUartAt::Port(0x3f8);
    const VIRTUAL_UART_LINE: Option<u32> = Some(4);

    fn stage2_format() -> X86Stage2 {
        match backend::chosen() {
            Backend::Svm => X86Stage2::Npt(mmu::Npt::default()),
            Backend::Vmx | Backend::None => X86Stage2::Ept(mmu::Ept::default()),
        }
    }

    fn backend() -> &'static str {
        match (backend::chosen(), ready()) {
            (Backend::Vmx, true) => {
                "VMX: EPT with A/D, VPID, unrestricted guest, I/O and MSR bitmaps"
            }
            (Backend::Svm, true) => "SVM: nested paging, ASID per CPU, I/O and MSR permission maps",
            _ => "none (neither VMX nor SVM with nested paging is on: partitions cannot run)",
        }
    }

    fn prepare_cpu() {
        // The APIC sends the kicks; some implementations send IPIs only when software-enabled.
        local_apic().software_enable();
    }

    fn create_vcpu(
        partition: &'static Partition,
        boot: GuestBoot,
        kick: &'static AtomicBool,
    ) -> X86Vcpu {
        // Both backends start the guest in 64-bit mode on these page tables; vCPU 0 writes them
        // at each start, a secondary starts on the tables its partition already runs on.
        let tables = if boot.vcpu == 0 {
            write_guest_page_tables(partition)
        } else {
            Ok(())
        };
        match backend::chosen() {
            Backend::Svm => X86Vcpu::Svm(match tables {
                Err(e) => svm_vcpu::unavailable(e),
                Ok(()) => svm_vcpu::new(&SvmSetup {
                    partition,
                    ncr3: partition.table().format().ncr3(partition.table().root()),
                    entry: boot.entry,
                    args: boot.args,
                    ports: partition.config.ports,
                    flags_in_rsi: boot.vcpu == 0 && boot.abi == BootAbi::TestGuest,
                    real_mode: boot.real_mode,
                    kick,
                }),
            }),
            Backend::Vmx => X86Vcpu::Vmx(match tables {
                Err(e) => vmx_vcpu::unavailable(e),
                Ok(()) => vmx_vcpu(partition, &boot, kick),
            }),
            Backend::None => X86Vcpu::Vmx(vmx_vcpu::unavailable(
                "this CPU has neither VMX nor SVM with nested paging",
            )),
        }
    }

    fn flush_local(id: PartitionId, root: Hpa, what: Flush) {
        if what.is_none() || !ready() {
            return;
        }
        if backend::chosen() == Backend::Svm {
            // Done through the VMCB's TLB control at the next VMRUN on this CPU.
            svm::request_flush();
            return;
        }
        // Every table has the machine's format.
        let eptp = Self::stage2_format().eptp(root);
        if vmx_vcpu::flush_ept(eptp).is_err() {
            log::warn!("vmx: INVEPT failed for partition {id}");
        }
    }

    fn send_flush_ipi(cpu: usize) {
        Self::kick(cpu);
    }

    fn wait(kick: &AtomicBool) {
        super::idle::wait_for_request(kick);
    }

    fn idle(deadline: Option<u64>, kick: &AtomicBool, taken: &mut dyn FnMut(u32)) {
        super::idle::until(deadline, kick);
        while let Some(vector) = super::ioapic::take_pending() {
            taken(vector.into());
        }
    }

    fn kick(cpu: usize) {
        local_apic().send_nmi(apic_id_of(cpu));
    }

    fn now() -> u64 {
        timer::now()
    }

    fn counter_hz() -> u64 {
        timer::tsc_hz()
    }

    fn arm_timer(deadline: Option<u64>) {
        timer::arm(deadline, virt::preemption_rate().is_some());
    }

    fn available() -> bool {
        backend::chosen() != Backend::None
    }

    /// The host's values, filtered (`arch_x86::vmx::guest_cpuid`): VMX and SVM hidden, the
    /// hypervisor leaves naming Septum and its hypercall ABI. Both backends ask here.
    fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
        let abi = vcpu::hypercall::ABI_VERSION as u32;
        let khz = (timer::tsc_hz() / 1000) as u32;
        arch_x86::vmx::guest_cpuid::guest_cpuid(leaf, subleaf, abi, khz)
    }

    /// The I/O APIC entry of `line`: its own host vector, fixed, physical destination = the
    /// local APIC ID of the CPU (`ioapic`).
    fn route_device_line(line: u32, to: Option<DeviceRoute>) {
        ioapic::program(
            line,
            to.map(|r| ioapic::Target {
                apic_id: apic_id_of(r.cpu),
                level: r.level,
                active_low: r.active_low,
            }),
        );
    }

    fn device_lines(vector: u32) -> u64 {
        u8::try_from(vector)
            .ok()
            .and_then(ioapic::line_of)
            .map_or(0, |line| 1 << line)
    }

    fn end_device_line(line: u32) {
        ioapic::release(line);
    }
}
