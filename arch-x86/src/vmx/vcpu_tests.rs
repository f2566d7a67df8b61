//! Host tests of the VMX vCPU against the VMCS model (`model.rs`): the exact VMCS it starts with
//! (64-bit and real-mode starts, host state, controls), creation failures, every exit kind as
//! `run` reports it, entry failures, completions and where the guest resumes, the EFER accesses
//! it emulates, the preemption timer, the MMIO glue and the INVEPT of a flush. Interrupts,
//! events and upcalls are `interrupt_tests.rs`'s. Field encodings and control values are
//! spelled out from the SDM where the test is about them, so a wrong constant fails here too.

extern crate std;

use super::enter::GuestRegs;
use super::exit::{reason, INTERRUPT_WINDOW_VECTOR, PREEMPTION_TIMER_VECTOR};
use super::fields::{w16, w32, w64, wn};
use super::instr::InvType;
use super::model::{
    config, exit, nothing, vcpu, vcpu_with, Model, Step, Vmcs, AT, ENTRY, EPTP, HOST, KICK, VPID,
};
use super::start::{VcpuConfig, PAT_DEFAULT};
use super::vcpu::{flush_ept, VmxVcpu, ENTRY_INSTRUCTION_FAILED};
use super::VmFail;
use vcpu::{Access, AccessSize, ArchVcpu, Completion, ShutdownKind, VmExit};

/// Bochs Skylake-X's controls with what Septum asks for (SDM Vol. 3C §25.6-25.8): pin = its
/// must-be-one 0x16 + external interrupts (0) + NMIs (3) + preemption timer (6); proc = its
/// 0x04006172 + HLT (7) + I/O bitmaps (25) + MSR bitmaps (28) + secondary (31); proc2 = EPT (1),
/// VPID (5), unrestricted guest (7); exit = its 0x36dfb + host 64-bit (9), acknowledge (15),
/// save/load PAT (18, 19), save/load EFER (20, 21); entry = its 0x11fb + load PAT (14) and
/// EFER (15), + IA-32e guest (9) for a 64-bit start.
const PIN: u64 = 0x5f;
const PROC: u64 = 0x9600_61f2;
const PROC2: u64 = 0xa2;
const EXIT: u64 = 0x3f_effb;
const ENTRY_64: u64 = 0xd3fb;
const ENTRY_REAL: u64 = 0xd1fb;

