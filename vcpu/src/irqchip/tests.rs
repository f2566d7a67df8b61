//! The accept/refuse decisions and register decoding of both controller views.

use super::ioapic::{IoApic, IOREGSEL, IOWIN, MASKED, RESET_ENTRY};
use super::pch_pic::{self, PchPic};
use super::{Ownership, Refusal, Route, RouteEvent};
use crate::{AccessSize, DeviceError};
use alloc::vec::Vec;

/// The worker of the test boards: line 3, two vCPUs.
const WORKER: Ownership = Ownership {
    lines: &[3],
    vcpus: 2,
};
/// The hostile guest: no lines, one vCPU.
const HOSTILE: Ownership = Ownership {
    lines: &[],
    vcpus: 1,
};
const W: AccessSize = AccessSize::Word;

fn ioapic_write(a: &mut IoApic, reg: u32, value: u32, own: &Ownership) -> Vec<RouteEvent> {
    let mut events = Vec::new();
    let mut log = |e| events.push(e);
    a.write(IOREGSEL, W, reg.into(), own, &mut log).unwrap();
    a.write(IOWIN, W, value.into(), own, &mut log).unwrap();
    events
}

fn ioapic_read(a: &mut IoApic, reg: u32, own: &Ownership) -> u32 {
    a.write(IOREGSEL, W, reg.into(), own, &mut |_| {}).unwrap();
    a.read(IOWIN, W, own).unwrap() as u32
}

#[test]
fn ioapic_indexes_through_ioregsel_and_iowin() {
    let mut a = IoApic::new(24);
    a.write(IOREGSEL, W, 0x01, &WORKER, &mut |_| {}).unwrap();
    assert_eq!(a.read(IOREGSEL, W, &WORKER), Ok(0x01));
    // Version 0x20, highest entry 23.
    assert_eq!(a.read(IOWIN, W, &WORKER), Ok(0x0017_0020));
    assert_eq!(ioapic_write(&mut a, 0x00, 0x0500_0000, &WORKER), []);
    assert_eq!(ioapic_read(&mut a, 0x00, &WORKER), 0x0500_0000);
    assert_eq!(ioapic_read(&mut a, 0x02, &WORKER), 0x0500_0000);
    // Entry n's dwords are 0x10 + 2n and 0x11 + 2n; out of range reads 0.
    assert_eq!(ioapic_read(&mut a, 0x10 + 2 * 3, &WORKER), MASKED as u32);
    assert_eq!(ioapic_read(&mut a, 0x10 + 2 * 24, &WORKER), 0);
    // Only 32-bit accesses.
    assert_eq!(
        a.read(IOWIN, AccessSize::Byte, &WORKER),
        Err(DeviceError::BadWidth)
    );
    assert_eq!(
        a.write(IOREGSEL, AccessSize::Double, 0, &WORKER, &mut |_| {}),
        Err(DeviceError::BadWidth)
    );
}

#[test]
fn ioapic_accepts_an_owned_line_to_an_own_vcpu() {
    let mut a = IoApic::new(24);
    // Destination vCPU 1, then vector 0x33, level, still masked.
    let high = ioapic_write(&mut a, 0x17, 0x0100_0000, &WORKER);
    let route = Route {
        line: 3,
        vcpu: 1,
        vector: 0,
        masked: true,
        level: false,
        active_low: false,
    };
    assert_eq!(high, [RouteEvent::Accepted(route)]);
    let low = ioapic_write(&mut a, 0x16, 0x0001_8033, &WORKER);
    let route = Route {
        vector: 0x33,
        level: true,
        ..route
    };
    assert_eq!(low, [RouteEvent::Accepted(route)]);
    assert_eq!(ioapic_read(&mut a, 0x16, &WORKER), 0x0001_8033);
    assert_eq!(ioapic_read(&mut a, 0x17, &WORKER), 0x0100_0000);
    assert_eq!(a.route(3, &WORKER), Some(route));
    assert_eq!(a.entry(3, &WORKER), Some(0x0100_0000_0001_8033));
    // Unmasking reports the route again; writing the same value reports nothing.
    let unmasked = ioapic_write(&mut a, 0x16, 0x8033, &WORKER);
    assert_eq!(
        unmasked,
        [RouteEvent::Accepted(Route {
            masked: false,
            ..route
        })]
    );
    assert_eq!(ioapic_write(&mut a, 0x16, 0x8033, &WORKER), []);
    // Logical mode: bit 1 of the bitmap is vCPU 1 (masked while the destination changes).
    ioapic_write(&mut a, 0x16, 0x0001_0833, &WORKER);
    ioapic_write(&mut a, 0x17, 0x0200_0000, &WORKER);
    let logical = ioapic_write(&mut a, 0x16, 0x0833, &WORKER);
    assert!(matches!(
        logical[..],
        [RouteEvent::Accepted(Route { vcpu: 1, .. })]
    ));
    // Polarity bit 13: active low, as PCI lines are.
    let low = ioapic_write(&mut a, 0x16, 0x2833, &WORKER);
    assert!(matches!(
        low[..],
        [RouteEvent::Accepted(Route {
            active_low: true,
            ..
        })]
    ));
}

