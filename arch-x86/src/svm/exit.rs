//! What a #VMEXIT means: the SVM exit codes Septum distinguishes (AMD APM Vol. 2, Appendix C),
//! their translation into the arch-neutral [`VmExit`], and the inverse step, applying a
//! [`Completion`] to the guest's registers and RIP. Both are pure functions over values read from
//! the VMCB, so they are tested on the host.
//!
//! Without the NRIP-save feature (QEMU's TCG has none) the CPU does not say where the intercepted
//! instruction ends, so the next RIP comes from the instruction's own length: IOIO carries it in
//! EXITINFO2 on every CPU, and the other instructions Septum completes (CPUID, RDMSR, WRMSR,
//! VMMCALL, HLT) have fixed encodings without prefixes in the guests' code.

use super::enter::GuestRegs;
use vcpu::{Access, AccessSize, Completion, ShutdownKind, VmExit};

/// Exit codes (VMCB EXITCODE).
#[allow(missing_docs)]
pub mod code {
    pub const EXCEPTION_BASE: u64 = 0x40;
    pub const INTR: u64 = 0x60;
    pub const NMI: u64 = 0x61;
    pub const VINTR: u64 = 0x64;
    pub const CPUID: u64 = 0x72;
    pub const INVD: u64 = 0x76;
    pub const HLT: u64 = 0x78;
    pub const INVLPGA: u64 = 0x7a;
    pub const IOIO: u64 = 0x7b;
    pub const MSR: u64 = 0x7c;
    pub const SHUTDOWN: u64 = 0x7f;
    pub const VMRUN: u64 = 0x80;
    pub const VMMCALL: u64 = 0x81;
    pub const VMLOAD: u64 = 0x82;
    pub const VMSAVE: u64 = 0x83;
    pub const STGI: u64 = 0x84;
    pub const CLGI: u64 = 0x85;
    pub const SKINIT: u64 = 0x86;
    pub const XSETBV: u64 = 0x8d;
    pub const NPF: u64 = 0x400;
    /// VMEXIT_INVALID: -1. Only the low 32 bits are reliable: QEMU 10.0.2 zero-extends it.
    pub const INVALID_LOW: u32 = 0xffff_ffff;
}

/// IOIO EXITINFO1 bits.
mod ioio {
    pub const IN: u64 = 1 << 0;
    pub const STR: u64 = 1 << 2;
    pub const REP: u64 = 1 << 3;
    pub const SZ8: u64 = 1 << 4;
    pub const SZ16: u64 = 1 << 5;
    pub const SZ32: u64 = 1 << 6;
}

/// #NPF EXITINFO1 (a page-fault error code) bits.
mod npf {
    pub const WRITE: u64 = 1 << 1;
    pub const FETCH: u64 = 1 << 4;
}

/// What the platform read from the VMCB after an exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitInfo {
    /// EXITCODE.
    pub code: u64,
    /// EXITINFO1.
    pub info1: u64,
    /// EXITINFO2.
    pub info2: u64,
    /// EXITINTINFO (an event interrupted by the exit).
    pub int_info: u64,
    /// The guest RIP at the exit.
    pub rip: u64,
    /// The next RIP the CPU saved, 0 when it has no NRIP-save feature.
    pub nrip: u64,
}

impl ExitInfo {
    /// Whether VMRUN refused the VMCB (VMEXIT_INVALID).
    pub const fn invalid(&self) -> bool {
        self.code as u32 == code::INVALID_LOW
    }
}

/// Whether `c` is an instruction a partition may never run: the SVM instructions (there is no
/// nested virtualization), INVD (it would discard dirty lines of memory other partitions share)
/// and XSETBV (XCR0 is not switched, so it would change the hypervisor's state).
pub const fn is_forbidden_instruction(c: u64) -> bool {
    matches!(
        c,
        code::INVD | code::INVLPGA | code::VMRUN..=code::SKINIT | code::XSETBV
    )
}

