//! The MMIO decode of a vCPU, with the partition it reads: both backends' hardware glue hands
//! every exit to [`GuestMmio`], which gives `arch_x86::mmio_exit` (host-tested: instruction fetch
//! through the guest's page tables, decode, completion) the partition's memory, read through its
//! stage-2 table, and the window of its emulated interrupt controller view (`partition::irqchip`,
//! the only MMIO device partitions have on x86). The partition arrives when the vCPU is created,
//! so nothing here looks it up.

use crate::board::BOARD;
use crate::partitions::Partition;
use arch_x86::guest_walk::GuestMemory;
use arch_x86::mmio_exit::{ExitRecord, Gprs, MmioGuest, PendingMmio};
use vcpu::{Completion, VmExit};

/// A partition's memory, as the decode reads it.
struct Memory(&'static Partition);

impl GuestMemory for Memory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> bool {
        self.0.read_guest(gpa, buf)
    }
}

/// A vCPU's MMIO decode: its partition (none for a vCPU that cannot run) and the access in
/// flight.
#[derive(Default)]
pub struct GuestMmio {
    partition: Option<&'static Partition>,
    pending: PendingMmio,
}

impl GuestMmio {
    /// The decode of a vCPU of `partition`.
    pub fn of(partition: &'static Partition) -> Self {
        Self {
            partition: Some(partition),
            pending: PendingMmio::default(),
        }
    }

    /// `exit` as the handler should see it (`PendingMmio::decode`).
    pub fn decode(
        &mut self,
        exit: VmExit,
        last: &impl ExitRecord,
        cr3: u64,
        regs: &impl Gprs,
    ) -> VmExit {
        let Some(p) = self.partition else {
            return exit;
        };
        let window = BOARD.irqchip.mmio;
        let guest = MmioGuest {
            memory: &Memory(p),
            devices: window.start..window.end(),
        };
        self.pending.decode(exit, last, cr3, regs, &guest)
    }

    /// The handler's completion of the access decoded last (`PendingMmio::complete`).
    pub fn complete(
        &mut self,
        completion: Completion,
        regs: &mut impl Gprs,
        last: &mut impl ExitRecord,
    ) -> Completion {
        self.pending.complete(completion, regs, last)
    }
}
