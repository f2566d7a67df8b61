//! Guest memory as the hypervisor reaches it: a guest-physical range of a partition, checked to
//! lie inside one of its regions (with write permission when the hypervisor writes on the
//! guest's behalf), becomes a slice of host memory through the arch's direct map. Hypercall
//! buffers go through here, so a buffer outside the caller's memory is refused (error -6) and
//! never touched.

use super::Partition;
use crate::arch::{Current, Machine};

/// The host bytes behind `[gpa, gpa + len)` of `p`, if one region holds all of it (and allows
/// guest writes when `write` is set).
pub fn host_slice(p: &Partition, gpa: u64, len: u64, write: bool) -> Option<&'static mut [u8]> {
    let end = gpa.checked_add(len)?;
    let r = p
        .config
        .memory
        .iter()
        .find(|r| gpa >= r.guest && end <= r.guest + r.size)?;
    if write && !r.access.write {
        return None;
    }
    let host = r.translate(gpa)?;
    let ptr = Current::phys_to_virt(host) as *mut u8;
    // SAFETY: the range lies inside one region of the partition's memory, which the board checker
    // proved is RAM outside the hypervisor and every other partition (or shared with one, which
    // both may write); the direct map covers all RAM. The guest may change these bytes while we
    // read them (another vCPU, a sharer), which can garble what it asked for but not memory safety
    // of the hypervisor: the slice is plain bytes and is not kept past the hypercall.
    Some(unsafe { core::slice::from_raw_parts_mut(ptr, len as usize) })
}
