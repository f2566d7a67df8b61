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

use crate::arch::PartitionArch;
use crate::{Partition, Partitions};
use core::sync::atomic::{AtomicUsize, Ordering};

/// Ctrl-]: moves the input focus to the next partition with a virtual console.
pub const SWITCH_KEY: u8 = 0x1d;
/// The focus index when no partition has it.
const NOBODY: usize = usize::MAX;

/// Where typed input goes.
pub struct InputFocus {
    focus: AtomicUsize,
    /// Held by the CPU that polls.
    polling: spin::Mutex<()>,
}

fn takes_input<A: PartitionArch>(p: &Partition<A>) -> bool {
    p.config.console == board_config::PartitionConsole::Virtual
}

impl InputFocus {
    /// The focus on the first Linux partition, if the board has one.
    pub fn new<A: PartitionArch>(all: &[Partition<A>]) -> Self {
        let linux = all.iter().position(|p| {
            matches!(p.config.image, board_config::Image::Linux(_)) && takes_input(p)
        });
        if let Some(i) = linux {
            say!(
                A,
                "console: typed input goes to partition {} (Ctrl-] switches)",
                all[i].name()
            );
        }
        Self {
            focus: AtomicUsize::new(linux.unwrap_or(NOBODY)),
            polling: spin::Mutex::new(()),
        }
    }
}

/// The partition after `from` (wrapping) that takes input, if any.
fn next_after<A: PartitionArch>(all: &[Partition<A>], from: usize) -> Option<usize> {
    let n = all.len();
    let start = if from == NOBODY { n - 1 } else { from };
    (1..=n)
        .map(|k| (start + k) % n)
        .find(|&i| takes_input(&all[i]))
}

impl<A: PartitionArch> Partitions<A> {
    /// Reads what the console received and hands it to the focused partition; called on CPU
    /// `cpu`.
    pub fn poll_input(&self, cpu: usize) {
        // One CPU at a time takes and hands over input: two could otherwise swap typed bytes.
        let Some(_turn) = self.input.polling.try_lock() else {
            return;
        };
        let mut buf = [0u8; 16];
        let n = A::take_console_input(&mut buf);
        let all = self.all();
        if n == 0 || all.is_empty() {
            return;
        }
        let focus = &self.input.focus;
        for &b in &buf[..n] {
            if b == SWITCH_KEY {
                if let Some(i) = next_after(all, focus.load(Ordering::SeqCst)) {
                    focus.store(i, Ordering::SeqCst);
                    say!(
                        A,
                        "console: typed input goes to partition {}",
                        all[i].name()
                    );
                }
                continue;
            }
            if let Some(p) = all.get(focus.load(Ordering::SeqCst)) {
                // A full receive FIFO drops the byte, as the chip would (an overrun).
                p.console_input(cpu, &[b]);
            }
        }
    }
}
