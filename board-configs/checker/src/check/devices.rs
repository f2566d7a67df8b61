//! Ownership rules for everything that is not RAM: partition names, the single manager, CPUs,
//! device MMIO windows, x86 I/O ports, passthrough UARTs, IRQ lines and image files. A partition
//! owns what it is given outright (no scheduler, no arbitration), so anything given twice, or
//! given while the hypervisor itself uses it (its console, the interrupt controller), is a fault.

use super::error::{Rule, Sink};
use super::size::{fmt_range, overlaps};
use super::spans::{overlaps_within, Index, Span};
use super::spec::{CheckedBoard, PartitionSpec};
use crate::model::{Arch, PartitionConsole, UartAccess};
use std::collections::{BTreeMap, BTreeSet};

/// A 16550 occupies eight registers.
const UART_REGS: u64 = 8;

/// Device address spaces: MMIO is physical memory, ports are x86's separate 64K space.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Space {
    Mmio,
    Port,
}

/// One device window a partition is given, tagged with the key it came from.
#[derive(Clone, Debug)]
struct Window {
    key: &'static str,
    space: Space,
    start: u64,
    size: u64,
}

impl Window {
    fn text(&self) -> String {
        fmt_range(self.start, self.size)
    }
}

/// The window a UART occupies. An MMIO UART is passed through by mapping its page, so it owns the
/// whole base page around its registers.
fn uart_window(access: UartAccess, page: u64, key: &'static str) -> Window {
    match access {
        UartAccess::Port { base } => Window {
            key,
            space: Space::Port,
            start: base as u64,
            size: UART_REGS,
        },
        UartAccess::Mmio { base } => Window {
            key,
            space: Space::Mmio,
            start: base - base % page,
            size: page,
        },
    }
}

/// Partition names are unique (shared regions and management hypercalls refer to partitions by name).
fn check_names(b: &CheckedBoard, sink: &mut Sink) {
    let mut seen = BTreeMap::new();
    for p in &b.partitions {
        if p.name.is_empty() {
            sink.board(Rule::Invalid, "partition.name", &[], "is empty".into());
        } else if let Some(text) = super::spec::control_char(&p.name) {
            sink.board(Rule::Invalid, "partition.name", &[&p.name], text);
        } else if seen.insert(p.name.as_str(), ()).is_some() {
            sink.one(
                &p.name,
                Rule::Invalid,
                "name",
                &[&p.name],
                format!("{:?} is given to two partitions", p.name),
            );
        }
    }
}

/// Exactly one partition may call the management hypercalls.
fn check_manager(b: &CheckedBoard, sink: &mut Sink) {
    let managers: Vec<&PartitionSpec> = b.partitions.iter().filter(|p| p.manager).collect();
    match managers.as_slice() {
        [] => sink.board(
            Rule::Manager,
            "manager",
            &[],
            "is true in no partition (exactly one partition must be the manager)".into(),
        ),
        [_] => {}
        [first, rest @ ..] => {
            for other in rest {
                sink.pair(
                    &first.name,
                    &other.name,
                    Rule::Manager,
                    "manager",
                    &["true", "true"],
                    "is true in both (exactly one partition may be the manager)".into(),
                );
            }
        }
    }
}

/// Each CPU belongs to one partition and exists on the board.
fn check_cpus(b: &CheckedBoard, sink: &mut Sink) {
    let mut owner: BTreeMap<u32, &str> = BTreeMap::new();
    for p in &b.partitions {
        let mut listed = BTreeSet::new();
        for &cpu in &p.cpus {
            if cpu >= b.cpus {
                let (c, n) = (cpu.to_string(), b.cpus.to_string());
                sink.one(
                    &p.name,
                    Rule::CpuRange,
                    "cpus",
                    &[&c, &n],
                    format!("{c} is beyond the board's CPUs (board.cpus = {n}: 0..{n})"),
                );
                continue;
            }
            if !listed.insert(cpu) {
                sink.one(
                    &p.name,
                    Rule::CpuTwice,
                    "cpus",
                    &[&cpu.to_string()],
                    format!("{cpu} is listed twice"),
                );
                continue;
            }
            match owner.get(&cpu) {
                Some(first) => sink.pair(
                    first,
                    &p.name,
                    Rule::CpuTwice,
                    "cpus",
                    &[&cpu.to_string()],
                    format!("{cpu} is given to both"),
                ),
                None => {
                    owner.insert(cpu, &p.name);
                }
            }
        }
    }
}

