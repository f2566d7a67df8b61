//! The runtime schema: plain `'static` data the image embeds, generated from the checked board file.
//! It is also the checker's: the types that hold names, lists and images take a [`Form`], which
//! says how those are held. [`Embedded`] (the default, so `Board` is the image's board) holds
//! `'static` slices and strings and the image's bytes; the checker's form holds owned lists and
//! the files it read (`check::Checked`). One model, two holdings: a field added here is a field
//! the checker must fill and the code generator must write, or the build fails.

/// The most CPUs an image supports (it reserves a stack and per-CPU state for each statically).
/// The checker refuses boards with more, so the image and the checker share this one number.
pub const MAX_CPUS: usize = 8;

/// How a board's names, lists and partition images are held.
pub trait Form: Clone + core::fmt::Debug + PartialEq + Eq + 'static {
    /// A name.
    type Text: AsRef<str> + Clone + core::fmt::Debug + PartialEq + Eq;
    /// A list of `T`.
    type List<T: Clone + core::fmt::Debug + PartialEq + Eq + 'static>: core::ops::Deref<Target = [T]>
        + Clone
        + core::fmt::Debug
        + PartialEq
        + Eq;
    /// What a partition boots.
    type Image: Clone + core::fmt::Debug + PartialEq + Eq;
}

/// The image's form: `'static` data compiled into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Embedded;

impl Form for Embedded {
    type Text = &'static str;
    type List<T: Clone + core::fmt::Debug + PartialEq + Eq + 'static> = &'static [T];
    type Image = Image;
}

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
    /// Saturates at 2^64 - 1: the checker refuses ranges that reach that far, and anything
    /// reading an unchecked range must still not overflow.
    pub const fn end(&self) -> u64 {
        self.start.saturating_add(self.size)
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

/// Which interrupt controller routes the board's device IRQ lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqChipKind {
    /// x86 I/O APIC (device lines 0..24 on a PC).
    IoApic,
    /// Loongson 7A-series PCH-PIC (QEMU `virt` emulates one), routed on through the EIOINTC.
    PchPic,
}

/// The interrupt controller the hypervisor owns; partitions are given lines of it, never its registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqChip {
    pub kind: IrqChipKind,
    /// Its register window; no partition device may overlap it.
    pub mmio: MemRange,
    /// Number of device lines; a partition's IRQs are `0..lines`.
    pub lines: u32,
}

/// Stage-2 permissions of a memory region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

/// How a region is cached in stage 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    /// Normal write-back memory.
    Cacheable,
    /// Uncached, strongly ordered (buffers a device or another partition reads without snooping).
    Device,
}

/// One stage-2 mapping of a partition: guest-physical `[guest, guest + size)` onto host-physical
/// `[host, host + size)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region<F: Form = Embedded> {
    pub guest: u64,
    pub host: u64,
    pub size: u64,
    pub access: Access,
    pub cache: Cache,
    /// The partition that maps the same host range (a shared-memory link), by name.
    pub shared_with: Option<F::Text>,
}

impl Copy for Region<Embedded> {}

impl<F: Form> Region<F> {
    /// The guest-physical range.
    pub const fn guest_range(&self) -> MemRange {
        MemRange {
            start: self.guest,
            size: self.size,
        }
    }

    /// The host-physical range.
    pub const fn host_range(&self) -> MemRange {
        MemRange {
            start: self.host,
            size: self.size,
        }
    }

    /// The host address backing guest address `gpa`, if this region maps it.
    pub const fn translate(&self, gpa: u64) -> Option<u64> {
        if gpa >= self.guest && gpa - self.guest < self.size {
            Some(self.host + (gpa - self.guest))
        } else {
            None
        }
    }
}

/// A range of x86 I/O ports `[start, start + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub start: u16,
    pub size: u16,
}

impl PortRange {
    /// One past the last port (may be 0x10000, hence `u32`).
    pub const fn end(&self) -> u32 {
        self.start as u32 + self.size as u32
    }
}

/// A UART handed to a partition. Port UARTs are opened in the I/O bitmap; an MMIO UART's page is
/// mapped identity (guest-physical = host-physical).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassthroughUart {
    pub access: UartAccess,
    pub irq: Option<u32>,
}

/// The workspace-built test guests a partition can run instead of an image file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestGuest {
    /// Runs the workload the boot tests measure.
    Worker,
    /// Drives the management hypercalls.
    Manager,
    /// Attacks isolation: reads other partitions' memory, sends bad hypercalls.
    Hostile,
}