/// The start VMCS of the [`config`] vCPU, every field of it, built independently of `start.rs`.
fn expected_64_bit_start(v: &mut VmxVcpu<Model>) -> Vmcs {
    let io = v.io_bitmap() as *const _ as u64;
    let msr = v.hw().field(w64::MSR_BITMAP);
    let mut m = Vmcs::new();
    let mut set = |pairs: &[(u32, u64)]| m.extend(pairs.iter().copied());
    set(&[
        (w32::PIN_CONTROLS, PIN),
        (w32::PROC_CONTROLS, PROC),
        (w32::PROC_CONTROLS2, PROC2),
        (w32::EXIT_CONTROLS, EXIT),
        (w32::ENTRY_CONTROLS, ENTRY_64),
        (w32::EXCEPTION_BITMAP, 0),
        (w32::CR3_TARGET_COUNT, 0),
        (w32::EXIT_MSR_STORE_COUNT, 0),
        (w32::EXIT_MSR_LOAD_COUNT, 0),
        (w32::ENTRY_MSR_LOAD_COUNT, 0),
        (w32::ENTRY_INTERRUPTION_INFO, 0),
        (w64::IO_BITMAP_A, io),
        (w64::IO_BITMAP_B, io + 4096),
        (w64::MSR_BITMAP, msr),
        (w64::EPT_POINTER, EPTP),
        (w16::VPID, VPID.into()),
        (w64::VMCS_LINK_POINTER, u64::MAX),
    ]);
    set(&[
        (wn::HOST_CR0, HOST.cr0),
        (wn::HOST_CR3, HOST.cr3),
        (wn::HOST_CR4, HOST.cr4),
        (w16::HOST_CS_SELECTOR, 0x08),
        (w16::HOST_SS_SELECTOR, 0x10),
        (w16::HOST_DS_SELECTOR, 0x10),
        (w16::HOST_ES_SELECTOR, 0x10),
        (w16::HOST_FS_SELECTOR, 0),
        (w16::HOST_GS_SELECTOR, 0),
        (w16::HOST_TR_SELECTOR, 0x18),
        (wn::HOST_FS_BASE, 0),
        (wn::HOST_GS_BASE, HOST.gs_base),
        (wn::HOST_TR_BASE, HOST.tr_base),
        (wn::HOST_GDTR_BASE, HOST.gdtr_base),
        (wn::HOST_IDTR_BASE, HOST.idtr_base),
        (w32::HOST_SYSENTER_CS, 0),
        (wn::HOST_SYSENTER_ESP, 0),
        (wn::HOST_SYSENTER_EIP, 0),
        (w64::HOST_EFER, HOST.efer),
        (w64::HOST_PAT, HOST.pat),
    ]);
    set(&[
        // PG, NE, ET, PE (CR0_FIXED0 0x80000021 is already in it); CR4 PAE + VMXE (fixed).
        (wn::GUEST_CR0, 0x8000_0031),
        (wn::GUEST_CR3, 0x1000),
        (wn::GUEST_CR4, 0x2020),
        (wn::CR0_GUEST_HOST_MASK, 0x20),
        (wn::CR0_READ_SHADOW, 0x8000_0031),
        (wn::CR4_GUEST_HOST_MASK, 0x2000),
        (wn::CR4_READ_SHADOW, 0x20),
        (w64::GUEST_EFER, 0x500),
        (w64::GUEST_PAT, PAT_DEFAULT),
        (w64::GUEST_DEBUGCTL, 0),
        (w16::GUEST_CS_SELECTOR, 0x08),
        (wn::GUEST_CS_BASE, 0),
        (w32::GUEST_CS_LIMIT, 0xffff_ffff),
        (w32::GUEST_CS_AR, 0xa09b),
        (w16::GUEST_TR_SELECTOR, 0x18),
        (wn::GUEST_TR_BASE, 0),
        (w32::GUEST_TR_LIMIT, 0x67),
        (w32::GUEST_TR_AR, 0x8b),
        (w16::GUEST_LDTR_SELECTOR, 0),
        (wn::GUEST_LDTR_BASE, 0),
        (w32::GUEST_LDTR_LIMIT, 0),
        (w32::GUEST_LDTR_AR, 0x1_0000),
        (wn::GUEST_GDTR_BASE, 0),
        (w32::GUEST_GDTR_LIMIT, 0),
        (wn::GUEST_IDTR_BASE, 0),
        (w32::GUEST_IDTR_LIMIT, 0),
        (wn::GUEST_DR7, 0x400),
        (wn::GUEST_RSP, 0),
        (wn::GUEST_RIP, ENTRY),
        (wn::GUEST_RFLAGS, 2),
        (wn::GUEST_PENDING_DEBUG, 0),
        (w32::GUEST_INTERRUPTIBILITY, 0),
        (w32::GUEST_ACTIVITY_STATE, 0),
        (w32::GUEST_SYSENTER_CS, 0),
        (wn::GUEST_SYSENTER_ESP, 0),
        (wn::GUEST_SYSENTER_EIP, 0),
    ]);
    for [sel, base, limit, ar] in DATA_SEGMENTS {
        set(&[(sel, 0x10), (base, 0), (limit, 0xffff_ffff), (ar, 0xc093)]);
    }
    m
}

/// DS, ES, SS, FS, GS: selector, base, limit, access rights.
const DATA_SEGMENTS: [[u32; 4]; 5] = [
    [0x0806, 0x680c, 0x4806, 0x481a],
    [0x0800, 0x6806, 0x4800, 0x4814],
    [0x0804, 0x680a, 0x4804, 0x4818],
    [0x0808, 0x680e, 0x4808, 0x481c],
    [0x080a, 0x6810, 0x480a, 0x481e],
];

#[test]
fn the_vmcs_starts_with_exactly_the_64_bit_start_state() {
    let mut v = vcpu();
    let expected = expected_64_bit_start(&mut v);
    assert_eq!(v.hw().vmcs, expected);
}

