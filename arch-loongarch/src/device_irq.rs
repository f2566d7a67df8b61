//! The physical interrupt path of partitions' device lines on a Loongson 3A5000 + 7A bridge
//! (and QEMU's LoongArch `virt`): PCH-PIC line → EIOINTC vector → a CPU's hardware line. The
//! hypervisor keeps both chips; this driver programs them only from routes a partition's views
//! accepted, so a line reaches nothing but a CPU of its owner. Both backends share it: neither
//! passes a CPU pin to a guest, so every device interrupt is taken by the hypervisor on the CPU
//! the line was routed to, and raised in the partition's views (LVZ: through its EIOINTC view and
//! GINTC.HWIS; deprivileged: as an upcall).
//!
//! The plan, in the chips' own terms:
//! * line n uses EIOINTC vector n (HTMSI vector byte n = n), so a pending vector names its line;
//! * every vector group goes to the CPU pin [`HOST_PIN`] (IPMAP), the pin Linux's EIOINTC driver
//!   uses on real boards; a route names its core in the vector's ROUTE byte (node 0, bitmap);
//! * a line is masked in the PCH-PIC before it is reprogrammed and unmasked last;
//! * taking a level-triggered line masks it until its owner re-arms it (its view unmasks the line
//!   again, which arrives here as a new route): the device keeps asserting it until the guest
//!   clears the cause, and an unmasked asserted line would interrupt again at once. Unmasking a
//!   line that is still asserted sends it again, as Linux's mask-handle-unmask flow expects;
//! * taking an edge-triggered line clears its PCH-PIC latch (CLEAR), as Linux's edge ack does.
//!
//! Registers come from the view models (`vcpu::irqchip::{pch_pic, eiointc}`), which name the same
//! layout for a partition. EIOINTC registers are reached as 64-bit IOCSR words, PCH-PIC bit
//! registers as 32-bit MMIO words and its per-line bytes as bytes (QEMU refuses other sizes).

use vcpu::irqchip::{eiointc, pch_pic};

/// The CPU hardware line EIOINTC raises for device interrupts (HWI1, ESTAT.IS bit 3).
pub const HOST_PIN: u32 = 1;
/// ESTAT.IS bit of [`HOST_PIN`].
pub const HOST_PIN_IS: u32 = 1 << (HOST_PIN + 2);
/// Cores an EIOINTC ROUTE byte can name on node 0 (bits 3:0 are a core bitmap).
pub const ROUTABLE_CORES: u32 = 4;
/// The most lines this driver handles: the first 64 EIOINTC vectors.
pub const MAX_LINES: u32 = 64;
/// The route byte every line gets (Linux's value: HyperTransport interrupt output 0).
const PIC_ROUTE_BYTE: u8 = 1;
/// 64-bit words of the EIOINTC's per-vector bit registers (256 vectors).
const VECTOR_WORDS: u64 = 4;

/// The chips as this driver reaches them.
pub trait DeviceIrqHw {
    /// Reads the 64-bit IOCSR word at `addr` (EIOINTC, MISC_FUNC).
    fn iocsr_read64(&mut self, addr: u64) -> u64;
    /// Writes the 64-bit IOCSR word at `addr`.
    fn iocsr_write64(&mut self, addr: u64, value: u64);
    /// Writes the PCH-PIC's 32-bit register at byte `offset` of its window.
    fn pic_write32(&mut self, offset: u64, value: u32);
    /// Writes the PCH-PIC's byte register at `offset`.
    fn pic_write8(&mut self, offset: u64, value: u8);
}

/// Where and how a routed line is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The core (node 0) that takes the line.
    pub core: u32,
    /// Level-triggered (else edge).
    pub level: bool,
    /// Active low (else high).
    pub active_low: bool,
}

/// Why a route was not programmed (the line stays masked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// The line is beyond the controller's (or this driver's) lines.
    NoSuchLine,
    /// The core cannot be named in an EIOINTC route byte.
    CoreUnroutable,
}

/// The two chips' state this driver keeps: what it wrote, so no register is read back.
#[derive(Clone, Debug)]
pub struct DeviceLines {
    lines: u32,
    masked: u64,
    edge: u64,
    active_low: u64,
    /// Lines taken while level-triggered: masked until re-armed.
    level: u64,
}

impl DeviceLines {
    /// The driver for a PCH-PIC with `lines` lines (at most [`MAX_LINES`] are handled).
    pub fn new(lines: u32) -> Self {
        Self {
            lines: lines.min(MAX_LINES),
            masked: u64::MAX,
            edge: 0,
            active_low: 0,
            level: 0,
        }
    }

    fn all(&self) -> u64 {
        if self.lines >= 64 {
            u64::MAX
        } else {
            (1 << self.lines) - 1
        }
    }

