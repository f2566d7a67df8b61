//! Per-CPU data, one typed slot per CPU and the leaf every other x86 module builds on: each CPU's
//! GDT (64-bit code and data plus its own TSS, since `ltr` marks a TSS descriptor busy and VMX
//! host state needs a non-zero TR), its TSS with a double-fault stack, and the state the rest of
//! the arch code keeps per CPU (its APIC ID, its VMXON region or SVM pages, its timer deadline,
//! the device lines it took for its vCPU). IA32_GS_BASE points at the CPU's slot, so
//! [`cpu_index`] is one GS-relative load with no APIC access and no table search; VM exits
//! restore the host GS base from the VMCS, so guests cannot disturb it. What belongs to a vCPU
//! rather than to the CPU under it (an MMIO decode in flight) lives in the vCPU.
//!
//! The fields other CPUs or interrupt handlers may touch are atomics, so the slots are shared
//! plainly; only the descriptor tables, written once by [`init`], sit behind a cell.

use arch_x86::msr::{wrmsr, IA32_GS_BASE};
use arch_x86::regs::{lgdt, ltr, reload_segments, DescriptorTablePointer};
use board_config::MAX_CPUS;
use core::cell::UnsafeCell;
use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};

/// The code segment selector (same in the boot GDT, the trampoline GDT and here).
pub const KERNEL_CS: u16 = 0x08;
/// The data segment selector.
pub const KERNEL_DS: u16 = 0x10;
/// The task state segment selector.
pub const KERNEL_TSS: u16 = 0x18;

const DF_STACK_SIZE: usize = 4096;
/// 64-bit TSS: 104 bytes; the I/O map base at offset 102 pointing past the end means no bitmap.
const TSS_SIZE: usize = 104;

/// One CPU's slot. `index` must stay the first field: [`cpu_index`] reads `gs:[0]`.
#[repr(C, align(4096))]
pub struct PerCpu {
    index: usize,
    /// The local APIC ID, recorded when the CPU starts (read by CPUs that kick it or route a
    /// device line to it).
    pub apic_id: AtomicU32,
    /// Physical address of this CPU's VMXON region while VMX is on, else 0 (`virt`).
    pub vmxon_region: AtomicU64,
    /// This CPU's SVM pages and flush request (`svm`).
    pub svm: SvmCpu,
    /// The TSC value this CPU's guest must exit by (`timer`; `u64::MAX`: none).
    pub timer_deadline: AtomicU64,
    /// Device interrupts the host took on this CPU (SVM) and its vCPU has not seen yet, bit n =
    /// I/O APIC line n (`ioapic`; set by the interrupt handler, so atomic).
    pub device_lines_taken: AtomicU64,
    tables: UnsafeCell<DescriptorTables>,
}

/// One CPU's SVM state: the pages VMRUN needs on this CPU and the flush its next VMRUN owes.
pub struct SvmCpu {
    /// Physical address of the host save area in `VM_HSAVE_PA`; 0 while SVM is off.
    pub host_save_area: AtomicU64,
    /// Physical address of the page the world switch VMSAVEs the host's state into.
    pub host_state: AtomicU64,
    /// The next VMRUN must flush this CPU's guest translations (the ASID is per CPU).
    pub flush_requested: AtomicBool,
}

/// What `lgdt`, `ltr` and the TSS's IST1 point at, so it must not move while loaded.
#[repr(C)]
struct DescriptorTables {
    gdt: [u64; 5],
    tss: [u32; TSS_SIZE / 4],
    df_stack: [u8; DF_STACK_SIZE],
}

// SAFETY: every field but `tables` is immutable after compilation or atomic. `tables` is written
// only by `init`, on the CPU that owns the slot and before anything uses its tables; afterwards
// only its address is taken (for the CPU's own GDTR, TR and a VMCS's host state).
unsafe impl Sync for PerCpu {}

