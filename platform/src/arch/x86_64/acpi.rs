//! Just enough ACPI to find the CPUs: locate the RSDP (from the multiboot2 tag, else by scanning the
//! EBDA and the BIOS area as the ACPI spec describes), follow the XSDT or RSDT to the MADT, and list
//! the enabled local APIC IDs. All tables sit below 4 GiB, inside the identity map.

use core::sync::atomic::{AtomicU64, Ordering};

/// Bit 63 of [`ROOT`]: the root is an XSDT (tables need not be aligned, so no low bit is free).
const XSDT: u64 = 1 << 63;

/// The RSDT or XSDT address, tagged with [`XSDT`]; 0 until found.
static ROOT: AtomicU64 = AtomicU64::new(0);

fn read<T: Copy>(pa: u64) -> T {
    // SAFETY: only called on firmware areas and ACPI tables below 4 GiB (identity-mapped RAM or
    // ROM) after their signature and length were checked; reads have no side effects there.
    unsafe { (pa as *const T).read_unaligned() }
}

fn checksum_ok(pa: u64, len: u64) -> bool {
    (0..len).fold(0u8, |sum, i| sum.wrapping_add(read::<u8>(pa + i))) == 0
}

/// Validates an RSDP at `pa`; returns the root table address tagged with the XSDT bit.
fn root_from_rsdp(pa: u64) -> Option<u64> {
    if read::<[u8; 8]>(pa) != *b"RSD PTR " || !checksum_ok(pa, 20) {
        return None;
    }
    let revision: u8 = read(pa + 15);
    if revision >= 2 && checksum_ok(pa, u64::from(read::<u32>(pa + 20)).clamp(36, 64)) {
        let xsdt: u64 = read(pa + 24);
        if xsdt != 0 && xsdt < (4 << 30) {
            return Some(xsdt | XSDT);
        }
    }
    let rsdt = u64::from(read::<u32>(pa + 16));
    (rsdt != 0).then_some(rsdt)
}

/// Records the RSDP copy a multiboot2 loader handed over (the firmware's may not be scannable).
pub fn remember_rsdp(pa: u64) {
    if let Some(root) = root_from_rsdp(pa) {
        // A 2.0 tag after a 1.0 one replaces it with the XSDT.
        if ROOT.load(Ordering::Relaxed) & XSDT == 0 {
            ROOT.store(root, Ordering::Relaxed);
        }
    }
}

fn scan(start: u64, len: u64) -> Option<u64> {
    (start..start + len).step_by(16).find_map(root_from_rsdp)
}

fn root() -> Option<u64> {
    let known = ROOT.load(Ordering::Relaxed);
    if known != 0 {
        return Some(known);
    }
    // The EBDA segment is at 0x40e in the BIOS data area; the spec says search its first KiB.
    let ebda = u64::from(read::<u16>(0x40e)) << 4;
    let found = (if (0x8_0000..0xa_0000).contains(&ebda) {
        scan(ebda, 1024)
    } else {
        None
    })
    .or_else(|| scan(0xe_0000, 0x2_0000))?;
    ROOT.store(found, Ordering::Relaxed);
    Some(found)
}

/// The table with `signature`, found through the root table.
fn find_table(signature: &[u8; 4]) -> Option<u64> {
    let root = root()?;
    let (table, entry_size) = if root & XSDT != 0 {
        (root & !XSDT, 8)
    } else {
        (root, 4)
    };
    let len = u64::from(read::<u32>(table + 4));
    if len < 36 || !checksum_ok(table, len) {
        return None;
    }
    (0..(len - 36) / entry_size)
        .map(|i| {
            let at = table + 36 + i * entry_size;
            if entry_size == 8 {
                read::<u64>(at)
            } else {
                u64::from(read::<u32>(at))
            }
        })
        .filter(|&t| t != 0 && t < (4 << 30))
        .find(|&t| read::<[u8; 4]>(t) == *signature)
        .filter(|&t| checksum_ok(t, u64::from(read::<u32>(t + 4))))
}

/// Fills `ids` with the APIC IDs of the enabled (or online-capable) CPUs the MADT lists, in
/// table order; returns how many, or `None` when there is no usable MADT.
pub fn madt_apic_ids(ids: &mut [u32]) -> Option<usize> {
    let Some(madt) = find_table(b"APIC") else {
        log::debug!("acpi: root table {:x?}, no valid MADT", root());
        return None;
    };
    let len = u64::from(read::<u32>(madt + 4));
    let mut count = 0;
    let mut at = madt + 44;
    while at + 2 <= madt + len && count < ids.len() {
        let kind: u8 = read(at);
        let size = u64::from(read::<u8>(at + 1));
        if size < 2 {
            break;
        }
        let usable = |flags: u32| flags & 0b11 != 0;
        match kind {
            // Processor local APIC: uid u8, APIC ID u8, flags u32.
            0 if size >= 8 && usable(read(at + 4)) => {
                ids[count] = u32::from(read::<u8>(at + 3));
                count += 1;
            }
            // Processor local x2APIC: reserved u16, x2APIC ID u32, flags u32, uid u32.
            9 if size >= 16 && usable(read(at + 8)) => {
                ids[count] = read(at + 4);
                count += 1;
            }
            _ => {}
        }
        at += size;
    }
    Some(count)
}
