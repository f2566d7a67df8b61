//! Where a Linux boot goes in a LoongArch partition, decided once at build time: the kernel's
//! segments at their physical addresses, the boot data in the first 2 MiB (which Linux keeps
//! reserved: command line at [`CMDLINE`], the EFI system table at [`SYSTEM_TABLE`], the boot
//! memory map at [`MEMMAP`], the device tree at [`DEVICE_TREE`]), and the initrd at the top of
//! the RAM range that holds the kernel. The result is a list of blobs to copy and the entry
//! state: a0 = 1 (EFI boot), a1 = the command line, a2 = the system table.
// The plain data types here are documented; their fields and error variants are named for
// what they hold.
#![allow(missing_docs)]

use super::efi::{self, BOOT_MEMMAP_GUID, DEVICE_TREE_GUID};
use super::elf::{self, ElfError};
use super::fdt::{self, Platform};
use alloc::vec::Vec;
use core::fmt;

/// The command line.
pub const CMDLINE: u64 = 0x1000;
/// Bytes the command line may take, NUL included (the hypervisor appends to it at run time).
pub const CMDLINE_CAPACITY: u32 = 2048;
/// The EFI system table and its configuration tables.
pub const SYSTEM_TABLE: u64 = 0x2000;
/// The boot memory map.
pub const MEMMAP: u64 = 0x3000;
/// The device tree (Linux maps 64 KiB of it).
pub const DEVICE_TREE: u64 = 0x1_0000;
/// Largest device tree.
pub const DEVICE_TREE_MAX: usize = 0x1_0000;
/// The boot data's end; Linux reserves [0, 2 MiB) itself, so the kernel starts at or above it.
pub const BOOT_DATA_END: u64 = 0x20_0000;
/// The initrd's alignment.
const INITRD_ALIGN: u64 = 0x1_0000;

/// A range of the partition's RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestRam {
    pub start: u64,
    pub size: u64,
}

/// What a boot is made from.
#[derive(Clone, Copy, Debug)]
pub struct LinuxInputs<'a> {
    pub kernel: &'a [u8],
    pub initrd: Option<&'a [u8]>,
    pub cmdline: &'a str,
    pub ram: &'a [GuestRam],
    pub vcpus: u32,
    /// The partition has its virtual console UART.
    pub console: bool,
}

/// What a blob holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobKind {
    /// A kernel segment, with its offset in the kernel file.
    Kernel {
        offset: usize,
    },
    Initrd,
    Cmdline,
    SystemTable,
    MemoryMap,
    DeviceTree,
}

/// Bytes to copy to `gpa` before the partition starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub gpa: u64,
    pub kind: BlobKind,
    /// The bytes, for blobs the plan made; `None` for a part of an input file (kernel segment,
    /// initrd), of `len` bytes.
    pub made: Option<Vec<u8>>,
    pub len: usize,
}

/// A laid-out boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub blobs: Vec<Blob>,
    pub entry: u64,
    /// a0-a2 at entry.
    pub args: [u64; 3],
    /// Bytes of RAM the kernel is given.
    pub ram_bytes: u64,
}

/// Why a boot cannot be laid out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutError {
    Kernel(ElfError),
    /// The partition's RAM does not start at 0 and cover the boot data.
    NoLowMemory,
    KernelBelowBootData {
        start: u64,
    },
    KernelOutsideRam {
        start: u64,
        end: u64,
    },
    InitrdDoesNotFit {
        size: u64,
    },
    CmdlineTooLong {
        len: usize,
    },
    CmdlineHasNul,
    DeviceTree(&'static str),
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Kernel(e) => write!(f, "{e}"),
            Self::NoLowMemory => write!(
                f,
                "must start at guest 0x0 and cover the first {} MiB for a Linux partition (the boot data lives there, and Linux reserves it)",
                BOOT_DATA_END >> 20
            ),
            Self::KernelBelowBootData { start } => write!(
                f,
                "loads at {start:#x}, inside the boot data below {BOOT_DATA_END:#x}"
            ),
            Self::KernelOutsideRam { start, end } => write!(
                f,
                "needs [{start:#x}, {end:#x}), which is not inside one RAM range of the partition"
            ),
            Self::InitrdDoesNotFit { size } => write!(
                f,
                "is {size} bytes and does not fit between the kernel and the end of its RAM range"
            ),
            Self::CmdlineTooLong { len } => write!(
                f,
                "is {len} bytes; at most {} fit (with room for the hypervisor's own words)",
                CMDLINE_CAPACITY / 2
            ),
            Self::CmdlineHasNul => write!(f, "contains a NUL byte"),
            Self::DeviceTree(what) => write!(f, "device tree: {what}"),
        }
    }
}

