//! The LVZ vCPU: one partition's vCPU on its own CPU, as a `vcpu::ArchVcpu`. The guest is a
//! normal LoongArch kernel in its own privileged mode (guest PLV0, direct-address mode at start,
//! as KVM starts its guests), so, unlike the deprivileged backend, its CSRs, TLB and exceptions
//! are its own and only what LVZ sends to root comes back here. A run: load the guest CSRs if this
//! CPU does not hold them (first run: the initial set, and every guest TLB entry dropped so no
//! earlier run's translations survive), program the root CSRs for entry (`program_entry`: PGDL,
//! TGID, GINTC, GCNTC, ERA, PRMD, GSTAT with PVM last), switch worlds, undo the guest-only root
//! state (`leave_guest`), and decode the exit. FP/LSX/LASX-disabled exits are handled here (the
//! units are turned on for the guest and it retries) because the hypervisor itself never uses
//! them (soft-float image), so the guest may keep them.
//!
//! Everything that touches the CPU goes through [`LvzWorld`] (an [`LvzHw`] plus the world switch
//! and interrupt acknowledgement), so this file is host-tested against the CSR model.

use super::{
    decode_exit, gstat, guest_lines, invtlb_op, leave_guest, program_entry, Entry, ExitRegs,
    GuestCsrs, LvzHw,
};
use crate::csr;
use crate::decode::{self, MemAccess, Sensitive};
use crate::estat::Estat;
use vcpu::{ArchVcpu, Completion, Delivery, VmExit};

/// Boot flag (a1 bit 0) telling the guest runtime it runs under LVZ: hypercalls are `hvcl 0`.
pub const FLAG_HVCL: u64 = 1;

/// EUEN bits: FP, LSX, LASX enables.
const EUEN_FPE: u64 = 1 << 0;
const EUEN_SXE: u64 = 1 << 1;
const EUEN_ASXE: u64 = 1 << 2;

/// Ecode of a guest-sensitive privileged resource exit.
const GSPR: u32 = 0x16;

/// Register numbers: a0 (hypercall result, first boot argument).
const A0: usize = 4;

/// The root exception state an exit leaves, as the exit vector saved it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trap {
    /// Root ESTAT (Ecode, EsubCode, pending interrupt lines).
    pub estat: u64,
    /// Root ERA: the guest PC of the exiting instruction.
    pub era: u64,
    /// Root BADV: the GPA of a stage-2 fault.
    pub badv: u64,
    /// Root BADI: the exiting instruction word.
    pub badi: u32,
}

/// The CPU a vCPU runs on: CSR and TLB access, plus the parts that are not a CSR access.
pub trait LvzWorld: LvzHw {
    /// Loads `regs` into the guest's GPRs and `ertn`s into the guest (the root CSRs are already
    /// programmed); returns at its next exit with `regs` holding the guest's GPRs again.
    fn enter(&mut self, regs: &mut [u64; 32]) -> Trap;
    /// Acknowledges the host interrupts pending in `is` (ESTAT.IS) and returns the vector to
    /// report (12 for an IPI, 11 for the timer, else `is`).
    fn acknowledge(&mut self, is: u32) -> u32;
    /// Whether the partition's stage-2 table maps `gpa` (its memory or one of its device
    /// windows): a fault there is the table's to fix, otherwise it is an emulated device access.
    fn owned(&self, gpa: u64) -> bool;
    /// Makes the guest exit within `ns` nanoseconds from now (the root timer), or withdraws the
    /// request (`None`); see [`super::recheck`].
    fn recheck_after(&mut self, ns: Option<u64>);
}

/// What a vCPU is made from.
#[derive(Clone, Copy, Debug)]
pub struct VcpuConfig {
    /// The partition's guest id (never 0).
    pub gid: u64,
    /// Physical address of the partition's GPA table root.
    pub root: u64,
    /// Guest-physical address of the first instruction.
    pub entry: u64,
    /// The guest's first argument registers a0-a4, exactly (a test guest's caller adds
    /// [`FLAG_HVCL`] to a1; a kernel's boot protocol gets nothing added).
    pub args: [u64; 5],
    /// The vCPU's number in its partition (guest CPUID and TID).
    pub index: u64,
    /// Offset added to the counter the guest reads (GCNTC).
    pub counter_offset: u64,
}

/// Where the result of the last exit goes when the handler completes it with a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    None,
    /// A hypercall: a0.
    Hypercall,
    /// An emulated device load: `rd`, extended as the instruction says.
    Load(MemAccess),
    /// `cpucfg`, `csrrd`, the old value of `csrwr`/`csrxchg`, `iocsrrd`: `rd`, truncated.
    Reg {
        rd: usize,
        mask: u64,
    },
}

