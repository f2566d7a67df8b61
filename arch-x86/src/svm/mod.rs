//! AMD SVM on the calling CPU: what the CPU offers (CPUID 8000_000A, decoded by
//! [`SvmFeatures::decode`]), turning SVM on (EFER.SVME, the host save area in `VM_HSAVE_PA`), the
//! VMCB ([`vmcb`]), the I/O and MSR permission maps ([`bitmaps`]), the world switch ([`enter`]),
//! exit decoding into the arch-neutral exits ([`exit`]), a vCPU's starting VMCB ([`start`]) and
//! the vCPU itself ([`vcpu`]: run, complete, event re-injection, interrupt windows, TLB control),
//! generic over the [`vcpu::SvmHw`] it runs on so it is tested on the host against a model. It is
//! the backend of AMD boards and of QEMU's TCG, which emulates SVM with nested paging but not VMX.

pub mod bitmaps;
pub mod enter;
pub mod exit;
#[cfg(test)]
mod interrupt_tests;
#[cfg(test)]
mod model;
pub mod start;
pub mod vcpu;
#[cfg(test)]
mod vcpu_tests;
pub mod vmcb;

use crate::msr::{rdmsr, wrmsr, IA32_EFER};

/// VM_CR: bit 4 (SVMDIS) set means firmware disabled SVM.
pub const VM_CR: u32 = 0xc001_0114;
/// The physical address of the host save area VMRUN uses.
pub const VM_HSAVE_PA: u32 = 0xc001_0117;
/// VM_CR.SVMDIS.
pub const VM_CR_SVMDIS: u64 = 1 << 4;
/// EFER.SVME: SVM instructions allowed.
pub const EFER_SVME: u64 = 1 << 12;
/// EFER.NXE: bit 63 of page-table entries is no-execute (nested tables use it too).
pub const EFER_NXE: u64 = 1 << 11;

/// What CPUID 8000_000A says about SVM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SvmFeatures {
    /// SVM revision (EAX 7:0).
    pub revision: u8,
    /// Number of ASIDs (EBX); ASID 0 is the host's.
    pub asids: u32,
    /// Nested paging (EDX bit 0).
    pub nested_paging: bool,
    /// NRIP save (EDX bit 3): the VMCB gives the next RIP on instruction intercepts.
    pub nrip_save: bool,
    /// VMCB clean bits (EDX bit 5).
    pub vmcb_clean: bool,
    /// TLB_CONTROL 3 and 7 flush one ASID (EDX bit 6); without it only "flush all" exists.
    pub flush_by_asid: bool,
    /// Decode assists (EDX bit 7).
    pub decode_assists: bool,
}

impl SvmFeatures {
    /// Decodes CPUID 8000_000A's EAX, EBX and EDX.
    pub const fn decode(eax: u32, ebx: u32, edx: u32) -> Self {
        Self {
            revision: eax as u8,
            asids: ebx,
            nested_paging: edx & 1 != 0,
            nrip_save: edx & (1 << 3) != 0,
            vmcb_clean: edx & (1 << 5) != 0,
            flush_by_asid: edx & (1 << 6) != 0,
            decode_assists: edx & (1 << 7) != 0,
        }
    }

    /// Reads the calling CPU's SVM features; `None` when it has no SVM (CPUID 8000_0001
    /// ECX bit 2 clear).
    pub fn read() -> Option<Self> {
        // CPUID exists on every x86_64 CPU and only reads identification registers.
        let max = core::arch::x86_64::__cpuid(0x8000_0000).eax;
        if max < 0x8000_000a || core::arch::x86_64::__cpuid(0x8000_0001).ecx & (1 << 2) == 0 {
            return None;
        }
        let r = core::arch::x86_64::__cpuid(0x8000_000a);
        Some(Self::decode(r.eax, r.ebx, r.edx))
    }
}

/// Whether firmware left SVM usable (VM_CR.SVMDIS clear).
///
/// # Safety
/// The CPU must report SVM (else VM_CR does not exist).
pub unsafe fn firmware_allows() -> bool {
    // SAFETY: the caller guarantees SVM, so VM_CR exists; reading it has no effect.
    unsafe { rdmsr(VM_CR) & VM_CR_SVMDIS == 0 }
}

/// Turns SVM on for the calling CPU with its host save area at `hsave_pa`, and no-execute paging
/// with it (nested tables mark non-executable memory with bit 63, which is reserved without NXE).
///
/// # Safety
/// The CPU must report SVM, firmware must allow it ([`firmware_allows`]), and `hsave_pa` must be a
/// 4 KiB-aligned page this CPU alone uses for as long as SVM is on.
pub unsafe fn enable(hsave_pa: u64) {
    // SAFETY: the caller guarantees SVM; setting SVME only allows the SVM instructions, NXE only
    // gives bit 63 of page-table entries a meaning (the hypervisor's own tables leave it clear),
    // and the host save area is this CPU's.
    unsafe {
        wrmsr(IA32_EFER, rdmsr(IA32_EFER) | EFER_SVME | EFER_NXE);
        wrmsr(VM_HSAVE_PA, hsave_pa);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_tcg_features_decode() {
        // Measured under QEMU 10.0.2 `-cpu max`: EAX=1, EBX=0x10, EDX=0x10010001.
        let f = SvmFeatures::decode(1, 0x10, 0x1001_0001);
        assert_eq!((f.revision, f.asids), (1, 16));
        assert!(f.nested_paging);
        assert!(!f.nrip_save && !f.vmcb_clean && !f.flush_by_asid && !f.decode_assists);
        let all = SvmFeatures::decode(1, 0x8000, 0xe9);
        assert!(all.nrip_save && all.vmcb_clean && all.flush_by_asid && all.decode_assists);
    }
}
