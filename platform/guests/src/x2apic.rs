//! x86 only: interrupts the hardware way, for the worker's x2APIC scenario. A GDT and an IDT of
//! the guest's own (the hypervisor starts it with neither), interrupt stubs that save the
//! caller-saved registers, call the registered handler with the vector and end the interrupt
//! with an x2APIC EOI, and the x2APIC registers the scenario uses. The partition's virtual APIC
//! (`partition/src/lapic.rs`) answers the MSRs; its timer counts at the rate CPUID leaf
//! 0x4000_0010 EBX gives in kHz.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicUsize, Ordering};

pub const ID: u32 = 0x802;
pub const EOI: u32 = 0x80b;
pub const SVR: u32 = 0x80f;
pub const ICR: u32 = 0x830;
pub const LVT_TIMER: u32 = 0x832;
pub const TIMER_INITIAL: u32 = 0x838;
pub const TIMER_DIVIDE: u32 = 0x83e;
/// SVR value: APIC software-enabled, spurious vector 0xff.
pub const SVR_ENABLED: u64 = 0x1ff;
/// LVT timer mode bit 17: periodic.
pub const TIMER_PERIODIC: u64 = 1 << 17;
/// Divide configuration 0b1011: by 1.
pub const DIVIDE_BY_1: u64 = 0b1011;

/// The vectors the stubs below exist for.
pub const FIRST_VECTOR: u8 = 0x40;
pub const VECTORS: usize = 4;

static HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Null, 64-bit code at 0x08, data at 0x10: the selectors the hypervisor starts the guest with.
static GDT: [u64; 3] = [0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff];

#[repr(C, align(16))]
struct Idt([[u64; 2]; 256]);

static mut IDT: Idt = Idt([[0; 2]; 256]);

global_asm!(
    ".section .text",
    ".irp v, 0,1,2,3",
    "septum_guest_vector_\\v:",
    "    push rax",
    "    mov eax, \\v",
    "    jmp septum_guest_vector_common",
    ".endr",
    "septum_guest_vector_common:",
    // rax (saved) holds the stub's index; 8 more registers keep the call 16-byte aligned.
    "    push rcx",
    "    push rdx",
    "    push rsi",
    "    push rdi",
    "    push r8",
    "    push r9",
    "    push r10",
    "    push r11",
    "    mov edi, eax",
    "    call {dispatch}",
    "    pop r11",
    "    pop r10",
    "    pop r9",
    "    pop r8",
    "    pop rdi",
    "    pop rsi",
    "    pop rdx",
    "    pop rcx",
    "    pop rax",
    "    iretq",
    ".section .rodata",
    ".balign 8",
    "septum_guest_vector_stubs:",
    ".irp v, 0,1,2,3",
    "    .quad septum_guest_vector_\\v",
    ".endr",
    dispatch = sym dispatch,
);

extern "C" {
    static septum_guest_vector_stubs: [u64; VECTORS];
}

extern "C" fn dispatch(index: u64) {
    let f = HANDLER.load(Ordering::SeqCst);
    if f != 0 {
        // SAFETY: only `install` stores this, always a `fn(u8)`.
        let handler: fn(u8) = unsafe { core::mem::transmute::<usize, fn(u8)>(f) };
        handler(FIRST_VECTOR + index as u8);
    }
    msr_write(EOI, 0);
}

/// Fills the IDT (once, by one vCPU) with `handler` for vectors `FIRST_VECTOR..+VECTORS`.
pub fn install(handler: fn(u8)) {
    HANDLER.store(handler as usize, Ordering::SeqCst);
    // SAFETY: called once, before any vCPU loads the IDT; the stub table is immutable.
    unsafe {
        let stubs = &*core::ptr::addr_of!(septum_guest_vector_stubs);
        let idt = &mut *core::ptr::addr_of_mut!(IDT);
        for (i, &stub) in stubs.iter().enumerate() {
            let low = (stub & 0xffff)
                | (0x08 << 16)
                | (0x8e << 40) // present, DPL 0, 64-bit interrupt gate
                | ((stub >> 16 & 0xffff) << 48);
            idt.0[usize::from(FIRST_VECTOR) + i] = [low, stub >> 32];
        }
    }
}

#[repr(C, packed)]
struct TablePointer {
    limit: u16,
    base: u64,
}

/// Loads the GDT and the IDT on the calling vCPU.
pub fn load() {
    let gdt = TablePointer {
        limit: (core::mem::size_of_val(&GDT) - 1) as u16,
        base: core::ptr::addr_of!(GDT) as u64,
    };
    let idt = TablePointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: core::ptr::addr_of!(IDT) as u64,
    };
    // SAFETY: both tables are static and complete; the GDT keeps the selectors in use (0x08
    // code, 0x10 data) meaning what they mean now, so no segment needs reloading.
    unsafe {
        asm!("lgdt [{0}]", in(reg) &gdt, options(nostack));
        asm!("lidt [{0}]", in(reg) &idt, options(nostack));
    }
}

/// Interrupts on.
pub fn enable() {
    // SAFETY: the IDT is loaded before any vector is programmed.
    unsafe { asm!("sti", options(nomem, nostack)) };
}

