//! Typing into a partition: bytes the hypervisor console receives go to the virtual console
//! (`devices`) of the partition that has the input focus, so `cargo xtask run` on a Linux board
//! gives the person at the terminal that partition's shell. The focus starts on the board's
//! first Linux partition (no partition of a test board reads its console, so there it starts
//! nowhere); [`SWITCH_KEY`] (Ctrl-]) moves it to the next partition with a virtual console and
//! says so on the console. Once a partition has been typed to, its output goes to the terminal
//! as it comes, not a prefixed line at a time, so prompts and echoed keys show. The console is
//! polled, never interrupted: a CPU polls it when one of
//! its vCPU's exits is an interrupt (a timer tick at the latest), and only if no other CPU holds
//! the console, so input costs no exit of its own and never waits.

use super::Partition;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Ctrl-]: moves the input focus to the next partition with a virtual console.
pub const SWITCH_KEY: u8 = 0x1d;
/// The focus index when no partition has it.
const NOBODY: usize = usize::MAX;

static FOCUS: AtomicUsize = AtomicUsize::new(NOBODY);
/// Held by the CPU that polls.
static POLLING: spin::Mutex<()> = spin::Mutex::new(());

fn takes_input(p: &Partition) -> bool {
    p.config.console == board_config::PartitionConsole::Virtual
}

/// Puts the focus on the first Linux partition, if the board has one.
pub fn init(all: &[Partition]) {
    let linux = all
        .iter()
        .position(|p| matches!(p.config.image, board_config::Image::Linux(_)) && takes_input(p));
    if let Some(i) = linux {
        FOCUS.store(i, Ordering::SeqCst);
        crate::println!(
            "console: typed input goes to partition {} (Ctrl-] switches)",
            all[i].name()
        );
    }
}

/// The partition after `from` (wrapping) that takes input, if any.
fn next_after(all: &[Partition], from: usize) -> Option<usize> {
    let n = all.len();
    let start = if from == NOBODY { n - 1 } else { from };
    (1..=n)
        .map(|k| (start + k) % n)
        .find(|&i| takes_input(&all[i]))
}

/// Reads what the console received and hands it to the focused partition; called on CPU `cpu`.
pub fn poll(cpu: usize) {
    // One CPU at a time takes and hands over input: two could otherwise swap typed bytes.
    let Some(_turn) = POLLING.try_lock() else {
        return;
    };
    let mut buf = [0u8; 16];
    let n = crate::console::take_input(&mut buf);
    if n == 0 {
        return;
    }
    let all = super::all();
    if all.is_empty() {
        return;
    }
    for &b in &buf[..n] {
        if b == SWITCH_KEY {
            if let Some(i) = next_after(all, FOCUS.load(Ordering::SeqCst)) {
                FOCUS.store(i, Ordering::SeqCst);
                crate::println!("console: typed input goes to partition {}", all[i].name());
            }
            continue;
        }
        if let Some(p) = all.get(FOCUS.load(Ordering::SeqCst)) {
            // A full receive FIFO drops the byte, as the chip would (an overrun).
            p.console_input(cpu, &[b]);
        }
    }
}
