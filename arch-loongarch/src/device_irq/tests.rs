//! The driver against a small model of the two chips: registers as written, plus what QEMU's
//! models do with them that the driver relies on (a line is delivered only while unmasked, to
//! the core its vector's ROUTE byte names, if the vector is enabled; an ISR write clears).

extern crate std;

use super::*;
use std::collections::BTreeMap;
use std::vec::Vec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Iocsr(u64, u64),
    Pic32(u64, u32),
    Pic8(u64, u8),
}

#[derive(Default)]
struct Chips {
    iocsr: BTreeMap<u64, u64>,
    pic32: BTreeMap<u64, u32>,
    pic8: BTreeMap<u64, u8>,
    log: Vec<Op>,
    /// The ISR of the core the driver runs on: vectors 0-63, and 64-255 by 64-bit word.
    isr: u64,
    isr_high: [u64; 3],
}

impl DeviceIrqHw for Chips {
    fn iocsr_read64(&mut self, addr: u64) -> u64 {
        if addr == eiointc::ISR {
            return self.isr;
        }
        if (eiointc::ISR + 8..eiointc::ISR + 32).contains(&addr) {
            return self.isr_high[((addr - eiointc::ISR) / 8 - 1) as usize];
        }
        self.iocsr.get(&addr).copied().unwrap_or(0)
    }
    fn iocsr_write64(&mut self, addr: u64, value: u64) {
        self.log.push(Op::Iocsr(addr, value));
        if addr == eiointc::ISR {
            self.isr &= !value;
        } else if (eiointc::ISR + 8..eiointc::ISR + 32).contains(&addr) {
            self.isr_high[((addr - eiointc::ISR) / 8 - 1) as usize] &= !value;
        } else {
            self.iocsr.insert(addr, value);
        }
    }
    fn pic_write32(&mut self, offset: u64, value: u32) {
        self.log.push(Op::Pic32(offset, value));
        self.pic32.insert(offset, value);
    }
    fn pic_write8(&mut self, offset: u64, value: u8) {
        self.log.push(Op::Pic8(offset, value));
        self.pic8.insert(offset, value);
    }
}

impl Chips {
    fn bits(&self, reg: u64) -> u64 {
        let lo = self.pic32.get(&reg).copied().unwrap_or(0);
        let hi = self.pic32.get(&(reg + 4)).copied().unwrap_or(0);
        u64::from(lo) | u64::from(hi) << 32
    }

    /// The device asserts `line`: the core it reaches, if any (its vector then pends there).
    fn assert_line(&mut self, line: u32, this_core: u32) -> Option<u32> {
        if self.bits(pch_pic::MASK) & 1 << line != 0 {
            return None;
        }
        let vector = *self.pic8.get(&(pch_pic::HTMSI_VECTOR + u64::from(line)))?;
        let enabled = self.iocsr.get(&eiointc::ENABLE).copied().unwrap_or(0);
        if enabled & 1 << vector == 0 {
            return None;
        }
        let word = self.iocsr_read64(eiointc::ROUTE + u64::from(vector & !7));
        let byte = (word >> ((vector & 7) * 8)) as u8;
        let core = byte.trailing_zeros();
        if core == this_core {
            self.isr |= 1 << vector;
        }
        Some(core)
    }
}

fn level_to(core: u32) -> Option<Target> {
    Some(Target {
        core,
        level: true,
        active_low: false,
    })
}

fn edge_to(core: u32) -> Option<Target> {
    Some(Target {
        core,
        level: false,
        active_low: false,
    })
}

fn ready(lines: u32) -> (DeviceLines, Chips) {
    let mut chips = Chips::default();
    chips.iocsr.insert(eiointc::MISC_FUNC, 0x8);
    let mut d = DeviceLines::new(lines);
    d.init(&mut chips);
    (d, chips)
}

#[test]
fn init_masks_every_line_and_points_the_vectors_at_the_host_pin() {
    let (_, chips) = ready(32);
    assert_eq!(chips.bits(pch_pic::MASK) as u32, u32::MAX);
    // EXT_IOI_EN added, the firmware's bit kept.
    assert_eq!(chips.iocsr[&eiointc::MISC_FUNC], 0x8 | eiointc::EXT_IOI_EN);
    // Every group of 32 vectors on IP1 (bit 1 of each byte).
    assert_eq!(chips.iocsr[&eiointc::IPMAP], 0x0202_0202_0202_0202);
    assert_eq!(chips.iocsr[&eiointc::ENABLE], 0xffff_ffff);
    // Vectors 64-255 (MSI, which firmware may have enabled) are no partition's.
    for word in 1..4 {
        assert_eq!(chips.iocsr[&(eiointc::ENABLE + word * 8)], 0);
        assert_eq!(chips.iocsr[&(eiointc::BOUNCE + word * 8)], 0);
    }
    assert_eq!(chips.iocsr[&eiointc::BOUNCE], 0);
}

