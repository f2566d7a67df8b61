//! What CPUID tells a partition, under VMX or SVM: the host's answer, filtered. VMX and SVM are
//! hidden (a partition cannot nest: both backends intercept the instructions), the "running under a hypervisor" bit is set, and the hypervisor leaves at 0x4000_0000
//! name Septum and its hypercall ABI version, and leaf 0x4000_0010 gives the TSC and the virtual
//! APIC timer rates in kHz (the convention other hypervisors use). x2APIC and its TSC-deadline
//! timer are reported, since that is the APIC a partition has. Leaves 0x4000_0100-0x4000_0101
//! carry the KVM signature with no paravirtual features (the place a second hypervisor
//! interface sits): the one thing it tells a Linux guest is that the hypervisor delivers
//! interrupts to x2APIC IDs without interrupt remapping, so Linux keeps x2APIC mode instead of
//! falling back to the memory-mapped xAPIC, which a partition does not have. No KVM hypercall,
//! MSR or shared page is offered. The TSC is reported invariant (leaf 0x8000_0007 EDX bit 8): a partition owns its core and
//! the hypervisor never changes its rate, so a guest may keep time by it. Hidden as well, for
//! what the hypervisor does not switch or decode: XSAVE and everything built on it (XSETBV is
//! refused, since XCR0 is the hypervisor's; leaf 0xd reads zero), IA32_TSC_ADJUST (an MSR the
//! guest MSR policy refuses), 5-level paging (the MMIO decoder walks 4-level tables), and
//! INVPCID and RDTSCP, which a VMX guest may execute only with secondary controls the VMX
//! backend does not set: they raise #UD there (seen on Bochs: Linux's first global TLB flush
//! is an INVPCID), and Linux has fallbacks for both (CR4.PGE toggling, LSL for getcpu).
//! Everything else is the real CPU: a partition owns its cores, so there is nothing to hide
//! about them.

/// The signature in leaf 0x4000_0000 (ebx, ecx, edx).
pub const SIGNATURE: &[u8; 12] = b"SeptumSeptum";
/// The highest hypervisor leaf.
pub const MAX_HYPERVISOR_LEAF: u32 = 0x4000_0010;
/// The KVM-compatible leaves' base and signature ("KVMKVMKVM\0\0\0").
pub const KVM_BASE: u32 = 0x4000_0100;
const KVM_SIGNATURE: [u32; 3] = [0x4b4d_564b, 0x564b_4d56, 0x4d];

const LEAF1_ECX_VMX: u32 = 1 << 5;
const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
const LEAF1_ECX_TSC_DEADLINE: u32 = 1 << 24;
const LEAF1_ECX_X2APIC: u32 = 1 << 21;
/// FMA (12), XSAVE (26), OSXSAVE (27), AVX (28), F16C (29): the XSAVE family.
const LEAF1_ECX_XSAVE_FAMILY: u32 = (1 << 12) | (1 << 26) | (1 << 27) | (1 << 28) | (1 << 29);
/// Leaf 7 EBX: TSC_ADJUST (1), AVX2 (5), INVPCID (10), AVX-512 F/DQ/IFMA/PF/ER/CD/BW/VL (16,
/// 17, 21, 26, 27, 28, 30, 31).
const LEAF7_EBX_HIDDEN: u32 = (1 << 1)
    | (1 << 5)
    | (1 << 10)
    | (1 << 16)
    | (1 << 17)
    | (1 << 21)
    | (1 << 26)
    | (1 << 27)
    | (1 << 28)
    | (1 << 30)
    | (1 << 31);
/// Leaf 7 ECX: AVX-512 VBMI (1), LA57 (16), and the AVX-512 and VAES extensions (6, 9, 10, 11,
/// 12, 14).
const LEAF7_ECX_HIDDEN: u32 =
    (1 << 1) | (1 << 6) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12) | (1 << 14) | (1 << 16);
/// Leaf 7 EDX: AVX-512 4VNNIW/4FMAPS (2, 3), VP2INTERSECT (8), AMX (22, 24, 25), AVX-512 FP16 (23).
const LEAF7_EDX_HIDDEN: u32 =
    (1 << 2) | (1 << 3) | (1 << 8) | (1 << 22) | (1 << 23) | (1 << 24) | (1 << 25);
/// CPUID 8000_0007 EDX bit 8: invariant TSC.
const POWER_EDX_INVARIANT_TSC: u32 = 1 << 8;
/// CPUID 8000_0001 ECX bit 2: AMD SVM.
const EXT1_ECX_SVM: u32 = 1 << 2;
/// CPUID 8000_0001 EDX bit 27: RDTSCP.
const EXT1_EDX_RDTSCP: u32 = 1 << 27;
/// The SVM feature leaf, meaningless once SVM is hidden.
const SVM_LEAF: u32 = 0x8000_000a;

