//! Fuzz target: one partition's I/O APIC view (`vcpu::irqchip::ioapic`), for a partition of 1-8
//! vCPUs owning any subset of up to 64 lines of a 1-64 line chip, driven by any sequence of
//! IOREGSEL / IOWIN accesses (and accesses of other widths and offsets). The routing decisions
//! it reports are acted on as the platform does (`partition/src/device_irq.rs`,
//! `route_by_chip`: the physical line is programmed to the target vCPU, unmasked, or masked).
//! After every access:
//! * a decision is about a line of the chip; an accepted route is of an owned line and names one
//!   of the partition's vCPUs; a refusal gives a true reason;
//! * what the physical line was last told (deliver to vCPU k, trigger, polarity, or masked)
//!   is what the view's route says, so a line the guest masked delivers nothing and a foreign
//!   line is never programmed at all;
//! * every unmasked owned entry decodes to a route inside the partition;
//! * owned entries read back through IOREGSEL/IOWIN as the model holds them, an accepted dword
//!   write reads back as written (within the writable bits), a refused one changes nothing, and
//!   foreign entries read as masked and unrouted;
//! * the ID, version and arbitration registers read consistently.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vcpu::irqchip::ioapic::{
    IoApic, IOREGSEL, IOWIN, MASKED, REG_ARBITRATION, REG_ID, REG_REDIRECTION, REG_VERSION,
    RESET_ENTRY, VERSION,
};
use vcpu::irqchip::{Ownership, Refusal, RouteEvent};
use vcpu::{AccessSize, DeviceError};

/// Bits of an entry a guest can set, per dword (vector, delivery and destination mode,
/// polarity, trigger, mask; destination).
const WRITABLE_LOW: u32 = 0x0001_afff;
const WRITABLE_HIGH: u32 = 0xff00_0000;

/// What the physical controller was last told for a line: deliver to this vCPU with this
/// vector, trigger and polarity, or nothing.
type Hw = Option<(u32, u8, bool, bool)>;

fn word(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().unwrap())
}

/// Reads indirect register `reg` through a copy of the view (selecting changes IOREGSEL).
fn indirect(a: &IoApic, reg: u32, own: &Ownership) -> u32 {
    let mut c = a.clone();
    c.write(IOREGSEL, AccessSize::Word, reg.into(), own, &mut |e| {
        panic!("selecting a register decided {e:?}")
    })
    .unwrap();
    c.read(IOWIN, AccessSize::Word, own).unwrap() as u32
}

