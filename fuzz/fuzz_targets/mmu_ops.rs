//! Fuzz target: sequences of stage-2 table operations on the real engine against the reference
//! model of the mmu property tests. The model, its harness and the test doubles are the mmu
//! crate's own test files, included as they are; only the drawing of operations is this
//! target's: the first byte picks the format (EPT with and without A/D, NPT, LoongArch 16K and
//! 4K, EPT / NPT / LoongArch 4K with a mirror), the rest is read with `arbitrary` into
//! operations with the same ranges as the proptest strategy (starts and lengths favouring
//! huge-page boundaries, allocation budgets that run out).
//!
//! After every step the harness asserts what the property tests do: translations agree both
//! ways, no present leaf changes frame, no table page leaks, stats agree with a recount, a
//! commit flushes once before freeing, the mirror equals the model; at the end everything
//! unmaps and every page comes back.
#![no_main]

#[path = "../../mmu/tests/common/mod.rs"]
mod common;
#[path = "../../mmu/tests/model/harness.rs"]
mod harness;
#[path = "../../mmu/tests/model/ops.rs"]
mod ops;

use std::collections::BTreeMap;

use arbitrary::{Result, Unstructured};
use common::MapMirror;
use harness::run;
use libfuzzer_sys::fuzz_target;
use mmu::{Ept, EptConfig, LoongArch16K, LoongArch4K, NoMirror, Npt};
use ops::{Op, WINDOW_HUGE};

/// At most this many operations per input: the harness checks every page of both windows after
/// each one, so long inputs would only slow the search down.
const MAX_OPS: usize = 40;

/// A start page: anywhere in the window, or on a huge-page boundary.
fn page(u: &mut Unstructured, huge_pages: u64) -> Result<u64> {
    let w = huge_pages * WINDOW_HUGE;
    Ok(if u.arbitrary()? {
        u.int_in_range(0..=w - 1)?
    } else {
        u.int_in_range(0..=WINDOW_HUGE - 1)? * huge_pages
    })
}

/// A length in pages: a few, anything up to the window, or whole huge pages.
fn pages(u: &mut Unstructured, huge_pages: u64) -> Result<u64> {
    let w = huge_pages * WINDOW_HUGE;
    Ok(match u.int_in_range(0..=2u8)? {
        0 => u.int_in_range(1..=7)?,
        1 => u.int_in_range(1..=w - 1)?,
        _ => u.int_in_range(1..=WINDOW_HUGE)? * huge_pages,
    })
}

/// An allocation budget: mostly none, sometimes 0-3 table pages.
fn budget(u: &mut Unstructured) -> Result<Option<u8>> {
    Ok(if u.ratio(1, 5)? {
        Some(u.int_in_range(0..=3)?)
    } else {
        None
    })
}

fn op(u: &mut Unstructured, huge: u64) -> Result<Op> {
    let win = u.arbitrary()?;
    Ok(match u.int_in_range(0..=11u8)? {
        0 => Op::MapRange {
            win,
            page: page(u, huge)?,
            pages: pages(u, huge)?,
            hpa: u.int_in_range(0..=3)?,
            attrs: u.int_in_range(0..=2)?,
            huge: u.arbitrary()?,
            budget: budget(u)?,
        },
        1 => Op::Map {
            win,
            page: page(u, huge)?,
            level: u.int_in_range(0..=1)?,
            hpa: u.int_in_range(0..=3)?,
            attrs: u.int_in_range(0..=2)?,
        },
        2 => Op::Unmap {
            win,
            page: page(u, huge)?,
            pages: pages(u, huge)?,
            free: u.arbitrary()?,
            budget: budget(u)?,
        },
        3 => Op::Age {
            win,
            page: page(u, huge)?,
            pages: pages(u, huge)?,
        },
        4 => Op::TestAge {
            win,
            page: page(u, huge)?,
            pages: pages(u, huge)?,
        },
        5 => Op::ClearDirty {
            win,
            page: page(u, huge)?,
            pages: pages(u, huge)?,
        },
        6 => Op::ClearMasked {
            win,
            page: page(u, huge)?,
            mask: u.arbitrary()?,
        },
        7 => Op::WriteProtect {
            win,
            page: page(u, huge)?,
            pages: pages(u, huge)?,
        },
        8 => Op::Split {
            win,
            page: page(u, huge)?,
            pages: pages(u, huge)?,
            budget: budget(u)?,
        },
        9 => Op::Collapse {
            win,
            page: page(u, huge)?,
            pages: pages(u, huge)?,
        },
        10 => Op::FastFix {
            win,
            page: page(u, huge)?,
            access: u.int_in_range(0..=2)?,
        },
        _ => Op::Commit,
    })
}

fn ops(u: &mut Unstructured, huge: u64) -> Vec<Op> {
    let mut v = Vec::new();
    while v.len() < MAX_OPS && !u.is_empty() {
        match op(u, huge) {
            Ok(o) => v.push(o),
            Err(_) => break,
        }
    }
    v
}

fn no_mirror(_: &NoMirror) -> Option<BTreeMap<u64, u64>> {
    None
}

fn mirror_map(m: &MapMirror) -> Option<BTreeMap<u64, u64>> {
    Some(m.map.lock().unwrap().clone())
}

fuzz_target!(|data: &[u8]| {
    let Some((&format, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    match format % 8 {
        0 => run(Ept::default(), NoMirror, &ops(&mut u, 512), no_mirror),
        1 => {
            let ept = Ept::new(EptConfig {
                ad: false,
                ..EptConfig::default()
            });
            run(ept, NoMirror, &ops(&mut u, 512), no_mirror)
        }
        2 => run(Npt::default(), NoMirror, &ops(&mut u, 512), no_mirror),
        3 => run(
            LoongArch16K::default(),
            NoMirror,
            &ops(&mut u, 2048),
            no_mirror,
        ),
        4 => run(
            LoongArch4K::default(),
            NoMirror,
            &ops(&mut u, 512),
            no_mirror,
        ),
        5 => run(
            Ept::default(),
            MapMirror::new(4096),
            &ops(&mut u, 512),
            mirror_map,
        ),
        6 => run(
            Npt::default(),
            MapMirror::new(4096),
            &ops(&mut u, 512),
            mirror_map,
        ),
        _ => run(
            LoongArch4K::default(),
            MapMirror::new(4096),
            &ops(&mut u, 512),
            mirror_map,
        ),
    }
});
