//! Boards for the host tests, of the architecture under test (its interrupt controller, its page
//! size): every partition gets one 256 KiB region of the test process's heap (read, write,
//! execute) at guest 0x10_0000, where its image loads and starts, a 64 KiB read-write region
//! without execute at guest 0x20_0000, and a read-only 16 KiB at 0x28_0000.

use super::mock::MockArch;
use crate::{GuestImages, Partitions, RunEnv, Shootdown};
use board_config::{
    Access, Arch, Board, BootMethod, Cache, Embedded, Image, IrqChip, IrqChipKind, LogLevel,
    MemRange, Partition, PartitionConsole, Region, TestGuest, Uart, UartAccess,
};
use std::alloc::{alloc_zeroed, Layout};

/// Where each partition's code region starts, in its guest-physical space.
pub const CODE: u64 = 0x10_0000;
pub const CODE_SIZE: u64 = 0x4_0000;
/// Its data region (no execute).
pub const DATA: u64 = 0x20_0000;
pub const DATA_SIZE: u64 = 0x1_0000;
/// Its read-only region.
pub const RODATA: u64 = 0x28_0000;
pub const RODATA_SIZE: u64 = 0x4000;

/// One partition of a test board.
pub struct Part {
    pub name: &'static str,
    pub cpus: &'static [u32],
    pub guest: TestGuest,
    pub irqs: &'static [u32],
}

impl Part {
    pub const fn new(name: &'static str, cpus: &'static [u32], guest: TestGuest) -> Self {
        Self {
            name,
            cpus,
            guest,
            irqs: &[],
        }
    }
}

/// Host memory for a region, aligned to any base page (LoongArch's are 16 KiB), zeroed, kept for
/// the process.
fn host_memory(size: u64) -> u64 {
    let layout = Layout::from_size_align(size as usize, 0x4000).unwrap();
    // SAFETY: the layout has a non-zero size.
    let ptr = unsafe { alloc_zeroed(layout) };
    assert!(!ptr.is_null());
    ptr as u64
}

fn region(guest: u64, size: u64, write: bool, exec: bool) -> Region {
    Region::<Embedded> {
        guest,
        host: host_memory(size),
        size,
        access: Access {
            read: true,
            write,
            exec,
        },
        cache: Cache::Cacheable,
        shared_with: None,
    }
}

fn partition(p: &Part) -> Partition {
    let memory = vec![
        region(CODE, CODE_SIZE, true, true),
        region(DATA, DATA_SIZE, true, false),
        region(RODATA, RODATA_SIZE, false, false),
    ];
    Partition::<Embedded> {
        name: p.name,
        cpus: p.cpus,
        memory: Box::leak(memory.into_boxed_slice()),
        mmio: &[],
        ports: &[],
        irqs: p.irqs,
        uart: None,
        image: Image::Guest(p.guest),
        load: CODE,
        entry: CODE,
        console: PartitionConsole::None,
        manager: p.guest == TestGuest::Manager,
    }
}

/// The interrupt controller of the architecture under test: x86's I/O APIC.
#[cfg(feature = "x86")]
const IRQCHIP: IrqChip = IrqChip {
    kind: IrqChipKind::IoApic,
    mmio: MemRange {
        start: 0xfec0_0000,
        size: 0x1000,
    },
    lines: 24,
};
#[cfg(feature = "x86")]
const ARCH: Arch = Arch::X86_64;

/// LoongArch's PCH-PIC.
#[cfg(feature = "loongarch")]
const IRQCHIP: IrqChip = IrqChip {
    kind: IrqChipKind::PchPic,
    mmio: MemRange {
        start: arch_loongarch::linux::PCH_PIC,
        size: arch_loongarch::linux::PCH_PIC_SIZE,
    },
    lines: 64,
};
#[cfg(feature = "loongarch")]
const ARCH: Arch = Arch::LoongArch64;

/// A board of `parts`.
pub fn board(parts: &[Part]) -> &'static Board {
    let partitions: Vec<Partition> = parts.iter().map(partition).collect();
    Box::leak(Box::new(Board::<Embedded> {
        name: "host-test",
        arch: ARCH,
        boot: BootMethod::Direct,
        emulator: None,
        cpus: 4,
        ram: &[],
        hypervisor: MemRange { start: 0, size: 0 },
        reserved: &[],
        base_page: 1 << <super::mock::Format as mmu::PteFormat>::PAGE_SHIFT,
        console: Uart {
            access: UartAccess::Port { base: 0x3f8 },
            clock_hz: 1_843_200,
            baud: 115_200,
        },
        irqchip: IRQCHIP,
        log_level: LogLevel::Info,
        partitions: Box::leak(partitions.into_boxed_slice()),
    }))
}

/// The test guests' "images": a few bytes each, so loading has something to copy.
const IMAGE: &[u8] = &[0xf4; 16];

/// The partitions of `parts`, built on the mock machine, kept for the process.
pub fn build(parts: &[Part]) -> &'static Partitions<MockArch> {
    let env = RunEnv {
        cmdline: "",
        guests: GuestImages {
            worker: IMAGE,
            manager: IMAGE,
            hostile: IMAGE,
        },
    };
    // A short acknowledgement bound: a CPU that never acknowledges fails a test quickly.
    let shootdown = Box::leak(Box::new(Shootdown::new(50_000_000)));
    let all = Partitions::build(board(parts), env, shootdown, Default::default()).unwrap();
    Box::leak(Box::new(all))
}

/// The host bytes behind guest-physical `gpa` of partition `p` (in either region).
pub fn host_bytes(all: &Partitions<MockArch>, id: u32, gpa: u64, len: usize) -> &'static [u8] {
    let p = all.get(id).unwrap();
    let r = p
        .config
        .memory
        .iter()
        .find(|r| gpa >= r.guest && gpa + len as u64 <= r.guest + r.size)
        .unwrap();
    // SAFETY: the region's host memory was allocated above and is never freed.
    unsafe { std::slice::from_raw_parts((r.host + (gpa - r.guest)) as *const u8, len) }
}
