//! Memory layout rules: every region aligned to the base page, inside the board's RAM, clear of the
//! hypervisor and of reserved RAM; no two regions of one partition overlapping in guest-physical
//! space; no host memory shared between partitions unless both sides declare the same range shared
//! with each other; and the image's load address and entry point inside suitable memory. These are
//! the faults that corrupt memory silently at run time (hvisor #310, #397), so each is reported with
//! both ranges.

use super::error::{Rule, Sink};
use super::size::{contains, fmt_range, fmt_size, overlaps};
use super::spec::{CheckedBoard, ImageSpec, PartitionSpec, RegionSpec};
use crate::model::MemRange;

/// RAM ranges merged where they touch, so a region may span two adjacent `ram` entries.
fn merged_ram(ram: &[MemRange]) -> Vec<MemRange> {
    let mut r: Vec<MemRange> = ram.iter().copied().filter(|r| r.size > 0).collect();
    r.sort_by_key(|r| r.start);
    let mut out: Vec<MemRange> = Vec::new();
    for x in r {
        match out.last_mut() {
            Some(last) if x.start <= last.end() => {
                let end = last.end().max(x.end());
                last.size = end - last.start;
            }
            _ => out.push(x),
        }
    }
    out
}

/// `[a, b), [c, d)` for messages that list the board's RAM.
pub fn fmt_ranges(rs: &[MemRange]) -> String {
    let v: Vec<String> = rs.iter().map(|r| fmt_range(r.start, r.size)).collect();
    v.join(", ")
}

fn in_ram(ram: &[MemRange], start: u64, size: u64) -> bool {
    merged_ram(ram)
        .iter()
        .any(|r| contains(r.start, r.size, start, size))
}

/// The hypervisor's own region: inside RAM and page-aligned, since partitions are carved around it.
pub fn check_board(b: &CheckedBoard, sink: &mut Sink) {
    let h = b.hypervisor;
    let hr = fmt_range(h.start, h.size);
    if !b.ram.is_empty() && !in_ram(&b.ram, h.start, h.size) {
        let ram = fmt_ranges(&b.ram);
        sink.board(
            Rule::OutsideRam,
            "hypervisor",
            &[&hr, &ram],
            format!("{hr} is not inside board.ram ({ram})"),
        );
    }
    let page = fmt_size(b.base_page);
    if !h.start.is_multiple_of(b.base_page) || !h.size.is_multiple_of(b.base_page) {
        sink.board(
            Rule::Misaligned,
            "hypervisor",
            &[&hr, &page],
            format!("{hr} is not aligned to the {page} base page"),
        );
    }
}

/// Alignment, bounds and address-space wrap of every region.
fn check_regions(b: &CheckedBoard, p: &PartitionSpec, sink: &mut Sink) {
    let page = fmt_size(b.base_page);
    let name = p.name.as_str();
    for r in &p.memory {
        for (key, v) in [("memory.guest", r.guest), ("memory.host", r.host)] {
            if v % b.base_page != 0 {
                let vs = format!("{v:#x}");
                sink.one(
                    name,
                    Rule::Misaligned,
                    key,
                    &[&vs, &page],
                    format!("{vs} is not aligned to the {page} base page"),
                );
            }
        }
        if r.size % b.base_page != 0 {
            let vs = fmt_size(r.size);
            sink.one(
                name,
                Rule::Misaligned,
                "memory.size",
                &[&vs, &page],
                format!("{vs} is not a multiple of the {page} base page"),
            );
        }
        for (key, v) in [("memory.guest", r.guest), ("memory.host", r.host)] {
            if v.checked_add(r.size).is_none() {
                let vs = format!("{v:#x}");
                let size = fmt_size(r.size);
                sink.one(
                    name,
                    Rule::Invalid,
                    key,
                    &[&vs, &size],
                    format!("{vs} + {size} wraps past the end of the address space"),
                );
            }
        }
        if r.size == 0 {
            continue;
        }
        let hr = fmt_range(r.host, r.size);
        if !b.ram.is_empty() && !in_ram(&b.ram, r.host, r.size) {
            let ram = fmt_ranges(&b.ram);
            sink.one(
                name,
                Rule::OutsideRam,
                "memory.host",
                &[&hr, &ram],
                format!("{hr} is not inside board.ram ({ram})"),
            );
        }
        let h = b.hypervisor;
        if overlaps(r.host, r.size, h.start, h.size) {
            let hv = fmt_range(h.start, h.size);
            sink.one(
                name,
                Rule::Hypervisor,
                "memory.host",
                &[&hr, &hv],
                format!("{hr} overlaps board.hypervisor {hv}"),
            );
        }
        for res in &b.reserved {
            if overlaps(r.host, r.size, res.start, res.size) {
                let rv = fmt_range(res.start, res.size);
                sink.one(
                    name,
                    Rule::Hypervisor,
                    "memory.host",
                    &[&hr, &rv],
                    format!("{hr} overlaps board.reserved {rv}"),
                );
            }
        }
    }
}

