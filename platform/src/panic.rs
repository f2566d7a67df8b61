//! A panic anywhere in the hypervisor prints its message and location, then ends the run with a
//! failing status, so a boot test can never pass on a crash.

use crate::arch::{Current, Machine, Outcome};
use core::panic::PanicInfo;

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    let cpu = Current::cpu_index();
    match info.location() {
        Some(loc) => crate::console::print_unlocked(format_args!(
            "\nPANIC on cpu{cpu} at {}:{}: {}\n",
            loc.file(),
            loc.line(),
            info.message()
        )),
        None => crate::console::print_unlocked(format_args!(
            "\nPANIC on cpu{cpu}: {}\n",
            info.message()
        )),
    }
    Current::exit(Outcome::Failure)
}