#[test]
fn the_start_state_uses_the_sdm_encodings() {
    let mut v = vcpu();
    let hw = v.hw();
    for (field, value) in [
        (0x4000, PIN),
        (0x4002, PROC),
        (0x401e, PROC2),
        (0x400c, EXIT),
        (0x4012, ENTRY_64),
        (0x201a, EPTP),
        (0x0000, 3),
        (0x2800, u64::MAX),
        (0x6800, 0x8000_0031),
        (0x6802, 0x1000),
        (0x6804, 0x2020),
        (0x6006, 0x20),
        (0x2806, 0x500),
        (0x681e, ENTRY),
        (0x6820, 2),
        (0x0802, 0x08),
        (0x4816, 0xa09b),
        (0x080e, 0x18),
        (0x4822, 0x8b),
        (0x6c0c, HOST.gdtr_base),
        (0x6c0a, HOST.tr_base),
        (0x2c02, HOST.efer),
    ] {
        assert_eq!(hw.field(field), value, "field {field:#06x}");
    }
    let io = hw.field(0x2000);
    assert_eq!(hw.field(0x2002), io + 4096, "I/O bitmap B follows A");
    assert!(io.is_multiple_of(4096) && hw.field(0x2004).is_multiple_of(4096));
}

#[test]
fn a_real_mode_start_is_what_a_startup_ipi_gives() {
    let mut v = vcpu_with(
        Model::new(),
        &VcpuConfig {
            real_mode: true,
            entry: 0x9_a000,
            ..config()
        },
    );
    let mut expected = expected_64_bit_start(&mut vcpu());
    expected.extend([
        (w32::ENTRY_CONTROLS, ENTRY_REAL),
        // ET, NE; PE and PG cleared although CR0_FIXED0 has them (unrestricted guest).
        (wn::GUEST_CR0, 0x30),
        (wn::CR0_READ_SHADOW, 0x30),
        (wn::GUEST_CR3, 0),
        (wn::GUEST_CR4, 0x2000),
        (wn::CR4_READ_SHADOW, 0),
        (w64::GUEST_EFER, 0),
        (w16::GUEST_CS_SELECTOR, 0x9a00),
        (wn::GUEST_CS_BASE, 0x9_a000),
        (w32::GUEST_CS_LIMIT, 0xffff),
        (w32::GUEST_CS_AR, 0x9b),
        (w16::GUEST_TR_SELECTOR, 0),
        (w32::GUEST_TR_LIMIT, 0xffff),
        (w32::GUEST_GDTR_LIMIT, 0xffff),
        (w32::GUEST_IDTR_LIMIT, 0xffff),
        (wn::GUEST_RIP, 0),
    ]);
    for [sel, base, limit, ar] in DATA_SEGMENTS {
        expected.extend([(sel, 0), (base, 0), (limit, 0xffff), (ar, 0x93)]);
    }
    // Only the bitmap addresses differ between two vCPUs.
    for field in [w64::IO_BITMAP_A, w64::IO_BITMAP_B, w64::MSR_BITMAP] {
        expected.insert(field, v.hw().field(field));
    }
    assert_eq!(v.hw().vmcs, expected);
}

#[test]
fn creation_invalidates_the_vpid_and_lets_the_guest_use_its_ports() {
    let mut v = vcpu();
    assert_eq!(v.hw().invvpid, [(InvType::SingleContext, VPID, 0)]);
    assert!(v.hw().invept.is_empty());
    assert!(!v.io_bitmap().exits(0x3f8) && !v.io_bitmap().exits(0x3ff));
    assert!(v.io_bitmap().exits(0x3f7) && v.io_bitmap().exits(0x400));
    let r = v.regs();
    assert_eq!([r.rdi, r.rsi, r.rdx, r.rcx, r.r8], [1, 2, 3, 4, 5]);
    assert_eq!(r.kick, KICK.as_ptr() as u64);
    let mut model = Model::new();
    model.caps.ept_vpid.invvpid = false;
    let mut v = vcpu_with(model, &config());
    assert!(v.hw().invvpid.is_empty(), "no INVVPID without VPID");
}