fn check(a: &IoApic, own: &Ownership, hw: &[Hw]) {
    let lines = a.lines();
    let id = indirect(a, REG_ID, own);
    assert_eq!(id & !0x0f00_0000, 0, "ID outside bits 27:24");
    assert_eq!(indirect(a, REG_ARBITRATION, own), id);
    assert_eq!(indirect(a, REG_VERSION, own), VERSION | (lines - 1) << 16);
    for line in 0..lines {
        let (lo, hi) = (
            indirect(a, REG_REDIRECTION + 2 * line, own),
            indirect(a, REG_REDIRECTION + 2 * line + 1, own),
        );
        let read = u64::from(hi) << 32 | u64::from(lo);
        let route = a.route(line, own);
        if !own.owns(line) {
            assert_eq!(read, RESET_ENTRY, "foreign line {line} reads {read:#x}");
            assert_eq!(a.entry(line, own), None);
            assert_eq!(route, None, "foreign line {line} has a route");
            assert_eq!(
                hw[line as usize], None,
                "foreign line {line} was programmed"
            );
            continue;
        }
        assert_eq!(a.entry(line, own), Some(read), "line {line} read-back");
        if read & MASKED == 0 {
            let r = route.unwrap_or_else(|| panic!("unmasked line {line} {read:#x} has no route"));
            assert!(r.vcpu < own.vcpus, "line {line} routed to vCPU {}", r.vcpu);
            assert!(
                (read >> 8) & 7 <= 1,
                "unmasked line {line} in mode {}",
                (read >> 8) & 7
            );
        }
        if let Some(r) = route {
            assert_eq!(r.line, line);
            assert_eq!(r.masked, read & MASKED != 0);
            assert_eq!(r.vector, read as u8);
        }
        let view = route
            .filter(|r| !r.masked)
            .map(|r| (r.vcpu, r.vector, r.level, r.active_low));
        assert_eq!(
            hw[line as usize], view,
            "line {line}: hardware programmed {:?}, view routes {view:?}",
            hw[line as usize]
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 10 {
        return;
    }
    let vcpus = u32::from(data[0] % 8) + 1;
    let lines = u32::from(data[1] % 64) + 1;
    let owned_bits = u64::from_le_bytes(data[2..10].try_into().unwrap());
    let owned: Vec<u32> = (0..64).filter(|l| owned_bits & 1 << l != 0).collect();
    let own = Ownership {
        lines: &owned,
        vcpus,
    };
    let mut a = IoApic::new(lines);
    let mut hw: Vec<Hw> = vec![None; lines as usize];
    for op in data[10..].chunks_exact(6) {
        let value = word(&op[2..6]);
        let (offset, size) = match op[0] & 3 {
            0 => (IOREGSEL, AccessSize::Word),
            1 => (IOWIN, AccessSize::Word),
            _ => {
                let size = AccessSize::from_bytes(1 << (op[0] >> 2 & 3)).unwrap();
                (u64::from(op[1] & 0x3f), size)
            }
        };
        // IOREGSEL takes the register from the op's second byte, with noise above it.
        let value = if offset == IOREGSEL {
            value & !0xff | u32::from(op[1])
        } else {
            value
        };
        if op[0] & 0x80 != 0 {
            let before = a.clone();
            let r = a.read(offset, size, &own);
            assert_eq!(r.is_err(), size != AccessSize::Word);
            assert!(r.is_err() || r.unwrap() <= u64::from(u32::MAX));
            if size != AccessSize::Word {
                assert_eq!(r, Err(DeviceError::BadWidth));
            }
            assert_eq!(
                format!("{before:?}"),
                format!("{a:?}"),
                "a read changed the view"
            );
            continue;
        }
        let select = a.read(IOREGSEL, AccessSize::Word, &own).unwrap() as u32;
        let target = (select >= REG_REDIRECTION && (select - REG_REDIRECTION) / 2 < lines)
            .then(|| ((select - REG_REDIRECTION) / 2, select & 1 == 1));
        let old = target.map(|(line, _)| {
            (
                indirect(&a, REG_REDIRECTION + 2 * line, &own),
                indirect(&a, REG_REDIRECTION + 2 * line + 1, &own),
            )
        });
        let mut events = Vec::new();
        let r = a.write(offset, size, value.into(), &own, &mut |e| events.push(e));
        if size != AccessSize::Word {
            assert_eq!(r, Err(DeviceError::BadWidth));
        } else {
            r.unwrap();
        }
        let entry_write = offset == IOWIN && size == AccessSize::Word && target.is_some();
        assert!(events.len() <= 1, "one access, one decision: {events:?}");
        assert!(
            events.is_empty() || entry_write,
            "{events:?} from a non-entry access"
        );
        let mut refused = false;
        for e in &events {
            match *e {
                RouteEvent::Accepted(r) => {
                    assert_eq!(Some(r.line), target.map(|t| t.0));
                    assert!(own.owns(r.line), "foreign line {} accepted", r.line);
                    assert!(
                        r.vcpu < vcpus,
                        "line {} to vCPU {} of {vcpus}",
                        r.line,
                        r.vcpu
                    );
                    hw[r.line as usize] =
                        (!r.masked).then_some((r.vcpu, r.vector, r.level, r.active_low));
                }
                RouteEvent::Refused { line, why } => {
                    assert_eq!(Some(line), target.map(|t| t.0));
                    refused = true;
                    match why {
                        Refusal::NotOwned => assert!(!own.owns(line)),
                        Refusal::NoSuchVcpu(v) => assert!(v >= vcpus, "vCPU {v} of {vcpus}"),
                        Refusal::DeliveryMode(m) => assert!((2..8).contains(&m)),
                    }
                }
            }
        }
        if let (true, Some((line, high)), Some((lo, hi))) = (entry_write, target, old) {
            let now = (
                indirect(&a, REG_REDIRECTION + 2 * line, &own),
                indirect(&a, REG_REDIRECTION + 2 * line + 1, &own),
            );
            if refused || !own.owns(line) {
                assert_eq!(now, (lo, hi), "a refused write changed line {line}");
            } else if high {
                let expect = value & WRITABLE_HIGH | hi & !WRITABLE_HIGH;
                assert_eq!(now, (lo, expect), "line {line} high dword read-back");
            } else {
                let expect = value & WRITABLE_LOW | lo & !WRITABLE_LOW;
                assert_eq!(now, (expect, hi), "line {line} low dword read-back");
            }
        }
        if offset == IOREGSEL && size == AccessSize::Word {
            assert_eq!(a.read(IOREGSEL, size, &own), Ok(u64::from(op[1])));
        }
        check(&a, &own, &hw);
    }
});
