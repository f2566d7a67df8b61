//! The register model of a 16550A UART as a partition's console: what an unmodified guest driver
//! (Linux's 8250, a firmware's polled writer) reads and writes, with the interrupt output a PC
//! wires to its interrupt controller. The transmitter is instant: a byte written to THR is handed
//! to the caller at once and THR is empty again, so the "transmitter empty" interrupt follows
//! every write while the guest enables it. The receiver is a bounded FIFO the hypervisor fills
//! from its own console; a byte that finds it full is dropped and counted as an overrun, as the
//! chip does. No modem lines exist: outside loopback the modem status says a terminal is
//! connected (DCD, DSR, CTS), which is what a driver waits for before it sends.
//!
//! The model is pure state with no allocation, so one value per partition serves every vCPU
//! (behind the caller's lock), and the interrupt output is a level the caller samples after each
//! access ([`Uart16550::interrupt`]) to find the rising edge an edge-triggered route needs.

/// The 16550's register layout (offsets and bits), shared with drivers of a real one (the
/// hypervisor's console).
pub mod reg {
    /// Receive buffer (read) / transmit holding (write); the divisor's low byte under DLAB.
    pub const RBR_THR: u64 = 0;
    /// Interrupt enable; the divisor's high byte under DLAB.
    pub const IER: u64 = 1;
    /// Interrupt identification (read) / FIFO control (write).
    pub const IIR_FCR: u64 = 2;
    /// Line control.
    pub const LCR: u64 = 3;
    /// Modem control.
    pub const MCR: u64 = 4;
    /// Line status.
    pub const LSR: u64 = 5;
    /// Modem status.
    pub const MSR: u64 = 6;
    /// Scratch.
    pub const SCR: u64 = 7;

    /// IER: received data, THR empty.
    pub const IER_RDI: u8 = 1 << 0;
    pub const IER_THRI: u8 = 1 << 1;
    /// FCR: enable the FIFOs, clear the receive FIFO.
    pub const FCR_ENABLE: u8 = 1 << 0;
    pub const FCR_CLEAR_RX: u8 = 1 << 1;
    /// LCR bit 7 switches offsets 0 and 1 to the divisor latch.
    pub const LCR_DLAB: u8 = 0x80;
    /// MCR: OUT2 (a PC gates the interrupt output with it), loopback.
    pub const MCR_OUT2: u8 = 1 << 3;
    pub const MCR_LOOP: u8 = 1 << 4;
    /// LSR: data ready, overrun, THR empty, transmitter empty.
    pub const LSR_DR: u8 = 1 << 0;
    pub const LSR_OE: u8 = 1 << 1;
    pub const LSR_THRE: u8 = 1 << 5;
    pub const LSR_TEMT: u8 = 1 << 6;
}

use reg::*;

const IER_MASK: u8 = 0x0f;
/// IIR values: no interrupt, THR empty, received data; FIFOs enabled in bits 7:6.
const IIR_NONE: u8 = 0x01;
const IIR_THRE: u8 = 0x02;
const IIR_RDA: u8 = 0x04;
const IIR_FIFO: u8 = 0xc0;
const MCR_MASK: u8 = 0x1f;

/// MSR outside loopback: CTS, DSR and DCD asserted (a connected terminal).
const MSR_CONNECTED: u8 = 0xb0;

/// The receive FIFO's depth: larger than the chip's 16 bytes so a pasted line survives a guest
/// that reads in bursts, small enough to keep the model a plain value.
pub const RX_DEPTH: usize = 256;

/// One 16550A.
#[derive(Clone, Debug)]
pub struct Uart16550 {
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    divisor: u16,
    fifo: bool,
    /// The THR-empty interrupt is pending (set when THR empties with THRI on, cleared by
    /// reading it in IIR or by the next write to THR).
    thre: bool,
    overrun: bool,
    rx: [u8; RX_DEPTH],
    rx_head: usize,
    rx_len: usize,
    /// Bytes dropped because the receive FIFO was full.
    pub dropped: u64,
}

impl Default for Uart16550 {
    fn default() -> Self {
        Self::new()
    }
}

impl Uart16550 {
    /// The chip after reset: interrupts off, 115200 baud divisor, FIFOs off, nothing received.
    pub const fn new() -> Self {
        Self {
            ier: 0,
            lcr: 0,
            mcr: 0,
            scr: 0,
            divisor: 1,
            fifo: false,
            thre: false,
            overrun: false,
            rx: [0; RX_DEPTH],
            rx_head: 0,
            rx_len: 0,
            dropped: 0,
        }
    }

    fn dlab(&self) -> bool {
        self.lcr & LCR_DLAB != 0
    }

    fn loopback(&self) -> bool {
        self.mcr & MCR_LOOP != 0
    }

    /// The interrupt the chip identifies now, by priority (IIR bits 3:0).
    fn identified(&self) -> u8 {
        if self.ier & IER_RDI != 0 && self.rx_len != 0 {
            IIR_RDA
        } else if self.ier & IER_THRI != 0 && self.thre {
            IIR_THRE
        } else {
            IIR_NONE
        }
    }

