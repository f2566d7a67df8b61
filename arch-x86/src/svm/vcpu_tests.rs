//! Host tests of the SVM vCPU against the model (`model.rs`): the VMCB it starts from, every exit
//! kind as `run` reports it, completions and where the guest resumes, the guest-owned MSRs, TLB
//! control and the MMIO glue. Interrupts and events are `interrupt_tests.rs`'s. Expected
//! intercept and control values are spelled out from the APM, not taken from the constants the
//! code uses, so a wrong constant fails here too.

extern crate std;

use super::enter::GuestRegs;
use super::exit::code;
use super::model::{
    config, exit_at, nothing, vcpu, vcpu_with, write_exit, Model, AT, ENTRY, KICK, MASKING, MISC1,
    QEMU_TCG,
};
use super::start::{VcpuConfig, PAT_DEFAULT};
use super::vcpu::{SvmVcpu, NOT_CREATED};
use super::vmcb::{off, Segment};
use super::SvmFeatures;
use vcpu::{Access, AccessSize, ArchVcpu, Completion, ShutdownKind, VmExit};

/// The second intercept word: VMRUN 0, VMMCALL 1, VMLOAD 2, VMSAVE 3, STGI 4, CLGI 5, SKINIT 6,
/// XSETBV 13.
const MISC2: u32 = 0x207f;
const EFER_SVME: u64 = 1 << 12;

/// An exit code, EXITINFO1, EXITINFO2, what the guest left in its registers, and the exit the
/// handler should see.
type ExitCase = (u64, u64, u64, fn(&mut GuestRegs), VmExit);

#[test]
fn the_control_area_intercepts_and_points_at_the_partition() {
    let mut v = vcpu();
    let iopm = v.iopm() as *const _ as u64;
    let vmcb = v.vmcb();
    assert_eq!(vmcb.read32(off::INTERCEPT_MISC1), MISC1);
    assert_eq!(vmcb.read32(off::INTERCEPT_MISC2), MISC2);
    assert_eq!(vmcb.read64(off::IOPM_BASE), iopm);
    let msrpm = vmcb.read64(off::MSRPM_BASE);
    assert!(msrpm != 0 && msrpm != iopm && msrpm.is_multiple_of(4096));
    assert_eq!(vmcb.read32(off::ASID), 3, "the CPU's ASID");
    assert_eq!(vmcb.read64(off::V_INTR), MASKING);
    assert_eq!(vmcb.read64(off::NP_CONTROL), 1);
    assert_eq!(vmcb.read64(off::N_CR3), 0x50_0000);
    assert_eq!(vmcb.read64(off::EVENTINJ), 0);
    assert_eq!(v.hw().flush_requests, 1, "a new vCPU flushes its ASID");
}

#[test]
fn the_guest_starts_in_64_bit_mode_with_its_boot_arguments() {
    let v = vcpu();
    let vmcb = v.vmcb();
    assert_eq!(vmcb.rip(), ENTRY);
    assert_eq!(vmcb.read64(off::EFER), 0x1500, "SVME, LMA, LME");
    assert_eq!(vmcb.read64(off::CR0), 0x8000_0031, "PG, NE, ET, PE");
    assert_eq!(vmcb.read64(off::CR3), 0x1000);
    assert_eq!(vmcb.read64(off::CR4), 0x20, "PAE");
    assert_eq!(vmcb.read64(off::RFLAGS), 2, "interrupts off");
    assert_eq!(vmcb.read64(off::G_PAT), PAT_DEFAULT);
    assert_eq!(vmcb.read64(off::DR7), 0x400);
    assert_eq!(vmcb.segment(off::CS), Segment::flat(0x08, 0xa9b));
    for at in [off::ES, off::SS, off::DS, off::FS, off::GS] {
        assert_eq!(vmcb.segment(at), Segment::flat(0x10, 0xc93));
    }
    let tr = vmcb.segment(off::TR);
    assert_eq!((tr.selector, tr.attrib, tr.limit), (0x18, 0x8b, 0x67));
    assert_eq!(vmcb.segment(off::IDTR), Segment::default(), "no IDT");
    let r = v.regs();
    assert_eq!([r.rdi, r.rsi, r.rdx, r.rcx, r.r8], [1, 2 | 1, 3, 4, 5]);
    assert_eq!(r.kick, KICK.as_ptr() as u64);
    let plain = vcpu_with(
        Model::new(),
        &VcpuConfig {
            flags_in_rsi: false,
            ..config()
        },
    );
    assert_eq!(
        plain.regs().rsi,
        2,
        "no VMMCALL flag outside the test guests' boot vCPU"
    );
}

