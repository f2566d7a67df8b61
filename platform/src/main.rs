//! The Septum hypervisor image. The arch module (chosen by target) owns the entry point and the
//! hardware edge; everything else here is the arch-neutral boot sequence, console, log and memory.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

extern crate alloc;

mod arch;
mod boot;
mod boot_info;
mod cmdline;
mod console;
mod cpu_stacks;
mod logger;
mod memory;
mod panic;
#[cfg(septum_partitions)]
mod partitions;

/// The board this image was built for, generated from `board-configs/<board>.toml` by `build.rs`.
mod board {
    include!(concat!(env!("OUT_DIR"), "/board.rs"));
}

/// The test guests as flat binaries (empty when the board runs none), from `build.rs`.
#[allow(dead_code)]
mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}
