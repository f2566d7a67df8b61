//! What the firmware hands over on QEMU `-kernel` (the Linux boot protocol): the command line at
//! the PA in a1 and a flattened device tree at PA 0x100000 (QEMU's `FDT_BASE`), read here into a
//! [`BootInfo`]: RAM from the `memory` nodes, QEMU's boot data and the FDT reserved, the CPU count
//! from `/cpus`. Without a valid FDT the board file's RAM is used instead and the log says so.

use super::Current;
use crate::arch::Machine;
use crate::boot_info::{BootInfo, RangeList};
use board_config::MemRange;
use core::sync::atomic::{AtomicUsize, Ordering};
use spin::Once;

/// Where QEMU's LoongArch `virt` board puts the device tree.
const FDT_PA: u64 = 0x10_0000;
/// QEMU's boot data (command line, EFI system table, FDT) lives below this.
const BOOT_DATA_END: u64 = 0x20_0000;
/// The longest command line kept; the rest is dropped.
const CMDLINE_MAX: usize = 1024;
const FDT_MAGIC: u32 = 0xd00d_feed;
const PA_MASK: u64 = (1 << 48) - 1;

/// The command line, copied out of firmware memory so it stays valid whatever becomes of that.
static CMDLINE: Once<([u8; CMDLINE_MAX], usize)> = Once::new();
/// CPUs listed in the device tree (1 when there is none).
static FDT_CPUS: AtomicUsize = AtomicUsize::new(1);

/// How many CPUs the firmware described.
pub fn cpu_count() -> usize {
    FDT_CPUS.load(Ordering::Relaxed)
}

/// The command line as the boot CPU found it ("" before [`boot_info`]).
pub fn cmdline() -> &'static str {
    CMDLINE.get().map_or("", |(buf, len)| {
        core::str::from_utf8(&buf[..*len]).unwrap_or("")
    })
}

/// The value of `key=value` on the command line, if present.
pub fn cmdline_value(key: &str) -> Option<&'static str> {
    cmdline()
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// Copies a NUL-terminated string from physical memory (at most [`CMDLINE_MAX`] bytes, cut at
/// the last whole UTF-8 character).
fn copy_cstr(pa: u64) -> ([u8; CMDLINE_MAX], usize) {
    let mut buf = [0u8; CMDLINE_MAX];
    let src = Current::phys_to_virt(pa & PA_MASK) as *const u8;
    let mut len = 0;
    while len < CMDLINE_MAX - 1 {
        // SAFETY: QEMU puts the command line in its boot data below 2 MiB, which is RAM reached
        // through the cached window; the read stops at the terminating NUL.
        let b = unsafe { src.add(len).read_volatile() };
        if b == 0 {
            break;
        }
        buf[len] = b;
        len += 1;
    }
    let valid = match core::str::from_utf8(&buf[..len]) {
        Ok(_) => len,
        Err(e) => e.valid_up_to(),
    };
    (buf, valid)
}

/// The device tree at [`FDT_PA`], if one is there.
fn device_tree() -> Option<fdt::Fdt<'static>> {
    let ptr = Current::phys_to_virt(FDT_PA) as *const u8;
    // SAFETY: [0, 2 MiB) is RAM on every LoongArch board this image supports and is reserved for
    // boot data; the header word is read only to decide whether a tree is there at all.
    let magic = unsafe { (ptr as *const u32).read_volatile() };
    if u32::from_be(magic) != FDT_MAGIC {
        return None;
    }
    // SAFETY: the magic says a tree starts here; `from_ptr` bounds the slice by its header's
    // total size, and the memory stays reserved (never handed out) for the whole run.
    unsafe { fdt::Fdt::from_ptr(ptr) }.ok()
}

/// The image's own physical range (header to end of .bss), which no allocator may hand out.
fn image_range() -> MemRange {
    extern "C" {
        static __image_start: u8;
        static __image_end: u8;
    }
    // Only the addresses of the linker-script symbols are taken, never their contents.
    let (start, end) = (
        core::ptr::addr_of!(__image_start) as u64 & PA_MASK,
        core::ptr::addr_of!(__image_end) as u64 & PA_MASK,
    );
    MemRange {
        start,
        size: end - start,
    }
}

