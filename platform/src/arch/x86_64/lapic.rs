//! The calling CPU's local APIC, in xAPIC mode at its architectural page. A leaf of the x86
//! modules: the timer, the I/O APIC's interrupt handler, CPU start-up, kicks and the VMX vCPU's
//! end of an acknowledged interrupt all reach the same registers, and none of them should need
//! another of them to do it.

use crate::arch::{Current, Machine};
use arch_x86::apic::{xapic_base_phys, LocalApic};

/// The calling CPU's local APIC.
pub fn local_apic() -> LocalApic {
    // SAFETY: the xAPIC page is below 4 GiB, identity-mapped, and used for nothing else.
    unsafe { LocalApic::new(Current::phys_to_virt(xapic_base_phys())) }
}
