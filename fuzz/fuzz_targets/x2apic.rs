//! Fuzz target: the x2APIC register model (`vcpu::x2apic`), one per vCPU of a partition of 1-8
//! vCPUs, driven the way the platform drives it (`partition/src/lapic.rs`): guest RDMSR
//! and WRMSR of any register 0x800-0x8ff, injection of the vector the model picks, and timer
//! expiries, with the requested vectors (IRR) kept here as the platform keeps them per vCPU.
//! After every step:
//! * a refused or unknown write changes no register (an ICR write keeps its value, as on a real
//!   APIC, and only that);
//! * an accepted write reads back as written, within the register's writable bits;
//! * an IPI carries a vector of 16 or more and reaches exactly the vCPUs its destination names
//!   (`Destination::targets`, which the platform routes with); one naming a vCPU outside the
//!   partition is refused, and no vCPU outside the partition ever gets a vector;
//! * the in-service set read through the ISR registers is the set of delivered vectors not yet
//!   ended, an EOI ends the highest of them, and PPR is the higher of TPR's class and the highest
//!   in-service class;
//! * the vector picked for delivery is the highest requested one and above PPR's class, and
//!   nothing below 16 is ever requested or in service;
//! * the identity registers read as the vCPU's index.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vcpu::x2apic::{highest, ApicError, Destination, Effect, ReadContext, X2Apic, MSR_FIRST};

use vcpu::x2apic::msr::{
    EOI, ESR, ICR, IRR0, ISR0, LDR, LVT_CMCI, LVT_ERROR, LVT_TIMER, PPR, SVR, TIMER_CURRENT,
    TIMER_DIVIDE, TIMER_INITIAL, TPR,
};

/// Slots past the partition's vCPUs stand for vCPUs of other partitions: they must stay empty.
const SLOTS: usize = 16;

struct Vcpu {
    apic: X2Apic,
    irr: [u64; 4],
    /// Delivered and not yet ended, as this caller saw it.
    isr: [u64; 4],
    timer_left: u64,
}

fn set(v: &mut [u64; 4], vector: u8) {
    v[usize::from(vector >> 6)] |= 1 << (vector & 63);
}

fn clear(v: &mut [u64; 4], vector: u8) {
    v[usize::from(vector >> 6)] &= !(1 << (vector & 63));
}

fn has(v: &[u64; 4], vector: u8) -> bool {
    v[usize::from(vector >> 6)] & (1 << (vector & 63)) != 0
}

impl Vcpu {
    fn ctx(&self) -> ReadContext {
        ReadContext {
            irr: self.irr,
            timer_left: self.timer_left,
        }
    }

    fn read(&self, msr: u32) -> Result<u64, ApicError> {
        self.apic.read(msr, &self.ctx())
    }

    /// Every register as the guest reads it.
    fn registers(&self) -> Vec<Result<u64, ApicError>> {
        (MSR_FIRST..=0x8ff).map(|m| self.read(m)).collect()
    }

    fn check(&self, index: u32) {
        let ctx = self.ctx();
        let r = |msr| self.apic.read(msr, &ctx).unwrap();
        assert_eq!(r(0x802), u64::from(index), "APIC ID is the vCPU index");
        assert_eq!(
            r(LDR),
            u64::from(((index >> 4) << 16) | (1 << (index & 0xf)))
        );
        for i in 0..8u32 {
            let (isr, irr) = (r(ISR0 + i), r(IRR0 + i));
            let word = |v: &[u64; 4]| (v[i as usize / 2] >> ((i % 2) * 32)) & 0xffff_ffff;
            assert_eq!(isr, word(&self.isr), "ISR dword {i}");
            assert_eq!(irr, word(&self.irr), "IRR dword {i}");
        }
        assert_eq!(self.irr[0] & 0xffff, 0, "a vector below 16 requested");
        assert_eq!(self.isr[0] & 0xffff, 0, "a vector below 16 in service");
        for v in 0..=255u8 {
            assert_eq!(self.apic.in_service(v), has(&self.isr, v), "in service {v}");
        }
        let ppr = r(PPR);
        let class = highest(&self.isr).map_or(0, |v| v >> 4);
        assert_eq!(ppr, u64::from(class.max(r(TPR) as u8 >> 4)) << 4, "PPR");
        assert!(r(TIMER_CURRENT) <= u64::from(u32::MAX));
        assert!((1..=128).contains(&self.apic.divisor()) && self.apic.divisor().is_power_of_two());
    }
}