#[test]
fn a_startup_vcpu_starts_in_real_mode_at_the_vector_page() {
    let v = vcpu_with(
        Model::new(),
        &VcpuConfig {
            entry: 0x9000,
            real_mode: true,
            ..config()
        },
    );
    let vmcb = v.vmcb();
    let cs = vmcb.segment(off::CS);
    assert_eq!(
        (cs.selector, cs.base, cs.limit, cs.attrib),
        (0x900, 0x9000, 0xffff, 0x9b)
    );
    assert_eq!(vmcb.rip(), 0);
    assert_eq!(
        vmcb.read64(off::EFER),
        EFER_SVME,
        "only SVME, which VMRUN needs"
    );
    assert_eq!(vmcb.read64(off::CR0), 0x10);
    assert_eq!((vmcb.read64(off::CR3), vmcb.read64(off::CR4)), (0, 0));
    assert_eq!(vmcb.read32(off::INTERCEPT_MISC1), MISC1);
}

#[test]
fn only_the_partitions_ports_pass_through() {
    let v = vcpu();
    let m = v.iopm();
    assert!(!m.exits(0x3f8) && !m.exits(0x3ff));
    assert!(m.exits(0x3f7) && m.exits(0x400) && m.exits(0x80) && m.exits(0xcf8));
}

#[test]
fn without_svm_the_vcpu_never_enters_and_says_so() {
    let mut model = Model::new();
    model.on = false;
    let mut v = vcpu_with(model, &config());
    assert_eq!(v.run(), VmExit::InvalidState { raw: NOT_CREATED });
    assert!(!v.inject_interrupt(0x30));
    assert_eq!(v.hw().entries.len(), 0);
    assert_eq!(v.hw().flush_requests, 0);
    let mut u = SvmVcpu::unavailable(Model::new(), "no page tables");
    assert_eq!(u.run(), VmExit::InvalidState { raw: NOT_CREATED });
    assert_eq!(u.hw().entries.len(), 0);
}

#[test]
fn every_exit_kind_reaches_the_handler_decoded() {
    let cases: [ExitCase; 16] = [
        (
            code::CPUID,
            0,
            0,
            |r| (r.rax, r.rcx) = (7, 1),
            VmExit::CpuId {
                leaf: 7,
                subleaf: 1,
            },
        ),
        (code::HLT, 0, 0, nothing, VmExit::Halt),
        (
            code::VMMCALL,
            0,
            0,
            |r| (r.rax, r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9) = (9, 1, 2, 3, 4, 5, 6),
            VmExit::Hypercall {
                code: 0,
                nr: 9,
                args: [1, 2, 3, 4, 5, 6],
            },
        ),
        (
            code::IOIO,
            (0x80 << 16) | (1 << 4),
            AT + 2,
            |r| r.rax = 0x1234,
            VmExit::PortOut {
                port: 0x80,
                size: AccessSize::Byte,
                value: 0x34,
            },
        ),
        (
            code::IOIO,
            (0x3fd << 16) | (1 << 6) | 1,
            AT + 1,
            nothing,
            VmExit::PortIn {
                port: 0x3fd,
                size: AccessSize::Word,
            },
        ),
        (
            code::MSR,
            0,
            0,
            |r| r.rcx = 0x1b,
            VmExit::MsrRead { msr: 0x1b },
        ),
        (
            code::MSR,
            1,
            0,
            |r| (r.rcx, r.rdx, r.rax) = (0x1b, 0xfee, 0xffff_ffff_0000_0900),
            VmExit::MsrWrite {
                msr: 0x1b,
                value: 0xfee_0000_0900,
            },
        ),
        (
            code::NPF,
            (1 << 32) | 0b110,
            0x4000_0010,
            nothing,
            VmExit::StageTwoFault {
                gpa: 0x4000_0010,
                access: Access::Write,
            },
        ),
        (
            code::NPF,
            (1 << 32) | 0b10100,
            0x4060_0000,
            nothing,
            VmExit::StageTwoFault {
                gpa: 0x4060_0000,
                access: Access::Execute,
            },
        ),
        (
            code::SHUTDOWN,
            0,
            0,
            nothing,
            VmExit::Shutdown {
                kind: ShutdownKind::TripleFault,
            },
        ),
        (
            code::NMI,
            0,
            0,
            nothing,
            VmExit::ExternalInterrupt { vector: 2 },
        ),
        (
            code::VINTR,
            0,
            0,
            nothing,
            VmExit::ExternalInterrupt { vector: 0x101 },
        ),
        (
            code::INVD,
            0,
            0,
            nothing,
            VmExit::ForbiddenInstruction { pc: AT, raw: 0x76 },
        ),
        (
            code::VMRUN,
            0,
            0,
            nothing,
            VmExit::ForbiddenInstruction { pc: AT, raw: 0x80 },
        ),
        // QEMU zero-extends VMEXIT_INVALID.
        (
            0xffff_ffff,
            0,
            0,
            nothing,
            VmExit::InvalidState { raw: 0xffff_ffff },
        ),
        (0x65, 0, 0, nothing, VmExit::Unknown { raw: 0x65 }),
    ];
    let mut v = vcpu();
    for (code, info1, info2, guest, expected) in cases {
        exit_at(&mut v, code, info1, info2, guest);
        assert_eq!(v.run(), expected, "exit code {code:#x}");
        v.complete(Completion::Retry);
    }
    assert_eq!(v.hw().entries.len(), 16);
    assert_eq!(v.hw().host_interrupts_taken, 0);
}

