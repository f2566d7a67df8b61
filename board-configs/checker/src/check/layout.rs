//! Memory layout rules: every region aligned to the base page, inside the board's RAM, clear of the
//! hypervisor and of reserved RAM; no two regions of one partition overlapping in guest-physical
//! space; no host memory shared between partitions unless both sides declare the same range shared
//! with each other; and the image's load address and entry point inside suitable memory. These are
//! the faults that corrupt memory silently at run time (hvisor #310, #397), so each is reported with
//! both ranges.

use super::error::{Rule, Sink};
use super::limits::link_address;
use super::size::{fmt_range, fmt_size};
use super::spans::{overlaps_within, Index, Span};
use super::spec::{arch_name, CheckedBoard, ImageSpec, PartitionSpec, RegionSpec};
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

/// The board's RAM, merged, for containment queries.
fn ram_index(b: &CheckedBoard) -> Index<()> {
    Index::new(
        merged_ram(&b.ram)
            .into_iter()
            .map(|r| Span::new(r.start, r.size, ())),
    )
}

/// The value and the message when `[start, start + size)` does not end below 2^64.
pub fn wraps(start: u64, size: u64) -> Option<(String, String)> {
    start.checked_add(size).is_none().then(|| {
        let (vs, size) = (format!("{start:#x}"), format!("{size:#x}"));
        let text = format!("{vs} + {size} ends at or past 2^64, the top of the address space");
        (vs, text)
    })
}

/// A board-level range (`hypervisor`, `reserved`, `ram`, `irqchip`) that ends at or past 2^64.
fn board_wrap(sink: &mut Sink, key: &str, start: u64, size: u64) {
    if let Some((vs, text)) = wraps(start, size) {
        sink.board(Rule::Invalid, key, &[&vs, &format!("{size:#x}")], text);
    }
}

/// The hypervisor's own region (inside RAM, page-aligned, holding the image's link address) and
/// the reserved ranges (inside RAM, page-aligned): partitions are carved around both.
pub fn check_board(b: &CheckedBoard, sink: &mut Sink) {
    for r in &b.ram {
        board_wrap(sink, "ram", r.start, r.size);
    }
    board_wrap(sink, "irqchip", b.irqchip.mmio.start, b.irqchip.mmio.size);
    let ram = ram_index(b);
    let page = fmt_size(b.base_page);
    let h = b.hypervisor;
    let hr = fmt_range(h.start, h.size);
    if h.size == 0 {
        sink.board(
            Rule::Invalid,
            "hypervisor",
            &[&hr],
            "is empty: it must hold the image, its heap and its stacks".into(),
        );
    } else {
        board_wrap(sink, "hypervisor", h.start, h.size);
        let link = link_address(b.arch);
        if !(h.start..h.end()).contains(&link) {
            let (l, arch) = (format!("{link:#x}"), arch_name(b.arch));
            sink.board(
                Rule::Footprint,
                "hypervisor",
                &[&hr, &l],
                format!("{hr} does not hold the image's link address {l} (where {arch} images are linked and loaded)"),
            );
        }
    }
    let mut ranges = vec![("hypervisor", h)];
    ranges.extend(b.reserved.iter().map(|&r| ("reserved", r)));
    for (i, (key, r)) in ranges.into_iter().enumerate() {
        if i > 0 {
            board_wrap(sink, key, r.start, r.size);
        }
        if r.size == 0 {
            if i > 0 {
                sink.board(
                    Rule::Invalid,
                    key,
                    &["0"],
                    format!("has size 0 at {:#x}", r.start),
                );
            }
            continue;
        }
        let rr = fmt_range(r.start, r.size);
        if !b.ram.is_empty() && !ram.covers(r.start, r.end()) {
            let all = fmt_ranges(&b.ram);
            sink.board(
                Rule::OutsideRam,
                key,
                &[&rr, &all],
                format!("{rr} is not inside board.ram ({all})"),
            );
        }
        if !r.start.is_multiple_of(b.base_page) || !r.size.is_multiple_of(b.base_page) {
            sink.board(
                Rule::Misaligned,
                key,
                &[&rr, &page],
                format!("{rr} is not aligned to the {page} base page"),
            );
        }
    }
}