/// What `msr` reads back after an accepted write of `value`, if it holds what was written.
fn read_back(msr: u32, value: u64) -> Option<u64> {
    let low = u64::from(value as u32);
    Some(match msr {
        TPR => low & 0xff,
        SVR => low & 0x1ff,
        ESR => 0,
        ICR => value,
        LVT_CMCI | 0x833..=LVT_ERROR | TIMER_INITIAL => low,
        LVT_TIMER => low & (0xff | (1 << 16) | (3 << 17)),
        TIMER_DIVIDE => low & 0xb,
        _ => return None,
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let vcpus = u32::from(first % 8) + 1;
    let mut all: Vec<Vcpu> = (0..SLOTS as u32)
        .map(|i| Vcpu {
            apic: X2Apic::new(i),
            irr: [0; 4],
            isr: [0; 4],
            timer_left: 0,
        })
        .collect();
    for op in rest.chunks_exact(10) {
        let me = u32::from(op[0] & 7) % vcpus;
        let msr = MSR_FIRST + u32::from(op[1]);
        let value = u64::from_le_bytes(op[2..10].try_into().unwrap());
        let v = &mut all[me as usize];
        match (op[0] >> 3) & 3 {
            // The guest reads a register: only absent registers fail.
            0 => {
                if let Err(e) = v.read(msr) {
                    assert_eq!(e, ApicError::NoSuchRegister);
                }
            }
            // The exit handler injects the vector the APIC picks, if any.
            1 => {
                let picked = if v.apic.enabled() {
                    v.apic.next_vector(&v.irr)
                } else {
                    None
                };
                let ppr_class = (v.read(PPR).unwrap() >> 4) as u8;
                match picked {
                    Some(vec) => {
                        assert_eq!(Some(vec), highest(&v.irr), "not the highest request");
                        assert!(vec >> 4 > ppr_class, "{vec:#x} at or below PPR");
                        clear(&mut v.irr, vec);
                        v.apic.accept(vec);
                        set(&mut v.isr, vec);
                    }
                    None if v.apic.enabled() => {
                        assert!(highest(&v.irr).is_none_or(|h| h >> 4 <= ppr_class));
                    }
                    None => {}
                }
            }
            // The vCPU's timer expires.
            2 => {
                v.timer_left = 0;
                if let Some(vec) = v.apic.timer_vector() {
                    assert!(vec >= 16 && v.apic.enabled());
                    assert_eq!(v.apic.lvt_timer() & (1 << 16), 0, "masked timer fired");
                    set(&mut v.irr, vec);
                }
            }
            // The guest writes a register.
            _ => {
                let before = v.registers();
                let divisor = v.apic.divisor();
                let deadline_before = v.apic.deadline_mode();
                let result = v.apic.write(msr, value);
                let after = v.registers();
                let unchanged = |except: Option<u32>| {
                    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
                        let m = MSR_FIRST + i as u32;
                        if Some(m) != except {
                            assert_eq!(b, a, "MSR {m:#x} changed by a write of {msr:#x}");
                        }
                    }
                };
                match result {
                    Err(e) => {
                        assert_eq!(e, ApicError::NoSuchRegister);
                        unchanged(None);
                    }
                    Ok(Effect::Refused(_)) => unchanged((msr == ICR).then_some(ICR)),
                    Ok(effect) => {
                        // In TSC-deadline mode the initial count is not used: a write of it
                        // changes nothing.
                        let ignored = msr == TIMER_INITIAL && deadline_before;
                        if ignored {
                            unchanged(None);
                        } else if let Some(expect) = read_back(msr, value) {
                            assert_eq!(v.read(msr), Ok(expect), "read-back of {msr:#x}");
                        }
                        if msr != EOI && !matches!(effect, Effect::Timer { .. }) {
                            // Only the register written changes (and PPR with TPR).
                            for (i, (b, a)) in before.iter().zip(&after).enumerate() {
                                let m = MSR_FIRST + i as u32;
                                // PPR follows TPR; the current count is read at the current
                                // divisor (see `X2Apic::read`).
                                let follows = (msr == TPR && m == PPR)
                                    || (msr == TIMER_DIVIDE && m == TIMER_CURRENT);
                                if m != msr && !follows {
                                    assert_eq!(b, a, "MSR {m:#x} changed by a write of {msr:#x}");
                                }
                            }
                        }
                        effects(&mut all, me, vcpus, msr, effect, divisor);
                    }
                }
            }
        }
        for (i, v) in all.iter().enumerate() {
            if i < vcpus as usize {
                v.check(i as u32);
            } else {
                assert_eq!(v.irr, [0; 4], "vCPU {i} outside the partition got a vector");
            }
        }
    }
});

