//! What the image can do and what it keeps for itself, as rules. A board file can describe a
//! machine the image cannot run safely: more CPUs than it has stacks for, addresses its stage-2
//! tables or its own mappings cannot reach, interrupt line numbers that alias another line's
//! registers, or devices the hypervisor itself drives (its timer, the emulators' exit ports) or
//! that reset or reconfigure the whole machine (PCI configuration, the reset ports, the local
//! APIC, HPET and IOMMU). Each number here names the platform code it mirrors.

use super::error::{Rule, Sink};
use super::size::{fmt_range, fmt_size};
use super::spec::{arch_name, CheckedBoard, PartitionSpec};
use crate::model::{Arch, IrqChipKind, UartAccess};

/// The image's stacks and per-CPU state are static, one per CPU (`platform/src/boot.rs`).
pub const MAX_CPUS: u32 = crate::model::MAX_CPUS as u32;

/// The physical address each architecture's image is linked and loaded at (the linker scripts
/// `platform/src/arch/*/linker.ld`; a test reads them back).
pub fn link_address(arch: Arch) -> u64 {
    match arch {
        Arch::X86_64 => 0x10_0000,
        Arch::LoongArch64 => 0x20_0000,
    }
}

/// Guest-physical bits the stage-2 tables translate: 4-level EPT and NPT walk 48 bits; the
/// LoongArch GPA table the image builds (`mmu::LoongArch16K`: 16K pages, 3 levels of 2048
/// entries) walks 14 + 3 * 11 = 47.
pub fn guest_bits(arch: Arch) -> u32 {
    match arch {
        Arch::X86_64 => 48,
        Arch::LoongArch64 => 47,
    }
}

/// One past the highest physical address the hypervisor itself can touch: x86 images identity-map
/// [0, 4G) at boot (`platform/src/arch/x86_64/entry.rs`) and reach the I/O APIC and every byte
/// they load into a partition through that map; LoongArch images use the direct-mapped windows,
/// which cover the 48-bit physical space (PALEN) of the 3A5000 and QEMU `virt`.
pub fn reach(arch: Arch) -> u64 {
    match arch {
        Arch::X86_64 => 1 << 32,
        Arch::LoongArch64 => 1 << 48,
    }
}

/// Lines the controller has: a PC's I/O APIC has 24 redirection entries (the image gives device
/// lines 32 vectors, `platform/src/arch/x86_64/ioapic.rs`); a PCH-PIC has 64 inputs, one bit of
/// each 64-bit register apiece. Past these, line numbers select another line's entry or bits.
pub fn max_lines(kind: IrqChipKind) -> u32 {
    match kind {
        IrqChipKind::IoApic => 24,
        IrqChipKind::PchPic => 64,
    }
}

/// The register block a controller's window must cover, so no partition window can take part of
/// it: the I/O APIC's IOREGSEL, IOWIN and EOI (at 0x40); the PCH-PIC up to its polarity register.
pub fn register_block(kind: IrqChipKind) -> u64 {
    match kind {
        IrqChipKind::IoApic => 0x44,
        IrqChipKind::PchPic => 0x3e8,
    }
}

/// The kind as the file spells it, with its article.
fn kind_name(kind: IrqChipKind) -> &'static str {
    match kind {
        IrqChipKind::IoApic => "an ioapic",
        IrqChipKind::PchPic => "a pch-pic",
    }
}

/// x86 I/O ports no partition may have: `[start, end)` and why.
pub const HYPERVISOR_PORTS: [(u64, u64, &str); 7] = [
    (0x40, 0x44, "the PIT, the hypervisor's delay timer"),
    (
        0x61,
        0x62,
        "port B, which gates the hypervisor's PIT channel 2",
    ),
    (
        0x64,
        0x65,
        "the keyboard controller's command port, which can reset the machine",
    ),
    (
        0x92,
        0x93,
        "system control port A, whose bit 0 resets the machine",
    ),
    (
        0xf4,
        0xf8,
        "the emulator exit device (isa-debug-exit), which the hypervisor writes to end a run",
    ),
    (
        0xcf8,
        0xd00,
        "PCI configuration and reset control (0xcf9), which reconfigure or reset the machine",
    ),
    (
        0x8900,
        0x8901,
        "the Bochs shutdown port, which the hypervisor writes to end a run",
    ),
];

