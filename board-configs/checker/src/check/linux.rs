//! Partitions that boot a Linux kernel (`kernel`, `initrd`, `cmdline`): the files are read and the
//! boot is laid out here, once, by the architecture's layout (`arch_x86::linux::layout`, a 64-bit
//! bzImage; `arch_loongarch::linux::layout`, a LoongArch `vmlinux` ELF), so that a kernel of the
//! wrong kind, truncated, too large, or placed over something else is refused by `check-config`
//! with the file's name, and the image build embeds exactly what was checked.

use super::error::{Rule, Sink};
use super::spec::{CheckedBoard, FileSpec, ImageSpec, PartitionSpec};
use crate::model::{Arch, IrqChipKind, PartitionConsole, LINUX_SLEEP_PORT};
use arch_x86::linux::acpi::{AcpiPlatform, IoApicView, COM1};
use arch_x86::linux::layout::{self, BlobBytes, BlobKind, GuestRam, LinuxInputs};
use arch_x86::linux::zero_page::E820Kind;

/// Largest kernel file read (Debian's is 8M; a kernel with a built-in initramfs may be larger).
pub const MAX_KERNEL: u64 = 128 << 20;
/// Largest initrd read: it is embedded in the hypervisor image.
pub const MAX_INITRD: u64 = 256 << 20;

/// The checked layout of a Linux boot, owned, for the code generator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedBoot {
    /// The kernel's pieces: where each goes, where it starts in the file, and its length.
    pub kernel: Vec<(u64, usize, usize)>,
    pub initrd: Option<u64>,
    /// Blobs the plan made (zero page, command line, GDT, ACPI tables): address and bytes.
    pub made: Vec<(u64, Vec<u8>)>,
    pub entry: u64,
    /// The first argument registers at entry (`model::LinuxBoot::args`).
    pub args: [u64; 3],
    /// LoongArch: the command line's address and capacity (`model::LinuxBoot::cmdline`).
    pub cmdline: (u64, u32),
    pub zero_page: u64,
    pub gdt: u64,
    /// Usable RAM as the e820 map gives it, for the summary.
    pub ram_bytes: u64,
}

fn read(f: &FileSpec, max: u64) -> Result<Vec<u8>, String> {
    if f.size.is_some_and(|s| s > max) {
        return Err(format!(
            "{:?} is {} bytes, more than the {} MiB a partition file may be",
            f.path,
            f.size.unwrap_or(0),
            max >> 20
        ));
    }
    std::fs::read(&f.resolved).map_err(|e| format!("{:?} cannot be read: {e}", f.path))
}

/// The kernel and the initrd, read within their size limits.
#[allow(clippy::type_complexity)]
fn read_files(
    kernel: &FileSpec,
    initrd: Option<&FileSpec>,
) -> Result<(Vec<u8>, Option<Vec<u8>>), (&'static str, String)> {
    let kbytes = read(kernel, MAX_KERNEL).map_err(|e| ("kernel", e))?;
    let ibytes = match initrd {
        Some(f) => Some(read(f, MAX_INITRD).map_err(|e| ("initrd", e))?),
        None => None,
    };
    Ok((kbytes, ibytes))
}

/// The RAM a Linux partition's kernel is told about, `(guest start, size)`: what the partition
/// alone may write and run code from. Shared regions stay out of its memory map, so Linux never
/// allocates from memory another partition reads.
fn linux_ram(p: &PartitionSpec) -> impl Iterator<Item = (u64, u64)> + '_ {
    p.memory
        .iter()
        .filter(|r| r.access.write && r.access.exec && r.shared_with.is_none())
        .map(|r| (r.guest, r.size))
}

