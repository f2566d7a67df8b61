//! The Loongson PCH-PIC (the 7A1000/7A2000 bridge's interrupt controller, which QEMU's LoongArch
//! `virt` machine emulates at 0x1000_0000) as one partition sees it. Registers, at byte offsets
//! in its window (bit or byte n belongs to line n, up to 64 lines):
//!
//! | offset | register | what the view does |
//! |---|---|---|
//! | 0x000 | INT_ID (64 bits) | read-only: ID 7 in bits 31:24, version 1 in 39:32, `lines - 1` in 55:48 |
//! | 0x020 | MASK, one bit per line | owned bits hold what was written (reset 1); others read 1 |
//! | 0x040 | HTMSI_EN, one bit per line | owned bits hold what was written; others read 0 |
//! | 0x060 | EDGE (1 = edge, 0 = level) | as HTMSI_EN |
//! | 0x080 | CLEAR (edge latch, write-only) | reads 0, writes ignored (nothing is latched yet) |
//! | 0x100 + n | ROUTE, one byte per line | owned bytes hold what was written; others read 0 |
//! | 0x200 + n | HTMSI vector, one byte per line | as ROUTE |
//! | 0x3e0 | POL (1 = active low) | as HTMSI_EN |
//!
//! Everything else reads 0 and ignores writes. Accesses of 1, 2, 4 or 8 bytes, naturally aligned.
//!
//! The route byte: on the chip it picks the HyperTransport interrupt output, and the CPU that
//! takes the line is chosen later, in the EIOINTC (IOCSR registers the hypervisor keeps). In this
//! view the route byte is where a partition names its target: a bitmap of its vCPUs (bit k =
//! vCPU k; the lowest set bit is the target, 0 keeps the reset route to vCPU 0), and a byte that
//! names a vCPU the partition does not have is refused. The HTMSI vector byte is stored and
//! reported as the route's vector.
//!
//! Lines a virtual device of the partition drives (a Linux partition's console) are delivered by
//! the view itself, as the chip does: while such a line is asserted, unmasked and has HTMSI on,
//! its vector is sent to the EIOINTC once ([`PchPic::set_level`], [`PchPic::take_sends`]), and
//! again after a mask and unmask if it is still asserted (what Linux's level handler relies on).

use super::{bitmap_target, Ownership, Refusal, Route, RouteEvent};
use crate::{AccessSize, DeviceError};
use alloc::vec;
use alloc::vec::Vec;

/// INT_ID's offset.
pub const INT_ID: u64 = 0x000;
/// MASK's offset.
pub const MASK: u64 = 0x020;
/// HTMSI_EN's offset.
pub const HTMSI_EN: u64 = 0x040;
/// EDGE's offset.
pub const EDGE: u64 = 0x060;
/// CLEAR's offset.
pub const CLEAR: u64 = 0x080;
/// The first ROUTE byte (line 0).
pub const ROUTE: u64 = 0x100;
/// The first HTMSI vector byte (line 0).
pub const HTMSI_VECTOR: u64 = 0x200;
/// POL's offset.
pub const POL: u64 = 0x3e0;
/// The ID INT_ID reports.
pub const ID: u64 = 7;
/// The version INT_ID reports.
pub const VERSION: u64 = 1;

/// The per-line bit registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bits {
    Mask,
    HtmsiEn,
    Edge,
    Pol,
}

/// One partition's view of a PCH-PIC.
#[derive(Clone, Debug)]
pub struct PchPic {
    lines: u32,
    mask: u64,
    htmsi_en: u64,
    edge: u64,
    pol: u64,
    route: Vec<u8>,
    vector: Vec<u8>,
    /// Levels of the lines virtual devices drive (1: asserted).
    levels: u64,
    /// Lines whose vector was sent and whose gated level has not fallen since.
    sent: u64,
}

impl PchPic {
    /// A view of a PCH-PIC with `lines` inputs (1..=64), all masked and unrouted.
    pub fn new(lines: u32) -> Self {
        let lines = lines.clamp(1, 64);
        Self {
            lines,
            mask: u64::MAX,
            htmsi_en: 0,
            edge: 0,
            pol: 0,
            route: vec![0; lines as usize],
            vector: vec![0; lines as usize],
            levels: 0,
            sent: 0,
        }
    }

