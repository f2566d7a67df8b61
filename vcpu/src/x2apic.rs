//! A partition vCPU's local APIC in x2APIC mode, as a register model: what a guest reads from
//! and writes to MSRs 0x800-0x8ff, and what each write asks the hypervisor to do (program the
//! timer, send an IPI, INIT or start a vCPU, end an interrupt). The model holds the registers and
//! the in-service vectors of one vCPU; the requested vectors (the IRR) live with the caller,
//! because other vCPUs raise them from other CPUs. Nothing here knows a CPU or a partition: the
//! caller checks that a destination is one of the partition's vCPUs and refuses the rest.
//!
//! Identity: a vCPU's APIC ID is its index in its partition (vCPU k has APIC ID k, and the
//! partition's boot vCPU is 0), so destinations name vCPUs of the same partition and nothing
//! else. The timer counts at the rate the hypervisor reports to the guest (CPUID leaf
//! 0x4000_0010 EBX, in kHz) divided by the divide configuration. Supported: one-shot, periodic
//! and TSC-deadline timer modes (IA32_TSC_DEADLINE, MSR 0x6e0, in counter ticks: the hypervisor's
//! counter is the TSC the guest reads), fixed IPIs (physical destination or shorthand), INIT,
//! STARTUP, EOI, TPR, SELF IPI. Refused with a reason (the guest continues, the write has no
//! effect): the reserved timer mode 3, logical destinations, NMI/SMI/lowest-priority IPIs, writes
//! to read-only registers.

/// The first and last x2APIC MSR.
pub const MSR_FIRST: u32 = 0x800;
pub const MSR_LAST: u32 = 0x8ff;

/// The x2APIC registers' MSR numbers (Intel SDM vol. 3, table 11-6), for the model and for
/// whoever drives it (the fuzz target).
pub mod msr {
    pub const ID: u32 = 0x802;
    pub const VERSION: u32 = 0x803;
    pub const TPR: u32 = 0x808;
    pub const PPR: u32 = 0x80a;
    pub const EOI: u32 = 0x80b;
    pub const LDR: u32 = 0x80d;
    pub const SVR: u32 = 0x80f;
    pub const ISR0: u32 = 0x810;
    pub const TMR0: u32 = 0x818;
    pub const IRR0: u32 = 0x820;
    pub const ESR: u32 = 0x828;
    pub const LVT_CMCI: u32 = 0x82f;
    pub const ICR: u32 = 0x830;
    pub const LVT_TIMER: u32 = 0x832;
    pub const LVT_ERROR: u32 = 0x837;
    pub const TIMER_INITIAL: u32 = 0x838;
    pub const TIMER_CURRENT: u32 = 0x839;
    pub const TIMER_DIVIDE: u32 = 0x83e;
    pub const SELF_IPI: u32 = 0x83f;
}
use msr::*;

/// Version register: version 0x14 (integrated APIC), 6 LVT entries (max index 5), no EOI
/// broadcast suppression.
pub const VERSION_VALUE: u64 = 0x0005_0014;
/// LVT mask bit.
pub const LVT_MASKED: u32 = 1 << 16;
const LVT_TIMER_MODE_SHIFT: u32 = 17;
/// LVT timer mode 2: TSC-deadline.
const MODE_TSC_DEADLINE: u32 = 2;

/// Whether `msr` is one of the x2APIC registers.
pub const fn is_x2apic_msr(msr: u32) -> bool {
    msr >= MSR_FIRST && msr <= MSR_LAST
}

/// Who an IPI goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// The vCPU with this APIC ID (= index in the partition).
    Vcpu(u32),
    /// The sender.
    ToSelf,
    /// Every vCPU of the partition, the sender included.
    All,
    /// Every vCPU of the partition but the sender.
    Others,
}

