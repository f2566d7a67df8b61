//! The x86_64 runtime of the test guests, for the VMX and SVM backends: the entry point, the
//! stack, the hypercall instruction, and the board-layout facts the scenarios rely on. The
//! backend enters the guest in 64-bit mode with an identity map at the board file's `entry`, with
//! the boot registers rdi = partition id, rsi = flags (bit 0: make hypercalls with `vmmcall`, i.e.
//! the SVM backend, where `vmcall` raises #UD; clear: `vmcall`, VMX), rdx = times started before,
//! rcx = first shared region's
//! guest-physical address (0 if none), r8 = its size. Hypercall: number in rax, arguments in rdi,
//! rsi, rdx, r10, r8, r9, result in rax (`vcpu/README.md`). A secondary vCPU starts with rdi =
//! the argument its `VCPU_START` passed (here: its stack top) and rsi = its index.
//!
//! The constants below follow `board-configs/bochs-x86_64.toml` and `qemu-x86_64.toml`; whoever
//! brings up the x86 scenarios owns them and may change them with those files.

use crate::BootArgs;
use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, Ordering};

/// The stage-2 (EPT) base page: 4 KiB.
pub const PAGE: u64 = 4096;
/// Guest-physical base of the worker's workload pages: 16 MiB into its 32 MiB low RAM.
pub const WORKLOAD_BASE: u64 = 0x100_0000;
/// Bit of the workload's first 4 KiB page in a dirty bitmap of the worker's memory.
pub const WORKLOAD_BIT: u64 = WORKLOAD_BASE >> 12;
/// An address no test partition owns (beyond the hostile guest's 16 MiB).
pub const OTHER_PARTITION: u64 = 0x600_0000;
/// Outside every test partition's memory except the manager/worker shared window.
pub const OUTSIDE: u64 = 0x400_0000;
/// A device no partition owns: the HPET's registers.
pub const FOREIGN_DEVICE: u64 = 0xfed0_0000;
/// The interrupt controller every partition sees (a view of the board's I/O APIC, `irqchip`).
pub const IRQCHIP: u64 = 0xfec0_0000;
/// Its name, as the hypervisor's console lines say it.
pub const IRQCHIP_NAME: &str = "IOAPIC";
/// What [`irqchip_route_to_self`] returns for a line left masked and unrouted: the low dword of
/// a masked redirection entry, destination 0.
pub const IRQCHIP_MASKED: u64 = 1 << 16;
/// A guest-physical address nothing maps, to jump to.
pub const UNMAPPED_CODE: u64 = 0x10_0000_0000;
/// An I/O port no test partition owns: the PCI configuration address register, through which a
/// partition could reach every host PCI function.
pub const FOREIGN_PORT: u16 = 0xcf8;
/// An MSR no partition owns: IA32_APIC_BASE, which would move or disable the local APIC the
/// hypervisor sends its kicks through.
pub const FOREIGN_MSR: u32 = 0x1b;

const STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);

/// Only the entry code uses it, through its symbol.
#[no_mangle]
static mut GUEST_STACK: Stack = Stack([0; STACK_SIZE]);

static USE_VMMCALL: AtomicBool = AtomicBool::new(false);

global_asm!(
    ".section .text.entry, \"ax\"",
    ".global _start",
    "_start:",
    "    mov     r11, rdi",
    "    lea     rdi, [rip + __bss_start]",
    "    lea     r10, [rip + __bss_end]",
    "1:  cmp     rdi, r10",
    "    jae     2f",
    "    mov     qword ptr [rdi], 0",
    "    add     rdi, 8",
    "    jmp     1b",
    "2:  mov     rdi, r11",
    "    lea     rsp, [rip + GUEST_STACK + {size}]",
    "    call    {start}",
    "3:  hlt",
    "    jmp     3b",
    size = const STACK_SIZE,
    start = sym start,
);

global_asm!(
    ".section .text",
    ".global septum_guest_secondary_entry",
    "septum_guest_secondary_entry:",
    "    mov     rsp, rdi",
    "    mov     rdi, rsi",
    "    call    {secondary}",
    "1:  hlt",
    "    jmp     1b",
    secondary = sym crate::smp::secondary,
);

/// The time-stamp counter.
pub fn now() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtsc only reads the counter.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    u64::from(hi) << 32 | u64::from(lo)
}

extern "C" fn start(id: u64, flags: u64, starts: u64, shared: u64, shared_size: u64) -> ! {
    USE_VMMCALL.store(flags & 1 != 0, Ordering::Relaxed);
    crate::enter(BootArgs {
        id,
        flags,
        starts,
        shared,
        shared_size,
    })
}

