//! Waking the other CPUs. With `-kernel`, QEMU parks each secondary in boot code that clears its
//! mailbox 0, enables IPIs, idles, and jumps to the value of mailbox 0 once that is non-zero. The
//! boot CPU posts the secondary's stack top in [`SECONDARY_SP`] first, then the physical address
//! of the entry trampoline in the target's mailbox (high half first, so the value never appears
//! torn), then an IPI to wake it. The trampoline reads its stack from the table by CSR.CPUID.
//!
//! A secondary whose emulated core has not yet run its first instructions clears the mailbox
//! *after* the post and then waits forever, so a post is repeated until the CPU says it arrived
//! (seen under load on a 2-core host running `-smp 4`).

use super::entry::{septum_secondary_entry, ARRIVED, SECONDARY_SP};
use arch_loongarch::cpucfg::CpuCfg;
use arch_loongarch::{instr, ipi};
use board_config::MAX_CPUS;
use core::sync::atomic::Ordering;

const PA_MASK: u64 = (1 << 48) - 1;
/// How long to wait for a CPU before posting its wake-up again.
const REPOST_MS: u64 = 20;
/// How long to keep posting before leaving the CPU to the boot sequence's own timeout.
const GIVE_UP_MS: u64 = 5_000;

fn post(cpu: usize, entry_pa: u64) {
    // SAFETY: the trampoline at `entry_pa` is position-independent until it jumps to the cached
    // window, and its stack for this CPU is posted already. QEMU's boot code on `cpu` jumps to
    // exactly this mailbox value; a CPU that has left that code ignores mailbox and IPI (its
    // interrupts are off). CPU indices equal core ids on the boards here.
    unsafe {
        ipi::send_mail(cpu as u32, 0, entry_pa);
        ipi::send_ipi(cpu as u32, 0);
    }
}

/// Starts CPUs 1..=`max` (bounded by what the firmware listed); returns how many were asked.
pub fn start_secondaries(max: usize) -> usize {
    let count = (super::firmware::cpu_count().saturating_sub(1))
        .min(max)
        .min(MAX_CPUS - 1);
    let entry_pa = septum_secondary_entry as unsafe extern "C" fn() as usize as u64 & PA_MASK;
    let ticks_per_ms = CpuCfg::read().counter_hz().unwrap_or(100_000_000) / 1000;
    for (cpu, sp) in SECONDARY_SP.iter().enumerate().take(count + 1).skip(1) {
        sp.store(crate::cpu_stacks::cpu_stack_top(cpu), Ordering::SeqCst);
    }
    // The stacks must be visible before a mailbox write lets a target run.
    instr::dbar();
    let start = instr::rdtime();
    let mut posts = 0u32;
    loop {
        let mut waiting = false;
        for (cpu, flag) in ARRIVED.iter().enumerate().take(count + 1).skip(1) {
            if !flag.load(Ordering::SeqCst) {
                post(cpu, entry_pa);
                waiting = true;
            }
        }
        if !waiting {
            break;
        }
        posts += 1;
        let round = instr::rdtime();
        while instr::rdtime().wrapping_sub(round) < REPOST_MS * ticks_per_ms {
            if ARRIVED[1..=count].iter().all(|f| f.load(Ordering::SeqCst)) {
                break;
            }
            core::hint::spin_loop();
        }
        if instr::rdtime().wrapping_sub(start) > GIVE_UP_MS * ticks_per_ms {
            log::warn!("smp: some CPUs did not take their wake-up after {posts} posts");
            break;
        }
    }
    log::debug!("smp: woke {count} CPUs at {entry_pa:#x} ({posts} rounds of posts)");
    count
}
