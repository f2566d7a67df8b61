//! Decoding of the VMX capability MSRs into [`VmxCapabilities`]. Everything here is a pure function
//! of the raw MSR values ([`VmxMsrs`]), so it is unit-tested on the host with values measured on
//! Bochs `corei7_skylake_x`; reading the MSRs from the CPU is [`super::read_msrs`].

/// The raw values of the VMX capability MSRs. Optional MSRs the CPU lacks are 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmxMsrs {
    /// IA32_FEATURE_CONTROL (0x3a).
    pub feature_control: u64,
    /// IA32_VMX_BASIC (0x480).
    pub basic: u64,
    /// Pin-based controls: the TRUE MSR when IA32_VMX_BASIC bit 55 is set, else the plain one.
    pub pinbased: u64,
    /// Primary processor-based controls (TRUE MSR when available).
    pub procbased: u64,
    /// VM-exit controls (TRUE MSR when available).
    pub exit: u64,
    /// VM-entry controls (TRUE MSR when available).
    pub entry: u64,
    /// IA32_VMX_MISC.
    pub misc: u64,
    /// IA32_VMX_CR0_FIXED0.
    pub cr0_fixed0: u64,
    /// IA32_VMX_CR0_FIXED1.
    pub cr0_fixed1: u64,
    /// IA32_VMX_CR4_FIXED0.
    pub cr4_fixed0: u64,
    /// IA32_VMX_CR4_FIXED1.
    pub cr4_fixed1: u64,
    /// IA32_VMX_PROCBASED_CTLS2, 0 when the primary controls cannot activate it.
    pub procbased2: u64,
    /// IA32_VMX_EPT_VPID_CAP, 0 when neither EPT nor VPID may be enabled.
    pub ept_vpid_cap: u64,
    /// IA32_VMX_VMFUNC, 0 when VM functions may not be enabled.
    pub vmfunc: u64,
}

/// A VM-execution/exit/entry control MSR: bits that must be 1 (low half) and may be 1 (high half).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllowedBits {
    /// Bits set here must be 1 in the control (their allowed 0-setting is 1).
    pub must_be_one: u32,
    /// Bits set here may be 1 in the control: the allowed 1-settings.
    pub may_be_one: u32,
}

impl AllowedBits {
    /// Splits a control capability MSR.
    pub const fn from_msr(value: u64) -> Self {
        Self {
            must_be_one: value as u32,
            may_be_one: (value >> 32) as u32,
        }
    }

    /// Whether every bit of `bits` may be 1.
    pub const fn allows(&self, bits: u32) -> bool {
        self.may_be_one & bits == bits
    }

    /// The control value for `wanted`: the must-be-one bits added, or `Err(bits)` with the wanted
    /// bits this CPU does not allow.
    pub const fn adjust(&self, wanted: u32) -> Result<u32, u32> {
        let refused = wanted & !self.may_be_one;
        if refused != 0 {
            Err(refused)
        } else {
            Ok(wanted | self.must_be_one)
        }
    }
}

/// A control register's fixed bits in VMX operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FixedBits {
    /// Bits that must be 1.
    pub fixed0: u64,
    /// Bits that may be 1 (a clear bit must be 0).
    pub fixed1: u64,
}

impl FixedBits {
    /// `value` with the must-be-one bits set and the must-be-zero bits cleared.
    pub const fn apply(&self, value: u64) -> u64 {
        (value | self.fixed0) & self.fixed1
    }

    /// Whether `value` already satisfies both masks.
    pub const fn allows(&self, value: u64) -> bool {
        self.apply(value) == value
    }
}

/// IA32_FEATURE_CONTROL as far as VMX is concerned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeatureControl {
    /// Bit 0: the MSR can no longer be written until reset.
    pub locked: bool,
    /// Bit 1: VMXON allowed inside SMX operation (TXT).
    pub vmx_inside_smx: bool,
    /// Bit 2: VMXON allowed outside SMX operation (the normal case).
    pub vmx_outside_smx: bool,
}

impl FeatureControl {
    /// Bit 0, the lock.
    pub const LOCK: u64 = 1 << 0;
    /// Bit 2, VMX outside SMX.
    pub const VMX_OUTSIDE_SMX: u64 = 1 << 2;

    /// Decodes the MSR value.
    pub const fn decode(value: u64) -> Self {
        Self {
            locked: value & Self::LOCK != 0,
            vmx_inside_smx: value & (1 << 1) != 0,
            vmx_outside_smx: value & Self::VMX_OUTSIDE_SMX != 0,
        }
    }

