//! The stage-2 page-table engine: one generic table over per-architecture PTE formats.
#![no_std]
