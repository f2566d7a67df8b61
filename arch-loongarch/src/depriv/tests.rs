//! Host tests of the deprivileged vCPU against the model: the first entry (translation, mode, boot
//! registers), each Ecode decoded into its `VmExit` (interrupts with their acknowledgement,
//! stage-2 faults on the partition's memory, device loads and stores decoded from BADI,
//! hypercalls, IOCSR accesses to the mailbox, forbidden instructions), the completions (the
//! destination register, ERA stepped or not), and upcalls (the handler's entry, nesting refused,
//! the exact return). BADI words are real LoongArch encodings.

extern crate std;

use super::model::{Exit, Model};
use super::{asid, DeprivilegedVcpu, VcpuConfig, PRMD_GUEST};
use ::vcpu::ipi_mailbox::exit_word;
use ::vcpu::{Access, AccessSize, ArchVcpu, Completion, Delivery, Upcall, VirtualIrq, VmExit};
use std::vec;
use std::vec::Vec;

const ENTRY: u64 = 0x20_0000;
const ROOT: u64 = 0x22_4000;
const ASID: u64 = 3;
const ARGS: [u64; 5] = [1, 2, 3, 0x20_0000_0000, 0x200_0000];
/// Where the scripted exits happen.
const PC: u64 = ENTRY + 0x40;
/// Inside the partition's memory (the model owns the first 32 MiB).
const RAM: u64 = 0x40_8010;
/// Outside it: a device.
const DEVICE: u64 = 0x1fe0_01e0;

// Instruction words: rd in bits 4:0, rj in 9:5.
/// `ld.w $r6, $r12, 0`
const LD_W_R6: u32 = 0x2880_0186;
/// `ld.bu $r6, $r12, 0x1e5`
const LD_BU_R6: u32 = 0x2a07_9586;
/// `ld.d $r6, $r12, 0x100`
const LD_D_R6: u32 = 0x28c4_0186;
/// `ld.w $zero, $r12, 0`
const LD_W_R0: u32 = 0x2880_0180;
/// `st.b $r13, $r12, 0x1e0`
const ST_B_R13: u32 = 0x2907_818d;
/// `st.w $r13, $r12, 0x200`
const ST_W_R13: u32 = 0x2988_018d;
/// `st.d $r13, $r12, 0`
const ST_D_R13: u32 = 0x29c0_018d;
/// `amswap.w $r6, $r7, $r12`: an atomic, never emulated on device memory.
const AMSWAP_W: u32 = 0x3860_1d86;
/// `syscall 0`
const SYSCALL: u32 = 0x002b_0000;
/// `iocsrrd.w $a0, $a1`
const IOCSRRD_W: u32 = 0x0648_08a4;
/// `iocsrrd.w $zero, $a1`
const IOCSRRD_W_R0: u32 = 0x0648_08a0;
/// `iocsrwr.d $a0, $a1`
const IOCSRWR_D: u32 = 0x0648_1ca4;
/// `iocsrwr.b $a0, $a1`
const IOCSRWR_B: u32 = 0x0648_10a4;
/// `csrrd $a1, 0x5`
const CSRRD: u32 = 0x0400_1405;
/// `idle 0`
const IDLE: u32 = 0x0648_8000;

/// The value the guest leaves in `$rn` before each scripted exit (`r13`, a store's data, and
/// `a0`/`a1`, an IOCSR access's data and address, chosen to show masking and register choice).
fn guest_reg(n: usize) -> u64 {
    match n {
        4 => 0xfedc_ba98_7654_3210,
        5 => 0x1040,
        13 => 0x1234_5678_9abc_def0,
        n => 0x100 + n as u64,
    }
}

/// An exit at PC with Ecode `ecode`, BADV `badv` and BADI `badi`, every register set by
/// [`guest_reg`].
fn exit(ecode: u64, badv: u64, badi: u32) -> Exit {
    Exit {
        estat: ecode << 16,
        era: PC,
        badv,
        badi,
        writes: (1..32).map(|n| (n, guest_reg(n))).collect(),
    }
}

fn vcpu(exits: impl IntoIterator<Item = Exit>) -> DeprivilegedVcpu<Model> {
    DeprivilegedVcpu::new(
        Model::new(exits),
        VcpuConfig {
            root: ROOT,
            asid: ASID,
            entry: ENTRY,
            args: ARGS,
        },
    )
}

/// The exit of a vCPU that runs once into `e`.
fn decode(e: Exit) -> VmExit {
    vcpu([e]).run()
}

