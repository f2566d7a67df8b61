//! Booting as an EFI application (Loongson boards ship UEFI). The PE entry point is a short asm
//! stub: it adds the image's two address windows in DMW2/DMW3 (leaving the firmware's DMW0/DMW1
//! alone, and harmless if the firmware runs in direct-address mode) and calls [`efi_main`] on
//! the firmware's stack. `efi_main` reads the memory map, keeps the usable RAM in `.data` (the
//! entry code zeroes `.bss` later), leaves boot services, and enters the image's normal `_start`
//! with a0 = [`EFI_HANDOFF`], so everything after that is the same as on QEMU's `-kernel`.
//!
//! Only physical addresses are handed to the firmware: our own statics are linked in the cached
//! window, which the firmware need not map.

use arch_loongarch::csr;
use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// a0 value with which `efi_main` enters `_start` ("SEPTUEFI"); the Linux protocol uses 0 or 1.
pub const EFI_HANDOFF: usize = 0x5345_5054_5545_4649;

const PA_MASK: u64 = (1 << 48) - 1;
const EFI_SUCCESS: usize = 0;
/// EFI_LOAD_ERROR, returned when the firmware's memory map cannot be read.
const EFI_LOAD_ERROR: usize = (1 << 63) | 1;
/// Most usable RAM ranges kept (after merging neighbours).
const MAX_RANGES: usize = 32;

global_asm!(
    ".section .text, \"ax\"",
    ".global septum_efi_entry",
    "septum_efi_entry:",
    "    li.d    $t0, {dmw_cached}",
    "    csrwr   $t0, {DMW2}",
    "    li.d    $t0, {dmw_uncached}",
    "    csrwr   $t0, {DMW3}",
    "    addi.d  $sp, $sp, -16",
    "    st.d    $ra, $sp, 8",
    "    la.abs  $t0, {efi_main}",
    "    jirl    $ra, $t0, 0",
    // Only reached when efi_main gives up: return its status to the firmware.
    "    ld.d    $ra, $sp, 8",
    "    addi.d  $sp, $sp, 16",
    "    jirl    $zero, $ra, 0",
    dmw_cached = const csr::DMW1_CACHED,
    dmw_uncached = const csr::DMW0_UNCACHED,
    DMW2 = const csr::DMW0 + 2,
    DMW3 = const csr::DMW0 + 3,
    efi_main = sym efi_main,
);

/// The memory map as the firmware wrote it (in `.data`, so the entry code does not zero it).
#[link_section = ".data.efi"]
static MAP: [AtomicU64; 4096] = [const { AtomicU64::new(0) }; 4096];
/// Usable RAM (start, end) pairs, merged, for [`ram_ranges`].
#[link_section = ".data.efi"]
static RAM: [[AtomicU64; 2]; MAX_RANGES] =
    [const { [AtomicU64::new(0), AtomicU64::new(0)] }; MAX_RANGES];
#[link_section = ".data.efi"]
static RAM_LEN: AtomicUsize = AtomicUsize::new(0);
#[link_section = ".data.efi"]
static MAP_ENTRIES: AtomicUsize = AtomicUsize::new(0);

/// The usable RAM the firmware reported, as (start, end) pairs, and how many map entries it had.
pub fn ram_ranges(mut f: impl FnMut(u64, u64)) -> usize {
    for r in &RAM[..RAM_LEN.load(Ordering::Relaxed)] {
        f(r[0].load(Ordering::Relaxed), r[1].load(Ordering::Relaxed));
    }
    MAP_ENTRIES.load(Ordering::Relaxed)
}

/// Memory types free for the OS once boot services are gone: loader code/data (this image is
/// reserved separately), boot-services code/data, conventional memory.
fn usable(kind: u32) -> bool {
    matches!(kind, 1 | 2 | 3 | 4 | 7)
}

fn physical<T>(p: *const T) -> usize {
    (p as u64 & PA_MASK) as usize
}

/// The firmware's boot services table and the two calls used.
struct BootServices {
    table: usize,
}

type GetMemoryMap = extern "C" fn(*mut usize, usize, *mut usize, *mut usize, *mut u32) -> usize;
type ExitBootServices = extern "C" fn(usize, usize) -> usize;
type OutputString = extern "C" fn(usize, usize) -> usize;

impl BootServices {
    fn entry(&self, offset: usize) -> usize {
        // SAFETY: `table` is the firmware's EFI_BOOT_SERVICES, identity-mapped while boot
        // services run; `offset` is one of its function-pointer slots.
        unsafe { ((self.table + offset) as *const usize).read_volatile() }
    }

    /// Fills [`MAP`]; returns (map key, bytes, descriptor size).
    fn memory_map(&self) -> Result<(usize, usize, usize), usize> {
        // SAFETY: the slot holds GetMemoryMap, whose ABI is the platform C ABI.
        let get: GetMemoryMap = unsafe { core::mem::transmute(self.entry(56)) };
        let mut size = core::mem::size_of_val(&MAP);
        let (mut key, mut desc_size, mut version) = (0usize, 0usize, 0u32);
        let status = get(
            &mut size,
            physical(MAP.as_ptr()),
            &mut key,
            &mut desc_size,
            &mut version,
        );
        if status != EFI_SUCCESS || desc_size < 40 {
            return Err(status);
        }
        Ok((key, size, desc_size))
    }