    /// Whether VMXON can work now: allowed, or unlocked so that we may allow it.
    pub const fn vmxon_possible(&self) -> bool {
        self.vmx_outside_smx || !self.locked
    }
}

/// IA32_VMX_BASIC decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmxBasic {
    /// VMCS revision identifier (bits 30:0), written at the start of VMXON and VMCS regions.
    pub revision_id: u32,
    /// Bytes to allocate for a VMCS or VMXON region (bits 44:32).
    pub region_size: u32,
    /// Bit 48: VMX structures must lie below 4 GiB.
    pub addresses_32bit: bool,
    /// Memory type for VMCS accesses (bits 53:50; 6 = write-back).
    pub memory_type: u8,
    /// Bit 54: VM-exit information reports INS/OUTS details.
    pub ins_outs_info: bool,
    /// Bit 55: the TRUE control MSRs exist.
    pub true_controls: bool,
}

impl VmxBasic {
    /// Decodes the MSR value.
    pub const fn decode(value: u64) -> Self {
        Self {
            revision_id: (value & 0x7fff_ffff) as u32,
            region_size: ((value >> 32) & 0x1fff) as u32,
            addresses_32bit: value & (1 << 48) != 0,
            memory_type: ((value >> 50) & 0xf) as u8,
            ins_outs_info: value & (1 << 54) != 0,
            true_controls: value & (1 << 55) != 0,
        }
    }
}

/// IA32_VMX_EPT_VPID_CAP decoded (the bits the hypervisor uses).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EptVpidCap {
    /// Bit 0: execute-only EPT translations.
    pub execute_only: bool,
    /// Bit 6: 4-level page walk.
    pub walk_4level: bool,
    /// Bit 7: 5-level page walk.
    pub walk_5level: bool,
    /// Bit 8: uncacheable EPT paging-structure memory type.
    pub memtype_uc: bool,
    /// Bit 14: write-back EPT paging-structure memory type.
    pub memtype_wb: bool,
    /// Bit 16: 2 MiB leaves.
    pub pages_2m: bool,
    /// Bit 17: 1 GiB leaves.
    pub pages_1g: bool,
    /// Bit 20: INVEPT exists.
    pub invept: bool,
    /// Bit 21: accessed and dirty flags.
    pub accessed_dirty: bool,
    /// Bit 25: single-context INVEPT.
    pub invept_single: bool,
    /// Bit 26: all-context INVEPT.
    pub invept_all: bool,
    /// Bit 32: INVVPID exists.
    pub invvpid: bool,
    /// Bit 40: individual-address INVVPID.
    pub invvpid_address: bool,
    /// Bit 41: single-context INVVPID.
    pub invvpid_single: bool,
    /// Bit 42: all-context INVVPID.
    pub invvpid_all: bool,
}

impl EptVpidCap {
    /// Decodes the MSR value.
    pub const fn decode(v: u64) -> Self {
        const fn bit(v: u64, n: u32) -> bool {
            v & (1 << n) != 0
        }
        Self {
            execute_only: bit(v, 0),
            walk_4level: bit(v, 6),
            walk_5level: bit(v, 7),
            memtype_uc: bit(v, 8),
            memtype_wb: bit(v, 14),
            pages_2m: bit(v, 16),
            pages_1g: bit(v, 17),
            invept: bit(v, 20),
            accessed_dirty: bit(v, 21),
            invept_single: bit(v, 25),
            invept_all: bit(v, 26),
            invvpid: bit(v, 32),
            invvpid_address: bit(v, 40),
            invvpid_single: bit(v, 41),
            invvpid_all: bit(v, 42),
        }
    }
}

/// Primary processor-based control bit 31: activate secondary controls.
pub const PROC_ACTIVATE_SECONDARY: u32 = 1 << 31;
/// Secondary control bit 1: enable EPT.
pub const PROC2_ENABLE_EPT: u32 = 1 << 1;
/// Secondary control bit 5: enable VPID.
pub const PROC2_ENABLE_VPID: u32 = 1 << 5;
/// Secondary control bit 7: unrestricted guest.
pub const PROC2_UNRESTRICTED_GUEST: u32 = 1 << 7;
/// Secondary control bit 13: enable VM functions.
pub const PROC2_ENABLE_VMFUNC: u32 = 1 << 13;
/// Secondary control bit 17: enable page-modification logging.
pub const PROC2_ENABLE_PML: u32 = 1 << 17;

