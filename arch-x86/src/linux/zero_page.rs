//! The zero page (`struct boot_params`) a 64-bit Linux entry receives in RSI: the kernel's own
//! setup header copied back, with what the loader decided filled in (command line, initrd, ACPI
//! root) and an e820 map that is exactly the partition's memory.

use super::bzimage::{BzImage, LOADED_HIGH, SETUP_HEADER_START};

/// Size of `boot_params`.
pub const ZERO_PAGE_SIZE: usize = 4096;
/// Most e820 entries `boot_params` holds.
pub const E820_MAX: usize = 128;

/// What an e820 entry says of a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum E820Kind {
    Ram = 1,
    Reserved = 2,
    Acpi = 3,
}

/// One range of the e820 map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    pub start: u64,
    pub size: u64,
    pub kind: E820Kind,
}

// Offsets in boot_params (boot.rst, "zero page").
const ACPI_RSDP_ADDR: usize = 0x070;
const EXT_RAMDISK_IMAGE: usize = 0x0c0;
const EXT_RAMDISK_SIZE: usize = 0x0c4;
const EXT_CMD_LINE_PTR: usize = 0x0c8;
const E820_ENTRIES: usize = 0x1e8;
const TYPE_OF_LOADER: usize = 0x210;
const LOADFLAGS: usize = 0x211;
const RAMDISK_IMAGE: usize = 0x218;
const RAMDISK_SIZE: usize = 0x21c;
const CMD_LINE_PTR: usize = 0x228;
const E820_TABLE: usize = 0x2d0;
const E820_ENTRY_SIZE: usize = 20;
/// "Undefined loader": this loader has no assigned ID.
const LOADER_UNDEFINED: u8 = 0xff;

/// What the loader tells the kernel.
#[derive(Clone, Copy, Debug)]
pub struct BootFacts<'a> {
    pub cmdline_gpa: u64,
    pub initrd: Option<(u64, u64)>,
    pub rsdp_gpa: Option<u64>,
    pub e820: &'a [E820Entry],
}

fn put_u32(page: &mut [u8], off: usize, v: u32) {
    page[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(page: &mut [u8], off: usize, v: u64) {
    page[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Writes the low and high halves of a 64-bit value to the two fields the protocol splits it in.
fn put_split(page: &mut [u8], low: usize, high: usize, v: u64) {
    put_u32(page, low, v as u32);
    put_u32(page, high, (v >> 32) as u32);
}

/// Builds the zero page. `facts.e820` longer than [`E820_MAX`] is a caller's error the layout
/// prevents (a partition has at most a few regions); it is cut, never overflowed.
pub fn build(kernel: &BzImage<'_>, facts: &BootFacts<'_>) -> [u8; ZERO_PAGE_SIZE] {
    let mut page = [0u8; ZERO_PAGE_SIZE];
    let header = kernel.setup_header();
    page[SETUP_HEADER_START..SETUP_HEADER_START + header.len()].copy_from_slice(header);
    page[TYPE_OF_LOADER] = LOADER_UNDEFINED;
    // Loaded high; not CAN_USE_HEAP or KEEP_SEGMENTS, which only the 16-bit entry reads.
    page[LOADFLAGS] = LOADED_HIGH;
    put_split(&mut page, CMD_LINE_PTR, EXT_CMD_LINE_PTR, facts.cmdline_gpa);
    if let Some((start, size)) = facts.initrd {
        put_split(&mut page, RAMDISK_IMAGE, EXT_RAMDISK_IMAGE, start);
        put_split(&mut page, RAMDISK_SIZE, EXT_RAMDISK_SIZE, size);
    }
    if let Some(rsdp) = facts.rsdp_gpa {
        put_u64(&mut page, ACPI_RSDP_ADDR, rsdp);
    }
    let entries = &facts.e820[..facts.e820.len().min(E820_MAX)];
    page[E820_ENTRIES] = entries.len() as u8;
    for (i, e) in entries.iter().enumerate() {
        let at = E820_TABLE + i * E820_ENTRY_SIZE;
        put_u64(&mut page, at, e.start);
        put_u64(&mut page, at + 8, e.size);
        put_u32(&mut page, at + 16, e.kind as u32);
    }
    page
}

#[cfg(test)]
mod tests {
    use super::super::bzimage::tests::sample;
    use super::*;

    fn u32_at(p: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(p[off..off + 4].try_into().unwrap())
    }

    fn u64_at(p: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(p[off..off + 8].try_into().unwrap())
    }

    #[test]
    fn the_zero_page_carries_the_header_and_the_loaders_answers() {
        let file = sample(30, 0x1000);
        let k = BzImage::parse(&file).unwrap();
        let e820 = [
            E820Entry {
                start: 0,
                size: 0x9f000,
                kind: E820Kind::Ram,
            },
            E820Entry {
                start: 0x9f000,
                size: 0x61000,
                kind: E820Kind::Reserved,
            },
            E820Entry {
                start: 0x10_0000,
                size: 0x7f0_0000,
                kind: E820Kind::Ram,
            },
        ];
        let page = build(
            &k,
            &BootFacts {
                cmdline_gpa: 0x8000,
                initrd: Some((0x1_2345_6000, 0x10_0000)),
                rsdp_gpa: Some(0xe_0000),
                e820: &e820,
            },
        );
        // The header came back where the kernel reads it, with HdrS and the protocol.
        assert_eq!(&page[0x202..0x206], b"HdrS");
        assert_eq!(u32_at(&page, 0x260), 0x300_0000);
        assert_eq!(page[0x210], 0xff);
        assert_eq!(page[0x211] & 1, 1);
        assert_eq!(u32_at(&page, 0x228), 0x8000);
        assert_eq!(u32_at(&page, 0x0c8), 0);
        // An initrd above 4G is split across the two fields.
        assert_eq!(u32_at(&page, 0x218), 0x2345_6000);
        assert_eq!(u32_at(&page, 0x0c0), 1);
        assert_eq!(u32_at(&page, 0x21c), 0x10_0000);
        assert_eq!(u64_at(&page, 0x070), 0xe_0000);
        assert_eq!(page[0x1e8], 3);
        assert_eq!(u64_at(&page, 0x2d0 + 2 * 20), 0x10_0000);
        assert_eq!(u64_at(&page, 0x2d0 + 2 * 20 + 8), 0x7f0_0000);
        assert_eq!(u32_at(&page, 0x2d0 + 20 + 16), 2);
        // The sentinel stays zero: the kernel then trusts every field.
        assert_eq!(page[0x1ef], 0);
    }

    #[test]
    fn no_initrd_and_no_acpi_leave_the_fields_zero() {
        let file = sample(30, 0x1000);
        let k = BzImage::parse(&file).unwrap();
        let page = build(
            &k,
            &BootFacts {
                cmdline_gpa: 0x8000,
                initrd: None,
                rsdp_gpa: None,
                e820: &[],
            },
        );
        assert_eq!(u32_at(&page, 0x218), 0);
        assert_eq!(u32_at(&page, 0x21c), 0);
        assert_eq!(u64_at(&page, 0x070), 0);
        assert_eq!(page[0x1e8], 0);
    }
}