/// Translates one exit into its arch-neutral form.
pub fn decode(info: &ExitInfo, regs: &GuestRegs) -> VmExit {
    if info.invalid() {
        return VmExit::InvalidState { raw: info.code };
    }
    match info.code {
        code::INTR => VmExit::ExternalInterrupt { vector: 0 },
        // The kick: the NMI stays pending and the host takes it (and drops it) after STGI.
        code::NMI => VmExit::ExternalInterrupt { vector: 2 },
        // An interrupt window: the guest can take the vector it was refused before.
        code::VINTR => VmExit::ExternalInterrupt {
            vector: crate::vmx::exit::INTERRUPT_WINDOW_VECTOR,
        },
        code::SHUTDOWN => VmExit::Shutdown {
            kind: ShutdownKind::TripleFault,
        },
        code::CPUID => VmExit::CpuId {
            leaf: regs.rax as u32,
            subleaf: regs.rcx as u32,
        },
        code::HLT => VmExit::Halt,
        code::VMMCALL => VmExit::Hypercall {
            code: 0,
            nr: regs.rax,
            args: [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9],
        },
        code::IOIO => decode_io(info.info1, regs).unwrap_or(VmExit::Unknown { raw: info.code }),
        code::MSR if info.info1 == 0 => VmExit::MsrRead {
            msr: regs.rcx as u32,
        },
        code::MSR => VmExit::MsrWrite {
            msr: regs.rcx as u32,
            value: (regs.rdx << 32) | (regs.rax & 0xffff_ffff),
        },
        code::NPF => VmExit::StageTwoFault {
            gpa: info.info2,
            access: if info.info1 & npf::FETCH != 0 {
                Access::Execute
            } else if info.info1 & npf::WRITE != 0 {
                Access::Write
            } else {
                Access::Read
            },
        },
        c if is_forbidden_instruction(c) => VmExit::ForbiddenInstruction {
            pc: info.rip,
            raw: c as u32,
        },
        c => VmExit::Unknown { raw: c },
    }
}

/// The access size of an IOIO exit.
fn io_size(info1: u64) -> Option<AccessSize> {
    if info1 & ioio::SZ8 != 0 {
        Some(AccessSize::Byte)
    } else if info1 & ioio::SZ16 != 0 {
        Some(AccessSize::Half)
    } else if info1 & ioio::SZ32 != 0 {
        Some(AccessSize::Word)
    } else {
        None
    }
}

/// An IOIO exit (EXITINFO1: IN in bit 0, string 2, REP 3, size 4-6, port 31:16). String and REP
/// forms would need the instruction decoded (QEMU does not even report their address size), and
/// no partition Septum runs needs them on a trapped port, so they are refused (`None`).
fn decode_io(info1: u64, regs: &GuestRegs) -> Option<VmExit> {
    if info1 & (ioio::STR | ioio::REP) != 0 {
        return None;
    }
    let size = io_size(info1)?;
    let port = (info1 >> 16) as u16;
    Some(if info1 & ioio::IN != 0 {
        VmExit::PortIn { port, size }
    } else {
        VmExit::PortOut {
            port,
            size,
            value: (regs.rax & size.mask()) as u32,
        }
    })
}

/// The length of the intercepted instruction, for the exits Septum completes by skipping it.
const fn instruction_len(c: u64) -> u64 {
    match c {
        code::HLT => 1,
        code::CPUID | code::MSR => 2,
        code::VMMCALL => 3,
        _ => 0,
    }
}

/// Where the guest resumes after the intercepted instruction: the CPU's NRIP when it saved one,
/// EXITINFO2 for IOIO, else the RIP plus the instruction's fixed length.
pub fn next_rip(info: &ExitInfo) -> u64 {
    if info.nrip != 0 {
        info.nrip
    } else if info.code == code::IOIO {
        info.info2
    } else {
        info.rip.wrapping_add(instruction_len(info.code))
    }
}

