//! The checked board: the file's content resolved into the model's own types, in the checker's
//! form ([`Checked`]: owned, so it outlives the text), plus the conversion from TOML. Conversion catches faults local to one value
//! (a console with both `mmio` and `port`, bad `flags` letters, 16K pages on x86); it records them
//! and carries on with a stand-in value, so the layout checks still run and the owner sees every
//! fault in one pass.

use super::error::{Rule, Sink};
use super::schema::*;
use super::size::{fmt_range, fmt_size};
use super::spans::{overlaps_within, Span};
use crate::model::{
    Access, Arch, Board, BootMethod, Cache, Emulator, Form, IrqChip, IrqChipKind, LogLevel,
    MemRange, Partition, PartitionConsole, PassthroughUart, PortRange, Region, TestGuest, Uart,
    UartAccess,
};
use std::path::{Path, PathBuf};

/// The checker's [`Form`] of the model: owned names and lists (so a checked board outlives the
/// text), and images as the files the board names, with the Linux boot the checker planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checked;

impl Form for Checked {
    type Text = String;
    type List<T: Clone + core::fmt::Debug + PartialEq + Eq + 'static> = Vec<T>;
    type Image = ImageSpec;
}

/// One checked partition: the model's, held the checker's way.
pub type PartitionSpec = Partition<Checked>;

/// One checked memory region: the model's, held the checker's way.
pub type RegionSpec = Region<Checked>;

/// A board file that passed every check: the model's board (read through `Deref`) and what only
/// the checker needs. `xtask` and the code generator read it.
#[derive(Clone, Debug)]
pub struct CheckedBoard {
    /// The file as the caller named it.
    pub file: PathBuf,
    pub board: Board<Checked>,
    /// Per partition, in order: why a file may not be embedded (reported with the image rules).
    pub(crate) image_faults: Vec<Vec<FileFault>>,
}

impl core::ops::Deref for CheckedBoard {
    type Target = Board<Checked>;

    fn deref(&self) -> &Board<Checked> {
        &self.board
    }
}

impl core::ops::DerefMut for CheckedBoard {
    fn deref_mut(&mut self) -> &mut Board<Checked> {
        &mut self.board
    }
}

/// A file that may not be embedded, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileFault {
    pub key: &'static str,
    pub path: String,
    pub resolved: PathBuf,
    pub rule: Rule,
    pub text: String,
}

/// A file the board names, found below its folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSpec {
    pub path: String,
    pub resolved: PathBuf,
    pub size: Option<u64>,
}

/// What a partition boots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageSpec {
    Guest(TestGuest),
    /// A Linux kernel, placed by the loader (see `super::linux`); `plan` is filled in by the
    /// Linux check once the files are read.
    Linux {
        kernel: FileSpec,
        initrd: Option<FileSpec>,
        cmdline: String,
        plan: Option<Box<super::linux::PlannedBoot>>,
    },
    /// `path` as written in the file; `resolved` relative to the file's directory; `size` if it exists.
    File {
        path: String,
        resolved: PathBuf,
        size: Option<u64>,
    },
}

/// How the `flags` string reads: `r`, `w`, `x`, each at most once, in any order (`"rwx"`, `"r-x"`
/// with dashes for absent letters also works).
pub fn parse_flags(text: &str) -> Option<Access> {
    let mut a = Access {
        read: false,
        write: false,
        exec: false,
    };
    for c in text.chars() {
        let slot = match c {
            'r' => &mut a.read,
            'w' => &mut a.write,
            'x' => &mut a.exec,
            '-' => continue,
            _ => return None,
        };
        if *slot {
            return None;
        }
        *slot = true;
    }
    (a.read || a.write || a.exec).then_some(a)
}

/// `rwx` with dashes for missing rights, as `ls` prints them.
pub fn fmt_flags(a: Access) -> String {
    let f = |on: bool, c: char| if on { c } else { '-' };
    [f(a.read, 'r'), f(a.write, 'w'), f(a.exec, 'x')]
        .iter()
        .collect()
}

impl ArchToml {
    fn model(self) -> Arch {
        match self {
            ArchToml::Loongarch64 => Arch::LoongArch64,
            ArchToml::X86_64 => Arch::X86_64,
        }
    }
}

/// The architecture's name as the file spells it.
pub fn arch_name(a: Arch) -> &'static str {
    match a {
        Arch::LoongArch64 => "loongarch64",
        Arch::X86_64 => "x86_64",
    }
}

