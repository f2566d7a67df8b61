//! A CPU waiting in the hypervisor for its vCPU's next event (the guest halted with nothing to
//! take): `hlt` until a kick, a device interrupt or the vCPU's timer. A kick is an NMI that
//! follows a per-CPU flag (the caller passes it: `Partition::kick_flag`); checking the flag and halting are one
//! window, like the VMX entry window, so an NMI that lands between the check and the `hlt` is
//! redirected by the NMI stub (`idt`) to the window's abort label instead of being lost while
//! the CPU sleeps. Maskable interrupts are on only inside the window (`sti`'s shadow covers the
//! `hlt`): the host's handlers take the timer's vector (ended) and device vectors (recorded,
//! `ioapic`). The wait is bounded: the local APIC timer fires at the vCPU's deadline or after
//! [`LONGEST_WAIT_US`], whichever comes first, so nothing that polls on exits (the console's
//! input) waits longer than that.

use super::lapic::local_apic;
use super::{timer, virt};
use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, Ordering};

/// The longest a halted vCPU's CPU sleeps without an event.
const LONGEST_WAIT_US: u64 = 10_000;

global_asm!(
    r#"
    .section .text.septum_idle, "ax"
    /* rdi: the CPU's kick flag (one byte). Returns with interrupts off. */
    .global septum_idle_halt
septum_idle_halt:
    .global septum_idle_window_start
septum_idle_window_start:
    cmp byte ptr [rdi], 0
    jne septum_idle_window_abort
    sti
    hlt
    .global septum_idle_window_end
septum_idle_window_end:
    cli
    ret
    .global septum_idle_window_abort
septum_idle_window_abort:
    cli
    ret
"#
);

extern "C" {
    fn septum_idle_halt(kick: *const u8);
}

/// Sleeps until a kick, an interrupt, or `deadline` (TSC), at most [`LONGEST_WAIT_US`]; then
/// puts the calling CPU's timer back as the vCPU's deadline had it.
#[cfg(septum_partitions)]
pub fn until(deadline: Option<u64>, kick: &AtomicBool) {
    let hz = timer::tsc_hz();
    if hz == 0 {
        return;
    }
    let now = timer::now();
    let cap = now.saturating_add(hz / 1_000_000 * LONGEST_WAIT_US);
    let wake = deadline.map_or(cap, |d| d.min(cap));
    if wake <= now {
        return;
    }
    let vcpu_deadline = timer::deadline();
    timer::arm(Some(wake), false);
    // SAFETY: interrupts are on only inside the window, where the host's IDT has a handler for
    // every vector the hypervisor raises or programs (its timer, the device lines); the flag is
    // an AtomicBool, one byte the window only reads.
    unsafe { septum_idle_halt(kick.as_ptr().cast()) };
    // The vCPU's own deadline again (under VMX the preemption timer carries it).
    let preemption = virt::preemption_rate().is_some();
    if preemption {
        local_apic().timer_stop();
    }
    timer::arm(vcpu_deadline, preemption);
}

/// A CPU that runs no vCPU waits for a request (a start comes with a kick): sleeps as
/// [`until`] does with no deadline, then clears its kick flag, which only the vCPU entry
/// path reads otherwise. Requests are posted before their kick, so the caller's next look
/// sees the one that woke it.
#[cfg(septum_partitions)]
pub fn wait_for_request(kick: &AtomicBool) {
    until(None, kick);
    kick.store(false, Ordering::SeqCst);
}