/// Inside one partition: guest ranges must not overlap (one GPA, one meaning) and host ranges must
/// not alias (dirty logging and write protection work per host page).
fn check_within(p: &PartitionSpec, sink: &mut Sink) {
    let name = p.name.as_str();
    for (i, a) in p.memory.iter().enumerate() {
        for c in &p.memory[i + 1..] {
            for (key, x, y, rule) in [
                ("memory.guest", a.guest, c.guest, Rule::GuestOverlap),
                ("memory.host", a.host, c.host, Rule::HostOverlap),
            ] {
                if overlaps(x, a.size, y, c.size) {
                    let (xs, ys) = (fmt_range(x, a.size), fmt_range(y, c.size));
                    sink.one(name, rule, key, &[&xs, &ys], format!("{xs} overlaps {ys}"));
                }
            }
        }
    }
}

/// Whether `a` (in partition `p`) and `c` (in partition `q`) are declared as one shared region.
fn mutually_shared(p: &str, a: &RegionSpec, q: &str, c: &RegionSpec) -> bool {
    a.shared_with.as_deref() == Some(q) && c.shared_with.as_deref() == Some(p)
}

/// Between partitions: host ranges overlap only as declared, identical, mutual shared regions.
fn check_between(b: &CheckedBoard, sink: &mut Sink) {
    let parts = &b.partitions;
    for (i, p) in parts.iter().enumerate() {
        for q in &parts[i + 1..] {
            for a in &p.memory {
                for c in &q.memory {
                    if !overlaps(a.host, a.size, c.host, c.size) {
                        continue;
                    }
                    let (xs, ys) = (fmt_range(a.host, a.size), fmt_range(c.host, c.size));
                    if !mutually_shared(&p.name, a, &q.name, c) {
                        sink.pair(
                            &p.name,
                            &q.name,
                            Rule::HostOverlap,
                            "memory.host",
                            &[&xs, &ys],
                            format!("{xs} overlaps {ys}"),
                        );
                    } else if (a.host, a.size) != (c.host, c.size) {
                        sink.pair(
                            &p.name,
                            &q.name,
                            Rule::HostOverlap,
                            "memory.host",
                            &[&xs, &ys],
                            format!("shared {xs} differs from its partner's {ys} (use one range)"),
                        );
                    }
                }
            }
        }
    }
}

