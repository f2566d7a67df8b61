//! The deprivileged backend's logic, for CPUs without LVZ (stock QEMU, LVZ-less Loongson SoCs): a
//! partition's code runs at PLV3 on its own CPU with the partition's GPA table as its page table
//! (PGDL, VA == GPA, ASID = [`asid`], the high half behind an all-invalid root), refilled by the
//! hardware walker (the image's `trap.rs`). Every exception it takes is an exit: the image's world
//! switch fills a [`GuestContext`], and [`DeprivilegedVcpu`] decodes it into a `vcpu::VmExit`:
//! `syscall` is a hypercall, page-invalid faults on addresses outside the partition's memory are
//! device accesses (decoded from BADI), faults on its memory go to the stage-2 fast fix
//! (page-modify = dirty, page-invalid after aging = young), IOCSR accesses reach the partition's
//! emulated IPI block, other privileged instructions are forbidden, and an IPI or timer interrupt
//! is an `ExternalInterrupt` (a kick, a flush shootdown, or the vCPU's virtual timer). Virtual
//! interrupts reach the PLV3 program as upcalls (`vcpu::upcall`): the interrupted context is
//! copied aside in the vCPU, in the hypervisor, and the guest resumes in its handler with sp, a0
//! and a1 set; `UPCALL_RETURN` copies it back.
//!
//! What needs the CPU or the partition (entering the guest under the partition's translation,
//! acknowledging the host interrupts behind an interrupt exit, asking the stage-2 table whether
//! it maps an address) goes through [`DeprivHw`], so the decoding, the completions and the
//! upcalls are tested on the host against a model (`tests.rs`). The image holds the one real
//! implementation, next to the world-switch asm.

mod context;
#[cfg(test)]
mod model;
#[cfg(test)]
mod tests;
mod vcpu;

pub use self::vcpu::{DeprivilegedVcpu, VcpuConfig, PRMD_GUEST};
pub use context::GuestContext;

/// The address-space id of partition `id` (0 is never used for a partition): its deprivileged
/// guests' TLB entries, and the root's flushes of them.
pub fn asid(id: u32) -> u64 {
    u64::from(id) + 1
}

/// The CPU and the partition as a deprivileged vCPU sees them; one implementation per world
/// (hardware, host model).
pub trait DeprivHw {
    /// Runs the guest in `ctx` with PGDL = `root` and ASID = `asid` until its next exception;
    /// `ctx` then holds its registers, ERA, PRMD, ESTAT, BADV and BADI. `ctx.prmd` is always
    /// [`PRMD_GUEST`] (PLV3, interrupts on).
    fn enter(&mut self, root: u64, asid: u64, ctx: &mut GuestContext);
    /// Acknowledges the host interrupts pending in `is` (ESTAT.IS) and returns the vector to
    /// report (12 for an IPI, 11 for the timer, else the image's choice for the line).
    fn acknowledge(&mut self, is: u32) -> u32;
    /// Whether the partition's stage-2 table maps `gpa`: its memory, or a device window of its
    /// own (whose first write takes a fault too, the table keeping the dirty bit for the fault to
    /// set). A page-invalid fault there is the table's to fix; elsewhere it is a device access.
    fn owned(&self, gpa: u64) -> bool;
}
