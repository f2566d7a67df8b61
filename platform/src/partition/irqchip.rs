//! The interrupt controller as a partition sees it: every partition gets a view of the board's
//! controller (the board file's `irqchip`: an x86 I/O APIC or a Loongson PCH-PIC) on its MMIO
//! bus at the controller's own address, so a guest driver finds the chip where it expects it,
//! and a hostile partition can try to reprogram it. The register models and the accept/refuse
//! decision are `vcpu::irqchip`'s; this file gives them the partition's lines and vCPU count
//! (its board-file `irqs` and `cpus`), keeps one view per partition (shared by its vCPUs, as one
//! chip is), and acts on each decision:
//! * an accepted route of an owned line is recorded and programmed into the physical controller
//!   (`device_irq::route_by_chip`), and the full entry stays here for delivery
//!   ([`accepted_route`]);
//! * a refused one (another partition's line, a vCPU the partition does not have, an I/O APIC
//!   delivery mode other than fixed or lowest priority) is ignored, the guest continues, and the
//!   console says why in the words the hypercall path uses.
//!
//! The physical controller is never touched from here: the hypervisor keeps it, and
//! `device_irq` programs it from the accepted routes.

use super::Partition;
use crate::board::BOARD;
use alloc::boxed::Box;
use alloc::vec::Vec;
use board_config::IrqChipKind;
use core::sync::atomic::Ordering;
use vcpu::irqchip::ioapic::IoApic;
use vcpu::irqchip::pch_pic::PchPic;
use vcpu::irqchip::{Ownership, Refusal, Route, RouteEvent};
use vcpu::{AccessSize, Device, DeviceError, IoBus};

/// One partition's controller state.
pub enum Chip {
    IoApic(IoApic),
    PchPic(PchPic),
}

impl Chip {
    /// A reset view of the board's controller: every line masked and unrouted.
    pub fn new() -> Self {
        let lines = BOARD.irqchip.lines;
        match BOARD.irqchip.kind {
            IrqChipKind::IoApic => Self::IoApic(IoApic::new(lines)),
            IrqChipKind::PchPic => Self::PchPic(PchPic::new(lines)),
        }
    }

    /// The controller's name on the console.
    fn name(&self) -> &'static str {
        match self {
            Self::IoApic(_) => "IOAPIC",
            Self::PchPic(_) => "PCH-PIC",
        }
    }
}

/// What `p` owns of the controller: its device lines and its virtual console's.
pub(super) fn ownership(p: &Partition) -> Ownership<'_> {
    Ownership {
        lines: &p.view_lines,
        vcpus: p.vcpus.len() as u32,
    }
}

/// The route `p` programmed for its line `line` in its controller view, if the line is its own
/// (and, for a masked I/O APIC entry, names one of its vCPUs): the target vCPU, vector, mask and
/// trigger mode, for delivery.
pub fn accepted_route(p: &Partition, line: u32) -> Option<Route> {
    let own = ownership(p);
    match &*p.irqchip.lock() {
        Chip::IoApic(a) => a.route(line, &own),
        Chip::PchPic(c) => c.route(line, &own),
    }
}

/// Puts the controller view on the MMIO bus of a vCPU running on CPU `cpu`, at the board's
/// controller address.
pub fn register(bus: &mut IoBus, partition: &'static Partition, cpu: usize) {
    let window = BOARD.irqchip.mmio;
    let view = Box::new(View { partition, cpu });
    if let Err(e) = bus.register(window.start, window.size, "interrupt controller", view) {
        // The board checker keeps devices off the controller's window, so this is a bug.
        log::error!("partition {}: irqchip view: {e}", partition.name());
    }
}

/// The view on one vCPU's bus; the state is the partition's.
struct View {
    partition: &'static Partition,
    /// The CPU its vCPU runs on (a vector it sends to a vCPU elsewhere kicks that one).
    #[cfg_attr(not(target_arch = "loongarch64"), allow(dead_code))]
    cpu: usize,
}

impl Device for View {
    fn name(&self) -> &str {
        "interrupt controller"
    }

