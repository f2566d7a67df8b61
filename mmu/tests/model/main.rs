//! Property tests: random sequences of every operation, on every format (EPT with and without A/D,
//! NPT, LoongArch 16K and 4K; EPT, NPT and LoongArch 4K also with a mirror), against a reference
//! model (gfn -> frame, permissions, memory type, and lower bounds on young and dirty).
//!
//! After each step: translations agree both ways; every allocated table page is reachable, shared
//! invalid, or waiting in the batch for its flush; stats agree with a recount; no present leaf
//! changed frame within one operation; the mirror equals the model. Commits must issue exactly one
//! flush before freeing anything.

#[path = "../common/mod.rs"]
mod common;
mod harness;
mod ops;

use std::collections::BTreeMap;

use common::MapMirror;
use harness::run;
use mmu::{Ept, EptConfig, LoongArch16K, LoongArch4K, NoMirror, Npt};
use ops::{Op, WINDOW_HUGE};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("MMU_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

fn no_mirror(_: &NoMirror) -> Option<BTreeMap<u64, u64>> {
    None
}

fn mirror_map(m: &MapMirror) -> Option<BTreeMap<u64, u64>> {
    Some(m.map.lock().unwrap().clone())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn ept_ad_matches_model(ops in prop::collection::vec(op_strategy(512), 1..40)) {
        run(Ept::default(), NoMirror, &ops, no_mirror);
    }

    #[test]
    fn ept_without_ad_matches_model(ops in prop::collection::vec(op_strategy(512), 1..40)) {
        run(Ept::new(EptConfig { ad: false, ..EptConfig::default() }), NoMirror, &ops, no_mirror);
    }

    #[test]
    fn npt_matches_model(ops in prop::collection::vec(op_strategy(512), 1..40)) {
        run(Npt::default(), NoMirror, &ops, no_mirror);
    }

    #[test]
    fn loongarch_16k_matches_model(ops in prop::collection::vec(op_strategy(2048), 1..30)) {
        run(LoongArch16K::default(), NoMirror, &ops, no_mirror);
    }

    #[test]
    fn loongarch_4k_matches_model(ops in prop::collection::vec(op_strategy(512), 1..40)) {
        run(LoongArch4K::default(), NoMirror, &ops, no_mirror);
    }

    #[test]
    fn ept_with_mirror_matches_model(ops in prop::collection::vec(op_strategy(512), 1..30)) {
        run(Ept::default(), MapMirror::new(4096), &ops, mirror_map);
    }

    #[test]
    fn npt_with_mirror_matches_model(ops in prop::collection::vec(op_strategy(512), 1..30)) {
        run(Npt::default(), MapMirror::new(4096), &ops, mirror_map);
    }

    #[test]
    fn loongarch_with_mirror_matches_model(ops in prop::collection::vec(op_strategy(512), 1..30)) {
        run(LoongArch4K::default(), MapMirror::new(4096), &ops, mirror_map);
    }
}

/// One operation on either window; starts and lengths favour huge-page boundaries.
fn op_strategy(huge_pages: u64) -> impl Strategy<Value = Op> {
    let w = huge_pages * WINDOW_HUGE;
    // Start pages: anywhere, or on a huge boundary (so huge leaves happen).
    let page = prop_oneof![0..w, (0..WINDOW_HUGE).prop_map(move |k| k * huge_pages)];
    let pages = prop_oneof![
        1..8u64,
        1..w,
        (1..=WINDOW_HUGE).prop_map(move |k| k * huge_pages)
    ];
    let budget = prop_oneof![4 => Just(None), 1 => (0..4u8).prop_map(Some)];
    prop_oneof![
        6 => (any::<bool>(), page.clone(), pages.clone(), 0..4u8, 0..3u8, any::<bool>(), budget.clone())
            .prop_map(|(win, page, pages, hpa, attrs, huge, budget)| Op::MapRange { win, page, pages, hpa, attrs, huge, budget }),
        2 => (any::<bool>(), page.clone(), 0..2u8, 0..4u8, 0..3u8)
            .prop_map(|(win, page, level, hpa, attrs)| Op::Map { win, page, level, hpa, attrs }),
        3 => (any::<bool>(), page.clone(), pages.clone(), any::<bool>(), budget.clone())
            .prop_map(|(win, page, pages, free, budget)| Op::Unmap { win, page, pages, free, budget }),
        2 => (any::<bool>(), page.clone(), pages.clone()).prop_map(|(win, page, pages)| Op::Age { win, page, pages }),
        1 => (any::<bool>(), page.clone(), pages.clone()).prop_map(|(win, page, pages)| Op::TestAge { win, page, pages }),
        2 => (any::<bool>(), page.clone(), pages.clone()).prop_map(|(win, page, pages)| Op::ClearDirty { win, page, pages }),
        2 => (any::<bool>(), page.clone(), any::<u64>()).prop_map(|(win, page, mask)| Op::ClearMasked { win, page, mask }),
        1 => (any::<bool>(), page.clone(), pages.clone()).prop_map(|(win, page, pages)| Op::WriteProtect { win, page, pages }),
        2 => (any::<bool>(), page.clone(), pages.clone(), budget)
            .prop_map(|(win, page, pages, budget)| Op::Split { win, page, pages, budget }),
        2 => (any::<bool>(), page.clone(), pages).prop_map(|(win, page, pages)| Op::Collapse { win, page, pages }),
        4 => (any::<bool>(), page, 0..3u8).prop_map(|(win, page, access)| Op::FastFix { win, page, access }),
        1 => Just(Op::Commit),
    ]
}
