//! The VM-execution, VM-exit and VM-entry controls every Septum vCPU runs with, checked against
//! what the CPU allows. Static partitioning wants few exits: a guest owns its CPU, so only HLT,
//! the I/O ports and MSRs it was not given (through bitmaps), CPUID (always), VMCALL and the VMX
//! instructions (always), and EPT violations exit. NMIs exit: the hypervisor kicks a CPU out of its
//! guest (to flush or stop it) with an NMI, which no guest state can mask. External interrupts
//! exit too, acknowledged by the exit, so a stray one never reaches a guest.

use super::caps::{
    AllowedBits, VmxCapabilities, PROC2_ENABLE_EPT, PROC2_ENABLE_VPID, PROC2_UNRESTRICTED_GUEST,
    PROC_ACTIVATE_SECONDARY,
};

/// Pin control: external interrupts cause VM exits.
pub const PIN_EXTERNAL_INTERRUPT_EXITING: u32 = 1 << 0;
/// Pin control: NMIs cause VM exits.
pub const PIN_NMI_EXITING: u32 = 1 << 3;
/// Pin-based control: the VMX-preemption timer counts down in the guest and exits at zero.
pub const PIN_PREEMPTION_TIMER: u32 = 1 << 6;
/// Primary control: exit as soon as the guest can take an external interrupt.
pub const PROC_INTERRUPT_WINDOW: u32 = 1 << 2;
/// Primary control: exit on HLT.
pub const PROC_HLT_EXITING: u32 = 1 << 7;
/// Primary control: consult the I/O bitmaps instead of exiting on every port.
pub const PROC_USE_IO_BITMAPS: u32 = 1 << 25;
/// Primary control: consult the MSR bitmap instead of exiting on every RDMSR/WRMSR.
pub const PROC_USE_MSR_BITMAPS: u32 = 1 << 28;
/// Exit control: the host runs in 64-bit mode.
pub const EXIT_HOST_64: u32 = 1 << 9;
/// Exit control: acknowledge the interrupt that caused the exit and record its vector.
pub const EXIT_ACK_INTERRUPT: u32 = 1 << 15;
/// Exit control: save the guest's IA32_PAT.
pub const EXIT_SAVE_PAT: u32 = 1 << 18;
/// Exit control: load the host's IA32_PAT.
pub const EXIT_LOAD_PAT: u32 = 1 << 19;
/// Exit control: save the guest's IA32_EFER.
pub const EXIT_SAVE_EFER: u32 = 1 << 20;
/// Exit control: load the host's IA32_EFER.
pub const EXIT_LOAD_EFER: u32 = 1 << 21;
/// Entry control: the guest runs in IA-32e mode (long mode).
pub const ENTRY_IA32E_GUEST: u32 = 1 << 9;
/// Entry control: load the guest's IA32_PAT.
pub const ENTRY_LOAD_PAT: u32 = 1 << 14;
/// Entry control: load the guest's IA32_EFER.
pub const ENTRY_LOAD_EFER: u32 = 1 << 15;

/// The five control words of a VMCS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Controls {
    /// Pin-based controls.
    pub pin: u32,
    /// Primary processor-based controls.
    pub proc: u32,
    /// Secondary processor-based controls.
    pub proc2: u32,
    /// VM-exit controls.
    pub exit: u32,
    /// VM-entry controls.
    pub entry: u32,
}

/// Which control word could not be set, and the bits the CPU refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// "pin", "proc", "proc2", "exit" or "entry".
    pub word: &'static str,
    /// Wanted bits the CPU does not allow.
    pub bits: u32,
}

fn adjust(allowed: AllowedBits, wanted: u32, word: &'static str) -> Result<u32, Refused> {
    allowed
        .adjust(wanted)
        .map_err(|bits| Refused { word, bits })
}