impl Destination {
    /// The vCPUs an IPI from vCPU `me` of a partition with `vcpus` vCPUs reaches, in index
    /// order; `Err(i)` if the destination names vCPU `i`, which the partition does not have (the
    /// caller refuses the IPI). Every index it yields is below `vcpus`, so the caller's routing
    /// cannot leave the partition.
    pub fn targets(self, me: u32, vcpus: u32) -> Result<impl Iterator<Item = u32>, u32> {
        if let Destination::Vcpu(i) = self {
            if i >= vcpus {
                return Err(i);
            }
        }
        Ok((0..vcpus).filter(move |&i| match self {
            Destination::Vcpu(t) => t == i,
            Destination::ToSelf => i == me,
            Destination::All => true,
            Destination::Others => i != me,
        }))
    }
}

/// What a register write asks of the hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Nothing beyond the register's new value.
    None,
    /// The timer starts counting down `ticks` timer-clock ticks (TMICT times the divisor), once
    /// or periodically; 0 stops it.
    Timer { ticks: u64, periodic: bool },
    /// A fixed interrupt `vector` for `to`.
    Ipi { to: Destination, vector: u8 },
    /// INIT: the destination resets and waits for a STARTUP.
    Init { to: Destination },
    /// STARTUP: the destination starts in real mode at `vector << 12`.
    Startup { to: Destination, vector: u8 },
    /// End of interrupt: the highest in-service vector is done.
    Eoi { vector: Option<u8> },
    /// The write was not carried out: why.
    Refused(&'static str),
}

/// What a read needs from outside the model.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadContext {
    /// The vCPU's requested vectors (IRR), 256 bits.
    pub irr: [u64; 4],
    /// Timer-clock ticks left in the current countdown (0 when stopped or expired).
    pub timer_left: u64,
}

/// Errors a real x2APIC answers with #GP; the caller decides what the guest sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApicError {
    /// No such register in x2APIC mode.
    NoSuchRegister,
}

/// One vCPU's x2APIC registers.
#[derive(Clone, Debug)]
pub struct X2Apic {
    id: u32,
    tpr: u8,
    svr: u32,
    esr: u32,
    icr: u64,
    /// LVT entries CMCI (0x82f) and timer..error (0x832-0x837).
    lvt_cmci: u32,
    lvt: [u32; 6],
    initial: u32,
    divide: u32,
    /// IA32_TSC_DEADLINE as last written in TSC-deadline mode.
    deadline: u64,
    isr: [u64; 4],
}

fn bit_set(v: &[u64; 4], vector: u8) -> bool {
    v[usize::from(vector >> 6)] & (1 << (vector & 63)) != 0
}

/// The highest vector set in `v`.
pub fn highest(v: &[u64; 4]) -> Option<u8> {
    (0..4)
        .rev()
        .find(|&i| v[i] != 0)
        .map(|i| (i as u32 * 64 + 63 - v[i].leading_zeros()) as u8)
}

impl X2Apic {
    /// The APIC of vCPU `id` after reset: every LVT masked, software-disabled.
    pub fn new(id: u32) -> Self {
        Self {
            id,
            tpr: 0,
            svr: 0xff,
            esr: 0,
            icr: 0,
            lvt_cmci: LVT_MASKED,
            lvt: [LVT_MASKED; 6],
            initial: 0,
            divide: 0,
            deadline: 0,
            isr: [0; 4],
        }
    }

    /// The timer's LVT entry.
    pub fn lvt_timer(&self) -> u32 {
        self.lvt[0]
    }

    /// The vector the timer raises, if its LVT entry is unmasked and the APIC software-enabled.
    pub fn timer_vector(&self) -> Option<u8> {
        let lvt = self.lvt_timer();
        (lvt & LVT_MASKED == 0 && self.enabled() && lvt as u8 >= 16).then_some(lvt as u8)
    }

    fn timer_mode(&self) -> u32 {
        (self.lvt_timer() >> LVT_TIMER_MODE_SHIFT) & 3
    }

