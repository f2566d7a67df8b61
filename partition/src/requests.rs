//! What one CPU asks of a partition another CPU runs: stop it, or start it again. A request is
//! a flag the partition's CPUs read at their next exit (or wait), and a kick so that exit comes
//! soon; the run loop (`run`) acts on it.

use crate::arch::PartitionArch;
use crate::{Partition, State};
use core::sync::atomic::Ordering;

impl<A: PartitionArch> Partition<A> {
    /// Stops the partition from another CPU: asks, and kicks every CPU running it so it sees
    /// the request.
    pub fn request_stop(&self) {
        self.stop_requested.store(true, Ordering::SeqCst);
        for cpu in self.cpus_running() {
            self.kick(cpu);
        }
    }

    /// Starts the stopped or finished partition again on its CPU.
    pub fn request_start(&self) {
        self.reboots.store(0, Ordering::SeqCst);
        self.set_state(State::Running);
        self.start_requested.store(true, Ordering::SeqCst);
        // Its CPU may be waiting with its core halted (`PartitionArch::wait`).
        self.kick(self.vcpus[0].cpu);
    }
}
