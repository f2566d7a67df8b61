//! The host model the deprivileged vCPU's tests run against: a script of exits for the guest
//! entries to play back (the exception state the CPU would leave and the registers the guest
//! changed before it), a record of every entry (the translation and context the world switch
//! would have loaded) and every interrupt acknowledgement, and the partition's memory as one
//! address range. It stands in for the CPU and the partition so decoding, completions and upcalls
//! are checked without either.

extern crate std;

use super::{DeprivHw, GuestContext};
use std::collections::VecDeque;
use std::vec::Vec;

/// What one guest entry ends with.
#[derive(Clone, Debug, Default)]
pub struct Exit {
    pub estat: u64,
    pub era: u64,
    pub badv: u64,
    pub badi: u32,
    /// Registers the guest set before the exception, `(n, value)` for `$rn`.
    pub writes: Vec<(usize, u64)>,
}

/// One guest entry as the world switch would have made it.
#[derive(Clone, Copy, Debug)]
pub struct Entered {
    pub root: u64,
    pub asid: u64,
    pub ctx: GuestContext,
}

/// The CPU and the partition as the vCPU sees them.
pub struct Model {
    pub script: VecDeque<Exit>,
    pub entries: Vec<Entered>,
    /// The ESTAT.IS values acknowledged, in order.
    pub acks: Vec<u32>,
    /// Memory the partition owns in the tests: everything below this address.
    pub owned_below: u64,
}

impl Model {
    pub fn new(exits: impl IntoIterator<Item = Exit>) -> Self {
        Self {
            script: exits.into_iter().collect(),
            entries: Vec::new(),
            acks: Vec::new(),
            owned_below: 32 << 20,
        }
    }
}

impl DeprivHw for Model {
    fn enter(&mut self, root: u64, asid: u64, ctx: &mut GuestContext) {
        // The real world switch may enter only PLV3 (PRMD.PPLV, bits 1:0) with interrupts on
        // (PRMD.PIE, bit 2): its safety rests on it, and a kick must be able to exit the guest.
        assert_eq!(ctx.prmd & 0x3, 3, "entry in a mode other than PLV3");
        assert_ne!(ctx.prmd & 0x4, 0, "entry with interrupts off");
        self.entries.push(Entered {
            root,
            asid,
            ctx: *ctx,
        });
        let exit = self.script.pop_front().expect("an exit scripted per entry");
        for &(n, value) in &exit.writes {
            assert_ne!(n, 0, "the guest cannot write $r0");
            ctx.regs[n] = value;
        }
        // An exception from PLV3 with interrupts on saves that same PRMD: left as it was.
        ctx.estat = exit.estat;
        ctx.era = exit.era;
        ctx.badv = exit.badv;
        ctx.badi = u64::from(exit.badi);
    }

    fn acknowledge(&mut self, is: u32) -> u32 {
        self.acks.push(is);
        if is & 1 << 12 != 0 {
            12
        } else if is & 1 << 11 != 0 {
            11
        } else {
            is
        }
    }

    fn owned(&self, gpa: u64) -> bool {
        gpa < self.owned_below
    }
}