/// The partition's device windows, after the per-window rules (alignment, ports on LoongArch).
fn windows(b: &CheckedBoard, p: &PartitionSpec, sink: &mut Sink) -> Vec<Window> {
    let mut out = Vec::new();
    for m in &p.mmio {
        let w = Window {
            key: "mmio",
            space: Space::Mmio,
            start: m.start,
            size: m.size,
        };
        if m.size == 0 {
            sink.one(
                &p.name,
                Rule::Invalid,
                "mmio",
                &[&w.text()],
                format!("{} has size 0", w.text()),
            );
        } else if let Some((vs, text)) = super::layout::wraps(m.start, m.size) {
            sink.one(&p.name, Rule::Invalid, "mmio", &[&vs], text);
        } else if m.start % b.base_page != 0 || m.size % b.base_page != 0 {
            let page = super::size::fmt_size(b.base_page);
            sink.one(
                &p.name,
                Rule::Misaligned,
                "mmio",
                &[&w.text(), &page],
                format!("{} is not aligned to the {page} base page", w.text()),
            );
        }
        out.push(w);
    }
    for r in &p.ports {
        let (start, end) = (u32::from(r.start), u32::from(r.start) + u32::from(r.size));
        let text = fmt_range(start.into(), r.size.into());
        if r.size == 0 {
            sink.one(
                &p.name,
                Rule::Invalid,
                "ports",
                &[&text],
                format!("{text} has size 0"),
            );
        } else if end > 0x1_0000 {
            sink.one(
                &p.name,
                Rule::Invalid,
                "ports",
                &[&text],
                format!("{text} runs past port 0xffff"),
            );
        }
        out.push(Window {
            key: "ports",
            space: Space::Port,
            start: r.start as u64,
            size: r.size as u64,
        });
    }
    if let Some(u) = p.uart {
        out.push(uart_window(u.access, b.base_page, "uart"));
    }
    if b.arch == Arch::LoongArch64 {
        for w in out.iter().filter(|w| w.space == Space::Port) {
            sink.one(
                &p.name,
                Rule::Invalid,
                w.key,
                &[&w.text()],
                format!(
                    "{} is an I/O port range on a loongarch64 board, which has none",
                    w.text()
                ),
            );
        }
    }
    out
}

/// `mmio [a) overlaps [b)` when both come from one key, `uart [a) overlaps ports [b)` otherwise.
fn overlap_text(a: &Window, c: &Window) -> String {
    if a.key == c.key {
        format!("{} overlaps {}", a.text(), c.text())
    } else {
        format!("{} overlaps {} {}", a.text(), c.key, c.text())
    }
}

/// Device windows: owned once, clear of the hypervisor's own devices, and MMIO never in RAM.
fn check_devices(b: &CheckedBoard, sink: &mut Sink) {
    let all: Vec<Vec<Window>> = b.partitions.iter().map(|p| windows(b, p, sink)).collect();
    let console = uart_window(b.console.access, b.base_page, "board.console");
    let chip = Window {
        key: "board.irqchip",
        space: Space::Mmio,
        start: b.irqchip.mmio.start,
        size: b.irqchip.mmio.size,
    };
    let hit =
        |a: &Window, c: &Window| a.space == c.space && overlaps(a.start, a.size, c.start, c.size);
    let ram = Index::new(
        b.ram
            .iter()
            .enumerate()
            .map(|(i, r)| Span::new(r.start, r.size, i)),
    );
    for (pi, p) in b.partitions.iter().enumerate() {
        let ws = &all[pi];
        // Device windows are mapped identity, so they occupy the same guest addresses.
        let guest = Index::new(
            p.memory
                .iter()
                .enumerate()
                .map(|(i, m)| Span::new(m.guest, m.size, i)),
        );
        for w in ws {
            for hv in [&console, &chip] {
                if hit(w, hv) {
                    sink.one(
                        &p.name,
                        Rule::DeviceTwice,
                        w.key,
                        &[&w.text(), &hv.text()],
                        overlap_text(w, hv),
                    );
                }
            }
            if w.space != Space::Mmio {
                continue;
            }
            let end = w.start.saturating_add(w.size);
            if let Some(r) = ram.hit(w.start, end) {
                let r = b.ram[r.tag];
                let rr = fmt_range(r.start, r.size);
                sink.one(
                    &p.name,
                    Rule::Invalid,
                    w.key,
                    &[&w.text(), &rr],
                    format!("{} overlaps board.ram {rr} (give RAM as memory)", w.text()),
                );
            }
            if let Some(m) = guest.hit(w.start, end) {
                let m = &p.memory[m.tag];
                let g = fmt_range(m.guest, m.size);
                sink.one(
                    &p.name,
                    Rule::GuestOverlap,
                    "memory.guest",
                    &[&g, &w.text()],
                    format!(
                        "{g} overlaps {} {} (mapped at the same guest address)",
                        w.key,
                        w.text()
                    ),
                );
            }
        }
        // The partition's view of the interrupt controller is emulated at the chip's address.
        for m in &p.memory {
            if overlaps(m.guest, m.size, chip.start, chip.size) {
                let g = fmt_range(m.guest, m.size);
                sink.one(
                    &p.name,
                    Rule::GuestOverlap,
                    "memory.guest",
                    &[&g, &chip.text()],
                    format!(
                        "{g} overlaps board.irqchip {} (where the partition's interrupt controller is emulated)",
                        chip.text()
                    ),
                );
            }
        }
        check_virtual_console(b, p, ws, &console, sink);
    }
    check_window_pairs(b, &all, sink);
}

