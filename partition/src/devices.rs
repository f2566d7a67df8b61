//! The virtual devices a partition sees: a Linux partition's CMOS clock ([`CmosClock`]), and
//! the console UART, a 16550A (`vcpu::uart16550`
//! holds the register model) whose transmitter prints on the hypervisor console, one line at a
//! time, prefixed with the partition's name, and whose receiver is filled from the hypervisor
//! console's input ([`Partition::console_input`]). One chip per partition, shared by its vCPUs as
//! one chip is; each vCPU's bus holds a [`VirtualUart`] that reaches it. The chip's interrupt
//! output drives the line `PartitionArch::VIRTUAL_UART_LINE` of the partition's controller view
//! (x86: each rising edge is raised on the vCPU the guest routed that line to,
//! `device_irq::raise_virtual_line`; LoongArch: its level goes to the PCH-PIC view, `eiointc`),
//! so an interrupt-driven driver (Linux's 8250) is not left waiting for a "transmitter empty"
//! that never comes.

use crate::arch::PartitionArch;
use crate::Partition;
use alloc::vec::Vec;
#[cfg(feature = "x86")]
use vcpu::cmos_rtc::CmosRtc;
use vcpu::uart16550::Uart16550;
use vcpu::{AccessSize, Device, DeviceError};

/// A line longer than this is printed in pieces.
const LINE_MAX: usize = 200;

/// A partition's console chip and the output line being assembled.
pub struct ConsoleUart {
    chip: Uart16550,
    line: Vec<u8>,
    /// Someone typed to this partition: its output goes to the terminal byte by byte.
    interactive: bool,
}

impl ConsoleUart {
    pub const fn new() -> Self {
        Self {
            chip: Uart16550::new(),
            line: Vec::new(),
            interactive: false,
        }
    }

    fn print<A: PartitionArch>(&mut self, name: &str, byte: u8) {
        if self.interactive {
            A::write_console(&[byte]);
            return;
        }
        match byte {
            b'\n' => self.flush::<A>(name),
            b'\r' => {}
            b => {
                self.line.push(b);
                if self.line.len() >= LINE_MAX {
                    self.flush::<A>(name);
                }
            }
        }
    }

    fn flush<A: PartitionArch>(&mut self, name: &str) {
        let text = core::str::from_utf8(&self.line).unwrap_or("<not UTF-8>");
        say!(A, "[{name}] {text}");
        self.line.clear();
    }
}

impl<A: PartitionArch> Partition<A> {
    /// Runs `f` on the console chip and raises the chip's interrupt line if `f` made it rise;
    /// `cpu` is the calling CPU (no kick needed for a vCPU there).
    fn with_console<R>(&self, cpu: usize, f: impl FnOnce(&mut ConsoleUart) -> R) -> R {
        let (result, before, after) = {
            let mut c = self.console.lock();
            let before = c.chip.interrupt();
            let result = f(&mut c);
            (result, before, c.chip.interrupt())
        };
        let Some(line) = A::VIRTUAL_UART_LINE else {
            return result;
        };
        // x86: an I/O APIC edge on each rise. LoongArch: the line's level, which the PCH-PIC
        // view turns into a vector while it is asserted and unmasked.
        #[cfg(feature = "x86")]
        if !before && after {
            super::device_irq::raise_virtual_line(self, line, cpu);
        }
        #[cfg(feature = "loongarch")]
        if before != after {
            self.drive_virtual_line(line, after, cpu);
        }
        result
    }

    /// Bytes typed for this partition at the hypervisor console, received by its UART; returns
    /// how many fit (the rest would overrun the chip's FIFO and are left to the caller).
    pub fn console_input(&self, cpu: usize, bytes: &[u8]) -> usize {
        let name = self.name();
        self.with_console(cpu, |c| {
            if !c.interactive {
                if !c.line.is_empty() {
                    c.flush::<A>(name);
                }
                c.interactive = true;
            }
            let n = bytes.len().min(c.chip.rx_room());
            for &b in &bytes[..n] {
                c.chip.receive(b);
            }
            n
        })
    }
}

/// The console chip on one vCPU's bus.
pub struct VirtualUart<A: PartitionArch> {
    partition: &'static Partition<A>,
    cpu: usize,
}

impl<A: PartitionArch> VirtualUart<A> {
    pub fn new(partition: &'static Partition<A>, cpu: usize) -> Self {
        Self { partition, cpu }
    }
}

impl<A: PartitionArch> Device for VirtualUart<A> {
    fn name(&self) -> &str {
        "virtual uart"
    }

    fn read(&mut self, offset: u64, size: AccessSize) -> Result<u64, DeviceError> {
        if size != AccessSize::Byte {
            return Err(DeviceError::BadWidth);
        }
        Ok(u64::from(
            self.partition
                .with_console(self.cpu, |c| c.chip.read(offset)),
        ))
    }

    fn write(&mut self, offset: u64, size: AccessSize, value: u64) -> Result<(), DeviceError> {
        if size != AccessSize::Byte {
            return Err(DeviceError::BadWidth);
        }
        let name = self.partition.name();
        self.partition.with_console(self.cpu, |c| {
            if let Some(byte) = c.chip.write(offset, value as u8) {
                c.print::<A>(name, byte);
            }
        });
        Ok(())
    }
}

/// A Linux partition's CMOS clock (`vcpu::cmos_rtc`: present, stopped at a fixed date), at the
/// PC's ports 0x70-0x71. One per vCPU bus: the only state is the selected register, and a guest
/// selects and reads a register on one CPU under its own lock.
#[cfg(feature = "x86")]
pub struct CmosClock(CmosRtc);

#[cfg(feature = "x86")]
impl CmosClock {
    /// The PC's CMOS index and data ports.
    pub const PORT: u16 = 0x70;

    pub fn new() -> Self {
        Self(CmosRtc::new())
    }
}

#[cfg(feature = "x86")]
impl Device for CmosClock {
    fn name(&self) -> &str {
        "cmos rtc"
    }

    fn read(&mut self, offset: u64, size: AccessSize) -> Result<u64, DeviceError> {
        if size != AccessSize::Byte {
            return Err(DeviceError::BadWidth);
        }
        Ok(u64::from(self.0.read(offset)))
    }

    fn write(&mut self, offset: u64, size: AccessSize, value: u64) -> Result<(), DeviceError> {
        if size != AccessSize::Byte {
            return Err(DeviceError::BadWidth);
        }
        self.0.write(offset, value as u8);
        Ok(())
    }
}
