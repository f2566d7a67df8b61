//! The calling CPU's local APIC, in xAPIC (MMIO) or x2APIC (MSR) mode, whichever the firmware left
//! enabled: its ID (to tell CPUs apart) and the inter-processor interrupts that start other CPUs
//! (INIT, then STARTUP twice, as the Intel SDM's MP initialization protocol describes), plus the
//! NMI that makes another CPU leave its guest and the end-of-interrupt for any interrupt that does.

use crate::msr::{rdmsr, wrmsr, IA32_APIC_BASE};

const APIC_BASE_X2APIC: u64 = 1 << 10;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// xAPIC register offsets (bytes); the x2APIC MSR is `0x800 + offset / 16`.
const REG_ID: usize = 0x20;
const REG_EOI: usize = 0xb0;
const REG_SVR: usize = 0xf0;
const REG_ICR_LOW: usize = 0x300;
const REG_ICR_HIGH: usize = 0x310;
const REG_LVT_TIMER: usize = 0x320;
const REG_TIMER_INITIAL: usize = 0x380;
const REG_TIMER_CURRENT: usize = 0x390;
const REG_TIMER_DIVIDE: usize = 0x3e0;
/// LVT mask bit; a masked LVT timer still counts but raises nothing.
const LVT_MASKED: u32 = 1 << 16;
/// Divide configuration 0b1011: the timer counts at the bus clock itself.
const DIVIDE_BY_1: u32 = 0b1011;
const X2APIC_MSR_BASE: u32 = 0x800;

const ICR_DELIVERY_PENDING: u32 = 1 << 12;
const ICR_LEVEL_ASSERT: u32 = 1 << 14;
const ICR_TRIGGER_LEVEL: u32 = 1 << 15;
const ICR_MODE_NMI: u32 = 0b100 << 8;
const ICR_MODE_INIT: u32 = 0b101 << 8;
const ICR_MODE_STARTUP: u32 = 0b110 << 8;
const SVR_ENABLE: u32 = 1 << 8;

/// The physical base of the xAPIC registers, as IA32_APIC_BASE says.
pub fn xapic_base_phys() -> u64 {
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; reading it has no side effect.
    unsafe { rdmsr(IA32_APIC_BASE) & APIC_BASE_ADDR_MASK }
}

/// Access to the calling CPU's local APIC.
#[derive(Clone, Copy, Debug)]
pub enum LocalApic {
    /// Registers in memory at this (mapped) address.
    XApic {
        /// Virtual address of the register page.
        base: usize,
    },
    /// Registers in MSRs 0x800-0x8ff.
    X2Apic,
}

impl LocalApic {
    /// The APIC in the mode the firmware left it. `mapped_base` is where the hypervisor reaches
    /// the xAPIC page whose physical address is [`xapic_base_phys`].
    ///
    /// # Safety
    /// `mapped_base` must map the xAPIC page uncached (or as the firmware's MTRRs make it) and be
    /// used for nothing else.
    pub unsafe fn new(mapped_base: usize) -> Self {
        // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU.
        let msr = unsafe { rdmsr(IA32_APIC_BASE) };
        if msr & APIC_BASE_ENABLE != 0 && msr & APIC_BASE_X2APIC != 0 {
            Self::X2Apic
        } else {
            Self::XApic { base: mapped_base }
        }
    }

    fn read(&self, reg: usize) -> u32 {
        match *self {
            // SAFETY: `base` maps the APIC page (contract of `new`); the offset is a register.
            Self::XApic { base } => unsafe { ((base + reg) as *const u32).read_volatile() },
            // SAFETY: x2APIC mode is on, so the register's MSR exists.
            Self::X2Apic => unsafe { rdmsr(X2APIC_MSR_BASE + (reg as u32 >> 4)) as u32 },
        }
    }

    fn write(&self, reg: usize, value: u32) {
        match *self {
            // SAFETY: as in `read`; APIC registers take 32-bit writes.
            Self::XApic { base } => unsafe { ((base + reg) as *mut u32).write_volatile(value) },
            // SAFETY: x2APIC mode is on, so the register's MSR exists.
            Self::X2Apic => unsafe { wrmsr(X2APIC_MSR_BASE + (reg as u32 >> 4), u64::from(value)) },
        }
    }