/// No window is given twice, inside a partition or across two, found by one sweep per space.
fn check_window_pairs(b: &CheckedBoard, all: &[Vec<Window>], sink: &mut Sink) {
    for space in [Space::Mmio, Space::Port] {
        let mut spans = Vec::new();
        for (pi, ws) in all.iter().enumerate() {
            for (wi, w) in ws.iter().enumerate().filter(|(_, w)| w.space == space) {
                spans.push(Span::new(w.start, w.size, (pi, wi)));
            }
        }
        let mut pairs: Vec<((usize, usize), (usize, usize))> = overlaps_within(&spans)
            .into_iter()
            .map(|(x, y)| (x.min(y), x.max(y)))
            .collect();
        pairs.sort_unstable();
        for ((pi, ai), (qi, ci)) in pairs {
            let (a, c) = (&all[pi][ai], &all[qi][ci]);
            let (p, q) = (&b.partitions[pi].name, &b.partitions[qi].name);
            let values = [a.text(), c.text()];
            let values = [values[0].as_str(), values[1].as_str()];
            if pi == qi {
                sink.one(p, Rule::DeviceTwice, a.key, &values, overlap_text(a, c));
            } else {
                sink.pair(p, q, Rule::DeviceTwice, a.key, &values, overlap_text(a, c));
            }
        }
    }
}

/// A virtual console is trapped at the architecture's usual UART address in the guest, so nothing
/// the partition is given may sit there.
fn check_virtual_console(
    b: &CheckedBoard,
    p: &PartitionSpec,
    ws: &[Window],
    board_console: &Window,
    sink: &mut Sink,
) {
    if p.console != PartitionConsole::Virtual {
        return;
    }
    let vc = match b.arch {
        Arch::X86_64 => uart_window(UartAccess::Port { base: 0x3f8 }, b.base_page, "console"),
        Arch::LoongArch64 => uart_window(
            UartAccess::Mmio { base: 0x1fe0_01e0 },
            b.base_page,
            "console",
        ),
    };
    let what = format!("the virtual console {}", vc.text());
    let hits =
        |a: &Window, c: &Window| a.space == c.space && overlaps(a.start, a.size, c.start, c.size);
    // A window already reported against the board's console needs no second message.
    for w in ws.iter().filter(|w| !hits(w, board_console)) {
        if hits(w, &vc) {
            sink.one(
                &p.name,
                Rule::DeviceTwice,
                w.key,
                &[&w.text(), &vc.text()],
                format!("{} overlaps {what}", w.text()),
            );
        }
    }
    if vc.space == Space::Mmio {
        for m in &p.memory {
            if overlaps(m.guest, m.size, vc.start, vc.size) {
                let g = fmt_range(m.guest, m.size);
                sink.one(
                    &p.name,
                    Rule::GuestOverlap,
                    "memory.guest",
                    &[&g, &vc.text()],
                    format!("{g} overlaps {what}"),
                );
            }
        }
    }
}

/// Each IRQ line goes to one partition and exists on the interrupt controller.
fn check_irqs(b: &CheckedBoard, sink: &mut Sink) {
    let mut owner: BTreeMap<u32, &str> = BTreeMap::new();
    for p in &b.partitions {
        let mut lines: Vec<(&str, u32)> = p.irqs.iter().map(|&i| ("irqs", i)).collect();
        if let Some(irq) = p.uart.and_then(|u| u.irq) {
            lines.push(("uart.irq", irq));
        }
        for (key, irq) in lines {
            let n = b.irqchip.lines;
            if irq >= n {
                sink.one(
                    &p.name,
                    Rule::Irq,
                    key,
                    &[&irq.to_string(), &n.to_string()],
                    format!("{irq} is beyond the interrupt controller (board.irqchip.lines = {n})"),
                );
                continue;
            }
            match owner.get(&irq) {
                Some(first) if *first == p.name => sink.one(
                    &p.name,
                    Rule::Irq,
                    key,
                    &[&irq.to_string()],
                    format!("{irq} is given twice"),
                ),
                Some(first) => sink.pair(
                    first,
                    &p.name,
                    Rule::Irq,
                    key,
                    &[&irq.to_string()],
                    format!("{irq} is given to both"),
                ),
                None => {
                    owner.insert(irq, &p.name);
                }
            }
        }
    }
}

/// Image files exist inside the board's folder (test guests are built by the workspace and need
/// no file).
fn check_images(b: &CheckedBoard, sink: &mut Sink) {
    for (p, faults) in b.partitions.iter().zip(&b.image_faults) {
        for f in faults {
            let looked = f.resolved.display().to_string();
            sink.one(&p.name, f.rule, f.key, &[&f.path, &looked], f.text.clone());
        }
    }
}

/// Name, manager and CPU rules: run before the memory rules, as they are the most basic.
pub fn check_ownership(b: &CheckedBoard, sink: &mut Sink) {
    check_names(b, sink);
    check_manager(b, sink);
    check_cpus(b, sink);
}

/// Device, IRQ and image rules: run after the memory rules.
pub fn check(b: &CheckedBoard, sink: &mut Sink) {
    check_devices(b, sink);
    check_irqs(b, sink);
    check_images(b, sink);
}
