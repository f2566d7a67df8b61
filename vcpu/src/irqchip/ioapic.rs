//! The x86 I/O APIC as one partition sees it. Two 32-bit registers in its MMIO window select and
//! reach the indirect registers: IOREGSEL at +0x00 (the index) and IOWIN at +0x10 (the data).
//! Indirect registers: 0x00 ID (bits 27:24), 0x01 version (0x20, the highest redirection entry
//! `lines - 1` in bits 23:16), 0x02 arbitration (reads as the ID), and the redirection table:
//! 0x10 + 2n and 0x11 + 2n, the low and high dwords of line n's entry (vector 7:0, delivery mode
//! 10:8, destination mode 11, polarity 13, trigger mode 15, mask 16, destination 63:56).
//!
//! The destination is a vCPU of the partition: in physical mode the vCPU index (a partition's
//! vCPU k has APIC ID k in its own view), in logical mode a bitmap whose bit k is vCPU k (the
//! lowest set bit is the target). Only fixed and lowest-priority delivery are accepted. An entry is
//! checked when it is unmasked (or written while unmasked): a guest rewrites an entry one dword
//! at a time, so a masked entry may hold a half-written destination. Owned lines read back what
//! was written; other lines read as masked (0x10000, destination 0) and keep that (see the
//! module `super` for the rule).
//! Anything else in the window reads 0 and ignores writes; only 32-bit accesses are valid.

use super::{bitmap_target, Ownership, Refusal, Route, RouteEvent};
use crate::{AccessSize, DeviceError};
use alloc::vec;
use alloc::vec::Vec;

/// IOREGSEL's offset in the window.
pub const IOREGSEL: u64 = 0x00;
/// IOWIN's offset in the window.
pub const IOWIN: u64 = 0x10;
/// Indirect register: the I/O APIC ID.
pub const REG_ID: u32 = 0x00;
/// Indirect register: version and highest redirection entry.
pub const REG_VERSION: u32 = 0x01;
/// Indirect register: arbitration ID.
pub const REG_ARBITRATION: u32 = 0x02;
/// Indirect register: the first redirection entry's low dword.
pub const REG_REDIRECTION: u32 = 0x10;
/// The version an 82093AA-compatible I/O APIC reports.
pub const VERSION: u32 = 0x20;

/// Entry bit 16: masked.
pub const MASKED: u64 = 1 << 16;
const LEVEL: u64 = 1 << 15;
const ACTIVE_LOW: u64 = 1 << 13;
const LOGICAL: u64 = 1 << 11;
/// What an entry holds at reset, and what another partition's entry always reads as.
pub const RESET_ENTRY: u64 = MASKED;
/// Bits of an entry a guest can set (the rest are read-only status or reserved).
const WRITABLE: u64 = 0xff00_0000_0001_afff;

/// One partition's view of an I/O APIC.
#[derive(Clone, Debug)]
pub struct IoApic {
    select: u32,
    id: u32,
    entries: Vec<u64>,
}

impl IoApic {
    /// A view of an I/O APIC with `lines` redirection entries (1..=256), all masked.
    pub fn new(lines: u32) -> Self {
        let lines = lines.clamp(1, 256);
        Self {
            select: 0,
            id: 0,
            entries: vec![RESET_ENTRY; lines as usize],
        }
    }

    /// How many lines (redirection entries) it has.
    pub fn lines(&self) -> u32 {
        self.entries.len() as u32
    }

    /// The entry of `line` as the partition wrote it, if the line is one of its own.
    pub fn entry(&self, line: u32, own: &Ownership) -> Option<u64> {
        own.owns(line)
            .then(|| self.entries.get(line as usize).copied())
            .flatten()
    }

    /// The accepted route of `line`, if it is one of the partition's lines (and, while it is
    /// masked, names a vCPU it has).
    pub fn route(&self, line: u32, own: &Ownership) -> Option<Route> {
        // An unmasked entry was checked when it was written; a masked one may not decode.
        decode_route(line, self.entry(line, own)?, own.vcpus).ok()
    }

    /// A guest read at `offset` in the window.
    pub fn read(&self, offset: u64, size: AccessSize, own: &Ownership) -> Result<u64, DeviceError> {
        if size != AccessSize::Word {
            return Err(DeviceError::BadWidth);
        }
        Ok(match offset {
            IOREGSEL => u64::from(self.select),
            IOWIN => u64::from(self.indirect(self.select, own)),
            _ => 0,
        })
    }

