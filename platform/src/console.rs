//! The hypervisor console: a polled 16550 UART driver generic over register access, exposed as an
//! `embedded-io` writer behind one lock so lines from several CPUs never interleave. It knows no
//! architecture: the arch's entry code attaches the registers ([`attach`], its first Rust
//! action, so even an early fault prints) and the boot sequence programs the line ([`init`]).

use core::convert::Infallible;
use core::fmt;
use spin::{Mutex, Once};

/// Byte access to the 8 registers of a 16550; implemented per arch (MMIO or port I/O).
pub trait UartRegs {
    fn read(&self, reg: u8) -> u8;
    fn write(&self, reg: u8, value: u8);
}

impl<T: UartRegs + ?Sized> UartRegs for &T {
    fn read(&self, reg: u8) -> u8 {
        (**self).read(reg)
    }

    fn write(&self, reg: u8, value: u8) {
        (**self).write(reg, value)
    }
}

/// The console's registers, as the arch attached them.
pub type ConsoleRegs = &'static (dyn UartRegs + Sync);

use vcpu::uart16550::reg::{self, LSR_DR, LSR_THRE};

/// The registers this driver uses, as `UartRegs` numbers them.
const THR: u8 = reg::RBR_THR as u8;
const RBR: u8 = reg::RBR_THR as u8;
const DLL: u8 = reg::RBR_THR as u8;
const IER: u8 = reg::IER as u8;
const DLM: u8 = reg::IER as u8;
const FCR: u8 = reg::IIR_FCR as u8;
const LCR: u8 = reg::LCR as u8;
const MCR: u8 = reg::MCR as u8;
const LSR: u8 = reg::LSR as u8;

/// A polled 16550.
pub struct Uart16550<R: UartRegs> {
    regs: R,
}

impl<R: UartRegs> Uart16550<R> {
    /// Takes the registers without touching the hardware (the firmware may have set it up).
    pub const fn new(regs: R) -> Self {
        Self { regs }
    }

    /// 8N1 at `baud`, FIFOs on, interrupts off.
    pub fn init(&mut self, clock_hz: u32, baud: u32) {
        let divisor = (clock_hz / (16 * baud.max(1))).clamp(1, 0xffff);
        self.regs.write(IER, 0);
        self.regs.write(LCR, 0x80);
        self.regs.write(DLL, divisor as u8);
        self.regs.write(DLM, (divisor >> 8) as u8);
        self.regs.write(LCR, 0x03);
        self.regs.write(FCR, 0x07);
        self.regs.write(MCR, 0x03);
    }

    /// A received byte, if one waits.
    fn take(&mut self) -> Option<u8> {
        (self.regs.read(LSR) & LSR_DR != 0).then(|| self.regs.read(RBR))
    }

    fn put(&mut self, byte: u8) {
        // Bounded wait: a missing UART must not hang the hypervisor forever.
        for _ in 0..1_000_000 {
            if self.regs.read(LSR) & LSR_THRE != 0 {
                break;
            }
            core::hint::spin_loop();
        }
        self.regs.write(THR, byte);
    }
}

impl<R: UartRegs> embedded_io::ErrorType for Uart16550<R> {
    type Error = Infallible;
}

impl<R: UartRegs> embedded_io::Write for Uart16550<R> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for &b in buf {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

impl<R: UartRegs> fmt::Write for Uart16550<R> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        embedded_io::Write::write_all(self, s.as_bytes()).map_err(|_| fmt::Error)
    }
}

static REGS: Once<ConsoleRegs> = Once::new();
static CONSOLE: Mutex<Option<Uart16550<ConsoleRegs>>> = Mutex::new(None);

/// Records where the console's registers are (the arch's entry code, once, before anything can
/// print). Until [`init`], only [`print_unlocked`] writes, to the UART as the firmware left it.
pub fn attach(regs: ConsoleRegs) {
    REGS.call_once(|| regs);
}

/// Programs the attached console UART (8N1 at `baud` from `clock_hz`) and opens the locked
/// console. Called once by the boot CPU.
pub fn init(clock_hz: u32, baud: u32) {
    let Some(&regs) = REGS.get() else {
        return;
    };
    let mut uart = Uart16550::new(regs);
    uart.init(clock_hz, baud);
    *CONSOLE.lock() = Some(uart);
}

/// Moves up to `buf.len()` received bytes into `buf` and returns how many, without waiting:
/// 0 when nothing came or another CPU holds the console (the input waits in the UART).
pub fn take_input(buf: &mut [u8]) -> usize {
    let Some(mut guard) = CONSOLE.try_lock() else {
        return 0;
    };
    let Some(uart) = guard.as_mut() else {
        return 0;
    };
    let mut n = 0;
    while n < buf.len() {
        match uart.take() {
            Some(b) => buf[n] = b,
            None => break,
        }
        n += 1;
    }
    n
}

/// Writes `bytes` as they are (a partition's console output in interactive mode).
pub fn write_bytes(bytes: &[u8]) {
    let mut guard = CONSOLE.lock();
    if let Some(uart) = guard.as_mut() {
        for &b in bytes {
            uart.put(b);
        }
    }
}

/// Prints under the console lock (a whole line at a time from the logger).
pub fn print(args: fmt::Arguments) {
    let mut guard = CONSOLE.lock();
    if let Some(uart) = guard.as_mut() {
        let _ = fmt::Write::write_fmt(uart, args);
    }
}

/// Prints without taking the lock, for the panic and exception paths: the CPU that panicked may
/// hold the lock already, and a lost character is better than a silent hang.
pub fn print_unlocked(args: fmt::Arguments) {
    if let Some(&regs) = REGS.get() {
        let _ = fmt::Write::write_fmt(&mut Uart16550::new(regs), args);
    }
}

/// `println!` for the hypervisor console.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::console::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}