/// Applies `completion` for the exit `info`: writes the destination registers and returns the
/// RIP to resume at.
pub fn complete(info: &ExitInfo, completion: Completion, regs: &mut GuestRegs) -> u64 {
    match completion {
        // A fault leaves RIP on the instruction; the backend injects it (`exception_event`).
        Completion::Retry | Completion::Exception { .. } => info.rip,
        Completion::Skip => next_rip(info),
        Completion::CpuId([a, b, c, d]) => {
            regs.rax = u64::from(a);
            regs.rbx = u64::from(b);
            regs.rcx = u64::from(c);
            regs.rdx = u64::from(d);
            next_rip(info)
        }
        Completion::Value(v) => {
            match info.code {
                // 32-bit register writes zero-extend; 8- and 16-bit ones merge into rax.
                code::IOIO => match io_size(info.info1) {
                    Some(AccessSize::Byte) => regs.rax = (regs.rax & !0xff) | (v & 0xff),
                    Some(AccessSize::Half) => regs.rax = (regs.rax & !0xffff) | (v & 0xffff),
                    _ => regs.rax = v & 0xffff_ffff,
                },
                code::MSR => {
                    regs.rax = v & 0xffff_ffff;
                    regs.rdx = v >> 32;
                }
                _ => regs.rax = v,
            }
            next_rip(info)
        }
    }
}

