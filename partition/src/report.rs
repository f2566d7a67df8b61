//! The console's account of the partitions at the end of a run: one line per partition on how it
//! ended (what the boot tests match), a table with one row per vCPU (its CPU, state, exits,
//! interrupts delivered, IPIs sent, delivery latencies: timer deadline, IPI send, and a device
//! interrupt's host exit, each to the guest's handler or vector), and the flush shootdown's counts and
//! round trip. Times are in the arch's counter ticks, and on an emulator they measure the
//! emulator's clock, not hardware: a proxy for comparing changes, labelled so.

use crate::arch::PartitionArch;
use crate::Partitions;
use core::sync::atomic::Ordering;
use vcpu::StopReason;

impl<A: PartitionArch> Partitions<A> {
    /// Prints the per-vCPU table and the shootdown line.
    fn vcpu_table(&self) {
        let hz = A::counter_hz();
        say!(
            A,
            "vcpus: partition  vcpu cpu state    exits  timer  ipi  dev  upcalls  ipi-sent  \
         timer-lat(mean/max)  ipi-lat(mean/max)  dev-lat(mean/max)  [counter ticks at {} MHz, \
         emulator clock: a proxy]",
            hz / 1_000_000
        );
        for p in self.all() {
            for (i, v) in p.vcpus.iter().enumerate() {
                let (_, tm, tx) = v.timer_latency.get();
                let (_, im, ix) = v.ipi_latency.get();
                let (_, dm, dx) = v.device_latency.get();
                let [cpu, _, exits, timer, ipi, dev, upcalls, sent] = v.info();
                say!(A,
                "vcpus: {:<10} {:>4} {:>3} {:<8} {:>6} {:>6} {:>4} {:>4} {:>8} {:>9}  {:>8}/{:<10} {:>8}/{:<8} {:>8}/{:<8}",
                p.name(),
                i,
                cpu,
                v.state().name(),
                exits,
                timer,
                ipi,
                dev,
                upcalls,
                sent,
                tm,
                tx,
                im,
                ix,
                dm,
                dx
            );
            }
        }
        let (n, mean, max) = self.shootdown.round_trips();
        let s = &self.shootdown.stats;
        say!(A,
        "shootdown: {n} to other CPUs ({} IPIs, {} serviced, {} of them ranges), {} local only; \
         round trip mean {mean} max {max} ticks (emulator clock: a proxy)",
        s.ipis.load(Ordering::Relaxed),
        s.serviced.load(Ordering::Relaxed),
        s.serviced_ranges.load(Ordering::Relaxed),
        s.local_only.load(Ordering::Relaxed)
    );
    }

    /// One line per partition on how it ended; true when they ended as the test scenarios expect:
    /// every partition finished with code 0, except the hostile test guest, which must be stopped.
    pub fn summary(&self) -> bool {
        self.vcpu_table();
        let mut ok = true;
        for p in self.all() {
            let end = p.last_end();
            let runs = p.starts.load(Ordering::SeqCst);
            let exits = p.exit_counters().total();
            match end {
                Some(StopReason::PowerOff { code }) => {
                    ok &= code == 0;
                    say!(
                        A,
                        "summary: {} finished with code {code} after {runs} runs, {exits} exits",
                        p.name()
                    );
                }
                Some(r) => {
                    ok &= p.config.image
                        == board_config::Image::Guest(board_config::TestGuest::Hostile);
                    say!(
                        A,
                        "summary: {} stopped ({r:?}) after {runs} runs, {exits} exits",
                        p.name()
                    );
                }
                None => {
                    ok &= p
                        .config
                        .cpus
                        .first()
                        .is_none_or(|&c| c as usize >= board_config::MAX_CPUS);
                    say!(A, "summary: {} never ended ({:?})", p.name(), p.state());
                }
            }
        }
        ok
    }
}
