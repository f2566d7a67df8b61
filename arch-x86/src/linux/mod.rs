//! Booting an unmodified Linux kernel in an x86 partition: reading the bzImage's boot header,
//! laying out the kernel, initrd, command line, zero page and ACPI tables in the partition's
//! memory, and describing the partition to Linux (e820, MADT) exactly as it is. All of it runs
//! at image build time on the host and produces data the hypervisor copies in, so nothing here
//! touches hardware and all of it is tested beside the code.

pub mod acpi;
pub mod bzimage;
pub mod layout;
pub mod zero_page;
