//! The interrupt controller as a partition sees it: every partition gets a view of the board's
//! controller (the board file's `irqchip`: an x86 I/O APIC or a Loongson PCH-PIC), so a guest
//! driver finds the chip where it expects it, and a hostile partition can try to reprogram it.
//! The register models and the accept/refuse decision are `vcpu::irqchip`'s; this file gives them
//! the partition's lines and vCPU count (its board-file `irqs` and `cpus`), keeps one view per
//! partition (shared by its vCPUs, as one chip is), and answers what a line's accepted route is,
//! for delivery ([`accepted_route`]). The view reaches the vCPUs' buses, and its decisions are
//! acted on, in `irqchip_view`; the physical controller is never touched from here: the
//! hypervisor keeps it, and `device_irq` programs it from the accepted routes.

use crate::arch::PartitionArch;
use crate::Partition;
use board_config::IrqChipKind;
use vcpu::irqchip::ioapic::IoApic;
use vcpu::irqchip::pch_pic::PchPic;
use vcpu::irqchip::{Ownership, Route};

/// One partition's controller state.
pub enum Chip {
    IoApic(IoApic),
    PchPic(PchPic),
}

impl Chip {
    /// A reset view of the board's controller: every line masked and unrouted.
    pub fn new(chip: &board_config::IrqChip) -> Self {
        let lines = chip.lines;
        match chip.kind {
            IrqChipKind::IoApic => Self::IoApic(IoApic::new(lines)),
            IrqChipKind::PchPic => Self::PchPic(PchPic::new(lines)),
        }
    }

    /// The controller's name on the console.
    pub fn name(&self) -> &'static str {
        match self {
            Self::IoApic(_) => "IOAPIC",
            Self::PchPic(_) => "PCH-PIC",
        }
    }
}

/// What `p` owns of the controller: its device lines and its virtual console's.
pub(super) fn ownership<A: PartitionArch>(p: &Partition<A>) -> Ownership<'_> {
    Ownership {
        lines: &p.view_lines,
        vcpus: p.vcpus.len() as u32,
    }
}

/// The route `p` programmed for its line `line` in its controller view, if the line is its own
/// (and, for a masked I/O APIC entry, names one of its vCPUs): the target vCPU, vector, mask and
/// trigger mode, for delivery.
pub fn accepted_route<A: PartitionArch>(p: &Partition<A>, line: u32) -> Option<Route> {
    let own = ownership(p);
    match &*p.irqchip.lock() {
        Chip::IoApic(a) => a.route(line, &own),
        Chip::PchPic(c) => c.route(line, &own),
    }
}
