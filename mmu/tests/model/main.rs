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
use ops::op_strategy;
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
