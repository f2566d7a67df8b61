//! Where a Linux partition's boot pieces go in its guest-physical memory, decided once at image
//! build time from the partition's RAM and the kernel's own constraints: the result is data (a
//! list of byte blobs with their addresses, the entry state and the e820 map), which the
//! hypervisor only copies in through the stage-2 table.
//!
//! The low megabyte is laid out the way a PC firmware leaves it, because Linux expects it: the
//! SMP trampoline lives below 1M, and 0x9f000-0x100000 is the legacy hole where ACPI tables sit.

use super::acpi::{self, AcpiPlatform};
use super::bzimage::{BzImage, BzImageError, ENTRY_64_OFFSET};
use super::zero_page::{self, BootFacts, E820Entry, E820Kind};
use alloc::vec::Vec;
use core::fmt;

/// The hypervisor's boot page tables (PML4 + PDPT mapping the first 4G), as for every x86 guest.
pub const PAGE_TABLES: (u64, u64) = (0x1000, 0x3000);
/// `boot_params`.
pub const ZERO_PAGE: u64 = 0x7000;
/// The command line, up to the GDT.
pub const CMDLINE: u64 = 0x8000;
/// A GDT with the boot protocol's `__BOOT_CS` (0x10) and `__BOOT_DS` (0x18).
pub const GDT: u64 = 0x9000;
/// The end of what the loader places at [`PAGE_TABLES`]..: 0xa000 onwards is ordinary RAM.
const LOW_DATA_END: u64 = 0xa000;
/// The legacy hole: reserved, as on a PC, with the ACPI tables inside.
pub const LEGACY_HOLE: (u64, u64) = (0x9_f000, 0x10_0000);
/// Where the RSDP goes: inside the hole, where a BIOS would put it.
pub const ACPI_TABLES: u64 = 0xe_0000;
/// Selectors the boot protocol requires.
pub const BOOT_CS: u16 = 0x10;
pub const BOOT_DS: u16 = 0x18;
const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;

/// A guest-physical RAM range of the partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestRam {
    pub start: u64,
    pub size: u64,
}

impl GuestRam {
    fn end(&self) -> u64 {
        self.start.saturating_add(self.size)
    }

    fn holds(&self, start: u64, size: u64) -> bool {
        start >= self.start && start.checked_add(size).is_some_and(|e| e <= self.end())
    }
}

/// What the board says a Linux partition boots on.
#[derive(Clone, Copy, Debug)]
pub struct LinuxInputs<'a> {
    pub kernel: &'a [u8],
    pub initrd: Option<&'a [u8]>,
    pub cmdline: &'a str,
    /// The partition's RAM, guest-physical (its non-shared writable regions).
    pub ram: &'a [GuestRam],
    pub platform: AcpiPlatform<'a>,
}

/// Why a Linux partition cannot be laid out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutError {
    Kernel(BzImageError),
    /// The RAM does not start at 0 and cover the low megabyte.
    NoLowMemory,
    CmdlineTooLong {
        len: usize,
        max: usize,
    },
    CmdlineHasNul,
    /// No RAM range holds the kernel's `init_size` at an address it accepts.
    KernelDoesNotFit {
        init_size: u64,
    },
    InitrdDoesNotFit {
        size: u64,
    },
    TooManyRanges,
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Kernel(e) => write!(f, "{e}"),
            Self::NoLowMemory => f.write_str(
                "a Linux partition needs guest RAM from 0 to 1M (boot data, ACPI tables and the SMP trampoline live there)",
            ),
            Self::CmdlineTooLong { len, max } => {
                write!(f, "command line is {len} bytes; this kernel takes at most {max}")
            }
            Self::CmdlineHasNul => f.write_str("command line has a NUL byte"),
            Self::KernelDoesNotFit { init_size } => write!(
                f,
                "needs {} MiB of RAM from an aligned address above 1M, and no RAM range of the partition holds that",
                init_size.div_ceil(MIB)
            ),
            Self::InitrdDoesNotFit { size } => write!(
                f,
                "initrd of {size} bytes fits in no RAM below the kernel's initrd limit beside the kernel"
            ),
            Self::TooManyRanges => f.write_str("the partition's RAM makes more e820 entries than boot_params holds"),
        }
    }
}

/// What a blob is, for messages and for the loader's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobKind {
    Kernel,
    Initrd,
    ZeroPage,
    Cmdline,
    Gdt,
    Acpi,
}

