//! Device lines from the partition's side: `IRQ_ROUTE` of a line the board did not give the
//! partition is refused and never reaches the physical controller, a routed line's interrupt
//! becomes an upcall on the vCPU it was routed to, and a run's end masks the line again.

use super::board::{build, Part, CODE, DATA};
use super::mock::{call, Machine, Step};
use crate::arch::DeviceRoute;
use board_config::TestGuest::Worker;
use vcpu::hypercall::{encode_result, nr};
use vcpu::HypercallError::*;
use vcpu::{VirtualIrq, VmExit};

#[test]
fn a_line_not_given_to_the_partition_is_refused() {
    let m = Machine::new();
    let all = build(&[Part {
        irqs: &[5],
        ..Part::new("worker", &[0, 2], Worker)
    }]);
    m.with(|w| w.routes.clear());
    m.script(
        0,
        0,
        vec![
            call(nr::IRQ_ROUTE, &[6, 0]),
            call(nr::IRQ_ROUTE, &[5, 2]),
            call(nr::IRQ_ROUTE, &[5, 1]),
            call(nr::POWER_OFF, &[0]),
        ],
    );
    all.run_cpu(0, || false);
    assert_eq!(
        m.values(0, 0),
        [
            encode_result(Err(Permission)),
            encode_result(Err(InvalidArgument)),
            0
        ]
    );
    assert_eq!(
        m.said("IRQ route refused: line 6 is not one of its lines [5]")
            .len(),
        1
    );
    assert_eq!(
        m.said("IRQ route refused: vCPU 2 is outside its 2 vCPUs")
            .len(),
        1
    );
    let to_cpu2 = DeviceRoute {
        cpu: 2,
        level: false,
        active_low: false,
    };
    // Programmed for the CPU of vCPU 1, then masked again when the run ended.
    assert_eq!(
        m.with(|w| w.routes.clone()),
        [(5, Some(to_cpu2)), (5, None)]
    );
}

#[test]
fn a_routed_line_arrives_as_an_upcall_on_its_vcpu() {
    let m = Machine::new();
    let all = build(&[Part {
        irqs: &[5, 7],
        ..Part::new("worker", &[0], Worker)
    }]);
    let interrupt = |line| Step::Exit(VmExit::ExternalInterrupt { vector: line });
    m.script(
        0,
        0,
        vec![
            call(nr::UPCALL_SET, &[CODE + 0x800, DATA + 0x1000]),
            // Line 7 is its own but not routed: dropped.
            interrupt(7),
            call(nr::IRQ_ROUTE, &[5, 0]),
            interrupt(5),
            call(nr::UPCALL_RETURN, &[]),
            call(nr::POWER_OFF, &[0]),
        ],
    );
    all.run_cpu(0, || false);
    let upcalls = m.with(|w| w.upcalls.clone());
    assert_eq!(upcalls.len(), 1, "{upcalls:?}");
    let (id, vcpu, d) = upcalls[0];
    assert_eq!((id, vcpu, d.irq), (0, 0, VirtualIrq::Device(5)));
    assert_eq!(
        (d.upcall.entry, d.upcall.stack),
        (CODE + 0x800, DATA + 0x1000)
    );
    let slot = &all.get(0).unwrap().vcpus[0];
    assert_eq!(
        slot.device_irqs.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[test]
fn an_upcall_handler_must_be_code_and_its_stack_memory() {
    let m = Machine::new();
    let all = build(&[Part::new("worker", &[0], Worker)]);
    m.script(
        0,
        0,
        vec![
            // Entry in the data region (no execute), stack outside memory, then both right.
            call(nr::UPCALL_SET, &[DATA, DATA + 0x1000]),
            call(nr::UPCALL_SET, &[CODE, 0x9000_0000]),
            call(nr::UPCALL_SET, &[CODE, DATA + 0x1000]),
            // No upcall to return from.
            call(nr::UPCALL_RETURN, &[]),
            call(nr::POWER_OFF, &[0]),
        ],
    );
    all.run_cpu(0, || false);
    let e = |x| encode_result(Err(x));
    assert_eq!(
        m.values(0, 0),
        [e(BadAddress), e(BadAddress), 0, e(BadState)]
    );
}
