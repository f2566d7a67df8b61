//! The CPUs' boot stacks, reserved statically (one per CPU the image supports): the arch entry
//! code switches to its CPU's before any Rust runs, so nothing here may need the heap.

use board_config::MAX_CPUS;
const STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
struct Stacks([[u8; STACK_SIZE]; MAX_CPUS]);

static mut STACKS: Stacks = Stacks([[0; STACK_SIZE]; MAX_CPUS]);

/// The initial stack pointer for CPU `cpu` (0 for the boot CPU).
pub fn cpu_stack_top(cpu: usize) -> usize {
    assert!(cpu < MAX_CPUS, "cpu index {cpu} beyond MAX_CPUS");
    // Only the address is taken; each CPU uses its own stack alone.
    core::ptr::addr_of_mut!(STACKS) as usize + (cpu + 1) * STACK_SIZE
}