#[test]
fn ioapic_refuses_a_foreign_line_and_reads_it_back_masked() {
    let mut a = IoApic::new(24);
    // The hostile partition points line 3 at itself and unmasks it.
    let refused = RouteEvent::Refused {
        line: 3,
        why: Refusal::NotOwned,
    };
    assert_eq!(ioapic_write(&mut a, 0x17, 0, &HOSTILE), []);
    assert_eq!(ioapic_write(&mut a, 0x16, 0x33, &HOSTILE), [refused]);
    assert_eq!(ioapic_read(&mut a, 0x16, &HOSTILE), RESET_ENTRY as u32);
    assert_eq!(a.entry(3, &HOSTILE), None);
    assert_eq!(a.route(3, &HOSTILE), None);
    // The owner's entry is untouched by the refused write, and its writes are invisible to the
    // hostile partition.
    assert_eq!(a.entry(3, &WORKER), Some(RESET_ENTRY));
    ioapic_write(&mut a, 0x16, 0x8033, &WORKER);
    assert_eq!(ioapic_read(&mut a, 0x16, &HOSTILE), RESET_ENTRY as u32);
    assert_eq!(a.entry(3, &WORKER), Some(0x8033));
}

#[test]
fn ioapic_refuses_a_vcpu_out_of_range_and_nmi_init_smi() {
    let mut a = IoApic::new(24);
    // A masked entry may hold destination 2 while the guest rewrites it...
    assert_eq!(ioapic_write(&mut a, 0x17, 0x0200_0000, &WORKER), []);
    assert_eq!(ioapic_read(&mut a, 0x17, &WORKER), 0x0200_0000);
    assert_eq!(a.route(3, &WORKER), None);
    // ...but is not unmasked with it: the worker has vCPUs 0 and 1.
    let unmask = ioapic_write(&mut a, 0x16, 0x33, &WORKER);
    assert_eq!(
        unmask,
        [RouteEvent::Refused {
            line: 3,
            why: Refusal::NoSuchVcpu(2)
        }]
    );
    assert_eq!(ioapic_read(&mut a, 0x16, &WORKER), MASKED as u32);
    // Logical bitmap 0b101 names vCPU 2, which the worker does not have.
    ioapic_write(&mut a, 0x16, 0x0001_0833, &WORKER);
    ioapic_write(&mut a, 0x17, 0x0500_0000, &WORKER);
    let logical = ioapic_write(&mut a, 0x16, 0x0833, &WORKER);
    assert_eq!(
        logical,
        [RouteEvent::Refused {
            line: 3,
            why: Refusal::NoSuchVcpu(2)
        }]
    );
    // Delivery mode 5 (INIT) would reset a CPU.
    ioapic_write(&mut a, 0x17, 0, &WORKER);
    let init = ioapic_write(&mut a, 0x16, 0x0500, &WORKER);
    assert_eq!(
        init,
        [RouteEvent::Refused {
            line: 3,
            why: Refusal::DeliveryMode(5)
        }]
    );
    assert_eq!(a.entry(3, &WORKER), Some(0x0001_0833));
}

fn pic_write(
    p: &mut PchPic,
    offset: u64,
    size: AccessSize,
    v: u64,
    own: &Ownership,
) -> Vec<RouteEvent> {
    let mut events = Vec::new();
    p.write(offset, size, v, own, &mut |e| events.push(e))
        .unwrap();
    events
}

#[test]
fn pch_pic_id_and_bit_registers() {
    let p = PchPic::new(32);
    let id = p
        .read(pch_pic::INT_ID, AccessSize::Double, &WORKER)
        .unwrap();
    assert_eq!(id, 7 << 24 | 1 << 32 | 31 << 48);
    assert_eq!(p.read(pch_pic::INT_ID + 4, W, &WORKER), Ok(1 | 31 << 16));
    // Every line starts masked; on a 32-line chip the high word reads masked too.
    assert_eq!(
        p.read(pch_pic::MASK, AccessSize::Double, &WORKER),
        Ok(u64::MAX)
    );
    assert_eq!(
        p.read(pch_pic::MASK + 2, AccessSize::Word, &WORKER),
        Err(DeviceError::BadWidth)
    );
    assert_eq!(p.read(pch_pic::POL, W, &WORKER), Ok(0));
    assert_eq!(p.read(0x300, W, &WORKER), Ok(0));
}