    /// The level of the interrupt output as a PC's board routes it: asserted while the chip
    /// identifies an interrupt and the guest set OUT2 (a PC's UART reaches its interrupt
    /// controller only through OUT2). Loopback keeps it internal.
    pub fn interrupt(&self) -> bool {
        self.identified() != IIR_NONE && self.mcr & MCR_OUT2 != 0 && !self.loopback()
    }

    /// Puts a received byte in the FIFO; false (and counted) if the FIFO was full.
    pub fn receive(&mut self, byte: u8) -> bool {
        if self.rx_len == RX_DEPTH {
            self.overrun = true;
            self.dropped += 1;
            return false;
        }
        self.rx[(self.rx_head + self.rx_len) % RX_DEPTH] = byte;
        self.rx_len += 1;
        true
    }

    /// Room left in the receive FIFO.
    pub fn rx_room(&self) -> usize {
        RX_DEPTH - self.rx_len
    }

    fn pop(&mut self) -> u8 {
        if self.rx_len == 0 {
            return 0;
        }
        let b = self.rx[self.rx_head];
        self.rx_head = (self.rx_head + 1) % RX_DEPTH;
        self.rx_len -= 1;
        b
    }

    /// A guest read of register `offset` (0-7). Reads have effects: RBR takes a byte, IIR
    /// acknowledges a THR-empty interrupt, LSR clears the overrun flag.
    pub fn read(&mut self, offset: u64) -> u8 {
        match offset {
            RBR_THR if self.dlab() => self.divisor as u8,
            RBR_THR => self.pop(),
            IER if self.dlab() => (self.divisor >> 8) as u8,
            IER => self.ier,
            IIR_FCR => {
                let id = self.identified();
                if id == IIR_THRE {
                    self.thre = false;
                }
                id | if self.fifo { IIR_FIFO } else { 0 }
            }
            LCR => self.lcr,
            MCR => self.mcr,
            LSR => {
                let mut v = LSR_THRE | LSR_TEMT;
                if self.rx_len != 0 {
                    v |= LSR_DR;
                }
                if core::mem::take(&mut self.overrun) {
                    v |= LSR_OE;
                }
                v
            }
            MSR if self.loopback() => {
                // Loopback wires DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
                let m = self.mcr;
                ((m & 0x2) << 3) | ((m & 0x1) << 5) | ((m & 0x4) << 4) | ((m & 0x8) << 4)
            }
            MSR => MSR_CONNECTED,
            SCR => self.scr,
            _ => 0xff,
        }
    }

