//! The seam between the arch-neutral partition engine and one machine: the image's arch module
//! implements [`PartitionArch`] on its `Current` type, a host test on a mock; everything else in
//! this crate (tables, images, exits, hypercalls, management, cross-CPU requests) is written once
//! against it.
//!
//! What a backend must do, and nothing more:
//! * pick the stage-2 entry format ([`PartitionArch::Format`], an `mmu::PteFormat`);
//! * create a vCPU ([`PartitionArch::Vcpu`], a `vcpu::ArchVcpu`) that enters the partition at
//!   [`GuestBoot::entry`] with [`GuestBoot::args`] in its first argument registers, uses the
//!   partition's table root (`Partition::table().root()`), and turns every exit into a
//!   `vcpu::VmExit`: accesses to guest-physical addresses outside the partition's memory as
//!   `MmioRead`/`MmioWrite` (or `StageTwoFault` when the access cannot be decoded), faults on its
//!   memory as `StageTwoFault` (the layer repairs them with `mmu::StageTwoTable::fast_fix`), and
//!   an interrupt as `ExternalInterrupt` after acknowledging it;
//! * invalidate the partition's cached stage-2 translations on the calling CPU
//!   ([`PartitionArch::flush_local`]; the layer reaches other CPUs itself through
//!   [`PartitionArch::kick`]);
//! * make another CPU leave its guest soon ([`PartitionArch::kick`], an IPI whose exit the vCPU
//!   reports as `ExternalInterrupt`);
//! * say whether the machine can run partitions at all ([`PartitionArch::available`]) and, where
//!   the architecture has CPUID, what a guest's CPUID returns ([`PartitionArch::cpuid`]). The
//!   vCPU reports every CPUID as `VmExit::CpuId`, so the exit is counted like any other; the
//!   answer is the arch's, since what a guest may know of its CPU is an arch fact.
//!
//! Issue 9 (multi-vCPU partitions, virtual timers and IPIs, flush shootdown) and the device
//! interrupts added the rest. No method has a default: a backend says what it does for each,
//! even where that is nothing.
//! * [`PartitionArch::send_flush_ipi`]: the IPI of a flush shootdown. The target needs no
//!   interrupt handler of its own: the IPI makes its guest exit, and the arch-neutral exit
//!   handler services the posted flush (`Partition::service_flushes`) before anything else.
//! * [`PartitionArch::now`] and [`PartitionArch::counter_hz`]: a free-running per-CPU counter,
//!   for virtual timer deadlines and the cost figures (x86: TSC and its rate).
//! * [`PartitionArch::arm_timer`]: make the calling CPU's guest exit (`ExternalInterrupt`, any
//!   vector) at or soon after a counter value, or never (x86: the local APIC timer, one-shot or
//!   TSC-deadline; LoongArch deprivileged: TCFG one-shot). The layer decides which virtual timers
//!   are due by comparing [`PartitionArch::now`] with their deadlines, so a spurious or early exit
//!   costs nothing.
//! * [`PartitionArch::wait`] and [`PartitionArch::idle`]: a CPU waiting for a start, or for its
//!   halted vCPU's next event.
//! * [`PartitionArch::route_device_line`]: program the physical interrupt controller's entry of
//!   a device line, from what the partition's view of it accepted (`device_irq`): delivered to
//!   the CPU that runs the chosen vCPU, or masked (x86: the I/O APIC, `ioapic.rs`; LoongArch:
//!   PCH-PIC and EIOINTC, `device_irq.rs`).
//! * [`PartitionArch::device_lines`]: the device lines behind an `ExternalInterrupt`'s vector,
//!   so the layer can raise them on the vCPUs they were routed to.
//!
//! What the engine needs of the machine that is not the architecture's, also without defaults:
//! who hands out table pages ([`PartitionArch::Frames`]), and, in [`MachineServices`] (one
//! implementation for every architecture of an image), the calling CPU's index, where host
//! memory is reached, and the console.
//!
//! And, on the vCPU side (`vcpu::ArchVcpu`, no defaults either): `deliver_upcall` and
//! `return_from_upcall`, the context switch into and out of a guest's virtual-interrupt handler
//! (`vcpu::upcall`), and [`GuestBoot::vcpu`], the index a vCPU's identity register shows (LVZ
//! guest CPUID, x86 APIC ID as the board file says).
//!
//! [`kick`]: PartitionArch::kick