#[test]
fn pch_pic_accepts_an_owned_line_byte_route_and_vector() {
    let mut p = PchPic::new(32);
    let b = AccessSize::Byte;
    let route = Route {
        line: 3,
        vcpu: 1,
        vector: 0,
        masked: true,
        level: true,
        active_low: false,
    };
    // Route byte: bit 1 = vCPU 1.
    assert_eq!(
        pic_write(&mut p, pch_pic::ROUTE + 3, b, 0b10, &WORKER),
        [RouteEvent::Accepted(route)]
    );
    let route = Route {
        vector: 0x33,
        ..route
    };
    assert_eq!(
        pic_write(&mut p, pch_pic::HTMSI_VECTOR + 3, b, 0x33, &WORKER),
        [RouteEvent::Accepted(route)]
    );
    // Edge (reported: the physical line's trigger mode follows), then unmask with a
    // read-modify-write of the whole mask word.
    assert_eq!(
        pic_write(&mut p, pch_pic::EDGE, W, 1 << 3, &WORKER),
        [RouteEvent::Accepted(Route {
            level: false,
            ..route
        })]
    );
    let mask = p.read(pch_pic::MASK, W, &WORKER).unwrap();
    let unmasked = pic_write(&mut p, pch_pic::MASK, W, mask & !(1 << 3), &WORKER);
    let route = Route {
        masked: false,
        level: false,
        ..route
    };
    assert_eq!(unmasked, [RouteEvent::Accepted(route)]);
    assert_eq!(p.route(3, &WORKER), Some(route));
    assert_eq!(p.read(pch_pic::ROUTE + 3, b, &WORKER), Ok(0b10));
    assert_eq!(p.read(pch_pic::HTMSI_VECTOR, W, &WORKER), Ok(0x3300_0000));
    assert_eq!(p.read(pch_pic::MASK, W, &WORKER), Ok(0xffff_fff7));
    // A 4-byte write over the route bytes of lines 0..4 touches line 3 only as an owner.
    assert_eq!(
        pic_write(&mut p, pch_pic::ROUTE, W, 0x0100_0000, &WORKER),
        [RouteEvent::Accepted(Route { vcpu: 0, ..route })]
    );
}

#[test]
fn pch_pic_refuses_foreign_lines_and_vcpus_out_of_range() {
    let mut p = PchPic::new(32);
    let b = AccessSize::Byte;
    let refused = RouteEvent::Refused {
        line: 3,
        why: Refusal::NotOwned,
    };
    assert_eq!(
        pic_write(&mut p, pch_pic::ROUTE + 3, b, 1, &HOSTILE),
        [refused]
    );
    assert_eq!(
        pic_write(&mut p, pch_pic::HTMSI_VECTOR + 3, b, 0x33, &HOSTILE),
        [refused]
    );
    // Unmasking line 3 and line 5 in one write: two refusals; writing back what it read: none.
    let mask = p.read(pch_pic::MASK, W, &HOSTILE).unwrap();
    assert_eq!(mask, 0xffff_ffff);
    assert_eq!(pic_write(&mut p, pch_pic::MASK, W, mask, &HOSTILE), []);
    let two = pic_write(&mut p, pch_pic::MASK, W, mask & !0b10_1000, &HOSTILE);
    assert_eq!(
        two,
        [
            refused,
            RouteEvent::Refused {
                line: 5,
                why: Refusal::NotOwned
            }
        ]
    );
    // It reads back masked and unrouted, and the owner's state did not change.
    assert_eq!(p.read(pch_pic::ROUTE + 3, b, &HOSTILE), Ok(0));
    assert_eq!(p.read(pch_pic::MASK, W, &HOSTILE), Ok(0xffff_ffff));
    assert_eq!(p.route(3, &HOSTILE), None);
    assert_eq!(
        p.route(3, &WORKER),
        Some(Route {
            line: 3,
            vcpu: 0,
            vector: 0,
            masked: true,
            level: true,
            active_low: false,
        })
    );
    // The owner may not name vCPU 2 (bit 2) either.
    assert_eq!(
        pic_write(&mut p, pch_pic::ROUTE + 3, b, 0b110, &WORKER),
        [RouteEvent::Refused {
            line: 3,
            why: Refusal::NoSuchVcpu(2)
        }]
    );
    assert_eq!(p.read(pch_pic::ROUTE + 3, b, &WORKER), Ok(0));
}