#[test]
fn a_vcpu_that_could_not_be_created_reports_it_and_never_enters() {
    let mut refused = Model::new();
    refused.caps.procbased2.may_be_one &= !(1 << 7);
    let mut refusing = Model::new();
    refusing.refuse = Some(w32::GUEST_TR_AR);
    for model in [refused, refusing] {
        let mut v = vcpu_with(model, &config());
        v.hw().script.push_back(Step::Kicked);
        assert_eq!(
            v.run(),
            VmExit::InvalidState {
                raw: ENTRY_INSTRUCTION_FAILED
            }
        );
        assert_eq!(v.hw().script.len(), 1, "no entry was tried");
        assert!(!v.inject_interrupt(0x30));
    }
    let mut u = VmxVcpu::unavailable(Model::new(), "no VMX here");
    assert_eq!(u.run(), VmExit::InvalidState { raw: 1 << 32 });
    assert!(u.hw().vmcs.is_empty());
}

/// A guest that made a CPUID, port, MSR or hypercall request.
fn requester(r: &mut GuestRegs) {
    *r = GuestRegs {
        rax: 0x1234_5678,
        rcx: 0x1b,
        rdx: 0xaa,
        rdi: 1,
        rsi: 2,
        r10: 4,
        r8: 5,
        r9: 6,
        ..*r
    };
}

#[test]
fn every_exit_kind_decodes() {
    let cases: [(u16, u64, VmExit); 12] = [
        (
            reason::CPUID,
            0,
            VmExit::CpuId {
                leaf: 0x1234_5678,
                subleaf: 0x1b,
            },
        ),
        (reason::HLT, 0, VmExit::Halt),
        (
            reason::VMCALL,
            0,
            VmExit::Hypercall {
                code: 0,
                nr: 0x1234_5678,
                args: [1, 2, 0xaa, 4, 5, 6],
            },
        ),
        (
            reason::IO_INSTRUCTION,
            0x3f8 << 16,
            VmExit::PortOut {
                port: 0x3f8,
                size: AccessSize::Byte,
                value: 0x78,
            },
        ),
        (
            reason::IO_INSTRUCTION,
            0x71 << 16 | 8 | 1,
            VmExit::PortIn {
                port: 0x71,
                size: AccessSize::Half,
            },
        ),
        (reason::RDMSR, 0, VmExit::MsrRead { msr: 0x1b }),
        (
            reason::WRMSR,
            0,
            VmExit::MsrWrite {
                msr: 0x1b,
                value: 0xaa_1234_5678,
            },
        ),
        (
            reason::TRIPLE_FAULT,
            0,
            VmExit::Shutdown {
                kind: ShutdownKind::TripleFault,
            },
        ),
        (
            reason::PREEMPTION_TIMER,
            0,
            VmExit::ExternalInterrupt {
                vector: PREEMPTION_TIMER_VECTOR,
            },
        ),
        (
            reason::VMXON,
            0,
            VmExit::ForbiddenInstruction { pc: AT, raw: 27 },
        ),
        (
            reason::INVD,
            0,
            VmExit::ForbiddenInstruction { pc: AT, raw: 13 },
        ),
        (37, 0, VmExit::Unknown { raw: 37 }),
    ];
    let mut v = vcpu();
    for (basic, qualification, expected) in cases {
        let e = super::model::Exit {
            qualification,
            ..exit(basic)
        };
        v.hw().exit(e, requester);
        assert_eq!(v.run(), expected, "exit reason {basic}");
        v.complete(Completion::Retry);
    }
    let mut ept = super::model::Exit {
        qualification: 0x182,
        gpa: 0x400_0000,
        ..exit(reason::EPT_VIOLATION)
    };
    v.hw().exit(ept, nothing);
    let write = VmExit::StageTwoFault {
        gpa: 0x400_0000,
        access: Access::Write,
    };
    assert_eq!(v.run(), write);
    ept.qualification = 0x84;
    v.hw().exit(ept, nothing);
    assert!(matches!(
        v.run(),
        VmExit::StageTwoFault {
            access: Access::Execute,
            ..
        }
    ));
    // Bit 31: the entry itself failed on the guest state (reason 33).
    v.hw().exit(
        super::model::Exit {
            reason: 0x8000_0021,
            ..exit(0)
        },
        nothing,
    );
    assert_eq!(v.run(), VmExit::InvalidState { raw: 0x8000_0021 });
    assert!(v.hw().ended.is_empty() && v.hw().nmi_unblocks == 0);
}

