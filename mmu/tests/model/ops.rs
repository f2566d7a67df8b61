//! The operations the property tests draw, and the leaf attributes they map with.

use mmu::{LeafAttrs, MemType, Perms};
use proptest::prelude::*;

#[derive(Clone, Debug)]
pub enum Op {
    MapRange {
        win: bool,
        page: u64,
        pages: u64,
        hpa: u8,
        attrs: u8,
        huge: bool,
        budget: Option<u8>,
    },
    Map {
        win: bool,
        page: u64,
        level: u8,
        hpa: u8,
        attrs: u8,
    },
    Unmap {
        win: bool,
        page: u64,
        pages: u64,
        free: bool,
        budget: Option<u8>,
    },
    Age {
        win: bool,
        page: u64,
        pages: u64,
    },
    TestAge {
        win: bool,
        page: u64,
        pages: u64,
    },
    ClearDirty {
        win: bool,
        page: u64,
        pages: u64,
    },
    ClearMasked {
        win: bool,
        page: u64,
        mask: u64,
    },
    WriteProtect {
        win: bool,
        page: u64,
        pages: u64,
    },
    Split {
        win: bool,
        page: u64,
        pages: u64,
        budget: Option<u8>,
    },
    Collapse {
        win: bool,
        page: u64,
        pages: u64,
    },
    FastFix {
        win: bool,
        page: u64,
        access: u8,
    },
    Commit,
}

/// Window size in huge pages (level-1 leaves).
pub const WINDOW_HUGE: u64 = 4;

pub fn op_strategy(huge_pages: u64) -> impl Strategy<Value = Op> {
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

pub fn attrs_of(i: u8) -> LeafAttrs {
    match i {
        0 => LeafAttrs::ram(Perms::RWX),
        1 => LeafAttrs {
            perms: Perms::R | Perms::W,
            mem: MemType::WriteBack,
            young: false,
            dirty: true,
        },
        _ => LeafAttrs {
            perms: Perms::R,
            mem: MemType::Uncached,
            young: false,
            dirty: false,
        },
    }
}
