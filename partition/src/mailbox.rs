//! The LoongArch IPI and mailbox registers of a vCPU (IOCSR 0x1000-0x104f), for guests that start
//! and signal their cores the way Loongson firmware and Linux do: the decoder is
//! `vcpu::ipi_mailbox`, the state lives in each vCPU's `VcpuSlot` (other vCPUs write it from
//! their CPUs), and delivery shares the vCPU's IPI path (`SEND_IPI`'s pending bit, upcall and
//! kick). Both LoongArch backends report a guest's IOCSR access as a CSR exit carrying the address
//! and width (`ipi_mailbox::exit_word`): LVZ through its GSPR exit, the deprivileged backend
//! through the privilege error an `iocsr*` instruction raises at PLV3.
//!
//! What a partition can reach: core numbers are vCPU indices, so a send names only the
//! partition's own vCPUs; a core beyond them is refused with the `SEND_IPI` console line. An IPI
//! to a vCPU that has not started starts it at its mailbox 0 (a0 = mailbox 1, a1 = its index), the
//! way a parked core leaves the firmware's wait loop; one with an empty mailbox 0 stays parked.
//! Any other IOCSR address is not the partition's (the caller stops it, as before).

use crate::arch::PartitionArch;
use crate::vintr::{ipi_to, no_such_vcpu, wake_for_start, VirtualInterrupts};
use core::sync::atomic::Ordering;
use vcpu::ipi_mailbox::{self, IocsrOp};
use vcpu::slot::VcpuState;

/// The IPI line's bit in the line word (ESTAT.IS bit 12).
const IPI_LINE: u32 = 1 << 12;

impl<A: PartitionArch> VirtualInterrupts<A> {
    /// The vCPU's IPI line as the hardware drives it from the block: raised while a pending bit
    /// is enabled (ESTAT.IS bit 12 layout, `vcpu::ExitHandler::irq_lines`). Only a backend that
    /// injects lines (LVZ) uses it; the deprivileged one delivers the same IPIs as upcalls.
    pub fn iocsr_lines(&self) -> u32 {
        let slot = self.slot();
        let level =
            slot.iocsr_ipi.load(Ordering::SeqCst) & slot.iocsr_enable.load(Ordering::SeqCst);
        if level != 0 {
            IPI_LINE
        } else {
            0
        }
    }

    /// A guest IOCSR read (`csr` is the exit word): the value, or `None` if it is not an access
    /// to the partition's IPI block.
    pub fn iocsr_read(&self, csr: u32) -> Option<u64> {
        let (addr, size) = ipi_mailbox::split_exit_word(csr)?;
        let slot = self.slot();
        Some(match ipi_mailbox::decode(addr, size, None)? {
            IocsrOp::ReadStatus => u64::from(slot.iocsr_ipi.load(Ordering::SeqCst)),
            IocsrOp::ReadEnable => u64::from(slot.iocsr_enable.load(Ordering::SeqCst)),
            IocsrOp::ReadMailbox {
                mailbox,
                offset,
                size,
            } => ipi_mailbox::bytes(slot.mailboxes[mailbox].load(Ordering::SeqCst), offset, size),
            _ => return None,
        })
    }

    /// A guest IOCSR write: `None` if it is not an access to the partition's IPI block;
    /// otherwise done (or refused with a console line).
    pub fn iocsr_write(&mut self, csr: u32, value: u64) -> Option<()> {
        let (addr, size) = ipi_mailbox::split_exit_word(csr)?;
        let slot = self.slot();
        match ipi_mailbox::decode(addr, size, Some(value))? {
            IocsrOp::WriteEnable(mask) => slot.iocsr_enable.store(mask, Ordering::SeqCst),
            IocsrOp::SetOwn(bits) => {
                slot.iocsr_ipi.fetch_or(bits, Ordering::SeqCst);
                if bits & slot.iocsr_enable.load(Ordering::SeqCst) != 0 {
                    slot.raise_ipi(self.index, A::now());
                }
            }
            IocsrOp::ClearOwn(bits) => {
                let was = slot.iocsr_ipi.fetch_and(!bits, Ordering::SeqCst);
                // A guest without an upcall handler takes IPIs the hardware way (LVZ: its own
                // exception vector); clearing a pending bit is its acknowledgement, so that is
                // where the IPI counts as delivered (with an upcall, the upcall counted it).
                let taken = was & bits & slot.iocsr_enable.load(Ordering::SeqCst);
                if taken != 0 && !self.has_upcall_handler() {
                    slot.ipi_irqs
                        .fetch_add(u64::from(taken.count_ones()), Ordering::Relaxed);
                    let (_, at) = slot.ipi_source();
                    slot.ipi_latency.record(A::now().wrapping_sub(at));
                }
            }
            IocsrOp::WriteMailbox {
                mailbox,
                offset,
                size,
                value,
            } => {
                let m = &slot.mailboxes[mailbox];
                m.store(
                    ipi_mailbox::with_bytes(m.load(Ordering::SeqCst), offset, size, value),
                    Ordering::SeqCst,
                );
            }
            IocsrOp::SendMail { core, half, data } => {
                let target = self.partition.vcpus.get(core as usize);
                let Some(target) = target else {
                    no_such_vcpu(self.partition, "mail", core);
                    return Some(());
                };
                let m = &target.mailboxes[(half / 2) as usize];
                m.store(
                    ipi_mailbox::with_half(m.load(Ordering::SeqCst), half, data),
                    Ordering::SeqCst,
                );
            }
            IocsrOp::SendIpi { core, vector } => self.iocsr_send_ipi(core, vector),
            _ => return None,
        }
        Some(())
    }

    /// IPI_SEND: starts a parked vCPU from its mailboxes, or raises IPI bit `vector` on a
    /// running one (an upcall if the bit is enabled) and kicks its CPU.
    fn iocsr_send_ipi(&mut self, core: u32, vector: u32) {
        let p = self.partition;
        let Some(target) = p.vcpus.get(core as usize) else {
            no_such_vcpu(p, "IPI", core);
            return;
        };
        let me = self.index;
        let taken = ipi_to(p, me, core, |t| {
            let bit = 1u32 << vector;
            t.iocsr_ipi.fetch_or(bit, Ordering::SeqCst);
            let enabled = t.iocsr_enable.load(Ordering::SeqCst) & bit != 0;
            if enabled {
                t.raise_ipi(me, A::now());
            }
            enabled
        });
        if taken {
            return;
        }
        // Not running: counted all the same; a parked vCPU starts (starting: it will run; ended:
        // the run is over, nothing to wake).
        p.vcpus[me as usize]
            .ipis_sent
            .fetch_add(1, Ordering::Relaxed);
        if target.state() == VcpuState::Off {
            let entry = target.mailboxes[0].load(Ordering::SeqCst);
            let arg = target.mailboxes[1].load(Ordering::SeqCst);
            if entry != 0 && target.request_start(entry, arg) {
                wake_for_start(self.partition, target);
            }
        }
    }
}