/// The registers after an exit through [`exit`], with `changes` applied.
fn regs_with(changes: &[(usize, u64)]) -> [u64; 32] {
    let mut r = [0; 32];
    for (n, v) in r.iter_mut().enumerate().skip(1) {
        *v = guest_reg(n);
    }
    for &(n, v) in changes {
        r[n] = v;
    }
    r
}

#[test]
fn asid_is_the_partition_id_plus_one() {
    assert_eq!(asid(0), 1);
    assert_eq!(asid(7), 8);
}

#[test]
fn first_entry_is_at_plv3_at_the_boot_entry_with_the_partition_translation() {
    let mut v = vcpu([exit(0xb, 0, SYSCALL), exit(0xb, 0, SYSCALL)]);
    v.run();
    v.complete(Completion::Value(0));
    v.run();
    let entries = &v.hw().entries;
    assert_eq!(entries.len(), 2);
    for e in entries {
        assert_eq!((e.root, e.asid), (ROOT, ASID), "every entry");
        assert_eq!(e.ctx.prmd, PRMD_GUEST);
    }
    let first = entries[0].ctx;
    assert_eq!(first.era, ENTRY);
    let mut regs = [0; 32];
    regs[4..9].copy_from_slice(&ARGS);
    assert_eq!(first.regs, regs, "a0-a4 the boot arguments, the rest 0");
    assert_eq!(entries[1].ctx.era, PC + 4);
}

#[test]
fn an_interrupt_is_acknowledged_and_reported_with_its_vector() {
    let ipi = Exit {
        estat: 1 << 12 | 1 << 11,
        ..exit(0, 0, 0)
    };
    let timer = Exit {
        estat: 1 << 11,
        ..exit(0, 0, 0)
    };
    let mut v = vcpu([ipi, timer]);
    assert_eq!(v.run(), VmExit::ExternalInterrupt { vector: 12 });
    v.complete(Completion::Retry);
    assert_eq!(v.run(), VmExit::ExternalInterrupt { vector: 11 });
    assert_eq!(v.hw().acks, vec![0x1800, 0x800]);
}

#[test]
fn only_an_interrupt_is_acknowledged() {
    let mut v = vcpu([Exit {
        estat: 0xb << 16 | 1 << 12,
        ..exit(0, 0, SYSCALL)
    }]);
    v.run();
    assert!(v.hw().acks.is_empty());
}

#[test]
fn page_invalid_on_the_partitions_memory_is_a_stage_two_fault() {
    // Even with a decodable load or store in BADI: the table fixes it, no device sees it.
    assert_eq!(
        decode(exit(0x1, RAM, LD_W_R6)),
        VmExit::StageTwoFault {
            gpa: RAM,
            access: Access::Read
        }
    );
    assert_eq!(
        decode(exit(0x2, RAM, ST_W_R13)),
        VmExit::StageTwoFault {
            gpa: RAM,
            access: Access::Write
        }
    );
}

#[test]
fn a_device_load_is_decoded_from_badi_and_completes_into_rd_extended() {
    for (badi, size, value, result) in [
        (
            LD_W_R6,
            AccessSize::Word,
            0xfeed_face,
            0xffff_ffff_feed_face,
        ),
        (LD_BU_R6, AccessSize::Byte, 0x1ff, 0xff),
        (
            LD_D_R6,
            AccessSize::Double,
            0x8000_0000_0000_0001,
            0x8000_0000_0000_0001,
        ),
    ] {
        let mut v = vcpu([exit(0x1, DEVICE, badi)]);
        assert_eq!(v.run(), VmExit::MmioRead { gpa: DEVICE, size });
        v.complete(Completion::Value(value));
        assert_eq!(v.context().regs, regs_with(&[(6, result)]), "{badi:#x}");
        assert_eq!(v.context().era, PC + 4);
    }
}

#[test]
fn a_device_store_sends_rd_masked_to_its_width() {
    for (badi, size, value) in [
        (ST_B_R13, AccessSize::Byte, 0xf0),
        (ST_W_R13, AccessSize::Word, 0x9abc_def0),
        (ST_D_R13, AccessSize::Double, 0x1234_5678_9abc_def0),
    ] {
        let mut v = vcpu([exit(0x2, DEVICE, badi)]);
        assert_eq!(
            v.run(),
            VmExit::MmioWrite {
                gpa: DEVICE,
                size,
                value
            }
        );
        v.complete(Completion::Skip);
        assert_eq!(
            v.context().regs,
            regs_with(&[]),
            "a store writes no register"
        );
        assert_eq!(v.context().era, PC + 4);
    }
}