/// Lays out a boot of `inputs`.
pub fn plan(inputs: &LinuxInputs) -> Result<Plan, LayoutError> {
    let kernel = elf::parse(inputs.kernel).map_err(LayoutError::Kernel)?;
    if !inputs
        .ram
        .iter()
        .any(|r| r.start == 0 && r.size >= BOOT_DATA_END)
    {
        return Err(LayoutError::NoLowMemory);
    }
    if inputs.cmdline.contains('\0') {
        return Err(LayoutError::CmdlineHasNul);
    }
    // Half the space is the board file's, half stays for what the hypervisor appends.
    if inputs.cmdline.len() + 1 > (CMDLINE_CAPACITY / 2) as usize {
        return Err(LayoutError::CmdlineTooLong {
            len: inputs.cmdline.len(),
        });
    }
    let (start, end) = kernel.span();
    if start < BOOT_DATA_END {
        return Err(LayoutError::KernelBelowBootData { start });
    }
    let home = inputs
        .ram
        .iter()
        .find(|r| r.start <= start && end <= r.start + r.size)
        .ok_or(LayoutError::KernelOutsideRam { start, end })?;

    let mut blobs: Vec<Blob> = kernel
        .segments
        .iter()
        .filter(|s| s.file_size > 0)
        .map(|s| Blob {
            gpa: s.gpa,
            kind: BlobKind::Kernel { offset: s.offset },
            made: None,
            len: s.file_size,
        })
        .collect();

    let initrd = match inputs.initrd {
        Some(bytes) if !bytes.is_empty() => {
            let size = bytes.len() as u64;
            let top = home.start + home.size;
            let at = top
                .checked_sub(size)
                .map(|a| a & !(INITRD_ALIGN - 1))
                .filter(|&a| a >= end.next_multiple_of(INITRD_ALIGN))
                .ok_or(LayoutError::InitrdDoesNotFit { size })?;
            blobs.push(Blob {
                gpa: at,
                kind: BlobKind::Initrd,
                made: None,
                len: bytes.len(),
            });
            Some((at, at + size))
        }
        _ => None,
    };

    let ram: Vec<(u64, u64)> = inputs.ram.iter().map(|r| (r.start, r.size)).collect();
    let tree = fdt::device_tree(&Platform {
        ram: &ram,
        vcpus: inputs.vcpus,
        console: inputs.console,
        initrd,
    })
    .map_err(|_| LayoutError::DeviceTree("the writer refused it"))?;
    if tree.len() > DEVICE_TREE_MAX {
        return Err(LayoutError::DeviceTree("larger than 64 KiB"));
    }
    let memmap = efi::boot_memmap(&ram);
    debug_assert!(MEMMAP + memmap.len() as u64 <= DEVICE_TREE);
    let systab = efi::system_table(
        SYSTEM_TABLE,
        "Septum",
        &[(BOOT_MEMMAP_GUID, MEMMAP), (DEVICE_TREE_GUID, DEVICE_TREE)],
    );
    debug_assert!(SYSTEM_TABLE + systab.len() as u64 <= MEMMAP);
    let mut line = inputs.cmdline.as_bytes().to_vec();
    line.push(0);
    for (gpa, kind, bytes) in [
        (CMDLINE, BlobKind::Cmdline, line),
        (SYSTEM_TABLE, BlobKind::SystemTable, systab),
        (MEMMAP, BlobKind::MemoryMap, memmap),
        (DEVICE_TREE, BlobKind::DeviceTree, tree),
    ] {
        blobs.push(Blob {
            gpa,
            kind,
            len: bytes.len(),
            made: Some(bytes),
        });
    }
    Ok(Plan {
        blobs,
        entry: kernel.entry,
        args: [1, CMDLINE, SYSTEM_TABLE],
        ram_bytes: inputs.ram.iter().map(|r| r.size).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::elf::test_kernel;

    const RAM: [GuestRam; 1] = [GuestRam {
        start: 0,
        size: 256 << 20,
    }];

    fn inputs<'a>(
        kernel: &'a [u8],
        initrd: Option<&'a [u8]>,
        ram: &'a [GuestRam],
    ) -> LinuxInputs<'a> {
        LinuxInputs {
            kernel,
            initrd,
            cmdline: "console=ttyS0",
            ram,
            vcpus: 2,
            console: true,
        }
    }

    #[test]
    fn a_kernel_and_initrd_are_placed_without_overlap() {
        let k = test_kernel(
            &[(0x9000_0000_0020_0000, b"kernel", 0x80_0000)],
            0x9000_0000_0020_0000,
        );
        let rd = [7u8; 5000];
        let p = plan(&inputs(&k, Some(&rd), &RAM)).unwrap();
        assert_eq!(p.entry, 0x20_0000);
        assert_eq!(p.args, [1, CMDLINE, SYSTEM_TABLE]);
        let mut spans: Vec<(u64, u64)> = p
            .blobs
            .iter()
            .map(|b| (b.gpa, b.gpa + b.len as u64))
            .collect();
        spans.sort();
        for w in spans.windows(2) {
            assert!(w[0].1 <= w[1].0, "{w:x?} overlap");
        }
        let initrd = p.blobs.iter().find(|b| b.kind == BlobKind::Initrd).unwrap();
        assert_eq!(initrd.gpa % INITRD_ALIGN, 0);
        assert!(initrd.gpa >= 0xa0_0000 && initrd.gpa + 5000 <= 256 << 20);
        // The device tree tells Linux where the initrd is.
        let tree = p
            .blobs
            .iter()
            .find(|b| b.kind == BlobKind::DeviceTree)
            .unwrap();
        let t = ::fdt::Fdt::new(tree.made.as_ref().unwrap()).unwrap();
        let start = t
            .find_node("/chosen")
            .unwrap()
            .property("linux,initrd-start")
            .unwrap();
        assert_eq!(start.as_usize(), Some(initrd.gpa as usize));
        let line = p
            .blobs
            .iter()
            .find(|b| b.kind == BlobKind::Cmdline)
            .unwrap();
        assert_eq!(line.made.as_deref(), Some(b"console=ttyS0\0".as_slice()));
    }

    #[test]
    fn what_cannot_be_placed_is_refused() {
        let k = test_kernel(&[(0x20_0000, b"kernel", 0x100)], 0x20_0000);
        let high = [GuestRam {
            start: 0x100_0000,
            size: 256 << 20,
        }];
        assert_eq!(
            plan(&inputs(&k, None, &high)),
            Err(LayoutError::NoLowMemory)
        );
        let low = test_kernel(&[(0x10_0000, b"kernel", 0x100)], 0x10_0000);
        assert_eq!(
            plan(&inputs(&low, None, &RAM)),
            Err(LayoutError::KernelBelowBootData { start: 0x10_0000 })
        );
        let big = test_kernel(&[(0x20_0000, b"kernel", 512 << 20)], 0x20_0000);
        assert!(matches!(
            plan(&inputs(&big, None, &RAM)),
            Err(LayoutError::KernelOutsideRam { .. })
        ));
        let small = [GuestRam {
            start: 0,
            size: 4 << 20,
        }];
        let rd = alloc::vec![0u8; 3 << 20];
        assert_eq!(
            plan(&inputs(&k, Some(&rd), &small)),
            Err(LayoutError::InitrdDoesNotFit { size: 3 << 20 })
        );
        let mut i = inputs(&k, None, &RAM);
        let long = "x".repeat(CMDLINE_CAPACITY as usize);
        i.cmdline = &long;
        assert!(matches!(plan(&i), Err(LayoutError::CmdlineTooLong { .. })));
        assert!(matches!(
            plan(&inputs(b"not elf", None, &RAM)),
            Err(LayoutError::Kernel(ElfError::NotElf))
        ));
    }
}
