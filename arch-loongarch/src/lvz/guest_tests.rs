//! Host tests of the LVZ vCPU against the CSR model: the exact root and guest CSR accesses of an
//! entry in order, boot registers, each exit kind decoded into a `VmExit` (stage-2 faults,
//! device loads and stores of every width with their sign or zero extension, GSPR subcases,
//! HVC, GCM, interrupts, the FP-disabled exits handled inside the run), and the completions
//! (ERA + 4, the destination register, a0 for hypercalls).

extern crate std;

use super::model::{Model, Op};
use super::*;
use std::vec::Vec;
use vcpu::{Access, AccessSize, ArchVcpu, Completion, VmExit};

const ENTRY: u64 = 0x20_0000;
const ROOT: u64 = 0x22_4000;
const DEVICE: u64 = 0x1fe0_01e0;

fn config() -> VcpuConfig {
    VcpuConfig {
        gid: 2,
        root: ROOT,
        entry: ENTRY,
        args: [1, FLAG_HVCL, 3, 0x20_0000_0000, 0x200_0000],
        index: 0,
        counter_offset: 0,
    }
}

fn vcpu(m: Model) -> LvzVcpu<Model> {
    LvzVcpu::new(m, config())
}

/// A model whose guest exits once with `ecode` at ENTRY + `off`, with registers r_n = 0x100 + n
/// (and r13 = `r13`), BADV `badv` and BADI `badi`.
fn one_exit(ecode: u64, badv: u64, badi: u32, r13: u64) -> LvzVcpu<Model> {
    let mut m = Model::new();
    let mut regs = [0; 32];
    for (i, v) in regs.iter_mut().enumerate().skip(1) {
        *v = 0x100 + i as u64;
    }
    regs[13] = r13;
    m.exit_with(ExitRegs {
        estat: ecode << 16,
        era: ENTRY + 0x40,
        badv,
        badi,
        regs,
    });
    vcpu(m)
}

#[test]
fn first_entry_loads_guest_csrs_flushes_then_programs_root_in_order() {
    let mut m = Model::new();
    m.root[csr::GSTAT as usize] = 8 << gstat::GIDBITS_SHIFT;
    m.exit(0x17, ENTRY + 8, 0, 0x002b_8000);
    let mut v = vcpu(m);
    v.run();
    let log = &v.world().log;
    // The 38 guest CSRs in restore order (CRMD = DA first, the timer last), then the flush.
    let restored: Vec<(u16, u64)> = log[..GUEST_CSRS.len()]
        .iter()
        .map(|o| match o {
            Op::GWr(n, val) => (*n, *val),
            other => panic!("expected a guest CSR write, got {other:?}"),
        })
        .collect();
    let order: Vec<u16> = restored.iter().map(|&(n, _)| n).collect();
    assert_eq!(order, GUEST_CSRS);
    assert_eq!(restored[0], (csr::CRMD, 0x8), "guest starts in DA mode");
    let rest = &log[GUEST_CSRS.len()..];
    let gstat = 8 << gstat::GIDBITS_SHIFT | 2 << gstat::GID_SHIFT | gstat::PVM;
    assert_eq!(
        rest,
        [
            // Pending lines an earlier guest of the CPU left are dropped.
            Op::GXchg(csr::ESTAT, 0, guest_lines::ALL),
            Op::Inv(invtlb_op::ALL_GUESTS, 0, 0),
            Op::Wr(csr::PGDL, ROOT),
            Op::Rd(csr::GTLBC),
            Op::Wr(csr::GTLBC, gtlbc::USETGID | 2 << gtlbc::TGID_SHIFT),
            Op::Rd(csr::GINTC),
            Op::Wr(csr::GINTC, 0),
            Op::Wr(csr::GCNTC, 0),
            Op::Wr(csr::ERA, ENTRY),
            Op::Wr(csr::PRMD, 1 << 2),
            Op::Rd(csr::GSTAT),
            Op::Wr(csr::GSTAT, gstat),
            Op::Rd(csr::GSTAT), // the debug check that PVM is set
            Op::Enter { era: ENTRY, gstat },
            // leave_guest: PVM (already cleared by the exit path) and TGID.
            Op::Rd(csr::GSTAT),
            Op::Wr(
                csr::GSTAT,
                8 << gstat::GIDBITS_SHIFT | 2 << gstat::GID_SHIFT
            ),
            Op::Rd(csr::GTLBC),
            Op::Wr(csr::GTLBC, gtlbc::USETGID),
        ]
    );
}