/// Checks what a write asked for and does it, as the platform would.
fn effects(all: &mut [Vcpu], me: u32, vcpus: u32, msr: u32, effect: Effect, divisor: u64) {
    let v = &mut all[me as usize];
    match effect {
        Effect::None | Effect::Refused(_) => {}
        Effect::Eoi { vector } => {
            assert_eq!(msr, EOI);
            assert_eq!(
                vector,
                highest(&v.isr),
                "EOI must end the highest in service"
            );
            if let Some(vec) = vector {
                clear(&mut v.isr, vec);
            }
        }
        // Entering or leaving TSC-deadline mode (an LVT timer write) disarms the timer.
        Effect::Timer { ticks, periodic } if msr == LVT_TIMER => {
            assert_eq!((ticks, periodic), (0, false), "a mode change only disarms");
            v.timer_left = 0;
        }
        Effect::Timer { ticks, periodic } => {
            assert_eq!(msr, TIMER_INITIAL);
            let initial = v.read(TIMER_INITIAL).unwrap();
            assert_eq!(ticks, initial * divisor, "ticks = TMICT x divisor");
            assert_eq!(periodic, (v.apic.lvt_timer() >> 17) & 3 == 1);
            v.timer_left = ticks;
        }
        Effect::Ipi { to, vector } => {
            assert!(vector >= 16, "IPI with reserved vector {vector}");
            let Some(targets) = route(to, me, vcpus) else {
                return;
            };
            for t in targets {
                set(&mut all[t as usize].irr, vector);
            }
        }
        Effect::Init { to } | Effect::Startup { to, .. } => {
            assert_ne!(to, Destination::ToSelf, "INIT or STARTUP to self");
            let _ = route(to, me, vcpus);
        }
    }
}

/// The vCPUs `to` reaches from `me`, checked against what the destination means; `None` if it
/// was refused for naming a vCPU outside the partition.
fn route(to: Destination, me: u32, vcpus: u32) -> Option<Vec<u32>> {
    match to.targets(me, vcpus) {
        Err(i) => {
            assert_eq!(to, Destination::Vcpu(i));
            assert!(i >= vcpus, "vCPU {i} of {vcpus} refused");
            None
        }
        Ok(t) => {
            let t: Vec<u32> = t.collect();
            assert!(
                t.iter().all(|&i| i < vcpus),
                "{to:?} left the partition: {t:?}"
            );
            let expect: Vec<u32> = match to {
                Destination::Vcpu(i) => vec![i],
                Destination::ToSelf => vec![me],
                Destination::All => (0..vcpus).collect(),
                Destination::Others => (0..vcpus).filter(|&i| i != me).collect(),
            };
            assert_eq!(t, expect, "{to:?} from {me}");
            Some(t)
        }
    }
}
