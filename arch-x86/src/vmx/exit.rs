//! What a VM exit means: the basic exit reasons Septum distinguishes (SDM Vol. 3D, Appendix C),
//! their translation into the arch-neutral [`VmExit`], and the inverse step, applying a
//! [`Completion`] to the guest's registers and RIP. Both are pure functions over the values the
//! platform read from the VMCS, so they are tested on the host.

use super::enter::GuestRegs;
use vcpu::{Access, AccessSize, Completion, ShutdownKind, VmExit};

/// Basic exit reasons (bits 15:0 of the exit-reason field).
#[allow(missing_docs)]
pub mod reason {
    pub const EXCEPTION_NMI: u16 = 0;
    pub const EXTERNAL_INTERRUPT: u16 = 1;
    pub const TRIPLE_FAULT: u16 = 2;
    pub const INIT: u16 = 3;
    pub const SIPI: u16 = 4;
    pub const INTERRUPT_WINDOW: u16 = 7;
    pub const CPUID: u16 = 10;
    pub const GETSEC: u16 = 11;
    pub const HLT: u16 = 12;
    pub const INVD: u16 = 13;
    pub const VMCALL: u16 = 18;
    pub const VMCLEAR: u16 = 19;
    pub const VMLAUNCH: u16 = 20;
    pub const VMPTRLD: u16 = 21;
    pub const VMPTRST: u16 = 22;
    pub const VMREAD: u16 = 23;
    pub const VMRESUME: u16 = 24;
    pub const VMWRITE: u16 = 25;
    pub const VMXOFF: u16 = 26;
    pub const VMXON: u16 = 27;
    pub const CR_ACCESS: u16 = 28;
    pub const IO_INSTRUCTION: u16 = 30;
    pub const RDMSR: u16 = 31;
    pub const WRMSR: u16 = 32;
    pub const ENTRY_FAIL_GUEST_STATE: u16 = 33;
    pub const ENTRY_FAIL_MSR_LOAD: u16 = 34;
    pub const ENTRY_FAIL_MACHINE_CHECK: u16 = 41;
    pub const EPT_VIOLATION: u16 = 48;
    pub const EPT_MISCONFIG: u16 = 49;
    pub const INVEPT: u16 = 50;
    pub const PREEMPTION_TIMER: u16 = 52;
    pub const INVVPID: u16 = 53;
    pub const VMFUNC: u16 = 59;
}

/// The vector an expired VMX-preemption timer reports as (beyond the 256 real vectors).
pub const PREEMPTION_TIMER_VECTOR: u32 = 0x100;
/// The vector an interrupt-window exit reports as (the guest became interruptible).
pub const INTERRUPT_WINDOW_VECTOR: u32 = 0x101;

/// Bit 31 of the exit reason: the VM entry itself failed.
pub const ENTRY_FAILURE: u32 = 1 << 31;

/// Interruption type "NMI" in bits 10:8 of the exit interruption information.
pub const INTERRUPTION_NMI: u32 = 2;

/// What the platform read from the VMCS after an exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitInfo {
    /// The full exit-reason field.
    pub reason: u32,
    /// The exit qualification.
    pub qualification: u64,
    /// The guest-physical address (EPT violations and misconfigurations).
    pub guest_physical: u64,
    /// The VM-exit instruction length (instruction exits).
    pub instruction_len: u32,
    /// The VM-exit interruption information (external interrupts, exceptions).
    pub interruption_info: u32,
    /// The guest RIP at the exit.
    pub rip: u64,
}

impl ExitInfo {
    /// The basic exit reason.
    pub const fn basic(&self) -> u16 {
        self.reason as u16
    }
}

/// Whether a basic reason is a VMX instruction executed by the guest, which a partition may never
/// run (there is no nested virtualization), or INVD, which would discard dirty cache lines of
/// memory other partitions share.
pub const fn is_forbidden_instruction(basic: u16) -> bool {
    matches!(
        basic,
        reason::GETSEC | reason::INVD | reason::VMCLEAR
            ..=reason::VMXON | reason::INVEPT | reason::INVVPID | reason::VMFUNC
    )
}