#[test]
fn boot_registers_carry_the_arguments_exactly() {
    let mut m = Model::new();
    m.exit(0x17, ENTRY, 0, 0x002b_8000);
    let mut v = vcpu(m);
    v.run();
    let regs = v.world().entered_with[0];
    // The caller's flag word, unchanged: a kernel's a1 (its command line) gets nothing added.
    assert_eq!(regs[4..9], [1, FLAG_HVCL, 3, 0x20_0000_0000, 0x200_0000]);
    assert_eq!(regs[0], 0);
    let mut m = Model::new();
    m.exit(0x17, ENTRY, 0, 0x002b_8000);
    let mut config = config();
    config.args = [1, 0x1000, 0x2000, 0, 0];
    let mut v = LvzVcpu::new(m, config);
    v.run();
    assert_eq!(v.world().entered_with[0][4..7], [1, 0x1000, 0x2000]);
}

#[test]
fn later_entries_keep_guest_csrs_and_resume_after_completion() {
    let mut m = Model::new();
    m.exit(0x17, ENTRY + 8, 0, 0x002b_8000);
    m.exit(0x17, ENTRY + 0x20, 0, 0x002b_8000);
    let mut v = vcpu(m);
    v.run();
    v.complete(Completion::Value(0));
    let mark = v.world().log.len();
    v.run();
    let log = &v.world().log[mark..];
    assert!(
        !log.iter().any(|o| matches!(o, Op::GWr(..) | Op::Inv(..))),
        "guest CSRs stay loaded across exits"
    );
    assert!(log.contains(&Op::Enter {
        era: ENTRY + 12,
        gstat: 2 << gstat::GID_SHIFT | gstat::PVM
    }));
    // Unloading saves every guest CSR; the next run restores them and flushes again.
    v.unload();
    let saved = v
        .world()
        .log
        .iter()
        .filter(|o| matches!(o, Op::GRd(_)))
        .count();
    assert_eq!(saved, GUEST_CSRS.len());
    v.world().exit(0x17, ENTRY, 0, 0x002b_8000);
    let mark = v.world().log.len();
    v.run();
    let log = &v.world().log[mark..];
    assert_eq!(
        log.iter().filter(|o| matches!(o, Op::GWr(..))).count(),
        GUEST_CSRS.len()
    );
    assert_eq!(
        log[GUEST_CSRS.len() + 1],
        Op::Inv(invtlb_op::ALL_GUESTS, 0, 0)
    );
}

#[test]
fn the_ipi_line_is_guest_estat_bit_12_raised_before_each_entry_lowered_once_only_that_bit() {
    let mut m = Model::new();
    for _ in 0..4 {
        m.exit(0, ENTRY, 0, 0);
    }
    let mut v = vcpu(m);
    // Raised before the first entry: applied once the guest CSRs are loaded, after the clear.
    v.set_irq_lines(1 << 12);
    v.run();
    let xchgs = |v: &mut LvzVcpu<Model>| -> Vec<Op> {
        v.world()
            .log
            .iter()
            .filter(|o| matches!(o, Op::GXchg(..)))
            .cloned()
            .collect()
    };
    assert_eq!(
        xchgs(&mut v),
        [
            Op::GXchg(csr::ESTAT, 0, guest_lines::ALL),
            Op::GXchg(csr::ESTAT, 1 << 12, 1 << 12),
        ]
    );
    // The guest timer's pending bit (set by the hardware meanwhile) survives both writes.
    v.world().guest[csr::ESTAT as usize] |= 1 << 11;
    v.set_irq_lines(1 << 12);
    v.run();
    assert_eq!(
        xchgs(&mut v)[2],
        Op::GXchg(csr::ESTAT, 1 << 12, 1 << 12),
        "a raised line is asserted again at every entry"
    );
    v.set_irq_lines(0);
    v.run();
    assert_eq!(xchgs(&mut v)[3], Op::GXchg(csr::ESTAT, 0, 1 << 12));
    assert_eq!(v.world().guest[csr::ESTAT as usize], 1 << 11);
    // A lowered line is not written again; other lines in the word are not the IPI block's.
    v.set_irq_lines(1 << 11 | 1 << 3);
    v.run();
    assert_eq!(xchgs(&mut v).len(), 4);
}

