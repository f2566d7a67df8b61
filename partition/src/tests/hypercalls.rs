//! The hypercall dispatch as a guest meets it: identity calls answer from the caller's own
//! partition, management calls need the manager, every target, state and buffer is checked
//! before anything is done, and dirty logging and aging report what the target did.

use super::board::{build, host_bytes, Part, CODE, DATA, RODATA};
use super::mock::{call, Machine, Step};
use crate::State;
use board_config::TestGuest::{Manager, Worker};
use mmu::{Access, Gpa};
use vcpu::hypercall::{encode_result, nr, ABI_VERSION};
use vcpu::HypercallError::{self, *};

fn err(e: HypercallError) -> u64 {
    encode_result(Err(e))
}

#[test]
fn identity_calls_answer_from_the_callers_partition() {
    let m = Machine::new();
    let all = build(&[
        Part::new("first", &[0], Worker),
        Part::new("second", &[1, 2], Worker),
    ]);
    m.script(
        1,
        0,
        vec![
            call(nr::VERSION, &[]),
            call(nr::SELF_ID, &[]),
            call(nr::VCPU_COUNT, &[]),
            call(nr::VCPU_ID, &[]),
            call(nr::POWER_OFF, &[0]),
        ],
    );
    super::mock::on_cpu(1);
    all.run_cpu(1, || false);
    assert_eq!(m.values(1, 0), [ABI_VERSION, 1, 2, 0]);
    assert_eq!(all.get(1).unwrap().state(), State::Finished);
    assert_eq!(all.get(0).unwrap().state(), State::Created);
    assert_eq!(m.said("partition second finished (code 0)").len(), 1);
}

#[test]
fn management_calls_need_the_manager() {
    let m = Machine::new();
    let all = build(&[
        Part::new("worker", &[0], Worker),
        Part::new("other", &[1], Worker),
    ]);
    m.script(
        0,
        0,
        vec![
            call(nr::PARTITION_COUNT, &[]),
            call(nr::PARTITION_STOP, &[1]),
            call(nr::DIRTY_LOG_START, &[1]),
            call(nr::POWER_OFF, &[0]),
        ],
    );
    all.run_cpu(0, || false);
    assert_eq!(m.values(0, 0), [err(Permission); 3]);
    assert!(!all
        .get(1)
        .unwrap()
        .dirty_logging
        .load(std::sync::atomic::Ordering::SeqCst));
}

#[test]
fn management_targets_states_and_buffers_are_checked() {
    let m = Machine::new();
    let all = build(&[
        Part::new("manager", &[0], Manager),
        Part::new("worker", &[1], Worker),
    ]);
    let outside = 0x9000_0000;
    m.script(
        0,
        0,
        vec![
            call(nr::PARTITION_COUNT, &[]),
            call(nr::PARTITION_STATE, &[7]),
            call(nr::PARTITION_STATE, &[1]),
            // Itself, and a partition that is not running.
            call(nr::PARTITION_STOP, &[0]),
            call(nr::PARTITION_STOP, &[1]),
            // Never run, so never stopped: nothing to start.
            call(nr::PARTITION_START, &[1]),
            call(nr::DIRTY_LOG_STOP, &[1]),
            call(nr::DIRTY_HARVEST, &[1, DATA, 64]),
            // A buffer outside the caller's memory, one straddling its end, one it may not
            // write, one in its code.
            call(nr::EXIT_COUNTERS, &[1, outside, 64]),
            call(nr::EXIT_COUNTERS, &[1, DATA + 0x1_0000 - 32, 64]),
            call(nr::EXIT_COUNTERS, &[1, RODATA, 64]),
            call(nr::EXIT_COUNTERS, &[1, CODE + 0x1000, 64]),
            call(nr::VCPU_INFO, &[5, DATA, 64]),
            call(nr::POWER_OFF, &[0]),
        ],
    );
    all.run_cpu(0, || false);
    assert_eq!(
        m.values(0, 0),
        [
            2,
            err(NoPartition),
            State::Created as u64,
            err(BadState),
            err(BadState),
            err(BadState),
            err(BadState),
            err(BadState),
            err(BadAddress),
            err(BadAddress),
            err(BadAddress),
            (vcpu::ExitKind::COUNT as u64).min(8),
            err(NoPartition),
        ]
    );
    assert_eq!(all.get(1).unwrap().state(), State::Created);
}

#[test]
fn dirty_harvest_and_aging_report_what_the_target_did() {
    let m = Machine::new();
    let all = build(&[
        Part::new("manager", &[0], Manager),
        Part::new("worker", &[1], Worker),
    ]);
    // The worker's guest, played as its faults: writes to code pages 3 and 9 and data page 1,
    // then reads of two pages.
    let touch = move |pages: &'static [(u64, Access)]| {
        Step::Act(Box::new(move || {
            let t = all.get(1).unwrap().table();
            for &(gpa, access) in pages {
                let _ = t.fast_fix(Gpa(gpa), access);
            }
        }))
    };
    let bitmap = DATA + 0x100;
    m.script(
        0,
        0,
        vec![
            call(nr::DIRTY_LOG_START, &[1]),
            touch(&[
                (CODE + 3 * 0x1000, Access::Write),
                (CODE + 9 * 0x1000 + 8, Access::Write),
                (DATA + 0x1000, Access::Write),
            ]),
            // Too small for 64 + 16 pages, then right.
            call(nr::DIRTY_HARVEST, &[1, bitmap, 8]),
            call(nr::DIRTY_HARVEST, &[1, bitmap, 16]),
            call(nr::AGE_START, &[1]),
            touch(&[(CODE, Access::Read), (DATA + 0x2000, Access::Read)]),
            call(nr::AGE_HARVEST, &[1]),
            call(nr::AGE_HARVEST, &[1]),
            call(nr::DIRTY_LOG_STOP, &[1]),
            call(nr::POWER_OFF, &[0]),
        ],
    );
    all.run_cpu(0, || false);
    // Tracking is per base page (LoongArch's are 16 KiB), reported in 4 KiB pages.
    let per = (1u64 << <super::mock::Format as mmu::PteFormat>::PAGE_SHIFT) / 0x1000;
    assert_eq!(
        m.values(0, 0),
        [0, err(InvalidArgument), 3 * per, 0, 2 * per, 0, 0],
        "start, harvests, age start, two age harvests, stop"
    );
    // Bits in 4 KiB pages of the regions concatenated: code pages 0-63, then data pages; each
    // written base page sets the bits of all its 4 KiB pages.
    let bits = host_bytes(all, 0, bitmap, 16);
    let mut want = [0u8; 16];
    for page in [3, 9, 64 + 1] {
        let first = page / per * per;
        for bit in first..first + per {
            want[(bit / 8) as usize] |= 1 << (bit % 8);
        }
    }
    assert_eq!(bits, want);
}