/// Bytes to copy to a guest-physical address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob<'a> {
    pub kind: BlobKind,
    pub gpa: u64,
    pub bytes: BlobBytes<'a>,
}

/// A blob's bytes: a slice of an input file, or made by the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobBytes<'a> {
    Input(&'a [u8]),
    Made(Vec<u8>),
}

impl BlobBytes<'_> {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Self::Input(b) => b,
            Self::Made(v) => v,
        }
    }
}

/// The decided layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinuxBootPlan<'a> {
    pub blobs: Vec<Blob<'a>>,
    /// The 64-bit entry (load address + 0x200); RSI = [`ZERO_PAGE`].
    pub entry: u64,
    pub load: u64,
    /// Guest-physical ranges the kernel may touch before it reads the e820 map
    /// (`[load, load + init_size)`) beside the blobs.
    pub kernel_span: (u64, u64),
    pub e820: Vec<E820Entry>,
}

/// The boot GDT: null, null, 64-bit code at 0x10, flat data at 0x18.
fn gdt() -> Vec<u8> {
    let entries: [u64; 4] = [0, 0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff];
    entries.iter().flat_map(|e| e.to_le_bytes()).collect()
}

fn align_up(v: u64, a: u64) -> Option<u64> {
    Some(v.checked_add(a - 1)? & !(a - 1))
}

/// Chooses the kernel's load address: its preferred one if RAM holds `init_size` there, else
/// (a relocatable kernel) the lowest aligned address above 1M that does.
fn place_kernel(k: &BzImage<'_>, ram: &[GuestRam]) -> Option<u64> {
    let fits = |at: u64| ram.iter().any(|r| r.holds(at, k.init_size));
    if k.pref_address >= MIB && fits(k.pref_address) {
        return Some(k.pref_address);
    }
    if !k.relocatable {
        return None;
    }
    let align = k.kernel_alignment.max(PAGE);
    ram.iter().find_map(|r| {
        let at = align_up(r.start.max(MIB), align)?;
        r.holds(at, k.init_size).then_some(at)
    })
}

/// The initrd goes as high as it may, clear of the kernel's span: Linux itself places it so,
/// which keeps the low RAM the kernel decompresses into free.
fn place_initrd(size: u64, limit: u64, kernel: (u64, u64), ram: &[GuestRam]) -> Option<u64> {
    let mut best = None;
    for r in ram {
        let top = r.end().min(limit.saturating_add(1));
        // Above the kernel, or below it.
        for (lo, hi) in [(kernel.1, top), (r.start, top.min(kernel.0))] {
            let lo = lo.max(r.start).max(MIB);
            let Some(at) = hi.checked_sub(size).map(|a| a & !(PAGE - 1)) else {
                continue;
            };
            if at >= lo && hi > lo && best.is_none_or(|b| at > b) {
                best = Some(at);
            }
        }
    }
    best
}

/// The e820 map: the partition's RAM with the low pieces the loader uses marked reserved.
fn e820(ram: &[GuestRam], acpi_len: u64) -> Result<Vec<E820Entry>, LayoutError> {
    let acpi_end = align_up(ACPI_TABLES + acpi_len, PAGE).unwrap_or(LEGACY_HOLE.1);
    let low = [
        (0, PAGE_TABLES.0, E820Kind::Ram),
        (PAGE_TABLES.0, PAGE_TABLES.1, E820Kind::Reserved),
        (PAGE_TABLES.1, ZERO_PAGE, E820Kind::Ram),
        (ZERO_PAGE, LOW_DATA_END, E820Kind::Reserved),
        (LOW_DATA_END, LEGACY_HOLE.0, E820Kind::Ram),
        (LEGACY_HOLE.0, ACPI_TABLES, E820Kind::Reserved),
        (ACPI_TABLES, acpi_end, E820Kind::Acpi),
        (acpi_end, LEGACY_HOLE.1, E820Kind::Reserved),
    ];
    let mut map: Vec<E820Entry> = low
        .iter()
        .filter(|(s, e, _)| e > s)
        .map(|&(start, end, kind)| E820Entry {
            start,
            size: end - start,
            kind,
        })
        .collect();
    let mut ram: Vec<GuestRam> = ram.to_vec();
    ram.sort_by_key(|r| r.start);
    for r in &ram {
        let start = r.start.max(LEGACY_HOLE.1);
        if r.end() > start {
            map.push(E820Entry {
                start,
                size: r.end() - start,
                kind: E820Kind::Ram,
            });
        }
    }
    if map.len() > zero_page::E820_MAX {
        return Err(LayoutError::TooManyRanges);
    }
    Ok(map)
}

