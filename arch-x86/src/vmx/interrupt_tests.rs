//! Host tests of the VMX vCPU's interrupts and events against the VMCS model (`model.rs`):
//! events re-injected after an exit cut their delivery short (IDT-vectoring information), NMI
//! unblocking by IRET left out of the entry event, faults raised by the handler, interrupt
//! injection and the interrupt window it asks for when the guest cannot take one, kicks (the
//! host's and the guest's NMI blocking lifted), abandoned entries, host interrupts ended, and
//! upcalls. Encodings are spelled out from the SDM (Vol. 3C §25.8.3, §25.9.3, §28.2.4).

use super::exit::{reason, INTERRUPT_WINDOW_VECTOR};
use super::fields::{w32, wn};
use super::model::{exit, nothing, vcpu, Exit, Step, AT};
use vcpu::{ArchVcpu, Completion, Delivery, Upcall, VirtualIrq, VmExit};

/// A #PF with an error code, valid: type 3 (hardware exception), bit 11, vector 14.
const PF_IN_DELIVERY: u64 = (1 << 31) | (1 << 11) | (3 << 8) | 14;
/// The same with bit 12, NMI unblocking due to IRET (an IRET's fault cut short).
const PF_AFTER_IRET: u64 = PF_IN_DELIVERY | (1 << 12);
/// Primary processor-based control bit 2: interrupt-window exiting.
const INTERRUPT_WINDOW_EXITING: u64 = 1 << 2;
const RFLAGS_IF: u64 = 1 << 9;

/// An EPT violation while the CPU delivered `vectoring`, by an instruction of length 3.
fn fault_in_delivery(vectoring: u64) -> Exit {
    Exit {
        vectoring,
        vectoring_error: 6,
        len: 3,
        gpa: 0x7000,
        ..exit(reason::EPT_VIOLATION)
    }
}

#[test]
fn an_event_the_exit_interrupted_is_delivered_again() {
    let mut v = vcpu();
    v.hw().exit(fault_in_delivery(PF_IN_DELIVERY), nothing);
    assert!(matches!(v.run(), VmExit::StageTwoFault { gpa: 0x7000, .. }));
    v.complete(Completion::Retry);
    v.hw().exit(exit(reason::HLT), nothing);
    assert_eq!(v.run(), VmExit::Halt);
    let e = v.hw().entries[1];
    assert_eq!(
        (e.entry_info, e.entry_error, e.entry_len),
        (PF_IN_DELIVERY, 6, 3)
    );
    assert_eq!(e.rip, AT, "the faulting delivery is retried, not skipped");
    // Delivered now: the next entry injects nothing.
    v.complete(Completion::Skip);
    v.hw().exit(exit(reason::HLT), nothing);
    v.run();
    assert_eq!(v.hw().entries[2].entry_info & (1 << 31), 0);
}

#[test]
fn nmi_unblocking_by_iret_is_left_out_of_the_redelivered_event() {
    let mut v = vcpu();
    v.hw().exit(fault_in_delivery(PF_AFTER_IRET), nothing);
    v.run();
    v.complete(Completion::Retry);
    v.hw().exit(exit(reason::HLT), nothing);
    v.run();
    assert_eq!(v.hw().entries[1].entry_info, PF_IN_DELIVERY);
}

#[test]
fn a_fault_the_handler_raises_is_injected_on_the_instruction() {
    let mut v = vcpu();
    v.hw().exit(exit(reason::RDMSR), |r| r.rcx = 0x1234);
    v.run();
    v.complete(Completion::GENERAL_PROTECTION);
    assert_eq!(v.hw().field(wn::GUEST_RIP), AT);
    v.hw().exit(exit(reason::HLT), nothing);
    v.run();
    let e = v.hw().entries[1];
    // #GP (13), hardware exception, error code 0 delivered.
    assert_eq!(
        (e.entry_info, e.entry_error, e.entry_len),
        (0x8000_0b0d, 0, 0)
    );
    assert_eq!(e.rip, AT);
    v.complete(Completion::Skip);
    v.hw().exit(exit(reason::CPUID), nothing);
    v.run();
    v.complete(Completion::Exception {
        vector: 6,
        error_code: None,
    });
    v.hw().exit(exit(reason::HLT), nothing);
    v.run();
    assert_eq!(
        v.hw().entries[3].entry_info,
        0x8000_0306,
        "#UD, no error code"
    );
}

