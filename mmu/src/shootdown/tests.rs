//! The protocol with threads as CPUs: each "CPU" thread that runs a guest polls for its flush IPI
//! the way a guest exit would bring it to the exit handler, and services its mailbox there.

extern crate std;

use super::*;
use crate::addr::Gpa;
use std::sync::Mutex as StdMutex;
use std::thread;
use std::vec::Vec;

const N: usize = 4;
/// Polls for the tests where every target answers: far more than an answer takes, and finite,
/// so a protocol bug shows as an error rather than a hang.
const PATIENT: u64 = 50_000_000;

/// The machine the CPUs share: IPIs pending per CPU, every local flush in order, a counter.
struct Machine {
    ipi: [AtomicBool; N],
    flushes: StdMutex<Vec<(usize, u32, Flush)>>,
    counter: AtomicU64,
}

impl Machine {
    fn new() -> Self {
        Self {
            ipi: [const { AtomicBool::new(false) }; N],
            flushes: StdMutex::new(Vec::new()),
            counter: AtomicU64::new(0),
        }
    }

    fn flushes_of(&self, cpu: usize) -> Vec<(u32, Flush)> {
        let log = self.flushes.lock().unwrap();
        log.iter()
            .filter(|f| f.0 == cpu)
            .map(|f| (f.1, f.2))
            .collect()
    }
}

/// One CPU of the machine, as the code running on it sees it.
struct Cpu<'a> {
    me: usize,
    machine: &'a Machine,
}

impl CpuSignals for Cpu<'_> {
    fn this_cpu(&self) -> usize {
        self.me
    }
    fn flush_local(&self, id: u32, what: Flush) {
        self.machine
            .flushes
            .lock()
            .unwrap()
            .push((self.me, id, what));
    }
    fn send_flush_ipi(&self, cpu: usize) {
        self.machine.ipi[cpu].store(true, Ordering::SeqCst);
    }
    fn now(&self) -> u64 {
        self.machine.counter.fetch_add(1, Ordering::Relaxed)
    }
}

/// A guest running table `id` on `cpu` until `stop`: each IPI is an exit whose handler clears
/// the kick and services the mailbox.
fn guest(sd: &Shootdown<N>, machine: &Machine, cpu: usize, id: u32, stop: &AtomicBool) {
    let hw = Cpu { me: cpu, machine };
    while !stop.load(Ordering::SeqCst) {
        if machine.ipi[cpu].swap(false, Ordering::SeqCst) {
            sd.take_kick(cpu);
            sd.service(&hw, cpu, id);
        }
        core::hint::spin_loop();
    }
}

fn range(start: u64, end: u64) -> Flush {
    Flush::range(Gpa(start), Gpa(end))
}

#[test]
fn a_shootdown_reaches_exactly_the_cpus_running_the_table_before_it_returns() {
    let sd = Shootdown::<N>::new(PATIENT);
    let machine = Machine::new();
    let stop = AtomicBool::new(false);
    let boot = Cpu {
        me: 0,
        machine: &machine,
    };
    sd.begin_run(&boot, 0, 3);
    sd.begin_run(
        &Cpu {
            me: 1,
            machine: &machine,
        },
        1,
        3,
    );
    sd.begin_run(
        &Cpu {
            me: 2,
            machine: &machine,
        },
        2,
        4,
    );
    machine.flushes.lock().unwrap().clear();
    let what = range(0x4000, 0x8000);
    let (result, seen) = thread::scope(|s| {
        s.spawn(|| guest(&sd, &machine, 1, 3, &stop));
        s.spawn(|| guest(&sd, &machine, 2, 4, &stop));
        let result = sd.shootdown(&boot, 3, what);
        // What CPU 1 has flushed when the call returns.
        let seen = machine.flushes_of(1);
        // The guests stop before anything is checked, so a failed check cannot hang the scope.
        stop.store(true, Ordering::SeqCst);
        (result, seen)
    });
    assert_eq!(result, Ok(()));
    assert_eq!(seen, [(3, what)]);
    assert_eq!(machine.flushes_of(0), [(3, what)]);
    // CPU 2 runs another table: no IPI, no flush.
    assert!(machine.flushes_of(2).is_empty());
    assert!(!machine.ipi[2].load(Ordering::SeqCst));
    assert_eq!(sd.stats.ipis.load(Ordering::Relaxed), 1);
    assert_eq!(sd.stats.serviced_ranges.load(Ordering::Relaxed), 1);
    assert_eq!(sd.round_trips().0, 1);
}