    /// Whether the timer is in TSC-deadline mode.
    pub fn deadline_mode(&self) -> bool {
        self.timer_mode() == MODE_TSC_DEADLINE
    }

    /// A guest RDMSR of IA32_TSC_DEADLINE: the armed deadline (0 outside TSC-deadline mode).
    pub fn tsc_deadline(&self) -> u64 {
        if self.deadline_mode() {
            self.deadline
        } else {
            0
        }
    }

    /// A guest WRMSR of IA32_TSC_DEADLINE at counter value `now`: in TSC-deadline mode it arms
    /// the one-shot timer for that counter value (at once if it has passed) or, written 0,
    /// disarms it; outside that mode the write does nothing, as on hardware.
    pub fn write_tsc_deadline(&mut self, value: u64, now: u64) -> Effect {
        if !self.deadline_mode() {
            return Effect::None;
        }
        self.deadline = value;
        Effect::Timer {
            ticks: if value == 0 {
                0
            } else {
                value.saturating_sub(now).max(1)
            },
            periodic: false,
        }
    }

    /// Whether the guest software-enabled the APIC (SVR bit 8).
    pub fn enabled(&self) -> bool {
        self.svr & (1 << 8) != 0
    }

    /// The divisor the divide configuration selects (1 to 128).
    pub fn divisor(&self) -> u64 {
        let code = (self.divide & 3) | ((self.divide >> 1) & 4);
        if code == 7 {
            1
        } else {
            2 << code
        }
    }

    fn priority_class(&self) -> u8 {
        let isr = highest(&self.isr).map_or(0, |v| v >> 4);
        isr.max(self.tpr >> 4)
    }

    /// The vector to deliver now from the requested set `irr`: the highest one whose priority
    /// class is above both the task priority and every vector in service.
    pub fn next_vector(&self, irr: &[u64; 4]) -> Option<u8> {
        let v = highest(irr)?;
        (v >> 4 > self.priority_class()).then_some(v)
    }

    /// `vector` was delivered: it is in service until the guest's EOI.
    pub fn accept(&mut self, vector: u8) {
        self.isr[usize::from(vector >> 6)] |= 1 << (vector & 63);
    }

    /// Whether `vector` is in service.
    pub fn in_service(&self, vector: u8) -> bool {
        bit_set(&self.isr, vector)
    }

    /// A guest RDMSR of `msr`.
    pub fn read(&self, msr: u32, ctx: &ReadContext) -> Result<u64, ApicError> {
        let chunk = |v: &[u64; 4], first: u32| {
            let i = (msr - first) as usize;
            (v[i / 2] >> ((i % 2) * 32)) & 0xffff_ffff
        };
        Ok(match msr {
            ID => u64::from(self.id),
            VERSION => VERSION_VALUE,
            TPR => u64::from(self.tpr),
            PPR => u64::from(self.priority_class() << 4),
            LDR => u64::from(((self.id >> 4) << 16) | (1 << (self.id & 0xf))),
            SVR => u64::from(self.svr),
            ISR0..=0x817 => chunk(&self.isr, ISR0),
            TMR0..=0x81f => 0,
            IRR0..=0x827 => chunk(&ctx.irr, IRR0),
            ESR => u64::from(self.esr),
            LVT_CMCI => u64::from(self.lvt_cmci),
            ICR => self.icr,
            LVT_TIMER..=LVT_ERROR => u64::from(self.lvt[(msr - LVT_TIMER) as usize]),
            TIMER_INITIAL => u64::from(self.initial),
            // The countdown is kept in timer-clock ticks, so a divide change mid-count rescales
            // what this reads (a real APIC keeps the count and changes its rate); guests set the
            // divisor before they start the timer.
            TIMER_CURRENT => (ctx.timer_left / self.divisor()).min(u64::from(u32::MAX)),
            TIMER_DIVIDE => u64::from(self.divide),
            _ => return Err(ApicError::NoSuchRegister),
        })
    }

