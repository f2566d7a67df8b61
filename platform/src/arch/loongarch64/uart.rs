//! The console 16550's registers through the uncached window (byte-wide, one byte apart, as on
//! the Loongson-3 integrated UART and QEMU's `virt`).

use crate::console::{ConsoleRegs, UartRegs};
use arch_loongarch::csr::UNCACHED_BASE;
use board_config::UartAccess;
use spin::Once;

static CONSOLE: Once<MmioUart> = Once::new();

/// The board's console UART, for `console::attach` (a port console has no meaning here: a sink).
pub fn console_regs(uart: &board_config::Uart) -> ConsoleRegs {
    CONSOLE.call_once(|| match uart.access {
        UartAccess::Mmio { base } => MmioUart::new(Some(base)),
        UartAccess::Port { .. } => MmioUart::new(None),
    })
}

/// A 16550 at an uncached virtual address; `base == 0` means there is none (writes are dropped).
pub struct MmioUart {
    base: usize,
}

impl MmioUart {
    /// The UART at physical address `pa`, or a sink when `pa` is `None`.
    pub fn new(pa: Option<u64>) -> Self {
        Self {
            base: pa.map_or(0, |pa| (UNCACHED_BASE | pa) as usize),
        }
    }
}

impl UartRegs for MmioUart {
    fn read(&self, reg: u8) -> u8 {
        if self.base == 0 {
            // "Transmitter empty", so a writer never waits on a missing UART.
            return 0x60;
        }
        // SAFETY: `base` is the board's console UART in the uncached window, which DMW0 maps
        // for the whole run; `reg` is one of the 16550's eight registers.
        unsafe { ((self.base + reg as usize) as *const u8).read_volatile() }
    }

    fn write(&self, reg: u8, value: u8) {
        if self.base == 0 {
            return;
        }
        // SAFETY: as for `read`.
        unsafe { ((self.base + reg as usize) as *mut u8).write_volatile(value) }
    }
}
