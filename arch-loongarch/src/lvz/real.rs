//! [`LvzHw`] on the CPU itself: `csrrd`/`csrwr`, `gcsrrd`/`gcsrwr` and `invtlb`. These
//! instructions encode the CSR number and the invtlb operation as immediates, so each access
//! dispatches over the numbers the backend uses. Only meaningful where CPUCFG2 reports LVZ: on
//! QEMU (no LVZ) `gcsrrd`, `gcsrwr` and the guest `invtlb` operations raise INE.

use super::{invtlb_op, LvzHw, GUEST_CSRS};
use crate::csr;
use core::arch::asm;

/// The running CPU.
pub struct RealLvz;

macro_rules! by_number {
    ($n:expr, $m:ident, [$($c:expr),*]) => {
        match $n { $(c if c == $c => $m!($c),)* _ => panic!("CSR {:#x} not in the LVZ set", $n) }
    };
}

const ROOT: [u16; 13] = [
    csr::PRMD,
    csr::EUEN,
    csr::ERA,
    csr::PGDL,
    csr::GTLBC,
    csr::GSTAT,
    csr::GCFG,
    csr::GINTC,
    csr::GCNTC,
    csr::ESTAT,
    csr::BADV,
    csr::BADI,
    csr::TRGP,
];

impl LvzHw for RealLvz {
    fn csr_read(&mut self, n: u16) -> u64 {
        macro_rules! rd {
            ($c:expr) => {
                csr::read::<{ $c }>()
            };
        }
        debug_assert!(ROOT.contains(&n));
        by_number!(
            n,
            rd,
            [0x1, 0x2, 0x5, 0x6, 0x7, 0x8, 0x15, 0x16, 0x19, 0x50, 0x51, 0x52, 0x53]
        )
    }

    fn csr_write(&mut self, n: u16, value: u64) {
        macro_rules! wr {
            ($c:expr) => {
                // SAFETY: the backend writes these root CSRs only while no guest runs on this
                // CPU, in the sequences `enable`/`program_entry`/`leave_guest` define.
                unsafe {
                    csr::write::<{ $c }>(value);
                }
            };
        }
        by_number!(
            n,
            wr,
            [0x1, 0x2, 0x5, 0x6, 0x7, 0x8, 0x15, 0x16, 0x19, 0x50, 0x51, 0x52, 0x53]
        )
    }

    fn gcsr_read(&mut self, n: u16) -> u64 {
        macro_rules! grd {
            ($c:expr) => {{
                let v: u64;
                // SAFETY: gcsrrd copies a guest CSR into a register; no other effect.
                unsafe { asm!("gcsrrd {0}, {1}", out(reg) v, const $c, options(nomem, nostack)) };
                v
            }};
        }
        debug_assert!(GUEST_CSRS.contains(&n));
        by_number!(
            n,
            grd,
            [
                0x0, 0x1, 0x2, 0x3, 0x4, 0x6, 0x7, 0x8, 0xc, 0x10, 0x11, 0x12, 0x13, 0x18, 0x19,
                0x1a, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
                0x88, 0x89, 0x8a, 0x8b, 0x180, 0x181, 0x40, 0x41, 0x43
            ]
        )
    }

    fn gcsr_write(&mut self, n: u16, value: u64) {
        macro_rules! gwr {
            ($c:expr) => {{
                let mut v = value;
                // SAFETY: gcsrwr changes only the guest's copy of the CSR; the guest is not
                // running on this CPU while the backend restores it.
                unsafe { asm!("gcsrwr {0}, {1}", inout(reg) v, const $c, options(nomem, nostack)) };
                let _ = v;
            }};
        }
        by_number!(
            n,
            gwr,
            [
                0x0, 0x1, 0x2, 0x3, 0x4, 0x6, 0x7, 0x8, 0xc, 0x10, 0x11, 0x12, 0x13, 0x18, 0x19,
                0x1a, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
                0x88, 0x89, 0x8a, 0x8b, 0x180, 0x181, 0x40, 0x41, 0x43
            ]
        )
    }

    fn gcsr_xchg(&mut self, n: u16, value: u64, mask: u64) -> u64 {
        assert!(n == csr::ESTAT, "gcsrxchg of CSR {n:#x} is not used");
        let mut v = value;
        // SAFETY: gcsrxchg changes only the masked bits of the guest's ESTAT (its pending
        // interrupt lines); the guest is not running on this CPU. The mask is pinned to $t0 and
        // the value to $t1: the encoding reads rj = 0 as gcsrrd and rj = 1 as gcsrwr, so the
        // mask must never land in $zero or $ra.
        unsafe {
            asm!("gcsrxchg $t1, $t0, 0x5", inout("$t1") v, in("$t0") mask,
                options(nomem, nostack))
        };
        v
    }

    fn invtlb(&mut self, op: u32, rj: u64, rk: u64) {
        // SAFETY: dropping TLB entries only makes later accesses walk the tables again; the
        // hypervisor runs in the DMW windows, which the TLB does not hold.
        unsafe {
            match op {
                invtlb_op::ALL_GUESTS => {
                    asm!("dbar 0", "invtlb 0x12, $zero, $zero", options(nostack))
                }
                invtlb_op::GID_GPA => {
                    asm!("dbar 0", "invtlb 0x14, {0}, $zero", in(reg) rj, options(nostack))
                }
                invtlb_op::GID_ADDR => {
                    asm!("dbar 0", "invtlb 0x16, {0}, {1}", in(reg) rj, in(reg) rk, options(nostack))
                }
                _ => panic!("invtlb op {op:#x} not used by the LVZ backend"),
            }
        }
    }
}
