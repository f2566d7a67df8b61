//! The LoongArch64 hardware edge. Everything that executes a privileged instruction lives here:
//! CSR and IOCSR access, `cpucfg`, the stable counter, barriers, `idle`, and the inter-processor
//! mailbox. The instruction wrappers only exist when compiling for `loongarch64`; the decoders of
//! what those instructions return (CPUCFG words, ESTAT, the mailbox-send encoding) are pure
//! functions compiled everywhere, so the host tests them with `cargo test`. So is the logic of
//! both virtualization backends, generic over small hardware traits and tested against models:
//! `lvz` (over `LvzHw`) and `depriv`, the PLV3 backend's vCPU (over `DeprivHw`). `linux` is the
//! platform a Linux partition is given (with the `linux-boot` feature, its build-time boot
//! layout: ELF segments, EFI system table, device tree).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

#[cfg(feature = "linux-boot")]
extern crate alloc;

pub mod cpucfg;
pub mod csr;
pub mod decode;
pub mod depriv;
pub mod device_irq;
pub mod estat;
#[cfg(target_arch = "loongarch64")]
pub mod instr;
pub mod iocsr;
pub mod ipi;
pub mod linux;
pub mod lvz;
pub mod stage2;
pub mod timer;