fn plan_one(
    b: &CheckedBoard,
    p: &PartitionSpec,
    kernel: &FileSpec,
    initrd: Option<&FileSpec>,
    cmdline: &str,
) -> Result<PlannedBoot, (&'static str, String)> {
    let (kbytes, ibytes) = read_files(kernel, initrd)?;
    let ram: Vec<GuestRam> = linux_ram(p)
        .map(|(start, size)| GuestRam { start, size })
        .collect();
    let apic_ids: Vec<u32> = (0..p.cpus.len() as u32).collect();
    let ioapic = (b.irqchip.kind == IrqChipKind::IoApic).then_some(IoApicView {
        id: 0,
        address: b.irqchip.mmio.start as u32,
        gsi_base: 0,
    });
    let inputs = LinuxInputs {
        kernel: &kbytes,
        initrd: ibytes.as_deref(),
        cmdline,
        ram: &ram,
        platform: AcpiPlatform {
            apic_ids: &apic_ids,
            ioapic,
            sleep_port: LINUX_SLEEP_PORT,
            // The virtual console's interrupt reaches Linux through its I/O APIC view.
            console: (p.console == PartitionConsole::Virtual && ioapic.is_some()).then_some(COM1),
        },
    };
    let plan = layout::plan(&inputs).map_err(|e| {
        let key = match e {
            layout::LayoutError::Kernel(_) | layout::LayoutError::KernelDoesNotFit { .. } => {
                "kernel"
            }
            layout::LayoutError::InitrdDoesNotFit { .. } => "initrd",
            layout::LayoutError::CmdlineTooLong { .. } | layout::LayoutError::CmdlineHasNul => {
                "cmdline"
            }
            _ => "memory",
        };
        let what = match key {
            "kernel" => format!("{:?} ", kernel.path),
            "initrd" => format!("{:?}: ", initrd.map_or("", |f| f.path.as_str())),
            _ => String::new(),
        };
        let text = match e {
            layout::LayoutError::NoLowMemory => {
                "must start at guest 0x0 and cover the first 1M for a Linux partition (its boot data, ACPI tables and SMP trampoline live there)".to_string()
            }
            e => format!("{what}{e}"),
        };
        (key, text)
    })?;
    // Nothing the loader places may meet a device window the partition maps.
    for blob in &plan.blobs {
        let (s, e) = (blob.gpa, blob.gpa + blob.bytes.as_slice().len() as u64);
        if let Some(m) = p.mmio.iter().find(|m| s < m.end() && m.start < e) {
            return Err((
                "mmio",
                format!(
                    "window {:#x}+{:#x} overlaps the {:?} the Linux loader places at [{s:#x}, {e:#x})",
                    m.start, m.size, blob.kind
                ),
            ));
        }
    }
    // The sleep register and the reset register after it.
    let (first, last) = (u32::from(LINUX_SLEEP_PORT), u32::from(LINUX_SLEEP_PORT) + 1);
    if p.ports.iter().any(|r| {
        let (start, end) = (u32::from(r.start), u32::from(r.start) + u32::from(r.size));
        start <= last && first < end
    }) {
        return Err((
            "ports",
            format!(
                "include {first:#x}-{last:#x}, the ACPI sleep and reset registers the hypervisor emulates for a Linux partition"
            ),
        ));
    }
    let mut planned = PlannedBoot {
        kernel: vec![(
            plan.load,
            kbytes.len() - plan.blobs[0].bytes.as_slice().len(),
            plan.blobs[0].bytes.as_slice().len(),
        )],
        initrd: None,
        made: Vec::new(),
        entry: plan.entry,
        args: [0, layout::ZERO_PAGE, 0],
        cmdline: (0, 0),
        zero_page: layout::ZERO_PAGE,
        gdt: layout::GDT,
        ram_bytes: plan
            .e820
            .iter()
            .filter(|e| e.kind == E820Kind::Ram)
            .map(|e| e.size)
            .sum(),
    };
    for blob in &plan.blobs {
        match (&blob.bytes, blob.kind) {
            (BlobBytes::Made(v), _) => planned.made.push((blob.gpa, v.clone())),
            (BlobBytes::Input(_), BlobKind::Initrd) => planned.initrd = Some(blob.gpa),
            (BlobBytes::Input(_), _) => {}
        }
    }
    Ok(planned)
}

