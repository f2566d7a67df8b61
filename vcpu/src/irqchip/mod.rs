//! Models of the interrupt-controller registers a partition programs (the x86 I/O APIC in
//! [`ioapic`], the Loongson PCH-PIC in [`pch_pic`]): register decoding, what each register reads
//! back, and whether a write that routes a device line is accepted. They hold no policy of their
//! own: the caller says which lines the partition owns and how many vCPUs it has
//! ([`Ownership`]), and gets each routing decision back as a [`RouteEvent`] to log and act on.
//!
//! The rule both models apply: a partition sees every line of the controller, but only its own
//! lines hold what it writes. Another partition's line reads as "masked, unrouted", and a write
//! that would change what such a line reads back is refused (the register keeps its value, the
//! guest continues). A write that routes an owned line to a vCPU the partition does not have is
//! refused the same way. Destinations are vCPU indices of the partition (vCPU k has APIC ID k,
//! or bit k of a destination bitmap), never physical CPUs, so a partition cannot even name a CPU
//! outside itself.

pub mod eiointc;
pub mod ioapic;
pub mod line_routes;
pub mod pch_pic;

#[cfg(test)]
mod tests;

/// What one partition owns of a controller: the device lines the board file gives it and how
/// many vCPUs it has.
#[derive(Clone, Copy, Debug)]
pub struct Ownership<'a> {
    /// Its device lines (`irqs` of its board-file entry).
    pub lines: &'a [u32],
    /// Its vCPU count; vCPU indices are `0..vcpus`.
    pub vcpus: u32,
}

impl Ownership<'_> {
    /// Whether `line` is one of the partition's lines.
    pub fn owns(&self, line: u32) -> bool {
        self.lines.contains(&line)
    }
}

/// An accepted route of one line: where and how the partition wants it delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The device line.
    pub line: u32,
    /// The target vCPU (an index of the partition).
    pub vcpu: u32,
    /// The vector the guest asked for.
    pub vector: u8,
    /// The line is masked: nothing is delivered until the guest unmasks it.
    pub masked: bool,
    /// Level-triggered (else edge).
    pub level: bool,
    /// Active low (else active high).
    pub active_low: bool,
}

/// Why a routing write was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The line is not one of the partition's.
    NotOwned,
    /// The destination names this vCPU, which the partition does not have.
    NoSuchVcpu(u32),
    /// An I/O APIC delivery mode other than fixed or lowest priority (SMI, NMI, INIT and
    /// ExtINT would reach a CPU outside the normal vector path).
    DeliveryMode(u8),
}

/// The outcome of a write that touched a line's routing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteEvent {
    /// An owned line's routing changed; the register now holds this.
    Accepted(Route),
    /// The write to `line` was ignored.
    Refused { line: u32, why: Refusal },
}

/// The vCPU a destination bitmap names (its lowest set bit; 0 names vCPU 0, the reset route),
/// or, if it names a vCPU outside the partition's `vcpus`, the highest such.
fn bitmap_target(bitmap: u64, vcpus: u32) -> Result<u32, Refusal> {
    if bitmap == 0 {
        return Ok(0);
    }
    let highest = 63 - bitmap.leading_zeros();
    if highest >= vcpus {
        return Err(Refusal::NoSuchVcpu(highest));
    }
    Ok(bitmap.trailing_zeros())
}
