//! What CPUID tells a partition, under VMX or SVM: the host's answer, filtered. VMX and SVM are
//! hidden (a partition cannot nest: both backends intercept the instructions), the "running under a hypervisor" bit is set, and the hypervisor leaves at 0x4000_0000
//! name Septum and its hypercall ABI version, and leaf 0x4000_0010 gives the TSC and the virtual
//! APIC timer rates in kHz (the convention other hypervisors use). TSC-deadline mode is hidden
//! (the virtual x2APIC does not offer it). Everything else is the real CPU: a partition owns its
//! cores, so there is nothing to hide about them.

/// The signature in leaf 0x4000_0000 (ebx, ecx, edx).
pub const SIGNATURE: &[u8; 12] = b"SeptumSeptum";
/// The highest hypervisor leaf.
pub const MAX_HYPERVISOR_LEAF: u32 = 0x4000_0010;

const LEAF1_ECX_VMX: u32 = 1 << 5;
const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
const LEAF1_ECX_TSC_DEADLINE: u32 = 1 << 24;
/// CPUID 8000_0001 ECX bit 2: AMD SVM.
const EXT1_ECX_SVM: u32 = 1 << 2;
/// The SVM feature leaf, meaningless once SVM is hidden.
const SVM_LEAF: u32 = 0x8000_000a;

/// Filters the host's CPUID result `raw` for `leaf`; `abi_version` goes into leaf 0x4000_0001,
/// `tsc_khz` (also the virtual APIC timer's rate) into leaf 0x4000_0010.
pub fn filter(leaf: u32, raw: [u32; 4], abi_version: u32, tsc_khz: u32) -> [u32; 4] {
    let word = |i: usize| u32::from_le_bytes(SIGNATURE[i * 4..i * 4 + 4].try_into().unwrap());
    match leaf {
        1 => {
            let [a, b, c, d] = raw;
            let c = c & !(LEAF1_ECX_VMX | LEAF1_ECX_TSC_DEADLINE);
            [a, b, c | LEAF1_ECX_HYPERVISOR, d]
        }
        0x4000_0000 => [MAX_HYPERVISOR_LEAF, word(0), word(1), word(2)],
        0x4000_0001 => [abi_version, 0, 0, 0],
        0x4000_0010 => [tsc_khz, tsc_khz, 0, 0],
        0x4000_0002..=0x4000_00ff => [0; 4],
        0x8000_0001 => {
            let [a, b, c, d] = raw;
            [a, b, c & !EXT1_ECX_SVM, d]
        }
        SVM_LEAF => [0; 4],
        _ => raw,
    }
}

/// Runs CPUID on this CPU and filters it for a guest.
pub fn guest_cpuid(leaf: u32, subleaf: u32, abi_version: u32, tsc_khz: u32) -> [u32; 4] {
    // CPUID exists on every x86_64 CPU and only reads identification registers.
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    filter(leaf, [r.eax, r.ebx, r.ecx, r.edx], abi_version, tsc_khz)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmx_hidden_hypervisor_reported() {
        let [_, _, c, _] = filter(1, [0, 0, LEAF1_ECX_VMX | 1, 7], 0x10000, 0);
        assert_eq!(c, 1 | LEAF1_ECX_HYPERVISOR);
        let l = filter(0x4000_0000, [9; 4], 0x10000, 0);
        assert_eq!(l[0], 0x4000_0010);
        assert_eq!(filter(0x4000_0010, [9; 4], 0, 4002), [4002, 4002, 0, 0]);
        let [_, _, c, _] = filter(1, [0, 0, LEAF1_ECX_TSC_DEADLINE, 0], 0, 0);
        assert_eq!(c & LEAF1_ECX_TSC_DEADLINE, 0);
        let mut sig = [0u8; 12];
        for i in 0..3 {
            sig[i * 4..i * 4 + 4].copy_from_slice(&l[i + 1].to_le_bytes());
        }
        assert_eq!(&sig, SIGNATURE);
        assert_eq!(filter(0x4000_0001, [9; 4], 0x10000, 0), [0x10000, 0, 0, 0]);
        assert_eq!(filter(7, [1, 2, 3, 4], 0, 0), [1, 2, 3, 4]);
    }

    #[test]
    fn svm_hidden() {
        let ext = filter(0x8000_0001, [1, 2, EXT1_ECX_SVM | 1, 4], 0, 0);
        assert_eq!(ext, [1, 2, 1, 4]);
        assert_eq!(filter(SVM_LEAF, [1, 16, 0, 0xff], 0, 0), [0; 4]);
    }
}
