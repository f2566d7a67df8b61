//! Reading what the multiboot loader left us: the memory map (usable RAM), the command line, the
//! modules, and (multiboot2) the ACPI RSDP copy. Multiboot1 (magic 0x2BADB002, QEMU `-kernel`, GRUB
//! `multiboot`) and multiboot2 (0x36D76289, GRUB `multiboot2`) are both understood. The loader's own
//! structures are reported as reserved so the frame allocator never hands them out; the command
//! line is copied into the image because the structures may sit where the SMP trampoline goes.

use super::acpi;
use crate::boot_info::{BootInfo, RangeList};
use board_config::MemRange;
use spin::Once;

const MB1_BOOT_MAGIC: u32 = 0x2bad_b002;
const MB2_BOOT_MAGIC: u32 = 0x36d7_6289;
/// Everything we map (the boot page tables cover 4 GiB); RAM above is left out of `BootInfo.ram`.
const MAPPED_END: u64 = 4 << 30;
/// The real-mode area (IVT, BIOS data, EBDA, option ROMs, and our SMP trampoline page).
const LOW_MEMORY: MemRange = MemRange {
    start: 0,
    size: 0x10_0000,
};
const CMDLINE_MAX: usize = 512;
const MEMORY_AVAILABLE: u32 = 1;

static CMDLINE: Once<([u8; CMDLINE_MAX], usize)> = Once::new();

/// Reads a little-endian value from physical memory the loader handed us.
fn read<T: Copy>(pa: u64) -> T {
    // SAFETY: only called on addresses inside the boot information structures, which the loader
    // placed in RAM below 4 GiB; all of it is identity-mapped and nothing writes it meanwhile.
    unsafe { (pa as *const T).read_unaligned() }
}

/// Length of the NUL-terminated string at `pa`, bounded.
fn c_strlen(pa: u64, max: usize) -> usize {
    (0..max)
        .find(|&i| read::<u8>(pa + i as u64) == 0)
        .unwrap_or(max)
}

/// Copies the command line at `pa` into the image and returns it (empty if not UTF-8).
fn keep_cmdline(pa: u64) -> &'static str {
    let len = c_strlen(pa, CMDLINE_MAX);
    let (buf, len) = CMDLINE.call_once(|| {
        let mut buf = [0u8; CMDLINE_MAX];
        for (i, b) in buf.iter_mut().enumerate().take(len) {
            *b = read(pa + i as u64);
        }
        (buf, len)
    });
    core::str::from_utf8(&buf[..*len]).unwrap_or("")
}

/// The command line the loader passed, once [`parse`] has run.
pub fn cmdline() -> &'static str {
    CMDLINE.get().map_or("", |(buf, len)| {
        core::str::from_utf8(&buf[..*len]).unwrap_or("")
    })
}

/// Adds `[start, start + size)` to `ram`, clipped to the mapped 4 GiB.
fn push_ram(ram: &mut RangeList, start: u64, size: u64) {
    let end = start.saturating_add(size).min(MAPPED_END);
    if end > start {
        ram.push(MemRange {
            start,
            size: end - start,
        });
    }
}

fn push_reserved(reserved: &mut RangeList, start: u64, size: u64) {
    if size > 0 {
        reserved.push(MemRange { start, size });
    }
}

