//! Turns a checked board into Rust source for the image: one `pub static BOARD: board_config::Board`
//! built from the model's own types. The checked board is the same model in the checker's form
//! (`spec::Checked`), and each model type is written from a pattern naming every field, so a
//! field added to the model fails to compile here (and in the checker's conversion) until it is
//! written: no drift between what was checked and what the image gets (hvisor's tool/ABI
//! drift). Only checked boards reach this module; it never validates anything itself.
//!
//! Board text is hostile input for the image build: every string from the file (names, shared
//! partners, image paths) is written as a Rust literal through `{:?}`, which escapes quotes,
//! backslashes and control characters; numbers and enum variants are the only other output.

use super::linux::PlannedBoot;
use super::spec::{guest_name, CheckedBoard, FileSpec, ImageSpec, PartitionSpec, RegionSpec};
use crate::model::{
    Access, Arch, Board, BootMethod, Cache, Emulator, IrqChip, IrqChipKind, LogLevel, MemRange,
    Partition, PartitionConsole, PassthroughUart, Region, TestGuest, Uart, UartAccess,
};
use std::fmt::Write as _;

const M: &str = "board_config";

fn range(r: MemRange) -> String {
    format!(
        "{M}::MemRange {{ start: {:#x}, size: {:#x} }}",
        r.start, r.size
    )
}

fn ranges(rs: &[MemRange]) -> String {
    let v: Vec<String> = rs.iter().map(|&r| range(r)).collect();
    format!("&[{}]", v.join(", "))
}

fn access(a: UartAccess) -> String {
    match a {
        UartAccess::Mmio { base } => format!("{M}::UartAccess::Mmio {{ base: {base:#x} }}"),
        UartAccess::Port { base } => format!("{M}::UartAccess::Port {{ base: {base:#x} }}"),
    }
}

fn flags(a: Access) -> String {
    format!(
        "{M}::Access {{ read: {}, write: {}, exec: {} }}",
        a.read, a.write, a.exec
    )
}

fn region(r: &RegionSpec) -> String {
    // Every field by name, here and in `partition` and `rust`: a field added to the model does
    // not compile until it is written.
    let Region {
        guest,
        host,
        size,
        access,
        cache,
        shared_with,
    } = r;
    let cache = match cache {
        Cache::Cacheable => "Cacheable",
        Cache::Device => "Device",
    };
    let shared = match shared_with {
        Some(q) => format!("Some({q:?})"),
        None => "None".into(),
    };
    format!(
        "{M}::Region::<{M}::Embedded> {{ guest: {:#x}, host: {:#x}, size: {:#x}, access: {}, cache: {M}::Cache::{cache}, shared_with: {shared} }}",
        guest,
        host,
        size,
        flags(*access)
    )
}

fn uart(u: Option<PassthroughUart>) -> String {
    match u {
        None => "None".into(),
        Some(u) => format!(
            "Some({M}::PassthroughUart {{ access: {}, irq: {:?} }})",
            access(u.access),
            u.irq
        ),
    }
}

fn image(i: &ImageSpec) -> String {
    match i {
        ImageSpec::Guest(g) => {
            let v = match g {
                TestGuest::Worker => "Worker",
                TestGuest::Manager => "Manager",
                TestGuest::Hostile => "Hostile",
            };
            debug_assert_eq!(v.to_lowercase(), guest_name(*g));
            format!("{M}::Image::Guest({M}::TestGuest::{v})")
        }
        ImageSpec::Linux {
            kernel,
            initrd,
            plan,
            ..
        } => linux_image(kernel, initrd.as_ref(), plan.as_deref()),
        ImageSpec::File { path, resolved, .. } => {
            // Absolute, so `include_bytes!` finds it from OUT_DIR; rustc then also tracks the file.
            let abs = std::fs::canonicalize(resolved).unwrap_or_else(|_| resolved.clone());
            format!(
                "{M}::Image::File {{ path: {path:?}, bytes: include_bytes!({:?}) }}",
                abs.display().to_string()
            )
        }
    }
}

/// `include_bytes!` of a checked file, by absolute path so it resolves from OUT_DIR.
fn include(f: &FileSpec) -> String {
    let abs = std::fs::canonicalize(&f.resolved).unwrap_or_else(|_| f.resolved.clone());
    format!("include_bytes!({:?})", abs.display().to_string())
}

/// A Linux boot as data: the files by `include_bytes!`, the made blobs as byte literals.
fn linux_image(kernel: &FileSpec, initrd: Option<&FileSpec>, plan: Option<&PlannedBoot>) -> String {
    // A board that failed its checks never reaches the generator, so the plan is there.
    let Some(plan) = plan else {
        return "compile_error!(\"Linux partition without a checked layout\")".into();
    };
    let mut blobs: Vec<String> = plan
        .kernel
        .iter()
        .map(|&(gpa, offset, len)| {
            format!(
                "{M}::Blob {{ gpa: {gpa:#x}, bytes: ({} as &[u8]).split_at({offset:#x}).1.split_at({len:#x}).0 }}",
                include(kernel),
            )
        })
        .collect();
    if let (Some(f), Some(at)) = (initrd, plan.initrd) {
        blobs.push(format!(
            "{M}::Blob {{ gpa: {at:#x}, bytes: {} }}",
            include(f)
        ));
    }
    for (gpa, bytes) in &plan.made {
        let lit: Vec<String> = bytes.iter().map(|b| format!("{b}")).collect();
        blobs.push(format!(
            "{M}::Blob {{ gpa: {gpa:#x}, bytes: &[{}] }}",
            lit.join(",")
        ));
    }
    format!(
        "{M}::Image::Linux({M}::LinuxBoot {{ kernel_path: {:?}, blobs: &[{}], entry: {:#x}, args: [{:#x}, {:#x}, {:#x}], cmdline: {:#x}, cmdline_capacity: {}, zero_page: {:#x}, gdt: {:#x} }})",
        kernel.path,
        blobs.join(", "),
        plan.entry,
        plan.args[0],
        plan.args[1],
        plan.args[2],
        plan.cmdline.0,
        plan.cmdline.1,
        plan.zero_page,
        plan.gdt
    )
}