/// Everything the hypervisor needs to know about this CPU's VMX, decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmxCapabilities {
    /// Whether the firmware allows (or left open) VMXON.
    pub feature_control: FeatureControl,
    /// Revision, region size, memory type.
    pub basic: VmxBasic,
    /// Pin-based controls.
    pub pinbased: AllowedBits,
    /// Primary processor-based controls.
    pub procbased: AllowedBits,
    /// Secondary processor-based controls (all zero when they cannot be activated).
    pub procbased2: AllowedBits,
    /// VM-exit controls.
    pub exit: AllowedBits,
    /// VM-entry controls.
    pub entry: AllowedBits,
    /// CR0 in VMX operation.
    pub cr0: FixedBits,
    /// CR4 in VMX operation.
    pub cr4: FixedBits,
    /// EPT and VPID capabilities (all false when absent).
    pub ept_vpid: EptVpidCap,
    /// IA32_VMX_MISC, raw.
    pub misc: u64,
    /// IA32_VMX_VMFUNC, raw.
    pub vmfunc: u64,
}

impl VmxCapabilities {
    /// Whether the VMX-preemption timer exists, and how many TSC bits it lags (it counts down
    /// once each time TSC bit `rate` changes: IA32_VMX_MISC bits 4:0).
    pub const fn preemption_timer(&self) -> Option<u32> {
        if self.pinbased.allows(1 << 6) {
            Some((self.misc & 0x1f) as u32)
        } else {
            None
        }
    }

    /// Decodes the raw MSR values.
    pub const fn decode(m: &VmxMsrs) -> Self {
        let procbased = AllowedBits::from_msr(m.procbased);
        let procbased2 = if procbased.allows(PROC_ACTIVATE_SECONDARY) {
            AllowedBits::from_msr(m.procbased2)
        } else {
            AllowedBits {
                must_be_one: 0,
                may_be_one: 0,
            }
        };
        Self {
            feature_control: FeatureControl::decode(m.feature_control),
            basic: VmxBasic::decode(m.basic),
            pinbased: AllowedBits::from_msr(m.pinbased),
            procbased,
            procbased2,
            exit: AllowedBits::from_msr(m.exit),
            entry: AllowedBits::from_msr(m.entry),
            cr0: FixedBits {
                fixed0: m.cr0_fixed0,
                fixed1: m.cr0_fixed1,
            },
            cr4: FixedBits {
                fixed0: m.cr4_fixed0,
                fixed1: m.cr4_fixed1,
            },
            ept_vpid: EptVpidCap::decode(m.ept_vpid_cap),
            misc: m.misc,
            vmfunc: m.vmfunc,
        }
    }

    /// EPT can be enabled, with a 4-level walk and write-back tables (what the mmu crate builds).
    pub const fn ept(&self) -> bool {
        self.procbased2.allows(PROC2_ENABLE_EPT)
            && self.ept_vpid.walk_4level
            && self.ept_vpid.memtype_wb
    }

    /// EPT accessed and dirty flags.
    pub const fn ept_ad(&self) -> bool {
        self.ept() && self.ept_vpid.accessed_dirty
    }

    /// 1 GiB EPT leaves.
    pub const fn ept_1g(&self) -> bool {
        self.ept() && self.ept_vpid.pages_1g
    }

    /// VPID tagging of guest TLB entries, with INVVPID.
    pub const fn vpid(&self) -> bool {
        self.procbased2.allows(PROC2_ENABLE_VPID) && self.ept_vpid.invvpid
    }

    /// Page-modification logging (dirty logging without write-protect faults).
    pub const fn pml(&self) -> bool {
        self.ept_ad() && self.procbased2.allows(PROC2_ENABLE_PML)
    }

    /// Guests may run in real mode and unpaged protected mode.
    pub const fn unrestricted_guest(&self) -> bool {
        self.ept() && self.procbased2.allows(PROC2_UNRESTRICTED_GUEST)
    }

    /// Single-context INVEPT (flush one partition's EPT).
    pub const fn invept_single(&self) -> bool {
        self.ept() && self.ept_vpid.invept && self.ept_vpid.invept_single
    }

