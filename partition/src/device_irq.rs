//! Device interrupts of a partition's lines, from the physical controller to the vCPU the
//! partition routed them to, arch-neutral. A partition routes one of its lines (board file
//! `irqs`) in one of two ways, and the last one it used holds:
//! * through its view of the interrupt controller (`irqchip`: an I/O APIC redirection entry):
//!   the line then arrives as the vector it asked for, in the target vCPU's virtual x2APIC
//!   (`lapic`), and is counted when that vector is injected;
//! * through the `IRQ_ROUTE` hypercall (`vintr`): the line then arrives as a
//!   `VirtualIrq::Device(line)` upcall.
//!
//! On LoongArch the controller view is a PCH-PIC, and a line routed through it arrives the way a
//! 3A5000 delivers it: the view sends the line's vector to the partition's EIOINTC view, which
//! raises the hardware line of the vCPU the guest routed the vector to (`eiointc`).
//!
//! Which way a line is routed and what an interrupt of it becomes are decided by
//! `vcpu::irqchip::line_routes` (host-tested); this file acts on the decisions. Either way the
//! physical controller's entry of the line is programmed through
//! [`PartitionArch::route_device_line`] to deliver to the CPU that runs the target vCPU, so the
//! interrupt makes that vCPU's guest exit and nothing else: the exit handler there
//! ([`deliver`]) maps its host vector back to the line and raises it (and kicks the target's CPU
//! if a route change made the interrupt land elsewhere). A line another partition owns never
//! reaches this code for this partition: the views refuse such routes, so only its owner programs
//! it.
//!
//! Level-triggered lines (routed through the view): the backend masks the line when its interrupt
//! is taken, before ending it, since the device keeps asserting it until the guest's driver
//! clears the cause. On x86 the guest's EOI of the line's vector in its virtual APIC (`lapic`)
//! unmasks it again ([`guest_eoi`], `PartitionArch::end_device_line`); on LoongArch the guest's
//! unmask of the line in its PCH-PIC view does (the end of Linux's mask-handle-unmask flow, a
//! new accepted route), and a line still asserted then interrupts again, as on the chip. The
//! `IRQ_ROUTE` hypercall has no trigger mode to give: it asks for edge, active high (the ISA
//! default).
//!
//! A run's end masks the partition's lines again and resets its controller view, as a reset
//! leaves a real controller, so the next run starts from masked lines both in the view and on the
//! hardware.

use crate::arch::{DeviceRoute, PartitionArch};
use crate::irqchip::{self, Chip};
use crate::Partition;
use core::sync::atomic::Ordering;
use vcpu::irqchip::line_routes::Delivery;
use vcpu::irqchip::Route;

/// Masks every line of the physical controller: at boot, before any partition runs (firmware
/// may leave some open).
pub fn mask_all<A: PartitionArch>(board: &board_config::Board) {
    for line in 0..board.irqchip.lines {
        A::route_device_line(line, None);
    }
}

/// The `IRQ_ROUTE` hypercall routed `p`'s line at `pos` (of `config.irqs`) to vCPU `index`
/// (checked by the caller): edge, active high, unmasked.
pub fn route_by_hypercall<A: PartitionArch>(p: &Partition<A>, pos: usize, index: u32) {
    p.line_routes.set_by_hypercall(pos, index);
    let to = DeviceRoute {
        cpu: p.vcpus[index as usize].cpu,
        level: false,
        active_low: false,
    };
    A::route_device_line(p.config.irqs[pos], Some(to));
}

/// `p`'s controller view accepted route `r` of one of its lines.
pub fn route_by_chip<A: PartitionArch>(p: &Partition<A>, r: Route) {
    if !p.line_routes.set_by_controller(&r) {
        return;
    }
    let Some(slot) = p.vcpus.get(r.vcpu as usize) else {
        return;
    };
    let to = (!r.masked).then_some(DeviceRoute {
        cpu: slot.cpu,
        level: r.level,
        active_low: r.active_low,
    });
    A::route_device_line(r.line, to);
}

/// An `ExternalInterrupt` with `vector` on CPU `cpu`, which runs a vCPU of `p`: each of `p`'s
/// device lines behind the vector is raised on the vCPU it is routed to.
pub fn deliver<A: PartitionArch>(p: &Partition<A>, cpu: usize, vector: u32) {
    let lines = A::device_lines(vector);
    for line in (0..64).filter(|l| lines & 1 << l != 0) {
        deliver_line(p, cpu, line);
    }
}

fn deliver_line<A: PartitionArch>(p: &Partition<A>, cpu: usize, line: u32) {
    let target = match p
        .line_routes
        .deliver(line, irqchip::accepted_route(p, line))
    {
        Delivery::Drop => return,
        Delivery::Upcall { vcpu } => {
            let slot = &p.vcpus[vcpu as usize];
            slot.raise_device(line, A::now());
            slot
        }
        #[cfg(feature = "x86")]
        Delivery::Controller { vcpu, vector } => {
            let slot = &p.vcpus[vcpu as usize];
            slot.raise_device_vector(vector, A::now());
            slot
        }
        // The line goes through the partition's PCH-PIC and EIOINTC views, which pick the vCPU
        // and kick its CPU themselves.
        #[cfg(feature = "loongarch")]
        Delivery::Controller { .. } => {
            p.pulse_device_line(line, cpu);
            return;
        }
    };
    if target.cpu != cpu {
        p.kick(target.cpu);
    }
}

/// A virtual device of `p` (its console UART) raised line `line` of its controller view, on
/// CPU `cpu`: the vector the guest routed the line to is raised on the target vCPU, as an edge
/// (the ISA default). A masked or unrouted line drops it, as a real controller would.
#[cfg(feature = "x86")]
pub fn raise_virtual_line<A: PartitionArch>(p: &Partition<A>, line: u32, cpu: usize) {
    let Some(r) = irqchip::accepted_route(p, line) else {
        return;
    };
    let Some(slot) = p.vcpus.get(r.vcpu as usize) else {
        return;
    };
    if r.masked {
        return;
    }
    slot.raise_device_vector(r.vector, A::now());
    if slot.cpu != cpu {
        p.kick(slot.cpu);
    }
}

/// A vCPU of `p` ended its interrupt `vector` (x2APIC EOI): a level-triggered line routed
/// through the view as that vector may fire again.
#[cfg(feature = "x86")]
pub fn guest_eoi<A: PartitionArch>(p: &Partition<A>, vector: u8) {
    for line in p
        .line_routes
        .ended_by(vector, |l| irqchip::accepted_route(p, l))
    {
        A::end_device_line(line);
    }
}

/// `p`'s run ended: its lines are masked on the hardware and its view is reset.
pub fn end_run<A: PartitionArch>(p: &Partition<A>) {
    for &line in p.line_routes.reset() {
        A::route_device_line(line, None);
    }
    *p.irqchip.lock() = Chip::new(&p.board.irqchip);
    #[cfg(feature = "loongarch")]
    p.reset_eiointc();
    let refused = p.view_refusals.swap(0, Ordering::Relaxed);
    if refused > 1 {
        say!(
            A,
            "partition {}: {} more controller-view writes refused in this run",
            p.name(),
            refused - 1
        );
    }
}