    /// Puts both chips in the driver's plan: every line masked, EIOINTC on (MISC_FUNC's
    /// EXT_IOI_EN, other bits kept), every vector group on [`HOST_PIN`], the lines' vectors
    /// enabled and every other vector disabled (firmware may have enabled MSI vectors, which no
    /// partition is given), none bounced. Called once, before any route.
    pub fn init<H: DeviceIrqHw>(&mut self, hw: &mut H) {
        self.masked = u64::MAX;
        self.write_bits(hw, pch_pic::MASK, self.masked, u64::MAX);
        let misc = hw.iocsr_read64(eiointc::MISC_FUNC);
        hw.iocsr_write64(eiointc::MISC_FUNC, misc | eiointc::EXT_IOI_EN);
        let pin = 1u64 << HOST_PIN;
        hw.iocsr_write64(eiointc::IPMAP, pin * 0x0101_0101_0101_0101);
        for word in 0..VECTOR_WORDS {
            let enable = if word == 0 { self.all() } else { 0 };
            hw.iocsr_write64(eiointc::ENABLE + word * 8, enable);
            hw.iocsr_write64(eiointc::BOUNCE + word * 8, 0);
        }
    }

    /// Programs line `line`: to `target`, or masked (`None`). A route that cannot be programmed
    /// leaves the line masked.
    pub fn route<H: DeviceIrqHw>(
        &mut self,
        hw: &mut H,
        line: u32,
        target: Option<Target>,
    ) -> Result<(), RouteError> {
        if line >= self.lines {
            return Err(RouteError::NoSuchLine);
        }
        let bit = 1u64 << line;
        self.set(hw, pch_pic::MASK, Bit::Masked, bit, true);
        self.level &= !bit;
        let Some(t) = target else {
            return Ok(());
        };
        if t.core >= ROUTABLE_CORES {
            return Err(RouteError::CoreUnroutable);
        }
        self.set(hw, pch_pic::EDGE, Bit::Edge, bit, !t.level);
        self.set(hw, pch_pic::POL, Bit::ActiveLow, bit, t.active_low);
        // HTMSI_EN is not part of the cached state: every routed line has it.
        self.write_bits(hw, pch_pic::HTMSI_EN, self.all(), bit);
        hw.pic_write8(pch_pic::ROUTE + u64::from(line), PIC_ROUTE_BYTE);
        hw.pic_write8(pch_pic::HTMSI_VECTOR + u64::from(line), line as u8);
        let word = eiointc::ROUTE + u64::from(line & !7);
        let shift = (line & 7) * 8;
        let old = hw.iocsr_read64(word);
        let byte = 1u64 << t.core;
        hw.iocsr_write64(word, old & !(0xff << shift) | byte << shift);
        if !t.level {
            // A latch left from an earlier edge would send the line at once.
            self.write_bits(hw, pch_pic::CLEAR, bit, bit);
        }
        self.set(hw, pch_pic::MASK, Bit::Masked, bit, false);
        Ok(())
    }

    /// The lines pending on the calling core (its EIOINTC ISR), acknowledged: level lines are
    /// masked until re-armed by a new route, edge lines have their latch cleared, and the ISR
    /// bits are written back to clear them. Bit n of the result is line n.
    pub fn take<H: DeviceIrqHw>(&mut self, hw: &mut H) -> u64 {
        // Vectors beyond the lines are no one's (left pending from before `init`): cleared too,
        // so they cannot hold the pin.
        for word in 1..VECTOR_WORDS {
            let stray = hw.iocsr_read64(eiointc::ISR + word * 8);
            if stray != 0 {
                hw.iocsr_write64(eiointc::ISR + word * 8, stray);
            }
        }
        let pending = hw.iocsr_read64(eiointc::ISR);
        let lines = pending & self.all();
        let level = lines & !self.edge;
        let edge = lines & self.edge;
        if level != 0 {
            self.masked |= level;
            self.level |= level;
            self.write_bits(hw, pch_pic::MASK, self.masked, level);
        }
        if edge != 0 {
            self.write_bits(hw, pch_pic::CLEAR, edge, edge);
        }
        if pending != 0 {
            hw.iocsr_write64(eiointc::ISR, pending);
        }
        lines
    }

    /// Whether `line` was taken level-triggered and waits to be re-armed.
    pub fn waiting(&self, line: u32) -> bool {
        line < 64 && self.level & 1 << line != 0
    }

    fn set<H: DeviceIrqHw>(&mut self, hw: &mut H, reg: u64, which: Bit, bit: u64, on: bool) {
        let field = match which {
            Bit::Masked => &mut self.masked,
            Bit::Edge => &mut self.edge,
            Bit::ActiveLow => &mut self.active_low,
        };
        if on {
            *field |= bit;
        } else {
            *field &= !bit;
        }
        let value = *field;
        self.write_bits(hw, reg, value, bit);
    }

    /// Writes the 32-bit halves of bit register `reg` that hold a bit of `touched`, from `value`.
    fn write_bits<H: DeviceIrqHw>(&self, hw: &mut H, reg: u64, value: u64, touched: u64) {
        if touched as u32 != 0 {
            hw.pic_write32(reg, value as u32);
        }
        if touched >> 32 != 0 && self.lines > 32 {
            hw.pic_write32(reg + 4, (value >> 32) as u32);
        }
    }
}

/// The cached PCH-PIC bit registers.
#[derive(Clone, Copy)]
enum Bit {
    Masked,
    Edge,
    ActiveLow,
}

#[cfg(test)]
mod tests;