#[test]
fn an_interrupt_goes_in_at_once_when_the_guest_can_take_it() {
    let mut v = vcpu();
    v.hw().vmcs.insert(wn::GUEST_RFLAGS, RFLAGS_IF | 2);
    assert!(v.inject_interrupt(0x30));
    assert_eq!(v.hw().field(w32::ENTRY_INTERRUPTION_INFO), 0x8000_0030);
    assert_eq!(
        v.hw().field(w32::PROC_CONTROLS) & INTERRUPT_WINDOW_EXITING,
        0
    );
    v.hw().exit(exit(reason::HLT), nothing);
    v.run();
    assert_eq!(v.hw().entries[0].entry_info, 0x8000_0030);
}

#[test]
fn an_interrupt_the_guest_cannot_take_asks_for_a_window_that_closes_on_its_exit() {
    let mut v = vcpu();
    assert!(!v.inject_interrupt(0x30), "interrupts off at start");
    assert_eq!(v.hw().field(w32::ENTRY_INTERRUPTION_INFO), 0);
    v.hw().exit_with(|vmcs, _| {
        exit(reason::INTERRUPT_WINDOW).write(vmcs);
        vmcs.insert(wn::GUEST_RFLAGS, RFLAGS_IF | 2);
    });
    assert_eq!(
        v.run(),
        VmExit::ExternalInterrupt {
            vector: INTERRUPT_WINDOW_VECTOR
        }
    );
    let e = v.hw().entries[0];
    assert_ne!(
        e.proc & INTERRUPT_WINDOW_EXITING,
        0,
        "the entry asked for it"
    );
    assert_eq!(
        v.hw().field(w32::PROC_CONTROLS) & INTERRUPT_WINDOW_EXITING,
        0
    );
    assert_eq!(
        v.hw().field(w32::PROC_CONTROLS) | INTERRUPT_WINDOW_EXITING,
        e.proc,
        "only the window bit changed"
    );
    v.complete(Completion::Retry);
    assert!(v.inject_interrupt(0x30));
    assert_eq!(
        v.hw().field(wn::GUEST_RIP),
        AT,
        "a window exit skips nothing"
    );
}

#[test]
fn an_interrupt_shadow_or_a_waiting_event_also_waits() {
    let mut v = vcpu();
    v.hw().vmcs.insert(wn::GUEST_RFLAGS, RFLAGS_IF | 2);
    for shadow in [1, 2] {
        v.hw().vmcs.insert(w32::GUEST_INTERRUPTIBILITY, shadow);
        assert!(!v.inject_interrupt(0x30), "STI or MOV SS shadow {shadow}");
    }
    v.hw().vmcs.insert(w32::GUEST_INTERRUPTIBILITY, 0);
    v.hw().exit_with(|vmcs, _| {
        fault_in_delivery(PF_IN_DELIVERY).write(vmcs);
        vmcs.insert(wn::GUEST_RFLAGS, RFLAGS_IF | 2);
    });
    v.run();
    v.complete(Completion::Retry);
    assert!(!v.inject_interrupt(0x30), "the re-delivered #PF goes first");
    assert_ne!(
        v.hw().field(w32::PROC_CONTROLS) & INTERRUPT_WINDOW_EXITING,
        0
    );
}

