//! x86's own exits (feature `x86`): MSRs a partition does not own answer #GP and are said once,
//! and its APIC cannot be moved.

use super::board::{build, Part};
use super::mock::{Machine, Step};
use board_config::TestGuest::Worker;
use vcpu::{Completion, StopReason, VmExit};

#[test]
fn an_unknown_msr_raises_gp_and_the_apic_cannot_move() {
    let m = Machine::new();
    let all = build(&[Part::new("worker", &[0], Worker)]);
    let rdmsr = |msr| Step::Exit(VmExit::MsrRead { msr });
    m.script(
        0,
        0,
        vec![
            rdmsr(0xc001_dead),
            rdmsr(0xc001_dead),
            // IA32_APIC_BASE as it reads: accepted; moved: a violation.
            rdmsr(0x1b),
            Step::Exit(VmExit::MsrWrite {
                msr: 0x1b,
                value: 0xfee0_0d00,
            }),
            Step::Exit(VmExit::MsrWrite {
                msr: 0x1b,
                value: 0xfed0_0d00,
            }),
        ],
    );
    all.run_cpu(0, || false);
    let gp = m.with(|w| {
        w.completions
            .iter()
            .filter(|c| c.2 == Completion::GENERAL_PROTECTION)
            .count()
    });
    assert_eq!(gp, 2);
    assert_eq!(
        m.said("RDMSR of 0xc001dead refused (#GP)").len(),
        1,
        "said once"
    );
    assert_eq!(m.values(0, 0), [0xfee0_0d00]);
    assert_eq!(
        all.get(0).unwrap().last_end(),
        Some(StopReason::Violation {
            what: "write to MSR",
            addr: 0x1b
        })
    );
}
