//! A partition's life as its CPUs run it: power-off, violations, resets up to the limit, and
//! the manager stopping and starting a partition that runs on another CPU.

use super::board::{build, Part, CODE, DATA};
use super::mock::{call, once_running, run_two_cpus, wait_for, Machine, Step};
use crate::State;
use board_config::TestGuest::{Manager, Worker};
use std::sync::atomic::{AtomicU32, Ordering};
use vcpu::hypercall::nr;
use vcpu::{ShutdownKind, StopReason, VmExit};

#[test]
fn a_violation_stops_the_partition_with_its_reason() {
    let m = Machine::new();
    let all = build(&[Part::new("worker", &[0], Worker)]);
    m.script(
        0,
        0,
        vec![Step::Exit(VmExit::PortIn {
            port: 0x80,
            size: vcpu::AccessSize::Byte,
        })],
    );
    m.script(
        0,
        0,
        vec![Step::Exit(VmExit::StageTwoFault {
            gpa: DATA + 0x10_0000,
            access: vcpu::Access::Write,
        })],
    );
    all.run_cpu(0, || false);
    let p = all.get(0).unwrap();
    assert_eq!(p.state(), State::Stopped);
    assert_eq!(
        p.last_end(),
        Some(StopReason::Violation {
            what: "read of unowned port",
            addr: 0x80
        })
    );
    assert_eq!(
        m.said("partition worker stopped: read of unowned port 0x80")
            .len(),
        1
    );
    // Run again (its CPU joins anew), its next violation names the address.
    all.run_cpu(0, || false);
    assert_eq!(
        m.said("partition worker stopped: write to unowned address 0x300000")
            .len(),
        1
    );
    assert!(!all.summary(), "a stopped worker is not the scenario's end");
}

#[test]
fn resets_reboot_the_partition_up_to_the_limit() {
    let m = Machine::new();
    let all = build(&[Part::new("worker", &[0], Worker)]);
    for _ in 0..20 {
        m.script(
            0,
            0,
            vec![Step::Exit(VmExit::Shutdown {
                kind: ShutdownKind::Reboot,
            })],
        );
    }
    let polls = AtomicU32::new(0);
    all.run_cpu(0, || polls.fetch_add(1, Ordering::SeqCst) < 100);
    let p = all.get(0).unwrap();
    assert_eq!(p.state(), State::Stopped);
    assert_eq!(
        p.starts.load(Ordering::SeqCst),
        17,
        "the first run and 16 reboots"
    );
    assert_eq!(m.said("partition worker: reboot 16").len(), 1);
    assert!(m.said("reboot 17").is_empty());
    // Each run starts from the image, with the count of earlier starts in its third argument.
    let starts: Vec<u64> = m.with(|w| w.boots.iter().map(|b| b.1.args[2]).collect());
    assert_eq!(starts, (0..17).collect::<Vec<_>>());
    assert!(m.with(|w| w.boots.iter().all(|b| b.1.entry == CODE)));
}

/// The manager on CPU 0 stops the worker spinning on CPU 1, sees it stopped, starts it again,
/// and the worker's second run powers off: the stop reached another CPU by its kick, and the
/// start by the worker CPU's wait.
#[test]
fn the_manager_stops_and_starts_a_partition_on_another_cpu() {
    let m = Machine::new();
    let all = build(&[
        Part::new("manager", &[0], Manager),
        Part::new("worker", &[1], Worker),
    ]);
    let worker = all.get(1).unwrap();
    m.script(1, 0, vec![Step::Spin]);
    m.script(1, 0, vec![call(nr::POWER_OFF, &[0])]);
    let until = move |s: State| {
        Step::Act(Box::new(move || {
            wait_for("a state", || worker.state() == s)
        }))
    };
    m.script(
        0,
        0,
        vec![
            once_running(worker, 0),
            call(nr::PARTITION_STOP, &[1]),
            until(State::Stopped),
            call(nr::PARTITION_STATE, &[1]),
            call(nr::PARTITION_START, &[1]),
            until(State::Finished),
            call(nr::POWER_OFF, &[0]),
        ],
    );
    run_two_cpus(all);
    assert_eq!(m.values(0, 0), [0, State::Stopped as u64, 0]);
    assert_eq!(worker.state(), State::Finished);
    assert_eq!(worker.starts.load(Ordering::SeqCst), 2);
    assert_eq!(m.said("partition worker stopped: by the manager").len(), 1);
    assert!(m.with(|w| w.kicks.contains(&1)), "the stop kicked CPU 1");
    assert!(all.all_ended());
}

/// Dirty logging started while the worker runs on CPU 1: the table change is not done until
/// CPU 1 has dropped its cached translations, which it does at its next exit after the IPI.
#[test]
fn a_table_change_reaches_the_cpu_that_runs_the_target() {
    let m = Machine::new();
    let all = build(&[
        Part::new("manager", &[0], Manager),
        Part::new("worker", &[1], Worker),
    ]);
    let worker = all.get(1).unwrap();
    m.script(1, 0, vec![Step::Spin]);
    m.script(
        0,
        0,
        vec![
            once_running(worker, 0),
            call(nr::DIRTY_LOG_START, &[1]),
            call(nr::PARTITION_STOP, &[1]),
            call(nr::POWER_OFF, &[0]),
        ],
    );
    run_two_cpus(all);
    assert_eq!(m.values(0, 0), [0, 0]);
    assert!(
        m.with(|w| w.flush_ipis.contains(&1)),
        "an IPI went to CPU 1"
    );
    // One when its vCPU started, then the shootdown it serviced at its next exit.
    let local = m.with(|w| {
        w.local_flushes
            .iter()
            .filter(|f| f.0 == 1 && f.1 == 1 && f.2 == worker.table().root())
            .count()
    });
    assert!(local >= 2, "CPU 1 flushed the worker's translations itself");
    assert!(all.shootdown.stats.serviced.load(Ordering::SeqCst) >= 1);
    assert!(m.said("did not acknowledge").is_empty());
    let (round_trips, _, _) = all.shootdown.round_trips();
    assert!(round_trips >= 1);
}
