//! Septum's stage-2 page-table engine: one generic GPA→HPA table over per-architecture entry
//! formats (Intel EPT, AMD nested paging, LoongArch LVZ GPA tables).
//!
//! The pieces: a [`PteFormat`] says how entries are encoded and how young/dirty are tracked; a
//! [`FrameAllocator`] provides table pages and their phys→virt mapping; a [`TlbFlush`] backend
//! invalidates; an optional [`MirrorHook`] follows every change (an IOMMU). [`StageTwoTable`]
//! combines them. Mutating calls describe the flush they need in a [`FlushBatch`], committed once,
//! which also holds unlinked table pages until that flush has happened.
//!
//! The crate is `no_std` with `alloc` and touches no hardware: the arch crates implement the
//! traits, and everything here is tested on the host.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

extern crate alloc;

pub mod addr;
pub mod attrs;
pub mod audit;
pub mod bitmap;
pub mod flush;
pub mod format;
pub mod frame;
pub mod mirror;
pub mod shootdown;
pub mod stats;
pub mod table;
pub mod tracking;

pub use addr::{Gfn, Gpa, GpaRange, Hpa};
pub use attrs::{Access, LeafAttrs, MemType, Perms};
pub use bitmap::GfnBitmap;
pub use flush::{Flush, FlushBatch, NoTlb, TlbFlush};
pub use format::ept::{Ept, EptConfig, Eptp};
pub use format::loongarch::{LoongArch, LoongArch16K, LoongArch4K};
pub use format::npt::{ncr3, Npt, NptConfig};
pub use format::{PteFormat, MAX_LEVELS};
pub use frame::{FrameAllocator, HeapFrameAllocator};
pub use mirror::{MirrorError, MirrorHook, NoMirror};
pub use stats::TableStats;
pub use table::{
    Error, FastFix, HugePolicy, MapReport, StageTwoTable, Translation, UnmapMode, UnmapReport, Walk,
};
