//! The physical I/O APIC's redirection entries as the hypervisor programs them (the partitions'
//! own view of the chip is `vcpu::irqchip::ioapic`). Each line has a hypervisor vector of its
//! own ([`IoApicLines::vector_of`]: [`FIRST_VECTOR`] + line, above the exceptions and below the
//! timer's; a guest's own vector numbers never meet these, since a device interrupt always
//! arrives in the hypervisor first and reaches the guest as the vector it asked for), delivered
//! fixed, in physical destination mode, to the local APIC of the CPU that runs the vCPU the
//! partition chose; trigger mode, polarity and mask follow the partition's entry. An entry is
//! masked before it is reprogrammed and unmasked last, so the line never fires half-routed.
//!
//! Level-triggered lines: a device holds its line asserted until its driver clears the cause, so
//! an unmasked level entry would fire again as soon as the hypervisor ends the interrupt, long
//! before the guest has run its handler. So the entry is masked when its interrupt is taken,
//! before the end-of-interrupt ([`IoApicLines::hold`]), and unmasked when the guest ends the
//! interrupt in its own virtual APIC ([`IoApicLines::release`]); an edge line needs neither.
//!
//! The chip is reached through [`IoApicHw`] (the image: IOREGSEL/IOWIN at the board's address);
//! what was programmed is kept here, so holding and releasing need no read of the chip.

use core::sync::atomic::{AtomicU32, Ordering};

/// The first line's hypervisor vector.
pub const FIRST_VECTOR: u8 = 0x50;
/// Lines with a vector of their own (0x50..0x70).
pub const VECTORS: u32 = 32;

/// The first redirection register (line n: low word 0x10 + 2n, high word 0x11 + 2n).
const REG_REDIRECTION: u32 = 0x10;
const MASKED: u32 = 1 << 16;
const LEVEL: u32 = 1 << 15;
const ACTIVE_LOW: u32 = 1 << 13;

/// Writes to the chip's indirect registers.
pub trait IoApicHw {
    /// Writes indirect register `reg` (IOREGSEL, then IOWIN) as one access to the pair.
    fn write(&self, reg: u32, value: u32);
}

/// Where a line goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The local APIC ID of the CPU that runs the target vCPU.
    pub apic_id: u32,
    /// Level-triggered (else edge).
    pub level: bool,
    /// Active low (else active high).
    pub active_low: bool,
}

/// The lines of one I/O APIC: what each entry's low word was programmed to, and which level
/// lines are held masked until their guest ends the interrupt.
pub struct IoApicLines {
    /// The chip's lines (the board file's `irqchip.lines`).
    lines: u32,
    entry: [AtomicU32; VECTORS as usize],
    held: AtomicU32,
}

impl IoApicLines {
    /// A chip of `lines` lines (those beyond [`VECTORS`] are never unmasked), all masked.
    pub const fn new(lines: u32) -> Self {
        Self {
            lines,
            entry: [const { AtomicU32::new(MASKED) }; VECTORS as usize],
            held: AtomicU32::new(0),
        }
    }

    /// The hypervisor vector of `line`, if it has one.
    pub fn vector_of(&self, line: u32) -> Option<u8> {
        (line < self.lines && line < VECTORS).then(|| FIRST_VECTOR + line as u8)
    }

    /// The line behind hypervisor vector `vector`, if it is a line's.
    pub fn line_of(&self, vector: u8) -> Option<u32> {
        let line = u32::from(vector.checked_sub(FIRST_VECTOR)?);
        self.vector_of(line).map(|_| line)
    }

    /// Programs `line` to deliver its vector to `to`, or masks it (`None`). A line without a
    /// vector is masked whatever `to` asks; a line the chip does not have is not touched.
    pub fn program(&self, hw: &impl IoApicHw, line: u32, to: Option<Target>) {
        if line >= self.lines {
            return;
        }
        if line >= VECTORS {
            hw.write(REG_REDIRECTION + 2 * line, MASKED);
            return;
        }
        let reg = REG_REDIRECTION + 2 * line;
        // A new route forgets a hold: the guest's EOI of the old one must not unmask it.
        self.entry[line as usize].store(MASKED, Ordering::SeqCst);
        self.held.fetch_and(!(1 << line), Ordering::SeqCst);
        let (Some(vector), Some(t)) = (self.vector_of(line), to) else {
            hw.write(reg, MASKED);
            return;
        };
        let mut low = u32::from(vector); // fixed delivery, physical destination mode
        if t.level {
            low |= LEVEL;
        }
        if t.active_low {
            low |= ACTIVE_LOW;
        }
        hw.write(reg, low | MASKED);
        hw.write(reg + 1, (t.apic_id & 0xff) << 24);
        hw.write(reg, low);
        self.entry[line as usize].store(low, Ordering::SeqCst);
    }

