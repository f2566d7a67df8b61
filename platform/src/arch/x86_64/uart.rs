//! The console 16550 through x86 I/O ports (COM1 at 0x3f8 on PCs, QEMU and Bochs).

use crate::console::{ConsoleRegs, UartRegs};
use arch_x86::io::{inb, outb};
use board_config::UartAccess;
use spin::Once;

static CONSOLE: Once<PortUart> = Once::new();

/// The board's console UART, for `console::attach`.
pub fn console_regs(uart: &board_config::Uart) -> ConsoleRegs {
    CONSOLE.call_once(|| match uart.access {
        UartAccess::Port { base } => PortUart::new(base),
        // The board checker gives x86 boards port consoles; COM1 is the only sane fallback.
        UartAccess::Mmio { .. } => PortUart::new(0x3f8),
    })
}

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