/// Found by the `ioapic` fuzz target: masking an unmasked entry in the same dword write that
/// makes it undecodable (here delivery mode 7) was stored silently, so the caller never heard
/// the line was masked and left the physical line delivering.
#[test]
fn ioapic_reports_masking_even_when_the_masked_entry_does_not_decode() {
    let mut a = IoApic::new(24);
    ioapic_write(&mut a, 0x17, 0x0100_0000, &WORKER);
    let open = ioapic_write(&mut a, 0x16, 0x8033, &WORKER);
    assert!(matches!(
        open[..],
        [RouteEvent::Accepted(Route {
            vcpu: 1,
            masked: false,
            ..
        })]
    ));
    let closed = ioapic_write(&mut a, 0x16, 0x0001_8733, &WORKER);
    assert_eq!(
        closed,
        [RouteEvent::Accepted(Route {
            line: 3,
            vcpu: 1,
            vector: 0x33,
            masked: true,
            level: true,
            active_low: false,
        })]
    );
    assert_eq!(ioapic_read(&mut a, 0x16, &WORKER), 0x0001_8733);
    assert_eq!(a.route(3, &WORKER), None);
    // Rewriting it while masked reports nothing more: the line is already closed.
    assert_eq!(ioapic_write(&mut a, 0x16, 0x0001_8633, &WORKER), []);
}

/// Found by the `pch_pic` fuzz target: a change of an unmasked line's polarity (or trigger mode)
/// was not reported, so the physical line kept the old one while the view held the new.
#[test]
fn pch_pic_reports_trigger_and_polarity_changes() {
    let mut p = PchPic::new(32);
    let open = pic_write(&mut p, pch_pic::MASK, W, 0xffff_fff7, &WORKER);
    assert!(matches!(
        open[..],
        [RouteEvent::Accepted(Route { masked: false, .. })]
    ));
    let low = pic_write(&mut p, pch_pic::POL, W, 1 << 3, &WORKER);
    let route = Route {
        line: 3,
        vcpu: 0,
        vector: 0,
        masked: false,
        level: true,
        active_low: true,
    };
    assert_eq!(low, [RouteEvent::Accepted(route)]);
    assert_eq!(p.route(3, &WORKER), Some(route));
    let edge = pic_write(&mut p, pch_pic::EDGE, AccessSize::Byte, 1 << 3, &WORKER);
    let route = Route {
        level: false,
        ..route
    };
    assert_eq!(edge, [RouteEvent::Accepted(route)]);
    // HTMSI_EN is not part of a route: nothing to report.
    assert_eq!(pic_write(&mut p, pch_pic::HTMSI_EN, W, 1 << 3, &WORKER), []);
    // And another partition cannot change them at all.
    assert_eq!(pic_write(&mut p, pch_pic::POL, W, 0, &HOSTILE), []);
    assert_eq!(
        pic_write(&mut p, pch_pic::POL, W, 1 << 3, &HOSTILE),
        [RouteEvent::Refused {
            line: 3,
            why: Refusal::NotOwned
        }]
    );
    assert_eq!(p.route(3, &WORKER), Some(route));
}

#[test]
fn a_driven_line_sends_its_vector_once_per_rise_of_its_gated_level() {
    // Linux's console line 2 in its partition's view: vector 2, unmasked, HTMSI on.
    let own = Ownership {
        lines: &[2],
        vcpus: 2,
    };
    let mut c = PchPic::new(32);
    let write =
        |c: &mut PchPic, offset, value| c.write(offset, W, value, &own, &mut |_| {}).unwrap();
    assert_eq!(
        c.set_level(2, true, &own),
        Vec::<u8>::new(),
        "masked after reset"
    );
    c.write(
        pch_pic::HTMSI_VECTOR + 2,
        AccessSize::Byte,
        2,
        &own,
        &mut |_| {},
    )
    .unwrap();
    write(&mut c, pch_pic::HTMSI_EN, 0xffff_ffff);
    write(&mut c, pch_pic::MASK, !(1 << 2));
    assert_eq!(
        c.take_sends(&own),
        [2],
        "unmasking an asserted line sends it"
    );
    assert_eq!(c.take_sends(&own), Vec::<u8>::new(), "once");
    // Linux's level flow: mask, handle (the device lowers the line), unmask.
    write(&mut c, pch_pic::MASK, 0xffff_ffff);
    assert_eq!(c.take_sends(&own), Vec::<u8>::new());
    assert_eq!(c.set_level(2, false, &own), Vec::<u8>::new());
    write(&mut c, pch_pic::MASK, !(1 << 2));
    assert_eq!(c.take_sends(&own), Vec::<u8>::new());
    assert_eq!(c.set_level(2, true, &own), [2]);
    // Still asserted across a mask and unmask: sent again.
    write(&mut c, pch_pic::MASK, 0xffff_ffff);
    c.take_sends(&own);
    write(&mut c, pch_pic::MASK, !(1 << 2));
    assert_eq!(c.take_sends(&own), [2]);
    // A line the partition does not own is never driven.
    assert_eq!(c.set_level(3, true, &own), Vec::<u8>::new());
}
