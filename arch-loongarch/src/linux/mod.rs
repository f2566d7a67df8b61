//! Linux in a LoongArch partition: the small platform the kernel is told about and what the
//! hypervisor emulates for it. The platform is deliberately tiny and fixed, so one description
//! serves the device tree the build writes ([`fdt`]) and the devices the image emulates:
//! * RAM as the board file gives the partition (its writable, executable, unshared regions);
//! * the 3A5000/7A interrupt path, as views of the partition's own: a PCH-PIC at [`PCH_PIC`]
//!   (the board's controller view) whose line [`UART_LINE`] the console drives, an EIOINTC in
//!   IOCSR space (`vcpu::irqchip::eiointc`) that turns the line's vector into CPU hardware line
//!   [`EIOINTC_HWI`] of the vCPU the guest routed it to, and the CPU interrupt controller;
//! * a 16550A console at [`UART`] (the partition's virtual UART) on PCH-PIC line [`UART_LINE`];
//! * a power register block at [`POWER`] ([`power`]): power off and reset, as Linux's
//!   `syscon-poweroff` and `syscon-reboot` drivers write them;
//! * the CPU's IOCSR identity words, filtered ([`iocsr_view`]); the IPI and mailbox block is the
//!   partition's IPI view, as for every LoongArch partition.
//!
//! Nothing else is described, so nothing else is probed: no PCI, no MSI controller, no RTC.
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
/// The PCH-PIC line the console drives (QEMU virt's UART0 line).
pub const UART_LINE: u32 = 2;
/// Where the PCH-PIC view is (the 7A bridge's, and QEMU virt's, PCH-PIC address).
pub const PCH_PIC: u64 = 0x1000_0000;
/// The register window the device tree gives the PCH-PIC.
pub const PCH_PIC_SIZE: u64 = 0x400;
/// The CPU hardware line the device tree says the EIOINTC drives: HWI1 (ESTAT.IS bit 3, which is
/// input 3 of Linux's CPU interrupt controller), the one Linux routes EIOINTC vectors to.
pub const EIOINTC_HWI: u32 = 1;
/// Guest-physical address of the power register block (where QEMU virt has its GED registers).
pub const POWER: u64 = 0x100e_001c;
