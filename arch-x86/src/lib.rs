//! The x86_64 hardware edge. Everything that executes a privileged instruction lives here.
#![no_std]