    /// The indirect register `reg` as the partition reads it.
    fn indirect(&self, reg: u32, own: &Ownership) -> u32 {
        match reg {
            REG_ID | REG_ARBITRATION => self.id << 24,
            REG_VERSION => VERSION | (self.lines() - 1) << 16,
            r if r >= REG_REDIRECTION => {
                let line = (r - REG_REDIRECTION) / 2;
                if line >= self.lines() {
                    return 0;
                }
                let e = self.entry(line, own).unwrap_or(RESET_ENTRY);
                if r & 1 == 0 {
                    e as u32
                } else {
                    (e >> 32) as u32
                }
            }
            _ => 0,
        }
    }

    /// A guest write at `offset`; a write to a redirection entry reports its decision to
    /// `report` (a write that changes nothing reports nothing).
    pub fn write(
        &mut self,
        offset: u64,
        size: AccessSize,
        value: u64,
        own: &Ownership,
        report: &mut dyn FnMut(RouteEvent),
    ) -> Result<(), DeviceError> {
        if size != AccessSize::Word {
            return Err(DeviceError::BadWidth);
        }
        let value = value as u32;
        match offset {
            IOREGSEL => self.select = value & 0xff,
            IOWIN => match self.select {
                REG_ID => self.id = (value >> 24) & 0xf,
                r if r >= REG_REDIRECTION && (r - REG_REDIRECTION) / 2 < self.lines() => {
                    self.write_entry((r - REG_REDIRECTION) / 2, r & 1 == 1, value, own, report)
                }
                _ => {}
            },
            _ => {}
        }
        Ok(())
    }

    /// Writes one dword of line `line`'s entry (the high one if `high`), if the partition may.
    fn write_entry(
        &mut self,
        line: u32,
        high: bool,
        value: u32,
        own: &Ownership,
        report: &mut dyn FnMut(RouteEvent),
    ) {
        let old = self.entry(line, own).unwrap_or(RESET_ENTRY);
        let new = if high {
            (old & 0xffff_ffff) | (u64::from(value) << 32)
        } else {
            (old & !0xffff_ffff) | u64::from(value)
        };
        let new = (new & WRITABLE) | (old & !WRITABLE);
        if new == old {
            return;
        }
        if !own.owns(line) {
            return report(RouteEvent::Refused {
                line,
                why: Refusal::NotOwned,
            });
        }
        match decode_route(line, new, own.vcpus) {
            Ok(route) => {
                self.entries[line as usize] = new;
                report(RouteEvent::Accepted(route));
            }
            // A masked entry delivers nothing, and a guest rewrites an entry one dword at a time
            // (destination first), so it may pass through states it never unmasks.
            Err(_) if new & MASKED != 0 => {
                self.entries[line as usize] = new;
                // If the entry was unmasked, the line was delivering: the caller must still hear
                // that it is masked now, or the physical line stays open. The old entry decoded
                // (it was checked when unmasked), so its target stands in.
                if old & MASKED == 0 {
                    if let Ok(route) = decode_route(line, old, own.vcpus) {
                        report(RouteEvent::Accepted(Route {
                            masked: true,
                            ..route
                        }));
                    }
                }
            }
            Err(why) => report(RouteEvent::Refused { line, why }),
        }
    }
}

/// The route entry `e` of `line` asks for, or why it may not have it.
fn decode_route(line: u32, e: u64, vcpus: u32) -> Result<Route, Refusal> {
    let mode = ((e >> 8) & 7) as u8;
    if mode > 1 {
        return Err(Refusal::DeliveryMode(mode));
    }
    let dest = e >> 56;
    let vcpu = if e & LOGICAL != 0 {
        bitmap_target(dest, vcpus)?
    } else if dest < u64::from(vcpus) {
        dest as u32
    } else {
        return Err(Refusal::NoSuchVcpu(dest as u32));
    };
    Ok(Route {
        line,
        vcpu,
        vector: e as u8,
        masked: e & MASKED != 0,
        level: e & LEVEL != 0,
        active_low: e & ACTIVE_LOW != 0,
    })
}