impl PerCpu {
    const fn new(index: usize) -> Self {
        Self {
            index,
            apic_id: AtomicU32::new(0),
            vmxon_region: AtomicU64::new(0),
            svm: SvmCpu {
                host_save_area: AtomicU64::new(0),
                host_state: AtomicU64::new(0),
                // A vCPU's first VMRUN on a CPU must not trust what earlier ASID users left.
                flush_requested: AtomicBool::new(true),
            },
            timer_deadline: AtomicU64::new(u64::MAX),
            device_lines_taken: AtomicU64::new(0),
            tables: UnsafeCell::new(DescriptorTables {
                gdt: [0; 5],
                tss: [0; TSS_SIZE / 4],
                df_stack: [0; DF_STACK_SIZE],
            }),
        }
    }
}

/// Every CPU's slot, its index fixed at build time so it is right before the CPU starts.
static PERCPU: [PerCpu; MAX_CPUS] = {
    let mut slots = [const { PerCpu::new(0) }; MAX_CPUS];
    let mut cpu = 0;
    while cpu < MAX_CPUS {
        slots[cpu].index = cpu;
        cpu += 1;
    }
    slots
};

/// Builds the GDT entries for a TSS at `base`.
fn tss_descriptor(base: u64) -> [u64; 2] {
    let limit = (TSS_SIZE - 1) as u64;
    let low = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40) // present, DPL 0, available 64-bit TSS
        | ((base >> 24 & 0xff) << 56);
    [low, base >> 32]
}

/// Sets up and loads the calling CPU's GDT, TSS and GS base. Runs once per CPU, first thing
/// (the IDT is loaded after it, `idt::load`).
pub fn init(cpu: usize) {
    let tables = PERCPU[cpu].tables.get();
    // SAFETY: each CPU initializes only its own slot's tables, once, before anything else uses
    // them (the `Sync` contract above); the slot is a static, so the tables stay valid for as
    // long as they are loaded.
    unsafe {
        let tss = addr_of_mut!((*tables).tss);
        let df_top = addr_of_mut!((*tables).df_stack) as u64 + DF_STACK_SIZE as u64;
        // IST1 lives at byte offset 36 (words 9 and 10); the I/O map base at byte 102.
        (*tss)[9] = df_top as u32;
        (*tss)[10] = (df_top >> 32) as u32;
        (*tss)[25] = (TSS_SIZE as u32) << 16;
        let [tss_low, tss_high] = tss_descriptor(tss as u64);
        (*tables).gdt = [
            0,
            0x00af_9a00_0000_ffff,
            0x00cf_9200_0000_ffff,
            tss_low,
            tss_high,
        ];
        let gdtr = DescriptorTablePointer {
            limit: (core::mem::size_of::<[u64; 5]>() - 1) as u16,
            base: addr_of_mut!((*tables).gdt) as u64,
        };
        lgdt(&gdtr);
        reload_segments(KERNEL_CS, KERNEL_DS);
        ltr(KERNEL_TSS);
        // After the null GS load, which may clear the base on some CPUs.
        wrmsr(IA32_GS_BASE, &PERCPU[cpu] as *const PerCpu as u64);
    }
}

/// The calling CPU's dense index (0 for the boot CPU).
pub fn cpu_index() -> usize {
    let index: usize;
    // SAFETY: GS points at this CPU's PerCpu slot (set by `init`, the first thing each CPU does),
    // whose first field is the index.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) index, options(nostack, readonly, preserves_flags))
    };
    index
}

/// The calling CPU's slot.
pub fn this_cpu() -> &'static PerCpu {
    &PERCPU[cpu_index()]
}

/// CPU `cpu`'s slot.
pub fn of_cpu(cpu: usize) -> &'static PerCpu {
    &PERCPU[cpu]
}

/// The calling CPU's GDT and TSS addresses, for a VMCS's host state.
pub fn host_tables() -> (u64, u64) {
    let tables = this_cpu().tables.get();
    // SAFETY: only addresses are taken, no reference to the tables is made.
    unsafe {
        (
            addr_of_mut!((*tables).gdt) as u64,
            addr_of_mut!((*tables).tss) as u64,
        )
    }
}