    fn read(&mut self, offset: u64, size: AccessSize) -> Result<u64, DeviceError> {
        let own = ownership(self.partition);
        match &*self.partition.irqchip.lock() {
            Chip::IoApic(a) => a.read(offset, size, &own),
            Chip::PchPic(c) => c.read(offset, size, &own),
        }
    }

    fn write(&mut self, offset: u64, size: AccessSize, value: u64) -> Result<(), DeviceError> {
        let p = self.partition;
        let own = ownership(p);
        let mut events = Vec::new();
        let mut report = |e| events.push(e);
        // Decide under the lock, act and print after it.
        let (chip, result, sends) = {
            let mut chip = p.irqchip.lock();
            let (result, sends) = match &mut *chip {
                Chip::IoApic(a) => (a.write(offset, size, value, &own, &mut report), Vec::new()),
                // An unmask may let a driven line's vector go.
                Chip::PchPic(c) => {
                    let r = c.write(offset, size, value, &own, &mut report);
                    (r, c.take_sends(&own))
                }
            };
            (chip.name(), result, sends)
        };
        for e in events {
            act(p, chip, e);
        }
        #[cfg(target_arch = "loongarch64")]
        p.send_vectors(&sends, self.cpu);
        #[cfg(not(target_arch = "loongarch64"))]
        debug_assert!(sends.is_empty(), "no PCH-PIC view off LoongArch");
        result
    }
}

/// LoongArch: whether accepted route `r` of a device line names another vCPU or vector than the
/// one last said on the console (recording it as said).
#[cfg(target_arch = "loongarch64")]
fn said_anew(p: &Partition, r: Route) -> bool {
    let Some(pos) = p.config.irqs.iter().position(|&l| l == r.line) else {
        return true;
    };
    let key = 1 << 31 | r.vcpu << 8 | u32::from(r.vector);
    p.irq_said[pos].swap(key, Ordering::Relaxed) != key
}

/// Records an accepted route, or says why a write was refused.
fn act(p: &Partition, chip: &str, e: RouteEvent) {
    let name = p.name();
    match e {
        // LoongArch's level handler masks and unmasks the console's line at every interrupt:
        // a virtual line's route is said only on x86, where it changes at driver set-up only.
        RouteEvent::Accepted(r)
            if cfg!(target_arch = "loongarch64") && !p.config.irqs.contains(&r.line) =>
        {
            super::device_irq::route_by_chip(p, r);
        }
        // The same flow on a device line: its route is said when its target or vector changes.
        #[cfg(target_arch = "loongarch64")]
        RouteEvent::Accepted(r) if !said_anew(p, r) => super::device_irq::route_by_chip(p, r),
        RouteEvent::Accepted(r) => {
            crate::println!(
                "partition {name}: {chip} line {} -> vCPU {} (vector {:#x}, {})",
                r.line,
                r.vcpu,
                r.vector,
                if r.masked { "masked" } else { "unmasked" }
            );
            // Validated already (an owned line, one of its vCPUs): recorded, and the physical
            // controller follows.
            super::device_irq::route_by_chip(p, r);
        }
        // The first refusal of a run is said; the rest are counted (`device_irq::end_run`
        // reports them): a kernel's controller driver resets every line, the partition's or not.
        RouteEvent::Refused { .. } if p.view_refusals.fetch_add(1, Ordering::Relaxed) > 0 => {}
        RouteEvent::Refused { line, why } => match why {
            Refusal::NotOwned => crate::println!(
                "partition {name}: {chip} route refused: line {line} is not one of its lines {:?}",
                p.config.irqs
            ),
            Refusal::NoSuchVcpu(v) => crate::println!(
                "partition {name}: {chip} route refused: vCPU {v} is outside its {} vCPUs",
                p.vcpus.len()
            ),
            Refusal::DeliveryMode(m) => crate::println!(
                "partition {name}: {chip} route refused: line {line} delivery mode {m} is not \
                 fixed or lowest priority"
            ),
        },
    }
}
