//! Ending the run so the emulator's exit status tells the outcome. On QEMU `virt`, success is a
//! GED power-off (status 0) and failure is a pvpanic-pci "panicked" event, which
//! `-action panic=exit-failure` turns into status 1. pvpanic is found by scanning bus 0 of the
//! ECAM and given a BAR in the PCI window. Real boards have neither; there the CPU parks after
//! the console says how the run ended.

use super::Current;
use crate::arch::{Machine, Outcome};
use arch_loongarch::csr::UNCACHED_BASE;
use board_config::Emulator;

/// The GED "sleep control" register QEMU exposes as a syscon: SLP_EN | SLP_TYP 5 powers off.
const GED_SLEEP_CTL: u64 = 0x100e_001c;
const GED_POWEROFF: u8 = 0x34;
/// PCIe ECAM base on QEMU `virt` (bus 0 device `d` at `+ d << 15`).
const ECAM: u64 = 0x2000_0000;
/// Where pvpanic's BAR0 goes: the start of the PCI memory window (identity-mapped).
const PVPANIC_BAR: u32 = 0x4000_0000;
/// Vendor 0x1b36 (Red Hat, QEMU), device 0x0011 (pvpanic-pci), as one little-endian word.
const PVPANIC_ID: u32 = 0x0011_1b36;
const PVPANIC_PANICKED: u8 = 1;

fn uncached(pa: u64) -> usize {
    (UNCACHED_BASE | pa) as usize
}

fn on_qemu() -> bool {
    crate::board::BOARD.emulator == Some(Emulator::QemuLoongArchVirt)
}

fn ged_poweroff() {
    // SAFETY: on QEMU `virt` this is the GED syscon register, reached through the uncached
    // window; the write powers the machine off and touches no memory.
    unsafe { (uncached(GED_SLEEP_CTL) as *mut u8).write_volatile(GED_POWEROFF) };
}

/// Signals "guest panicked" through pvpanic-pci; returns false if there is no such device.
fn pvpanic() -> bool {
    for dev in 0..32u64 {
        let cfg = uncached(ECAM + (dev << 15));
        // SAFETY: the ECAM window of QEMU `virt` answers every bus-0 function (absent ones read
        // all ones); the uncached window maps it.
        let id = unsafe { (cfg as *const u32).read_volatile() };
        if id != PVPANIC_ID {
            continue;
        }
        // SAFETY: this function is pvpanic-pci: BAR0 (offset 0x10) gets an address in the PCI
        // window nothing else uses at this point, COMMAND (offset 4) enables memory decoding,
        // and the byte written to the BAR is the device's "panicked" event.
        unsafe {
            ((cfg + 0x10) as *mut u32).write_volatile(PVPANIC_BAR);
            ((cfg + 0x4) as *mut u16).write_volatile(0x2);
            (uncached(u64::from(PVPANIC_BAR)) as *mut u8).write_volatile(PVPANIC_PANICKED);
        }
        return true;
    }
    false
}

/// Ends the run (see the module comment); never returns.
pub fn exit(outcome: Outcome) -> ! {
    if on_qemu() {
        match outcome {
            Outcome::Success => ged_poweroff(),
            Outcome::Failure => {
                if !pvpanic() {
                    crate::console::print_unlocked(format_args!(
                        "exit: FAILURE (no pvpanic-pci device, powering off)\n"
                    ));
                    ged_poweroff();
                }
            }
        }
    } else {
        let what = match outcome {
            Outcome::Success => "success",
            Outcome::Failure => "FAILURE",
        };
        crate::console::print_unlocked(format_args!("exit: {what}, parking this CPU\n"));
    }
    // Power-off and panic events complete asynchronously: wait for them here.
    Current::park()
}