#[test]
fn completions_write_the_destination_and_resume_after_the_instruction() {
    let mut v = vcpu();
    exit_at(&mut v, code::CPUID, 0, 0, nothing);
    v.run();
    v.complete(Completion::CpuId([1, 2, 3, 4]));
    let r = *v.regs();
    assert_eq!([r.rax, r.rbx, r.rcx, r.rdx], [1, 2, 3, 4]);
    assert_eq!(v.vmcb().rip(), AT + 2);

    exit_at(&mut v, code::VMMCALL, 0, 0, nothing);
    v.run();
    v.complete(Completion::Value(-22i64 as u64));
    assert_eq!((v.regs().rax as i64, v.vmcb().rip()), (-22, AT + 3));

    // IN AL: the byte merges into rax; IOIO says where the instruction ends.
    exit_at(
        &mut v,
        code::IOIO,
        (0x60 << 16) | (1 << 4) | 1,
        AT + 2,
        |r| r.rax = 0x1111_2222,
    );
    v.run();
    v.complete(Completion::Value(0xab));
    assert_eq!((v.regs().rax, v.vmcb().rip()), (0x1111_22ab, AT + 2));

    exit_at(&mut v, code::MSR, 0, 0, |r| r.rcx = 0x1b);
    v.run();
    v.complete(Completion::Value(0x1122_3344_5566_7788));
    assert_eq!((v.regs().rax, v.regs().rdx), (0x5566_7788, 0x1122_3344));
    assert_eq!(v.vmcb().rip(), AT + 2);

    exit_at(&mut v, code::HLT, 0, 0, nothing);
    v.run();
    v.complete(Completion::Skip);
    assert_eq!(v.vmcb().rip(), AT + 1);

    exit_at(&mut v, code::NPF, 1 << 32, 0x7000, nothing);
    v.run();
    v.complete(Completion::Retry);
    assert_eq!(v.vmcb().rip(), AT);
    // The next VMRUN loads what the completion wrote.
    exit_at(&mut v, code::HLT, 0, 0, nothing);
    v.run();
    assert_eq!(v.hw().entries.last().unwrap().regs.rdx, 0x1122_3344);
}