fn range(r: &RangeToml) -> MemRange {
    MemRange {
        start: r.start,
        size: r.size.0,
    }
}

/// Converts the `[board]` section, recording faults that concern it alone.
fn board(b: &BoardToml, sink: &mut Sink) -> Board<Checked> {
    let arch = b.arch.model();
    let default_page = match arch {
        Arch::LoongArch64 => 16 << 10,
        Arch::X86_64 => 4 << 10,
    };
    let mut base_page = b.base_page.map_or(default_page, |s| s.0);
    let allowed: &[u64] = match arch {
        // What the image maps: its LoongArch GPA table is built for 16K pages only (the hardware
        // walker would take 4K too, but the image has no 4K table); EPT and NPT take 4K.
        Arch::LoongArch64 => &[16 << 10],
        Arch::X86_64 => &[4 << 10],
    };
    if !allowed.contains(&base_page) {
        let page = fmt_size(base_page);
        let arch_s = arch_name(arch);
        sink.board(
            Rule::Invalid,
            "base_page",
            &[&page, arch_s],
            format!("{page} is not a base page of {arch_s} (use {})", {
                let names: Vec<String> = allowed.iter().map(|&p| fmt_size(p)).collect();
                names.join(" or ")
            }),
        );
        // Go on with the usual page so the layout rules still run (and never divide by zero).
        base_page = default_page;
    }
    if b.cpus == 0 {
        sink.board(
            Rule::Invalid,
            "cpus",
            &["0"],
            "0: the board needs at least one CPU".into(),
        );
    }
    let ram: Vec<MemRange> = b.ram.iter().map(range).collect();
    if ram.is_empty() {
        sink.board(
            Rule::Invalid,
            "ram",
            &[],
            "is empty: list the board's RAM ranges".into(),
        );
    }
    if let Some(text) = control_char(&b.name) {
        sink.board(Rule::Invalid, "name", &[&b.name], text);
    }
    let spans: Vec<Span<usize>> = ram
        .iter()
        .enumerate()
        .map(|(i, r)| Span::new(r.start, r.size, i))
        .collect();
    let mut pairs: Vec<(usize, usize)> = overlaps_within(&spans)
        .into_iter()
        .map(|(i, j)| (i.min(j), i.max(j)))
        .collect();
    pairs.sort_unstable();
    for (i, j) in pairs {
        let (a, c) = (ram[i], ram[j]);
        let (x, y) = (fmt_range(a.start, a.size), fmt_range(c.start, c.size));
        sink.board(Rule::Invalid, "ram", &[&x, &y], format!("{x} overlaps {y}"));
    }
    let console = match (b.console.mmio, b.console.port) {
        (Some(base), None) => UartAccess::Mmio { base },
        (None, Some(base)) => UartAccess::Port { base },
        (m, p) => {
            sink.board(
                Rule::Invalid,
                "console",
                &[],
                format!(
                    "needs exactly one of mmio and port (has {})",
                    if m.is_some() && p.is_some() {
                        "both"
                    } else {
                        "neither"
                    }
                ),
            );
            UartAccess::Port { base: 0x3f8 }
        }
    };
    if matches!(console, UartAccess::Port { .. }) && arch == Arch::LoongArch64 {
        sink.board(
            Rule::Invalid,
            "console.port",
            &[],
            "is set on a loongarch64 board, which has no I/O ports (use mmio)".into(),
        );
    }
    let kind = match b.irqchip.kind {
        IrqChipKindToml::Ioapic => IrqChipKind::IoApic,
        IrqChipKindToml::PchPic => IrqChipKind::PchPic,
    };
    Board {
        name: b.name.clone(),
        arch,
        boot: match b.boot {
            BootToml::Direct => BootMethod::Direct,
            BootToml::Grub => BootMethod::Grub,
            BootToml::Uefi => BootMethod::Uefi,
        },
        emulator: b.emulator.map(|e| match e {
            EmulatorToml::QemuLoongarchVirt => Emulator::QemuLoongArchVirt,
            EmulatorToml::QemuX86 => Emulator::QemuX86,
            EmulatorToml::Bochs => Emulator::Bochs,
        }),
        cpus: b.cpus,
        ram,
        hypervisor: range(&b.hypervisor),
        reserved: b.reserved.iter().map(range).collect(),
        base_page,
        console: Uart {
            access: console,
            clock_hz: b.console.clock,
            baud: b.console.baud,
        },
        irqchip: IrqChip {
            kind,
            mmio: range_of(b.irqchip.mmio, b.irqchip.size.0),
            lines: b.irqchip.lines,
        },
        log_level: match b.log_level.unwrap_or(LogLevelToml::Info) {
            LogLevelToml::Off => LogLevel::Off,
            LogLevelToml::Error => LogLevel::Error,
            LogLevelToml::Warn => LogLevel::Warn,
            LogLevelToml::Info => LogLevel::Info,
            LogLevelToml::Debug => LogLevel::Debug,
            LogLevelToml::Trace => LogLevel::Trace,
        },
        partitions: Vec::new(),
    }
}