    /// A virtual device drives owned line `line` at `level`; returns the vectors to send now.
    pub fn set_level(&mut self, line: u32, level: bool, own: &Ownership) -> Vec<u8> {
        if line < self.lines && own.owns(line) {
            if level {
                self.levels |= 1 << line;
            } else {
                self.levels &= !(1 << line);
            }
        }
        self.take_sends(own)
    }

    /// The vectors of lines whose gated level (asserted, unmasked, HTMSI on) rose since the last
    /// call: each is sent once per rise. Call after every write to the view.
    pub fn take_sends(&mut self, own: &Ownership) -> Vec<u8> {
        let gated = self.levels & !self.mask & self.htmsi_en & self.owned(own);
        let rising = gated & !self.sent;
        self.sent = gated;
        (0..self.lines)
            .filter(|l| rising & 1 << l != 0)
            .map(|l| self.vector[l as usize])
            .collect()
    }

    /// The bit of every owned line.
    fn owned(&self, own: &Ownership) -> u64 {
        own.lines
            .iter()
            .filter(|&&l| l < self.lines)
            .fold(0, |m, &l| m | 1 << l)
    }

    fn bits(&self, r: Bits) -> u64 {
        match r {
            Bits::Mask => self.mask,
            Bits::HtmsiEn => self.htmsi_en,
            Bits::Edge => self.edge,
            Bits::Pol => self.pol,
        }
    }

    fn bits_mut(&mut self, r: Bits) -> &mut u64 {
        match r {
            Bits::Mask => &mut self.mask,
            Bits::HtmsiEn => &mut self.htmsi_en,
            Bits::Edge => &mut self.edge,
            Bits::Pol => &mut self.pol,
        }
    }

    /// A bit register as the partition reads it: its own bits as written, others at their
    /// "masked, unrouted" value (1 for MASK, 0 elsewhere).
    fn bits_view(&self, r: Bits, own: &Ownership) -> u64 {
        let owned = self.owned(own);
        let foreign = if r == Bits::Mask { !owned } else { 0 };
        (self.bits(r) & owned) | foreign
    }

    /// The accepted route of `line`, if it is one of the partition's lines.
    pub fn route(&self, line: u32, own: &Ownership) -> Option<Route> {
        if line >= self.lines || !own.owns(line) {
            return None;
        }
        let i = line as usize;
        Some(Route {
            line,
            // Only route bytes that passed `bitmap_target` are ever stored.
            vcpu: bitmap_target(self.route[i].into(), own.vcpus).ok()?,
            vector: self.vector[i],
            masked: self.mask & 1 << line != 0,
            level: self.edge & 1 << line == 0,
            active_low: self.pol & 1 << line != 0,
        })
    }

    /// The register holding byte `offset`, and the byte's index in it.
    fn decode(offset: u64) -> Option<(Reg, u64)> {
        let bits = |r, base: u64| Some((Reg::Bits(r), offset - base));
        match offset {
            0x000..=0x007 => Some((Reg::Id, offset)),
            0x020..=0x027 => bits(Bits::Mask, MASK),
            0x040..=0x047 => bits(Bits::HtmsiEn, HTMSI_EN),
            0x060..=0x067 => bits(Bits::Edge, EDGE),
            0x3e0..=0x3e7 => bits(Bits::Pol, POL),
            0x100..=0x1ff => Some((Reg::Route, offset - ROUTE)),
            0x200..=0x2ff => Some((Reg::Vector, offset - HTMSI_VECTOR)),
            _ => None,
        }
    }

    /// Byte `offset` as the partition reads it.
    fn read_byte(&self, offset: u64, own: &Ownership) -> u8 {
        let byte_of = |v: u64, i: u64| (v >> (8 * i)) as u8;
        match Self::decode(offset) {
            Some((Reg::Id, i)) => {
                let id = ID << 24 | VERSION << 32 | u64::from(self.lines - 1) << 48;
                byte_of(id, i)
            }
            Some((Reg::Bits(r), i)) => byte_of(self.bits_view(r, own), i),
            Some((Reg::Route, l)) if self.owns(l, own) => self.route[l as usize],
            Some((Reg::Vector, l)) if self.owns(l, own) => self.vector[l as usize],
            _ => 0,
        }
    }