#[test]
fn an_undecodable_device_access_stays_a_stage_two_fault() {
    for (ecode, access) in [(0x1, Access::Read), (0x2, Access::Write)] {
        for badi in [AMSWAP_W, SYSCALL] {
            assert_eq!(
                decode(exit(ecode, DEVICE, badi)),
                VmExit::StageTwoFault {
                    gpa: DEVICE,
                    access
                }
            );
        }
    }
}

#[test]
fn the_other_translation_faults_decode_by_ecode() {
    let badv = RAM + 0x100;
    let fault = |gpa, access| VmExit::StageTwoFault { gpa, access };
    for (ecode, esubcode, expected) in [
        // PIF and PNX: the fetch address is ERA.
        (0x3, 0, fault(PC, Access::Execute)),
        (0x6, 0, fault(PC, Access::Execute)),
        // PME: a write to a clean page.
        (0x4, 0, fault(badv, Access::Write)),
        // PPI, PNR.
        (0x5, 0, fault(badv, Access::Read)),
        (0x7, 0, fault(badv, Access::Read)),
        // ADEF (fetch), ADEM (memory access).
        (0x8, 0, fault(badv, Access::Execute)),
        (0x8, 1, fault(badv, Access::Read)),
    ] {
        let e = Exit {
            estat: esubcode << 22 | ecode << 16,
            ..exit(0, badv, LD_W_R6)
        };
        assert_eq!(decode(e), expected, "Ecode {ecode:#x}.{esubcode}");
    }
}

#[test]
fn syscall_is_a_hypercall_with_a7_and_a0_to_a5_and_its_result_goes_to_a0() {
    let mut v = vcpu([exit(0xb, 0, SYSCALL)]);
    assert_eq!(
        v.run(),
        VmExit::Hypercall {
            code: 0,
            nr: guest_reg(11),
            args: [4, 5, 6, 7, 8, 9].map(guest_reg),
        }
    );
    v.complete(Completion::Value(0x55));
    assert_eq!(v.context().regs, regs_with(&[(4, 0x55)]));
    assert_eq!(v.context().era, PC + 4);
}

#[test]
fn an_iocsr_read_reports_its_mailbox_word_and_completes_into_rd() {
    let mut v = vcpu([exit(0xe, 0, IOCSRRD_W)]);
    assert_eq!(
        v.run(),
        VmExit::CsrRead {
            csr: exit_word(guest_reg(5), 4)
        }
    );
    v.complete(Completion::Value(0x8000_0001));
    assert_eq!(v.context().regs, regs_with(&[(4, 0x8000_0001)]));
    assert_eq!(v.context().era, PC + 4);
}

#[test]
fn an_iocsr_write_reports_its_mailbox_word_and_rd_masked_to_its_width() {
    for (badi, size, value) in [(IOCSRWR_D, 8, 0xfedc_ba98_7654_3210), (IOCSRWR_B, 1, 0x10)] {
        assert_eq!(
            decode(exit(0xe, 0, badi)),
            VmExit::CsrWrite {
                csr: exit_word(guest_reg(5), size),
                value
            },
            "{badi:#x}"
        );
    }
}

#[test]
fn other_privileged_instructions_are_forbidden() {
    for (ecode, badi) in [(0xe, CSRRD), (0xe, IDLE), (0xd, 0xffff_ffff), (0xd, CSRRD)] {
        assert_eq!(
            decode(exit(ecode, 0, badi)),
            VmExit::ForbiddenInstruction { pc: PC, raw: badi },
            "Ecode {ecode:#x}, {badi:#x}"
        );
    }
}

#[test]
fn other_ecodes_are_unknown() {
    for ecode in [0x9, 0xa, 0xc, 0xf, 0x12, 0x17, 0x3f] {
        assert_eq!(
            decode(exit(ecode, DEVICE, LD_W_R6)),
            VmExit::Unknown { raw: ecode },
            "Ecode {ecode:#x}"
        );
    }
}

#[test]
fn only_a_completed_instruction_moves_era() {
    for (completion, era) in [
        (Completion::Retry, PC),
        (
            Completion::Exception {
                vector: 13,
                error_code: Some(0),
            },
            PC,
        ),
        (Completion::Skip, PC + 4),
        (Completion::CpuId([1, 2, 3, 4]), PC + 4),
        (Completion::Value(9), PC + 4),
    ] {
        let mut v = vcpu([exit(0xb, 0, SYSCALL)]);
        v.run();
        v.complete(completion);
        assert_eq!(v.context().era, era, "{completion:?}");
        let a0 = if completion == Completion::Value(9) {
            9
        } else {
            guest_reg(4)
        };
        assert_eq!(v.context().regs, regs_with(&[(4, a0)]), "{completion:?}");
    }
}

