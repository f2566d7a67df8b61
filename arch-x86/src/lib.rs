//! The x86_64 hardware edge. Every privileged instruction the hypervisor executes on x86 lives in
//! this crate behind a small typed wrapper, so `platform` and the engines above it never write inline
//! assembly of their own. Decoding of what the hardware reports (the VMX capability MSRs) is kept in
//! pure functions with host unit tests; only the instruction wrappers need the real CPU.
//!
//! The crate builds for the host as well as for `x86_64-unknown-none`, so `cargo test` and `clippy`
//! cover it; host tests call the pure functions, and the vCPUs of both backends (`svm::vcpu`,
//! `vmx::vcpu`), which reach the CPU only through a trait, run in them against a model of the CPU.
#![no_std]
#![deny(
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks,
    missing_docs
)]

extern crate alloc;

pub mod acpi_sleep;
pub mod apic;
pub mod cpuid;
pub mod guest_boot;
pub mod guest_msr;
pub mod guest_walk;
pub mod io;
pub mod io_apic;
// Its field names are the boot protocol's and ACPI's own, documented where they are defined.
#[cfg(feature = "linux-boot")]
#[allow(missing_docs)]
pub mod linux;
pub mod linux_args;
pub mod mmio;
pub mod mmio_exit;
#[cfg(test)]
mod mmio_script;
pub mod msr;
pub mod regs;
pub mod stage2;
pub mod svm;
pub mod upcall;
pub mod vmx;
