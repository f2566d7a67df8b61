//! What a partition's RDMSR and WRMSR mean when they exit, under VMX or SVM: a fixed table of
//! defined answers for the MSRs an operating system touches on its way up (Linux's early CPU
//! setup, MTRR and PAT setup, frequency-invariance and microcode probes), the local APIC's MSRs
//! sent to the vCPU's virtual x2APIC, and a refusal for everything else, which the backends raise
//! as #GP(0) in the guest, as a CPU does for an MSR it does not implement. No answer here reads
//! or writes a hardware MSR: the values are virtual, kept per vCPU in [`GuestMsrs`], so an
//! unknown write never reaches the hardware and nothing a partition writes here changes the
//! hypervisor or another partition.
//!
//! The MSRs the guest owns outright (segment bases, SYSCALL/SYSENTER entry points, TSC_AUX, and
//! PAT under VMX) never exit (`vmx::bitmaps`, `svm::bitmaps`); EFER and, under SVM, PAT are kept
//! in the VMCS/VMCB by the backends, which check a PAT write with [`pat_valid`].
//!
//! The machine a partition is told about: no microcode update (revision 0), IA32_FEATURE_CONTROL
//! locked with VMX off, MTRRs present with no variable or fixed ranges and write-back as the
//! default type (so all of RAM is write-back, which is what the partition's stage-2 mapping
//! gives), no machine-check banks, and APERF/MPERF both reading the TSC (the CPU always runs at
//! its nominal rate, which is what a partition that owns its core sees).

/// IA32_TIME_STAMP_COUNTER.
pub const IA32_TSC: u32 = 0x10;
/// IA32_APIC_BASE.
pub const IA32_APIC_BASE: u32 = 0x1b;
/// IA32_FEATURE_CONTROL.
pub const IA32_FEATURE_CONTROL: u32 = 0x3a;
/// IA32_TSC_ADJUST (hidden by CPUID: refused).
pub const IA32_TSC_ADJUST: u32 = 0x3b;
/// Intel IA32_BIOS_SIGN_ID / AMD PATCH_LEVEL: the microcode revision.
pub const MICROCODE_REV: u32 = 0x8b;
/// IA32_MPERF.
pub const IA32_MPERF: u32 = 0xe7;
/// IA32_APERF.
pub const IA32_APERF: u32 = 0xe8;
/// IA32_MTRRCAP.
pub const IA32_MTRRCAP: u32 = 0xfe;
/// IA32_MCG_CAP.
pub const IA32_MCG_CAP: u32 = 0x179;
/// IA32_MCG_STATUS.
pub const IA32_MCG_STATUS: u32 = 0x17a;
/// IA32_MISC_ENABLE.
pub const IA32_MISC_ENABLE: u32 = 0x1a0;
/// IA32_PAT.
pub const IA32_PAT: u32 = 0x277;
/// IA32_MTRR_DEF_TYPE.
pub const IA32_MTRR_DEF_TYPE: u32 = 0x2ff;
/// IA32_TSC_DEADLINE (the x2APIC's, when offered).
pub const IA32_TSC_DEADLINE: u32 = 0x6e0;

/// MISC_ENABLE as read: fast strings on (bit 0), branch trace storage and PEBS unavailable
/// (bits 11 and 12).
pub const MISC_ENABLE_VALUE: u64 = (1 << 0) | (1 << 11) | (1 << 12);
/// FEATURE_CONTROL as read: locked (bit 0), VMX off inside and outside SMX.
pub const FEATURE_CONTROL_VALUE: u64 = 1;
/// MTRR_DEF_TYPE at reset: MTRRs enabled (bit 11), fixed ranges off, default type write-back.
pub const MTRR_DEF_TYPE_RESET: u64 = (1 << 11) | 6;
/// The bits of MTRR_DEF_TYPE a guest may write: type 7:0, FE 10, E 11.
const MTRR_DEF_TYPE_WRITABLE: u64 = 0xcff;

