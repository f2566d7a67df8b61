//! LVZ exit decoding: the root exception state saved at a guest exit (ESTAT, ERA, BADV, BADI and
//! the guest's registers) into a `vcpu::VmExit`. Stage-2 faults carry the GPA in BADV; a fault
//! outside the partition's memory is a device access decoded from BADI; GSPR exits are decoded
//! from BADI (`cpucfg`, CSR, IOCSR, `idle`, `cacop`); HVC carries its code in BADI[14:0]; a
//! software-caused GCM is the guest CSR write in BADI, a hardware-caused one has no BADI.

use crate::decode::{self, Sensitive};
use crate::estat::Estat;
use vcpu::{Access, VmExit};

use vcpu::ipi_mailbox::exit_word;
pub use vcpu::ipi_mailbox::IOCSR_FLAG;

/// The state an exit left.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExitRegs {
    /// Root ESTAT.
    pub estat: u64,
    /// Guest PC of the exiting instruction.
    pub era: u64,
    /// Root BADV (the GPA of a stage-2 fault).
    pub badv: u64,
    /// Root BADI (the exiting instruction).
    pub badi: u32,
    /// The guest's general registers, `regs[n]` = `$rn`.
    pub regs: [u64; 32],
}

fn fault(r: &ExitRegs, owned: &dyn Fn(u64) -> bool, access: Access) -> VmExit {
    let gpa = r.badv;
    if access == Access::Execute || owned(gpa) {
        return VmExit::StageTwoFault { gpa, access };
    }
    match decode::mem_access(r.badi) {
        Some(m) if m.store => VmExit::MmioWrite {
            gpa,
            size: m.size,
            value: r.regs[m.rd] & m.size.mask(),
        },
        Some(m) => VmExit::MmioRead { gpa, size: m.size },
        None => VmExit::StageTwoFault { gpa, access },
    }
}

fn gspr(r: &ExitRegs) -> VmExit {
    match decode::sensitive(r.badi) {
        Some(Sensitive::CpuCfg { rj, .. }) => VmExit::CpuCfg {
            index: r.regs[rj] as u32,
        },
        Some(Sensitive::CsrRead { csr, .. }) => VmExit::CsrRead { csr },
        Some(Sensitive::CsrWrite { rd, csr }) | Some(Sensitive::CsrXchg { rd, csr, .. }) => {
            VmExit::CsrWrite {
                csr,
                value: r.regs[rd],
            }
        }
        Some(Sensitive::IocsrRead { rj, size, .. }) => VmExit::CsrRead {
            csr: exit_word(r.regs[rj], size.bytes() as u32),
        },
        Some(Sensitive::IocsrWrite { rd, rj, size }) => VmExit::CsrWrite {
            csr: exit_word(r.regs[rj], size.bytes() as u32),
            value: r.regs[rd] & size.mask(),
        },
        Some(Sensitive::Idle) => VmExit::Halt,
        // Septum gives guests no cache maintenance beyond what GCFG.GCI lets through.
        Some(Sensitive::Cacop) | None => VmExit::ForbiddenInstruction {
            pc: r.era,
            raw: r.badi,
        },
    }
}

/// Decodes one exit; `owned(gpa)` says whether the partition's stage-2 table maps `gpa`.
pub fn decode_exit(r: &ExitRegs, owned: &dyn Fn(u64) -> bool) -> VmExit {
    let estat = Estat(r.estat);
    match estat.ecode() {
        0x0 => VmExit::ExternalInterrupt { vector: estat.is() },
        0x1 | 0x5 => fault(r, owned, Access::Read),
        0x2 | 0x4 => fault(r, owned, Access::Write),
        0x3 | 0x6 => fault(r, owned, Access::Execute),
        0x7 => VmExit::StageTwoFault {
            gpa: r.badv,
            access: Access::Read,
        },
        0x16 => gspr(r),
        // GCM, software-caused: the guest's CSR write (BADI) changed something root asked to
        // see. Reported as the write; Septum's GCFG policy asks for none, so it is unexpected.
        0x18 if estat.esubcode() == 0 => match decode::sensitive(r.badi) {
            Some(Sensitive::CsrWrite { rd, csr }) | Some(Sensitive::CsrXchg { rd, csr, .. }) => {
                VmExit::CsrWrite {
                    csr,
                    value: r.regs[rd],
                }
            }
            _ => VmExit::Unknown { raw: 0x18 << 16 },
        },
        0x17 => VmExit::Hypercall {
            code: (r.badi & 0x7fff) as u16,
            nr: r.regs[11],
            args: [
                r.regs[4], r.regs[5], r.regs[6], r.regs[7], r.regs[8], r.regs[9],
            ],
        },
        other => VmExit::Unknown {
            raw: u64::from(other) << 16 | u64::from(estat.esubcode()),
        },
    }
}