impl Controls {
    /// The controls for a vCPU that enters a 64-bit guest (`long_mode`) or a 32-bit/real one,
    /// with EPT (its A/D bits are enabled in the EPTP, not here), VPID and unrestricted guest.
    pub fn for_partition(caps: &VmxCapabilities, long_mode: bool) -> Result<Self, Refused> {
        let proc2 = PROC2_ENABLE_EPT | PROC2_ENABLE_VPID | PROC2_UNRESTRICTED_GUEST;
        let entry =
            ENTRY_LOAD_PAT | ENTRY_LOAD_EFER | if long_mode { ENTRY_IA32E_GUEST } else { 0 };
        // The preemption timer carries vCPUs' virtual-timer deadlines where the CPU has it
        // (the backend falls back to the local APIC timer, an external interrupt, where not).
        let preemption = if caps.pinbased.allows(PIN_PREEMPTION_TIMER) {
            PIN_PREEMPTION_TIMER
        } else {
            0
        };
        Ok(Self {
            pin: adjust(
                caps.pinbased,
                PIN_EXTERNAL_INTERRUPT_EXITING | PIN_NMI_EXITING | preemption,
                "pin",
            )?,
            proc: adjust(
                caps.procbased,
                PROC_HLT_EXITING
                    | PROC_USE_IO_BITMAPS
                    | PROC_USE_MSR_BITMAPS
                    | PROC_ACTIVATE_SECONDARY,
                "proc",
            )?,
            proc2: adjust(caps.procbased2, proc2, "proc2")?,
            exit: adjust(
                caps.exit,
                EXIT_HOST_64
                    | EXIT_ACK_INTERRUPT
                    | EXIT_SAVE_PAT
                    | EXIT_LOAD_PAT
                    | EXIT_SAVE_EFER
                    | EXIT_LOAD_EFER,
                "exit",
            )?,
            entry: adjust(caps.entry, entry, "entry")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmx::caps::VmxMsrs;

    /// Bochs 2.7 `corei7_skylake_x`, from `notes/x86-facts.md`.
    fn skylake_x() -> VmxCapabilities {
        VmxCapabilities::decode(&VmxMsrs {
            feature_control: 5,
            basic: 0x00d8_1000_0000_002b,
            pinbased: 0x0000_007f_0000_0016,
            procbased: 0xf7f9_fffe_0400_6172,
            exit: 0x007f_ffff_0003_6dfb,
            entry: 0x0000_ffff_0000_11fb,
            misc: 0x6004_01e0,
            cr0_fixed0: 0x8000_0021,
            cr0_fixed1: 0xffff_ffff,
            cr4_fixed0: 0x2000,
            cr4_fixed1: 0x3727ff,
            procbased2: 0x0217_7fff_0000_0000,
            ept_vpid_cap: 0x0000_0f01_0633_4141,
            vmfunc: 1,
        })
    }

    #[test]
    fn skylake_x_gets_the_measured_controls_plus_bitmaps() {
        let c = Controls::for_partition(&skylake_x(), true).unwrap();
        assert_eq!(c.pin, 0x1f | PIN_PREEMPTION_TIMER);
        assert_eq!(
            c.proc,
            0x0400_6172 | 0x8000_0000 | 1 << 28 | 1 << 25 | 1 << 7
        );
        assert_eq!(c.proc2, 0xa2);
        assert_eq!(c.exit, 0x0003_6dfb | 0x003c_8200);
        assert_eq!(c.entry, 0x11fb | 1 << 9 | 1 << 14 | 1 << 15);
    }

    #[test]
    fn a_cpu_without_unrestricted_guest_is_refused() {
        let mut caps = skylake_x();
        caps.procbased2.may_be_one &= !PROC2_UNRESTRICTED_GUEST;
        assert_eq!(
            Controls::for_partition(&caps, true),
            Err(Refused {
                word: "proc2",
                bits: PROC2_UNRESTRICTED_GUEST
            })
        );
    }
}