    /// This CPU's APIC ID.
    pub fn id(&self) -> u32 {
        match self {
            Self::XApic { .. } => self.read(REG_ID) >> 24,
            Self::X2Apic => self.read(REG_ID),
        }
    }

    /// Software-enables the APIC (spurious vector 0xff) so it sends IPIs on every implementation;
    /// with interrupts off nothing is delivered to this CPU.
    pub fn software_enable(&self) {
        let svr = self.read(REG_SVR);
        self.write(REG_SVR, svr | SVR_ENABLE | 0xff);
    }

    /// Sends one IPI and waits (bounded) until the APIC has sent it. Returns false if the
    /// delivery never completed.
    fn send_ipi(&self, apic_id: u32, command: u32) -> bool {
        match self {
            Self::XApic { .. } => {
                self.write(REG_ICR_HIGH, apic_id << 24);
                self.write(REG_ICR_LOW, command);
                for _ in 0..1_000_000 {
                    if self.read(REG_ICR_LOW) & ICR_DELIVERY_PENDING == 0 {
                        return true;
                    }
                    core::hint::spin_loop();
                }
                false
            }
            Self::X2Apic => {
                // x2APIC ICR is one 64-bit MSR and has no delivery-pending bit to wait for.
                // SAFETY: x2APIC mode is on, so the ICR MSR exists.
                unsafe {
                    wrmsr(
                        X2APIC_MSR_BASE + 0x30,
                        (u64::from(apic_id) << 32) | u64::from(command),
                    )
                };
                true
            }
        }
    }

    /// Sends an NMI to `apic_id`.
    pub fn send_nmi(&self, apic_id: u32) -> bool {
        self.send_ipi(apic_id, ICR_MODE_NMI | ICR_LEVEL_ASSERT)
    }

    /// Signals the end of the interrupt being serviced (a no-op when none is in service).
    pub fn eoi(&self) {
        self.write(REG_EOI, 0);
    }

    /// Asserts INIT on `apic_id`: the target resets and waits for a STARTUP IPI.
    pub fn send_init(&self, apic_id: u32) -> bool {
        self.send_ipi(
            apic_id,
            ICR_MODE_INIT | ICR_LEVEL_ASSERT | ICR_TRIGGER_LEVEL,
        )
    }

    /// De-asserts INIT (needed by old discrete APICs, ignored by newer ones).
    pub fn send_init_deassert(&self, apic_id: u32) -> bool {
        self.send_ipi(apic_id, ICR_MODE_INIT | ICR_TRIGGER_LEVEL)
    }

    /// Sends STARTUP: the target starts in real mode at `vector << 12` (CS = vector << 8, IP = 0).
    pub fn send_startup(&self, apic_id: u32, vector: u8) -> bool {
        self.send_ipi(
            apic_id,
            ICR_MODE_STARTUP | ICR_LEVEL_ASSERT | u32::from(vector),
        )
    }

    /// Starts a one-shot countdown of `ticks` timer ticks (divide by 1) that raises `vector`
    /// on this CPU when it reaches zero. 0 ticks stops the timer.
    pub fn timer_oneshot(&self, vector: u8, ticks: u32) {
        self.write(REG_TIMER_DIVIDE, DIVIDE_BY_1);
        // One-shot mode (bits 18:17 = 0), unmasked.
        self.write(REG_LVT_TIMER, u32::from(vector));
        self.write(REG_TIMER_INITIAL, ticks);
    }

    /// Stops the timer and masks its LVT entry.
    pub fn timer_stop(&self) {
        self.write(REG_TIMER_INITIAL, 0);
        self.write(REG_LVT_TIMER, LVT_MASKED);
    }

    /// The countdown's current value (0 once it has ended).
    pub fn timer_current(&self) -> u32 {
        self.read(REG_TIMER_CURRENT)
    }

    /// Starts a masked countdown from `ticks`, for calibration against another clock.
    pub fn timer_start_masked(&self, ticks: u32) {
        self.write(REG_TIMER_DIVIDE, DIVIDE_BY_1);
        self.write(REG_LVT_TIMER, LVT_MASKED);
        self.write(REG_TIMER_INITIAL, ticks);
    }
}