/// The re-checks asked for since the last call (`from`: the log position it reached); each must
/// come before an entry.
fn rechecks(v: &mut LvzVcpu<Model>, from: &mut usize) -> Vec<Option<u64>> {
    let log = &v.world().log;
    let mut out = Vec::new();
    for (i, op) in log.iter().enumerate().skip(*from) {
        if let Op::Recheck(r) = op {
            assert!(
                log[i..].iter().any(|o| matches!(o, Op::Enter { .. })),
                "a re-check is asked for before the entry it guards"
            );
            out.push(*r);
        }
    }
    *from = log.len();
    out
}

#[test]
fn a_raised_line_the_guest_cannot_take_is_rechecked_with_backoff_until_taken() {
    let mut m = Model::new();
    for _ in 0..16 {
        m.exit(0, ENTRY, 0, 0);
    }
    let mut v = vcpu(m);
    let mut seen = 0;
    // A lowered line asks for nothing (and reads no guest CSR for it).
    v.run();
    assert_eq!(rechecks(&mut v, &mut seen), []);
    // A guest with interrupts on and the IPI line unmasked takes a raised line at entry.
    v.world().guest[csr::CRMD as usize] = csr::CRMD_IE;
    v.world().guest[csr::ECFG as usize] = guest_lines::IPI | 1 << 11;
    v.set_irq_lines(1 << 12);
    v.run();
    assert_eq!(
        rechecks(&mut v, &mut seen),
        [],
        "nothing asked while takeable"
    );
    // In its handler (CRMD.IE clear) the line is raised again: it waits for the guest's `ertn`,
    // which QEMU-LVZ does not re-check, so an exit is asked for, sooner first, then less often.
    v.world().guest[csr::CRMD as usize] = 0;
    let mut delays = Vec::new();
    for _ in 0..8 {
        v.run();
        delays.extend(rechecks(&mut v, &mut seen));
    }
    assert_eq!(delays[0], Some(recheck::FIRST_NS));
    assert_eq!(delays[1], Some(2 * recheck::FIRST_NS));
    assert!(delays.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(
        delays.len(),
        8,
        "every entry while waiting re-arms the exit"
    );
    assert_eq!(*delays.last().unwrap(), Some(recheck::MAX_NS));
    // Interrupts on again: the next entry takes the line itself; the request is withdrawn once.
    v.world().guest[csr::CRMD as usize] = csr::CRMD_IE;
    v.run();
    assert_eq!(rechecks(&mut v, &mut seen), [None]);
    // Masked in ECFG is waiting too, and the backoff starts over.
    v.world().guest[csr::ECFG as usize] = 1 << 11;
    v.run();
    assert_eq!(rechecks(&mut v, &mut seen), [Some(recheck::FIRST_NS)]);
    // The guest cleared its IPI block: the lowered line withdraws the request; nothing after.
    v.set_irq_lines(0);
    v.run();
    assert_eq!(rechecks(&mut v, &mut seen), [None]);
}

#[test]
fn hypercall_takes_code_number_and_arguments_and_returns_in_a0() {
    let mut v = one_exit(0x17, 0, 0x002b_8000 | 0x5, 0x10d);
    assert_eq!(
        v.run(),
        VmExit::Hypercall {
            code: 5,
            nr: 0x10b,
            args: [0x104, 0x105, 0x106, 0x107, 0x108, 0x109]
        }
    );
    v.complete(Completion::Value(u64::MAX));
    assert_eq!(v.regs()[4], u64::MAX);
    assert_eq!(v.pc(), ENTRY + 0x44, "ERA advanced past hvcl");
}

/// `op22` loads: `ld.{b,h,w,d}` and `ld.{bu,hu,wu}` into r6 from r7.
fn ld(op22: u32) -> u32 {
    op22 << 22 | 7 << 5 | 6
}

#[test]
fn device_loads_decode_width_and_extend_on_completion() {
    let cases: [(u32, AccessSize, u64, u64); 8] = [
        (ld(0xa0), AccessSize::Byte, 0x80, 0xffff_ffff_ffff_ff80),
        (ld(0xa8), AccessSize::Byte, 0x1_80, 0x80),
        (ld(0xa1), AccessSize::Half, 0x8001, 0xffff_ffff_ffff_8001),
        (ld(0xa9), AccessSize::Half, 0xf_8001, 0x8001),
        (
            ld(0xa2),
            AccessSize::Word,
            0xfeed_face,
            0xffff_ffff_feed_face,
        ),
        (ld(0xaa), AccessSize::Word, 0x1_feed_face, 0xfeed_face),
        (ld(0xa3), AccessSize::Double, u64::MAX - 1, u64::MAX - 1),
        // ldx.w r6, r7, r8 and ldptr.w r6, r7, 0: sign-extending words.
        (
            0x7010 << 15 | 8 << 10 | 7 << 5 | 6,
            AccessSize::Word,
            0x8000_0000,
            0xffff_ffff_8000_0000,
        ),
    ];
    for (insn, size, value, want) in cases {
        let mut v = one_exit(0x1, DEVICE, insn, 0);
        assert_eq!(v.run(), VmExit::MmioRead { gpa: DEVICE, size }, "{insn:#x}");
        v.complete(Completion::Value(value));
        assert_eq!(v.regs()[6], want, "{insn:#x}");
        assert_eq!(v.pc(), ENTRY + 0x44);
    }
    let mut v = one_exit(0x1, DEVICE, 0x24 << 24 | 7 << 5 | 6, 0);
    v.run();
    v.complete(Completion::Value(0x8000_0000));
    assert_eq!(v.regs()[6], 0xffff_ffff_8000_0000, "ldptr.w");
    // A load into r0 leaves r0 alone.
    let mut v = one_exit(0x1, DEVICE, ld(0xa2) & !0x1f, 0);
    v.run();
    v.complete(Completion::Value(5));
    assert_eq!(v.regs()[0], 0);
}

#[test]
fn device_stores_decode_width_and_truncate_the_value() {
    let value = 0x1122_3344_5566_7788;
    for (op22, size) in [
        (0xa4, AccessSize::Byte),
        (0xa5, AccessSize::Half),
        (0xa6, AccessSize::Word),
        (0xa7, AccessSize::Double),
    ] {
        // st.x r13, r7, 0
        let mut v = one_exit(0x2, DEVICE, op22 << 22 | 7 << 5 | 13, value);
        assert_eq!(
            v.run(),
            VmExit::MmioWrite {
                gpa: DEVICE,
                size,
                value: value & size.mask()
            }
        );
        v.complete(Completion::Skip);
        assert_eq!(v.pc(), ENTRY + 0x44);
    }
}

#[test]
fn faults_on_guest_memory_are_stage_two_and_retry_in_place() {
    for (ecode, access) in [
        (0x1, Access::Read),
        (0x2, Access::Write),
        (0x3, Access::Execute),
        (0x4, Access::Write),
        (0x5, Access::Read),
        (0x6, Access::Execute),
        (0x7, Access::Read),
    ] {
        let mut v = one_exit(ecode, 0x12_3458, 0x29c0_018d, 0);
        assert_eq!(
            v.run(),
            VmExit::StageTwoFault {
                gpa: 0x12_3458,
                access
            },
            "ecode {ecode:#x}"
        );
        v.complete(Completion::Retry);
        assert_eq!(v.pc(), ENTRY + 0x40);
    }
    // Not decodable on a device (an atomic, amswap.w): a fault, not an emulated access.
    let mut v = one_exit(0x2, DEVICE, 0x3860_0000, 0);
    assert!(matches!(v.run(), VmExit::StageTwoFault { gpa: DEVICE, .. }));
}

#[test]
fn gspr_subcases_decode_and_complete_into_rd() {
    // cpucfg r4, r5: the word index from r5, the 32-bit word into r4.
    let mut v = one_exit(0x16, 0, 0x0000_6ca4, 0);
    assert_eq!(v.run(), VmExit::CpuCfg { index: 0x105 });
    v.complete(Completion::Value(0x1_0060_c0cf));
    assert_eq!(v.regs()[4], 0x60_c0cf);
    assert_eq!(v.pc(), ENTRY + 0x44);
    // csrrd r5, 0x5.
    let mut v = one_exit(0x16, 0, 0x0400_1405, 0);
    assert_eq!(v.run(), VmExit::CsrRead { csr: 5 });
    v.complete(Completion::Value(0xdead_beef_0000_0001));
    assert_eq!(v.regs()[5], 0xdead_beef_0000_0001);
    // csrwr r4, 0x5: the value from r4, the old value back into r4.
    let mut v = one_exit(0x16, 0, 0x0400_1424, 0);
    assert_eq!(
        v.run(),
        VmExit::CsrWrite {
            csr: 5,
            value: 0x104
        }
    );
    v.complete(Completion::Value(7));
    assert_eq!(v.regs()[4], 7);
    // iocsrrd.w r4, r5: address from r5, zero-extended word.
    let mut v = one_exit(0x16, 0, 0x0648_08a4, 0);
    assert_eq!(
        v.run(),
        VmExit::CsrRead {
            csr: IOCSR_FLAG | (2 << 28) | 0x105
        }
    );
    v.complete(Completion::Value(0xffff_ffff_8000_0000));
    assert_eq!(v.regs()[4], 0x8000_0000);
    // iocsrwr.d r4, r5.
    let mut v = one_exit(0x16, 0, 0x0648_1ca4, 0);
    assert_eq!(
        v.run(),
        VmExit::CsrWrite {
            csr: IOCSR_FLAG | (3 << 28) | 0x105,
            value: 0x104
        }
    );
    // idle: a halt, skipped.
    let mut v = one_exit(0x16, 0, 0x0648_8000, 0);
    assert_eq!(v.run(), VmExit::Halt);
    v.complete(Completion::Skip);
    assert_eq!(v.pc(), ENTRY + 0x44);
    // cacop: forbidden, with the PC and the word.
    let mut v = one_exit(0x16, 0, 0x0600_0000, 0);
    assert_eq!(
        v.run(),
        VmExit::ForbiddenInstruction {
            pc: ENTRY + 0x40,
            raw: 0x0600_0000
        }
    );
}

#[test]
fn gcm_software_caused_is_the_csr_write_hardware_caused_is_unknown() {
    let mut v = one_exit(0x18, 0, 0x0401_40a4, 0);
    assert_eq!(
        v.run(),
        VmExit::CsrWrite {
            csr: 0x50,
            value: 0x104
        }
    );
    let mut m = Model::new();
    m.exit_with(ExitRegs {
        estat: 0x18 << 16 | 1 << 22,
        era: ENTRY,
        ..Default::default()
    });
    let mut v = vcpu(m);
    assert_eq!(
        v.run(),
        VmExit::Unknown {
            raw: 0x18 << 16 | 1
        }
    );
}

#[test]
fn interrupts_are_acknowledged_and_retried_in_place() {
    let mut m = Model::new();
    m.exit_with(ExitRegs {
        estat: 1 << 12,
        era: ENTRY + 0x10,
        ..Default::default()
    });
    let mut v = vcpu(m);
    assert_eq!(v.run(), VmExit::ExternalInterrupt { vector: 12 });
    assert!(v.world().log.contains(&Op::Ack(1 << 12)));
    v.complete(Completion::Retry);
    assert_eq!(v.pc(), ENTRY + 0x10);
}

#[test]
fn fp_lsx_lasx_disabled_exits_enable_the_unit_and_reenter() {
    let mut m = Model::new();
    m.exit(0xf, ENTRY + 0x10, 0, 0);
    m.exit(0x11, ENTRY + 0x14, 0, 0);
    m.exit(0x17, ENTRY + 0x18, 0, 0x002b_8000);
    let mut v = vcpu(m);
    assert!(matches!(v.run(), VmExit::Hypercall { .. }));
    assert_eq!(v.world().root[csr::EUEN as usize], 0b111);
    let entries: Vec<u64> = v
        .world()
        .log
        .iter()
        .filter_map(|o| match o {
            Op::Enter { era, .. } => Some(*era),
            _ => None,
        })
        .collect();
    assert_eq!(
        entries,
        [ENTRY, ENTRY + 0x10, ENTRY + 0x14],
        "each re-entry retries the instruction"
    );
}

#[test]
fn injected_lines_survive_entry_and_no_pin_is_passed_through() {
    let mut m = Model::new();
    m.exit(0x17, ENTRY, 0, 0x002b_8000);
    // A pin an earlier run passed through is taken back.
    m.root[csr::GINTC as usize] = 0x0c00;
    let mut v = LvzVcpu::new(
        m,
        VcpuConfig {
            gid: 1,
            root: ROOT,
            entry: ENTRY,
            args: [0; 5],
            index: 1,
            counter_offset: 0x1234,
        },
    );
    // HWI1 raised through the run loop's line word (ESTAT.IS layout: bit 3).
    v.set_irq_lines(1 << 3);
    v.run();
    let w = v.world();
    assert_eq!(w.root[csr::GINTC as usize], 0x0002);
    assert_eq!(w.root[csr::GCNTC as usize], 0x1234);
    assert_eq!(w.guest[0x20], 1, "guest CPUID = vCPU number");
    // Lowered: the next entry writes GINTC without it (whole, never read-modify-write).
    v.set_irq_lines(0);
    v.world().exit(0x17, ENTRY, 0, 0x002b_8000);
    v.run();
    assert_eq!(v.world().root[csr::GINTC as usize], 0);
}

#[test]
fn a_raised_device_line_is_injected_and_rechecked_like_the_ipi() {
    let mut m = Model::new();
    for _ in 0..5 {
        m.exit(0, ENTRY, 0, 0);
    }
    let mut v = vcpu(m);
    let mut seen = 0;
    // The first entry loads the guest's CSRs; set its state after that.
    v.run();
    // HWI0 (ESTAT.IS bit 2) raised while the guest has it masked: injected through GINTC.HWIS,
    // and an exit asked for so QEMU-LVZ looks at it again.
    v.world().guest[csr::CRMD as usize] = csr::CRMD_IE;
    v.world().guest[csr::ECFG as usize] = 1 << 11;
    v.set_irq_lines(1 << 2);
    v.run();
    assert_eq!(v.world().root[csr::GINTC as usize] & 0xff, 1);
    assert_eq!(rechecks(&mut v, &mut seen), [Some(recheck::FIRST_NS)]);
    // Unmasked: taken at entry, the request withdrawn.
    v.world().guest[csr::ECFG as usize] = 1 << 11 | 1 << 2;
    v.run();
    assert_eq!(rechecks(&mut v, &mut seen), [None]);
    // Lowered: no longer injected.
    v.set_irq_lines(0);
    v.run();
    assert_eq!(v.world().root[csr::GINTC as usize] & 0xff, 0);
}

#[test]
fn csrs_lvz_leaves_out_are_kept_in_the_vcpu_without_an_exit() {
    let mut m = Model::new();
    // csrwr r4, MERRENTRY (0x93); csrrd r5, MERRENTRY; then a hypercall.
    m.exit(0x16, ENTRY, 0, 0x0402_4c24);
    m.exit(0x16, ENTRY + 4, 0, 0x0402_4c05);
    m.exit(0x17, ENTRY + 8, 0, 0x002b_8000);
    let mut v = vcpu(m);
    assert!(matches!(v.run(), VmExit::Hypercall { .. }));
    // r4 held a0 = 1: written, and the old value (0) handed back; r5 read it.
    assert_eq!(v.regs()[4], 0);
    assert_eq!(v.regs()[5], 1);
    // GSTAT (0x50) is the root's: its access still exits to be refused.
    let mut v = one_exit(0x16, 0, 0x0401_4024, 0);
    assert_eq!(
        v.run(),
        VmExit::CsrWrite {
            csr: 0x50,
            value: 0x104
        }
    );
}
