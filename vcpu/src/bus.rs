//! The device bus: virtual devices claim address ranges (guest-physical MMIO, or x86 I/O ports),
//! and trapped accesses are routed to the one device whose range holds the whole access. Ranges
//! may not overlap; an access nobody claims is an error the caller turns into a partition fault.

use crate::exit::AccessSize;
#[cfg(feature = "alloc")]
use alloc::{boxed::Box, vec::Vec};
use core::fmt;

/// A device's answer to an access it cannot serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// The register at this offset does not exist.
    NoRegister,
    /// The register exists but not at this width.
    BadWidth,
    /// The device refuses (e.g. a write to a read-only register the board marks as fatal).
    Refused,
}

/// A virtual device behind a bus range. Offsets are relative to the range base.
pub trait Device: Send {
    /// A short name for logs.
    fn name(&self) -> &str;
    fn read(&mut self, offset: u64, size: AccessSize) -> core::result::Result<u64, DeviceError>;
    fn write(
        &mut self,
        offset: u64,
        size: AccessSize,
        value: u64,
    ) -> core::result::Result<(), DeviceError>;
}

/// Why a bus access or registration failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BusError {
    /// Registration: `[base, base + size)` overlaps the range of device `existing`.
    Overlap {
        base: u64,
        size: u64,
        existing: &'static str,
    },
    /// Registration: an empty range or one that wraps around the address space.
    BadRange { base: u64, size: u64 },
    /// No device claims the whole access at `addr`.
    Unclaimed { addr: u64, size: AccessSize },
    /// The device at `addr` refused the access.
    Device { addr: u64, error: DeviceError },
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusError::Overlap {
                base,
                size,
                existing,
            } => {
                write!(
                    f,
                    "range [{base:#x}, {:#x}) overlaps device {existing}",
                    base + size
                )
            }
            BusError::BadRange { base, size } => {
                write!(f, "bad range base {base:#x} size {size:#x}")
            }
            BusError::Unclaimed { addr, size } => {
                write!(f, "no device at {addr:#x} ({} bytes)", size.bytes())
            }
            BusError::Device { addr, error } => write!(f, "device at {addr:#x} refused: {error:?}"),
        }
    }
}

/// Result alias for bus operations.
pub type Result<T> = core::result::Result<T, BusError>;

#[cfg(feature = "alloc")]
struct Slot {
    base: u64,
    end: u64,
    /// Kept beside the device so an overlap error can name it without borrowing the device.
    label: &'static str,
    device: Box<dyn Device>,
}

/// A set of non-overlapping device ranges, kept sorted by base.
#[derive(Default)]
#[cfg(feature = "alloc")]
pub struct IoBus {
    slots: Vec<Slot>,
}

#[cfg(feature = "alloc")]
impl IoBus {
    /// An empty bus.
    pub const fn new() -> Self {
        Self { slots: Vec::new() }
    }

    /// Claims `[base, base + size)` for `device`, labelled `label` in errors.
    pub fn register(
        &mut self,
        base: u64,
        size: u64,
        label: &'static str,
        device: Box<dyn Device>,
    ) -> Result<()> {
        let end = base
            .checked_add(size)
            .filter(|_| size > 0)
            .ok_or(BusError::BadRange { base, size })?;
        let at = self.slots.partition_point(|s| s.base < base);
        let clashes = |s: &Slot| s.base < end && base < s.end;
        if let Some(s) = self.slots.get(at).filter(|s| clashes(s)).or_else(|| {
            at.checked_sub(1)
                .and_then(|i| self.slots.get(i))
                .filter(|s| clashes(s))
        }) {
            return Err(BusError::Overlap {
                base,
                size,
                existing: s.label,
            });
        }
        self.slots.insert(
            at,
            Slot {
                base,
                end,
                label,
                device,
            },
        );
        Ok(())
    }

    /// The slot holding all of `[addr, addr + size)`.
    fn slot(&mut self, addr: u64, size: AccessSize) -> Result<&mut Slot> {
        let end = addr
            .checked_add(size.bytes())
            .ok_or(BusError::Unclaimed { addr, size })?;
        let at = self.slots.partition_point(|s| s.base <= addr);
        at.checked_sub(1)
            .and_then(|i| self.slots.get_mut(i))
            .filter(|s| end <= s.end)
            .ok_or(BusError::Unclaimed { addr, size })
    }

    /// Routes a read; the value is truncated to the access width.
    pub fn read(&mut self, addr: u64, size: AccessSize) -> Result<u64> {
        let slot = self.slot(addr, size)?;
        let offset = addr - slot.base;
        slot.device
            .read(offset, size)
            .map(|v| v & size.mask())
            .map_err(|error| BusError::Device { addr, error })
    }

