//! The board file as TOML: one `[board]` table and one `[[partition]]` table per partition. Every
//! table denies unknown keys, because a misspelt key silently taking its default is exactly the
//! kind of fault the checker exists to catch. Enumerated values (arch, boot, guest, …) are serde
//! enums so a wrong word fails at its line with the list of allowed words. `board-configs/README.md`
//! documents every key here; keep the two in step.

use super::size::Size;
use serde::Deserialize;

/// The whole file.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileToml {
    pub board: BoardToml,
    #[serde(default)]
    pub partition: Vec<PartitionToml>,
}

/// `[board]`: the machine.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct BoardToml {
    pub name: String,
    pub arch: ArchToml,
    pub boot: BootToml,
    pub emulator: Option<EmulatorToml>,
    pub cpus: u32,
    pub ram: Vec<RangeToml>,
    pub hypervisor: RangeToml,
    #[serde(default)]
    pub reserved: Vec<RangeToml>,
    /// Defaults to the architecture's usual page (4K on x86, 16K on LoongArch).
    pub base_page: Option<Size>,
    pub console: ConsoleToml,
    pub irqchip: IrqChipToml,
    pub log_level: Option<LogLevelToml>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ArchToml {
    Loongarch64,
    #[serde(rename = "x86_64")]
    X86_64,
}

#[derive(Deserialize, Debug, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum BootToml {
    Direct,
    Grub,
    Uefi,
}

#[derive(Deserialize, Debug, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
pub enum EmulatorToml {
    QemuLoongarchVirt,
    QemuX86,
    Bochs,
}

#[derive(Deserialize, Debug, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum LogLevelToml {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// `{ start = 0x80000000, size = "256M" }`.
#[derive(Deserialize, Debug, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct RangeToml {
    pub start: u64,
    pub size: Size,
}

/// `{ port = 0x3f8, clock = 1843200, baud = 115200 }` or `{ mmio = 0x1fe001e0, … }`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ConsoleToml {
    pub mmio: Option<u64>,
    pub port: Option<u16>,
    pub clock: u32,
    pub baud: u32,
}

/// `{ kind = "ioapic", mmio = 0xfec00000, size = "4K", lines = 24 }`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct IrqChipToml {
    pub kind: IrqChipKindToml,
    pub mmio: u64,
    pub size: Size,
    pub lines: u32,
}

#[derive(Deserialize, Debug, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
pub enum IrqChipKindToml {
    Ioapic,
    PchPic,
}

/// `[[partition]]`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct PartitionToml {
    pub name: String,
    pub cpus: Vec<u32>,
    pub memory: Vec<RegionToml>,
    #[serde(default)]
    pub mmio: Vec<RangeToml>,
    #[serde(default)]
    pub ports: Vec<PortRangeToml>,
    #[serde(default)]
    pub irqs: Vec<u32>,
    pub uart: Option<UartToml>,
    /// A file, relative to the board file. Exactly one of `image`, `guest` and `kernel`.
    pub image: Option<String>,
    pub guest: Option<GuestToml>,
    /// A Linux kernel (x86: bzImage), relative to the board file; the loader places it.
    pub kernel: Option<String>,
    /// With `kernel`: an initramfs, relative to the board file.
    pub initrd: Option<String>,
    /// With `kernel`: the kernel command line.
    pub cmdline: Option<String>,
    /// Where `image` or `guest` is copied and entered; not given with `kernel`.
    pub load: Option<u64>,
    pub entry: Option<u64>,
    #[serde(default)]
    pub console: ConsoleKindToml,
    #[serde(default)]
    pub manager: bool,
}

/// `{ guest = 0x0, host = 0x4000000, size = "32M", flags = "rwx", cache = "device", shared_with = "p" }`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RegionToml {
    pub guest: u64,
    pub host: u64,
    pub size: Size,
    pub flags: String,
    #[serde(default)]
    pub cache: CacheToml,
    pub shared_with: Option<String>,
}

#[derive(Deserialize, Debug, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum CacheToml {
    #[default]
    Cacheable,
    Device,
}

/// `{ start = 0x2f8, size = 8 }`.
#[derive(Deserialize, Debug, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct PortRangeToml {
    pub start: u16,
    pub size: u16,
}

/// `{ port = 0x2f8, irq = 3 }` or `{ mmio = 0x10080000, irq = 8 }`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct UartToml {
    pub mmio: Option<u64>,
    pub port: Option<u16>,
    pub irq: Option<u32>,
}

#[derive(Deserialize, Debug, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum GuestToml {
    Worker,
    Manager,
    Hostile,
}

#[derive(Deserialize, Debug, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleKindToml {
    #[default]
    Virtual,
    Passthrough,
    None,
}