#[test]
fn the_first_entry_launches_and_later_ones_resume() {
    let mut v = vcpu();
    for _ in 0..3 {
        v.hw().exit(exit(reason::HLT), nothing);
        assert_eq!(v.run(), VmExit::Halt);
        v.complete(Completion::Skip);
    }
    let resumes: std::vec::Vec<bool> = v.hw().entries.iter().map(|e| e.resume).collect();
    assert_eq!(resumes, [false, true, true]);
    assert_eq!(v.hw().entries[0].rip, ENTRY);
    assert_eq!(v.hw().entries[1].rip, AT + 2, "HLT skipped");
}

#[test]
fn a_failed_vmlaunch_reports_the_instruction_error() {
    let mut v = vcpu();
    v.hw().script.push_back(Step::Fail(VmFail::Valid, 7));
    assert_eq!(v.run(), VmExit::InvalidState { raw: (1 << 32) | 7 });
    v.hw().script.push_back(Step::Fail(VmFail::Invalid, 7));
    assert_eq!(v.run(), VmExit::InvalidState { raw: 1 << 32 });
    v.hw().exit(exit(reason::HLT), nothing);
    v.run();
    assert!(!v.hw().entries[0].resume, "nothing was launched yet");
}

#[test]
fn completions_write_results_and_advance_by_the_instruction_length() {
    let mut v = vcpu();
    let in_al = super::model::Exit {
        qualification: 0x60 << 16 | 8,
        len: 1,
        ..exit(reason::IO_INSTRUCTION)
    };
    v.hw().exit(in_al, |r| r.rax = u64::MAX);
    assert!(matches!(v.run(), VmExit::PortIn { port: 0x60, .. }));
    v.complete(Completion::Value(0x12));
    assert_eq!(v.regs().rax, 0xffff_ffff_ffff_ff12, "AL only");
    assert_eq!(v.hw().field(wn::GUEST_RIP), AT + 1);
    let cpuid = super::model::Exit {
        len: 2,
        ..exit(reason::CPUID)
    };
    v.hw().exit(cpuid, nothing);
    v.run();
    v.complete(Completion::CpuId([1, 2, 3, 4]));
    let r = v.regs();
    assert_eq!((r.rax, r.rbx, r.rcx, r.rdx), (1, 2, 3, 4));
    assert_eq!(v.hw().field(wn::GUEST_RIP), AT + 2);
    let rdmsr = super::model::Exit {
        len: 3,
        ..exit(reason::RDMSR)
    };
    v.hw().exit(rdmsr, |r| r.rcx = 0x1b);
    v.run();
    v.complete(Completion::Value(0x1_0000_0002));
    assert_eq!((v.regs().rax, v.regs().rdx), (2, 1));
    assert_eq!(v.hw().field(wn::GUEST_RIP), AT + 3);
    v.hw().exit(exit(reason::VMCALL), nothing);
    v.run();
    v.complete(Completion::Retry);
    assert_eq!(
        v.hw().field(wn::GUEST_RIP),
        AT,
        "a retry stays on the instruction"
    );
}