/// The I/O port of the ACPI sleep control register the hypervisor emulates for a Linux partition
/// (its FADT names it; writing SLP_EN with the `\_S5` type powers the partition off).
pub const LINUX_SLEEP_PORT: u16 = 0x600;

/// Bytes the hypervisor copies to a guest-physical address before a partition starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blob {
    pub gpa: u64,
    pub bytes: &'static [u8],
}

/// A Linux kernel laid out by the build (`arch_x86::linux::layout`): the kernel, initrd, zero page,
/// command line, GDT and ACPI tables as blobs, and the 64-bit entry state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinuxBoot {
    /// The kernel file as the board names it, for messages.
    pub kernel_path: &'static str,
    pub blobs: &'static [Blob],
    /// The entry point (x86: 64-bit mode; LoongArch: direct-address mode).
    pub entry: u64,
    /// The first argument registers at entry, exactly: x86 RDI, RSI (the zero page), RDX;
    /// LoongArch a0-a2 (EFI boot flag, command line, EFI system table).
    pub args: [u64; 3],
    /// Guest-physical address of the NUL-terminated command line and the bytes it may grow
    /// to (LoongArch; on x86 the zero page points at it, and this is 0).
    pub cmdline: u64,
    pub cmdline_capacity: u32,
    pub zero_page: u64,
    /// x86: the boot GDT, with code at selector 0x10 and data at 0x18 (0 elsewhere).
    pub gdt: u64,
}

/// What a partition boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Image {
    /// A test guest the image build links in.
    Guest(TestGuest),
    /// A file beside the board file, embedded in the image by the build.
    File {
        path: &'static str,
        bytes: &'static [u8],
    },
    /// A Linux kernel the build laid out; `load` and `entry` of the partition are unused.
    Linux(LinuxBoot),
}

/// Where a partition's console output goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionConsole {
    /// An emulated 16550 at the architecture's usual address (x86 port 0x3f8, LoongArch
    /// 0x1fe001e0); output appears on the hypervisor console prefixed with the partition's name.
    Virtual,
    /// The partition's passthrough UART, which it drives itself.
    Passthrough,
    /// No console.
    None,
}

/// One partition: its CPUs, memory, devices and what it boots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition<F: Form = Embedded> {
    pub name: F::Text,
    /// Physical CPU numbers this partition owns, in the order its vCPUs are numbered.
    pub cpus: F::List<u32>,
    pub memory: F::List<Region<F>>,
    /// Device register windows mapped identity (guest-physical = host-physical).
    pub mmio: F::List<MemRange>,
    /// x86 I/O ports opened to the partition.
    pub ports: F::List<PortRange>,
    /// Interrupt controller lines routed to the partition.
    pub irqs: F::List<u32>,
    pub uart: Option<PassthroughUart>,
    pub image: F::Image,
    /// Guest-physical address the image is copied to.
    pub load: u64,
    /// Guest-physical address of the first instruction.
    pub entry: u64,
    pub console: PartitionConsole,
    /// Whether the partition may call the management hypercalls (exactly one does).
    pub manager: bool,
}

impl Copy for Partition<Embedded> {}

impl<F: Form> Partition<F> {
    /// The host address backing guest address `gpa`, if any region maps it.
    pub fn translate(&self, gpa: u64) -> Option<u64> {
        self.memory.iter().find_map(|r| r.translate(gpa))
    }
}

/// The whole machine as the board file describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Board<F: Form = Embedded> {
    pub name: F::Text,
    pub arch: Arch,
    pub boot: BootMethod,
    pub emulator: Option<Emulator>,
    pub cpus: u32,
    pub ram: F::List<MemRange>,
    /// The hypervisor's own memory (image, heap, stacks); no partition may overlap it.
    pub hypervisor: MemRange,
    /// RAM no partition may use (firmware tables, the boot loader's area).
    pub reserved: F::List<MemRange>,
    /// Stage-2 base page size in bytes; every region is aligned to it.
    pub base_page: u64,
    pub console: Uart,
    pub irqchip: IrqChip,
    pub log_level: LogLevel,
    pub partitions: F::List<Partition<F>>,
}

impl Copy for Board<Embedded> {}

impl<F: Form> Board<F> {
    /// The partition allowed to call the management hypercalls (the checker guarantees one).
    pub fn manager(&self) -> Option<&Partition<F>> {
        self.partitions.iter().find(|p| p.manager)
    }

    /// A partition by name.
    pub fn partition(&self, name: &str) -> Option<&Partition<F>> {
        self.partitions.iter().find(|p| p.name.as_ref() == name)
    }
}