/// One vCPU under LVZ, generic over the CPU it runs on.
pub struct LvzVcpu<W: LvzWorld> {
    world: W,
    config: VcpuConfig,
    csrs: GuestCsrs,
    /// The CPU holds this vCPU's guest CSRs (they stay there across exits).
    loaded: bool,
    regs: [u64; 32],
    pc: u64,
    last: Trap,
    pending: Pending,
    /// The IPI line level last written to guest ESTAT (the guest cannot change it itself).
    ipi_line: bool,
    /// Virtual hardware lines HWI0-7 raised for the guest, written to GINTC.HWIS each entry.
    hwi_lines: u8,
    /// The CSRs LVZ leaves out of the guest's, kept here (`super::shadow`).
    shadow: super::shadow::ShadowCsrs,
    /// The delay of the re-check asked for at the last entry (0: none), see [`super::recheck`].
    recheck_ns: u64,
}

impl<W: LvzWorld> LvzVcpu<W> {
    /// A vCPU that starts at `config.entry` in direct-address mode with `config.args` in a0-a4.
    pub fn new(world: W, config: VcpuConfig) -> Self {
        let mut regs = [0; 32];
        regs[A0..A0 + 5].copy_from_slice(&config.args);
        Self {
            world,
            csrs: GuestCsrs::initial(config.entry, config.index),
            config,
            loaded: false,
            regs,
            pc: config.entry,
            last: Trap::default(),
            pending: Pending::None,
            ipi_line: false,
            hwi_lines: 0,
            shadow: super::shadow::ShadowCsrs::default(),
            recheck_ns: 0,
        }
    }

    /// The guest's general registers (`regs[n]` = `$rn`).
    pub fn regs(&self) -> &[u64; 32] {
        &self.regs
    }

    /// The guest PC the next entry resumes at.
    pub fn pc(&self) -> u64 {
        self.pc
    }

    /// The exception state of the last exit.
    pub fn last_exit(&self) -> Trap {
        self.last
    }

    /// The CPU this vCPU runs on.
    pub fn world(&mut self) -> &mut W {
        &mut self.world
    }

    /// Copies the guest CSRs out of the CPU, so another vCPU may use it; the next run restores
    /// them. A vCPU that owns its CPU never needs this between exits.
    pub fn unload(&mut self) {
        self.withdraw_recheck();
        if self.loaded {
            self.csrs = GuestCsrs::save(&mut self.world);
            self.loaded = false;
        }
    }

    /// Drives the virtual hardware lines HWI0-7 (bit n: HWIn) from the next entry on.
    pub fn set_hwi_lines(&mut self, lines: u8) {
        self.hwi_lines = lines;
    }

    /// Drives the guest's IPI line (ESTAT.IS bit 12) at `level` from the next entry on. A raised
    /// line is written again before every entry while it stays raised (an emulator that updates
    /// the guest ESTAT from another thread, as QEMU-LVZ's guest timer does, may lose one write;
    /// a level must not stay lost), a lowered one once.
    pub fn set_ipi_line(&mut self, level: bool) {
        let changed = level != self.ipi_line;
        self.ipi_line = level;
        if self.loaded && (level || changed) {
            super::set_ipi_line(&mut self.world, level);
        }
    }

    /// Before an entry: raised lines (IPI, HWI) the guest cannot take now (interrupts off, or the
    /// lines masked in its ECFG) get a re-check, an exit after a delay that grows while the line keeps
    /// waiting ([`super::recheck`]); a line that is lowered or takeable withdraws it. Reads the
    /// guest's CRMD and ECFG only while the line is raised.
    fn arm_recheck(&mut self) {
        let raised = self.raised_lines();
        let waiting = raised != 0 && {
            let crmd = self.world.gcsr_read(csr::CRMD);
            let ecfg = self.world.gcsr_read(csr::ECFG);
            !super::lines_takeable(crmd, ecfg, raised)
        };
        if waiting {
            self.recheck_ns = super::recheck::next(self.recheck_ns);
            self.world.recheck_after(Some(self.recheck_ns));
        } else {
            self.withdraw_recheck();
        }
    }

    /// The lines this vCPU raises, in the ESTAT.IS layout.
    fn raised_lines(&self) -> u64 {
        let ipi = if self.ipi_line { guest_lines::IPI } else { 0 };
        ipi | u64::from(self.hwi_lines) << 2
    }

    fn withdraw_recheck(&mut self) {
        if self.recheck_ns != 0 {
            self.recheck_ns = 0;
            self.world.recheck_after(None);
        }
    }

    /// One entry and exit.
    fn switch(&mut self) -> Trap {
        if !self.loaded {
            self.csrs.restore(&mut self.world);
            // No line an earlier guest of this CPU left pending may interrupt this one; the IPI
            // line is this vCPU's level.
            self.world.gcsr_xchg(csr::ESTAT, 0, guest_lines::ALL);
            if self.ipi_line {
                super::set_ipi_line(&mut self.world, true);
            }
            // Guest TLB entries left by an earlier run (of any partition: the CPU was not this
            // guest's) must not translate for this one.
            self.world.invtlb(invtlb_op::ALL_GUESTS, 0, 0);
            self.loaded = true;
        }
        self.arm_recheck();
        let entry = Entry {
            gid: self.config.gid,
            root: self.config.root,
            era: self.pc,
            injected: self.hwi_lines,
            counter_offset: self.config.counter_offset,
        };
        program_entry(&mut self.world, &entry);
        debug_assert!(self.world.csr_read(csr::GSTAT) & gstat::PVM != 0);
        let trap = self.world.enter(&mut self.regs);
        leave_guest(&mut self.world);
        self.regs[0] = 0;
        self.pc = trap.era;
        self.last = trap;
        trap
    }

