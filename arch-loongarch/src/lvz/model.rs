//! The host model the LVZ tests run against: a root and a guest CSR file, a log of every CSR
//! access, TLB operation, guest entry and interrupt acknowledgement in the order the backend
//! made them, and a script of exits for [`LvzWorld::enter`] to play back. It stands in for the
//! CPU so the programming order, the exit decoding and the completions are checked without LVZ
//! hardware (stock QEMU has none).

extern crate std;

use super::{ExitRegs, LvzHw, LvzWorld, Trap};
use crate::csr;
use std::collections::VecDeque;
use std::vec::Vec;

/// One thing the backend did to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Rd(u16),
    Wr(u16, u64),
    GRd(u16),
    GWr(u16, u64),
    /// `gcsrxchg`: CSR, value, mask.
    GXchg(u16, u64, u64),
    Inv(u32, u64, u64),
    /// A guest entry, with the root ERA and GSTAT in effect at the `ertn`.
    Enter {
        era: u64,
        gstat: u64,
    },
    /// Host interrupt lines acknowledged.
    Ack(u32),
    /// A re-check exit asked for (nanoseconds from now) or withdrawn.
    Recheck(Option<u64>),
}

/// The CPU as the backend sees it.
pub struct Model {
    pub root: [u64; 0x200],
    pub guest: [u64; 0x200],
    pub log: Vec<Op>,
    /// Exits to play back, one per entry: the exception state and the registers the guest
    /// leaves (`None` keeps the registers it was entered with).
    pub script: VecDeque<(ExitRegs, bool)>,
    /// The registers of the last entry, as the world switch would have loaded them.
    pub entered_with: Vec<[u64; 32]>,
    /// Memory the partition owns in the tests: the first 32 MiB.
    pub owned_below: u64,
}

impl Model {
    pub fn new() -> Self {
        Self {
            root: [0; 0x200],
            guest: [0; 0x200],
            log: Vec::new(),
            script: VecDeque::new(),
            entered_with: Vec::new(),
            owned_below: 32 << 20,
        }
    }

    /// Queues an exit with Ecode `ecode` at `era` with `badv`/`badi`; the guest's registers are
    /// left as they were entered.
    pub fn exit(&mut self, ecode: u64, era: u64, badv: u64, badi: u32) {
        self.script.push_back((
            ExitRegs {
                estat: ecode << 16,
                era,
                badv,
                badi,
                regs: [0; 32],
            },
            false,
        ));
    }

    /// Queues an exit that also replaces the guest's registers with `regs`.
    pub fn exit_with(&mut self, r: ExitRegs) {
        self.script.push_back((r, true));
    }
}

impl LvzHw for Model {
    fn csr_read(&mut self, csr: u16) -> u64 {
        self.log.push(Op::Rd(csr));
        self.root[csr as usize]
    }
    fn csr_write(&mut self, csr: u16, value: u64) {
        self.log.push(Op::Wr(csr, value));
        self.root[csr as usize] = value;
    }
    fn gcsr_read(&mut self, csr: u16) -> u64 {
        self.log.push(Op::GRd(csr));
        self.guest[csr as usize]
    }
    fn gcsr_write(&mut self, csr: u16, value: u64) {
        self.log.push(Op::GWr(csr, value));
        self.guest[csr as usize] = value;
    }
    fn gcsr_xchg(&mut self, csr: u16, value: u64, mask: u64) -> u64 {
        self.log.push(Op::GXchg(csr, value, mask));
        let old = self.guest[csr as usize];
        self.guest[csr as usize] = old & !mask | value & mask;
        old
    }
    fn invtlb(&mut self, op: u32, rj: u64, rk: u64) {
        // The GID-scoped operations take the guest id from rj[23:16] and nothing else from
        // rj; anything outside that field, or GID 0 (the root), is a backend bug the
        // hardware would silently turn into a flush of the wrong guest.
        if (0x13..=0x16).contains(&op) {
            let gid_only = rj & !(0xff << 16) == 0 && rj >> 16 != 0;
            assert!(
                gid_only,
                "invtlb {op:#x}: rj {rj:#x} is not a non-root GID in rj[23:16]"
            );
        }
        self.log.push(Op::Inv(op, rj, rk));
    }
}

impl LvzWorld for Model {
    fn enter(&mut self, regs: &mut [u64; 32]) -> Trap {
        self.log.push(Op::Enter {
            era: self.root[csr::ERA as usize],
            gstat: self.root[csr::GSTAT as usize],
        });
        self.entered_with.push(*regs);
        let (r, replace) = self.script.pop_front().expect("an exit scripted per entry");
        if replace {
            *regs = r.regs;
        }
        // The hardware's half of the exit: back in root mode, previous mode = guest. The asm
        // exit path then clears PVM itself, so the model does too.
        self.root[csr::GSTAT as usize] &= !super::gstat::PVM;
        Trap {
            estat: r.estat,
            era: r.era,
            badv: r.badv,
            badi: r.badi,
        }
    }

    fn acknowledge(&mut self, is: u32) -> u32 {
        self.log.push(Op::Ack(is));
        if is & 1 << 12 != 0 {
            12
        } else {
            is
        }
    }

    fn owned(&self, gpa: u64) -> bool {
        gpa < self.owned_below
    }

    fn recheck_after(&mut self, ns: Option<u64>) {
        self.log.push(Op::Recheck(ns));
    }
}
