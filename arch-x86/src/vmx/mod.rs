//! VMX on the calling CPU: reading the capability MSRs (decoded by [`caps`]), entering and
//! leaving VMX operation (VMXON/VMXOFF), the VMCS instructions and field encodings ([`instr`],
//! [`fields`]), the controls and bitmaps a partition's VMCS uses ([`controls`], [`bitmaps`]),
//! VM entry with the guest's registers ([`enter`]), exit decoding ([`exit`]), the CPUID a guest
//! sees ([`guest_cpuid`]), a vCPU's starting VMCS as data ([`start`]) and the vCPU itself
//! ([`vcpu`]: run, complete, event re-injection, interrupt windows, NMI unblocking, EFER),
//! generic over the [`vcpu::VmxHw`] it runs on so it is tested on the host against a VMCS model.

pub mod bitmaps;
pub mod caps;
pub mod controls;
pub mod enter;
pub mod exit;
pub mod fields;
pub mod guest_cpuid;
pub mod instr;
#[cfg(test)]
mod interrupt_tests;
#[cfg(test)]
mod model;
pub mod start;
pub mod vcpu;
#[cfg(test)]
mod vcpu_tests;

pub use caps::{AllowedBits, FixedBits, VmxCapabilities, VmxMsrs};

use crate::msr::*;
use core::arch::asm;

/// How a VMX instruction failed (SDM Vol. 3C §31.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmFail {
    /// CF set: the current-VMCS pointer (or operand) is invalid; no error number.
    Invalid,
    /// ZF set: a current VMCS exists and its VM-instruction error field says why.
    Valid,
}

/// Reads every VMX capability MSR this CPU implements.
///
/// # Safety
/// The CPU must report VMX in CPUID (else the MSRs do not exist and reading them raises #GP).
pub unsafe fn read_msrs() -> VmxMsrs {
    // SAFETY: (for every read below) the caller guarantees VMX, so MSRs 0x3a and 0x480-0x48a exist; the
    // TRUE MSRs exist when IA32_VMX_BASIC bit 55 is set, PROCBASED_CTLS2 when the primary controls
    // may activate it, EPT_VPID_CAP when EPT or VPID may be set, VMFUNC when VM functions may be.
    let read = |msr| unsafe { rdmsr(msr) };
    let basic = read(IA32_VMX_BASIC);
    let true_controls = caps::VmxBasic::decode(basic).true_controls;
    let pick = |plain, tru| {
        if true_controls {
            read(tru)
        } else {
            read(plain)
        }
    };
    let procbased = pick(IA32_VMX_PROCBASED_CTLS, IA32_VMX_TRUE_PROCBASED_CTLS);
    let procbased2 = if AllowedBits::from_msr(procbased).allows(caps::PROC_ACTIVATE_SECONDARY) {
        read(IA32_VMX_PROCBASED_CTLS2)
    } else {
        0
    };
    let allowed2 = AllowedBits::from_msr(procbased2);
    VmxMsrs {
        feature_control: read(IA32_FEATURE_CONTROL),
        basic,
        pinbased: pick(IA32_VMX_PINBASED_CTLS, IA32_VMX_TRUE_PINBASED_CTLS),
        procbased,
        exit: pick(IA32_VMX_EXIT_CTLS, IA32_VMX_TRUE_EXIT_CTLS),
        entry: pick(IA32_VMX_ENTRY_CTLS, IA32_VMX_TRUE_ENTRY_CTLS),
        misc: read(IA32_VMX_MISC),
        cr0_fixed0: read(IA32_VMX_CR0_FIXED0),
        cr0_fixed1: read(IA32_VMX_CR0_FIXED1),
        cr4_fixed0: read(IA32_VMX_CR4_FIXED0),
        cr4_fixed1: read(IA32_VMX_CR4_FIXED1),
        procbased2,
        ept_vpid_cap: if VmxCapabilities::has_ept_vpid_cap_msr(allowed2) {
            read(IA32_VMX_EPT_VPID_CAP)
        } else {
            0
        },
        vmfunc: if allowed2.allows(caps::PROC2_ENABLE_VMFUNC) {
            read(IA32_VMX_VMFUNC)
        } else {
            0
        },
    }
}

/// Turns the flags after a VMX instruction into its result.
fn vm_result(cf: u8, zf: u8) -> Result<(), VmFail> {
    match (cf, zf) {
        (0, 0) => Ok(()),
        (0, _) => Err(VmFail::Valid),
        _ => Err(VmFail::Invalid),
    }
}

/// Enters VMX root operation with the VMXON region at physical address `region_pa`.
///
/// # Safety
/// CR4.VMXE and the CR0/CR4 fixed bits must be set, IA32_FEATURE_CONTROL must allow VMXON, and
/// `region_pa` must be a 4 KiB-aligned page, owned by this CPU for as long as VMX is on, holding
/// the VMCS revision id in its first 31 bits.
pub unsafe fn vmxon(region_pa: u64) -> Result<(), VmFail> {
    let (cf, zf): (u8, u8);
    // SAFETY: the caller guarantees the preconditions; VMXON reads the 8-byte operand on our stack.
    unsafe {
        asm!("vmxon [{pa}]", "setc {cf}", "setz {zf}",
            pa = in(reg) &region_pa, cf = out(reg_byte) cf, zf = out(reg_byte) zf,
            options(nostack))
    };
    vm_result(cf, zf)
}

/// Leaves VMX operation.
///
/// # Safety
/// The CPU must be in VMX root operation and no guest state may still be needed.
pub unsafe fn vmxoff() -> Result<(), VmFail> {
    let (cf, zf): (u8, u8);
    // SAFETY: the caller guarantees VMX root operation.
    unsafe {
        asm!("vmxoff", "setc {cf}", "setz {zf}", cf = out(reg_byte) cf, zf = out(reg_byte) zf,
            options(nostack))
    };
    vm_result(cf, zf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_map_to_results() {
        assert_eq!(vm_result(0, 0), Ok(()));
        assert_eq!(vm_result(1, 0), Err(VmFail::Invalid));
        assert_eq!(vm_result(0, 1), Err(VmFail::Valid));
    }
}
