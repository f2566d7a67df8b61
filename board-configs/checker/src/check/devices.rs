//! Ownership rules for everything that is not RAM: partition names, the single manager, CPUs,
//! device MMIO windows, x86 I/O ports, passthrough UARTs, IRQ lines and image files. A partition
//! owns what it is given outright (no scheduler, no arbitration), so anything given twice, or
//! given while the hypervisor itself uses it (its console, the interrupt controller), is a fault.

use super::error::{Rule, Sink};
use super::size::{fmt_range, overlaps};
use super::spec::{CheckedBoard, ImageSpec, PartitionSpec};
use crate::model::{Arch, PartitionConsole, UartAccess};
use std::collections::BTreeMap;

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
        for (i, &cpu) in p.cpus.iter().enumerate() {
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
            if p.cpus[..i].contains(&cpu) {
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
        if m.start % b.base_page != 0 || m.size % b.base_page != 0 || m.size == 0 {
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
    for (pi, p) in b.partitions.iter().enumerate() {
        let ws = &all[pi];
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
            if w.space == Space::Mmio {
                for r in &b.ram {
                    if overlaps(w.start, w.size, r.start, r.size) {
                        let rr = fmt_range(r.start, r.size);
                        sink.one(
                            &p.name,
                            Rule::Invalid,
                            w.key,
                            &[&w.text(), &rr],
                            format!("{} overlaps board.ram {rr} (give RAM as memory)", w.text()),
                        );
                    }
                }
                // Device windows are mapped identity, so they occupy the same guest addresses.
                for m in &p.memory {
                    if overlaps(w.start, w.size, m.guest, m.size) {
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
            }
        }
        for (i, a) in ws.iter().enumerate() {
            for c in &ws[i + 1..] {
                if hit(a, c) {
                    sink.one(
                        &p.name,
                        Rule::DeviceTwice,
                        a.key,
                        &[&a.text(), &c.text()],
                        overlap_text(a, c),
                    );
                }
            }
        }
        for (qi, q) in b.partitions.iter().enumerate().skip(pi + 1) {
            for a in ws {
                for c in &all[qi] {
                    if hit(a, c) {
                        sink.pair(
                            &p.name,
                            &q.name,
                            Rule::DeviceTwice,
                            a.key,
                            &[&a.text(), &c.text()],
                            overlap_text(a, c),
                        );
                    }
                }
            }
        }
        check_virtual_console(b, p, ws, &console, sink);
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

/// Image files exist (test guests are built by the workspace and need no file).
fn check_images(b: &CheckedBoard, sink: &mut Sink) {
    for p in &b.partitions {
        if let ImageSpec::File {
            path,
            resolved,
            size: None,
        } = &p.image
        {
            let looked = resolved.display().to_string();
            sink.one(
                &p.name,
                Rule::ImageMissing,
                "image",
                &[path, &looked],
                format!("{path:?} does not exist (looked for {looked})"),
            );
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
