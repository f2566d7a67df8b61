//! Fuzz target: one partition's Loongson PCH-PIC view (`vcpu::irqchip::pch_pic`) and the physical
//! programming the hypervisor derives from it (`arch_loongarch::device_irq`), for a partition of
//! 1-8 vCPUs on any 1-8 physical CPUs owning any subset of a 1-64 line chip, driven by any
//! sequence of accesses of any width at any offset of the window. Routing decisions are acted on
//! as the platform does (`route_by_chip`: the physical line follows the reported route).
//! After every access:
//! * a misaligned access is refused and changes nothing;
//! * a decision is about a line of the chip, at most one per line; an accepted route is of an
//!   owned line, names one of the partition's vCPUs and is the view's route after the access;
//!   a refusal gives a true reason;
//! * what the physical line was last told (deliver to vCPU k with vector, trigger, polarity, or
//!   masked) is what the view's route says: a masked line delivers nothing, a foreign line is
//!   never programmed, and the physical chips (a register model under the real driver) have an
//!   accepted line unmasked only when it delivers, its EIOINTC route naming only the CPU running
//!   the target vCPU, and masked when that CPU cannot be named;
//! * registers read back consistently with the routes: owned bits and bytes as written (a refused
//!   route byte keeps its value), foreign lines masked and unrouted, INT_ID constant.
#![no_main]

use arch_loongarch::device_irq::{DeviceIrqHw, DeviceLines, RouteError, Target, ROUTABLE_CORES};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use vcpu::irqchip::pch_pic::{
    PchPic, CLEAR, EDGE, HTMSI_EN, HTMSI_VECTOR, ID, INT_ID, MASK, POL, ROUTE, VERSION,
};
use vcpu::irqchip::{Ownership, Refusal, Route, RouteEvent};
use vcpu::{AccessSize, DeviceError};

/// What the physical controller was last told for a line: deliver to this vCPU with this vector,
/// trigger (level) and polarity (active low), or nothing.
type Hw = Option<(u32, u8, bool, bool)>;

fn delivers(r: Option<Route>) -> Hw {
    r.filter(|r| !r.masked)
        .map(|r| (r.vcpu, r.vector, r.level, r.active_low))
}

fn read(p: &PchPic, offset: u64, size: AccessSize, own: &Ownership) -> u64 {
    p.read(offset, size, own).unwrap()
}

/// The whole view as the guest reads it, 8 bytes at a time.
fn image(p: &PchPic, own: &Ownership) -> Vec<u64> {
    (0..0x400 / 8)
        .map(|i| read(p, i * 8, AccessSize::Double, own))
        .collect()
}

fn check(p: &PchPic, lines: u32, own: &Ownership, hw: &[Hw]) {
    let d = AccessSize::Double;
    let id = ID << 24 | VERSION << 32 | u64::from(lines - 1) << 48;
    assert_eq!(read(p, INT_ID, d, own), id);
    let (mask, edge, pol, htmsi) = (
        read(p, MASK, d, own),
        read(p, EDGE, d, own),
        read(p, POL, d, own),
        read(p, HTMSI_EN, d, own),
    );
    assert_eq!(read(p, CLEAR, d, own), 0);
    for line in 0..64u32 {
        let bit = |v: u64| v & 1 << line != 0;
        let route = p.route(line, own);
        let owned = line < lines && own.owns(line);
        if !owned {
            assert!(bit(mask), "line {line} not owned, reads unmasked");
            assert!(
                !bit(edge) && !bit(pol) && !bit(htmsi),
                "line {line} not owned, reads set"
            );
            assert_eq!(route, None, "line {line} not owned, has a route");
            if line < lines {
                assert_eq!(
                    hw[line as usize], None,
                    "line {line} not owned, was programmed"
                );
                let b = AccessSize::Byte;
                assert_eq!(read(p, ROUTE + u64::from(line), b, own), 0);
                assert_eq!(read(p, HTMSI_VECTOR + u64::from(line), b, own), 0);
            }
            continue;
        }
        let r = route.unwrap_or_else(|| panic!("owned line {line} has no route"));
        let byte = read(p, ROUTE + u64::from(line), AccessSize::Byte, own);
        assert!(
            byte == 0 || 63 - byte.leading_zeros() < own.vcpus,
            "route byte {byte:#x}"
        );
        let target = if byte == 0 { 0 } else { byte.trailing_zeros() };
        assert_eq!(r.line, line);
        assert_eq!(r.vcpu, target, "line {line}: route byte {byte:#x}");
        assert!(r.vcpu < own.vcpus);
        assert_eq!(
            u64::from(r.vector),
            read(p, HTMSI_VECTOR + u64::from(line), AccessSize::Byte, own)
        );
        assert_eq!(r.masked, bit(mask), "line {line} mask");
        assert_eq!(r.level, !bit(edge), "line {line} trigger");
        assert_eq!(r.active_low, bit(pol), "line {line} polarity");
        assert_eq!(
            hw[line as usize],
            delivers(route),
            "line {line}: hardware programmed {:?}, view routes {route:?}",
            hw[line as usize]
        );
    }
}

