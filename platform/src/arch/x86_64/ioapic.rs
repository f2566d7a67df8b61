//! The physical I/O APIC, which the hypervisor keeps: partitions see only a view of it
//! (`partition::irqchip`), and the hypervisor programs the real redirection entries of their
//! lines from what those views accept. What each entry becomes (one hypervisor vector per line,
//! masked while reprogrammed, level lines held masked from their interrupt until the guest ends
//! it) is `arch_x86::io_apic` (host-tested); this file is the chip's register pair and the
//! host's side of taking a device interrupt.
//!
//! Under VMX the interrupt makes the guest exit with its vector (acknowledged on exit, ended in
//! `vmx_vcpu`); under SVM the intercept leaves it pending, the host takes it right after the exit
//! through the IDT gates [`register_interrupts`] gives `idt`, whose handler
//! ([`on_device_interrupt`]) records the line in the CPU's slot (`percpu`) and ends the
//! interrupt, and the SVM vCPU reports each recorded vector as an exit ([`take_pending`]).
//!
//! Access: IOREGSEL (+0x00) selects an indirect register, IOWIN (+0x10) writes it, 32-bit
//! accesses, at the board file's `irqchip.mmio` (identity-mapped below 4 GiB). The pair is one
//! register window for the whole machine, so every access holds [`WINDOW`].

use super::lapic::local_apic;
use super::{idt, percpu, Current};
use crate::board::BOARD;
use arch_x86::io_apic::{IoApicHw, IoApicLines, FIRST_VECTOR, VECTORS};
use core::sync::atomic::Ordering;
use spin::Mutex;

pub use arch_x86::io_apic::Target;

const IOREGSEL: usize = 0x00;
const IOWIN: usize = 0x10;

/// Held for each IOREGSEL/IOWIN pair of accesses.
static WINDOW: Mutex<()> = Mutex::new(());

/// The board's I/O APIC lines.
static LINES: IoApicLines = IoApicLines::new(BOARD.irqchip.lines);

/// The chip's register window.
struct Chip;

impl IoApicHw for Chip {
    fn write(&self, reg: u32, value: u32) {
        let base = Current::phys_to_virt_ptr(BOARD.irqchip.mmio.start);
        let _window = WINDOW.lock();
        // SAFETY: the board file's I/O APIC window is the chip's (the checker keeps partitions
        // off it) and is identity-mapped; IOREGSEL then IOWIN under the lock is one access.
        unsafe {
            ((base + IOREGSEL) as *mut u32).write_volatile(reg);
            ((base + IOWIN) as *mut u32).write_volatile(value);
        }
    }
}

/// The line behind hypervisor vector `vector`, if it is a line's.
pub fn line_of(vector: u8) -> Option<u32> {
    LINES.line_of(vector)
}

/// Programs `line` to deliver to `to`, or masks it.
pub fn program(line: u32, to: Option<Target>) {
    LINES.program(&Chip, line, to);
}

/// The interrupt of `line` was taken: a level line is masked until [`release`]. Called before the
/// end-of-interrupt, so the line cannot fire again in between.
pub fn hold(line: u32) {
    LINES.hold(&Chip, line);
}

/// The guest ended `line`'s interrupt: a held level line is unmasked again (it fires at once if
/// the device still asserts it, as on hardware).
pub fn release(line: u32) {
    LINES.release(&Chip, line);
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