/// Alignment, bounds and address-space wrap of every region.
fn check_regions(
    b: &CheckedBoard,
    p: &PartitionSpec,
    ram: &Index<()>,
    kept: &Index<usize>,
    sink: &mut Sink,
) {
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
            if let Some((vs, text)) = wraps(v, r.size) {
                sink.one(
                    name,
                    Rule::Invalid,
                    key,
                    &[&vs, &format!("{:#x}", r.size)],
                    text,
                );
            }
        }
        if r.size == 0 {
            continue;
        }
        let hr = fmt_range(r.host, r.size);
        let end = r.host.saturating_add(r.size);
        if !b.ram.is_empty() && !ram.covers(r.host, end) {
            let ram = fmt_ranges(&b.ram);
            sink.one(
                name,
                Rule::OutsideRam,
                "memory.host",
                &[&hr, &ram],
                format!("{hr} is not inside board.ram ({ram})"),
            );
        }
        if let Some(k) = kept.hit(r.host, end) {
            let (what, kr) = if k.tag == 0 {
                ("board.hypervisor", b.hypervisor)
            } else {
                ("board.reserved", b.reserved[k.tag - 1])
            };
            let kv = fmt_range(kr.start, kr.size);
            sink.one(
                name,
                Rule::Hypervisor,
                "memory.host",
                &[&hr, &kv],
                format!("{hr} overlaps {what} {kv}"),
            );
        }
    }
}