/// Lays out a Linux partition's boot.
pub fn plan<'a>(inputs: &LinuxInputs<'a>) -> Result<LinuxBootPlan<'a>, LayoutError> {
    let k = BzImage::parse(inputs.kernel).map_err(LayoutError::Kernel)?;
    if !inputs.ram.iter().any(|r| r.holds(0, LEGACY_HOLE.1)) {
        return Err(LayoutError::NoLowMemory);
    }
    if inputs.cmdline.as_bytes().contains(&0) {
        return Err(LayoutError::CmdlineHasNul);
    }
    let max = (k.cmdline_size as usize).min((GDT - CMDLINE) as usize - 1);
    if inputs.cmdline.len() > max {
        return Err(LayoutError::CmdlineTooLong {
            len: inputs.cmdline.len(),
            max,
        });
    }
    let load = place_kernel(&k, inputs.ram).ok_or(LayoutError::KernelDoesNotFit {
        init_size: k.init_size,
    })?;
    let span = (load, load + k.init_size.max(k.payload().len() as u64));
    let initrd = match inputs.initrd {
        None => None,
        Some(bytes) => {
            let size = bytes.len() as u64;
            let at = place_initrd(size, u64::from(k.initrd_addr_max), span, inputs.ram)
                .ok_or(LayoutError::InitrdDoesNotFit { size })?;
            Some((at, bytes))
        }
    };
    let tables = acpi::tables(ACPI_TABLES, &inputs.platform).bytes;
    let e820 = e820(inputs.ram, tables.len() as u64)?;
    let zero = zero_page::build(
        &k,
        &BootFacts {
            cmdline_gpa: CMDLINE,
            initrd: initrd.map(|(at, b)| (at, b.len() as u64)),
            rsdp_gpa: Some(ACPI_TABLES),
            e820: &e820,
        },
    );
    let mut cmdline = inputs.cmdline.as_bytes().to_vec();
    cmdline.push(0);
    let mut blobs = alloc::vec![
        Blob {
            kind: BlobKind::Kernel,
            gpa: load,
            bytes: BlobBytes::Input(k.payload())
        },
        Blob {
            kind: BlobKind::ZeroPage,
            gpa: ZERO_PAGE,
            bytes: BlobBytes::Made(zero.to_vec())
        },
        Blob {
            kind: BlobKind::Cmdline,
            gpa: CMDLINE,
            bytes: BlobBytes::Made(cmdline)
        },
        Blob {
            kind: BlobKind::Gdt,
            gpa: GDT,
            bytes: BlobBytes::Made(gdt())
        },
        Blob {
            kind: BlobKind::Acpi,
            gpa: ACPI_TABLES,
            bytes: BlobBytes::Made(tables)
        },
    ];
    if let Some((at, bytes)) = initrd {
        blobs.push(Blob {
            kind: BlobKind::Initrd,
            gpa: at,
            bytes: BlobBytes::Input(bytes),
        });
    }
    Ok(LinuxBootPlan {
        blobs,
        entry: load + ENTRY_64_OFFSET,
        load,
        kernel_span: span,
        e820,
    })
}

#[cfg(test)]
mod tests {
    use super::super::bzimage::tests::sample;
    use super::*;

