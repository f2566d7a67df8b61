//! The exits both architectures map into. VMX exit reasons, SVM exit codes, LVZ exception codes and
//! the deprivileged backend's traps all become one [`VmExit`], so the run loop, the device bus and
//! the hypercall handlers are written once. Each variant's docs name the raw reasons it stands for.

/// Width of a guest access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessSize {
    Byte = 1,
    Half = 2,
    Word = 4,
    Double = 8,
}

impl AccessSize {
    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self as u64
    }

    /// The size for an access of `n` bytes, if it is one of the four widths.
    pub const fn from_bytes(n: u64) -> Option<Self> {
        match n {
            1 => Some(Self::Byte),
            2 => Some(Self::Half),
            4 => Some(Self::Word),
            8 => Some(Self::Double),
            _ => None,
        }
    }

    /// All-ones for this width, to truncate values.
    pub const fn mask(self) -> u64 {
        match self {
            Self::Double => u64::MAX,
            s => (1u64 << (s.bytes() * 8)) - 1,
        }
    }
}

/// What a faulting guest access tried to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Execute,
}

/// Why a partition asked to stop, or was found unable to go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownKind {
    /// The guest asked to power off (a hypercall, an ACPI or GED write).
    PowerOff,
    /// The guest asked to reboot.
    Reboot,
    /// x86 triple fault (VMX reason 2, SVM SHUTDOWN).
    TripleFault,
}

/// One exit from a guest, in arch-neutral terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmExit {
    /// A hypercall: VMX VMCALL (18), SVM VMMCALL (0x81), LVZ HVC (Ecode 0x17), or `syscall` in the
    /// deprivileged backend. `code` is the LoongArch immediate (0 on x86).
    Hypercall { code: u16, nr: u64, args: [u64; 6] },
    /// A load from an unbacked guest-physical address that a device may own.
    MmioRead { gpa: u64, size: AccessSize },
    /// A store to an unbacked guest-physical address that a device may own.
    MmioWrite {
        gpa: u64,
        size: AccessSize,
        value: u64,
    },
    /// x86 `in` (VMX 30, SVM IOIO with the IN bit).
    PortIn { port: u16, size: AccessSize },
    /// x86 `out` (VMX 30, SVM IOIO).
    PortOut {
        port: u16,
        size: AccessSize,
        value: u32,
    },
    /// A stage-2 fault that is not MMIO: VMX EPT violation (48), SVM #NPF, LVZ Ecode 1-7 on
    /// mapped memory (dirty logging, aging, write protection) that the fast path did not repair.
    StageTwoFault { gpa: u64, access: Access },
    /// `hlt` (VMX 12, SVM HLT) or LoongArch `idle`.
    Halt,
    /// x86 CPUID (VMX 10, SVM CPUID).
    CpuId { leaf: u32, subleaf: u32 },
    /// LoongArch `cpucfg` (LVZ GSPR).
    CpuCfg { index: u32 },
    /// x86 `rdmsr` (VMX 31, SVM MSR with EXITINFO1 = 0).
    MsrRead { msr: u32 },
    /// x86 `wrmsr` (VMX 32, SVM MSR with EXITINFO1 = 1).
    MsrWrite { msr: u32, value: u64 },
    /// A LoongArch CSR or IOCSR read the hardware does not virtualise (LVZ GSPR).
    CsrRead { csr: u32 },
    /// A LoongArch CSR or IOCSR write the hardware does not virtualise (LVZ GSPR).
    CsrWrite { csr: u32, value: u64 },
    /// A host interrupt arrived while the guest ran (VMX 1, SVM INTR, LVZ Ecode 0).
    ExternalInterrupt { vector: u32 },
    /// The guest stopped itself, or can no longer run.
    Shutdown { kind: ShutdownKind },
    /// An instruction the partition may not execute (VMX instructions in a guest, privileged
    /// LoongArch instructions in the deprivileged backend).
    ForbiddenInstruction { pc: u64, raw: u32 },
    /// The hardware refused the guest state (VMX entry failure, SVM VMEXIT_INVALID).
    InvalidState { raw: u64 },
    /// Anything else, with the architecture's raw reason for the log.
    Unknown { raw: u64 },
}

/// What the backend must do to the guest before resuming it after an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Resume at the next instruction with nothing else changed.
    Skip,
    /// Resume at the next instruction, with this value in the destination register (MMIO read,
    /// port in, MSR or CSR read, CPUCFG, hypercall result). The backend truncates to the width.
    Value(u64),
    /// Resume at the next instruction with these four CPUID registers (eax, ebx, ecx, edx).
    CpuId([u32; 4]),
    /// Resume at the same instruction (a repaired stage-2 fault, an interrupt).
    Retry,
    /// Do not complete the instruction: raise exception `vector` in the guest, through its own
    /// IDT, as the hardware would have (x86: #GP(0) for an MSR the partition may not touch). The
    /// guest's handler sees the faulting instruction's address. Only x86 backends are ever asked
    /// for one.
    Exception {
        /// The exception vector (x86: 13 for #GP).
        vector: u8,
        /// The error code the exception pushes, if it has one.
        error_code: Option<u32>,
    },
}

impl Completion {
    /// x86 #GP(0): what a CPU raises for an RDMSR or WRMSR of an MSR it does not implement.
    pub const GENERAL_PROTECTION: Self = Self::Exception {
        vector: 13,
        error_code: Some(0),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_trip_and_mask() {
        for n in [1, 2, 4, 8] {
            let s = AccessSize::from_bytes(n).unwrap();
            assert_eq!(s.bytes(), n);
        }
        assert_eq!(AccessSize::from_bytes(3), None);
        assert_eq!(AccessSize::Half.mask(), 0xffff);
        assert_eq!(AccessSize::Double.mask(), u64::MAX);
    }
}
