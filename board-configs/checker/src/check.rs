//! Build-time reading of a board file and generation of the constants the image embeds.
//! (Interim version: reads the `[board]` section only; the full checker replaces it.)

use serde::Deserialize;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    board: BoardToml,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoardToml {
    name: String,
    arch: String,
    boot: String,
    emulator: Option<String>,
    cpus: u32,
    ram: Vec<RangeToml>,
    hypervisor: RangeToml,
    console: ConsoleToml,
    log_level: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeToml {
    start: u64,
    size: Size,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

impl Size {
    fn bytes(&self) -> Result<u64, String> {
        match self {
            Size::Bytes(b) => Ok(*b),
            Size::Text(t) => {
                let t = t.trim();
                let (num, mult) = match t.chars().last() {
                    Some('K') => (&t[..t.len() - 1], 1u64 << 10),
                    Some('M') => (&t[..t.len() - 1], 1 << 20),
                    Some('G') => (&t[..t.len() - 1], 1 << 30),
                    _ => (t, 1),
                };
                num.parse::<u64>()
                    .map(|n| n * mult)
                    .map_err(|_| format!("bad size {t:?}"))
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsoleToml {
    mmio: Option<u64>,
    port: Option<u16>,
    clock: u32,
    baud: u32,
}

/// Reads `path` and returns Rust source defining `pub static BOARD: board_config::Board`.
pub fn generate_rust(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: File = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let b = file.board;
    let arch = match b.arch.as_str() {
        "loongarch64" => "LoongArch64",
        "x86_64" => "X86_64",
        o => return Err(format!("{}: unknown arch {o:?}", path.display())),
    };
    let boot = match b.boot.as_str() {
        "direct" => "Direct",
        "grub" => "Grub",
        "uefi" => "Uefi",
        o => return Err(format!("{}: unknown boot {o:?}", path.display())),
    };
    let emulator = match b.emulator.as_deref() {
        None => "None".to_string(),
        Some("qemu-loongarch-virt") => "Some(board_config::Emulator::QemuLoongArchVirt)".into(),
        Some("qemu-x86") => "Some(board_config::Emulator::QemuX86)".into(),
        Some("bochs") => "Some(board_config::Emulator::Bochs)".into(),
        Some(o) => return Err(format!("{}: unknown emulator {o:?}", path.display())),
    };
    let level = match b.log_level.as_deref().unwrap_or("info") {
        "off" => "Off",
        "error" => "Error",
        "warn" => "Warn",
        "info" => "Info",
        "debug" => "Debug",
        "trace" => "Trace",
        o => return Err(format!("{}: unknown log_level {o:?}", path.display())),
    };
    let access = match (b.console.mmio, b.console.port) {
        (Some(m), None) => format!("board_config::UartAccess::Mmio {{ base: {m:#x} }}"),
        (None, Some(p)) => format!("board_config::UartAccess::Port {{ base: {p:#x} }}"),
        _ => return Err(format!("{}: console needs exactly one of mmio, port", path.display())),
    };
    let mut ram = String::new();
    for r in &b.ram {
        write!(
            ram,
            "board_config::MemRange {{ start: {:#x}, size: {:#x} }}, ",
            r.start,
            r.size.bytes()?
        )
        .unwrap();
    }
    Ok(format!(
        "pub static BOARD: board_config::Board = board_config::Board {{\n\
         name: {:?}, arch: board_config::Arch::{arch}, boot: board_config::BootMethod::{boot},\n\
         emulator: {emulator}, cpus: {}, ram: &[{ram}],\n\
         hypervisor: board_config::MemRange {{ start: {:#x}, size: {:#x} }},\n\
         console: board_config::Uart {{ access: {access}, clock_hz: {}, baud: {} }},\n\
         log_level: board_config::LogLevel::{level},\n}};\n",
        b.name,
        b.cpus,
        b.hypervisor.start,
        b.hypervisor.size.bytes()?,
        b.console.clock,
        b.console.baud
    ))
}
