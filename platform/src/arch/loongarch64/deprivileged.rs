//! The deprivileged backend on the running CPU: [`RealDepriv`], the
//! `arch_loongarch::depriv::DeprivHw` that the backend's logic drives
//! (`arch_loongarch::depriv::DeprivilegedVcpu`, host-tested: exit decoding, completions,
//! upcalls), and [`create`], which makes a partition's vCPU. An entry points the CPU's
//! translation at the partition (PGDL = its GPA table, ASID = its address-space id) and switches
//! worlds (`world.rs`); an interrupt exit is acknowledged by `host_irq`, and whether an address is
//! the partition's is its stage-2 table's answer.

use super::host_irq;
use super::world;
use crate::partitions::Partition;
use arch_loongarch::csr;
use arch_loongarch::depriv::{self, DeprivHw, DeprivilegedVcpu, GuestContext, VcpuConfig};
use partition::arch::GuestBoot;

/// A deprivileged vCPU on this CPU.
pub type Vcpu = DeprivilegedVcpu<RealDepriv>;

/// The running CPU, as one partition's deprivileged vCPU sees it.
pub struct RealDepriv {
    partition: &'static Partition,
}

impl DeprivHw for RealDepriv {
    fn enter(&mut self, root: u64, asid: u64, ctx: &mut GuestContext) {
        // SAFETY: `root` and `asid` are the partition's GPA table (every empty slot leads to an
        // invalid table, never to address 0) and its own address-space id, as `create` gave them
        // to the vCPU, which passes them on unchanged, so the guest reaches only its memory.
        // `ctx.prmd` selects PLV3 (the vCPU starts there, and an exception from PLV3 saves it
        // unchanged) and interrupts are off in the hypervisor, as `enter` requires.
        unsafe {
            csr::write::<{ csr::PGDL }>(root);
            csr::write::<{ csr::ASID }>(asid);
            world::enter(ctx);
        }
    }

    fn acknowledge(&mut self, is: u32) -> u32 {
        host_irq::acknowledge_interrupts(is)
    }

    fn owned(&self, gpa: u64) -> bool {
        self.partition.table().translate(mmu::Gpa(gpa)).is_some()
    }
}

/// A vCPU of `partition` that starts as `boot` says. The guest image must already be visible to
/// instruction fetch (the caller's `ibar` after copying it in).
pub fn create(partition: &'static Partition, boot: GuestBoot) -> Vcpu {
    DeprivilegedVcpu::new(
        RealDepriv { partition },
        VcpuConfig {
            root: partition.table().root().as_u64(),
            asid: depriv::asid(partition.id),
            entry: boot.entry,
            args: boot.args,
        },
    )
}
