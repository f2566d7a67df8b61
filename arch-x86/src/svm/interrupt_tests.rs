//! Host tests of the SVM vCPU's interrupts and events against the model (`model.rs`): INTR exits
//! and the device vectors they report, events re-injected after an exit cut their delivery short,
//! faults raised by the handler, interrupt injection and the interrupt window it opens when the
//! guest cannot take one, kicks, and upcalls.

use super::exit::code;
use super::model::{exit_at, nothing, vcpu, write_exit, Step, AT, MASKING, MISC1};
use super::vmcb::off;
use vcpu::{ArchVcpu, Completion, Delivery, Upcall, VirtualIrq, VmExit};

/// VINTR intercept, bit 4 of the first intercept word.
const VINTR_INTERCEPT: u32 = 1 << 4;
/// V_IRQ (8), V_INTR_PRIO 15 (19:16), V_IGN_TPR (20).
const IRQ_WINDOW: u64 = (1 << 8) | (0xf << 16) | (1 << 20);
const RFLAGS_IF: u64 = 1 << 9;
/// A #PF with an error code, valid: what EXITINTINFO holds for a fault cut short by the exit.
const PF_IN_DELIVERY: u64 = (2 << 32) | (1 << 31) | (1 << 11) | (3 << 8) | 14;

#[test]
fn an_intr_exit_takes_the_host_interrupt_and_reports_its_device_vectors() {
    let mut v = vcpu();
    v.hw().pending_host_irq.extend([0x31, 0x32]);
    exit_at(&mut v, code::INTR, 0, 0, nothing);
    assert_eq!(v.run(), VmExit::ExternalInterrupt { vector: 0x31 });
    assert_eq!(v.hw().host_interrupts_taken, 1);
    v.complete(Completion::Retry);
    assert_eq!(v.vmcb().rip(), AT);
    // The second vector taken in the same window is reported without entering the guest, and
    // its completion changes nothing.
    assert_eq!(v.run(), VmExit::ExternalInterrupt { vector: 0x32 });
    assert_eq!(v.hw().entries.len(), 1);
    v.complete(Completion::Skip);
    assert_eq!(
        v.vmcb().rip(),
        AT,
        "a replayed vector has no instruction to skip"
    );
    // The hypervisor's own timer leaves no device vector.
    exit_at(&mut v, code::INTR, 0, 0, nothing);
    assert_eq!(v.run(), VmExit::ExternalInterrupt { vector: 0 });
    assert_eq!(v.hw().host_interrupts_taken, 2);
}

#[test]
fn an_event_the_exit_interrupted_is_delivered_again() {
    let mut v = vcpu();
    v.hw().exit_with(|vmcb, _| {
        vmcb.set_rip(AT);
        write_exit(vmcb, code::NPF, 1 << 33, 0x7000, PF_IN_DELIVERY);
    });
    assert!(matches!(v.run(), VmExit::StageTwoFault { gpa: 0x7000, .. }));
    v.complete(Completion::Retry);
    assert_eq!(v.vmcb().read64(off::EVENTINJ), PF_IN_DELIVERY);
    assert_eq!(v.vmcb().rip(), AT);
    exit_at(&mut v, code::HLT, 0, 0, nothing);
    assert_eq!(v.run(), VmExit::Halt);
    assert_eq!(
        v.hw().entries[1].eventinj,
        PF_IN_DELIVERY,
        "VMRUN re-delivers it"
    );
    assert_eq!(v.vmcb().read64(off::EVENTINJ), 0, "and only once");
    v.complete(Completion::Skip);
    assert_eq!(v.vmcb().read64(off::EVENTINJ), 0);
}

#[test]
fn a_fault_raised_on_the_instruction_replaces_the_interrupted_event() {
    let mut v = vcpu();
    v.hw().exit_with(|vmcb, regs| {
        regs.rcx = 0xc001_0117;
        vmcb.set_rip(AT);
        write_exit(vmcb, code::MSR, 0, 0, PF_IN_DELIVERY);
    });
    assert_eq!(v.run(), VmExit::MsrRead { msr: 0xc001_0117 });
    v.complete(Completion::GENERAL_PROTECTION);
    assert_eq!(v.vmcb().read64(off::EVENTINJ), 0x8000_0b0d, "#GP(0)");
    assert_eq!(v.vmcb().rip(), AT, "a fault does not advance RIP");
}

#[test]
fn an_interrupt_goes_in_at_once_when_the_guest_can_take_it() {
    let mut v = vcpu();
    v.hw().exit_with(|vmcb, _| {
        vmcb.write64(off::RFLAGS, 0x2 | RFLAGS_IF);
        write_exit(vmcb, code::HLT, 0, 0, 0);
    });
    assert_eq!(v.run(), VmExit::Halt);
    v.complete(Completion::Retry);
    assert!(v.inject_interrupt(0x30));
    assert_eq!(v.vmcb().read64(off::EVENTINJ), 0x8000_0030, "valid, type 0");
    exit_at(&mut v, code::HLT, 0, 0, nothing);
    v.run();
    assert_eq!(v.hw().entries[1].eventinj, 0x8000_0030);
    assert_eq!(
        v.vmcb().read64(off::EVENTINJ),
        0,
        "no stale valid bit after the run"
    );
}

