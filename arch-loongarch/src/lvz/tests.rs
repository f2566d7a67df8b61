//! Host tests of the LVZ backend against a CSR model: a root and a guest CSR file and a log of
//! every access and TLB operation, checked for exit decoding, CSR programming, save/restore
//! order and round trip, and flush selection.

use super::model::{Model, Op};
use super::*;
use mmu::Gpa;
use std::vec::Vec;
use vcpu::{Access, AccessSize, VmExit};

extern crate std;

#[test]
fn gids_are_never_zero_and_fit() {
    assert_eq!(gid_of(0, 8), Some(1));
    assert_eq!(gid_of(254, 8), Some(255));
    assert_eq!(gid_of(255, 8), None);
    assert_eq!(gid_of(3, 2), None, "GIDBITS 2 allows GIDs 1..=3");
}

#[test]
fn enable_sets_policy_by_capability_and_flushes_guests() {
    let mut m = Model::new();
    m.root[csr::GCFG as usize] = gcfg::MATP_ROOT | gcfg::GCIP_SECURE;
    m.root[csr::GTLBC as usize] = gtlbc::TOTI | 5 << gtlbc::TGID_SHIFT | 0x3f;
    m.root[csr::GSTAT as usize] = 8 << gstat::GIDBITS_SHIFT;
    let bits = enable(&mut m);
    assert_eq!(bits, 8);
    assert_eq!(
        m.root[csr::GCFG as usize],
        gcfg::MATC_ROOT | gcfg::GCI_SECURE
    );
    assert_eq!(
        m.root[csr::GTLBC as usize],
        gtlbc::USETGID | 0x3f,
        "TOTI and TGID cleared"
    );
    assert!(m.log.contains(&Op::Inv(invtlb_op::ALL_GUESTS, 0, 0)));
    // No capability, no policy bit.
    let mut m = Model::new();
    enable(&mut m);
    assert_eq!(m.root[csr::GCFG as usize], 0);
}

#[test]
fn entry_programs_table_gid_and_injected_lines_and_ends_with_pvm() {
    let mut m = Model::new();
    // Lines left in HWIS are replaced by the vCPU's own (the CPU may have run another guest), and
    // no CPU pin is passed through (PIP, bits 15:8: device interrupts are the root's, `device_irq`);
    // the clear bits (HWIC) are kept.
    m.root[csr::GINTC as usize] = 0x1_0205;
    m.root[csr::GSTAT as usize] = 8 << gstat::GIDBITS_SHIFT;
    let e = Entry {
        gid: 3,
        root: 0x22_4000,
        era: 0x20_0000,
        injected: 0x04,
        counter_offset: 7,
    };
    program_entry(&mut m, &e);
    assert_eq!(m.root[csr::PGDL as usize], 0x22_4000);
    assert_eq!(
        m.root[csr::GTLBC as usize],
        gtlbc::USETGID | 3 << gtlbc::TGID_SHIFT
    );
    assert_eq!(m.root[csr::GINTC as usize], 0x1_0004);
    assert_eq!(m.root[csr::GCNTC as usize], 7);
    assert_eq!(m.root[csr::ERA as usize], 0x20_0000);
    assert_eq!(m.root[csr::PRMD as usize], 1 << 2);
    let gstat = m.root[csr::GSTAT as usize];
    assert_eq!((gstat & gstat::GID_MASK) >> gstat::GID_SHIFT, 3);
    assert_ne!(gstat & gstat::PVM, 0);
    assert_eq!(
        gstat >> gstat::GIDBITS_SHIFT & 0x3f,
        8,
        "read-only bits kept"
    );
    // PVM is the last write: nothing after it may fault back into root with PVM set.
    assert!(matches!(m.log.last(), Some(Op::Wr(n, _)) if *n == csr::GSTAT));
    leave_guest(&mut m);
    assert_eq!(m.root[csr::GSTAT as usize] & gstat::PVM, 0);
    assert_eq!(m.root[csr::GTLBC as usize] & gtlbc::TGID_MASK, 0);
}