/// A LoongArch Linux boot (`arch_loongarch::linux::layout`): the kernel's ELF segments, the boot
/// data in the first 2 MiB, the initrd at the top of the kernel's RAM range.
fn plan_loongarch(
    b: &CheckedBoard,
    p: &PartitionSpec,
    kernel: &FileSpec,
    initrd: Option<&FileSpec>,
    cmdline: &str,
) -> Result<PlannedBoot, (&'static str, String)> {
    use arch_loongarch::linux::layout::{self as la, BlobKind as Kind};
    let (kbytes, ibytes) = read_files(kernel, initrd)?;
    let ram: Vec<la::GuestRam> = linux_ram(p)
        .map(|(start, size)| la::GuestRam { start, size })
        .collect();
    let inputs = la::LinuxInputs {
        kernel: &kbytes,
        initrd: ibytes.as_deref(),
        cmdline,
        ram: &ram,
        vcpus: p.cpus.len() as u32,
        console: p.console == PartitionConsole::Virtual,
    };
    let plan = la::plan(&inputs).map_err(|e| {
        let key = match e {
            la::LayoutError::Kernel(_)
            | la::LayoutError::KernelBelowBootData { .. }
            | la::LayoutError::KernelOutsideRam { .. } => "kernel",
            la::LayoutError::InitrdDoesNotFit { .. } => "initrd",
            la::LayoutError::CmdlineTooLong { .. } | la::LayoutError::CmdlineHasNul => "cmdline",
            _ => "memory",
        };
        let what = match key {
            "kernel" => format!("{:?} ", kernel.path),
            "initrd" => format!("{:?} ", initrd.map_or("", |f| f.path.as_str())),
            _ => String::new(),
        };
        (key, format!("{what}{e}"))
    })?;
    // The device tree puts the partition's PCH-PIC view where the 7A bridge has it, and its
    // console on line UART_LINE of it, a line no device of the board may also drive.
    use arch_loongarch::linux::{power, PCH_PIC, POWER, UART, UART_LINE, UART_SIZE};
    if b.irqchip.kind != IrqChipKind::PchPic || b.irqchip.mmio.start != PCH_PIC {
        return Err((
            "kernel",
            format!(
                "needs the board's interrupt controller to be a PCH-PIC at {PCH_PIC:#x} (irqchip), where its device tree puts the partition's view"
            ),
        ));
    }
    if p.console == PartitionConsole::Virtual && p.irqs.contains(&UART_LINE) {
        return Err((
            "irqs",
            format!("include line {UART_LINE}, which the virtual console drives in a Linux partition's PCH-PIC view"),
        ));
    }
    // The platform's fixed devices (`arch_loongarch::linux`) are emulated: the partition may
    // neither map them nor place memory over them.
    for (what, start, size) in [
        ("console UART", UART, UART_SIZE),
        ("power registers", POWER, power::SIZE),
    ] {
        let (s, e) = (start, start + size);
        if let Some(m) = p.mmio.iter().find(|m| s < m.end() && m.start < e) {
            return Err((
                "mmio",
                format!(
                    "window {:#x}+{:#x} overlaps the {what} the hypervisor emulates for a Linux partition at [{s:#x}, {e:#x})",
                    m.start, m.size
                ),
            ));
        }
        if let Some(r) = p
            .memory
            .iter()
            .find(|r| s < r.guest + r.size && r.guest < e)
        {
            return Err((
                "memory",
                format!(
                    "region at guest {:#x} covers the {what} the hypervisor emulates for a Linux partition at [{s:#x}, {e:#x})",
                    r.guest
                ),
            ));
        }
    }
    let mut planned = PlannedBoot {
        kernel: Vec::new(),
        initrd: None,
        made: Vec::new(),
        entry: plan.entry,
        args: plan.args,
        cmdline: (la::CMDLINE, la::CMDLINE_CAPACITY),
        zero_page: 0,
        gdt: 0,
        ram_bytes: plan.ram_bytes,
    };
    for blob in plan.blobs {
        match (blob.kind, blob.made) {
            (Kind::Kernel { offset }, _) => planned.kernel.push((blob.gpa, offset, blob.len)),
            (Kind::Initrd, _) => planned.initrd = Some(blob.gpa),
            (_, Some(bytes)) => planned.made.push((blob.gpa, bytes)),
            (_, None) => {}
        }
    }
    Ok(planned)
}

/// Lays out every Linux partition, recording the plan or the reason it cannot be made.
pub fn plan_partitions(b: &mut CheckedBoard, sink: &mut Sink) {
    for i in 0..b.partitions.len() {
        let p = &b.partitions[i];
        let ImageSpec::Linux {
            kernel,
            initrd,
            cmdline,
            ..
        } = &p.image
        else {
            continue;
        };
        // Files that may not be read were reported with the image rules.
        if !b.image_faults[i].is_empty() {
            continue;
        }
        let result = match b.arch {
            Arch::X86_64 => plan_one(b, p, kernel, initrd.as_ref(), cmdline),
            Arch::LoongArch64 => plan_loongarch(b, p, kernel, initrd.as_ref(), cmdline),
        };
        let name = p.name.clone();
        match result {
            Ok(planned) => {
                if let ImageSpec::Linux { plan, .. } = &mut b.partitions[i].image {
                    *plan = Some(Box::new(planned));
                }
            }
            Err((key, text)) => sink.one(&name, Rule::Linux, key, &[], text),
        }
    }
}
