//! The arch-neutral vCPU layer. Both architectures translate their exits into [`VmExit`], run them
//! through [`run_until_stopped`], route device accesses through an [`IoBus`], and decode guest
//! requests with [`Hypercall::decode`]; the interrupt-controller views a partition programs are
//! modelled in [`irqchip`] (with the routes of its device lines, `irqchip::line_routes`), and a
//! vCPU as every CPU sees it (start requests, pending interrupts, counters) is a
//! [`slot::VcpuSlot`]. The ABI is documented in `vcpu/README.md`. No hardware is
//! touched here, so all of it is tested on the host.
#![no_std]
#![deny(unsafe_code)]

// The bus keeps its devices on the heap: feature `alloc` (default). Without it the crate is the
// ABI alone (numbers, decoders, models; no `IoBus`, no `irqchip`), which the heap-less test guests use.
#[cfg(any(feature = "alloc", test))]
extern crate alloc;

pub mod bus;
pub mod cmdline;
pub mod cmos_rtc;
pub mod exit;
pub mod hypercall;
pub mod ipi_mailbox;
#[cfg(feature = "alloc")]
pub mod irqchip;
pub mod run_loop;
pub mod slot;
pub mod uart16550;
pub mod upcall;
pub mod x2apic;

#[cfg(feature = "alloc")]
pub use bus::IoBus;
pub use bus::{BusError, Device, DeviceError};
pub use exit::{Access, AccessSize, Completion, ShutdownKind, VmExit};
pub use hypercall::{Hypercall, HypercallError, PartitionId};
pub use run_loop::{
    run_until_stopped, Action, ArchVcpu, ExitCounters, ExitHandler, ExitKind, StopReason,
};
pub use upcall::{Delivery, Upcall, VirtualIrq};
