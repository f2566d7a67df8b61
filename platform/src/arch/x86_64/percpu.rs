//! Per-CPU data: each CPU's GDT (64-bit code and data plus its own TSS, since `ltr` marks a TSS
//! descriptor busy and VMX host state needs a non-zero TR), its TSS with a double-fault stack, and
//! small fields the rest of the arch code keeps per CPU. IA32_GS_BASE points at the CPU's slot, so
//! `cpu_index()` is one GS-relative load with no APIC access and no table search; VM exits restore
//! the host GS base from the VMCS, so guests cannot disturb it.

use super::idt;
use arch_x86::msr::{wrmsr, IA32_GS_BASE};
use arch_x86::regs::{lgdt, ltr, reload_segments, DescriptorTablePointer};
use board_config::MAX_CPUS;
use core::ptr::addr_of_mut;

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
    /// The local APIC ID, recorded when the CPU starts.
    pub apic_id: u32,
    /// Physical address of this CPU's VMXON region while VMX is on, else 0.
    pub vmxon_region: u64,
    /// The TSC value this CPU's guest must exit by (`timer`; `u64::MAX`: none).
    pub deadline: u64,
    gdt: [u64; 5],
    tss: [u32; TSS_SIZE / 4],
    df_stack: [u8; DF_STACK_SIZE],
}

impl PerCpu {
    const fn new() -> Self {
        Self {
            index: 0,
            apic_id: 0,
            vmxon_region: 0,
            deadline: u64::MAX,
            gdt: [0; 5],
            tss: [0; TSS_SIZE / 4],
            df_stack: [0; DF_STACK_SIZE],
        }
    }
}

static mut PERCPU: [PerCpu; MAX_CPUS] = [const { PerCpu::new() }; MAX_CPUS];

/// Builds the GDT entries for a TSS at `base`.
fn tss_descriptor(base: u64) -> [u64; 2] {
    let limit = (TSS_SIZE - 1) as u64;
    let low = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40) // present, DPL 0, available 64-bit TSS
        | ((base >> 24 & 0xff) << 56);
    [low, base >> 32]
}

/// Sets up and loads the calling CPU's GDT, TSS, IDT and GS base. Runs once per CPU, first thing.
pub fn init(cpu: usize) {
    assert!(cpu < MAX_CPUS);
    // SAFETY: each CPU initializes only its own slot, before anything else reads it; the slot is
    // a static, so the tables stay valid for as long as they are loaded.
    unsafe {
        let slot = addr_of_mut!(PERCPU[cpu]);
        (*slot).index = cpu;
        let tss = addr_of_mut!((*slot).tss);
        let df_top = addr_of_mut!((*slot).df_stack) as u64 + DF_STACK_SIZE as u64;
        // IST1 lives at byte offset 36 (words 9 and 10); the I/O map base at byte 102.
        (*tss)[9] = df_top as u32;
        (*tss)[10] = (df_top >> 32) as u32;
        (*tss)[25] = (TSS_SIZE as u32) << 16;
        let [tss_low, tss_high] = tss_descriptor(tss as u64);
        (*slot).gdt = [
            0,
            0x00af_9a00_0000_ffff,
            0x00cf_9200_0000_ffff,
            tss_low,
            tss_high,
        ];
        let gdtr = DescriptorTablePointer {
            limit: (core::mem::size_of::<[u64; 5]>() - 1) as u16,
            base: addr_of_mut!((*slot).gdt) as u64,
        };
        lgdt(&gdtr);
        reload_segments(KERNEL_CS, KERNEL_DS);
        ltr(KERNEL_TSS);
        // After the null GS load, which may clear the base on some CPUs.
        wrmsr(IA32_GS_BASE, slot as u64);
    }
    idt::load();
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
pub fn current() -> *mut PerCpu {
    let cpu = cpu_index();
    // SAFETY: only the address is taken; the caller touches only its own CPU's slot.
    unsafe { addr_of_mut!(PERCPU[cpu]) }
}

/// The APIC ID CPU `cpu` recorded when it started.
pub fn apic_id_of(cpu: usize) -> u32 {
    assert!(cpu < MAX_CPUS);
    // SAFETY: a plain read of a field each CPU writes once at start, before it is announced.
    unsafe { (*addr_of_mut!(PERCPU[cpu])).apic_id }
}

/// The calling CPU's GDT and TSS addresses, for a VMCS's host state.
pub fn host_tables() -> (u64, u64) {
    let slot = current();
    // SAFETY: only the addresses of this CPU's own slot are taken.
    unsafe {
        (
            addr_of_mut!((*slot).gdt) as u64,
            addr_of_mut!((*slot).tss) as u64,
        )
    }
}
