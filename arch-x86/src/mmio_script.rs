//! Test support shared by the SVM and VMX models: the host's MMIO decode and completion as a
//! test scripts them. A stage-2 fault decodes to the scripted access (with its instruction's
//! length) and records the guest CR3 it was decoded under; completing it puts a load's value in
//! rax and reports the length the model's backend advances the guest by. Both backends' glue
//! (`SvmHw`/`VmxHw::decode_mmio`, `complete_mmio`) is the same contract, so one script serves both.

extern crate std;

use std::vec::Vec;
use vcpu::{Completion, VmExit};

/// One model's MMIO script.
#[derive(Default)]
pub struct MmioScript {
    /// What a stage-2 fault decodes to as MMIO, and the instruction's length.
    pub next: Option<(VmExit, u8)>,
    /// The length of the access decoded last, until it is completed.
    len: Option<u8>,
    /// The guest CR3 each decode was given.
    pub cr3: Vec<u64>,
}

impl MmioScript {
    /// `exit` as the host's decode makes it: a stage-2 fault becomes the scripted access.
    pub fn decode(&mut self, exit: VmExit, cr3: u64) -> VmExit {
        self.cr3.push(cr3);
        self.len = None;
        match (exit, self.next) {
            (VmExit::StageTwoFault { .. }, Some((access, len))) => {
                self.len = Some(len);
                access
            }
            (exit, _) => exit,
        }
    }

    /// Completes the access decoded last: a load's value goes to `rax`. Returns what is left to
    /// complete, and the instruction's length when the completion ends the instruction.
    pub fn complete(&mut self, completion: Completion, rax: &mut u64) -> (Completion, Option<u8>) {
        let Some(len) = self.len.take() else {
            return (completion, None);
        };
        match completion {
            Completion::Value(v) => {
                // The models' loads all go to rax.
                *rax = v;
                (Completion::Skip, Some(len))
            }
            Completion::Skip => (Completion::Skip, Some(len)),
            other => (other, None),
        }
    }
}
