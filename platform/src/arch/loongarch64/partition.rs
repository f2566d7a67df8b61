//! LoongArch's side of the partition seam (`crate::partition::arch::PartitionArch`): the GPA-table
//! format both backends share, per-CPU translation set-up (the page-walk geometry, an all-invalid
//! high-half root, IPIs unmasked for kicks), local flushes by address-space id, kicks through the
//! IPI mailbox, and the choice of backend: LVZ when CPUCFG2 reports it, the deprivileged backend
//! otherwise.

use super::deprivileged::DeprivilegedVcpu;
use super::Current;
use crate::partition::arch::{GuestBoot, PartitionArch, VirtualUartAt};
use crate::partition::{Partition, PartitionId, TableFrames};
use arch_loongarch::stage2::{GpaTable16K, PAGE_SHIFT_16K, PWCH_16K, PWCL_16K};
use arch_loongarch::{csr, instr, iocsr, ipi};
use mmu::{Flush, NoTlb, StageTwoTable};
use spin::Once;

/// The IPI vector kicks use (any vector raises ESTAT.IS bit 12).
const KICK_VECTOR: u32 = 1;
/// ECFG.LIE bit of the IPI line.
const LIE_IPI: u64 = 1 << 12;
/// A range flush longer than this many pages drops the whole address space instead.
const RANGE_PAGES_MAX: u64 = 64;

/// An empty GPA table whose root goes into PGDH: a partition access to the high half walks into
/// invalid tables and faults, never into physical address 0.
static HIGH_ROOT: Once<StageTwoTable<GpaTable16K, TableFrames, NoTlb>> = Once::new();

/// The address-space id of partition `id` (0 is never used for a partition).
pub fn asid(id: PartitionId) -> u64 {
    u64::from(id) + 1
}

impl PartitionArch for Current {
    type Format = GpaTable16K;
    type Vcpu = DeprivilegedVcpu;
    const VIRTUAL_UART: VirtualUartAt = VirtualUartAt::Mmio(0x1fe0_01e0);

    fn backend() -> &'static str {
        "deprivileged (LVZ absent)"
    }

    fn prepare_cpu() {
        let high = HIGH_ROOT.call_once(|| {
            StageTwoTable::new(GpaTable16K::default(), TableFrames, NoTlb)
                .expect("memory for the high-half invalid root")
        });
        // SAFETY: the hypervisor runs only in the DMW windows, so the page-walk geometry, the
        // page-table roots and the TLB are the partitions' alone; nothing is translated through
        // them until a guest runs. Unmasking the IPI line in ECFG has no effect while CRMD.IE is
        // clear in the hypervisor; it lets a kick interrupt a guest. Pending IPIs (the wake-up)
        // are acknowledged so the first guest entry does not exit at once.
        unsafe {
            csr::write::<{ csr::PWCL }>(PWCL_16K);
            csr::write::<{ csr::PWCH }>(PWCH_16K);
            csr::write::<{ csr::STLBPS }>(PAGE_SHIFT_16K);
            csr::xchg::<{ csr::TLBREHI }>(PAGE_SHIFT_16K, 0x3f);
            csr::xchg::<{ csr::TLBIDX }>(PAGE_SHIFT_16K << 24, 0x3f << 24);
            csr::write::<{ csr::PGDH }>(high.root().as_u64());
            csr::xchg::<{ csr::ECFG }>(LIE_IPI, LIE_IPI | 0x7_0000);
            iocsr::write32(iocsr::IPI_ENABLE, u32::MAX);
            iocsr::write32(iocsr::IPI_CLEAR, iocsr::read32(iocsr::IPI_STATUS));
        }
        instr::invtlb_all();
    }

    fn create_vcpu(partition: &'static Partition, boot: GuestBoot) -> Self::Vcpu {
        DeprivilegedVcpu::new(partition, boot)
    }

    fn flush_local(id: PartitionId, what: Flush) {
        match what {
            Flush::None => {}
            Flush::Range { start, end }
                if (end.as_u64() - start.as_u64()) >> PAGE_SHIFT_16K <= RANGE_PAGES_MAX =>
            {
                let mut va = start.as_u64();
                while va < end.as_u64() {
                    instr::invtlb_asid_addr(asid(id), va);
                    va += 1 << PAGE_SHIFT_16K;
                }
            }
            _ => instr::invtlb_asid(asid(id)),
        }
    }

    fn kick(cpu: usize) {
        // SAFETY: the target handles IPIs: in a guest it exits (ECFG unmasks the line), in the
        // hypervisor the pending bit waits for its next guest entry.
        unsafe { ipi::send_ipi(cpu as u32, KICK_VECTOR) };
    }
}
