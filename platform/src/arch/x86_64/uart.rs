//! The console 16550 through x86 I/O ports (COM1 at 0x3f8 on PCs, QEMU and Bochs).

use crate::console::UartRegs;
use arch_x86::io::{inb, outb};

/// A 16550 whose eight registers are the ports `base..base + 8`.
pub struct PortUart {
    base: u16,
}

impl PortUart {
    /// The UART at `base`.
    pub const fn new(base: u16) -> Self {
        Self { base }
    }
}

impl UartRegs for PortUart {
    fn read(&self, reg: u8) -> u8 {
        // SAFETY: the board file gives these ports to the hypervisor's console.
        unsafe { inb(self.base + u16::from(reg)) }
    }

    fn write(&self, reg: u8, value: u8) {
        // SAFETY: as in `read`.
        unsafe { outb(self.base + u16::from(reg), value) }
    }
}