/// The EVENTINJ value (APM Vol. 2 §15.20) that raises exception `vector` in the guest at the next
/// VMRUN: vector in bits 7:0, type 3 (exception) in 10:8, bit 11 when an error code is pushed,
/// bit 31 valid, the error code in 63:32.
pub const fn exception_event(vector: u8, error_code: Option<u32>) -> u64 {
    let base = (1 << 31) | (3 << 8) | vector as u64;
    match error_code {
        Some(e) => base | (1 << 11) | ((e as u64) << 32),
        None => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exception_stays_on_the_instruction_and_encodes_as_eventinj() {
        let mut regs = GuestRegs {
            rcx: 0x8b,
            ..GuestRegs::default()
        };
        let i = info(code::MSR, 0, 0);
        let rip = complete(&i, Completion::GENERAL_PROTECTION, &mut regs);
        assert_eq!(rip, 0x1000, "a fault does not advance RIP");
        assert_eq!((regs.rax, regs.rdx), (0, 0), "no register is written");
        assert_eq!(exception_event(13, Some(0)), 0x8000_0b0d);
        assert_eq!(exception_event(13, Some(5)), 0x5_8000_0b0d);
        assert_eq!(exception_event(6, None), 0x8000_0306);
    }

    fn info(code: u64, info1: u64, info2: u64) -> ExitInfo {
        ExitInfo {
            code,
            info1,
            info2,
            rip: 0x1000,
            ..ExitInfo::default()
        }
    }

    #[test]
    fn vmmcall_carries_the_abi_registers_and_is_three_bytes() {
        let mut regs = GuestRegs {
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
        let i = info(code::VMMCALL, 0, 0);
        assert_eq!(
            decode(&i, &regs),
            VmExit::Hypercall {
                code: 0,
                nr: 0x22,
                args: [1, 2, 3, 4, 5, 6]
            }
        );
        assert_eq!(
            complete(&i, Completion::Value(-2i64 as u64), &mut regs),
            0x1003
        );
        assert_eq!(regs.rax as i64, -2);
    }

    #[test]
    fn ioio_as_measured_under_qemu() {
        let regs = GuestRegs {
            rax: 0x1234_5678,
            ..GuestRegs::default()
        };
        // OUT 0x80, al: EXITINFO1 0x0080_0010, EXITINFO2 = the next RIP.
        let out = info(code::IOIO, 0x0080_0010, 0x1002);
        assert_eq!(
            decode(&out, &regs),
            VmExit::PortOut {
                port: 0x80,
                size: AccessSize::Byte,
                value: 0x78
            }
        );
        assert_eq!(next_rip(&out), 0x1002);
        // in eax, dx from 0x3fd
        let inp = info(code::IOIO, 0x03fd_0041, 0x1001);
        assert_eq!(
            decode(&inp, &regs),
            VmExit::PortIn {
                port: 0x3fd,
                size: AccessSize::Word
            }
        );
        let mut r = GuestRegs {
            rax: u64::MAX,
            ..GuestRegs::default()
        };
        assert_eq!(complete(&inp, Completion::Value(0xab), &mut r), 0x1001);
        assert_eq!(r.rax, 0xab);
        let inb = info(code::IOIO, 0x03fd_0011, 0x1001);
        r.rax = u64::MAX;
        complete(&inb, Completion::Value(0x12), &mut r);
        assert_eq!(r.rax, 0xffff_ffff_ffff_ff12);
        // rep outsb is refused.
        assert_eq!(
            decode(&info(code::IOIO, 0x03f8_001c, 0), &regs),
            VmExit::Unknown { raw: code::IOIO }
        );
    }

    #[test]
    fn nested_page_faults_as_measured_under_qemu() {
        let r = GuestRegs::default();
        let read = info(code::NPF, 0x1_0000_0004, 0x4000_0000);
        assert_eq!(
            decode(&read, &r),
            VmExit::StageTwoFault {
                gpa: 0x4000_0000,
                access: Access::Read
            }
        );
        let write = info(code::NPF, 0x1_0000_0007, 0x4000_0010);
        assert!(matches!(
            decode(&write, &r),
            VmExit::StageTwoFault {
                access: Access::Write,
                ..
            }
        ));
        // A guest page-table walk is a write (QEMU sets W with bit 33).
        let walk = info(code::NPF, 0x2_0000_0006, 0x4020_0000);
        assert!(matches!(
            decode(&walk, &r),
            VmExit::StageTwoFault {
                access: Access::Write,
                ..
            }
        ));
        let fetch = info(code::NPF, 0x1_0000_0014, 0x4060_0000);
        assert!(matches!(
            decode(&fetch, &r),
            VmExit::StageTwoFault {
                access: Access::Execute,
                ..
            }
        ));
        assert_eq!(complete(&fetch, Completion::Retry, &mut r.clone()), 0x1000);
    }

    #[test]
    fn invalid_vmcb_is_recognised_by_its_low_half() {
        let r = GuestRegs::default();
        for raw in [u64::MAX, 0xffff_ffff] {
            assert_eq!(decode(&info(raw, 0, 0), &r), VmExit::InvalidState { raw });
        }
    }

    #[test]
    fn other_exits() {
        let r = GuestRegs {
            rax: 7,
            rcx: 1,
            ..GuestRegs::default()
        };
        assert_eq!(
            decode(&info(code::SHUTDOWN, 0, 0), &r),
            VmExit::Shutdown {
                kind: ShutdownKind::TripleFault
            }
        );
        assert_eq!(
            decode(&info(code::CPUID, 0, 0), &r),
            VmExit::CpuId {
                leaf: 7,
                subleaf: 1
            }
        );
        assert_eq!(decode(&info(code::HLT, 0, 0), &r), VmExit::Halt);
        assert_eq!(
            decode(&info(code::NMI, 0, 0), &r),
            VmExit::ExternalInterrupt { vector: 2 }
        );
        assert_eq!(
            decode(&info(code::INVD, 0, 0), &r),
            VmExit::ForbiddenInstruction {
                pc: 0x1000,
                raw: 0x76
            }
        );
        assert_eq!(
            decode(&info(code::VMSAVE, 0, 0), &r),
            VmExit::ForbiddenInstruction {
                pc: 0x1000,
                raw: 0x83
            }
        );
        assert_eq!(
            decode(&info(code::EXCEPTION_BASE + 14, 0, 0), &r),
            VmExit::Unknown { raw: 0x4e }
        );
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
            decode(&info(code::MSR, 1, 0), &r),
            VmExit::MsrWrite {
                msr: 0x10,
                value: 0xaabb_1122_3344
            }
        );
        assert_eq!(
            decode(&info(code::MSR, 0, 0), &r),
            VmExit::MsrRead { msr: 0x10 }
        );
        let rip = complete(
            &info(code::MSR, 0, 0),
            Completion::Value(0x1_0000_0002),
            &mut r,
        );
        assert_eq!((rip, r.rax, r.rdx), (0x1002, 2, 1));
    }

    #[test]
    fn completions_use_nrip_when_the_cpu_saved_one() {
        let mut r = GuestRegs::default();
        let mut i = info(code::CPUID, 0, 0);
        assert_eq!(
            complete(&i, Completion::CpuId([1, 2, 3, 4]), &mut r),
            0x1002
        );
        assert_eq!((r.rax, r.rbx, r.rcx, r.rdx), (1, 2, 3, 4));
        i.nrip = 0x1005;
        assert_eq!(complete(&i, Completion::Skip, &mut r), 0x1005);
        assert_eq!(
            complete(&info(code::HLT, 0, 0), Completion::Skip, &mut r),
            0x1001
        );
    }
}