#[test]
fn guest_csrs_round_trip_in_order_with_the_timer_last() {
    let mut m = Model::new();
    let init = GuestCsrs::initial(0x20_0000, 2);
    init.restore(&mut m);
    assert_eq!(m.guest[0x0], 0x8, "direct-address mode");
    assert_eq!(m.guest[0x6], 0x20_0000);
    assert_eq!(m.guest[0x20], 2);
    let order: Vec<u16> = m
        .log
        .iter()
        .filter_map(|o| match o {
            Op::GWr(n, _) => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(order, GUEST_CSRS);
    let tcfg = order.iter().position(|&n| n == 0x41).unwrap();
    assert!(
        tcfg > order.iter().position(|&n| n == 0x19).unwrap(),
        "timer after translation"
    );
    m.guest[0x30] = 0xabc;
    let saved = GuestCsrs::save(&mut m);
    let mut other = Model::new();
    saved.restore(&mut other);
    assert_eq!(other.guest, m.guest);
}

#[test]
fn flushes_by_gid_and_address_or_whole() {
    let mut m = Model::new();
    flush(&mut m, 2, Flush::range(Gpa(0x4000), Gpa(0x1_0000)));
    assert_eq!(
        m.log,
        [Op::Inv(0x16, 2 << 16, 0x0), Op::Inv(0x16, 2 << 16, 0x8000)],
        "one invtlb per even/odd pair"
    );
    let mut m = Model::new();
    flush(&mut m, 2, Flush::range(Gpa(0), Gpa(64 << 20)));
    assert_eq!(m.log, [Op::Inv(invtlb_op::ALL_GUESTS, 0, 0)]);
    let mut m = Model::new();
    flush(&mut m, 2, Flush::All);
    assert_eq!(m.log, [Op::Inv(invtlb_op::GID_GPA, 2 << 16, 0)]);
}

#[test]
fn a_range_flush_names_every_pair_of_the_range_and_nothing_else() {
    // QEMU-LVZ flushes the whole GID for 0x10-0x16, so only this model can tell a range
    // flush that misses a page from one that is right.
    let mut m = Model::new();
    flush(&mut m, 5, Flush::range(Gpa(0x1_c000), Gpa(0x6_4000)));
    let want: std::vec::Vec<Op> = (0x1_8000u64..0x6_4000)
        .step_by(0x8000)
        .map(|gpa| Op::Inv(invtlb_op::GID_ADDR, 5 << 16, gpa))
        .collect();
    assert_eq!(m.log, want);
}

#[test]
#[should_panic(expected = "is not a non-root GID in rj[23:16]")]
fn the_model_refuses_a_bare_gid_operand() {
    // The form the backend used before: GID in rj[7:0], which the hardware reads as GID 0.
    let mut m = Model::new();
    m.invtlb(invtlb_op::GID_GPA, 2, 0);
}

fn regs(estat_ecode: u64, badv: u64, badi: u32) -> ExitRegs {
    let mut r = ExitRegs {
        estat: estat_ecode << 16,
        era: 0x20_0100,
        badv,
        badi,
        regs: [0; 32],
    };
    for (i, v) in r.regs.iter_mut().enumerate() {
        *v = 0x100 + i as u64;
    }
    r
}

#[test]
fn exits_decode() {
    let owned = |gpa: u64| gpa < 0x200_0000;
    // HVC: code from BADI, number in a7, arguments a0-a5.
    let e = decode_exit(&regs(0x17, 0, 0x002b_8000 | 0x100), &owned);
    assert_eq!(
        e,
        VmExit::Hypercall {
            code: 0x100,
            nr: 0x10b,
            args: [0x104, 0x105, 0x106, 0x107, 0x108, 0x109]
        }
    );
    // A stage-2 fault on memory (page-modify: dirty tracking) carries the GPA.
    let e = decode_exit(&regs(0x4, 0x12_3458, 0x29c0_018d), &owned);
    assert_eq!(
        e,
        VmExit::StageTwoFault {
            gpa: 0x12_3458,
            access: Access::Write
        }
    );
    // Page-invalid on a device: the store is decoded from BADI (st.b $r13).
    let e = decode_exit(&regs(0x2, 0x1fe0_01e0, 0x2907_818d), &owned);
    assert_eq!(
        e,
        VmExit::MmioWrite {
            gpa: 0x1fe0_01e0,
            size: AccessSize::Byte,
            value: 0x0d
        }
    );
    let e = decode_exit(&regs(0x1, 0x1fe0_01e5, 0x2a07_9586), &owned);
    assert_eq!(
        e,
        VmExit::MmioRead {
            gpa: 0x1fe0_01e5,
            size: AccessSize::Byte
        }
    );
    // GSPR: cpucfg (index from rj), csrrd, csrwr (value from rd), iocsr, idle, cacop.
    assert_eq!(
        decode_exit(&regs(0x16, 0, 0x0000_6ca4), &owned),
        VmExit::CpuCfg { index: 0x105 }
    );
    assert_eq!(
        decode_exit(&regs(0x16, 0, 0x0400_1405), &owned),
        VmExit::CsrRead { csr: 5 }
    );
    assert_eq!(
        decode_exit(&regs(0x16, 0, 0x0400_1424), &owned),
        VmExit::CsrWrite {
            csr: 5,
            value: 0x104
        }
    );
    assert_eq!(
        decode_exit(&regs(0x16, 0, 0x0648_08a4), &owned),
        VmExit::CsrRead {
            csr: IOCSR_FLAG | (2 << 28) | 0x105
        }
    );
    assert_eq!(
        decode_exit(&regs(0x16, 0, 0x0648_8000), &owned),
        VmExit::Halt
    );
    assert!(matches!(
        decode_exit(&regs(0x16, 0, 0x0600_0000), &owned),
        VmExit::ForbiddenInstruction { pc: 0x20_0100, .. }
    ));
    // GCM (guest CSR modified, hardware-caused) and interrupts.
    let mut gcm = regs(0x18, 0, 0);
    gcm.estat |= 1 << 22;
    assert_eq!(
        decode_exit(&gcm, &owned),
        VmExit::Unknown {
            raw: 0x18 << 16 | 1
        }
    );
    let mut int = regs(0, 0, 0);
    int.estat |= 1 << 12;
    assert_eq!(
        decode_exit(&int, &owned),
        VmExit::ExternalInterrupt { vector: 1 << 12 }
    );
}

#[test]
fn gids_are_unique_per_partition_and_checked_against_the_implemented_width() {
    let gids: Vec<u64> = (0..255).map(|id| gid_of(id, 8).unwrap()).collect();
    let mut sorted = gids.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 255, "one GID per partition");
    assert!(!gids.contains(&0));
    assert!(gids_fit(255, 8));
    assert!(!gids_fit(256, 8));
    assert!(gids_fit(3, 2) && !gids_fit(4, 2));
    assert!(gids_fit(0, 0));
    let mut m = Model::new();
    m.root[csr::GSTAT as usize] = 6 << gstat::GIDBITS_SHIFT | gstat::PVM;
    assert_eq!(gid_bits(&mut m), 6);
}
