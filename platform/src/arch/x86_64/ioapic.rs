//! The physical I/O APIC, which the hypervisor keeps: partitions see only a view of it
//! (`partition::irqchip`), and the hypervisor programs the real redirection entries of
//! their lines from what those views accept. Each line has a hypervisor vector of its own
//! ([`vector_of`]: 0x50 + line, above the exceptions and below the timer's 0xf0; a guest's own
//! vector numbers never meet these, since a device interrupt always arrives in the hypervisor
//! first and reaches the guest as the vector it asked for), delivered fixed, in physical destination mode, to the local APIC of the CPU that runs the
//! vCPU the partition chose; trigger mode, polarity and mask follow the partition's entry.
//!
//! Under VMX the interrupt makes the guest exit with its vector (acknowledged on exit, ended in
//! `vmx_vcpu`); under SVM the intercept leaves it pending, the host takes it right after the exit
//! through the IDT gates [`register_interrupts`] gives `idt`, whose handler
//! ([`on_device_interrupt`]) records the line in the CPU's slot (`percpu`) and ends the
//! interrupt, and the SVM vCPU reports each recorded vector as an exit ([`take_pending`]).
//!
//! Level-triggered lines: a device holds its line asserted until its driver clears the cause, so
//! an unmasked level entry would fire again as soon as the hypervisor ends the interrupt, long
//! before the guest has run its handler. So the entry is masked when its interrupt is taken,
//! before the end-of-interrupt ([`hold`]), and unmasked when the guest ends the interrupt in its
//! own virtual APIC ([`release`]); an edge line needs neither.
//!
//! Access: IOREGSEL (+0x00) selects an indirect register, IOWIN (+0x10) reads or writes it,
//! 32-bit accesses, at the board file's `irqchip.mmio` (identity-mapped below 4 GiB). The pair is
//! one register window for the whole machine, so every access holds [`WINDOW`].

use super::lapic::local_apic;
use super::{idt, percpu, Current};
use crate::board::BOARD;
use core::sync::atomic::{AtomicU32, Ordering};
use spin::Mutex;

/// The hypervisor vector of line 0; line n uses `FIRST_VECTOR + n`.
pub const FIRST_VECTOR: u8 = 0x50;
/// Lines that have a vector of their own (0x50..0x6f): an I/O APIC has 24, large ones up to 240,
/// but the vectors must stay below the timer's and clear of anything else the host takes.
pub const VECTORS: u32 = 32;

const IOREGSEL: usize = 0x00;
const IOWIN: usize = 0x10;
const REG_REDIRECTION: u32 = 0x10;
const MASKED: u64 = 1 << 16;
const LEVEL: u64 = 1 << 15;
const ACTIVE_LOW: u64 = 1 << 13;

/// Serializes the IOREGSEL/IOWIN pairs of all CPUs.
static WINDOW: Mutex<()> = Mutex::new(());

/// The low dword each line with a vector was last programmed with (masked when not routed).
static ENTRY: [AtomicU32; VECTORS as usize] =
    [const { AtomicU32::new(MASKED as u32) }; VECTORS as usize];
/// Level lines masked since their interrupt was taken, waiting for the guest's EOI (bit = line).
static HELD: AtomicU32 = AtomicU32::new(0);

/// Where a line goes on the hardware.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The local APIC ID of the destination CPU.
    pub apic_id: u32,
    /// Level-triggered (else edge).
    pub level: bool,
    /// Active low (else active high).
    pub active_low: bool,
}

/// The hypervisor vector of `line`, if it has one (a line the board's I/O APIC has, below
/// [`VECTORS`]).
pub fn vector_of(line: u32) -> Option<u8> {
    (line < VECTORS.min(BOARD.irqchip.lines)).then(|| FIRST_VECTOR + line as u8)
}

/// The line whose hypervisor vector is `vector`, if it is one.
pub fn line_of(vector: u8) -> Option<u32> {
    let line = u32::from(vector.checked_sub(FIRST_VECTOR)?);
    vector_of(line).map(|_| line)
}