/// The physical chips as registers: IOCSR words, PCH-PIC words and bytes.
#[derive(Default)]
struct Chips {
    iocsr: BTreeMap<u64, u64>,
    pic32: BTreeMap<u64, u32>,
    pic8: BTreeMap<u64, u8>,
}

impl DeviceIrqHw for Chips {
    fn iocsr_read64(&mut self, addr: u64) -> u64 {
        self.iocsr.get(&addr).copied().unwrap_or(0)
    }
    fn iocsr_write64(&mut self, addr: u64, value: u64) {
        self.iocsr.insert(addr, value);
    }
    fn pic_write32(&mut self, offset: u64, value: u32) {
        self.pic32.insert(offset, value);
    }
    fn pic_write8(&mut self, offset: u64, value: u8) {
        self.pic8.insert(offset, value);
    }
}

impl Chips {
    fn masked(&self, line: u32) -> bool {
        let word = self.pic32.get(&(MASK + u64::from(line / 32) * 4)).copied();
        word.unwrap_or(u32::MAX) & 1 << (line % 32) != 0
    }

    fn eiointc_route(&self, vector: u32) -> u8 {
        let word = self
            .iocsr
            .get(&(0x1c00 + u64::from(vector & !7)))
            .copied()
            .unwrap_or(0);
        (word >> ((vector & 7) * 8)) as u8
    }
}