    /// The EUEN bits an FP/LSX/LASX-disabled exit asks for (each unit needs the ones below it).
    fn unit_for(ecode: u32) -> Option<u64> {
        match ecode {
            0xf => Some(EUEN_FPE),
            0x10 => Some(EUEN_FPE | EUEN_SXE),
            0x11 => Some(EUEN_FPE | EUEN_SXE | EUEN_ASXE),
            _ => None,
        }
    }

    /// The exit as the handler sees it, and where a value completing it goes.
    fn decode(&mut self, trap: Trap) -> VmExit {
        let estat = Estat(trap.estat);
        if estat.ecode() == 0 {
            return VmExit::ExternalInterrupt {
                vector: self.world.acknowledge(estat.is()),
            };
        }
        let r = ExitRegs {
            estat: trap.estat,
            era: trap.era,
            badv: trap.badv,
            badi: trap.badi,
            regs: self.regs,
        };
        let world = &self.world;
        let exit = decode_exit(&r, &|gpa| world.owned(gpa));
        self.pending = match exit {
            VmExit::Hypercall { .. } => Pending::Hypercall,
            VmExit::MmioRead { .. } => {
                decode::mem_access(trap.badi).map_or(Pending::None, Pending::Load)
            }
            VmExit::CpuCfg { .. } | VmExit::CsrRead { .. } | VmExit::CsrWrite { .. } => {
                match decode::sensitive(trap.badi) {
                    // A CPUCFG word is 32 bits wide.
                    Some(Sensitive::CpuCfg { rd, .. }) => Pending::Reg {
                        rd,
                        mask: u64::from(u32::MAX),
                    },
                    // csrwr and csrxchg hand the old value back in rd.
                    Some(Sensitive::CsrRead { rd, .. })
                    | Some(Sensitive::CsrWrite { rd, .. })
                    | Some(Sensitive::CsrXchg { rd, .. }) => Pending::Reg { rd, mask: u64::MAX },
                    // IOCSR reads zero-extend to 64 bits.
                    Some(Sensitive::IocsrRead { rd, size, .. }) => Pending::Reg {
                        rd,
                        mask: size.mask(),
                    },
                    _ => Pending::None,
                }
            }
            _ => Pending::None,
        };
        exit
    }
}

impl<W: LvzWorld> ArchVcpu for LvzVcpu<W> {
    fn run(&mut self) -> VmExit {
        self.pending = Pending::None;
        loop {
            let trap = self.switch();
            if let Some(bits) = Self::unit_for(Estat(trap.estat).ecode()) {
                let euen = self.world.csr_read(csr::EUEN);
                self.world.csr_write(csr::EUEN, euen | bits);
                continue;
            }
            // A CSR the guest keeps in the vCPU: done here, the guest goes on after it.
            if Estat(trap.estat).ecode() == GSPR {
                if let Some(insn) = decode::sensitive(trap.badi) {
                    if self.shadow.emulate(insn, &mut self.regs) {
                        self.pc += 4;
                        continue;
                    }
                }
            }
            return self.decode(trap);
        }
    }

    /// `lines` in the ESTAT.IS layout: the IPI (bit 12) and HWI0-7 (bits 9:2).
    fn set_irq_lines(&mut self, lines: u32) {
        self.set_ipi_line(u64::from(lines) & guest_lines::IPI != 0);
        self.set_hwi_lines(((u64::from(lines) & guest_lines::HWI) >> 2) as u8);
    }

    fn complete(&mut self, completion: Completion) {
        match completion {
            // No LoongArch exit asks for an exception: the instruction is retried.
            Completion::Retry | Completion::Exception { .. } => {}
            Completion::Skip | Completion::CpuId(_) => self.pc += 4,
            Completion::Value(v) => {
                match self.pending {
                    Pending::Hypercall => self.regs[A0] = v,
                    Pending::Load(m) if m.rd != 0 => self.regs[m.rd] = decode::load_result(&m, v),
                    Pending::Reg { rd, mask } if rd != 0 => self.regs[rd] = v & mask,
                    _ => {}
                }
                self.pc += 4;
            }
        }
        self.pending = Pending::None;
    }
    /// An LVZ guest takes interrupts through its own exception vector, the hardware way
    /// ([`LvzVcpu::set_ipi_line`]), never as upcalls.
    fn deliver_upcall(&mut self, _delivery: Delivery) -> bool {
        false
    }

    /// Never in an upcall (see `deliver_upcall`).
    fn return_from_upcall(&mut self) {}

    /// No IDT: interrupts are lines in guest ESTAT.
    fn inject_interrupt(&mut self, _vector: u8) -> bool {
        false
    }
}