#[test]
fn a_level_route_is_programmed_masked_and_unmasked_last() {
    let (mut d, mut chips) = ready(32);
    chips.log.clear();
    assert_eq!(d.route(&mut chips, 3, level_to(2)), Ok(()));
    let mask_writes: Vec<_> = chips
        .log
        .iter()
        .enumerate()
        .filter(|(_, op)| matches!(op, Op::Pic32(o, _) if *o == pch_pic::MASK))
        .collect();
    assert_eq!(mask_writes.first().map(|w| w.0), Some(0), "masked first");
    assert_eq!(
        mask_writes.last().map(|w| w.0),
        Some(chips.log.len() - 1),
        "unmasked last"
    );
    assert_eq!(chips.bits(pch_pic::MASK) & 1 << 3, 0);
    assert_eq!(chips.bits(pch_pic::EDGE) & 1 << 3, 0, "level");
    assert_ne!(chips.bits(pch_pic::HTMSI_EN) & 1 << 3, 0);
    assert_eq!(
        chips.pic8[&(pch_pic::HTMSI_VECTOR + 3)],
        3,
        "line n is vector n"
    );
    assert_eq!(chips.pic8[&(pch_pic::ROUTE + 3)], 1);
    // ROUTE byte 3 of the first word: core 2 as a bitmap.
    assert_eq!(chips.iocsr[&eiointc::ROUTE] >> 24 & 0xff, 0b100);
    assert_eq!(chips.assert_line(3, 2), Some(2));
    assert_eq!(chips.isr, 1 << 3);
}

#[test]
fn routes_keep_the_other_vectors_route_bytes() {
    let (mut d, mut chips) = ready(32);
    d.route(&mut chips, 2, level_to(1)).unwrap();
    d.route(&mut chips, 3, level_to(3)).unwrap();
    let word = chips.iocsr[&eiointc::ROUTE];
    assert_eq!(word >> 16 & 0xff, 0b10);
    assert_eq!(word >> 24 & 0xff, 0b1000);
}

#[test]
fn taking_a_level_line_masks_it_until_a_new_route_rearms_it() {
    let (mut d, mut chips) = ready(32);
    d.route(&mut chips, 6, level_to(1)).unwrap();
    chips.assert_line(6, 1);
    assert_eq!(d.take(&mut chips), 1 << 6);
    assert_eq!(chips.isr, 0, "ISR cleared");
    assert!(d.waiting(6));
    // Still asserted, but masked: nothing more arrives.
    assert_eq!(chips.assert_line(6, 1), None);
    assert_eq!(d.take(&mut chips), 0);
    // The owner's view unmasks it again: a new route; still asserted, it arrives again.
    d.route(&mut chips, 6, level_to(1)).unwrap();
    assert!(!d.waiting(6));
    assert_eq!(chips.assert_line(6, 1), Some(1));
    assert_eq!(d.take(&mut chips), 1 << 6);
}

#[test]
fn taking_an_edge_line_clears_its_latch_and_leaves_it_unmasked() {
    let (mut d, mut chips) = ready(32);
    d.route(&mut chips, 5, edge_to(0)).unwrap();
    assert_ne!(chips.bits(pch_pic::EDGE) & 1 << 5, 0);
    chips.assert_line(5, 0);
    chips.log.clear();
    assert_eq!(d.take(&mut chips), 1 << 5);
    assert!(chips.log.contains(&Op::Pic32(pch_pic::CLEAR, 1 << 5)));
    assert!(!d.waiting(5));
    assert_eq!(chips.bits(pch_pic::MASK) & 1 << 5, 0);
    assert_eq!(chips.isr, 0);
}

#[test]
fn unroutable_requests_leave_the_line_masked() {
    let (mut d, mut chips) = ready(32);
    d.route(&mut chips, 3, level_to(1)).unwrap();
    assert_eq!(
        d.route(&mut chips, 3, level_to(ROUTABLE_CORES)),
        Err(RouteError::CoreUnroutable)
    );
    assert_ne!(chips.bits(pch_pic::MASK) & 1 << 3, 0);
    assert_eq!(
        d.route(&mut chips, 32, level_to(0)),
        Err(RouteError::NoSuchLine)
    );
    // Masking (no target) always works.
    d.route(&mut chips, 4, level_to(0)).unwrap();
    d.route(&mut chips, 4, None).unwrap();
    assert_eq!(chips.assert_line(4, 0), None);
}

#[test]
fn lines_above_31_use_the_high_words() {
    let (mut d, mut chips) = ready(64);
    chips.log.clear();
    d.route(
        &mut chips,
        40,
        Some(Target {
            core: 0,
            level: true,
            active_low: true,
        }),
    )
    .unwrap();
    assert!(chips
        .log
        .iter()
        .all(|op| !matches!(op, Op::Pic32(o, _) if *o == pch_pic::MASK)));
    assert_eq!(chips.bits(pch_pic::MASK) & 1 << 40, 0);
    assert_ne!(chips.bits(pch_pic::POL) & 1 << 40, 0, "active low");
    assert_eq!(chips.pic8[&(pch_pic::HTMSI_VECTOR + 40)], 40);
    assert_eq!(chips.iocsr[&(eiointc::ROUTE + 40)] & 0xff, 1);
}

#[test]
fn pending_vectors_beyond_the_lines_are_cleared_not_reported() {
    let (mut d, mut chips) = ready(8);
    chips.isr = 1 << 20 | 1 << 2;
    chips.isr_high = [1 << 3, 0, 1 << 63];
    d.route(&mut chips, 2, edge_to(0)).unwrap();
    assert_eq!(d.take(&mut chips), 1 << 2);
    assert_eq!(chips.isr, 0);
    assert_eq!(chips.isr_high, [0; 3], "stray MSI vectors cleared");
}