/// Filters the host's CPUID result `raw` for `leaf`; `abi_version` goes into leaf 0x4000_0001,
/// `tsc_khz` (also the virtual APIC timer's rate) into leaf 0x4000_0010.
pub fn filter(leaf: u32, raw: [u32; 4], abi_version: u32, tsc_khz: u32) -> [u32; 4] {
    let word = |i: usize| u32::from_le_bytes(SIGNATURE[i * 4..i * 4 + 4].try_into().unwrap());
    match leaf {
        1 => {
            let [a, b, c, d] = raw;
            let c = c & !(LEAF1_ECX_VMX | LEAF1_ECX_XSAVE_FAMILY);
            let c = c | LEAF1_ECX_HYPERVISOR | LEAF1_ECX_X2APIC | LEAF1_ECX_TSC_DEADLINE;
            [a, b, c, d]
        }
        7 => {
            let [a, b, c, d] = raw;
            [
                a,
                b & !LEAF7_EBX_HIDDEN,
                c & !LEAF7_ECX_HIDDEN,
                d & !LEAF7_EDX_HIDDEN,
            ]
        }
        0xd => [0; 4],
        0x8000_0007 => {
            let [a, b, c, d] = raw;
            [a, b, c, d | POWER_EDX_INVARIANT_TSC]
        }
        0x4000_0000 => [MAX_HYPERVISOR_LEAF, word(0), word(1), word(2)],
        0x4000_0001 => [abi_version, 0, 0, 0],
        0x4000_0010 => [tsc_khz, tsc_khz, 0, 0],
        0x4000_0002..=0x4000_00ff => [0; 4],
        KVM_BASE => [
            KVM_BASE + 1,
            KVM_SIGNATURE[0],
            KVM_SIGNATURE[1],
            KVM_SIGNATURE[2],
        ],
        // No KVM paravirtual feature, no hint.
        0x4000_0101..=0x4000_01ff => [0; 4],
        0x8000_0001 => {
            let [a, b, c, d] = raw;
            [a, b, c & !EXT1_ECX_SVM, d & !EXT1_EDX_RDTSCP]
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
        assert_eq!(
            c,
            1 | LEAF1_ECX_HYPERVISOR | LEAF1_ECX_X2APIC | LEAF1_ECX_TSC_DEADLINE
        );
        let l = filter(0x4000_0000, [9; 4], 0x10000, 0);
        assert_eq!(l[0], 0x4000_0010);
        assert_eq!(filter(0x4000_0010, [9; 4], 0, 4002), [4002, 4002, 0, 0]);
        let mut sig = [0u8; 12];
        for i in 0..3 {
            sig[i * 4..i * 4 + 4].copy_from_slice(&l[i + 1].to_le_bytes());
        }
        assert_eq!(&sig, SIGNATURE);
        assert_eq!(filter(0x4000_0001, [9; 4], 0x10000, 0), [0x10000, 0, 0, 0]);
        assert_eq!(filter(6, [1, 2, 3, 4], 0, 0), [1, 2, 3, 4]);
        assert_eq!(filter(7, [1, 2, 3, 4], 0, 0), [1, 0, 1, 0]);
    }

    #[test]
    fn timekeeping_and_apic_facts_are_reported() {
        let [_, _, c, _] = filter(1, [0; 4], 0, 0);
        assert_ne!(c & LEAF1_ECX_X2APIC, 0, "x2APIC");
        assert_ne!(c & LEAF1_ECX_TSC_DEADLINE, 0, "TSC-deadline timer");
        let kvm = filter(KVM_BASE, [9; 4], 0, 0);
        let mut sig = [0u8; 12];
        for i in 0..3 {
            sig[i * 4..i * 4 + 4].copy_from_slice(&kvm[i + 1].to_le_bytes());
        }
        assert_eq!(&sig, b"KVMKVMKVM\0\0\0");
        assert_eq!(kvm[0], KVM_BASE + 1);
        assert_eq!(
            filter(KVM_BASE + 1, [9; 4], 0, 0),
            [0; 4],
            "no KVM features"
        );
        let [_, _, _, d] = filter(0x8000_0007, [0; 4], 0, 0);
        assert_ne!(d & POWER_EDX_INVARIANT_TSC, 0, "invariant TSC");
    }

    #[test]
    fn what_the_hypervisor_does_not_switch_is_hidden() {
        let [_, _, c, _] = filter(1, [0, 0, u32::MAX, 0], 0, 0);
        assert_eq!(c & (1 << 26 | 1 << 27 | 1 << 28), 0, "XSAVE, OSXSAVE, AVX");
        let [_, b, c, _] = filter(7, [0, u32::MAX, u32::MAX, 0], 0, 0);
        assert_eq!(b & (1 << 1), 0, "TSC_ADJUST");
        assert_eq!(b & (1 << 5), 0, "AVX2");
        assert_eq!(c & (1 << 16), 0, "LA57");
        assert_ne!(b & (1 << 0), 0, "FSGSBASE stays");
        assert_eq!(filter(0xd, [7; 4], 0, 0), [0; 4]);
    }

    #[test]
    fn svm_hidden() {
        let ext = filter(0x8000_0001, [1, 2, EXT1_ECX_SVM | 1, 4], 0, 0);
        assert_eq!(ext, [1, 2, 1, 4]);
        let ext = filter(0x8000_0001, [0, 0, 0, EXT1_EDX_RDTSCP | 1], 0, 0);
        assert_eq!(
            ext[3], 1,
            "RDTSCP hidden: #UD under VMX without its control"
        );
        assert_eq!(filter(7, [0, 1 << 10, 0, 0], 0, 0)[1], 0, "INVPCID hidden");
        assert_eq!(filter(SVM_LEAF, [1, 16, 0, 0xff], 0, 0), [0; 4]);
    }
}