fn partition(p: &PartitionSpec) -> String {
    let Partition {
        name,
        cpus,
        memory,
        mmio,
        ports,
        irqs,
        uart: passthrough,
        image: what,
        load,
        entry,
        console,
        manager,
    } = p;
    let console = match console {
        PartitionConsole::Virtual => "Virtual",
        PartitionConsole::Passthrough => "Passthrough",
        PartitionConsole::None => "None",
    };
    let mut s = String::new();
    let regions: Vec<String> = memory.iter().map(region).collect();
    let ports: Vec<String> = ports
        .iter()
        .map(|r| {
            format!(
                "{M}::PortRange {{ start: {:#x}, size: {:#x} }}",
                r.start, r.size
            )
        })
        .collect();
    writeln!(s, "    {M}::Partition::<{M}::Embedded> {{").unwrap();
    writeln!(s, "        name: {:?},", name).unwrap();
    writeln!(s, "        cpus: &{:?},", cpus).unwrap();
    writeln!(
        s,
        "        memory: &[\n            {}\n        ],",
        regions.join(",\n            ")
    )
    .unwrap();
    writeln!(s, "        mmio: {},", ranges(mmio)).unwrap();
    writeln!(s, "        ports: &[{}],", ports.join(", ")).unwrap();
    writeln!(s, "        irqs: &{:?},", irqs).unwrap();
    writeln!(s, "        uart: {},", uart(*passthrough)).unwrap();
    writeln!(s, "        image: {},", image(what)).unwrap();
    writeln!(s, "        load: {:#x},", load).unwrap();
    writeln!(s, "        entry: {:#x},", entry).unwrap();
    writeln!(s, "        console: {M}::PartitionConsole::{console},").unwrap();
    writeln!(s, "        manager: {},", manager).unwrap();
    writeln!(s, "    }},").unwrap();
    s
}

/// Rust source defining `pub static BOARD: board_config::Board`.
pub fn rust(b: &CheckedBoard) -> String {
    let Board {
        name,
        arch,
        boot,
        emulator,
        cpus,
        ram,
        hypervisor,
        reserved,
        base_page,
        console,
        irqchip,
        log_level,
        partitions,
    } = &b.board;
    let arch = match arch {
        Arch::LoongArch64 => "LoongArch64",
        Arch::X86_64 => "X86_64",
    };
    let boot = match boot {
        BootMethod::Direct => "Direct",
        BootMethod::Grub => "Grub",
        BootMethod::Uefi => "Uefi",
    };
    let emulator = match emulator {
        None => "None".to_string(),
        Some(e) => format!(
            "Some({M}::Emulator::{})",
            match e {
                Emulator::QemuLoongArchVirt => "QemuLoongArchVirt",
                Emulator::QemuX86 => "QemuX86",
                Emulator::Bochs => "Bochs",
            }
        ),
    };
    let level = match log_level {
        LogLevel::Off => "Off",
        LogLevel::Error => "Error",
        LogLevel::Warn => "Warn",
        LogLevel::Info => "Info",
        LogLevel::Debug => "Debug",
        LogLevel::Trace => "Trace",
    };
    let Uart {
        access: uart_access,
        clock_hz,
        baud,
    } = *console;
    let IrqChip { kind, mmio, lines } = irqchip;
    let chip = match kind {
        IrqChipKind::IoApic => "IoApic",
        IrqChipKind::PchPic => "PchPic",
    };
    let mut s = String::new();
    writeln!(
        s,
        "// Generated by board-config from board {:?}; do not edit.",
        name
    )
    .unwrap();
    writeln!(
        s,
        "pub static BOARD: {M}::Board = {M}::Board::<{M}::Embedded> {{"
    )
    .unwrap();
    writeln!(s, "    name: {:?},", name).unwrap();
    writeln!(s, "    arch: {M}::Arch::{arch},").unwrap();
    writeln!(s, "    boot: {M}::BootMethod::{boot},").unwrap();
    writeln!(s, "    emulator: {emulator},").unwrap();
    writeln!(s, "    cpus: {},", cpus).unwrap();
    writeln!(s, "    ram: {},", ranges(ram)).unwrap();
    writeln!(s, "    hypervisor: {},", range(*hypervisor)).unwrap();
    writeln!(s, "    reserved: {},", ranges(reserved)).unwrap();
    writeln!(s, "    base_page: {:#x},", base_page).unwrap();
    writeln!(
        s,
        "    console: {M}::Uart {{ access: {}, clock_hz: {}, baud: {} }},",
        access(uart_access),
        clock_hz,
        baud
    )
    .unwrap();
    writeln!(
        s,
        "    irqchip: {M}::IrqChip {{ kind: {M}::IrqChipKind::{chip}, mmio: {}, lines: {} }},",
        range(*mmio),
        lines
    )
    .unwrap();
    writeln!(s, "    log_level: {M}::LogLevel::{level},").unwrap();
    writeln!(s, "    partitions: &[").unwrap();
    for p in partitions {
        s.push_str(&partition(p));
    }
    writeln!(s, "    ],").unwrap();
    writeln!(s, "}};").unwrap();
    s
}
