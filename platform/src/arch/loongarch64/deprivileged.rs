//! The deprivileged backend, for CPUs without LVZ (QEMU, LVZ-less Loongson SoCs): a partition's
//! code runs at PLV3 on its own CPU with the partition's GPA table as its page table (PGDL, VA ==
//! GPA, ASID = partition id + 1, the high half behind an all-invalid root), refilled by the
//! hardware walker (`trap.rs`). Every exception it takes is an exit (`world.rs`), decoded here
//! into a `vcpu::VmExit`: `syscall` is a hypercall, page-invalid faults on addresses outside the
//! partition's memory are device accesses (decoded from BADI), faults on its memory go to the
//! stage-2 fast fix (page-modify = dirty, page-invalid after aging = young), `csr*`/INE are
//! forbidden instructions, and an IPI or timer interrupt is an `ExternalInterrupt` (a kick, a
//! flush shootdown, or the vCPU's virtual timer). Virtual interrupts reach the PLV3 program as
//! upcalls (`vcpu::upcall`): the interrupted context is copied aside here, in the hypervisor, and
//! the guest resumes in its handler with sp, a0 and a1 set; `UPCALL_RETURN` copies it back.

use super::world::{self, GuestContext};
use crate::partitions::Partition;
use arch_loongarch::csr;
use arch_loongarch::decode::{self, MemAccess, Sensitive};
use arch_loongarch::estat::Estat;
use partition::arch::GuestBoot;
use partition::PartitionId;
use vcpu::ipi_mailbox::exit_word;
use vcpu::{Access, ArchVcpu, Completion, Delivery, VmExit};

/// The address-space id of partition `id` (0 is never used for a partition): its deprivileged
/// guests' TLB entries, and the root's flushes of them.
pub fn asid(id: PartitionId) -> u64 {
    u64::from(id) + 1
}

/// PRMD for guest entry: PLV3, interrupts on (so an IPI kicks the guest out).
const PRMD_GUEST: u64 = 0x7;
/// Register numbers of the hypercall ABI (a0 = r4, a7 = r11).
const A0: usize = 4;
const A7: usize = 11;
const SP: usize = 3;

/// What the last exit needs from its completion.
#[derive(Clone, Copy)]
enum Pending {
    None,
    /// A hypercall: the result goes to a0.
    Hypercall,
    /// An emulated load: the result goes to `rd`, extended as the instruction says.
    Load(MemAccess),
    /// An emulated `iocsrrd`: the result goes to `rd`.
    Iocsr {
        rd: usize,
    },
}

/// One vCPU of a partition under the deprivileged backend.
pub struct DeprivilegedVcpu {
    partition: &'static Partition,
    ctx: GuestContext,
    pending: Pending,
    /// The context an upcall interrupted, while the handler runs.
    saved: Option<GuestContext>,
}

impl DeprivilegedVcpu {
    pub fn new(partition: &'static Partition, boot: GuestBoot) -> Self {
        let mut ctx = GuestContext::new(boot.entry, PRMD_GUEST);
        ctx.regs[A0..A0 + 5].copy_from_slice(&boot.args);
        // The image was just copied in by this CPU: make its fetches see it.
        arch_loongarch::instr::ibar();
        Self {
            partition,
            ctx,
            pending: Pending::None,
            saved: None,
        }
    }

    /// Mapped in the partition's stage-2 table: its memory, or a device window of its own (whose
    /// first write takes a fault too, the table keeping the dirty bit for the fault to set).
    fn owned(&self, gpa: u64) -> bool {
        self.partition.table().translate(mmu::Gpa(gpa)).is_some()
    }

    /// A page-invalid load or store: guest memory (a tracking fault) or a device access.
    fn invalid(&mut self, gpa: u64, access: Access) -> VmExit {
        if self.owned(gpa) {
            return VmExit::StageTwoFault { gpa, access };
        }
        match decode::mem_access(self.ctx.badi as u32) {
            Some(m) if m.store => VmExit::MmioWrite {
                gpa,
                size: m.size,
                value: self.ctx.regs[m.rd] & m.size.mask(),
            },
            Some(m) => {
                self.pending = Pending::Load(m);
                VmExit::MmioRead { gpa, size: m.size }
            }
            None => VmExit::StageTwoFault { gpa, access },
        }
    }