/// Emits `(i, j)` overlap pairs in file order, the earlier item first.
fn in_file_order(pairs: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    let mut v: Vec<(usize, usize)> = pairs
        .into_iter()
        .map(|(a, c)| (a.min(c), a.max(c)))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Inside one partition: guest ranges must not overlap (one GPA, one meaning) and host ranges must
/// not alias (dirty logging and write protection work per host page).
fn check_within(p: &PartitionSpec, sink: &mut Sink) {
    let name = p.name.as_str();
    type Key = fn(&RegionSpec) -> u64;
    let sides: [(&str, Rule, Key); 2] = [
        ("memory.guest", Rule::GuestOverlap, |r| r.guest),
        ("memory.host", Rule::HostOverlap, |r| r.host),
    ];
    for (key, rule, at) in sides {
        let spans: Vec<Span<usize>> = p
            .memory
            .iter()
            .enumerate()
            .map(|(i, r)| Span::new(at(r), r.size, i))
            .collect();
        for (i, j) in in_file_order(overlaps_within(&spans)) {
            let (a, c) = (&p.memory[i], &p.memory[j]);
            let (xs, ys) = (fmt_range(at(a), a.size), fmt_range(at(c), c.size));
            sink.one(name, rule, key, &[&xs, &ys], format!("{xs} overlaps {ys}"));
        }
    }
}

/// Whether `a` (in partition `p`) and `c` (in partition `q`) are declared as one shared region.
fn mutually_shared(p: &str, a: &RegionSpec, q: &str, c: &RegionSpec) -> bool {
    a.shared_with.as_deref() == Some(q) && c.shared_with.as_deref() == Some(p)
}

/// Between partitions: host ranges overlap only as declared, identical, mutual shared regions.
///
/// A sweep in address order keeps the regions still open at each start. A layout that passes has
/// at most two open at any address (a shared pair): a third must overlap one of two others
/// illegally, unless both of those are in one partition, which `check_within` reports. So each
/// region is compared with at most two open ones, and the sweep stays O(n log n).
fn check_between(b: &CheckedBoard, sink: &mut Sink) {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut all: Vec<Span<(usize, usize)>> = Vec::new();
    for (pi, p) in b.partitions.iter().enumerate() {
        all.extend(
            p.memory
                .iter()
                .enumerate()
                .map(|(ri, r)| Span::new(r.host, r.size, (pi, ri))),
        );
    }
    all.retain(|s| s.end > s.start);
    all.sort_by_key(|s| (s.start, s.end, s.tag));
    let mut open: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut found: Vec<((usize, usize), (usize, usize))> = Vec::new();
    for (k, s) in all.iter().enumerate() {
        while open.peek().is_some_and(|Reverse((end, _))| *end <= s.start) {
            open.pop();
        }
        for Reverse((_, o)) in open.iter().take(2) {
            let o = &all[*o];
            if o.tag.0 != s.tag.0 {
                found.push((o.tag.min(s.tag), o.tag.max(s.tag)));
            }
        }
        open.push(Reverse((s.end, k)));
    }
    found.sort_unstable();
    found.dedup();
    for ((pi, ai), (qi, ci)) in found {
        let (p, q) = (&b.partitions[pi], &b.partitions[qi]);
        let (a, c) = (&p.memory[ai], &q.memory[ci]);
        let (xs, ys) = (fmt_range(a.host, a.size), fmt_range(c.host, c.size));
        let message = if !mutually_shared(&p.name, a, &q.name, c) {
            format!("{xs} overlaps {ys}")
        } else if (a.host, a.size) != (c.host, c.size) {
            format!("shared {xs} differs from its partner's {ys} (use one range)")
        } else {
            continue;
        };
        sink.pair(
            &p.name,
            &q.name,
            Rule::HostOverlap,
            "memory.host",
            &[&xs, &ys],
            message,
        );
    }
}

/// Every `shared_with` names another partition that shares an overlapping range back.
fn check_partners(b: &CheckedBoard, sink: &mut Sink) {
    use std::collections::HashMap;
    let by_name: HashMap<&str, usize> = b
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .rev()
        .collect();
    // Per partition, its regions by the partner they name: answers "does q share back here".
    let mut shared: HashMap<(usize, &str), Vec<Span<()>>> = HashMap::new();
    for (i, p) in b.partitions.iter().enumerate() {
        for r in &p.memory {
            if let Some(q) = r.shared_with.as_deref() {
                shared
                    .entry((i, q))
                    .or_default()
                    .push(Span::new(r.host, r.size, ()));
            }
        }
    }
    let shared: HashMap<(usize, &str), Index<()>> = shared
        .into_iter()
        .map(|(k, v)| (k, Index::new(v)))
        .collect();
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
            let Some(&partner) = by_name.get(q) else {
                sink.one(
                    &p.name,
                    Rule::SharedNoPartner,
                    "memory.shared_with",
                    &[q, &hr],
                    format!("{q:?} of {hr} names no partition"),
                );
                continue;
            };
            let answered = shared
                .get(&(partner, p.name.as_str()))
                .and_then(|idx| idx.hit(a.host, a.host.saturating_add(a.size)))
                .is_some();
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
    // A Linux kernel's load address and entry are the loader's, checked by `super::linux`.
    if matches!(p.image, ImageSpec::Linux { .. }) {
        return;
    }
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
    // Regions that overlap in guest space are reported elsewhere; `find` is linear but runs twice.
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
                if (p.load - r.guest).saturating_add(*size) > r.size {
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
    let ram = ram_index(b);
    // Tag 0 is the hypervisor, tag i the reserved range i - 1.
    let kept = Index::new(
        std::iter::once(b.hypervisor)
            .chain(b.reserved.iter().copied())
            .enumerate()
            .map(|(i, r)| Span::new(r.start, r.size, i)),
    );
    for p in &b.partitions {
        check_regions(b, p, &ram, &kept, sink);
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
    used.retain(|u| u.size > 0);
    used.sort_by_key(|r| r.start);
    // reach[i]: the furthest end among used[..i], for ranges that start before a RAM range.
    let mut reach = vec![0u64; used.len() + 1];
    for (i, u) in used.iter().enumerate() {
        reach[i + 1] = reach[i].max(u.end());
    }
    let mut free = Vec::new();
    for ram in merged_ram(&b.ram) {
        let first = used.partition_point(|u| u.start < ram.start);
        let mut cursor = ram.start.max(reach[first]);
        for u in used[first..].iter().take_while(|u| u.start < ram.end()) {
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