use crate::{Partition, PartitionId};
use core::sync::atomic::AtomicBool;
use mmu::{Flush, Hpa, PteFormat};
use vcpu::ArchVcpu;

/// Where a partition's virtual console UART (a 16550) sits in its address space. Each arch
/// constructs only its own variant.
#[allow(dead_code)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtualUartAt {
    /// Memory-mapped, 8 byte-wide registers at this guest-physical address.
    Mmio(u64),
    /// x86 I/O ports from this base.
    Port(u16),
}

/// How a vCPU starts.
#[derive(Clone, Copy, Debug)]
pub struct GuestBoot {
    /// Guest-physical address of the first instruction.
    pub entry: u64,
    /// The guest's first five argument registers: partition id, flags (the backend may set bit
    /// 0, LoongArch: "hypercalls use hvcl"; bit 1 asks the test guests for their multi-vCPU
    /// scenario, from `smp-test=1` on the command line), times started before, the first
    /// shared region's guest-physical address (0 if none) and its size. A secondary vCPU
    /// (started with `VCPU_START`) gets the caller's `arg`, its own index, then zeros.
    pub args: [u64; 5],
    /// This vCPU's index inside its partition (0 = the boot vCPU).
    pub vcpu: u32,
    /// x86: the vCPU starts as a STARTUP IPI starts a processor, in real mode with CS:IP =
    /// `entry >> 4`:0, paging and protection off, the argument registers zero (a backend without
    /// the notion never gets it).
    pub real_mode: bool,
    /// Whose register convention `args` follows.
    pub abi: BootAbi,
}

/// The register convention of a vCPU's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootAbi {
    /// The test guests': the backend may add its flags to the boot vCPU's flag register.
    TestGuest,
    /// A boot protocol (Linux's): the registers hold exactly `args`, nothing added.
    Exact,
}

/// Where the physical controller sends a device line: the CPU that runs the target vCPU, and the
/// line's signalling as the partition's entry asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRoute {
    /// The physical CPU (the target vCPU's `VcpuSlot::cpu`).
    pub cpu: usize,
    /// Level-triggered (else edge).
    pub level: bool,
    /// Active low (else active high).
    pub active_low: bool,
}

