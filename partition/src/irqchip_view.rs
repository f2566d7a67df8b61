//! The controller view on each vCPU's MMIO bus, at the board's controller address, so a guest
//! driver finds the chip where it expects it: its accesses go to the partition's view state
//! (`irqchip`), and each routing decision the view makes is acted on here: an accepted route of an
//! owned line is recorded and programmed into the physical controller
//! (`device_irq::route_by_chip`), a refused one is said on the console (the first of a run; the
//! rest are counted), and vectors a PCH-PIC view sends go to the partition's EIOINTC view.

use crate::arch::PartitionArch;
use crate::irqchip::{ownership, Chip};
use crate::Partition;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use vcpu::irqchip::{Refusal, RouteEvent};
use vcpu::{AccessSize, Device, DeviceError, IoBus};

/// Puts the controller view on the MMIO bus of a vCPU running on CPU `cpu`, at the board's
/// controller address.
pub fn register<A: PartitionArch>(bus: &mut IoBus, partition: &'static Partition<A>, cpu: usize) {
    let window = partition.board.irqchip.mmio;
    let view = Box::new(View { partition, cpu });
    if let Err(e) = bus.register(window.start, window.size, "interrupt controller", view) {
        // The board checker keeps devices off the controller's window, so this is a bug.
        log::error!("partition {}: irqchip view: {e}", partition.name());
    }
}

/// The view on one vCPU's bus; the state is the partition's.
struct View<A: PartitionArch> {
    partition: &'static Partition<A>,
    /// The CPU its vCPU runs on (a vector it sends to a vCPU elsewhere kicks that one).
    #[cfg_attr(not(feature = "loongarch"), allow(dead_code))]
    cpu: usize,
}

impl<A: PartitionArch> Device for View<A> {
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
        #[cfg(feature = "loongarch")]
        p.send_vectors(&sends, self.cpu);
        #[cfg(not(feature = "loongarch"))]
        debug_assert!(sends.is_empty(), "no PCH-PIC view off LoongArch");
        result
    }
}

/// Records an accepted route, or says why a write was refused.
fn act<A: PartitionArch>(p: &Partition<A>, chip: &str, e: RouteEvent) {
    let name = p.name();
    match e {
        // LoongArch's level handler masks and unmasks the console's line at every interrupt:
        // a virtual line's route is said only on x86, where it changes at driver set-up only.
        RouteEvent::Accepted(r)
            if cfg!(feature = "loongarch") && !p.config.irqs.contains(&r.line) =>
        {
            super::device_irq::route_by_chip(p, r);
        }
        // The same flow on a device line: its route is said when its target or vector changes.
        #[cfg(feature = "loongarch")]
        RouteEvent::Accepted(r) if !p.line_routes.said_anew(&r) => {
            super::device_irq::route_by_chip(p, r)
        }
        RouteEvent::Accepted(r) => {
            say!(
                A,
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
            Refusal::NotOwned => {
                say!(A,
                "partition {name}: {chip} route refused: line {line} is not one of its lines {:?}",
                p.config.irqs
            )
            }
            Refusal::NoSuchVcpu(v) => say!(
                A,
                "partition {name}: {chip} route refused: vCPU {v} is outside its {} vCPUs",
                p.vcpus.len()
            ),
            Refusal::DeliveryMode(m) => say!(
                A,
                "partition {name}: {chip} route refused: line {line} delivery mode {m} is not \
                 fixed or lowest priority"
            ),
        },
    }
}