    fn owns(&self, line: u64, own: &Ownership) -> bool {
        line < u64::from(self.lines) && own.owns(line as u32)
    }

    /// A guest read at `offset` in the window.
    pub fn read(&self, offset: u64, size: AccessSize, own: &Ownership) -> Result<u64, DeviceError> {
        let n = size.bytes();
        if !offset.is_multiple_of(n) {
            return Err(DeviceError::BadWidth);
        }
        Ok((0..n).fold(0, |v, i| {
            v | u64::from(self.read_byte(offset + i, own)) << (8 * i)
        }))
    }

    /// A guest write at `offset`; every line whose MASK, EDGE or POL bit, ROUTE byte or HTMSI
    /// vector the write would change reports the decision to `report`, once per line (a write
    /// that changes nothing reports nothing).
    pub fn write(
        &mut self,
        offset: u64,
        size: AccessSize,
        value: u64,
        own: &Ownership,
        report: &mut dyn FnMut(RouteEvent),
    ) -> Result<(), DeviceError> {
        let n = size.bytes();
        if !offset.is_multiple_of(n) {
            return Err(DeviceError::BadWidth);
        }
        match Self::decode(offset) {
            Some((Reg::Bits(r), i)) => {
                // A naturally aligned access never crosses a 64-bit register.
                let lanes = size.mask() << (8 * i);
                let value = (value << (8 * i)) & lanes;
                self.write_bits(r, lanes, value, own, report);
            }
            Some((reg @ (Reg::Route | Reg::Vector), first)) => {
                for i in 0..n {
                    let line = first + i;
                    let byte = (value >> (8 * i)) as u8;
                    self.write_line_byte(reg, line, byte, own, report);
                }
            }
            // INT_ID is read-only; CLEAR and the rest have nothing to keep.
            _ => {}
        }
        Ok(())
    }

    /// Writes the bits `lanes` of bit register `r` with `value`.
    fn write_bits(
        &mut self,
        r: Bits,
        lanes: u64,
        value: u64,
        own: &Ownership,
        report: &mut dyn FnMut(RouteEvent),
    ) {
        let changed = (self.bits_view(r, own) ^ value) & lanes;
        let owned = self.owned(own);
        for line in (0..self.lines).filter(|l| changed & 1 << l != 0) {
            if owned & 1 << line == 0 {
                report(RouteEvent::Refused {
                    line,
                    why: Refusal::NotOwned,
                });
                continue;
            }
            *self.bits_mut(r) ^= 1 << line;
            // Trigger mode and polarity are part of the route the physical line is programmed
            // with, so a change of them is reported like a change of mask; HTMSI_EN is not.
            if r != Bits::HtmsiEn {
                if let Some(route) = self.route(line, own) {
                    report(RouteEvent::Accepted(route));
                }
            }
        }
    }

    /// Writes line `line`'s ROUTE or HTMSI vector byte.
    fn write_line_byte(
        &mut self,
        reg: Reg,
        line: u64,
        byte: u8,
        own: &Ownership,
        report: &mut dyn FnMut(RouteEvent),
    ) {
        if line >= u64::from(self.lines) {
            return;
        }
        let i = line as usize;
        let line = line as u32;
        let owned = own.owns(line);
        let old = if !owned {
            0
        } else if reg == Reg::Route {
            self.route[i]
        } else {
            self.vector[i]
        };
        if byte == old {
            return;
        }
        if !owned {
            return report(RouteEvent::Refused {
                line,
                why: Refusal::NotOwned,
            });
        }
        if reg == Reg::Route {
            if let Err(why) = bitmap_target(byte.into(), own.vcpus) {
                return report(RouteEvent::Refused { line, why });
            }
            self.route[i] = byte;
        } else {
            self.vector[i] = byte;
        }
        if let Some(route) = self.route(line, own) {
            report(RouteEvent::Accepted(route));
        }
    }
}

/// What a byte offset of the window belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reg {
    Id,
    Bits(Bits),
    Route,
    Vector,
}