fn parse_mb1(info: u64) -> BootInfo {
    let mut boot = BootInfo {
        firmware: "multiboot1",
        cmdline: "",
        ram: RangeList::new(),
        reserved: RangeList::new(),
    };
    let flags: u32 = read(info);
    // The fixed part of the structure is 120 bytes (through the framebuffer fields).
    push_reserved(&mut boot.reserved, info, 120);
    if flags & (1 << 2) != 0 {
        let p = u64::from(read::<u32>(info + 16));
        boot.cmdline = keep_cmdline(p);
        push_reserved(&mut boot.reserved, p, c_strlen(p, 4096) as u64 + 1);
    }
    if flags & (1 << 3) != 0 {
        let count = u64::from(read::<u32>(info + 20));
        let table = u64::from(read::<u32>(info + 24));
        push_reserved(&mut boot.reserved, table, count * 16);
        for m in 0..count {
            let start = u64::from(read::<u32>(table + m * 16));
            let end = u64::from(read::<u32>(table + m * 16 + 4));
            push_reserved(&mut boot.reserved, start, end.saturating_sub(start));
        }
    }
    if flags & (1 << 6) != 0 {
        let len = u64::from(read::<u32>(info + 44));
        let base = u64::from(read::<u32>(info + 48));
        push_reserved(&mut boot.reserved, base, len);
        // Each entry: size (not counting itself), base u64, length u64, type u32.
        let mut e = base;
        while e + 24 <= base + len {
            let size = u64::from(read::<u32>(e));
            if read::<u32>(e + 20) == MEMORY_AVAILABLE {
                push_ram(&mut boot.ram, read(e + 4), read(e + 12));
            }
            e += size + 4;
        }
    } else if flags & 1 != 0 {
        // Only mem_lower / mem_upper (KiB below 640 KiB and from 1 MiB).
        push_ram(&mut boot.ram, 0, u64::from(read::<u32>(info + 4)) << 10);
        push_ram(
            &mut boot.ram,
            0x10_0000,
            u64::from(read::<u32>(info + 8)) << 10,
        );
    }
    boot
}

fn parse_mb2(info: u64) -> BootInfo {
    let mut boot = BootInfo {
        firmware: "multiboot2",
        cmdline: "",
        ram: RangeList::new(),
        reserved: RangeList::new(),
    };
    let total = u64::from(read::<u32>(info));
    push_reserved(&mut boot.reserved, info, total);
    let mut basic: Option<(u64, u64)> = None;
    let mut have_mmap = false;
    let mut tag = info + 8;
    while tag + 8 <= info + total {
        let kind: u32 = read(tag);
        let size = u64::from(read::<u32>(tag + 4));
        if kind == 0 || size < 8 {
            break;
        }
        match kind {
            1 => boot.cmdline = keep_cmdline(tag + 8),
            3 => {
                let start = u64::from(read::<u32>(tag + 8));
                let end = u64::from(read::<u32>(tag + 12));
                push_reserved(&mut boot.reserved, start, end.saturating_sub(start));
            }
            4 => {
                basic = Some((
                    u64::from(read::<u32>(tag + 8)) << 10,
                    u64::from(read::<u32>(tag + 12)) << 10,
                ))
            }
            6 => {
                have_mmap = true;
                let entry_size = u64::from(read::<u32>(tag + 8)).max(24);
                let mut e = tag + 16;
                while e + 24 <= tag + size {
                    if read::<u32>(e + 16) == MEMORY_AVAILABLE {
                        push_ram(&mut boot.ram, read(e), read(e + 8));
                    }
                    e += entry_size;
                }
            }
            // ACPI 1.0 (14) and 2.0+ (15) RSDP copies: the firmware's own copy may be elsewhere.
            14 | 15 => acpi::remember_rsdp(tag + 8),
            _ => {}
        }
        tag += size.div_ceil(8) * 8;
    }
    if let (false, Some((lower, upper))) = (have_mmap, basic) {
        push_ram(&mut boot.ram, 0, lower);
        push_ram(&mut boot.ram, 0x10_0000, upper);
    }
    boot
}

/// Builds the [`BootInfo`] from the loader's magic and information address. An unknown loader
/// gets the board file's RAM, so the image still says what went wrong on its console.
pub fn parse(magic: u32, info: u64) -> BootInfo {
    let mut boot = match magic {
        MB1_BOOT_MAGIC => parse_mb1(info),
        MB2_BOOT_MAGIC => parse_mb2(info),
        _ => {
            let mut ram = RangeList::new();
            for r in crate::board::BOARD.ram {
                ram.push(*r);
            }
            BootInfo {
                firmware: "unknown loader (no multiboot magic)",
                cmdline: "",
                ram,
                reserved: RangeList::new(),
            }
        }
    };
    boot.reserved.push(LOW_MEMORY);
    boot
}
