//! The EFI system table a LoongArch kernel is handed in a2. Linux reads nothing of EFI from it
//! but its configuration tables (no boot or runtime services are offered): the boot memory map
//! ([`BOOT_MEMMAP_GUID`], Linux's own table, the memory a firmware would report after
//! `ExitBootServices`) and the device tree ([`DEVICE_TREE_GUID`]). Layouts are the UEFI
//! specification's (system table, configuration table, memory descriptor) and the kernel's
//! `efi_boot_memmap` header.

use alloc::vec::Vec;

/// An EFI GUID in its in-memory byte order.
pub type Guid = [u8; 16];

/// Builds a GUID from its textual fields (the first three little-endian, the rest as written).
pub const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> Guid {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// Linux's boot memory map table.
pub const BOOT_MEMMAP_GUID: Guid = guid(
    0x800f_683f,
    0xd08b,
    0x423a,
    [0xa2, 0x93, 0x96, 0x5c, 0x3c, 0x6f, 0xe2, 0xb4],
);
/// The flattened device tree.
pub const DEVICE_TREE_GUID: Guid = guid(
    0xb1b6_21d5,
    0xf19c,
    0x41a5,
    [0x83, 0x0b, 0xd9, 0x15, 0x2c, 0x69, 0xaa, 0xe0],
);

/// "IBI SYST".
pub const SYSTEM_TABLE_SIGNATURE: u64 = 0x5453_5953_2049_4249;
/// UEFI 2.10.
pub const REVISION: u32 = 2 << 16 | 100;
/// Bytes of a 64-bit system table.
pub const SYSTEM_TABLE_SIZE: usize = 120;
/// Bytes of one configuration table entry.
pub const CONFIG_ENTRY_SIZE: usize = 24;
/// Bytes of one memory descriptor, as the map states it.
pub const DESCRIPTOR_SIZE: usize = 40;
/// Bytes of the kernel's `efi_boot_memmap` header before the descriptors.
pub const MEMMAP_HEADER_SIZE: usize = 40;
/// Memory type: free memory.
pub const CONVENTIONAL_MEMORY: u32 = 7;
/// Attribute: cacheable, write-back.
pub const MEMORY_WB: u64 = 0x8;

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// The system table, its vendor string and its configuration tables as one blob to place at
/// `at`: `tables` are `(GUID, guest-physical address)`.
pub fn system_table(at: u64, vendor: &str, tables: &[(Guid, u64)]) -> Vec<u8> {
    let vendor_at = SYSTEM_TABLE_SIZE;
    let vendor_len = 2 * (vendor.encode_utf16().count() + 1);
    let tables_at = (vendor_at + vendor_len).next_multiple_of(8);
    let mut b = alloc::vec![0u8; tables_at + tables.len() * CONFIG_ENTRY_SIZE];
    put_u64(&mut b, 0, SYSTEM_TABLE_SIGNATURE);
    put_u32(&mut b, 8, REVISION);
    put_u32(&mut b, 12, SYSTEM_TABLE_SIZE as u32);
    put_u64(&mut b, 24, at + vendor_at as u64);
    // Firmware revision 1.0; handles, protocols and services are all null.
    put_u32(&mut b, 32, 1 << 16);
    put_u64(&mut b, 104, tables.len() as u64);
    put_u64(&mut b, 112, at + tables_at as u64);
    for (i, unit) in vendor.encode_utf16().enumerate() {
        b[vendor_at + 2 * i..vendor_at + 2 * i + 2].copy_from_slice(&unit.to_le_bytes());
    }
    for (i, (g, addr)) in tables.iter().enumerate() {
        let e = tables_at + i * CONFIG_ENTRY_SIZE;
        b[e..e + 16].copy_from_slice(g);
        put_u64(&mut b, e + 16, *addr);
    }
    b
}

/// The boot memory map: every `(start, size)` of `ram` as conventional, write-back memory, in
/// whole 4 KiB EFI pages.
pub fn boot_memmap(ram: &[(u64, u64)]) -> Vec<u8> {
    let map_size = ram.len() * DESCRIPTOR_SIZE;
    let mut b = alloc::vec![0u8; MEMMAP_HEADER_SIZE + map_size];
    put_u64(&mut b, 0, map_size as u64);
    put_u64(&mut b, 8, DESCRIPTOR_SIZE as u64);
    put_u32(&mut b, 16, 1);
    put_u64(&mut b, 32, map_size as u64);
    for (i, &(start, size)) in ram.iter().enumerate() {
        let d = MEMMAP_HEADER_SIZE + i * DESCRIPTOR_SIZE;
        put_u32(&mut b, d, CONVENTIONAL_MEMORY);
        put_u64(&mut b, d + 8, start);
        put_u64(&mut b, d + 24, size >> 12);
        put_u64(&mut b, d + 32, MEMORY_WB);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn guids_are_in_efi_byte_order() {
        // 800f683f-d08b-423a-a293-965c3c6fe2b4
        assert_eq!(
            BOOT_MEMMAP_GUID,
            [
                0x3f, 0x68, 0x0f, 0x80, 0x8b, 0xd0, 0x3a, 0x42, 0xa2, 0x93, 0x96, 0x5c, 0x3c, 0x6f,
                0xe2, 0xb4
            ]
        );
    }

    #[test]
    fn the_system_table_points_at_its_tables_and_vendor() {
        let at = 0x2000;
        let t = system_table(
            at,
            "Septum",
            &[(BOOT_MEMMAP_GUID, 0x4000), (DEVICE_TREE_GUID, 0x10000)],
        );
        assert_eq!(u64_at(&t, 0), SYSTEM_TABLE_SIGNATURE);
        assert_eq!(u64_at(&t, 104), 2);
        let tables = (u64_at(&t, 112) - at) as usize;
        assert_eq!(tables % 8, 0);
        assert_eq!(&t[tables..tables + 16], &BOOT_MEMMAP_GUID);
        assert_eq!(u64_at(&t, tables + 16), 0x4000);
        assert_eq!(&t[tables + 24..tables + 40], &DEVICE_TREE_GUID);
        assert_eq!(u64_at(&t, tables + 40), 0x10000);
        let vendor = (u64_at(&t, 24) - at) as usize;
        assert_eq!(&t[vendor..vendor + 4], &[b'S', 0, b'e', 0]);
        // Null boot and runtime services.
        assert_eq!(u64_at(&t, 88), 0);
        assert_eq!(u64_at(&t, 96), 0);
    }

    #[test]
    fn the_memory_map_describes_each_ram_range_in_efi_pages() {
        let m = boot_memmap(&[(0, 256 << 20), (0x4000_0000, 64 << 20)]);
        assert_eq!(u64_at(&m, 0), 2 * DESCRIPTOR_SIZE as u64);
        assert_eq!(u64_at(&m, 8), DESCRIPTOR_SIZE as u64);
        let d1 = MEMMAP_HEADER_SIZE + DESCRIPTOR_SIZE;
        assert_eq!(m[d1], CONVENTIONAL_MEMORY as u8);
        assert_eq!(u64_at(&m, d1 + 8), 0x4000_0000);
        assert_eq!(u64_at(&m, d1 + 24), (64 << 20) >> 12);
    }
}