/// x86 physical pages no partition window may map: `[start, end)` and why. The VT-d range is
/// where Intel chipsets place their remapping units; a board whose IOMMU sits elsewhere must not
/// give it out either, which the checker cannot see.
pub const X86_RESERVED_MMIO: [(u64, u64, &str); 3] = [
    (0xfed0_0000, 0xfed0_4000, "the HPET, a machine-wide timer"),
    (
        0xfed9_0000,
        0xfeda_0000,
        "the IOMMU (VT-d) registers, which control DMA remapping",
    ),
    (0xfee0_0000, 0xfef0_0000, "the local APIC and MSI window"),
];

fn meets(start: u64, end: u64, s: u64, e: u64) -> bool {
    start < e && s < end
}

/// The MMIO page of an MMIO UART, or `None` for a port UART.
fn uart_page(access: UartAccess, page: u64) -> Option<(u64, u64)> {
    match access {
        UartAccess::Mmio { base } => {
            let start = base - base % page;
            Some((start, start.saturating_add(page)))
        }
        UartAccess::Port { .. } => None,
    }
}

/// CPU count, the interrupt controller and the console against what the image supports.
pub fn check_board(b: &CheckedBoard, sink: &mut Sink) {
    if b.cpus > MAX_CPUS {
        let n = b.cpus.to_string();
        sink.board(
            Rule::Limit,
            "cpus",
            &[&n],
            format!("{n} is more than the image supports (at most {MAX_CPUS})"),
        );
    }
    let chip = b.irqchip;
    let kind = kind_name(chip.kind);
    let cr = fmt_range(chip.mmio.start, chip.mmio.size);
    if chip.mmio.size == 0 {
        sink.board(
            Rule::Invalid,
            "irqchip.size",
            &["0"],
            "is 0: the interrupt controller's registers need a window".into(),
        );
    } else if chip.mmio.size < register_block(chip.kind) {
        let (s, need) = (
            fmt_size(chip.mmio.size),
            fmt_size(register_block(chip.kind)),
        );
        sink.board(
            Rule::Invalid,
            "irqchip.size",
            &[&s, &need],
            format!("{s} is smaller than {kind}'s registers ({need})"),
        );
    }
    let max = max_lines(chip.kind);
    if chip.lines > max {
        let n = chip.lines.to_string();
        sink.board(
            Rule::Limit,
            "irqchip.lines",
            &[&n],
            format!("{n} is more than {kind} has (at most {max}: further numbers alias other lines' registers)"),
        );
    }
    let top = reach(b.arch);
    let arch = arch_name(b.arch);
    if chip.mmio.end() > top {
        let r = fmt_range(0, top);
        sink.board(
            Rule::Limit,
            "irqchip",
            &[&cr, &r],
            format!("{cr} is beyond what the {arch} image can reach ({r})"),
        );
    }
    let console = uart_page(b.console.access, b.base_page);
    if let Some((s, e)) = console {
        if e > top {
            let (c, r) = (fmt_range(s, e - s), fmt_range(0, top));
            sink.board(
                Rule::Limit,
                "console",
                &[&c, &r],
                format!("{c} is beyond what the {arch} image can reach ({r})"),
            );
        }
    }
    let devices = [
        ("irqchip", Some((chip.mmio.start, chip.mmio.end()))),
        ("console", console),
    ];
    for (key, window) in devices {
        let Some((s, e)) = window else { continue };
        for r in &b.ram {
            if meets(s, e, r.start, r.end()) {
                let (w, rr) = (fmt_range(s, e - s), fmt_range(r.start, r.size));
                sink.board(
                    Rule::HypervisorDevice,
                    key,
                    &[&w, &rr],
                    format!("{w} overlaps board.ram {rr} (device registers are not RAM a partition may be given)"),
                );
            }
        }
    }
    if b.arch == Arch::X86_64 {
        for r in &b.ram {
            for (s, e, why) in X86_RESERVED_MMIO {
                if meets(r.start, r.end(), s, e) {
                    let (rr, w) = (fmt_range(r.start, r.size), fmt_range(s, e - s));
                    sink.board(
                        Rule::HypervisorDevice,
                        "ram",
                        &[&rr, &w],
                        format!("{rr} overlaps {w}, {why}"),
                    );
                }
            }
        }
    }
}

