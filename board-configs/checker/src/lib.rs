//! One board file, two users. The `model` module is the `no_std` schema the hypervisor image embeds;
//! with the `check` feature the crate also parses a `board-configs/<board>.toml`, rejects every
//! inconsistency with a message naming the file, partition and key, and generates the Rust constants
//! the image compiles in, so the image and the checker cannot drift apart.
#![cfg_attr(not(feature = "check"), no_std)]

pub mod model;
pub use model::*;

#[cfg(feature = "check")]
pub mod check;