/// Every `shared_with` names another partition that shares an overlapping range back.
fn check_partners(b: &CheckedBoard, sink: &mut Sink) {
    for p in &b.partitions {
        for a in &p.memory {
            let Some(q) = a.shared_with.as_deref() else {
                continue;
            };
            let hr = fmt_range(a.host, a.size);
            if q == p.name {
                sink.one(
                    &p.name,
                    Rule::SharedNoPartner,
                    "memory.shared_with",
                    &[q, &hr],
                    format!("{q:?} of {hr} names the partition itself"),
                );
                continue;
            }
            let Some(partner) = b.partitions.iter().find(|x| x.name == q) else {
                sink.one(
                    &p.name,
                    Rule::SharedNoPartner,
                    "memory.shared_with",
                    &[q, &hr],
                    format!("{q:?} of {hr} names no partition"),
                );
                continue;
            };
            let answered = partner.memory.iter().any(|c| {
                c.shared_with.as_deref() == Some(p.name.as_str())
                    && overlaps(a.host, a.size, c.host, c.size)
            });
            if !answered {
                sink.one(
                    &p.name,
                    Rule::SharedNoPartner,
                    "memory.shared_with",
                    &[q, &hr],
                    format!("{q:?} of {hr} has no partner: {q:?} declares no region shared with {:?} there", p.name),
                );
            }
        }
    }
}

/// The load address lies in the partition's memory (and a file image fits in that region); the
/// entry point lies in executable memory.
fn check_entry(p: &PartitionSpec, sink: &mut Sink) {
    let name = p.name.as_str();
    let ranges = |f: &dyn Fn(&RegionSpec) -> bool| {
        let v: Vec<MemRange> = p
            .memory
            .iter()
            .filter(|r| f(r))
            .map(|r| MemRange {
                start: r.guest,
                size: r.size,
            })
            .collect();
        if v.is_empty() {
            "none".to_string()
        } else {
            fmt_ranges(&v)
        }
    };
    let hit = |addr: u64| {
        p.memory
            .iter()
            .find(|r| addr >= r.guest && addr - r.guest < r.size)
    };
    let load = format!("{:#x}", p.load);
    match hit(p.load) {
        None => {
            let mem = ranges(&|_| true);
            sink.one(
                name,
                Rule::Entry,
                "load",
                &[&load, &mem],
                format!("{load} is not in the partition's memory.guest ({mem})"),
            );
        }
        Some(r) => {
            if let ImageSpec::File {
                path,
                size: Some(size),
                ..
            } = &p.image
            {
                if p.load - r.guest + size > r.size {
                    let rg = fmt_range(r.guest, r.size);
                    sink.one(
                        name,
                        Rule::Entry,
                        "image",
                        &[path, &rg],
                        format!("{path:?} ({size} bytes) loaded at {load} runs past the end of memory.guest {rg}"),
                    );
                }
            }
        }
    }
    if !hit(p.entry).is_some_and(|r| r.access.exec) {
        let entry = format!("{:#x}", p.entry);
        let exec = ranges(&|r| r.access.exec);
        sink.one(
            name,
            Rule::Entry,
            "entry",
            &[&entry, &exec],
            format!("{entry} is not in executable memory (flags with x: {exec})"),
        );
    }
}

/// Runs every memory rule over the converted board.
pub fn check(b: &CheckedBoard, sink: &mut Sink) {
    for p in &b.partitions {
        check_regions(b, p, sink);
    }
    for p in &b.partitions {
        check_within(p, sink);
    }
    check_between(b, sink);
    check_partners(b, sink);
    for p in &b.partitions {
        check_entry(p, sink);
    }
}

/// The board's RAM not used by the hypervisor, reserved ranges or any partition, in address order.
pub fn free_memory(b: &CheckedBoard) -> Vec<MemRange> {
    let mut used: Vec<MemRange> = vec![b.hypervisor];
    used.extend(b.reserved.iter().copied());
    for p in &b.partitions {
        used.extend(p.memory.iter().map(|r| MemRange {
            start: r.host,
            size: r.size,
        }));
    }
    used.sort_by_key(|r| r.start);
    let mut free = Vec::new();
    for ram in merged_ram(&b.ram) {
        let mut cursor = ram.start;
        for u in &used {
            if u.end() <= cursor || u.start >= ram.end() {
                continue;
            }
            if u.start > cursor {
                free.push(MemRange {
                    start: cursor,
                    size: u.start - cursor,
                });
            }
            cursor = cursor.max(u.end());
        }
        if cursor < ram.end() {
            free.push(MemRange {
                start: cursor,
                size: ram.end() - cursor,
            });
        }
    }
    free
}
