//! The deprivileged vCPU: one partition's vCPU on its own CPU, as a `vcpu::ArchVcpu`. A run enters
//! the guest under the partition's translation and decodes the exception that ends it; a
//! completion writes the result where the exiting instruction wanted it and steps past that
//! instruction; an upcall swaps the whole context for the handler's and back. Everything that
//! touches the CPU or the partition goes through [`DeprivHw`], so this file is host-tested
//! against a model.

use super::{DeprivHw, GuestContext};
use crate::decode::{self, MemAccess, Sensitive};
use crate::estat::Estat;
use vcpu::ipi_mailbox::exit_word;
use vcpu::{Access, ArchVcpu, Completion, Delivery, VmExit};

/// PRMD for guest entry: PLV3, interrupts on (so an IPI kicks the guest out).
pub const PRMD_GUEST: u64 = 0x7;
/// Register numbers of the hypercall and upcall ABI (a0 = r4, a7 = r11, sp = r3).
const A0: usize = 4;
const A7: usize = 11;
const SP: usize = 3;

/// What a vCPU is made from: its partition's translation and its boot state.
#[derive(Clone, Copy, Debug)]
pub struct VcpuConfig {
    /// Physical address of the partition's GPA table root (PGDL).
    pub root: u64,
    /// The partition's address-space id ([`super::asid`]).
    pub asid: u64,
    /// Guest-physical address of the first instruction.
    pub entry: u64,
    /// The guest's first argument registers a0-a4.
    pub args: [u64; 5],
}

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

/// One vCPU of a partition under the deprivileged backend, generic over the CPU it runs on.
pub struct DeprivilegedVcpu<H: DeprivHw> {
    hw: H,
    root: u64,
    asid: u64,
    ctx: GuestContext,
    pending: Pending,
    /// The context an upcall interrupted, while the handler runs.
    saved: Option<GuestContext>,
}

impl<H: DeprivHw> DeprivilegedVcpu<H> {
    /// A vCPU that starts at `config.entry` at PLV3 with `config.args` in a0-a4, every other
    /// register 0. The guest image must already be visible to instruction fetch (`ibar` after
    /// copying it in).
    pub fn new(hw: H, config: VcpuConfig) -> Self {
        let mut ctx = GuestContext::new(config.entry, PRMD_GUEST);
        ctx.regs[A0..A0 + 5].copy_from_slice(&config.args);
        Self {
            hw,
            root: config.root,
            asid: config.asid,
            ctx,
            pending: Pending::None,
            saved: None,
        }
    }

    /// The guest's registers and the state of its last exit.
    pub fn context(&self) -> &GuestContext {
        &self.ctx
    }

    /// The CPU this vCPU runs on.
    pub fn hw(&mut self) -> &mut H {
        &mut self.hw
    }

    /// A page-invalid load or store: guest memory (a tracking fault) or a device access.
    fn invalid(&mut self, gpa: u64, access: Access) -> VmExit {
        if self.hw.owned(gpa) {
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
                vector: self.hw.acknowledge(estat.is()),
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

impl<H: DeprivHw> ArchVcpu for DeprivilegedVcpu<H> {
    fn run(&mut self) -> VmExit {
        self.pending = Pending::None;
        self.hw.enter(self.root, self.asid, &mut self.ctx);
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