#[test]
fn an_interrupt_the_guest_cannot_take_opens_a_window_that_closes_on_its_exit() {
    let mut v = vcpu();
    // Interrupts off (the start state): wait.
    assert!(!v.inject_interrupt(0x30));
    assert_eq!(v.vmcb().read64(off::EVENTINJ), 0);
    assert_eq!(v.vmcb().read64(off::V_INTR), MASKING | IRQ_WINDOW);
    assert_eq!(
        v.vmcb().read32(off::INTERCEPT_MISC1),
        MISC1 | VINTR_INTERCEPT
    );
    v.hw().exit_with(|vmcb, _| {
        vmcb.write64(off::RFLAGS, 0x2 | RFLAGS_IF);
        write_exit(vmcb, code::VINTR, 0, 0, 0);
    });
    assert_eq!(v.run(), VmExit::ExternalInterrupt { vector: 0x101 });
    assert_eq!(v.hw().entries[0].v_intr, MASKING | IRQ_WINDOW);
    assert_eq!(v.hw().entries[0].misc1, MISC1 | VINTR_INTERCEPT);
    assert_eq!(
        v.vmcb().read64(off::V_INTR),
        MASKING,
        "the request is withdrawn"
    );
    assert_eq!(v.vmcb().read32(off::INTERCEPT_MISC1), MISC1);
    v.complete(Completion::Retry);
    assert!(v.inject_interrupt(0x30));
    assert_eq!(v.vmcb().read64(off::EVENTINJ), 0x8000_0030);
}

#[test]
fn an_interrupt_shadow_or_a_redelivery_also_waits() {
    let mut v = vcpu();
    v.hw().exit_with(|vmcb, _| {
        vmcb.write64(off::RFLAGS, 0x2 | RFLAGS_IF);
        vmcb.write64(off::INTERRUPT_SHADOW, 1);
        write_exit(vmcb, code::HLT, 0, 0, 0);
    });
    v.run();
    v.complete(Completion::Retry);
    assert!(!v.inject_interrupt(0x30), "STI or MOV SS shadow");
    v.hw().exit_with(|vmcb, _| {
        vmcb.write64(off::INTERRUPT_SHADOW, 0);
        write_exit(vmcb, code::NPF, 0, 0x7000, PF_IN_DELIVERY);
    });
    v.run();
    v.complete(Completion::Retry);
    assert!(!v.inject_interrupt(0x30), "a #PF is being delivered again");
    assert_eq!(
        v.vmcb().read64(off::EVENTINJ),
        PF_IN_DELIVERY,
        "and is kept"
    );
}

#[test]
fn a_kick_before_entry_reports_the_nmi_and_leaves_the_guest_alone() {
    let mut v = vcpu();
    v.hw().exit_with(|vmcb, _| {
        vmcb.write64(off::RFLAGS, 0x2 | RFLAGS_IF);
        vmcb.set_rip(AT);
        write_exit(vmcb, code::HLT, 0, 0, 0);
    });
    v.run();
    v.complete(Completion::Retry);
    assert!(v.inject_interrupt(0x30));
    v.hw().script.push_back(Step::Kicked);
    assert_eq!(v.run(), VmExit::ExternalInterrupt { vector: 2 });
    v.complete(Completion::Skip);
    assert_eq!(v.vmcb().rip(), AT, "nothing ran, nothing to skip");
    assert_eq!(
        v.vmcb().read64(off::EVENTINJ),
        0x8000_0030,
        "the injected vector still waits for the next VMRUN"
    );
    assert_eq!(v.hw().entries.len(), 1);
}

#[test]
fn an_upcall_saves_the_whole_context_and_its_return_restores_it() {
    let mut v = vcpu();
    exit_at(&mut v, code::HLT, 0, 0, |r| {
        (r.rax, r.rdi, r.r15) = (7, 8, 9)
    });
    v.run();
    v.complete(Completion::Skip);
    let before = *v.regs();
    let d = Delivery {
        upcall: Upcall {
            entry: 0x20_0000,
            stack: 0x30_0000,
        },
        irq: VirtualIrq::Ipi,
        detail: 5,
    };
    assert!(v.deliver_upcall(d));
    assert!(!v.deliver_upcall(d), "one handler at a time");
    assert_eq!(v.vmcb().rip(), 0x20_0000);
    assert_eq!(v.vmcb().read64(off::RSP), 0x30_0000 - 8);
    assert_eq!(v.vmcb().read64(off::RFLAGS), 2);
    assert_eq!((v.regs().rdi, v.regs().rsi), (1, 5));
    v.return_from_upcall();
    assert_eq!(*v.regs(), before);
    assert_eq!(v.vmcb().rip(), AT + 1);
    assert_eq!(v.vmcb().read64(off::RFLAGS), 2);
}