/// A partition's addresses against the stage-2 width and the hypervisor's reach, and its device
/// windows against what the hypervisor keeps.
pub fn check_partition(b: &CheckedBoard, p: &PartitionSpec, sink: &mut Sink) {
    let bits = guest_bits(b.arch);
    let gtop = 1u64 << bits;
    let arch = arch_name(b.arch);
    let space = fmt_range(0, gtop);
    let beyond = |what: &str| {
        format!("{what} is beyond the {bits}-bit guest-physical space of {arch}'s stage-2 tables ({space})")
    };
    for r in &p.memory {
        let g = fmt_range(r.guest, r.size);
        if r.guest.saturating_add(r.size) > gtop {
            sink.one(
                &p.name,
                Rule::Limit,
                "memory.guest",
                &[&g, &space],
                beyond(&g),
            );
        }
        let top = reach(b.arch);
        if r.host.saturating_add(r.size) > top {
            let (h, rr) = (fmt_range(r.host, r.size), fmt_range(0, top));
            sink.one(
                &p.name,
                Rule::Limit,
                "memory.host",
                &[&h, &rr],
                format!(
                    "{h} is beyond what the {arch} image can reach to load and serve it ({rr})"
                ),
            );
        }
    }
    // Device windows are mapped identity, so their host addresses are guest addresses too.
    let mut windows: Vec<(&str, u64, u64)> =
        p.mmio.iter().map(|m| ("mmio", m.start, m.end())).collect();
    if let Some((s, e)) = p.uart.and_then(|u| uart_page(u.access, b.base_page)) {
        windows.push(("uart", s, e));
    }
    for &(key, s, e) in &windows {
        let w = fmt_range(s, e - s);
        if e > gtop {
            sink.one(&p.name, Rule::Limit, key, &[&w, &space], beyond(&w));
        }
        if b.arch != Arch::X86_64 {
            continue;
        }
        for (rs, re, why) in X86_RESERVED_MMIO {
            if meets(s, e, rs, re) {
                let r = fmt_range(rs, re - rs);
                sink.one(
                    &p.name,
                    Rule::HypervisorDevice,
                    key,
                    &[&w, &r],
                    format!("{w} overlaps {r}, {why}"),
                );
            }
        }
    }
    if b.arch != Arch::X86_64 {
        return;
    }
    let mut ports: Vec<(&str, u64, u64)> = p
        .ports
        .iter()
        .map(|r| {
            (
                "ports",
                u64::from(r.start),
                u64::from(r.start) + u64::from(r.size),
            )
        })
        .collect();
    if let Some(UartAccess::Port { base }) = p.uart.map(|u| u.access) {
        ports.push(("uart", u64::from(base), u64::from(base) + 8));
    }
    for (key, s, e) in ports {
        for (hs, he, why) in HYPERVISOR_PORTS {
            if meets(s, e, hs, he) {
                let (w, h) = (fmt_range(s, e - s), fmt_range(hs, he - hs));
                sink.one(
                    &p.name,
                    Rule::HypervisorDevice,
                    key,
                    &[&w, &h],
                    format!("{w} overlaps {h}, {why}"),
                );
            }
        }
    }
}

/// Where the built image lies in physical memory: from its lowest loadable byte to the end of
/// its zero-initialised data (heap and stacks are static, in .bss).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    pub start: u64,
    pub end: u64,
}

/// The image build's check, once the image is linked: `board.hypervisor` covers the image's real
/// footprint, so no partition can be given the hypervisor's code, heap or stacks.
pub fn footprint_fault(b: &CheckedBoard, fp: Footprint, sink: &mut Sink) {
    let h = b.hypervisor;
    let hr = fmt_range(h.start, h.size);
    if fp.end <= fp.start {
        let f = format!("[{:#x}, {:#x})", fp.start, fp.end);
        sink.board(
            Rule::Footprint,
            "hypervisor",
            &[&f],
            format!("cannot be checked: the image's footprint {f} is empty"),
        );
    } else if fp.start < h.start || fp.end > h.end() {
        let f = format!("[{:#x}, {:#x})", fp.start, fp.end);
        let size = fmt_size(fp.end - fp.start);
        sink.board(
            Rule::Footprint,
            "hypervisor",
            &[&hr, &f],
            format!("{hr} does not cover the image as linked, {f} ({size}: code, data, heap and stacks)"),
        );
    }
}