#[test]
fn the_saved_next_rip_is_used_only_when_the_cpu_saves_one() {
    for (features, skip_to) in [
        (QEMU_TCG, AT + 1),
        (SvmFeatures::decode(1, 0x10, 0x9), AT + 5),
    ] {
        let mut model = Model::new();
        model.features = features;
        let mut v = vcpu_with(model, &config());
        v.hw().exit_with(|vmcb, _| {
            vmcb.set_rip(AT);
            // Whatever the field holds without the feature is not a next RIP.
            vmcb.write64(off::NRIP, AT + 5);
            write_exit(vmcb, code::HLT, 0, 0, 0);
        });
        v.run();
        v.complete(Completion::Skip);
        assert_eq!(v.vmcb().rip(), skip_to, "{features:?}");
    }
}

#[test]
fn efer_and_pat_are_emulated_without_reaching_the_handler() {
    let mut v = vcpu();
    exit_at(&mut v, code::MSR, 0, 0, |r| r.rcx = 0xc000_0080);
    exit_at(&mut v, code::MSR, 1, 0, |r| {
        (r.rcx, r.rdx, r.rax) = (0xc000_0080, 0, 0x801)
    });
    exit_at(&mut v, code::MSR, 1, 0, |r| {
        (r.rcx, r.rdx, r.rax) = (0x277, 0x0006_0606, 0x0106_0406)
    });
    exit_at(&mut v, code::MSR, 0, 0, |r| r.rcx = 0x277);
    exit_at(&mut v, code::HLT, 0, 0, nothing);
    assert_eq!(v.run(), VmExit::Halt, "four MSR exits handled in place");
    let e = v.hw().entries.clone();
    assert_eq!(e.len(), 5);
    assert!(
        e[1..].iter().all(|e| e.rip == AT + 2),
        "each RDMSR/WRMSR skipped"
    );
    assert_eq!(e[1].regs.rax, 0x500, "EFER reads back without SVME");
    assert_eq!(e[1].regs.rdx, 0);
    // The written EFER (SCE, NXE) keeps LMA from the CPU and SVME for VMRUN.
    assert_eq!(v.vmcb().read64(off::EFER), 0x801 | (1 << 10) | EFER_SVME);
    assert_eq!(v.vmcb().read64(off::G_PAT), 0x0006_0606_0106_0406);
    assert_eq!(
        (e[4].regs.rax, e[4].regs.rdx),
        (0x0106_0406, 0x0006_0606),
        "PAT reads back what was written"
    );
    // A PAT with an undefined memory type (2) is the handler's to refuse.
    v.complete(Completion::Retry);
    exit_at(&mut v, code::MSR, 1, 0, |r| {
        (r.rcx, r.rdx, r.rax) = (0x277, 0, 2)
    });
    assert_eq!(
        v.run(),
        VmExit::MsrWrite {
            msr: 0x277,
            value: 2
        }
    );
    assert_eq!(v.vmcb().read64(off::G_PAT), 0x0006_0606_0106_0406);
}

#[test]
fn a_requested_flush_rides_on_exactly_one_vmrun() {
    for (features, flush) in [(QEMU_TCG, 1u8), (SvmFeatures::decode(1, 0x10, 0x41), 3u8)] {
        let mut model = Model::new();
        model.features = features;
        let mut v = vcpu_with(model, &config());
        for _ in 0..3 {
            exit_at(&mut v, code::HLT, 0, 0, nothing);
        }
        v.run();
        v.complete(Completion::Skip);
        v.run();
        v.complete(Completion::Skip);
        // The partition layer's flush of this CPU.
        v.hw().flush = true;
        v.run();
        let controls: std::vec::Vec<u8> = v.hw().entries.iter().map(|e| e.tlb_control).collect();
        assert_eq!(controls, [flush, 0, flush], "{features:?}");
    }
}

#[test]
fn a_device_window_fault_becomes_mmio_through_the_host_and_completes_after_it() {
    let mut v = vcpu();
    let read = VmExit::MmioRead {
        gpa: 0xfec0_0010,
        size: AccessSize::Word,
    };
    v.hw().mmio.next = Some((read, 3));
    exit_at(&mut v, code::NPF, 1 << 32, 0xfec0_0010, nothing);
    assert_eq!(v.run(), read);
    assert_eq!(
        v.hw().mmio.cr3,
        [0x1000],
        "decoded under the guest's page tables"
    );
    v.complete(Completion::Value(0xab));
    assert_eq!((v.regs().rax, v.vmcb().rip()), (0xab, AT + 3));
}