#[test]
fn a_table_no_other_cpu_runs_is_flushed_here_only() {
    let sd = Shootdown::<N>::new(PATIENT);
    let machine = Machine::new();
    let me = Cpu {
        me: 2,
        machine: &machine,
    };
    sd.begin_run(&me, 2, 7);
    assert_eq!(sd.shootdown(&me, 7, Flush::All), Ok(()));
    assert_eq!(sd.shootdown(&me, 7, Flush::None), Ok(()));
    assert_eq!(machine.flushes_of(2), [(7, Flush::All), (7, Flush::All)]);
    assert_eq!(sd.stats.local_only.load(Ordering::Relaxed), 1);
    assert_eq!(sd.stats.ipis.load(Ordering::Relaxed), 0);
}

#[test]
fn two_cpus_shooting_each_other_down_both_finish() {
    let sd = Shootdown::<N>::new(PATIENT);
    let machine = Machine::new();
    thread::scope(|s| {
        for cpu in 0..2 {
            let (sd, machine) = (&sd, &machine);
            s.spawn(move || {
                let hw = Cpu { me: cpu, machine };
                sd.begin_run(&hw, cpu, 1);
                for i in 0..300u64 {
                    let base = (cpu as u64 * 1000 + i) << 12;
                    assert_eq!(sd.shootdown(&hw, 1, range(base, base + 0x1000)), Ok(()));
                    // Between shootdowns the guest runs: an IPI is an exit here too.
                    if machine.ipi[cpu].swap(false, Ordering::SeqCst) {
                        sd.take_kick(cpu);
                        sd.service(&hw, cpu, 1);
                    }
                }
                // Keep answering until the other CPU is done with its shootdowns.
                sd.end_run(cpu);
            });
        }
    });
    assert_eq!(
        sd.round_trips().0 + sd.stats.local_only.load(Ordering::Relaxed),
        600
    );
}

#[test]
fn a_cpu_that_stops_running_the_table_counts_as_done() {
    let sd = Shootdown::<N>::new(PATIENT);
    let machine = Machine::new();
    let boot = Cpu {
        me: 0,
        machine: &machine,
    };
    sd.begin_run(&boot, 0, 2);
    sd.begin_run(
        &Cpu {
            me: 3,
            machine: &machine,
        },
        3,
        2,
    );
    thread::scope(|s| {
        // CPU 3 never services its mailbox: its guest ends instead.
        s.spawn(|| {
            while !machine.ipi[3].load(Ordering::SeqCst) {
                core::hint::spin_loop();
            }
            sd.end_run(3);
        });
        assert_eq!(sd.shootdown(&boot, 2, Flush::All), Ok(()));
    });
    assert!(
        machine.flushes_of(3).iter().all(|f| f.1 == Flush::All),
        "only its start flush"
    );
}

#[test]
fn a_cpu_that_never_answers_is_reported_and_flushed_in_full_when_it_runs_again() {
    let sd = Shootdown::<N>::new(10_000);
    let machine = Machine::new();
    let boot = Cpu {
        me: 0,
        machine: &machine,
    };
    let stuck = Cpu {
        me: 1,
        machine: &machine,
    };
    sd.begin_run(&boot, 0, 5);
    sd.begin_run(&stuck, 1, 5);
    assert_eq!(
        sd.shootdown(&boot, 5, range(0, 0x1000)),
        Err(Unacknowledged { cpu: 1 })
    );
    assert!(
        sd.kick_flag(1).load(Ordering::SeqCst),
        "the target was marked kicked"
    );
    // Its next run starts with a full flush, and the posted range is no longer owed.
    machine.flushes.lock().unwrap().clear();
    sd.end_run(1);
    sd.begin_run(&stuck, 1, 5);
    sd.service(&stuck, 1, 5);
    assert_eq!(machine.flushes_of(1), [(5, Flush::All)]);
}

#[test]
fn flushes_posted_before_one_service_are_merged_into_one() {
    let sd = Shootdown::<N>::new(1_000);
    let machine = Machine::new();
    let boot = Cpu {
        me: 0,
        machine: &machine,
    };
    let target = Cpu {
        me: 1,
        machine: &machine,
    };
    sd.begin_run(&boot, 0, 6);
    sd.begin_run(&target, 1, 6);
    machine.flushes.lock().unwrap().clear();
    // Nobody services CPU 1 during these two: each is reported, both stay posted.
    assert!(sd.shootdown(&boot, 6, range(0x10000, 0x11000)).is_err());
    assert!(sd.shootdown(&boot, 6, range(0x11000, 0x13000)).is_err());
    sd.service(&target, 1, 6);
    sd.service(&target, 1, 6);
    assert_eq!(machine.flushes_of(1), [(6, range(0x10000, 0x13000))]);
    assert_eq!(sd.stats.serviced.load(Ordering::Relaxed), 1);
}
