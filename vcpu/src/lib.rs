//! The arch-neutral vCPU layer: the exit enum both architectures map into, and what dispatches it.
#![no_std]