/// Writes indirect register `reg`.
fn write(reg: u32, value: u32) {
    let base = Current::phys_to_virt_ptr(BOARD.irqchip.mmio.start);
    let _window = WINDOW.lock();
    // SAFETY: the board file's controller window is the I/O APIC's register page, below 4 GiB
    // and identity-mapped; the hypervisor alone touches it (partitions get an emulated view), and
    // the lock keeps the select/data pair of one access together.
    unsafe {
        ((base + IOREGSEL) as *mut u32).write_volatile(reg);
        ((base + IOWIN) as *mut u32).write_volatile(value);
    }
}

/// Programs line `line`'s redirection entry: delivered as its own vector to `to`, or masked
/// (`None`). High dword (destination) first while masked, then the low dword, so the entry never
/// delivers to a half-written destination.
/// A line without a vector of its own can only be masked.
pub fn program(line: u32, to: Option<Target>) {
    if line >= BOARD.irqchip.lines {
        return;
    }
    let reg = REG_REDIRECTION + 2 * line;
    if let Some(e) = ENTRY.get(line as usize) {
        e.store(MASKED as u32, Ordering::SeqCst);
        HELD.fetch_and(!(1 << line), Ordering::SeqCst);
    }
    let (Some(vector), Some(t)) = (vector_of(line), to) else {
        write(reg, MASKED as u32);
        return;
    };
    let mut low = u64::from(vector); // fixed delivery, physical destination mode
    if t.level {
        low |= LEVEL;
    }
    if t.active_low {
        low |= ACTIVE_LOW;
    }
    write(reg, (low | MASKED) as u32);
    write(reg + 1, (t.apic_id & 0xff) << 24);
    write(reg, low as u32);
    ENTRY[line as usize].store(low as u32, Ordering::SeqCst);
}

/// The interrupt of `line` was taken: a level line is masked until [`release`]. Called before the
/// end-of-interrupt, so the line cannot fire again in between.
pub fn hold(line: u32) {
    let Some(e) = ENTRY.get(line as usize) else {
        return;
    };
    let low = u64::from(e.load(Ordering::SeqCst));
    if low & LEVEL != 0 && low & MASKED == 0 {
        HELD.fetch_or(1 << line, Ordering::SeqCst);
        write(REG_REDIRECTION + 2 * line, (low | MASKED) as u32);
    }
}

/// The guest ended `line`'s interrupt: a held level line is unmasked again (it fires at once if
/// the device still asserts it, as on hardware).
pub fn release(line: u32) {
    if line >= VECTORS || HELD.fetch_and(!(1 << line), Ordering::SeqCst) & (1 << line) == 0 {
        return;
    }
    let low = ENTRY[line as usize].load(Ordering::SeqCst);
    write(REG_REDIRECTION + 2 * line, low);
}

/// Gives `idt` the host's handler of every line's vector (all [`VECTORS`], whatever the board's
/// I/O APIC has: a vector without a line is ended and ignored). Boot CPU, before the others
/// start.
pub fn register_interrupts() {
    for line in 0..VECTORS {
        idt::register(FIRST_VECTOR + line as u8, on_device_interrupt);
    }
}

/// The host's handler of a device vector (SVM: taken right after the intercept): records it
/// for the calling CPU's vCPU and ends it.
fn on_device_interrupt(vector: u8) {
    if let Some(line) = line_of(vector) {
        hold(line);
        percpu::this_cpu()
            .device_lines_taken
            .fetch_or(1 << line, Ordering::SeqCst);
    }
    local_apic().eoi();
}

/// Takes the lowest device vector the calling CPU recorded, if any.
pub fn take_pending() -> Option<u8> {
    let taken = &percpu::this_cpu().device_lines_taken;
    let bits = taken.load(Ordering::SeqCst);
    if bits == 0 {
        return None;
    }
    let line = bits.trailing_zeros();
    taken.fetch_and(!(1 << line), Ordering::SeqCst);
    Some(FIRST_VECTOR + line as u8)
}