#[test]
fn a_result_for_r0_is_dropped() {
    for (ecode, badv, badi) in [(0x1, DEVICE, LD_W_R0), (0xe, 0, IOCSRRD_W_R0)] {
        let mut v = vcpu([exit(ecode, badv, badi)]);
        v.run();
        v.complete(Completion::Value(0x77));
        assert_eq!(v.context().regs, regs_with(&[]), "{badi:#x}");
        assert_eq!(v.context().era, PC + 4);
    }
}

#[test]
fn a_value_goes_only_to_the_exit_that_asked_for_it() {
    // An exit without a destination: the value is dropped.
    let mut v = vcpu([exit(0x1, RAM, LD_W_R6)]);
    v.run();
    v.complete(Completion::Value(0x77));
    assert_eq!(v.context().regs, regs_with(&[]));
    // A completed exit's destination is used once.
    let mut v = vcpu([exit(0xb, 0, SYSCALL)]);
    v.run();
    v.complete(Completion::Value(1));
    v.complete(Completion::Value(2));
    assert_eq!(v.context().regs, regs_with(&[(4, 1)]));
    // A new run forgets the last exit's destination.
    let mut v = vcpu([exit(0x1, DEVICE, LD_W_R6), exit(0x4, RAM, 0)]);
    v.run();
    v.run();
    v.complete(Completion::Value(0x77));
    assert_eq!(v.context().regs, regs_with(&[]));
}

fn delivery(irq: VirtualIrq, detail: u64) -> Delivery {
    Delivery {
        upcall: Upcall {
            entry: ENTRY + 0x800,
            stack: 0x30_0000,
        },
        irq,
        detail,
    }
}

#[test]
fn an_upcall_enters_the_handler_with_sp_a0_a1_set_and_nothing_else_changed() {
    let mut v = vcpu([exit(0, 0, 0), exit(0xb, 0, SYSCALL)]);
    v.run();
    v.complete(Completion::Retry);
    assert!(v.deliver_upcall(delivery(VirtualIrq::Ipi, 2)));
    v.run();
    let handler = v.hw().entries[1].ctx;
    assert_eq!(handler.era, ENTRY + 0x800);
    assert_eq!(handler.prmd, PRMD_GUEST);
    assert_eq!(
        handler.regs,
        regs_with(&[(3, 0x30_0000), (4, VirtualIrq::Ipi.code()), (5, 2)])
    );
}

#[test]
fn a_nested_upcall_is_refused_and_changes_nothing() {
    let mut v = vcpu([exit(0, 0, 0)]);
    v.run();
    v.complete(Completion::Retry);
    assert!(v.deliver_upcall(delivery(VirtualIrq::Timer, 0)));
    let in_handler = *v.context();
    assert!(!v.deliver_upcall(delivery(VirtualIrq::Device(3), 0)));
    assert_eq!(*v.context(), in_handler);
}

#[test]
fn returning_from_an_upcall_restores_the_whole_interrupted_context() {
    // Interrupted at PC; the handler clobbers every register and returns with a hypercall.
    let clobbered = Exit {
        writes: (1..32).map(|n| (n, 0xdead_0000 + n as u64)).collect(),
        ..exit(0xb, 0, SYSCALL)
    };
    let mut v = vcpu([exit(0, 0, 0), clobbered, exit(0xb, 0, SYSCALL)]);
    v.run();
    v.complete(Completion::Retry);
    let interrupted = *v.context();
    assert!(v.deliver_upcall(delivery(VirtualIrq::Timer, 0)));
    assert!(matches!(v.run(), VmExit::Hypercall { .. }));
    v.return_from_upcall();
    assert_eq!(*v.context(), interrupted, "a0 and ERA included");
    // The return is not a hypercall to complete: a stray value changes no register.
    v.complete(Completion::Value(0x99));
    assert_eq!(v.context().regs, interrupted.regs);
    // The next upcall is taken again.
    assert!(v.deliver_upcall(delivery(VirtualIrq::Timer, 0)));
    v.return_from_upcall();
    v.run();
    let resumed: Vec<_> = v.hw().entries.iter().map(|e| e.ctx.regs).collect();
    assert_eq!(resumed[2], interrupted.regs);
}

#[test]
fn a_return_without_an_upcall_changes_nothing() {
    let mut v = vcpu([exit(0xb, 0, SYSCALL)]);
    v.run();
    let before = *v.context();
    v.return_from_upcall();
    assert_eq!(*v.context(), before);
}