#[test]
fn efer_writes_are_emulated_without_leaving_run() {
    let mut v = vcpu();
    // wrmsr EFER = SCE | LME | LMA | NXE | SVME: LMA stays the CPU's, SVME is not the guest's.
    v.hw().exit(exit(reason::WRMSR), |r| {
        r.rcx = 0xc000_0080;
        r.rax = 0x1d01;
        r.rdx = 0;
    });
    v.hw().exit(exit(reason::HLT), nothing);
    assert_eq!(v.run(), VmExit::Halt);
    assert_eq!(v.hw().entries.len(), 2);
    assert_eq!(v.hw().entries[1].rip, AT + 2, "past the WRMSR");
    assert_eq!(v.hw().field(w64::GUEST_EFER), 0xd01 | 0x400);
    v.complete(Completion::Skip);
    let rdmsr = super::model::Exit {
        len: 3,
        ..exit(reason::RDMSR)
    };
    v.hw().exit(rdmsr, |r| r.rcx = 0xc000_0080);
    v.hw().exit(exit(reason::HLT), nothing);
    assert_eq!(v.run(), VmExit::Halt);
    assert_eq!((v.regs().rax, v.regs().rdx), (0xd01 | 0x400, 0));
    assert_eq!(v.hw().entries[3].rip, AT + 3);
}

#[test]
fn the_ia32e_entry_control_follows_efer_lma() {
    // A STARTUP-IPI vCPU whose guest turned paging on with LME: the CPU set LMA.
    let mut v = vcpu_with(
        Model::new(),
        &VcpuConfig {
            real_mode: true,
            ..config()
        },
    );
    v.hw().exit_with(|vmcs, _| {
        exit(reason::HLT).write(vmcs);
        vmcs.insert(w64::GUEST_EFER, 0x500);
    });
    v.run();
    v.complete(Completion::Skip);
    v.hw().exit_with(|vmcs, _| {
        exit(reason::HLT).write(vmcs);
        vmcs.insert(w64::GUEST_EFER, 0);
    });
    v.run();
    v.complete(Completion::Skip);
    v.hw().exit(exit(reason::HLT), nothing);
    v.run();
    let controls: std::vec::Vec<u64> = v.hw().entries.iter().map(|e| e.entry_controls).collect();
    assert_eq!(controls, [ENTRY_REAL, ENTRY_64, ENTRY_REAL]);
}

#[test]
fn each_entry_loads_the_preemption_countdown() {
    let mut v = vcpu();
    v.hw().exit(exit(reason::HLT), nothing);
    v.run();
    v.complete(Completion::Skip);
    v.hw().countdown = Some(0x1234);
    v.hw().exit(exit(reason::PREEMPTION_TIMER), nothing);
    assert_eq!(
        v.run(),
        VmExit::ExternalInterrupt {
            vector: PREEMPTION_TIMER_VECTOR
        }
    );
    assert_eq!(v.hw().entries[0].preemption, None);
    assert_eq!(v.hw().entries[1].preemption, Some(0x1234));
    assert_ne!(PREEMPTION_TIMER_VECTOR, INTERRUPT_WINDOW_VECTOR);
}

#[test]
fn an_mmio_fault_decodes_under_the_guest_cr3_and_completes_past_the_instruction() {
    let mut v = vcpu();
    let read = VmExit::MmioRead {
        gpa: 0xfec0_0000,
        size: AccessSize::Word,
    };
    v.hw().mmio.next = Some((read, 6));
    v.hw().exit_with(|vmcs, _| {
        super::model::Exit {
            gpa: 0xfec0_0000,
            qualification: 0x181,
            len: 0xdead,
            ..exit(reason::EPT_VIOLATION)
        }
        .write(vmcs);
        vmcs.insert(wn::GUEST_CR3, 0x7000);
    });
    assert_eq!(v.run(), read);
    assert_eq!(v.hw().mmio.cr3, [0x7000]);
    v.complete(Completion::Value(0x11));
    assert_eq!(v.regs().rax, 0x11);
    assert_eq!(
        v.hw().field(wn::GUEST_RIP),
        AT + 6,
        "the decoded length, not the field's"
    );
}

#[test]
fn a_flush_is_one_invept_of_the_partition_or_of_all_where_single_is_missing() {
    let mut hw = Model::new();
    flush_ept(&mut hw, EPTP).unwrap();
    hw.caps.ept_vpid.invept_single = false;
    flush_ept(&mut hw, EPTP).unwrap();
    assert_eq!(
        hw.invept,
        [(InvType::SingleContext, EPTP), (InvType::AllContexts, EPTP)]
    );
    assert_eq!(
        (InvType::SingleContext as u64, InvType::AllContexts as u64),
        (1, 2)
    );
}
