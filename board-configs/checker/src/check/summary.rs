//! The human summary `cargo xtask check-config` prints for a board that passed: the board in a few
//! lines, one table per partition (CPUs, memory GPA→HPA with sizes and flags, devices, IRQs) and the
//! RAM nobody uses. It is what an owner reads to see that the file says what they meant, so it
//! prints sizes in units and ranges half-open, the same notation as the file and the errors.

use super::layout::free_memory;
use super::size::{fmt_range, fmt_size};
use super::spec::{arch_name, fmt_flags, guest_name, CheckedBoard, ImageSpec, PartitionSpec};
use crate::model::{
    BootMethod, Cache, Emulator, IrqChipKind, MemRange, PartitionConsole, UartAccess,
};
use std::fmt::Write as _;

/// Left-aligned columns, two spaces apart, each row prefixed with `indent`.
fn table(rows: &[Vec<String>], indent: &str) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::from(indent);
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = width[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A total for reading, not for copying back: exact when whole mebibytes, else to 0.1M.
fn approx(bytes: u64) -> String {
    if bytes < (1 << 20) || bytes.is_multiple_of(1 << 20) {
        fmt_size(bytes)
    } else {
        format!("{:.1}M", bytes as f64 / (1u64 << 20) as f64)
    }
}

fn sized(r: MemRange) -> String {
    format!("{} {}", fmt_range(r.start, r.size), fmt_size(r.size))
}

fn uart_text(a: UartAccess) -> String {
    match a {
        UartAccess::Mmio { base } => format!("mmio {base:#x}"),
        UartAccess::Port { base } => format!("port {base:#x}"),
    }
}

fn join_or_none(v: Vec<String>) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn board_header(b: &CheckedBoard) -> String {
    let boot = match b.boot {
        BootMethod::Direct => "direct",
        BootMethod::Grub => "grub",
        BootMethod::Uefi => "uefi",
    };
    let emulator = match b.emulator {
        None => String::new(),
        Some(e) => format!(
            ", emulator {}",
            match e {
                Emulator::QemuLoongArchVirt => "qemu-loongarch-virt",
                Emulator::QemuX86 => "qemu-x86",
                Emulator::Bochs => "bochs",
            }
        ),
    };
    let chip = match b.irqchip.kind {
        IrqChipKind::IoApic => "ioapic",
        IrqChipKind::PchPic => "pch-pic",
    };
    let mut s = format!(
        "board {} ({}, {} CPUs, {} base page, boot {boot}{emulator}) from {}\n",
        b.name,
        arch_name(b.arch),
        b.cpus,
        fmt_size(b.base_page),
        b.file.display()
    );
    let rows = vec![
        vec![
            "ram".into(),
            join_or_none(b.ram.iter().map(|&r| sized(r)).collect()),
        ],
        vec!["hypervisor".into(), sized(b.hypervisor)],
        vec![
            "reserved".into(),
            join_or_none(b.reserved.iter().map(|&r| sized(r)).collect()),
        ],
        vec![
            "console".into(),
            format!("{}, {} baud", uart_text(b.console.access), b.console.baud),
        ],
        vec![
            "irqchip".into(),
            format!(
                "{chip} {}, {} lines",
                fmt_range(b.irqchip.mmio.start, b.irqchip.mmio.size),
                b.irqchip.lines
            ),
        ],
    ];
    s.push_str(&table(&rows, "  "));
    s
}

fn partition_table(p: &PartitionSpec) -> String {
    let image = match &p.image {
        ImageSpec::Guest(g) => format!("test guest {:?}", guest_name(*g)),
        ImageSpec::File { path, size, .. } => {
            format!("image {path:?} ({} bytes)", size.unwrap_or(0))
        }
        ImageSpec::Linux {
            kernel,
            initrd,
            plan,
            ..
        } => {
            let rd = initrd
                .as_ref()
                .map_or(String::new(), |f| format!(" with initrd {:?}", f.path));
            match plan {
                Some(pl) => format!(
                    "Linux {:?}{rd}, loaded at {:#x}, entry {:#x}, {} of RAM in its memory map",
                    kernel.path,
                    pl.kernel.first().map_or(0, |k| k.0),
                    pl.entry,
                    fmt_size(pl.ram_bytes)
                ),
                None => format!("Linux {:?}{rd}", kernel.path),
            }
        }
    };
    let boots = match &p.image {
        ImageSpec::Linux { .. } => image,
        _ => format!("{image} at {:#x}, entry {:#x}", p.load, p.entry),
    };
    let console = match p.console {
        PartitionConsole::Virtual => "virtual",
        PartitionConsole::Passthrough => "passthrough uart",
        PartitionConsole::None => "none",
    };
    let role = if p.manager { " (manager)" } else { "" };
    let cpus: Vec<String> = p.cpus.iter().map(u32::to_string).collect();
    let mut s = format!("partition {:?}{role}\n", p.name);
    let mut head = vec![
        vec!["cpus".into(), cpus.join(", ")],
        vec!["boots".into(), boots],
        vec!["console".into(), console.into()],
    ];
    let mut devices = Vec::new();
    devices.extend(p.mmio.iter().map(|&m| format!("mmio {}", sized(m))));
    devices.extend(
        p.ports
            .iter()
            .map(|r| format!("ports {}", fmt_range(r.start as u64, r.size as u64))),
    );
    if let Some(u) = p.uart {
        devices.push(format!("uart {}", uart_text(u.access)));
    }
    let mut irqs: Vec<String> = p.irqs.iter().map(u32::to_string).collect();
    if let Some(irq) = p.uart.and_then(|u| u.irq) {
        irqs.push(format!("{irq} (uart)"));
    }
    head.push(vec!["devices".into(), join_or_none(devices)]);
    head.push(vec!["irqs".into(), join_or_none(irqs)]);
    s.push_str(&table(&head, "  "));
    let mut rows = vec![vec![
        "memory".to_string(),
        "guest (GPA)".into(),
        "".into(),
        "host (HPA)".into(),
        "size".into(),
        "flags".into(),
        "cache".into(),
        "shared with".into(),
    ]];
    for r in &p.memory {
        rows.push(vec![
            String::new(),
            fmt_range(r.guest, r.size),
            "->".into(),
            fmt_range(r.host, r.size),
            fmt_size(r.size),
            fmt_flags(r.access),
            match r.cache {
                Cache::Cacheable => "cacheable".into(),
                Cache::Device => "device".into(),
            },
            r.shared_with
                .as_ref()
                .map_or(String::new(), |q| format!("{q:?}")),
        ]);
    }
    s.push_str(&table(&rows, "  "));
    let total: u64 = p.memory.iter().map(|r| r.size).sum();
    let _ = writeln!(s, "  total memory {}", approx(total));
    s
}

/// The whole summary, ending with a newline.
pub fn summary(b: &CheckedBoard) -> String {
    let mut s = board_header(b);
    for p in &b.partitions {
        s.push('\n');
        s.push_str(&partition_table(p));
    }
    let owned: Vec<u32> = b
        .partitions
        .iter()
        .flat_map(|p| p.cpus.iter().copied())
        .collect();
    let idle: Vec<String> = (0..b.cpus)
        .filter(|c| !owned.contains(c))
        .map(|c| c.to_string())
        .collect();
    let _ = writeln!(s, "\nidle CPUs: {}", join_or_none(idle));
    let free = free_memory(b);
    let total: u64 = free.iter().map(|r| r.size).sum();
    let ram: u64 = b.ram.iter().map(|r| r.size).sum();
    let _ = writeln!(s, "free memory: {} of {} RAM", approx(total), approx(ram));
    let rows: Vec<Vec<String>> = free
        .iter()
        .map(|r| vec![fmt_range(r.start, r.size), fmt_size(r.size)])
        .collect();
    s.push_str(&table(&rows, "  "));
    s
}