    /// A guest write of `value` to register `offset` (0-7); returns the byte transmitted, if
    /// the write sent one.
    pub fn write(&mut self, offset: u64, value: u8) -> Option<u8> {
        match offset {
            RBR_THR if self.dlab() => self.divisor = (self.divisor & 0xff00) | u16::from(value),
            RBR_THR => {
                // The byte leaves at once and THR is empty again.
                self.thre = true;
                if self.loopback() {
                    self.receive(value);
                    return None;
                }
                return Some(value);
            }
            IER if self.dlab() => {
                self.divisor = (self.divisor & 0x00ff) | (u16::from(value) << 8);
            }
            IER => {
                let enabling = value & IER_THRI != 0 && self.ier & IER_THRI == 0;
                self.ier = value & IER_MASK;
                // Enabling the interrupt with THR empty raises it, as the chip does; Linux's
                // start-up check ("THRE bug") relies on exactly this.
                if enabling {
                    self.thre = true;
                }
            }
            IIR_FCR => {
                self.fifo = value & FCR_ENABLE != 0;
                if value & FCR_CLEAR_RX != 0 {
                    self.rx_head = 0;
                    self.rx_len = 0;
                }
            }
            LCR => self.lcr = value,
            MCR => self.mcr = value & MCR_MASK,
            SCR => self.scr = value,
            // LSR and MSR are read-only.
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux's 8250 autoconfig, in its order: the IER scratch test, the loopback test, the
    /// FIFO probe that tells a 16550A.
    #[test]
    fn linux_autoconfig_finds_a_16550a() {
        let mut u = Uart16550::new();
        u.write(IER, 0);
        assert_eq!(u.read(IER) & 0x0f, 0);
        u.write(IER, 0x0f);
        assert_eq!(u.read(IER) & 0x0f, 0x0f);
        u.write(IER, 0);
        u.write(MCR, MCR_LOOP | 0x0a);
        assert_eq!(u.read(MSR) & 0xf0, 0x90, "loopback: RTS->CTS, OUT2->DCD");
        u.write(MCR, 0);
        u.write(IIR_FCR, FCR_ENABLE);
        assert_eq!(u.read(IIR_FCR) >> 6, 3, "FIFOs enabled: a 16550A");
        u.write(IIR_FCR, 0);
        assert_eq!(u.read(IIR_FCR) >> 6, 0);
    }

    /// Linux's start-up check for UARTs that never raise THRE: enabling THRI with THR empty
    /// must be identified in IIR, both times.
    #[test]
    fn enabling_thri_with_thr_empty_identifies_thre() {
        let mut u = Uart16550::new();
        u.write(IER, IER_THRI);
        assert_eq!(u.read(IIR_FCR) & 0x0f, IIR_THRE);
        u.write(IER, 0);
        u.write(IER, IER_THRI);
        assert_eq!(u.read(IIR_FCR) & 0x0f, IIR_THRE);
        assert_eq!(
            u.read(IIR_FCR) & 0x0f,
            IIR_NONE,
            "reading IIR acknowledged it"
        );
    }

    #[test]
    fn a_write_transmits_and_thr_empty_follows_while_enabled() {
        let mut u = Uart16550::new();
        u.write(MCR, MCR_OUT2);
        assert_eq!(u.write(RBR_THR, b'x'), Some(b'x'));
        assert!(!u.interrupt(), "THRI off: no interrupt");
        u.write(IER, IER_THRI);
        assert!(u.interrupt());
        assert_eq!(u.read(IIR_FCR) & 0x0f, IIR_THRE);
        assert!(!u.interrupt(), "acknowledged by the IIR read");
        assert_eq!(u.write(RBR_THR, b'y'), Some(b'y'));
        assert!(u.interrupt(), "THR empty again after the write");
        assert_eq!(u.read(LSR) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
    }

    #[test]
    fn out2_gates_the_interrupt_output() {
        let mut u = Uart16550::new();
        u.write(IER, IER_THRI);
        assert!(!u.interrupt());
        u.write(MCR, MCR_OUT2);
        assert!(u.interrupt());
    }

    #[test]
    fn received_bytes_come_out_in_order_and_outrank_thre() {
        let mut u = Uart16550::new();
        u.write(MCR, MCR_OUT2);
        u.write(IER, IER_RDI | IER_THRI);
        assert!(u.receive(b'a') && u.receive(b'b'));
        assert_eq!(u.read(IIR_FCR) & 0x0f, IIR_RDA);
        assert_eq!(u.read(LSR) & LSR_DR, LSR_DR);
        assert_eq!(u.read(RBR_THR), b'a');
        assert_eq!(u.read(RBR_THR), b'b');
        assert_eq!(u.read(LSR) & LSR_DR, 0);
        assert_eq!(u.read(IIR_FCR) & 0x0f, IIR_THRE, "THRE once RX is drained");
        assert_eq!(u.read(RBR_THR), 0, "an empty FIFO reads 0");
    }

    #[test]
    fn a_full_fifo_drops_and_reports_an_overrun_once() {
        let mut u = Uart16550::new();
        for i in 0..RX_DEPTH {
            assert!(u.receive(i as u8));
        }
        assert_eq!(u.rx_room(), 0);
        assert!(!u.receive(0xaa));
        assert_eq!(u.dropped, 1);
        assert_eq!(u.read(LSR) & LSR_OE, LSR_OE);
        assert_eq!(u.read(LSR) & LSR_OE, 0, "cleared by the read");
        assert_eq!(u.read(RBR_THR), 0, "the first byte kept");
        u.write(IIR_FCR, FCR_CLEAR_RX);
        assert_eq!(u.read(LSR) & LSR_DR, 0);
    }

    #[test]
    fn the_divisor_latch_hides_behind_dlab() {
        let mut u = Uart16550::new();
        u.write(LCR, LCR_DLAB | 0x03);
        u.write(RBR_THR, 0x0c);
        u.write(IER, 0x00);
        assert_eq!(u.read(RBR_THR), 0x0c);
        u.write(LCR, 0x03);
        assert_eq!(u.write(RBR_THR, b'z'), Some(b'z'), "DLAB clear: THR again");
        assert_eq!(u.read(IER), 0, "IER untouched by the latch write");
    }

    #[test]
    fn loopback_keeps_bytes_and_interrupts_inside() {
        let mut u = Uart16550::new();
        u.write(MCR, MCR_LOOP | MCR_OUT2);
        u.write(IER, IER_RDI);
        assert_eq!(u.write(RBR_THR, b'q'), None);
        assert!(!u.interrupt());
        assert_eq!(u.read(RBR_THR), b'q');
    }

    #[test]
    fn any_access_sequence_keeps_the_fifo_bounded() {
        // A deterministic pseudo-random walk over every register and value.
        let mut u = Uart16550::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let offset = x % 9;
            let value = (x >> 8) as u8;
            match (x >> 16) % 3 {
                0 => {
                    u.read(offset);
                }
                1 => {
                    u.write(offset, value);
                }
                _ => {
                    u.receive(value);
                }
            }
            assert!(u.rx_len <= RX_DEPTH && u.rx_head < RX_DEPTH);
            assert_eq!(u.read(LSR) & LSR_DR != 0, u.rx_len != 0);
        }
    }
}