    fn exit(&self, image: usize, key: usize) -> usize {
        // SAFETY: the slot holds ExitBootServices.
        let exit: ExitBootServices = unsafe { core::mem::transmute(self.entry(232)) };
        exit(image, key)
    }
}

/// Prints an ASCII line on the firmware console (only while boot services run).
fn firmware_print(systab: usize, text: &str) {
    // SAFETY: `systab` is the EFI system table the firmware passed; ConOut is at offset 64 and
    // its OutputString at offset 8 of the protocol.
    let (con_out, output) = unsafe {
        let con_out = ((systab + 64) as *const usize).read_volatile();
        (con_out, ((con_out + 8) as *const usize).read_volatile())
    };
    if con_out == 0 || output == 0 {
        return;
    }
    let mut buf = [0u16; 128];
    for (slot, b) in buf.iter_mut().zip(text.bytes().take(125)) {
        *slot = u16::from(b);
    }
    let n = text.len().min(125);
    buf[n] = u16::from(b'\r');
    buf[n + 1] = u16::from(b'\n');
    // SAFETY: OutputString has the C ABI; the string is NUL-terminated UCS-2 on our stack, which
    // the firmware reaches at its physical address.
    let output: OutputString = unsafe { core::mem::transmute(output) };
    output(con_out, physical(buf.as_ptr()));
}

/// Merges the usable descriptors of the map in [`MAP`] into [`RAM`].
fn keep_usable_ram(bytes: usize, desc_size: usize) {
    let base = MAP.as_ptr() as usize;
    let mut ranges = [(0u64, 0u64); MAX_RANGES];
    let mut n = 0;
    let entries = bytes / desc_size;
    for i in 0..entries {
        // SAFETY: the firmware wrote `entries` descriptors of `desc_size` bytes into MAP; each
        // starts with Type (u32, padded to 8), PhysicalStart, VirtualStart, NumberOfPages.
        let (kind, start, pages) = unsafe {
            let d = (base + i * desc_size) as *const u64;
            (d.read() as u32, d.add(1).read(), d.add(3).read())
        };
        if !usable(kind) || pages == 0 {
            continue;
        }
        let end = start + pages * 4096;
        if let Some(r) = ranges[..n].iter_mut().find(|r| r.1 == start || r.0 == end) {
            *r = (r.0.min(start), r.1.max(end));
        } else if n < MAX_RANGES {
            ranges[n] = (start, end);
            n += 1;
        }
    }
    ranges[..n].sort_unstable_by_key(|r| r.0);
    // A second pass joins ranges that became adjacent only after sorting.
    let mut m = 0;
    for i in 0..n {
        if m > 0 && ranges[m - 1].1 == ranges[i].0 {
            ranges[m - 1].1 = ranges[i].1;
        } else {
            ranges[m] = ranges[i];
            m += 1;
        }
    }
    for (slot, r) in RAM.iter().zip(&ranges[..m]) {
        slot[0].store(r.0, Ordering::Relaxed);
        slot[1].store(r.1, Ordering::Relaxed);
    }
    RAM_LEN.store(m, Ordering::Relaxed);
    MAP_ENTRIES.store(entries, Ordering::Relaxed);
}

/// The EFI application entry (reached through the asm stub), on the firmware's stack.
extern "C" fn efi_main(image: usize, systab: usize) -> usize {
    firmware_print(systab, "Septum: UEFI entry, leaving boot services");
    // SAFETY: BootServices is at offset 96 of the system table the firmware passed.
    let table = unsafe { ((systab + 96) as *const usize).read_volatile() };
    let bs = BootServices { table };
    // The map key goes stale if anything allocates in between, so retry once with a fresh map.
    for _ in 0..2 {
        let Ok((key, bytes, desc_size)) = bs.memory_map() else {
            firmware_print(systab, "Septum: GetMemoryMap failed");
            return EFI_LOAD_ERROR;
        };
        if bs.exit(image, key) == EFI_SUCCESS {
            keep_usable_ram(bytes, desc_size);
            enter_image(systab);
        }
    }
    firmware_print(systab, "Septum: ExitBootServices failed");
    EFI_LOAD_ERROR
}

/// Enters `_start` as a fresh boot with a0 = [`EFI_HANDOFF`], a2 = the system table.
fn enter_image(systab: usize) -> ! {
    extern "C" {
        fn _start();
    }
    // SAFETY: boot services are gone and the firmware no longer runs; `_start` re-establishes the
    // windows, stack, vectors and .bss from scratch and never returns. The handoff data is in
    // .data, which `_start` keeps.
    unsafe {
        core::arch::asm!(
            "jirl $zero, {entry}, 0",
            entry = in(reg) _start as unsafe extern "C" fn() as usize,
            in("$a0") EFI_HANDOFF,
            in("$a1") 0usize,
            in("$a2") systab,
            options(noreturn)
        )
    }
}
