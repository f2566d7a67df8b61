//! Guest memory as the hypervisor reaches it: a guest-physical range of a partition becomes a
//! slice of host memory through the partition's own stage-2 table, the one record of what the
//! partition may touch (`mmu::StageTwoTable::translate_range`): every page mapped, write-back RAM
//! (never a device window), writable where the hypervisor writes on the guest's behalf, and one
//! contiguous run of host memory, reached through the arch's direct map. Hypercall buffers go
//! through here, so a buffer outside the caller's memory is refused (error -6) and never touched.

use crate::arch::PartitionArch;
use crate::Partition;
use mmu::{Gpa, GpaRange, MemType, Perms};

/// The host bytes behind `[gpa, gpa + len)` of `p`, if its stage-2 table maps all of it as one
/// run of write-back memory (writable by the guest when `write` is set).
pub fn host_slice<A: PartitionArch>(
    p: &Partition<A>,
    gpa: u64,
    len: u64,
    write: bool,
) -> Option<&'static mut [u8]> {
    let range = GpaRange::from_len(Gpa(gpa), len).ok()?;
    let need = if write { Perms::W } else { Perms::NONE };
    let host = p.table().translate_range(range, need, MemType::WriteBack)?;
    let ptr = A::phys_to_virt(host.as_u64());
    // SAFETY: the partition's table maps the whole range to this run of host memory, and the
    // board checker proved every such mapping is RAM outside the hypervisor and every other
    // partition (or shared with one, which both may write); the direct map covers all RAM. The
    // guest may change these bytes while we read them (another vCPU, a sharer), which can garble
    // what it asked for but not memory safety of the hypervisor: the slice is plain bytes and is
    // not kept past the hypercall.
    Some(unsafe { core::slice::from_raw_parts_mut(ptr, len as usize) })
}