    /// A guest WRMSR of `value` to `msr`.
    pub fn write(&mut self, msr: u32, value: u64) -> Result<Effect, ApicError> {
        let low = value as u32;
        Ok(match msr {
            TPR => {
                self.tpr = low as u8;
                Effect::None
            }
            EOI => {
                let vector = highest(&self.isr);
                if let Some(v) = vector {
                    self.isr[usize::from(v >> 6)] &= !(1 << (v & 63));
                }
                Effect::Eoi { vector }
            }
            SVR => {
                self.svr = low & 0x1ff;
                Effect::None
            }
            ESR => {
                self.esr = 0;
                Effect::None
            }
            LVT_CMCI => {
                self.lvt_cmci = low;
                Effect::None
            }
            ICR => {
                self.icr = value;
                decode_icr(value)
            }
            LVT_TIMER => {
                let mode = (low >> LVT_TIMER_MODE_SHIFT) & 3;
                if mode == 3 {
                    return Ok(Effect::Refused("timer mode 3 is reserved"));
                }
                let was_deadline = self.deadline_mode();
                self.lvt[0] = low & (0xff | LVT_MASKED | (3 << LVT_TIMER_MODE_SHIFT));
                if was_deadline != (mode == MODE_TSC_DEADLINE) {
                    // Entering or leaving TSC-deadline mode disarms the timer.
                    self.deadline = 0;
                    self.initial = 0;
                    Effect::Timer {
                        ticks: 0,
                        periodic: false,
                    }
                } else {
                    Effect::None
                }
            }
            0x833..=LVT_ERROR => {
                self.lvt[(msr - LVT_TIMER) as usize] = low;
                Effect::None
            }
            // The initial count is not used in TSC-deadline mode.
            TIMER_INITIAL if self.deadline_mode() => Effect::None,
            TIMER_INITIAL => {
                self.initial = low;
                Effect::Timer {
                    ticks: u64::from(low) * self.divisor(),
                    periodic: (self.lvt_timer() >> LVT_TIMER_MODE_SHIFT) & 3 == 1,
                }
            }
            TIMER_DIVIDE => {
                self.divide = low & 0xb;
                Effect::None
            }
            SELF_IPI => fixed(Destination::ToSelf, low as u8),
            ID | VERSION | PPR | LDR | ISR0..=0x827 | TIMER_CURRENT => {
                Effect::Refused("the register is read-only")
            }
            _ => return Err(ApicError::NoSuchRegister),
        })
    }
}

fn fixed(to: Destination, vector: u8) -> Effect {
    if vector < 16 {
        Effect::Refused("vectors below 16 are reserved")
    } else {
        Effect::Ipi { to, vector }
    }
}

