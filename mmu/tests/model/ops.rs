//! The operations the property tests draw, and the leaf attributes they map with. No proptest
//! here: the fuzz crate includes this file, the harness and `../common` to drive the same model
//! from libFuzzer input, and draws its operations its own way.

use mmu::{LeafAttrs, MemType, Perms};

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