    const PLATFORM: AcpiPlatform<'static> = AcpiPlatform {
        apic_ids: &[0, 1],
        ioapic: None,
        sleep_port: 0x600,
        console: None,
    };

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
            platform: PLATFORM,
        }
    }

    fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
        a.0 < b.1 && b.0 < a.1
    }

    #[test]
    fn a_kernel_goes_to_its_preferred_address_and_the_initrd_to_the_top() {
        let k = sample(30, 0x1000);
        let initrd = [7u8; 5000];
        let ram = [GuestRam {
            start: 0,
            size: 128 * MIB,
        }];
        let p = plan(&inputs(&k, Some(&initrd), &ram)).unwrap();
        assert_eq!(p.load, 0x100_0000);
        assert_eq!(p.entry, 0x100_0200);
        let rd = p.blobs.iter().find(|b| b.kind == BlobKind::Initrd).unwrap();
        assert_eq!(rd.gpa, (128 * MIB - 5000) & !(PAGE - 1));
        // Nothing the loader places overlaps another piece or the kernel's span.
        let spans: Vec<(u64, u64)> = p
            .blobs
            .iter()
            .map(|b| (b.gpa, b.gpa + b.bytes.as_slice().len() as u64))
            .collect();
        for (i, a) in spans.iter().enumerate() {
            for b in &spans[i + 1..] {
                assert!(!overlaps(*a, *b), "{a:x?} overlaps {b:x?}");
            }
            if p.blobs[i].kind != BlobKind::Kernel {
                assert!(!overlaps(*a, p.kernel_span), "{a:x?} in the kernel's span");
            }
        }
        // Every blob lies in RAM, and every non-RAM e820 entry covers the low blobs.
        for (s, e) in &spans {
            assert!(ram.iter().any(|r| r.holds(*s, e - s)));
        }
        let reserved = |at: u64| {
            p.e820
                .iter()
                .any(|x| x.kind != E820Kind::Ram && at >= x.start && at < x.start + x.size)
        };
        for at in [PAGE_TABLES.0, ZERO_PAGE, CMDLINE, GDT, ACPI_TABLES] {
            assert!(reserved(at), "{at:#x} is not reserved");
        }
        assert!(!reserved(p.load));
    }

    #[test]
    fn a_relocatable_kernel_moves_when_its_preferred_address_is_not_ram() {
        let k = sample(30, 0x1000);
        // 16M..64M is not the partition's: the kernel (48M span) must go above 64M.
        let ram = [
            GuestRam {
                start: 0,
                size: 16 * MIB,
            },
            GuestRam {
                start: 64 * MIB,
                size: 64 * MIB,
            },
        ];
        let p = plan(&inputs(&k, None, &ram)).unwrap();
        assert_eq!(p.load, 64 * MIB);
        let last = p.e820.last().unwrap();
        assert_eq!(
            (last.start, last.size, last.kind),
            (64 * MIB, 64 * MIB, E820Kind::Ram)
        );
    }

    #[test]
    fn layouts_that_cannot_work_are_refused_with_the_reason() {
        let k = sample(30, 0x1000);
        let small = [GuestRam {
            start: 0,
            size: 32 * MIB,
        }];
        assert_eq!(
            plan(&inputs(&k, None, &small)),
            Err(LayoutError::KernelDoesNotFit {
                init_size: 0x300_0000
            })
        );
        let high_only = [GuestRam {
            start: MIB,
            size: 256 * MIB,
        }];
        assert_eq!(
            plan(&inputs(&k, None, &high_only)),
            Err(LayoutError::NoLowMemory)
        );
        let ram = [GuestRam {
            start: 0,
            size: 64 * MIB,
        }];
        let huge = alloc::vec![0u8; 40 * MIB as usize];
        assert_eq!(
            plan(&inputs(&k, Some(&huge), &ram)),
            Err(LayoutError::InitrdDoesNotFit { size: 40 * MIB })
        );
        let long = "x".repeat(3000);
        let mut i = inputs(&k, None, &ram);
        i.cmdline = &long;
        assert_eq!(
            plan(&i),
            Err(LayoutError::CmdlineTooLong {
                len: 3000,
                max: 2047
            })
        );
        i.cmdline = "a\0b";
        assert_eq!(plan(&i), Err(LayoutError::CmdlineHasNul));
        assert!(matches!(
            plan(&inputs(&k[..100], None, &ram)),
            Err(LayoutError::Kernel(BzImageError::Truncated { .. }))
        ));
    }

    #[test]
    fn the_zero_page_names_the_command_line_and_rsdp() {
        let k = sample(30, 0x1000);
        let ram = [GuestRam {
            start: 0,
            size: 64 * MIB,
        }];
        let p = plan(&inputs(&k, None, &ram)).unwrap();
        let zp = p
            .blobs
            .iter()
            .find(|b| b.kind == BlobKind::ZeroPage)
            .unwrap();
        let z = zp.bytes.as_slice();
        assert_eq!(
            u32::from_le_bytes(z[0x228..0x22c].try_into().unwrap()) as u64,
            CMDLINE
        );
        assert_eq!(
            u64::from_le_bytes(z[0x70..0x78].try_into().unwrap()),
            ACPI_TABLES
        );
        let cl = p
            .blobs
            .iter()
            .find(|b| b.kind == BlobKind::Cmdline)
            .unwrap();
        assert_eq!(cl.bytes.as_slice(), b"console=ttyS0\0");
    }
}