/// Translates one exit into its arch-neutral form.
pub fn decode(info: &ExitInfo, regs: &GuestRegs) -> VmExit {
    if info.reason & ENTRY_FAILURE != 0 {
        return VmExit::InvalidState {
            raw: u64::from(info.reason),
        };
    }
    let q = info.qualification;
    let basic = info.basic();
    match basic {
        // Exceptions never exit (the exception bitmap is empty), so this is an NMI: a kick.
        reason::EXCEPTION_NMI if (info.interruption_info >> 8) & 7 == INTERRUPTION_NMI => {
            VmExit::ExternalInterrupt { vector: 2 }
        }
        reason::EXTERNAL_INTERRUPT => VmExit::ExternalInterrupt {
            vector: info.interruption_info & 0xff,
        },
        // The guest can take the interrupt it was refused before (its virtual APIC's).
        reason::INTERRUPT_WINDOW => VmExit::ExternalInterrupt {
            vector: INTERRUPT_WINDOW_VECTOR,
        },
        // The hypervisor's own deadline (a vCPU's virtual timer) on this CPU.
        reason::PREEMPTION_TIMER => VmExit::ExternalInterrupt {
            vector: PREEMPTION_TIMER_VECTOR,
        },
        reason::TRIPLE_FAULT => VmExit::Shutdown {
            kind: ShutdownKind::TripleFault,
        },
        reason::CPUID => VmExit::CpuId {
            leaf: regs.rax as u32,
            subleaf: regs.rcx as u32,
        },
        reason::HLT => VmExit::Halt,
        reason::VMCALL => VmExit::Hypercall {
            code: 0,
            nr: regs.rax,
            args: [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9],
        },
        reason::IO_INSTRUCTION => decode_io(q, regs).unwrap_or(VmExit::Unknown {
            raw: u64::from(info.reason),
        }),
        reason::RDMSR => VmExit::MsrRead {
            msr: regs.rcx as u32,
        },
        reason::WRMSR => VmExit::MsrWrite {
            msr: regs.rcx as u32,
            value: (regs.rdx << 32) | (regs.rax & 0xffff_ffff),
        },
        reason::EPT_VIOLATION => VmExit::StageTwoFault {
            gpa: info.guest_physical,
            access: if q & 4 != 0 {
                Access::Execute
            } else if q & 2 != 0 {
                Access::Write
            } else {
                Access::Read
            },
        },
        reason::ENTRY_FAIL_GUEST_STATE
        | reason::ENTRY_FAIL_MSR_LOAD
        | reason::ENTRY_FAIL_MACHINE_CHECK => VmExit::InvalidState {
            raw: u64::from(info.reason),
        },
        b if is_forbidden_instruction(b) => VmExit::ForbiddenInstruction {
            pc: info.rip,
            raw: u32::from(b),
        },
        _ => VmExit::Unknown {
            raw: u64::from(info.reason),
        },
    }
}

/// An I/O-instruction exit (qualification: size − 1 in 2:0, IN in 3, string in 4, port in 31:16).
/// String and REP forms would need the instruction decoded and guest memory walked; no partition
/// Septum runs needs them on a trapped port, so they are refused (`None`).
fn decode_io(q: u64, regs: &GuestRegs) -> Option<VmExit> {
    if q & (1 << 4) != 0 {
        return None;
    }
    let size = AccessSize::from_bytes((q & 7) + 1)?;
    let port = (q >> 16) as u16;
    Some(if q & (1 << 3) != 0 {
        VmExit::PortIn { port, size }
    } else {
        VmExit::PortOut {
            port,
            size,
            value: (regs.rax & size.mask()) as u32,
        }
    })
}

/// Applies `completion` for the exit `info`: writes the destination registers and returns the
/// RIP to resume at.
pub fn complete(info: &ExitInfo, completion: Completion, regs: &mut GuestRegs) -> u64 {
    let next = info.rip.wrapping_add(u64::from(info.instruction_len));
    match completion {
        // A fault leaves RIP on the instruction; the backend injects it (`exception_event`).
        Completion::Retry | Completion::Exception { .. } => info.rip,
        Completion::Skip => next,
        Completion::CpuId([a, b, c, d]) => {
            regs.rax = u64::from(a);
            regs.rbx = u64::from(b);
            regs.rcx = u64::from(c);
            regs.rdx = u64::from(d);
            next
        }
        Completion::Value(v) => {
            match info.basic() {
                // 32-bit register writes zero-extend; 8- and 16-bit ones merge into rax.
                reason::IO_INSTRUCTION => match info.qualification & 7 {
                    0 => regs.rax = (regs.rax & !0xff) | (v & 0xff),
                    1 => regs.rax = (regs.rax & !0xffff) | (v & 0xffff),
                    _ => regs.rax = v & 0xffff_ffff,
                },
                reason::RDMSR => {
                    regs.rax = v & 0xffff_ffff;
                    regs.rdx = v >> 32;
                }
                _ => regs.rax = v,
            }
            next
        }
    }
}