/// Makes hypercall `nr` with `args`; returns rax.
pub fn hypercall(nr: u64, args: [u64; 6]) -> i64 {
    let ret: u64;
    if USE_VMMCALL.load(Ordering::Relaxed) {
        // SAFETY: `vmmcall` exits to the hypervisor (SVM), which reads the registers and
        // writes rax.
        unsafe {
            asm!("vmmcall", inlateout("rax") nr => ret, in("rdi") args[0], in("rsi") args[1],
                in("rdx") args[2], in("r10") args[3], in("r8") args[4], in("r9") args[5],
                options(nostack))
        };
    } else {
        // SAFETY: `vmcall` exits to the hypervisor (VMX), which reads the registers and writes
        // rax.
        unsafe {
            asm!("vmcall", inlateout("rax") nr => ret, in("rdi") args[0], in("rsi") args[1],
                in("rdx") args[2], in("r10") args[3], in("r8") args[4], in("r9") args[5],
                options(nostack))
        };
    }
    ret as i64
}

/// Executes an instruction only the hypervisor may use (`vmxon`'s neighbour: `invd`).
pub fn privileged_instruction() {
    // SAFETY: `invd` always exits in a VMX guest and is intercepted in an SVM one; it never
    // reaches the caches.
    unsafe { asm!("invd", options(nomem, nostack)) };
}

/// Programs device line `line` of the interrupt controller to reach this partition's vCPU 0
/// with `vector`, unmasked: its I/O APIC redirection entry, high dword (destination APIC ID 0)
/// then low dword (fixed, edge, unmasked), through IOREGSEL (+0x00) and IOWIN (+0x10). Returns
/// the entry as it reads back afterwards.
pub fn irqchip_route_to_self(line: u32, vector: u8) -> u64 {
    let select = IRQCHIP as *mut u32;
    let window = (IRQCHIP + 0x10) as *mut u32;
    let entry = 0x10 + 2 * line;
    // SAFETY: the controller's window is a device the hypervisor emulates for every partition;
    // each access traps to it and touches no guest memory.
    unsafe {
        select.write_volatile(entry + 1);
        window.write_volatile(0);
        select.write_volatile(entry);
        window.write_volatile(u32::from(vector));
        let low = window.read_volatile();
        select.write_volatile(entry + 1);
        u64::from(low) | u64::from(window.read_volatile()) << 32
    }
}

/// Writes `value` to I/O port `port` (32 bits).
pub fn port_write(port: u16, value: u32) {
    // SAFETY: a port write touches no guest memory; a port the partition does not own exits.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack)) };
}

/// Reads model-specific register `msr`.
pub fn msr_read(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: `rdmsr` touches no guest memory; an MSR the partition does not own exits (the
    // x2APIC ones to its virtual APIC).
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes `value` to model-specific register `msr`.
pub fn msr_write(msr: u32, value: u64) {
    // SAFETY: `wrmsr` touches no guest memory; an MSR the partition does not own exits.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
            options(nomem, nostack))
    };
}

/// CPUID leaf `leaf` (subleaf 0): eax, ebx, ecx, edx. In a partition it always exits, and the
/// hypervisor answers.
pub fn cpuid(leaf: u32) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid_count(leaf, 0);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// Jumps to `addr` (never comes back when the address is unmapped).
pub fn jump(addr: u64) -> ! {
    // SAFETY: deliberately transfers control to `addr`; the hostile guest uses this to fault.
    unsafe { asm!("jmp {0}", in(reg) addr, options(noreturn, nostack)) }
}

/// Spins a little: lets other CPUs make progress between polls (inlined: no call, no stack
/// write, in poll loops).
#[inline(always)]
pub fn relax() {
    for _ in 0..64 {
        core::hint::spin_loop();
    }
}

/// Masks interrupts and spins forever without another exit (no hypercall, no memory access):
/// the guest that never gives its CPU back. Only the hypervisor's own preemption source (a host
/// interrupt, which exits the guest whatever its RFLAGS.IF) can take the CPU back.
pub fn spin_masked() -> ! {
    // SAFETY: `cli` only masks this vCPU's virtual interrupts; the loop touches nothing.
    unsafe { asm!("cli", "2: jmp 2b", options(noreturn, nomem, nostack)) }
}

/// The hostile guest's memory: guest-physical `[0, OWN_MEMORY)` (`board-configs/*x86_64.toml`).
pub const OWN_MEMORY: u64 = 0x100_0000;
/// Addresses the hypercall fuzzer aims at: the hypervisor's image (its host address, which in
/// this partition's guest-physical space is its own memory), just past its own memory, and the
/// other test partitions' host memory (manager, worker, their shared region), none of which a
/// buffer argument may reach.
pub const FUZZ_TARGETS: [u64; 6] = [
    0x10_0000,
    OWN_MEMORY,
    0x200_0000,
    0x400_0000,
    0x700_0000,
    0xfee0_0000,
];
