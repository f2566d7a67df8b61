//! Linux in a LoongArch partition: the small platform the kernel is told about and what the
//! hypervisor emulates for it. The platform is deliberately tiny and fixed, so one description
//! serves the device tree the build writes ([`fdt`]) and the devices the image emulates:
//! * RAM as the board file gives the partition (its writable, executable, unshared regions);
//! * a 16550A console at [`UART`] (the partition's virtual UART), whose interrupt is CPU
//!   hardware line [`UART_HWI`], injected into every vCPU of the partition (the CPU interrupt
//!   controller has no routing; Linux unmasks a line only on the CPU that asks, so every vCPU
//!   sees it and whichever has it unmasked takes it);
//! * a power register block at [`POWER`] ([`power`]): power off and reset, as Linux's
//!   `syscon-poweroff` and `syscon-reboot` drivers write them;
//! * the CPU's IOCSR identity words, filtered ([`iocsr_view`]); the IPI and mailbox block is the
//!   partition's IPI view, as for every LoongArch partition.
//!
//! Nothing else is described, so nothing else is probed: no PCI, no EIOINTC or PCH-PIC, no RTC.
//! The boot itself ([`layout`], with [`elf`] and [`efi`]) follows the kernel's LoongArch boot
//! protocol: a0 = 1 (EFI boot flag), a1 = the command line, a2 = an EFI system table with only
//! configuration tables (the boot memory map and the device tree), entry in direct-address mode.

#[cfg(feature = "linux-boot")]
pub mod efi;
#[cfg(feature = "linux-boot")]
pub mod elf;
#[cfg(feature = "linux-boot")]
pub mod fdt;
pub mod iocsr_view;
#[cfg(feature = "linux-boot")]
pub mod layout;
pub mod power;

/// Guest-physical address of the console UART (QEMU virt's and the 7A bridge's UART0).
pub const UART: u64 = 0x1fe0_01e0;
/// The register window the device tree gives the UART.
pub const UART_SIZE: u64 = 8;
/// The UART's input clock as the device tree states it (the virtual chip ignores divisors).
pub const UART_CLOCK: u32 = 100_000_000;
/// The CPU hardware interrupt line (HWI0-7) the UART drives: HWI0, ESTAT.IS bit 2, which is
/// hardware interrupt number 2 of Linux's CPU interrupt controller.
pub const UART_HWI: u32 = 0;
/// Guest-physical address of the power register block (where QEMU virt has its GED registers).
pub const POWER: u64 = 0x100e_001c;