    /// `line`'s interrupt was taken: a level entry that is unmasked is masked until
    /// [`IoApicLines::release`].
    pub fn hold(&self, hw: &impl IoApicHw, line: u32) {
        let Some(e) = self.entry.get(line as usize) else {
            return;
        };
        let low = e.load(Ordering::SeqCst);
        if low & LEVEL != 0 && low & MASKED == 0 {
            self.held.fetch_or(1 << line, Ordering::SeqCst);
            hw.write(REG_REDIRECTION + 2 * line, low | MASKED);
        }
    }

    /// The guest ended `line`'s interrupt: a held entry is unmasked as it was programmed.
    pub fn release(&self, hw: &impl IoApicHw, line: u32) {
        if line >= VECTORS || self.held.fetch_and(!(1 << line), Ordering::SeqCst) & (1 << line) == 0
        {
            return;
        }
        let low = self.entry[line as usize].load(Ordering::SeqCst);
        hw.write(REG_REDIRECTION + 2 * line, low);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use core::cell::RefCell;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    /// The chip: its registers, and every write in order.
    #[derive(Default)]
    struct Chip {
        regs: RefCell<BTreeMap<u32, u32>>,
        writes: RefCell<Vec<(u32, u32)>>,
    }

    impl IoApicHw for Chip {
        fn write(&self, reg: u32, value: u32) {
            self.regs.borrow_mut().insert(reg, value);
            self.writes.borrow_mut().push((reg, value));
        }
    }

    impl Chip {
        fn low(&self, line: u32) -> u32 {
            self.regs.borrow()[&(REG_REDIRECTION + 2 * line)]
        }
        fn take_writes(&self) -> Vec<(u32, u32)> {
            core::mem::take(&mut *self.writes.borrow_mut())
        }
    }

    const LEVEL_TO_CPU3: Target = Target {
        apic_id: 3,
        level: true,
        active_low: true,
    };

    #[test]
    fn an_entry_is_masked_while_it_is_reprogrammed() {
        let (chip, lines) = (Chip::default(), IoApicLines::new(24));
        lines.program(&chip, 5, Some(LEVEL_TO_CPU3));
        let low = 0x55 | LEVEL | ACTIVE_LOW;
        assert_eq!(
            chip.take_writes(),
            [(0x1a, low | MASKED), (0x1b, 3 << 24), (0x1a, low)]
        );
        lines.program(&chip, 5, None);
        assert_eq!(chip.take_writes(), [(0x1a, MASKED)]);
    }

    #[test]
    fn lines_without_a_vector_stay_masked() {
        let (chip, lines) = (Chip::default(), IoApicLines::new(40));
        lines.program(&chip, 32, Some(LEVEL_TO_CPU3));
        assert_eq!(chip.low(32), MASKED);
        // A line the chip does not have: no register is written.
        let small = IoApicLines::new(8);
        chip.take_writes();
        small.program(&chip, 8, Some(LEVEL_TO_CPU3));
        assert!(chip.take_writes().is_empty());
        assert_eq!((small.vector_of(7), small.vector_of(8)), (Some(0x57), None));
        assert_eq!((small.line_of(0x57), small.line_of(0x58)), (Some(7), None));
        assert_eq!(small.line_of(0x20), None);
    }

    #[test]
    fn a_level_line_is_held_until_its_guest_ends_it() {
        let (chip, lines) = (Chip::default(), IoApicLines::new(24));
        lines.program(&chip, 5, Some(LEVEL_TO_CPU3));
        let low = chip.low(5);
        chip.take_writes();
        lines.hold(&chip, 5);
        assert_eq!(chip.low(5), low | MASKED);
        // Held twice is still one hold; one release unmasks it, a second does nothing.
        lines.hold(&chip, 5);
        lines.release(&chip, 5);
        assert_eq!(chip.low(5), low);
        chip.take_writes();
        lines.release(&chip, 5);
        assert!(chip.take_writes().is_empty());
    }

    #[test]
    fn edge_and_masked_lines_are_never_held() {
        let (chip, lines) = (Chip::default(), IoApicLines::new(24));
        let edge = Target {
            level: false,
            ..LEVEL_TO_CPU3
        };
        lines.program(&chip, 2, Some(edge));
        lines.program(&chip, 3, None);
        chip.take_writes();
        lines.hold(&chip, 2);
        lines.hold(&chip, 3);
        lines.release(&chip, 2);
        lines.release(&chip, 3);
        lines.hold(&chip, 99);
        lines.release(&chip, 99);
        assert!(chip.take_writes().is_empty());
    }

    #[test]
    fn a_new_route_forgets_the_hold() {
        let (chip, lines) = (Chip::default(), IoApicLines::new(24));
        lines.program(&chip, 5, Some(LEVEL_TO_CPU3));
        lines.hold(&chip, 5);
        // The partition's run ended and masked the line; the old vector's EOI comes late.
        lines.program(&chip, 5, None);
        chip.take_writes();
        lines.release(&chip, 5);
        assert_eq!(chip.low(5), MASKED);
        assert!(
            chip.take_writes().is_empty(),
            "nothing held, nothing written"
        );
    }
}