/// What the backend must do for one MSR access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsrAnswer {
    /// A read returns this value; a write was taken.
    Done(u64),
    /// The MSR is the virtual local APIC's (IA32_APIC_BASE, the x2APIC range, TSC_DEADLINE):
    /// the vCPU's x2APIC model answers, and refuses what it does not implement.
    Apic,
    /// Not an MSR this partition has: raise #GP(0).
    Refuse,
}

/// The virtual MSR state of one vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestMsrs {
    mtrr_def_type: u64,
}

impl Default for GuestMsrs {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether `msr` is the virtual local APIC's.
const fn is_apic(msr: u32) -> bool {
    matches!(msr, IA32_APIC_BASE | IA32_TSC_DEADLINE | 0x800..=0x8ff)
}

/// Whether `value` is a valid IA32_PAT: each of the eight entries a memory type the CPU defines
/// (0 UC, 1 WC, 4 WT, 5 WP, 6 WB, 7 UC-), which is what a CPU checks before it raises #GP.
pub const fn pat_valid(value: u64) -> bool {
    let mut i = 0;
    while i < 8 {
        let t = (value >> (i * 8)) & 0xff;
        if !matches!(t, 0 | 1 | 4 | 5 | 6 | 7) {
            return false;
        }
        i += 1;
    }
    true
}

impl GuestMsrs {
    /// A vCPU's MSRs at reset.
    pub const fn new() -> Self {
        Self {
            mtrr_def_type: MTRR_DEF_TYPE_RESET,
        }
    }

    /// A guest RDMSR of `msr`; `tsc` is the time-stamp counter now (what the guest's own RDTSC
    /// reads).
    pub fn read(&self, msr: u32, tsc: u64) -> MsrAnswer {
        match msr {
            m if is_apic(m) => MsrAnswer::Apic,
            IA32_TSC | IA32_MPERF | IA32_APERF => MsrAnswer::Done(tsc),
            MICROCODE_REV => MsrAnswer::Done(0),
            IA32_FEATURE_CONTROL => MsrAnswer::Done(FEATURE_CONTROL_VALUE),
            IA32_MISC_ENABLE => MsrAnswer::Done(MISC_ENABLE_VALUE),
            // No variable ranges (VCNT 0), no fixed ranges, no write-combining.
            IA32_MTRRCAP => MsrAnswer::Done(0),
            IA32_MTRR_DEF_TYPE => MsrAnswer::Done(self.mtrr_def_type),
            // No machine-check banks, nothing in progress.
            IA32_MCG_CAP | IA32_MCG_STATUS => MsrAnswer::Done(0),
            _ => MsrAnswer::Refuse,
        }
    }