fn range_of(start: u64, size: u64) -> MemRange {
    MemRange { start, size }
}

/// Names are printed on the console, in messages and into the image's source: a control
/// character (a newline, an escape sequence) could forge lines in any of them.
pub(crate) fn control_char(name: &str) -> Option<String> {
    name.chars().any(char::is_control).then(|| {
        format!("{name:?} has a control character (names are printed on the console and compiled into the image)")
    })
}

/// Converts one `[[partition]]`, recording faults local to its values.
/// One partition of the file, and why its files may not be embedded.
fn partition(
    p: &PartitionToml,
    base_dir: &Path,
    sink: &mut Sink,
) -> (PartitionSpec, Vec<FileFault>) {
    let name = p.name.as_str();
    let mut memory = Vec::new();
    for r in &p.memory {
        let access = parse_flags(&r.flags).unwrap_or_else(|| {
            sink.one(
                name,
                Rule::Invalid,
                "memory.flags",
                &[&r.flags],
                format!(
                    "{:?} is not a set of r, w, x (e.g. \"rwx\", \"rw\")",
                    r.flags
                ),
            );
            Access {
                read: true,
                write: true,
                exec: false,
            }
        });
        if r.size.0 == 0 {
            sink.one(
                name,
                Rule::Invalid,
                "memory.size",
                &["0"],
                format!("is 0 for the region at host {:#x}", r.host),
            );
        }
        memory.push(RegionSpec {
            guest: r.guest,
            host: r.host,
            size: r.size.0,
            access,
            cache: match r.cache {
                CacheToml::Cacheable => Cache::Cacheable,
                CacheToml::Device => Cache::Device,
            },
            shared_with: r.shared_with.clone(),
        });
    }
    let uart = p.uart.as_ref().and_then(|u| match (u.mmio, u.port) {
        (Some(base), None) => Some(PassthroughUart {
            access: UartAccess::Mmio { base },
            irq: u.irq,
        }),
        (None, Some(base)) => Some(PassthroughUart {
            access: UartAccess::Port { base },
            irq: u.irq,
        }),
        (m, _) => {
            let what = if m.is_some() { "both" } else { "neither" };
            sink.one(
                name,
                Rule::Invalid,
                "uart",
                &[],
                format!("needs exactly one of mmio and port (has {what})"),
            );
            None
        }
    });
    let mut image_faults = Vec::new();
    let mut file = |key: &'static str, path: &String| {
        let found = super::image_path::find(path, base_dir);
        if let Some((rule, text)) = found.fault {
            image_faults.push(FileFault {
                key,
                path: path.clone(),
                resolved: found.resolved.clone(),
                rule,
                text,
            });
        }
        FileSpec {
            path: path.clone(),
            resolved: found.resolved,
            size: found.size,
        }
    };
    // What the partition names to boot, each as `key "value"` for the message.
    let given: Vec<(&str, String)> = [
        p.image.as_ref().map(|i| ("image", format!("{i:?}"))),
        p.guest
            .map(|g| ("guest", format!("{:?}", guest_name(guest(g))))),
        p.kernel.as_ref().map(|k| ("kernel", format!("{k:?}"))),
    ]
    .into_iter()
    .flatten()
    .collect();
    let image = match (&p.image, p.guest, &p.kernel) {
        _ if given.len() > 1 => {
            let values: Vec<&str> = given.iter().map(|(_, v)| v.as_str()).collect();
            // The message starts at the first key ("image"), so the text goes on from its value.
            let others: Vec<String> = given[1..].iter().map(|(k, v)| format!("{k} {v}")).collect();
            let both = if given.len() == 2 { "both" } else { "all" };
            let text = format!(
                "{} and {} are {both} given (choose one)",
                given[0].1,
                others.join(" and ")
            );
            sink.one(name, Rule::Invalid, given[0].0, &values, text);
            ImageSpec::Guest(TestGuest::Worker)
        }
        (Some(path), None, None) => {
            let f = file("image", path);
            ImageSpec::File {
                path: f.path,
                resolved: f.resolved,
                size: f.size,
            }
        }
        (None, Some(g), None) => ImageSpec::Guest(guest(g)),
        (None, None, Some(kernel)) => {
            let kernel = file("kernel", kernel);
            let initrd = p.initrd.as_ref().map(|i| file("initrd", i));
            ImageSpec::Linux {
                kernel,
                initrd,
                cmdline: p.cmdline.clone().unwrap_or_default(),
                plan: None,
            }
        }
        _ => {
            sink.one(
                name,
                Rule::Invalid,
                "image",
                &[],
                "is missing: give image = \"file\", guest = \"worker\" | \"manager\" | \"hostile\", or kernel = \"file\""
                    .into(),
            );
            ImageSpec::Guest(TestGuest::Worker)
        }
    };
    let is_linux = matches!(image, ImageSpec::Linux { .. });
    for (key, given) in [
        ("initrd", p.initrd.is_some()),
        ("cmdline", p.cmdline.is_some()),
    ] {
        if given && !is_linux {
            sink.one(
                name,
                Rule::Invalid,
                key,
                &[],
                "is given without kernel (only a Linux kernel takes an initrd and a command line)"
                    .into(),
            );
        }
    }
    let (load, entry) = match (is_linux, p.load, p.entry) {
        (true, None, None) => (0, 0),
        (true, _, _) => {
            sink.one(
                name,
                Rule::Invalid,
                "load",
                &[],
                "and entry are chosen by the loader for a kernel: leave them out".into(),
            );
            (0, 0)
        }
        (false, Some(l), Some(e)) => (l, e),
        (false, l, _) => {
            let key = if l.is_none() { "load" } else { "entry" };
            sink.one(
                name,
                Rule::Invalid,
                key,
                &[],
                "is missing: an image or test guest needs load and entry".into(),
            );
            (l.unwrap_or(0), p.entry.unwrap_or(0))
        }
    };
    let console = match p.console {
        ConsoleKindToml::Virtual => PartitionConsole::Virtual,
        ConsoleKindToml::Passthrough => PartitionConsole::Passthrough,
        ConsoleKindToml::None => PartitionConsole::None,
    };
    if console == PartitionConsole::Passthrough && p.uart.is_none() {
        sink.one(
            name,
            Rule::Invalid,
            "console",
            &["passthrough"],
            "\"passthrough\" needs a uart = { ... } in the partition".into(),
        );
    }
    if p.cpus.is_empty() {
        sink.one(
            name,
            Rule::Invalid,
            "cpus",
            &[],
            "is empty: a partition needs a CPU".into(),
        );
    }
    if p.memory.is_empty() {
        sink.one(
            name,
            Rule::Invalid,
            "memory",
            &[],
            "is empty: a partition needs memory".into(),
        );
    }
    let spec = Partition {
        name: p.name.clone(),
        cpus: p.cpus.clone(),
        memory,
        mmio: p.mmio.iter().map(range).collect(),
        ports: p
            .ports
            .iter()
            .map(|r| PortRange {
                start: r.start,
                size: r.size,
            })
            .collect(),
        irqs: p.irqs.clone(),
        uart,
        image,
        load,
        entry,
        console,
        manager: p.manager,
    };
    (spec, image_faults)
}

fn guest(g: GuestToml) -> TestGuest {
    match g {
        GuestToml::Worker => TestGuest::Worker,
        GuestToml::Manager => TestGuest::Manager,
        GuestToml::Hostile => TestGuest::Hostile,
    }
}

/// A test guest's name as the file spells it.
pub fn guest_name(g: TestGuest) -> &'static str {
    match g {
        TestGuest::Worker => "worker",
        TestGuest::Manager => "manager",
        TestGuest::Hostile => "hostile",
    }
}

/// Converts the parsed file; image paths are resolved against `base_dir`.
pub(crate) fn convert(
    file: &FileToml,
    path: &Path,
    base_dir: &Path,
    sink: &mut Sink,
) -> CheckedBoard {
    let mut board = board(&file.board, sink);
    let (partitions, image_faults) = file
        .partition
        .iter()
        .map(|p| partition(p, base_dir, sink))
        .unzip();
    board.partitions = partitions;
    CheckedBoard {
        file: path.to_path_buf(),
        board,
        image_faults,
    }
}
