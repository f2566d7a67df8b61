//! Partitions that boot a Linux kernel (`kernel`, `initrd`, `cmdline`): the files are read and the
//! boot is laid out here, once, by `arch_x86::linux::layout`, so that a kernel that is not a
//! 64-bit bzImage, is truncated, does not fit, or would be placed over something else is refused
//! by `check-config` with the file's name, and the image build embeds exactly what was checked.

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
    /// Where the kernel's protected-mode part goes, and where it starts in the file.
    pub kernel: (u64, usize),
    pub initrd: Option<u64>,
    /// Blobs the plan made (zero page, command line, GDT, ACPI tables): address and bytes.
    pub made: Vec<(u64, Vec<u8>)>,
    pub entry: u64,
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

fn plan_one(
    b: &CheckedBoard,
    p: &PartitionSpec,
    kernel: &FileSpec,
    initrd: Option<&FileSpec>,
    cmdline: &str,
) -> Result<PlannedBoot, (&'static str, String)> {
    let kbytes = read(kernel, MAX_KERNEL).map_err(|e| ("kernel", e))?;
    let ibytes = match initrd {
        Some(f) => Some(read(f, MAX_INITRD).map_err(|e| ("initrd", e))?),
        None => None,
    };
    // RAM for Linux is what the partition alone may write and run code from: shared regions
    // stay out of the e820 map so Linux never allocates from memory another partition reads.
    let ram: Vec<GuestRam> = p
        .memory
        .iter()
        .filter(|r| r.access.write && r.access.exec && r.shared_with.is_none())
        .map(|r| GuestRam {
            start: r.guest,
            size: r.size,
        })
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
        kernel: (
            plan.load,
            kbytes.len() - plan.blobs[0].bytes.as_slice().len(),
        ),
        initrd: None,
        made: Vec::new(),
        entry: plan.entry,
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
        if !p.image_faults.is_empty() {
            continue;
        }
        if b.arch != Arch::X86_64 {
            sink.one(
                &p.name,
                Rule::Invalid,
                "kernel",
                &[],
                "is only booted on x86_64 boards so far (a LoongArch Linux partition is not supported yet)".into(),
            );
            continue;
        }
        let result = plan_one(b, p, kernel, initrd.as_ref(), cmdline);
        let name = p.name.clone();
        match result {
            Ok(planned) => {
                if let ImageSpec::Linux { plan, .. } = &mut b.partitions[i].image {
                    *plan = Some(planned);
                }
            }
            Err((key, text)) => sink.one(&name, Rule::Linux, key, &[], text),
        }
    }
}