#[test]
fn a_kick_before_entry_leaves_the_guest_and_its_waiting_vector_alone() {
    let mut v = vcpu();
    v.hw().vmcs.insert(wn::GUEST_RFLAGS, RFLAGS_IF | 2);
    assert!(v.inject_interrupt(0x30));
    v.hw().script.push_back(Step::Kicked);
    assert_eq!(v.run(), VmExit::ExternalInterrupt { vector: 2 });
    v.complete(Completion::Skip);
    assert_eq!(
        v.hw().field(wn::GUEST_RIP),
        super::model::ENTRY,
        "nothing to skip"
    );
    assert!(
        !v.inject_interrupt(0x31),
        "0x30 still waits in the entry field"
    );
    assert_eq!(v.hw().field(w32::ENTRY_INTERRUPTION_INFO), 0x8000_0030);
    assert!(v.hw().entries.is_empty() && v.hw().nmi_unblocks == 0);
    v.hw().exit(exit(reason::HLT), nothing);
    v.run();
    assert!(
        !v.hw().entries[0].resume,
        "the abandoned entry launched nothing"
    );
}

#[test]
fn a_kick_lifts_nmi_blocking_in_the_host_and_the_guest() {
    let mut v = vcpu();
    v.hw().exit_with(|vmcs, _| {
        Exit {
            // NMI (type 2), vector 2, valid.
            interruption_info: 0x8000_0202,
            ..exit(reason::EXCEPTION_NMI)
        }
        .write(vmcs);
        // Blocked by NMI (3) and by STI (0).
        vmcs.insert(w32::GUEST_INTERRUPTIBILITY, 0x9);
    });
    assert_eq!(v.run(), VmExit::ExternalInterrupt { vector: 2 });
    assert_eq!(v.hw().nmi_unblocks, 1);
    assert_eq!(
        v.hw().field(w32::GUEST_INTERRUPTIBILITY),
        0x1,
        "STI blocking stays"
    );
    assert!(v.hw().ended.is_empty(), "an NMI has no end of interrupt");
    v.complete(Completion::Retry);
    v.hw().exit(exit(reason::HLT), nothing);
    v.run();
    assert_eq!(v.hw().entries[1].interruptibility, 1);
    assert_eq!(v.hw().nmi_unblocks, 1, "only NMI exits unblock");
}

#[test]
fn an_external_interrupt_is_reported_and_ended() {
    let mut v = vcpu();
    v.hw().exit(
        Exit {
            interruption_info: 0x8000_0031,
            ..exit(reason::EXTERNAL_INTERRUPT)
        },
        nothing,
    );
    assert_eq!(v.run(), VmExit::ExternalInterrupt { vector: 0x31 });
    assert_eq!(v.hw().ended, [0x31]);
    assert_eq!(v.hw().nmi_unblocks, 0);
    v.complete(Completion::Retry);
    assert_eq!(v.hw().field(wn::GUEST_RIP), AT);
}

#[test]
fn an_upcall_enters_the_handler_and_returns_to_the_interrupted_code() {
    let mut v = vcpu();
    v.hw().exit(exit(reason::HLT), |r| r.rax = 0x77);
    v.run();
    v.complete(Completion::Skip);
    v.hw().vmcs.insert(wn::GUEST_RSP, 0x8000);
    v.hw().vmcs.insert(wn::GUEST_RFLAGS, 0x202);
    let d = Delivery {
        irq: VirtualIrq::Timer,
        detail: 9,
        upcall: Upcall {
            entry: 0x40_0000,
            stack: 0x41_0000,
        },
    };
    assert!(v.deliver_upcall(d));
    assert!(!v.deliver_upcall(d), "one handler at a time");
    let hw = v.hw();
    assert_eq!(hw.field(wn::GUEST_RIP), 0x40_0000);
    assert_eq!(hw.field(wn::GUEST_RSP), 0x40_fff8);
    assert_eq!(hw.field(wn::GUEST_RFLAGS), 2);
    assert_eq!((v.regs().rdi, v.regs().rsi), (VirtualIrq::Timer.code(), 9));
    v.return_from_upcall();
    let hw = v.hw();
    assert_eq!(hw.field(wn::GUEST_RIP), AT + 2);
    assert_eq!(hw.field(wn::GUEST_RSP), 0x8000);
    assert_eq!(hw.field(wn::GUEST_RFLAGS), 0x202);
    assert_eq!(v.regs().rax, 0x77);
}
