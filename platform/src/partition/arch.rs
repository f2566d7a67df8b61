//! The seam between the arch-neutral partition layer and one architecture's vCPU backend. An arch
//! module implements [`PartitionArch`] on its `Current` type; everything else in
//! `crate::partition` (tables, images, exits, hypercalls, management, cross-CPU requests) is
//! written once against it.
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

use super::{Partition, PartitionId};
use mmu::{Flush, PteFormat};
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
    /// The guest's first five argument registers: partition id, backend flags (the backend may
    /// set bits, e.g. LoongArch bit 0 = "hypercalls use hvcl"), times started before, the first
    /// shared region's guest-physical address (0 if none) and its size.
    pub args: [u64; 5],
}

/// What one architecture provides to run partitions.
pub trait PartitionArch {
    /// The stage-2 entry format of this architecture's tables.
    type Format: PteFormat + Default + 'static;
    /// One vCPU on the calling CPU.
    type Vcpu: ArchVcpu;
    /// The virtual console's place in guest space.
    const VIRTUAL_UART: VirtualUartAt;

    /// The backend in use, for the log (e.g. "deprivileged (LVZ absent)").
    fn backend() -> &'static str;
    /// Prepares the calling CPU to run guests (called once per CPU before its first vCPU).
    fn prepare_cpu();
    /// A vCPU of `partition` about to start as `boot` says, on the calling CPU.
    fn create_vcpu(partition: &'static Partition, boot: GuestBoot) -> Self::Vcpu;
    /// Drops the calling CPU's cached stage-2 translations of partition `id` covered by `what`.
    fn flush_local(id: PartitionId, what: Flush);
    /// Makes CPU `cpu` leave its guest soon, so it services its requests.
    fn kick(cpu: usize);

    /// Whether this machine has what the backend needs to run any partition (x86: VMX, or SVM
    /// with nested paging). When it has not, the partitions are built (the board file is still
    /// checked) but none runs, and the boot says so and ends normally.
    fn available() -> bool {
        true
    }
    /// The four CPUID registers (eax, ebx, ecx, edx) a guest sees for `leaf`/`subleaf`. The
    /// default, for architectures without CPUID, is never asked.
    fn cpuid(_leaf: u32, _subleaf: u32) -> [u32; 4] {
        [0; 4]
    }
}
