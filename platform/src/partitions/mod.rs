//! The image's partitions: the one [`partition::Partitions`] value of this board, built from the
//! generated board data with this machine's seam (`Current`), the machine's flush shootdown, its
//! table pages (`frames`) and the hypervisor's self-check once every partition has ended
//! (`selfcheck`). The engine itself is the `partition` crate; this module only owns the statics.

mod frames;
mod selfcheck;

use crate::arch::Current;
use crate::board::BOARD;
pub use frames::TableFrames;
use partition::{GuestImages, Partitions, RunEnv, Shootdown, ACK_POLLS};
pub use selfcheck::self_check;
use spin::Once;

/// A partition of this image.
pub type Partition = partition::Partition<Current>;

/// The machine's shootdown state: running marks, mailboxes, kick flags, counters.
static SHOOTDOWN: Shootdown = Shootdown::new(ACK_POLLS);

static PARTITIONS: Once<Partitions<Current>> = Once::new();

/// Builds every partition of the board (on the boot CPU, before the other CPUs start).
pub fn build_all() -> Result<(), &'static str> {
    let env = RunEnv {
        cmdline: crate::cmdline::cmdline(),
        guests: GuestImages {
            worker: crate::guests::WORKER,
            manager: crate::guests::MANAGER,
            hostile: crate::guests::HOSTILE,
        },
    };
    let built = Partitions::build(&BOARD, env, &SHOOTDOWN, TableFrames)?;
    PARTITIONS.call_once(|| built);
    // Before any other CPU starts, so before any partition runs.
    selfcheck::record_image_hash();
    Ok(())
}

/// The board's partitions, once built.
pub fn get() -> Option<&'static Partitions<Current>> {
    PARTITIONS.get()
}

/// The machine's services as the engine reaches them: the same on every architecture.
impl partition::arch::MachineServices for Current {
    fn cpu_index() -> usize {
        <Current as crate::arch::Machine>::cpu_index()
    }

    fn phys_to_virt(pa: u64) -> *mut u8 {
        <Current as crate::arch::Machine>::phys_to_virt(pa) as *mut u8
    }

    fn print_line(line: core::fmt::Arguments) {
        crate::println!("{line}");
    }

    fn write_console(bytes: &[u8]) {
        crate::console::write_bytes(bytes);
    }

    fn take_console_input(buf: &mut [u8]) -> usize {
        crate::console::take_input(buf)
    }
}