    fn decode(&mut self) -> VmExit {
        let estat = Estat(self.ctx.estat);
        let badv = self.ctx.badv;
        match estat.ecode() {
            0x0 => VmExit::ExternalInterrupt {
                vector: super::host_irq::acknowledge_interrupts(estat.is()),
            },
            0x1 => self.invalid(badv, Access::Read),
            0x2 => self.invalid(badv, Access::Write),
            0x3 => VmExit::StageTwoFault {
                gpa: self.ctx.era,
                access: Access::Execute,
            },
            0x4 => VmExit::StageTwoFault {
                gpa: badv,
                access: Access::Write,
            },
            0x5 | 0x7 => VmExit::StageTwoFault {
                gpa: badv,
                access: Access::Read,
            },
            0x6 => VmExit::StageTwoFault {
                gpa: self.ctx.era,
                access: Access::Execute,
            },
            // An address no translation can cover (the hypervisor's windows, beyond VALEN).
            0x8 => VmExit::StageTwoFault {
                gpa: badv,
                access: if estat.esubcode() == 0 {
                    Access::Execute
                } else {
                    Access::Read
                },
            },
            0xb => {
                self.pending = Pending::Hypercall;
                let r = &self.ctx.regs;
                VmExit::Hypercall {
                    code: 0,
                    nr: r[A7],
                    args: [r[A0], r[A0 + 1], r[A0 + 2], r[A0 + 3], r[A0 + 4], r[A0 + 5]],
                }
            }
            // IOCSR at PLV3 is a privilege error; the partition's IPI block is emulated
            // (`partition::mailbox`), any other address stops it there.
            0xe => match decode::sensitive(self.ctx.badi as u32) {
                Some(Sensitive::IocsrRead { rd, rj, size }) => {
                    self.pending = Pending::Iocsr { rd };
                    VmExit::CsrRead {
                        csr: exit_word(self.ctx.regs[rj], size.bytes() as u32),
                    }
                }
                Some(Sensitive::IocsrWrite { rd, rj, size }) => VmExit::CsrWrite {
                    csr: exit_word(self.ctx.regs[rj], size.bytes() as u32),
                    value: self.ctx.regs[rd] & size.mask(),
                },
                _ => VmExit::ForbiddenInstruction {
                    pc: self.ctx.era,
                    raw: self.ctx.badi as u32,
                },
            },
            0xd => VmExit::ForbiddenInstruction {
                pc: self.ctx.era,
                raw: self.ctx.badi as u32,
            },
            other => VmExit::Unknown {
                raw: u64::from(other),
            },
        }
    }
}

impl ArchVcpu for DeprivilegedVcpu {
    fn run(&mut self) -> VmExit {
        self.pending = Pending::None;
        let root = self.partition.table().root().as_u64();
        // SAFETY: PGDL gets the partition's GPA table (every empty slot leads to an invalid
        // table, never to address 0) and ASID its own id, so the guest reaches only its memory;
        // PRMD selects PLV3 and interrupts are off in the hypervisor, as `enter` requires.
        unsafe {
            csr::write::<{ csr::PGDL }>(root);
            csr::write::<{ csr::ASID }>(asid(self.partition.id));
            world::enter(&mut self.ctx);
        }
        self.decode()
    }

    fn complete(&mut self, completion: Completion) {
        match completion {
            // No LoongArch exit asks for an exception: the instruction is retried.
            Completion::Retry | Completion::Exception { .. } => {}
            Completion::Skip | Completion::CpuId(_) => self.ctx.era += 4,
            Completion::Value(v) => {
                match self.pending {
                    Pending::Hypercall => self.ctx.regs[A0] = v,
                    Pending::Load(m) if m.rd != 0 => {
                        self.ctx.regs[m.rd] = decode::load_result(&m, v)
                    }
                    Pending::Iocsr { rd } if rd != 0 => self.ctx.regs[rd] = v,
                    _ => {}
                }
                self.ctx.era += 4;
            }
        }
        self.pending = Pending::None;
    }

    fn deliver_upcall(&mut self, d: Delivery) -> bool {
        if self.saved.is_some() {
            return false;
        }
        self.saved = Some(self.ctx);
        self.ctx.era = d.upcall.entry;
        self.ctx.regs[SP] = d.upcall.stack;
        self.ctx.regs[A0] = d.irq.code();
        self.ctx.regs[A0 + 1] = d.detail;
        true
    }

    fn return_from_upcall(&mut self) {
        if let Some(ctx) = self.saved.take() {
            // Everything as it was, including a0: the interrupted code never sees the call.
            self.ctx = ctx;
        }
        self.pending = Pending::None;
    }
    /// No IDT to inject into: LoongArch guests get interrupts as upcalls or lines.
    fn inject_interrupt(&mut self, _vector: u8) -> bool {
        false
    }
    /// Ignored: this backend delivers IPIs as upcalls, not as a guest interrupt line.
    fn set_irq_lines(&mut self, _lines: u32) {}
}
