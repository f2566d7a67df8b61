//! Model-specific registers: the numbers the hypervisor uses and `rdmsr`/`wrmsr`. Reading an MSR the
//! CPU does not implement raises #GP (Bochs with `ignore_bad_msrs=0` does so too), so callers check
//! CPUID or a capability MSR before touching an optional one.

use core::arch::asm;

/// The local APIC base address and its enable / x2APIC / BSP bits.
pub const IA32_APIC_BASE: u32 = 0x1b;
/// Whether VMXON is allowed, and the lock bit that freezes the choice until reset.
pub const IA32_FEATURE_CONTROL: u32 = 0x3a;
/// Long mode enable (LME), NX enable and friends.
pub const IA32_EFER: u32 = 0xc000_0080;
/// EFER.SCE: SYSCALL enable.
pub const EFER_SCE: u64 = 1 << 0;
/// EFER.LME: long mode enable.
pub const EFER_LME: u64 = 1 << 8;
/// EFER.LMA: long mode active, set by the CPU when paging turns on with LME.
pub const EFER_LMA: u64 = 1 << 10;
/// EFER.NXE: no-execute enable.
pub const EFER_NXE: u64 = 1 << 11;

/// The EFER a partition's WRMSR of `value` leaves when the hypervisor emulates it, from the
/// current `old`: the guest may set SCE, LME and NXE; LMA stays what the CPU made it.
pub const fn guest_efer_write(old: u64, value: u64) -> u64 {
    (value & (EFER_SCE | EFER_LME | EFER_NXE)) | (old & EFER_LMA)
}

/// The base of the GS segment in 64-bit mode (the per-CPU data pointer).
pub const IA32_GS_BASE: u32 = 0xc000_0101;
/// VMCS revision, VMCS size, memory type, whether the TRUE control MSRs exist.
pub const IA32_VMX_BASIC: u32 = 0x480;
/// Allowed settings of the pin-based VM-execution controls.
pub const IA32_VMX_PINBASED_CTLS: u32 = 0x481;
/// Allowed settings of the primary processor-based VM-execution controls.
pub const IA32_VMX_PROCBASED_CTLS: u32 = 0x482;
/// Allowed settings of the VM-exit controls.
pub const IA32_VMX_EXIT_CTLS: u32 = 0x483;
/// Allowed settings of the VM-entry controls.
pub const IA32_VMX_ENTRY_CTLS: u32 = 0x484;
/// Miscellaneous VMX data (preemption timer rate, CR3 targets, MSR list sizes).
pub const IA32_VMX_MISC: u32 = 0x485;
/// CR0 bits that must be 1 in VMX operation.
pub const IA32_VMX_CR0_FIXED0: u32 = 0x486;
/// CR0 bits that may be 1 in VMX operation.
pub const IA32_VMX_CR0_FIXED1: u32 = 0x487;
/// CR4 bits that must be 1 in VMX operation.
pub const IA32_VMX_CR4_FIXED0: u32 = 0x488;
/// CR4 bits that may be 1 in VMX operation.
pub const IA32_VMX_CR4_FIXED1: u32 = 0x489;
/// Allowed settings of the secondary processor-based controls (exists when primary bit 31 may be 1).
pub const IA32_VMX_PROCBASED_CTLS2: u32 = 0x48b;
/// EPT and VPID capabilities (exists when secondary EPT or VPID may be 1).
pub const IA32_VMX_EPT_VPID_CAP: u32 = 0x48c;
/// TRUE pin-based controls (exists when IA32_VMX_BASIC bit 55 is set).
pub const IA32_VMX_TRUE_PINBASED_CTLS: u32 = 0x48d;
/// TRUE primary processor-based controls.
pub const IA32_VMX_TRUE_PROCBASED_CTLS: u32 = 0x48e;
/// TRUE VM-exit controls.
pub const IA32_VMX_TRUE_EXIT_CTLS: u32 = 0x48f;
/// TRUE VM-entry controls.
pub const IA32_VMX_TRUE_ENTRY_CTLS: u32 = 0x490;
/// VM functions allowed (exists when secondary "enable VM functions" may be 1).
pub const IA32_VMX_VMFUNC: u32 = 0x491;

/// Reads MSR `msr`.
///
/// # Safety
/// The MSR must exist on this CPU (else #GP), and reading it must have no side effect the caller
/// has not accounted for.
#[inline]
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists; rdmsr touches no memory.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes `value` to MSR `msr`.
///
/// # Safety
/// The MSR must exist and `value` must be valid for it; MSRs change how the CPU runs (paging mode,
/// segment bases, APIC mode), so the caller must keep the machine state consistent.
#[inline]
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller guarantees the MSR and value are valid; wrmsr touches no memory.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
            options(nostack, preserves_flags))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_efer_write_keeps_lma_and_drops_other_bits() {
        assert_eq!(
            guest_efer_write(0, EFER_LME | EFER_LMA | (1 << 12)),
            EFER_LME
        );
        assert_eq!(
            guest_efer_write(EFER_LMA, EFER_SCE | EFER_NXE),
            EFER_SCE | EFER_NXE | EFER_LMA
        );
    }
}
