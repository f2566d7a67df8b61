//! The hypervisor's own interrupt lines on a LoongArch CPU, below both backends: the core timer,
//! which serves the running vCPU's virtual timer and LVZ's line re-check, and the acknowledgement
//! of the lines that make a guest exit (a kick's IPI, the timer, EIOINTC's device pin). Both
//! backends' interrupt exits and the partition seam come here; nothing here knows a partition.

use super::Current;
use crate::arch::Machine;
use arch_loongarch::device_irq::{HOST_PIN, HOST_PIN_IS};
use arch_loongarch::{csr, instr, iocsr, timer};
use board_config::MAX_CPUS;
use core::sync::atomic::{AtomicU64, Ordering};

/// ESTAT.IS bits: timer, IPI and the EIOINTC pin.
const IS_TIMER: u32 = 1 << 11;
const IS_IPI: u32 = 1 << 12;
pub const IS_DEVICE: u32 = HOST_PIN_IS;

/// Per CPU: the deadlines the core timer serves, in counter ticks ([`NONE`]: none): the running
/// vCPU's virtual timer ([`VIRTUAL`], `arm_timer`) and, under LVZ, the re-check of a raised line
/// the guest could not take at entry ([`RECHECK`], [`arm_recheck`]). Only the CPU itself touches
/// its row.
static ROOT_TIMER: [[AtomicU64; 2]; MAX_CPUS] =
    [const { [const { AtomicU64::new(NONE) }; 2] }; MAX_CPUS];
const VIRTUAL: usize = 0;
const RECHECK: usize = 1;
const NONE: u64 = u64::MAX;

/// Counts the core timer down to the earlier of the CPU's deadlines (`timer::next_deadline`).
fn program_root_timer(t: &[AtomicU64; 2]) {
    let some = |d: u64| (d != NONE).then_some(d);
    let now = instr::rdtime();
    let (deadline, recheck) = timer::next_deadline(
        some(t[VIRTUAL].load(Ordering::Relaxed)),
        some(t[RECHECK].load(Ordering::Relaxed)),
        now,
    );
    t[RECHECK].store(recheck.unwrap_or(NONE), Ordering::Relaxed);
    let value = match deadline {
        None => timer::OFF,
        Some(d) => timer::oneshot(d.saturating_sub(now)),
    };
    // SAFETY: the core timer is the hypervisor's (the deprivileged guest cannot reach it, and
    // an LVZ guest has its own); its interrupt only makes the running guest exit, and the
    // hypervisor runs with interrupts off. A pending tick from the previous setting is
    // acknowledged *before* the new countdown starts: acknowledging after would also eat the
    // new tick when a short countdown (a deadline a few ticks away) ends in between, and the
    // vCPU would wait for it forever (seen as a rare hang of the smp boot test).
    unsafe {
        csr::write::<{ csr::TICLR }>(1);
        csr::write::<{ timer::TCFG }>(value);
    }
}

/// Makes the running guest exit at or soon after `deadline` (its vCPU's virtual timer), or
/// never (`None`).
pub fn arm_virtual_timer(deadline: Option<u64>) {
    let t = &ROOT_TIMER[<Current as Machine>::cpu_index()];
    t[VIRTUAL].store(deadline.unwrap_or(NONE), Ordering::Relaxed);
    program_root_timer(t);
}

/// Under LVZ: makes the running guest exit by `deadline` (counter ticks) so the next entry looks
/// at a raised line again, or withdraws that (`None`); see `arch_loongarch::lvz::recheck`.
pub fn arm_recheck(deadline: Option<u64>) {
    let t = &ROOT_TIMER[<Current as Machine>::cpu_index()];
    t[RECHECK].store(deadline.unwrap_or(NONE), Ordering::Relaxed);
    program_root_timer(t);
}

/// Acknowledges the host interrupts pending in `is` (ESTAT.IS) and returns the vector an exit
/// reports: 12 for the IPI a kick sends, 11 for the timer, [`DEVICE_VECTOR`] for EIOINTC's pin
/// (acknowledged when the exit handler takes its lines, `device_lines`), else the raw lines.
/// Both backends' interrupt exits come here; one line per exit, the next exit takes the rest.
pub fn acknowledge_interrupts(is: u32) -> u32 {
    if is & IS_IPI != 0 {
        let pending = iocsr::read32(iocsr::IPI_STATUS);
        // SAFETY: writing the pending bits to IPI_CLEAR only acknowledges this CPU's IPIs.
        unsafe { iocsr::write32(iocsr::IPI_CLEAR, pending) };
        return 12;
    }
    if is & IS_TIMER != 0 {
        // SAFETY: acknowledging the timer only clears its pending bit.
        unsafe { csr::write::<{ csr::TICLR }>(1) };
        return 11;
    }
    if is & IS_DEVICE != 0 {
        return DEVICE_VECTOR;
    }
    is
}

/// The vector an exit reports for EIOINTC's pin: its ESTAT.IS bit number.
pub const DEVICE_VECTOR: u32 = HOST_PIN + 2;
