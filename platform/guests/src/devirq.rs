//! x86 only: a device interrupt the hardware way, for the worker's x2APIC scenario. The device is
//! COM2 (a 16550 at port 0x2f8, ISA line 3), which the board gives the worker partition with its
//! line; the guest routes the line through its view of the I/O APIC (IOREGSEL at 0xfec00000,
//! IOWIN at +0x10, 32-bit accesses: the hypervisor emulates them and programs the real entry)
//! and makes the UART interrupt on an empty transmitter: enabling that interrupt raises it at
//! once, reading the interrupt identification clears it, and each byte written raises it again
//! when the byte has gone out.

use core::arch::asm;

/// COM2's registers.
const COM2: u16 = 0x2f8;
const THR: u16 = 0;
const IER: u16 = 1;
const IIR: u16 = 2;
const LCR: u16 = 3;
const MCR: u16 = 4;
/// LCR: 8 data bits, no parity, 1 stop bit; with bit 7 the divisor latch is reachable.
const LCR_8N1: u8 = 0x03;
const LCR_DLAB: u8 = 0x80;
/// IER bit 1: transmitter holding register empty.
const IER_THRE: u8 = 1 << 1;
/// MCR bit 3 (OUT2): on a PC it connects the UART's interrupt to the line.
const MCR_OUT2: u8 = 1 << 3;
/// COM2's interrupt line.
pub const LINE: u32 = 3;

/// The I/O APIC view's registers.
const IOREGSEL: u64 = 0xfec0_0000;
const IOWIN: u64 = IOREGSEL + 0x10;
/// Redirection entry bit 16: masked.
const MASKED: u32 = 1 << 16;

fn outb(port: u16, value: u8) {
    // SAFETY: a port write touches no guest memory; COM2's ports are the partition's own.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack)) };
}

fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: as `outb`, a read.
    unsafe { asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack)) };
    v
}

/// Writes indirect register `reg` of the I/O APIC view.
fn ioapic_write(reg: u32, value: u32) {
    // SAFETY: the controller window is emulated by the hypervisor for every partition; each
    // access traps to it and touches no guest memory.
    unsafe {
        (IOREGSEL as *mut u32).write_volatile(reg);
        (IOWIN as *mut u32).write_volatile(value);
    }
}

/// Redirection entry bit 15: level-triggered.
const LEVEL: u32 = 1 << 15;

/// Routes `line` to the vCPU with APIC ID `vcpu` as `vector`: fixed, physical destination,
/// active high, edge- or `level`-triggered, unmasked (destination first, while the entry is
/// still masked). The UART holds its interrupt output while the cause lasts, so it works either
/// way: as a level line the hypervisor keeps it masked from each interrupt to the guest's EOI.
pub fn route(line: u32, vcpu: u32, vector: u8, level: bool) {
    let entry = 0x10 + 2 * line;
    let low = u32::from(vector) | if level { LEVEL } else { 0 };
    ioapic_write(entry, MASKED | low);
    ioapic_write(entry + 1, vcpu << 24);
    ioapic_write(entry, low);
}

/// Masks `line`, keeping its vector.
pub fn mask(line: u32, vector: u8) {
    ioapic_write(0x10 + 2 * line, MASKED | u32::from(vector));
}

/// Sets COM2 to 115200 baud 8N1 and turns its transmitter-empty interrupt on (it fires at once:
/// the transmitter is empty).
pub fn start() {
    outb(COM2 + LCR, LCR_DLAB | LCR_8N1);
    outb(COM2 + THR, 1); // divisor low byte: 115200 baud
    outb(COM2 + IER, 0); // divisor high byte
    outb(COM2 + LCR, LCR_8N1);
    outb(COM2 + MCR, MCR_OUT2);
    outb(COM2 + IER, IER_THRE);
}

/// Turns COM2's interrupt off.
pub fn stop() {
    outb(COM2 + IER, 0);
    outb(COM2 + MCR, 0);
}

/// In the interrupt handler: clears the cause (reading IIR ends a transmitter-empty
/// interrupt) and, if `again`, sends a byte so another one follows.
pub fn acknowledge(again: bool) {
    let _ = inb(COM2 + IIR);
    if again {
        outb(COM2 + THR, b'.');
    }
}
