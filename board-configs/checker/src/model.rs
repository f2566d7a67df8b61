//! The runtime schema: plain `'static` data the image embeds, generated from the checked board file.

/// Instruction-set architecture of a board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    LoongArch64,
    X86_64,
}

/// How the image is started on the board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootMethod {
    /// QEMU `-kernel` (ELF or Linux-style image).
    Direct,
    /// GRUB with multiboot (x86 boards).
    Grub,
    /// A UEFI firmware starts the image as an EFI application.
    Uefi,
}

/// The emulator a board is tested in, if any (real boards have none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emulator {
    QemuLoongArchVirt,
    QemuX86,
    Bochs,
}

/// Log verbosity, mirrored from `log::LevelFilter` so the model stays dependency-free.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// A half-open physical range `[start, start + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemRange {
    pub start: u64,
    pub size: u64,
}

impl MemRange {
    /// One past the last byte.
    pub const fn end(&self) -> u64 {
        self.start + self.size
    }
}

/// How the hypervisor reaches its console UART (a 16550).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UartAccess {
    /// Memory-mapped registers at a physical address, one byte apart.
    Mmio { base: u64 },
    /// x86 I/O ports.
    Port { base: u16 },
}

/// The console UART.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uart {
    pub access: UartAccess,
    /// Input clock of the UART, for the divisor.
    pub clock_hz: u32,
    pub baud: u32,
}

/// The whole machine as the board file describes it.
#[derive(Clone, Copy, Debug)]
pub struct Board {
    pub name: &'static str,
    pub arch: Arch,
    pub boot: BootMethod,
    pub emulator: Option<Emulator>,
    pub cpus: u32,
    pub ram: &'static [MemRange],
    /// The hypervisor's own memory (image, heap, stacks); no partition may overlap it.
    pub hypervisor: MemRange,
    pub console: Uart,
    pub log_level: LogLevel,
}
