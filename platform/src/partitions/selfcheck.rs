//! The hypervisor's self-check after its partitions end (issue 13): its own code and read-only
//! data hash to what they hashed to before any partition ran, and every leaf of every
//! partition's stage-2 table maps inside that partition's board-file windows (memory regions at
//! their host offsets, passthrough MMIO and UART pages identity), checked by `mmu::audit`. A
//! guest that had found a way to write the hypervisor, or to make it map something else, fails
//! the run here even if nothing crashed.

use super::Partition;
use crate::arch::Current;
use alloc::vec::Vec;
use mmu::audit::{leaf_within, Window};
use mmu::{Gpa, GpaRange, PteFormat};
use partition::Partitions;
use spin::Once;

extern "C" {
    static __image_start: u8;
    static __data_start: u8;
}

static HASH_AT_BOOT: Once<u64> = Once::new();

/// FNV-1a over the image's code and read-only data, eight bytes at a time.
fn image_hash() -> (u64, usize) {
    // SAFETY: both symbols come from the linker script: the image starts at `__image_start`
    // and its text and rodata end at `__data_start`, which is 8-byte aligned (4 KiB on
    // LoongArch, 16 on x86). The range is mapped, never written after boot, and only read.
    let bytes = unsafe {
        let start = core::ptr::addr_of!(__image_start);
        let len = core::ptr::addr_of!(__data_start) as usize - start as usize;
        core::slice::from_raw_parts(start, len)
    };
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for chunk in bytes.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h ^= u64::from_le_bytes(w);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h, bytes.len())
}

/// Hashes the image before any partition runs (the boot CPU, once).
pub fn record_image_hash() {
    HASH_AT_BOOT.call_once(|| image_hash().0);
}

/// The windows `p`'s table may map (as `build` mapped them).
fn windows(p: &Partition) -> Vec<Window> {
    let mut w: Vec<Window> = p
        .config
        .memory
        .iter()
        .map(|r| Window {
            guest: r.guest,
            host: r.host,
            size: r.size,
        })
        .collect();
    w.extend(p.config.mmio.iter().map(|m| Window {
        guest: m.start,
        host: m.start,
        size: m.size,
    }));
    if let Some(board_config::PassthroughUart {
        access: board_config::UartAccess::Mmio { base },
        ..
    }) = p.config.uart
    {
        let page = crate::board::BOARD.base_page;
        w.push(Window {
            guest: base & !(page - 1),
            host: base & !(page - 1),
            size: page,
        });
    }
    w
}

/// Leaves of `p`'s table, and how many of them lie outside its windows (each one printed).
fn audit(p: &Partition) -> (u64, u64) {
    type Format = <Current as partition::arch::PartitionArch>::Format;
    let windows = windows(p);
    let (mut leaves, mut outside) = (0u64, 0u64);
    let all = GpaRange {
        start: Gpa(0),
        end: p.table().gpa_limit(),
    };
    p.table().for_each_leaf(all, |gpa, t| {
        leaves += 1;
        let size = Format::level_size(t.level);
        if !leaf_within(gpa.as_u64(), t.hpa.as_u64(), size, &windows) {
            outside += 1;
            crate::println!(
                "selfcheck: partition {}: leaf {:#x} -> {:#x} ({size:#x} bytes) lies outside its \
                 regions",
                p.name(),
                gpa.as_u64(),
                t.hpa.as_u64()
            );
        }
    });
    (leaves, outside)
}

/// Runs both checks and prints their figures; true if both passed.
pub fn self_check(all: &Partitions<Current>) -> bool {
    let (now, len) = image_hash();
    let boot = HASH_AT_BOOT.get().copied();
    let same = boot == Some(now);
    crate::println!(
        "selfcheck: hypervisor code and rodata ({len} bytes) hash {:#018x} at boot, {now:#018x} \
         now {}",
        boot.unwrap_or(0),
        if same { "ok" } else { "MISMATCH" }
    );
    let (mut leaves, mut outside) = (0, 0);
    for p in all.all() {
        let (l, o) = audit(p);
        leaves += l;
        outside += o;
    }
    let parts = all.all().len();
    crate::println!(
        "selfcheck: stage-2 tables of {parts} partitions: {leaves} leaves, {outside} outside \
         their partition's regions {}",
        if outside == 0 { "ok" } else { "MISMATCH" }
    );
    same && outside == 0
}
