//! LoongArch's own exits (feature `loongarch`): the IPI and mailbox block a vCPU reaches by
//! IOCSR, starting a parked vCPU the way Loongson firmware does, and IOCSR outside the block.

use super::board::{build, Part, CODE};
use super::mock::{call, once_running, run_two_cpus, Machine, Step};
use crate::State;
use board_config::TestGuest::Worker;
use vcpu::hypercall::nr;
use vcpu::ipi_mailbox::{exit_word, IPI_SEND, MAIL_SEND};
use vcpu::{StopReason, VmExit};

fn iocsr_write(addr: u64, size: u32, value: u64) -> Step {
    Step::Exit(VmExit::CsrWrite {
        csr: exit_word(addr, size),
        value,
    })
}

/// MAIL_SEND of 32-bit `data` to half `half` of core `core`'s mailboxes.
fn mail(core: u64, half: u64, data: u64) -> Step {
    iocsr_write(MAIL_SEND, 8, data << 32 | half << 2 | core << 16)
}

#[test]
fn an_ipi_starts_a_parked_vcpu_from_its_mailbox() {
    let m = Machine::new();
    let all = build(&[Part::new("worker", &[0, 1], Worker)]);
    let p = all.get(0).unwrap();
    let entry = CODE + 0x100;
    m.script(0, 1, vec![Step::Spin]);
    m.script(
        0,
        0,
        vec![
            // A core it does not have: refused, said, nothing stored.
            mail(5, 0, 0xdead),
            mail(1, 0, entry),
            mail(1, 1, 0),
            mail(1, 2, 0x77),
            iocsr_write(IPI_SEND, 4, 1 << 16),
            once_running(p, 1),
            call(nr::POWER_OFF, &[0]),
        ],
    );
    run_two_cpus(all);
    let second = m.with(|w| w.boots.iter().find(|b| b.1.vcpu == 1).map(|b| b.1));
    let second = second.expect("vCPU 1 started");
    assert_eq!(
        (second.entry, second.args[0], second.args[1]),
        (entry, 0x77, 1)
    );
    assert_eq!(
        m.said("mail refused: vCPU 5 is outside its 2 vCPUs").len(),
        1
    );
    assert_eq!(p.state(), State::Finished);
}

#[test]
fn iocsr_outside_the_ipi_block_stops_the_partition() {
    let m = Machine::new();
    let all = build(&[Part::new("worker", &[0], Worker)]);
    m.script(
        0,
        0,
        vec![Step::Exit(VmExit::CsrRead {
            csr: exit_word(0x1800, 4),
        })],
    );
    all.run_cpu(0, || false);
    assert_eq!(
        all.get(0).unwrap().last_end(),
        Some(StopReason::Violation {
            what: "IOCSR access outside its devices at",
            addr: 0x1800
        })
    );
}