    /// Whether the MSRs allow EPT-VPID-CAP to be read at all (the reader uses this).
    pub const fn has_ept_vpid_cap_msr(procbased2: AllowedBits) -> bool {
        procbased2.may_be_one & (PROC2_ENABLE_EPT | PROC2_ENABLE_VPID) != 0
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// IA32_* values read on Bochs 2.7 `corei7_skylake_x` (shared/notes/x86-facts.md).
    pub(crate) fn skylake_x() -> VmxMsrs {
        VmxMsrs {
            feature_control: 0x5,
            basic: 0x00d8_1000_0000_002b,
            pinbased: 0x0000_007f_0000_0016,
            procbased: 0xf7f9_fffe_0400_6172,
            exit: 0x007f_ffff_0003_6dfb,
            entry: 0x0000_ffff_0000_11fb,
            misc: 0x6004_01e0,
            cr0_fixed0: 0x8000_0021,
            cr0_fixed1: 0xffff_ffff,
            cr4_fixed0: 0x2000,
            cr4_fixed1: 0x0037_27ff,
            procbased2: 0x0217_7fff_0000_0000,
            ept_vpid_cap: 0x0000_0f01_0633_4141,
            vmfunc: 0x1,
        }
    }

    #[test]
    fn basic_decodes_skylake_x() {
        let b = VmxBasic::decode(skylake_x().basic);
        assert_eq!(b.revision_id, 0x2b);
        assert_eq!(b.region_size, 4096);
        assert_eq!(b.memory_type, 6);
        assert!(b.ins_outs_info);
        assert!(b.true_controls);
        assert!(!b.addresses_32bit);
    }

    #[test]
    fn skylake_x_has_everything_the_hypervisor_uses() {
        let c = VmxCapabilities::decode(&skylake_x());
        assert!(c.feature_control.locked && c.feature_control.vmx_outside_smx);
        assert!(c.feature_control.vmxon_possible());
        assert!(c.ept() && c.ept_ad() && c.ept_1g() && c.vpid() && c.pml());
        assert!(c.unrestricted_guest() && c.invept_single());
        assert!(c.ept_vpid.execute_only && c.ept_vpid.pages_2m && c.ept_vpid.invept_all);
        assert!(!c.ept_vpid.walk_5level);
        assert!(c.ept_vpid.invvpid_address && c.ept_vpid.invvpid_single && c.ept_vpid.invvpid_all);
        assert!(VmxCapabilities::has_ept_vpid_cap_msr(c.procbased2));
    }

    #[test]
    fn controls_used_on_skylake_x_are_allowed() {
        // The settings the measured experiment used (x86-facts.md), adjusted from the bits wanted.
        let c = VmxCapabilities::decode(&skylake_x());
        assert_eq!(c.pinbased.adjust(0x16), Ok(0x16));
        assert_eq!(c.procbased2.adjust(0xa2), Ok(0xa2));
        assert_eq!(c.entry.adjust(0x200 | 0x8000), Ok(0x93fb));
        assert_eq!(c.exit.adjust(0x200 | 0x10_0000 | 0x20_0000), Ok(0x336ffb));
    }

    #[test]
    fn adjust_reports_refused_bits() {
        let bits = AllowedBits::from_msr(0x0000_00f0_0000_0010);
        assert_eq!(bits.adjust(0x30), Ok(0x30));
        assert_eq!(bits.adjust(0x101), Err(0x101));
        assert_eq!(bits.adjust(0), Ok(0x10));
        assert!(bits.allows(0xf0) && !bits.allows(0x1f0));
    }

    #[test]
    fn cr_fixed_bits_force_and_clear() {
        let c = VmxCapabilities::decode(&skylake_x());
        // Long-mode CR0 without NE: VMX needs NE.
        assert_eq!(c.cr0.apply(0x8000_0011), 0x8000_0031);
        assert!(!c.cr0.allows(0x8000_0011));
        // CR4 with PAE only: VMXE is forced, bits above the allowed mask are cleared.
        assert_eq!(c.cr4.apply(0x20), 0x2020);
        assert_eq!(c.cr4.apply(0x20 | (1 << 23)), 0x2020);
        assert!(c.cr4.allows(0x2020));
    }

    #[test]
    fn no_secondary_controls_means_no_ept() {
        let mut m = skylake_x();
        m.procbased &= !(u64::from(PROC_ACTIVATE_SECONDARY) << 32);
        let c = VmxCapabilities::decode(&m);
        assert_eq!(c.procbased2, AllowedBits::default());
        assert!(!c.ept() && !c.vpid() && !c.pml() && !c.unrestricted_guest());
    }

    #[test]
    fn ept_without_ad_has_no_pml() {
        let mut m = skylake_x();
        m.ept_vpid_cap &= !(1 << 21);
        let c = VmxCapabilities::decode(&m);
        assert!(c.ept() && !c.ept_ad() && !c.pml());
    }

    #[test]
    fn feature_control_states() {
        assert!(FeatureControl::decode(0).vmxon_possible());
        assert!(!FeatureControl::decode(FeatureControl::LOCK).vmxon_possible());
        assert!(FeatureControl::decode(0x5).vmxon_possible());
    }
}