/// An accepted route, acted on as the platform does (`route_device_line`), and what the chips
/// then hold: unmasked only when it delivers, and then only to the CPU running the target vCPU;
/// a CPU the EIOINTC cannot name leaves the line masked.
fn program(d: &mut DeviceLines, chips: &mut Chips, cpus: &[u32], r: &Route) {
    let cpu = cpus[r.vcpu as usize];
    let target = (!r.masked).then_some(Target {
        core: cpu,
        level: r.level,
        active_low: r.active_low,
    });
    let result = d.route(chips, r.line, target);
    match (target, result) {
        (None, Ok(())) => assert!(chips.masked(r.line), "line {} masked in the view", r.line),
        (Some(_), Ok(())) => {
            assert!(cpu < ROUTABLE_CORES);
            assert!(!chips.masked(r.line), "line {} routed but masked", r.line);
            assert_eq!(
                chips.pic8[&(HTMSI_VECTOR + u64::from(r.line))],
                r.line as u8
            );
            assert_eq!(
                chips.eiointc_route(r.line),
                1 << cpu,
                "EIOINTC route of line {} to CPU {cpu}",
                r.line
            );
        }
        (Some(_), Err(e)) => {
            assert_eq!(
                (e, cpu >= ROUTABLE_CORES),
                (RouteError::CoreUnroutable, true)
            );
            assert!(chips.masked(r.line), "unroutable line {} unmasked", r.line);
        }
        (None, Err(e)) => panic!("masking line {} failed: {e:?}", r.line),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 11 {
        return;
    }
    let vcpus = u32::from(data[0] % 8) + 1;
    let lines = u32::from(data[1] % 64) + 1;
    let first_cpu = u32::from(data[2] % 8);
    let cpus: Vec<u32> = (0..vcpus).map(|k| (first_cpu + k) % 8).collect();
    let owned_bits = u64::from_le_bytes(data[3..11].try_into().unwrap());
    let owned: Vec<u32> = (0..64).filter(|l| owned_bits & 1 << l != 0).collect();
    let own = Ownership {
        lines: &owned,
        vcpus,
    };
    let mut chips = Chips::default();
    let mut driver = DeviceLines::new(lines);
    driver.init(&mut chips);
    let mut p = PchPic::new(lines);
    let mut hw: Vec<Hw> = vec![None; lines as usize];
    for op in data[11..].chunks_exact(11) {
        let size = AccessSize::from_bytes(1 << (op[0] & 3)).unwrap();
        let n = size.bytes();
        let raw = u64::from(u16::from_le_bytes([op[1], op[2]]));
        let offset = if op[0] & 8 != 0 {
            // A register the model keeps, at a byte of it.
            let bases = [
                INT_ID,
                MASK,
                HTMSI_EN,
                EDGE,
                CLEAR,
                ROUTE,
                HTMSI_VECTOR,
                POL,
            ];
            let base = bases[usize::from(op[1] & 7)];
            let within = if base == ROUTE || base == HTMSI_VECTOR {
                0x3f
            } else {
                7
            };
            base + (u64::from(op[2]) & within)
        } else {
            raw & 0x3ff
        };
        let offset = if op[0] & 4 != 0 {
            offset
        } else {
            offset & !(n - 1)
        };
        let value = u64::from_le_bytes(op[3..11].try_into().unwrap());
        let aligned = offset.is_multiple_of(n);
        if op[0] & 0x80 != 0 {
            let r = p.read(offset, size, &own);
            if aligned {
                assert!(r.unwrap() & !size.mask() == 0, "read wider than its access");
            } else {
                assert_eq!(r, Err(DeviceError::BadWidth));
            }
            continue;
        }
        let before = image(&p, &own);
        let mut events = Vec::new();
        let r = p.write(offset, size, value, &own, &mut |e| events.push(e));
        if !aligned {
            assert_eq!(r, Err(DeviceError::BadWidth));
            assert!(events.is_empty(), "a refused access decided {events:?}");
            assert_eq!(
                image(&p, &own),
                before,
                "a misaligned write changed the view"
            );
            continue;
        }
        r.unwrap();
        let mut seen = Vec::new();
        let mut refused = Vec::new();
        for e in &events {
            let line = match *e {
                RouteEvent::Accepted(r) => r.line,
                RouteEvent::Refused { line, .. } => line,
            };
            assert!(line < lines, "decision about line {line} of {lines}");
            assert!(
                !seen.contains(&line),
                "two decisions about line {line}: {events:?}"
            );
            seen.push(line);
            match *e {
                RouteEvent::Accepted(r) => {
                    assert!(own.owns(r.line), "foreign line {} accepted", r.line);
                    assert!(
                        r.vcpu < vcpus,
                        "line {} to vCPU {} of {vcpus}",
                        r.line,
                        r.vcpu
                    );
                    assert_eq!(
                        Some(r),
                        p.route(r.line, &own),
                        "reported route is not the view's"
                    );
                    program(&mut driver, &mut chips, &cpus, &r);
                    hw[r.line as usize] = delivers(Some(r));
                }
                RouteEvent::Refused { line, why } => {
                    refused.push(line);
                    match why {
                        Refusal::NotOwned => assert!(!own.owns(line)),
                        Refusal::NoSuchVcpu(v) => assert!((vcpus..8).contains(&v), "vCPU {v}"),
                        Refusal::DeliveryMode(_) => panic!("a PCH-PIC has no delivery modes"),
                    }
                }
            }
        }
        // Bytes written to an owned line's bit, route or vector read back as written, unless
        // that line's write was refused.
        let after = image(&p, &own);
        for i in 0..n {
            let at = offset + i;
            let byte = (value >> (8 * i)) as u8;
            let now = (after[(at / 8) as usize] >> (8 * (at % 8))) as u8;
            let was = (before[(at / 8) as usize] >> (8 * (at % 8))) as u8;
            let bit_reg = [MASK, HTMSI_EN, EDGE, POL]
                .iter()
                .any(|&b| (b..b + 8).contains(&at));
            if bit_reg {
                for k in 0..8u32 {
                    let line = (at % 8) as u32 * 8 + k;
                    if line < lines && own.owns(line) {
                        assert_eq!(now >> k & 1, byte >> k & 1, "line {line} bit at {at:#x}");
                    }
                }
            } else if (ROUTE..HTMSI_VECTOR + 0x100).contains(&at) {
                let line = (at & 0xff) as u32;
                if line < lines && own.owns(line) {
                    let expect = if refused.contains(&line) { was } else { byte };
                    assert_eq!(now, expect, "line {line} byte at {at:#x}");
                }
            }
        }
        check(&p, lines, &own, &hw);
        for line in (0..lines).filter(|&l| !own.owns(l)) {
            assert!(
                chips.masked(line),
                "foreign line {line} unmasked on the chip"
            );
        }
    }
});
