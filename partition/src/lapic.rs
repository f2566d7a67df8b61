//! The virtual local APIC of a vCPU, for x86 guests that program interrupts the hardware way,
//! on the delivery side: the vector its APIC picks is injected through the guest's own IDT
//! (`next_vector`, `vector_injected`, called by the exit handler before each entry) from the
//! same per-vCPU machinery as the upcall ABI (the vCPU's one timer in `vintr`, the pending state
//! in its `VcpuSlot`). The guest's register accesses (x2APIC MSRs, IPIs, INIT/STARTUP, the
//! timer) are `apic_msrs`.

use crate::arch::PartitionArch;
use crate::vintr::{TimerOwner, VirtualInterrupts};
use core::sync::atomic::Ordering;

/// CPUID as vCPU `index` sees it: its APIC ID where CPUID reports one (leaf 1 EBX 31:24, the
/// x2APIC ID in EDX of leaves 0xb and 0x1f), the rest as the arch answered.
pub fn with_apic_id(leaf: u32, regs: [u32; 4], index: u32) -> [u32; 4] {
    let [a, b, c, d] = regs;
    match leaf {
        1 => [a, (b & 0x00ff_ffff) | (index << 24), c, d],
        0xb | 0x1f => [a, b, c, index],
        _ => regs,
    }
}

impl<A: PartitionArch> VirtualInterrupts<A> {
    /// The vector to inject before the next entry, if the guest's APIC has one to deliver.
    pub fn next_vector(&self) -> Option<u8> {
        if !self.apic.enabled() {
            return None;
        }
        self.apic.next_vector(&self.slot().vectors())
    }

    /// `vector` was injected: in service now, and counted (device line, timer or IPI) with its
    /// latency.
    pub fn vector_injected(&mut self, vector: u8) {
        let slot = self.slot();
        slot.clear_vector(vector);
        self.apic.accept(vector);
        let now = A::now();
        if let Some(at) = slot.take_device_vector(vector) {
            slot.device_irqs.fetch_add(1, Ordering::Relaxed);
            slot.device_latency.record(now.wrapping_sub(at));
        } else if self.timer_for == TimerOwner::Apic && self.apic.timer_vector() == Some(vector) {
            slot.timer_irqs.fetch_add(1, Ordering::Relaxed);
            slot.timer_latency.record(now.wrapping_sub(self.fired));
            self.release_timer();
        } else {
            let (_, at) = slot.ipi_source();
            slot.ipi_irqs.fetch_add(1, Ordering::Relaxed);
            slot.ipi_latency.record(now.wrapping_sub(at));
        }
    }
}