/// What an ICR write sends (SDM Vol. 3A §11.12.9: 64-bit ICR in x2APIC mode).
fn decode_icr(icr: u64) -> Effect {
    let vector = icr as u8;
    let mode = (icr >> 8) & 7;
    let logical = icr & (1 << 11) != 0;
    let assert = icr & (1 << 14) != 0;
    let to = match (icr >> 18) & 3 {
        0 => Destination::Vcpu((icr >> 32) as u32),
        1 => Destination::ToSelf,
        2 => Destination::All,
        _ => Destination::Others,
    };
    if logical && matches!(to, Destination::Vcpu(_)) {
        return Effect::Refused("logical destinations are not offered");
    }
    match mode {
        0 => fixed(to, vector),
        5 if !assert => Effect::None, // INIT level de-assert: nothing to do
        5 if to == Destination::ToSelf => Effect::Refused("INIT to self"),
        5 => Effect::Init { to },
        6 if to == Destination::ToSelf => Effect::Refused("STARTUP to self"),
        6 => Effect::Startup { to, vector },
        1 => Effect::Refused("lowest-priority delivery is not offered"),
        2 => Effect::Refused("SMI IPIs are refused"),
        4 => Effect::Refused("NMI IPIs are not offered"),
        _ => Effect::Refused("reserved delivery mode"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn enabled(id: u32) -> X2Apic {
        let mut a = X2Apic::new(id);
        a.write(SVR, 0x1ff).unwrap();
        a
    }

    #[test]
    fn identity_and_read_only_registers() {
        let a = X2Apic::new(3);
        let ctx = ReadContext::default();
        assert_eq!(a.read(ID, &ctx), Ok(3));
        assert_eq!(a.read(LDR, &ctx), Ok(1 << 3));
        assert_eq!(a.read(VERSION, &ctx), Ok(VERSION_VALUE));
        let mut a = a;
        assert!(matches!(a.write(ID, 0), Ok(Effect::Refused(_))));
        assert_eq!(a.write(0x800, 0), Err(ApicError::NoSuchRegister));
        assert_eq!(a.read(0x831, &ctx), Err(ApicError::NoSuchRegister));
        assert!(is_x2apic_msr(0x80b) && !is_x2apic_msr(0x1b) && !is_x2apic_msr(0x900));
    }

    #[test]
    fn timer_modes_divisor_and_count() {
        let mut a = enabled(0);
        a.write(TIMER_DIVIDE, 0b1011).unwrap();
        assert_eq!(a.divisor(), 1);
        a.write(TIMER_DIVIDE, 0b0011).unwrap();
        assert_eq!(a.divisor(), 16);
        a.write(TIMER_DIVIDE, 0b1010).unwrap();
        assert_eq!(a.divisor(), 128);
        a.write(LVT_TIMER, 0x30 | (1 << 17)).unwrap();
        assert_eq!(a.timer_vector(), Some(0x30));
        assert_eq!(
            a.write(TIMER_INITIAL, 1000),
            Ok(Effect::Timer {
                ticks: 128_000,
                periodic: true
            })
        );
        let ctx = ReadContext {
            timer_left: 1280,
            ..Default::default()
        };
        assert_eq!(a.read(TIMER_CURRENT, &ctx), Ok(10));
        a.write(LVT_TIMER, u64::from(0x30 | LVT_MASKED)).unwrap();
        assert_eq!(a.timer_vector(), None);
        assert!(matches!(
            a.write(LVT_TIMER, 0x30 | (3 << 17)),
            Ok(Effect::Refused(_))
        ));
        // A software-disabled APIC raises nothing.
        let mut b = X2Apic::new(1);
        b.write(LVT_TIMER, 0x30).unwrap();
        assert_eq!(b.timer_vector(), None);
    }

    #[test]
    fn tsc_deadline_mode_arms_from_the_deadline_msr() {
        let mut a = enabled(0);
        // Outside deadline mode a deadline write does nothing and reads back 0.
        assert_eq!(a.write_tsc_deadline(5000, 100), Effect::None);
        assert_eq!(a.tsc_deadline(), 0);
        let off = Effect::Timer {
            ticks: 0,
            periodic: false,
        };
        assert_eq!(a.write(LVT_TIMER, 0xec | (2 << 17)), Ok(off));
        assert!(a.deadline_mode());
        assert_eq!(a.timer_vector(), Some(0xec));
        assert_eq!(
            a.write_tsc_deadline(5000, 100),
            Effect::Timer {
                ticks: 4900,
                periodic: false
            }
        );
        assert_eq!(a.tsc_deadline(), 5000);
        // A deadline already past fires at once; 0 disarms.
        assert_eq!(
            a.write_tsc_deadline(50, 100),
            Effect::Timer {
                ticks: 1,
                periodic: false
            }
        );
        assert_eq!(a.write_tsc_deadline(0, 100), off);
        // The initial count is ignored in this mode; leaving it disarms.
        assert_eq!(a.write(TIMER_INITIAL, 1000), Ok(Effect::None));
        assert_eq!(a.write(LVT_TIMER, 0xec), Ok(off));
        assert!(!a.deadline_mode());
        assert_eq!(a.write(LVT_TIMER, 0xec | (1 << 17)), Ok(Effect::None));
    }

    #[test]
    fn icr_decodes_fixed_init_startup_and_refuses_the_rest() {
        let mut a = enabled(0);
        assert_eq!(
            a.write(ICR, (2 << 32) | 0x31),
            Ok(Effect::Ipi {
                to: Destination::Vcpu(2),
                vector: 0x31
            })
        );
        assert_eq!(
            a.write(ICR, (1 << 32) | (5 << 8) | (1 << 14)),
            Ok(Effect::Init {
                to: Destination::Vcpu(1)
            })
        );
        assert_eq!(
            a.write(ICR, (1 << 32) | (5 << 8) | (1 << 15)),
            Ok(Effect::None)
        );
        assert_eq!(
            a.write(ICR, (1 << 32) | (6 << 8) | (1 << 14) | 0x08),
            Ok(Effect::Startup {
                to: Destination::Vcpu(1),
                vector: 8
            })
        );
        assert_eq!(
            a.write(ICR, (3 << 18) | 0x40),
            Ok(Effect::Ipi {
                to: Destination::Others,
                vector: 0x40
            })
        );
        for bad in [
            (1 << 32) | (4 << 8),
            (1 << 32) | (1 << 11) | 0x31,
            (1 << 32) | 0x05,
            (1 << 18) | (5 << 8) | (1 << 14),
        ] {
            assert!(
                matches!(a.write(ICR, bad), Ok(Effect::Refused(_))),
                "{bad:#x}"
            );
        }
        assert_eq!(
            a.write(SELF_IPI, 0x41),
            Ok(Effect::Ipi {
                to: Destination::ToSelf,
                vector: 0x41
            })
        );
    }

    #[test]
    fn destinations_stay_inside_the_partition() {
        let of = |to: Destination, me| to.targets(me, 4).map(|t| t.collect::<Vec<_>>());
        assert_eq!(of(Destination::Vcpu(3), 0), Ok(vec![3]));
        assert_eq!(of(Destination::Vcpu(4), 0), Err(4));
        assert_eq!(of(Destination::Vcpu(u32::MAX), 1), Err(u32::MAX));
        assert_eq!(of(Destination::ToSelf, 2), Ok(vec![2]));
        assert_eq!(of(Destination::All, 2), Ok(vec![0, 1, 2, 3]));
        assert_eq!(of(Destination::Others, 2), Ok(vec![0, 1, 3]));
    }

    #[test]
    fn priorities_in_service_and_eoi() {
        let mut a = enabled(0);
        let mut irr = [0u64; 4];
        irr[0] |= 1 << 0x31;
        irr[0] |= 1 << 0x30;
        assert_eq!(a.next_vector(&irr), Some(0x31));
        a.accept(0x31);
        // Same priority class as the one in service: waits for its EOI.
        irr[0] &= !(1 << 0x31);
        assert_eq!(a.next_vector(&irr), None);
        // A higher class preempts.
        irr[1] |= 1 << (0x45 - 64);
        assert_eq!(a.next_vector(&irr), Some(0x45));
        assert_eq!(a.write(EOI, 0), Ok(Effect::Eoi { vector: Some(0x31) }));
        assert!(!a.in_service(0x31));
        assert_eq!(a.write(EOI, 0), Ok(Effect::Eoi { vector: None }));
        // TPR masks its class and below.
        a.write(TPR, 0x50).unwrap();
        assert_eq!(a.next_vector(&irr), None);
        let ctx = ReadContext {
            irr,
            ..Default::default()
        };
        assert_eq!(a.read(IRR0 + 2, &ctx), Ok(1 << (0x45 - 64)));
        assert_eq!(a.read(PPR, &ctx), Ok(0x50));
        assert_eq!(highest(&[0, 0, 0, 1 << 63]), Some(255));
        assert_eq!(highest(&[0; 4]), None);
    }
}
