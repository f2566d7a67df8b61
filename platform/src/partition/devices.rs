//! The virtual devices a partition sees: for now the console UART, a 16550 whose transmitter
//! prints on the hypervisor console, one line at a time, prefixed with the partition's name. Its
//! line status always says "transmitter empty", so a guest driver never waits; everything else
//! reads as 0 and ignores writes.

use alloc::vec::Vec;
use vcpu::{AccessSize, Device, DeviceError};

const THR: u64 = 0;
const LSR: u64 = 5;
/// THR empty and transmitter idle.
const LSR_IDLE: u64 = 0x60;
/// A line longer than this is printed in pieces.
const LINE_MAX: usize = 200;

/// A 16550 whose output goes to the hypervisor console.
pub struct VirtualUart {
    name: &'static str,
    line: Vec<u8>,
}

impl VirtualUart {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            line: Vec::new(),
        }
    }

    fn flush(&mut self) {
        let text = core::str::from_utf8(&self.line).unwrap_or("<not UTF-8>");
        crate::println!("[{}] {}", self.name, text);
        self.line.clear();
    }
}

impl Device for VirtualUart {
    fn name(&self) -> &str {
        "virtual uart"
    }

    fn read(&mut self, offset: u64, size: AccessSize) -> Result<u64, DeviceError> {
        if size != AccessSize::Byte {
            return Err(DeviceError::BadWidth);
        }
        Ok(if offset == LSR { LSR_IDLE } else { 0 })
    }

    fn write(&mut self, offset: u64, size: AccessSize, value: u64) -> Result<(), DeviceError> {
        if size != AccessSize::Byte {
            return Err(DeviceError::BadWidth);
        }
        if offset == THR {
            match value as u8 {
                b'\n' => self.flush(),
                b'\r' => {}
                b => {
                    self.line.push(b);
                    if self.line.len() >= LINE_MAX {
                        self.flush();
                    }
                }
            }
        }
        Ok(())
    }
}