/// What one architecture provides to run partitions.
pub trait PartitionArch: MachineServices + Sized + 'static {
    /// The stage-2 entry format of this architecture's tables.
    type Format: PteFormat + 'static;
    /// Where the partitions' table pages come from.
    type Frames: mmu::FrameAllocator + Clone;
    /// One vCPU on the calling CPU.
    type Vcpu: ArchVcpu;
    /// The virtual console's place in guest space.
    const VIRTUAL_UART: VirtualUartAt;
    /// The interrupt-controller line the virtual console's interrupt output drives in the
    /// partition's controller view (x86: ISA IRQ 4, COM1's), or `None` where the platform
    /// describes no interrupt for it, so a guest polls it.
    const VIRTUAL_UART_LINE: Option<u32>;

    /// The stage-2 format this machine's tables use (x86: EPT or NPT, as the CPU has).
    fn stage2_format() -> Self::Format;
    /// The backend in use, for the log (e.g. "deprivileged (LVZ absent)").
    fn backend() -> &'static str;
    /// Prepares the calling CPU to run guests (called once per CPU before its first vCPU).
    fn prepare_cpu();
    /// A vCPU of `partition` about to start as `boot` says, on the calling CPU; `kick` is that
    /// CPU's kick flag (`Partition::kick_flag`), which a backend whose entry window must notice a
    /// kick (x86: the entry stubs and `idle`) keeps.
    fn create_vcpu(
        partition: &'static Partition<Self>,
        boot: GuestBoot,
        kick: &'static AtomicBool,
    ) -> Self::Vcpu;
    /// Drops the calling CPU's cached stage-2 translations of partition `id`, whose table is
    /// rooted at `root` (x86 VMX names the EPT by it), covered by `what`.
    fn flush_local(id: PartitionId, root: Hpa, what: Flush);
    /// Makes CPU `cpu` leave its guest soon, so it services its requests.
    fn kick(cpu: usize);

    /// Sends the flush-shootdown IPI to `cpu`: it must leave its guest (or, if it is in the
    /// hypervisor, reach an exit or a `Partition::service_flushes` call) soon.
    fn send_flush_ipi(cpu: usize);
    /// The calling CPU's free-running counter.
    fn now() -> u64;
    /// The counter's frequency in Hz (0 until measured; virtual timers then never fire).
    fn counter_hz() -> u64;
    /// Arms the calling CPU's timer so its guest exits at or after counter value `deadline`
    /// (`None`: disarm). Called only by the CPU running the vCPU.
    fn arm_timer(deadline: Option<u64>);
    /// The vCPU on the calling CPU halted with nothing to deliver: waits, in the hypervisor,
    /// until a kick comes, a device interrupt arrives, or the counter reaches `deadline` (the
    /// vCPU's virtual timer), for at most a few milliseconds; each device line's vector taken
    /// meanwhile is handed to `taken`. A backend that cannot wait returns at once (the vCPU
    /// then executes its halt again, a busy wait). An emulator runs the other CPUs faster when
    /// this one really halts, and real hardware spends less power.
    /// `kick` is the CPU's kick flag: set before every kick, so a wait that sees it set does
    /// not start.
    fn idle(deadline: Option<u64>, kick: &AtomicBool, taken: &mut dyn FnMut(u32));
    /// Waits a little, on a CPU that runs no vCPU, for another CPU to ask for something (a start
    /// request comes with a kick). An emulator runs faster when waiting CPUs halt instead of
    /// spinning. `kick` is the CPU's kick flag (as for [`PartitionArch::idle`]); the wait
    /// clears it.
    fn wait(kick: &AtomicBool);
    /// Whether this machine has what the backend needs to run any partition (x86: VMX, or SVM
    /// with nested paging). When it has not, the partitions are built (the board file is still
    /// checked) but none runs, and the boot says so and ends normally.
    fn available() -> bool;
    /// What a guest's CPU-identification instruction returns: x86 CPUID's four registers (eax,
    /// ebx, ecx, edx) for `leaf`/`subleaf`; LoongArch `cpucfg`'s word `leaf` in the first.
    fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4];
    /// Programs device line `line` of the physical interrupt controller: delivered as the
    /// line's own host vector to `to`, or masked (`None`). Called at boot for every line
    /// (masked), and whenever a partition's accepted route of one of its lines changes.
    fn route_device_line(line: u32, to: Option<DeviceRoute>);
    /// The device lines behind an `ExternalInterrupt`'s `vector` (bit n: line n), acknowledged
    /// on the controller: x86's vector names one line; LoongArch's EIOINTC pin may stand for
    /// several, read from the calling CPU's EIOINTC.
    fn device_lines(vector: u32) -> u64;
    /// The guest ended its interrupt of level-triggered line `line` (its EOI of the vector the
    /// line was routed as): the line, held masked since its interrupt was taken, may fire again.
    /// Only x86 guests end interrupts by an EOI the hypervisor sees (their x2APIC's).
    #[cfg(feature = "x86")]
    fn end_device_line(line: u32);
    /// LoongArch: the calling CPU's 64-bit IOCSR word at `addr`, for the identity words a
    /// guest's IOCSR reads are answered from (`arch_loongarch::linux::iocsr_view` filters them).
    #[cfg(feature = "loongarch")]
    fn iocsr_read64(addr: u64) -> u64;
}

/// What the engine needs of the machine that is no architecture's fact: the same on every
/// architecture of the image, so the image implements it once.
pub trait MachineServices {
    /// The calling CPU's index (the board file's CPU numbers).
    fn cpu_index() -> usize;
    /// Where the hypervisor reaches host-physical address `pa` (the direct map).
    fn phys_to_virt(pa: u64) -> *mut u8;
    /// Prints one line on the hypervisor's console (the line break is the console's).
    fn print_line(line: core::fmt::Arguments);
    /// Writes bytes to the console as they are: a partition's output once it is typed to.
    fn write_console(bytes: &[u8]);
    /// Takes up to `buf.len()` bytes typed on the console since the last call; how many.
    fn take_console_input(buf: &mut [u8]) -> usize;
}