/// Interrupts off.
pub fn disable() {
    // SAFETY: only masks interrupts.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

pub use crate::rt::{msr_read, msr_write};

/// A fixed IPI of `vector` to APIC ID `dest`.
pub fn send_ipi(dest: u32, vector: u8) {
    msr_write(ICR, (u64::from(dest) << 32) | u64::from(vector));
}

/// The virtual APIC timer's rate in kHz (CPUID 0x4000_0010 EBX).
pub fn timer_khz() -> u64 {
    u64::from(crate::rt::cpuid(0x4000_0010)[1])
}

/// Where the real-mode start code is copied: a page below 1 MiB (a STARTUP vector names a page
/// there) that the test guests leave free (their page tables are at 0x1000-0x2fff).
pub const TRAMPOLINE: u64 = 0x8000;

// The code a STARTUP IPI starts: real mode at `TRAMPOLINE` (CS = 0x800, IP = 0), straight to
// 64-bit mode on the guest's identity page tables at 0x1000 (PAE, EFER.LME, then PE and PG
// together), then the runtime's secondary entry with the stack and index the sender left in the
// data words. It is position-dependent only through two words `start_by_startup` patches.
global_asm!(
    ".section .text",
    ".code16",
    ".global septum_trampoline_start",
    "septum_trampoline_start:",
    "    cli",
    "    movw %cs, %ax",
    "    movw %ax, %ds",
    "    lgdtl (tr_gdt_ptr - septum_trampoline_start)",
    "    movl %cr4, %eax",
    "    orl $0x20, %eax",
    "    movl %eax, %cr4",
    "    movl $0x1000, %eax",
    "    movl %eax, %cr3",
    "    movl $0xc0000080, %ecx",
    "    rdmsr",
    "    orl $0x100, %eax",
    "    wrmsr",
    "    movl %cr0, %eax",
    "    orl $0x80000001, %eax",
    "    movl %eax, %cr0",
    // ljmp 0x08:tr_long (32-bit offset, patched to the copy's address).
    "    .byte 0x66, 0xea",
    "tr_long_address:",
    "    .long 0",
    "    .word 0x08",
    ".code64",
    "tr_long:",
    "    movw $0x10, %ax",
    "    movw %ax, %ds",
    "    movw %ax, %es",
    "    movw %ax, %ss",
    "    movq tr_stack(%rip), %rdi",
    "    movq tr_index(%rip), %rsi",
    "    jmpq *tr_entry(%rip)",
    ".balign 8",
    "tr_stack: .quad 0",
    "tr_index: .quad 0",
    "tr_entry: .quad 0",
    "tr_gdt: .quad 0, 0x00af9a000000ffff, 0x00cf92000000ffff",
    "tr_gdt_ptr: .word 23",
    "tr_gdt_base: .long 0",
    ".global septum_trampoline_end",
    "septum_trampoline_end:",
    ".section .rodata",
    ".balign 8",
    ".global septum_trampoline_offsets",
    "septum_trampoline_offsets:",
    "    .quad tr_long_address - septum_trampoline_start",
    "    .quad tr_long - septum_trampoline_start",
    "    .quad tr_stack - septum_trampoline_start",
    "    .quad tr_gdt - septum_trampoline_start",
    "    .quad tr_gdt_base - septum_trampoline_start",
    options(att_syntax)
);

extern "C" {
    static septum_trampoline_start: u8;
    static septum_trampoline_end: u8;
    /// Offsets in the code: the far jump's target word, the 64-bit label, the data words
    /// (stack, index, entry), the GDT and the GDT pointer's base word.
    static septum_trampoline_offsets: [u64; 5];
}

/// Starts vCPU `index` (APIC ID = index) the hardware way: copies the start code to
/// [`TRAMPOLINE`], leaves it `stack` and the runtime's secondary entry, and sends INIT, then
/// STARTUP twice (as operating systems do; the second is ignored once the vCPU runs).
pub fn start_by_startup(index: u64, stack: u64) {
    // SAFETY: the symbols come from the assembly above; the copy goes to a page of the guest's
    // own memory nothing else uses, and only this vCPU writes it before the STARTUP.
    unsafe {
        let start = core::ptr::addr_of!(septum_trampoline_start);
        let len = core::ptr::addr_of!(septum_trampoline_end) as usize - start as usize;
        let dst = TRAMPOLINE as *mut u8;
        core::ptr::copy_nonoverlapping(start, dst, len);
        let [jump, long, data, gdt, gdt_base] = *core::ptr::addr_of!(septum_trampoline_offsets);
        let at = |off: u64| TRAMPOLINE + off;
        (at(jump) as *mut u32).write_unaligned((TRAMPOLINE + long) as u32);
        (at(gdt_base) as *mut u32).write_unaligned((TRAMPOLINE + gdt) as u32);
        let words = at(data) as *mut u64;
        words.write_volatile(stack);
        words.add(1).write_volatile(index);
        words
            .add(2)
            .write_volatile(crate::smp::secondary_entry_address());
    }
    let dest = u64::from(index as u32) << 32;
    msr_write(ICR, dest | (5 << 8) | (1 << 14)); // INIT, assert
    msr_write(ICR, dest | (5 << 8) | (1 << 15)); // INIT, de-assert
    let vector = TRAMPOLINE >> 12;
    msr_write(ICR, dest | (6 << 8) | (1 << 14) | vector); // STARTUP
    msr_write(ICR, dest | (6 << 8) | (1 << 14) | vector);
}