/// Boot information after `efi_main` left boot services: RAM from the UEFI memory map, CPUs
/// from the board file (the firmware's ACPI tables are not read yet), no command line.
fn boot_info_from_efi() -> BootInfo {
    let mut ram = RangeList::new();
    let mut reserved = RangeList::new();
    reserved.push(MemRange {
        start: 0,
        size: BOOT_DATA_END,
    });
    reserved.push(image_range());
    let entries = super::efi::ram_ranges(|start, end| {
        ram.push(MemRange {
            start,
            size: end - start,
        })
    });
    FDT_CPUS.store(crate::board::BOARD.cpus as usize, Ordering::Relaxed);
    let (buf, len) = CMDLINE.call_once(|| ([0; CMDLINE_MAX], 0));
    let firmware = if entries == 0 {
        "UEFI, empty memory map"
    } else {
        "UEFI, RAM from the memory map"
    };
    BootInfo {
        firmware,
        cmdline: core::str::from_utf8(&buf[..*len]).unwrap_or(""),
        ram,
        reserved,
    }
}

/// Builds the boot information from the entry registers: the Linux protocol (`efi_flag` and
/// `systab_pa` are not needed on the `-kernel` path, the FDT has everything), or the hand-off
/// from [`super::efi`] when `efi_flag` is [`super::efi::EFI_HANDOFF`].
pub fn boot_info(efi_flag: usize, cmdline_pa: usize, _systab_pa: usize) -> BootInfo {
    if efi_flag == super::efi::EFI_HANDOFF {
        return boot_info_from_efi();
    }
    let mut ram = RangeList::new();
    let mut reserved = RangeList::new();
    reserved.push(MemRange {
        start: 0,
        size: BOOT_DATA_END,
    });
    reserved.push(image_range());
    let mut bootargs = None;
    let firmware = match device_tree() {
        Some(tree) => {
            // Collected first so the list comes out sorted by address, whatever the node order.
            let mut found = [MemRange { start: 0, size: 0 }; 32];
            let mut n = 0;
            for node in tree.all_nodes() {
                let is_memory = node.name.split('@').next() == Some("memory")
                    || node.property("device_type").and_then(|p| p.as_str()) == Some("memory");
                if !is_memory {
                    continue;
                }
                for region in node.reg().into_iter().flatten() {
                    let start = region.starting_address as u64;
                    let size = region.size.unwrap_or(0) as u64;
                    if size != 0 && n < found.len() {
                        found[n] = MemRange { start, size };
                        n += 1;
                    }
                }
            }
            found[..n].sort_unstable_by_key(|r| r.start);
            for r in &found[..n] {
                ram.push(*r);
            }
            reserved.push(MemRange {
                start: FDT_PA,
                size: tree.total_size() as u64,
            });
            if let Some(cpus) = tree.find_node("/cpus") {
                let n = cpus
                    .children()
                    .filter(|c| c.name.split('@').next() == Some("cpu"))
                    .count();
                FDT_CPUS.store(n.max(1), Ordering::Relaxed);
            }
            bootargs = tree
                .find_node("/chosen")
                .and_then(|c| c.property("bootargs"))
                .and_then(|p| p.as_str());
            "QEMU -kernel, FDT at 0x100000"
        }
        None => {
            for r in crate::board::BOARD.ram {
                ram.push(*r);
            }
            FDT_CPUS.store(crate::board::BOARD.cpus as usize, Ordering::Relaxed);
            "direct boot without a device tree, RAM from the board file"
        }
    };
    // The command line from a1 wins; the FDT's /chosen/bootargs fills in when a1's is empty.
    let (buf, len) = CMDLINE.call_once(|| {
        let from_a1 = copy_cstr(cmdline_pa as u64);
        match bootargs {
            Some(args) if from_a1.1 == 0 && !args.is_empty() => {
                let mut buf = [0u8; CMDLINE_MAX];
                let len = args.len().min(CMDLINE_MAX - 1);
                buf[..len].copy_from_slice(&args.as_bytes()[..len]);
                (buf, len)
            }
            _ => from_a1,
        }
    });
    BootInfo {
        firmware,
        cmdline: core::str::from_utf8(&buf[..*len]).unwrap_or(""),
        ram,
        reserved,
    }
}