/// The VM-entry interruption-information value (SDM Vol. 3C §25.8.3) that raises exception
/// `vector` at the next entry: vector in bits 7:0, type 3 (hardware exception) in 10:8, bit 11
/// when an error code is delivered (from the entry exception error-code field), bit 31 valid.
pub const fn exception_event(vector: u8, has_error_code: bool) -> u64 {
    let base = (1 << 31) | (3 << 8) | vector as u64;
    if has_error_code {
        base | (1 << 11)
    } else {
        base
    }
}

/// Bit 31 of the VM-entry interruption-information field: an event is to be injected.
pub const ENTRY_EVENT_VALID: u64 = 1 << 31;
/// RFLAGS.IF.
const RFLAGS_IF: u64 = 1 << 9;
/// Guest interruptibility: blocking by STI (bit 0) and by MOV SS (bit 1).
const BLOCKED_BY_STI_OR_MOV_SS: u64 = 3;

/// Whether an external interrupt may be injected at the next VM entry, from the guest's RFLAGS,
/// its interruptibility state and the VM-entry interruption-information field as they stand.
/// Only when the guest takes interrupts (IF set, no STI or MOV SS shadow) and no event is
/// already waiting in the entry field: the field holds one event, and an exit clears its valid
/// bit, but an entry that never happened (abandoned for a kick) leaves it set. Writing a second
/// vector over the first would lose the first one after it was already counted as delivered
/// (its virtual APIC in-service bit set, never ended), blocking that vector and every lower
/// one on the vCPU for good.
pub const fn interrupt_injectable(rflags: u64, interruptibility: u64, entry_info: u64) -> bool {
    rflags & RFLAGS_IF != 0
        && interruptibility & BLOCKED_BY_STI_OR_MOV_SS == 0
        && entry_info & ENTRY_EVENT_VALID == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupt_waits_for_if_the_shadows_and_an_event_already_waiting() {
        const IF: u64 = 1 << 9;
        assert!(interrupt_injectable(IF | 2, 0, 0));
        assert!(!interrupt_injectable(2, 0, 0), "IF clear");
        assert!(!interrupt_injectable(IF, 1, 0), "STI shadow");
        assert!(!interrupt_injectable(IF, 2, 0), "MOV SS shadow");
        assert!(
            interrupt_injectable(IF, 8, 0),
            "NMI blocking does not block interrupts"
        );
        // A timer vector injected for an entry that was abandoned is still waiting: another
        // vector must not replace it.
        assert!(!interrupt_injectable(IF, 0, ENTRY_EVENT_VALID | 0xec));
        // The valid bit alone decides (an exit clears it and leaves the rest).
        assert!(interrupt_injectable(IF, 0, 0xec));
        // A re-delivered exception waits in the same field.
        assert!(!interrupt_injectable(IF, 0, exception_event(14, true)));
    }

    #[test]
    fn an_exception_stays_on_the_instruction_and_encodes_as_entry_info() {
        let mut regs = GuestRegs::default();
        let i = info(reason::RDMSR, 0);
        assert_eq!(
            complete(&i, Completion::GENERAL_PROTECTION, &mut regs),
            0x1000
        );
        assert_eq!((regs.rax, regs.rdx), (0, 0));
        assert_eq!(exception_event(13, true), 0x8000_0b0d);
        assert_eq!(exception_event(6, false), 0x8000_0306);
    }

    fn info(basic: u16, q: u64) -> ExitInfo {
        ExitInfo {
            reason: u32::from(basic),
            qualification: q,
            instruction_len: 2,
            rip: 0x1000,
            ..ExitInfo::default()
        }
    }

    #[test]
    fn vmcall_carries_the_abi_registers() {
        let regs = GuestRegs {
            rax: 0x22,
            rdi: 1,
            rsi: 2,
            rdx: 3,
            r10: 4,
            r8: 5,
            r9: 6,
            rcx: 99,
            ..GuestRegs::default()
        };
        assert_eq!(
            decode(&info(reason::VMCALL, 0), &regs),
            VmExit::Hypercall {
                code: 0,
                nr: 0x22,
                args: [1, 2, 3, 4, 5, 6]
            }
        );
    }

    #[test]
    fn io_exits_decode_port_size_direction_and_value() {
        let regs = GuestRegs {
            rax: 0x1234_5678,
            ..GuestRegs::default()
        };
        // out dx, al to 0x3f8
        assert_eq!(
            decode(&info(reason::IO_INSTRUCTION, 0x3f8 << 16), &regs),
            VmExit::PortOut {
                port: 0x3f8,
                size: AccessSize::Byte,
                value: 0x78
            }
        );
        // in eax, 0x71
        assert_eq!(
            decode(&info(reason::IO_INSTRUCTION, 0x71 << 16 | 8 | 3), &regs),
            VmExit::PortIn {
                port: 0x71,
                size: AccessSize::Word
            }
        );
        // rep outsb is refused
        assert!(matches!(
            decode(&info(reason::IO_INSTRUCTION, 0x3f8 << 16 | 0x30), &regs),
            VmExit::Unknown { raw: 30 }
        ));
    }

    #[test]
    fn ept_violations_report_gpa_and_access() {
        let mut i = info(reason::EPT_VIOLATION, 0x182);
        i.guest_physical = 0x400_0000;
        assert_eq!(
            decode(&i, &GuestRegs::default()),
            VmExit::StageTwoFault {
                gpa: 0x400_0000,
                access: Access::Write
            }
        );
        i.qualification = 0x84;
        assert!(matches!(
            decode(&i, &GuestRegs::default()),
            VmExit::StageTwoFault {
                access: Access::Execute,
                ..
            }
        ));
    }

    #[test]
    fn failures_and_forbidden_instructions() {
        let r = GuestRegs::default();
        let mut i = info(reason::ENTRY_FAIL_GUEST_STATE, 0);
        i.reason |= ENTRY_FAILURE;
        assert_eq!(decode(&i, &r), VmExit::InvalidState { raw: 0x8000_0021 });
        assert_eq!(
            decode(&info(reason::VMXOFF, 0), &r),
            VmExit::ForbiddenInstruction {
                pc: 0x1000,
                raw: 26
            }
        );
        assert_eq!(
            decode(&info(reason::TRIPLE_FAULT, 0), &r),
            VmExit::Shutdown {
                kind: ShutdownKind::TripleFault
            }
        );
        assert_eq!(decode(&info(37, 0), &r), VmExit::Unknown { raw: 37 });
        assert_eq!(
            decode(&info(reason::PREEMPTION_TIMER, 0), &r),
            VmExit::ExternalInterrupt {
                vector: PREEMPTION_TIMER_VECTOR
            }
        );
        let mut nmi = info(reason::EXCEPTION_NMI, 0);
        nmi.interruption_info = 0x8000_0202;
        assert_eq!(decode(&nmi, &r), VmExit::ExternalInterrupt { vector: 2 });
        nmi.interruption_info = 0x8000_030e; // a #PF would be an exception exit: not expected
        assert_eq!(decode(&nmi, &r), VmExit::Unknown { raw: 0 });
        assert!(!is_forbidden_instruction(reason::VMCALL));
    }

    #[test]
    fn msr_values_split_and_join_edx_eax() {
        let mut r = GuestRegs {
            rcx: 0x10,
            rdx: 0xaabb,
            rax: 0xffff_ffff_1122_3344,
            ..GuestRegs::default()
        };
        assert_eq!(
            decode(&info(reason::WRMSR, 0), &r),
            VmExit::MsrWrite {
                msr: 0x10,
                value: 0xaabb_1122_3344
            }
        );
        let rip = complete(
            &info(reason::RDMSR, 0),
            Completion::Value(0x1_0000_0002),
            &mut r,
        );
        assert_eq!((rip, r.rax, r.rdx), (0x1002, 2, 1));
    }

    #[test]
    fn completions_write_the_right_width_and_advance() {
        let mut r = GuestRegs {
            rax: 0xffff_ffff_ffff_ffff,
            ..GuestRegs::default()
        };
        let i = info(reason::IO_INSTRUCTION, 0x60 << 16 | 8);
        assert_eq!(complete(&i, Completion::Value(0x12), &mut r), 0x1002);
        assert_eq!(r.rax, 0xffff_ffff_ffff_ff12);
        let i = info(reason::IO_INSTRUCTION, 0x60 << 16 | 8 | 3);
        complete(&i, Completion::Value(0x1234_5678_9abc), &mut r);
        assert_eq!(r.rax, 0x5678_9abc);
        let i = info(reason::CPUID, 0);
        complete(&i, Completion::CpuId([1, 2, 3, 4]), &mut r);
        assert_eq!((r.rax, r.rbx, r.rcx, r.rdx), (1, 2, 3, 4));
        assert_eq!(complete(&i, Completion::Retry, &mut r), 0x1000);
        let i = info(reason::VMCALL, 0);
        assert_eq!(
            complete(&i, Completion::Value(-3i64 as u64), &mut r),
            0x1002
        );
        assert_eq!(r.rax as i64, -3);
    }
}
