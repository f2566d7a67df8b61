//! Ending a run so the emulator's exit status says how it went. Each emulator ignores the other's
//! ports, so both are always tried: QEMU's isa-debug-exit at 0xf4 (status `value << 1 | 1`: 0x10
//! gives 33 for success, 0x11 gives 35 for failure; a triple fault gives 0, so 0 never means
//! success), then Bochs (the `xchg bx,bx` magic breakpoint, which the run's debugger script answers
//! with `quit`, status 0; "Shutdown" to port 0x8900, status 1). On real hardware both are no-ops
//! and the CPU halts.

use crate::arch::Outcome;
use arch_x86::io::{outb, outl};
use arch_x86::regs::halt_forever;

const QEMU_DEBUG_EXIT: u16 = 0xf4;
const QEMU_SUCCESS: u32 = 0x10;
const QEMU_FAILURE: u32 = 0x11;
const BOCHS_SHUTDOWN_PORT: u16 = 0x8900;

/// Ends the run with `outcome`.
pub fn exit(outcome: Outcome) -> ! {
    match outcome {
        Outcome::Success => {
            // SAFETY: port 0xf4 is the emulator's exit device (unused on real boards); the magic
            // breakpoint is an ordinary no-op exchange outside Bochs.
            unsafe {
                outl(QEMU_DEBUG_EXIT, QEMU_SUCCESS);
                core::arch::asm!("xchg bx, bx", options(nomem, nostack, preserves_flags));
            }
        }
        Outcome::Failure => {
            crate::console::print_unlocked(format_args!("exit: FAILURE\n"));
            // SAFETY: as above; port 0x8900 is Bochs' shutdown port, unused on real boards.
            unsafe {
                outl(QEMU_DEBUG_EXIT, QEMU_FAILURE);
                for &b in b"Shutdown" {
                    outb(BOCHS_SHUTDOWN_PORT, b);
                }
            }
        }
    }
    halt_forever()
}