    /// A guest WRMSR of `value` to `msr`.
    pub fn write(&mut self, msr: u32, value: u64) -> MsrAnswer {
        match msr {
            m if is_apic(m) => MsrAnswer::Apic,
            // Intel writes 0 before CPUID 1 to latch the revision; there is no update to load.
            MICROCODE_REV => MsrAnswer::Done(0),
            // Taken and forgotten: the bits a kernel sets here (fast strings, XD enable) already
            // read as it wants, and the rest describe the real CPU, which is not the guest's.
            IA32_MISC_ENABLE => MsrAnswer::Done(0),
            IA32_MTRR_DEF_TYPE if value & !MTRR_DEF_TYPE_WRITABLE == 0 && mtrr_type(value) => {
                self.mtrr_def_type = value;
                MsrAnswer::Done(0)
            }
            IA32_MCG_STATUS if value == 0 => MsrAnswer::Done(0),
            // The TSC, APERF/MPERF and the locked FEATURE_CONTROL are not the guest's to write.
            _ => MsrAnswer::Refuse,
        }
    }
}

/// Whether the type field of an MTRR value names a defined type (UC, WC, WT, WP, WB).
const fn mtrr_type(value: u64) -> bool {
    matches!(value & 0xff, 0 | 1 | 4 | 5 | 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_early_probes_get_defined_answers() {
        let m = GuestMsrs::new();
        assert_eq!(m.read(MICROCODE_REV, 5), MsrAnswer::Done(0));
        assert_eq!(
            m.read(IA32_MISC_ENABLE, 5),
            MsrAnswer::Done(MISC_ENABLE_VALUE)
        );
        assert_eq!(m.read(IA32_FEATURE_CONTROL, 5), MsrAnswer::Done(1));
        assert_eq!(m.read(IA32_MTRRCAP, 5), MsrAnswer::Done(0));
        assert_eq!(m.read(IA32_MTRR_DEF_TYPE, 5), MsrAnswer::Done(0x806));
        assert_eq!(m.read(IA32_MCG_CAP, 5), MsrAnswer::Done(0));
    }

    #[test]
    fn counters_read_the_tsc_and_cannot_be_written() {
        let mut m = GuestMsrs::new();
        for msr in [IA32_TSC, IA32_APERF, IA32_MPERF] {
            assert_eq!(m.read(msr, 1234), MsrAnswer::Done(1234));
            assert_eq!(m.write(msr, 0), MsrAnswer::Refuse);
        }
    }

    #[test]
    fn the_apic_range_goes_to_the_virtual_apic() {
        let mut m = GuestMsrs::new();
        for msr in [IA32_APIC_BASE, 0x802, 0x830, 0x8ff, IA32_TSC_DEADLINE] {
            assert_eq!(m.read(msr, 0), MsrAnswer::Apic);
            assert_eq!(m.write(msr, 0), MsrAnswer::Apic);
        }
        assert_eq!(m.read(0x900, 0), MsrAnswer::Refuse);
    }

    #[test]
    fn unknown_msrs_and_bad_values_are_refused() {
        let mut m = GuestMsrs::new();
        for msr in [
            0,
            0x3b,
            0x48,
            0x10a,
            0x200,
            0x250,
            0xc001_0015,
            0xc001_0114,
            0x4000_0000,
        ] {
            assert_eq!(m.read(msr, 0), MsrAnswer::Refuse, "read {msr:#x}");
            assert_eq!(m.write(msr, 0), MsrAnswer::Refuse, "write {msr:#x}");
        }
        assert_eq!(m.write(IA32_FEATURE_CONTROL, 5), MsrAnswer::Refuse);
        assert_eq!(m.write(IA32_MCG_STATUS, 1), MsrAnswer::Refuse);
        // Reserved bits, an undefined type.
        assert_eq!(m.write(IA32_MTRR_DEF_TYPE, 1 << 12), MsrAnswer::Refuse);
        assert_eq!(m.write(IA32_MTRR_DEF_TYPE, 2), MsrAnswer::Refuse);
        assert_eq!(m.read(IA32_MTRR_DEF_TYPE, 0), MsrAnswer::Done(0x806));
    }

    #[test]
    fn mtrr_default_type_is_kept_per_vcpu() {
        let mut m = GuestMsrs::new();
        // Linux turns MTRRs off around its update, then restores them.
        assert_eq!(m.write(IA32_MTRR_DEF_TYPE, 0), MsrAnswer::Done(0));
        assert_eq!(m.read(IA32_MTRR_DEF_TYPE, 0), MsrAnswer::Done(0));
        assert_eq!(m.write(IA32_MTRR_DEF_TYPE, 0x806), MsrAnswer::Done(0));
        assert_eq!(m.read(IA32_MTRR_DEF_TYPE, 0), MsrAnswer::Done(0x806));
        assert_eq!(
            GuestMsrs::new().read(IA32_MTRR_DEF_TYPE, 0),
            MsrAnswer::Done(0x806)
        );
    }

    #[test]
    fn pat_entries_must_be_defined_types() {
        assert!(pat_valid(0x0007_0406_0007_0406));
        assert!(pat_valid(0x0007_0106_0007_0406), "Linux's PAT with WC");
        assert!(!pat_valid(0x0007_0406_0007_0402), "type 2 is reserved");
        assert!(!pat_valid(0x0807_0406_0007_0406), "type 8 is reserved");
    }
}