    /// Routes a write; the value is truncated to the access width.
    pub fn write(&mut self, addr: u64, size: AccessSize, value: u64) -> Result<()> {
        let slot = self.slot(addr, size)?;
        let offset = addr - slot.base;
        slot.device
            .write(offset, size, value & size.mask())
            .map_err(|error| BusError::Device { addr, error })
    }

    /// The label of the device holding `addr`, for logs.
    pub fn owner(&self, addr: u64) -> Option<&'static str> {
        let at = self.slots.partition_point(|s| s.base <= addr);
        at.checked_sub(1)
            .map(|i| &self.slots[i])
            .filter(|s| addr < s.end)
            .map(|s| s.label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    /// Eight byte-wide registers that remember what was written.
    struct Scratch([u8; 8]);

    impl Device for Scratch {
        fn name(&self) -> &str {
            "scratch"
        }
        fn read(
            &mut self,
            offset: u64,
            size: AccessSize,
        ) -> core::result::Result<u64, DeviceError> {
            let o = offset as usize;
            let n = size.bytes() as usize;
            let bytes = self.0.get(o..o + n).ok_or(DeviceError::NoRegister)?;
            Ok(bytes.iter().rev().fold(0, |acc, &b| acc << 8 | b as u64))
        }
        fn write(
            &mut self,
            offset: u64,
            size: AccessSize,
            value: u64,
        ) -> core::result::Result<(), DeviceError> {
            let o = offset as usize;
            let n = size.bytes() as usize;
            let bytes = self.0.get_mut(o..o + n).ok_or(DeviceError::NoRegister)?;
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = (value >> (8 * i)) as u8;
            }
            Ok(())
        }
    }

    fn bus() -> IoBus {
        let mut bus = IoBus::new();
        bus.register(0x1000, 8, "a", Box::new(Scratch([0; 8])))
            .unwrap();
        bus.register(0x2000, 8, "b", Box::new(Scratch([0; 8])))
            .unwrap();
        bus
    }

    #[test]
    fn accesses_reach_the_device_at_their_offset() {
        let mut bus = bus();
        bus.write(0x1002, AccessSize::Half, 0xbeef).unwrap();
        assert_eq!(bus.read(0x1002, AccessSize::Half), Ok(0xbeef));
        assert_eq!(bus.read(0x1000, AccessSize::Double), Ok(0xbeef_0000));
        assert_eq!(bus.read(0x2002, AccessSize::Half), Ok(0));
        assert_eq!(bus.owner(0x2007), Some("b"));
        assert_eq!(bus.owner(0x2008), None);
    }

    #[test]
    fn writes_are_truncated_to_their_width() {
        let mut bus = bus();
        bus.write(0x1000, AccessSize::Byte, 0x1234).unwrap();
        assert_eq!(bus.read(0x1000, AccessSize::Half), Ok(0x34));
    }

    #[test]
    fn overlapping_and_empty_ranges_are_refused() {
        let mut bus = bus();
        let e = bus
            .register(0x1004, 0x10, "c", Box::new(Scratch([0; 8])))
            .unwrap_err();
        assert_eq!(
            e,
            BusError::Overlap {
                base: 0x1004,
                size: 0x10,
                existing: "a"
            }
        );
        let e = bus
            .register(0xff8, 0x9, "c", Box::new(Scratch([0; 8])))
            .unwrap_err();
        assert_eq!(
            e,
            BusError::Overlap {
                base: 0xff8,
                size: 9,
                existing: "a"
            }
        );
        assert!(matches!(
            bus.register(0x3000, 0, "c", Box::new(Scratch([0; 8]))),
            Err(BusError::BadRange { .. })
        ));
        assert!(matches!(
            bus.register(u64::MAX, 2, "c", Box::new(Scratch([0; 8]))),
            Err(BusError::BadRange { .. })
        ));
        bus.register(0x1008, 8, "adjacent", Box::new(Scratch([0; 8])))
            .unwrap();
    }

    #[test]
    fn unclaimed_and_straddling_accesses_fail() {
        let mut bus = bus();
        assert_eq!(
            bus.read(0x3000, AccessSize::Word),
            Err(BusError::Unclaimed {
                addr: 0x3000,
                size: AccessSize::Word
            })
        );
        assert!(
            bus.read(0x1006, AccessSize::Word).is_err(),
            "crosses the end of the range"
        );
        assert!(bus.read(u64::MAX, AccessSize::Half).is_err());
        let msg = String::from(
            alloc::format!("{}", bus.read(0xfff, AccessSize::Byte).unwrap_err()).as_str(),
        );
        assert_eq!(msg, "no device at 0xfff (1 bytes)");
    }
}
