//! The interrupt descriptor table: vectors 0-31 (CPU exceptions) go to small assembly stubs that
//! push a uniform frame and call [`exception`], which names the exception on the console and ends
//! the run as a failure. Nothing in the hypervisor expects an exception yet, so any one is a bug
//! worth stopping for. One table is shared by all CPUs; #DF runs on each CPU's IST1 stack so a
//! stack overflow still gets reported. The one exception is the NMI (vector 2): the hypervisor's
//! kick (`guests.rs`) is an NMI, and one that reaches a CPU outside its guest has nothing left to
//! do (the kicker set the CPU's kick flag first, which the next entry checks), so its stub just
//! returns, except inside the VMX entry window or the idle window (`idle`), where it resumes at
//! the window's abort label (`arch_x86::vmx::enter`).
//!
//! Vectors 32 and up are interrupts, and only the ones a module has claimed with [`register`] are
//! present: a stray interrupt shows up as #GP with the IDT index in the error code. The host takes
//! interrupts only under SVM, with interrupts briefly on after the guest exit they caused, and in
//! the idle window; the timer (`timer`) and the I/O APIC lines (`ioapic`) register their vectors
//! at boot. Every interrupt vector has a stub that saves the caller-saved registers and calls the
//! registered handler with its vector, so this module names none of the modules that handle them.

use super::percpu::KERNEL_CS;
use crate::arch::{Current, Machine, Outcome};
use arch_x86::regs::{lidt, read_cr2, DescriptorTablePointer};
use core::arch::global_asm;
use core::ptr::{addr_of, addr_of_mut};
use spin::Once;

const VECTORS: usize = 32;
/// Entries in the table: every vector, so any interrupt vector can be registered.
const ENTRIES: usize = 256;
/// Interrupt vectors, 32..=255, each with a stub and room for a handler.
const INTERRUPTS: usize = ENTRIES - VECTORS;
const DOUBLE_FAULT: usize = 8;

global_asm!(
    r#"
    .section .text.septum_exceptions, "ax"
    /* Vectors without an error code push a zero so every frame has the same layout. */
    /* An NMI is a kick. One that interrupts a window resumes at the window's abort label
       instead: the VMX entry window (`arch_x86::vmx::enter`: the entry is abandoned and the
       kick seen), and the idle window (`idle`: the CPU does not sleep through the kick; one
       that woke its `hlt` has returned after it, at the window's end, which is outside).
       rax holds the interrupted RIP; `past` is the branch that leaves the window's range at its
       end (inclusive: ja; exclusive: jae). */
    .macro septum_nmi_window start, end, past, abort
    lea rcx, [rip + \start]
    cmp rax, rcx
    jb 1f
    lea rcx, [rip + \end]
    cmp rax, rcx
    \past 1f
    lea rax, [rip + \abort]
    mov [rsp + 16], rax
1:
    .endm
septum_exc_2:
    push rax
    push rcx
    mov rax, [rsp + 16]
    septum_nmi_window septum_vmx_window_start, septum_vmx_window_end, ja, septum_vmx_window_abort
    mov rax, [rsp + 16]
    septum_nmi_window septum_idle_window_start, septum_idle_window_end, jae, septum_idle_window_abort
    pop rcx
    pop rax
    iretq
    .irp v, 0,1,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
septum_exc_\v:
    push 0
    push \v
    jmp septum_exc_common
    .endr
    .irp v, 8,10,11,12,13,14,17,21,29,30
septum_exc_\v:
    push \v
    jmp septum_exc_common
    .endr
septum_exc_common:
    mov rdi, rsp
    and rsp, -16
    call {handler}
    ud2

    /* The interrupts the host takes (SVM, after the intercept; the idle window): one stub per
       vector 0x20..0xff puts its vector in rdi for {interrupt}; the CPU pushed 5 words on a
       16-byte aligned stack, and 9 more keep the call aligned. */
    .irp hi, 2,3,4,5,6,7,8,9,a,b,c,d,e,f
    .irp lo, 0,1,2,3,4,5,6,7,8,9,a,b,c,d,e,f
septum_irq_0x\hi\lo:
    push rdi
    mov edi, 0x\hi\lo
    jmp septum_host_irq_common
    .endr
    .endr
septum_host_irq_common:
    push rax
    push rcx
    push rdx
    push rsi
    push r8
    push r9
    push r10
    push r11
    call {interrupt}
    pop r11
    pop r10
    pop r9
    pop r8
    pop rsi
    pop rdx
    pop rcx
    pop rax
    pop rdi
    iretq

    .section .rodata.septum_exceptions, "a"
    .balign 8
    .global septum_exception_stubs
septum_exception_stubs:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad septum_exc_\v
    .endr
    .global septum_interrupt_stubs
septum_interrupt_stubs:
    .irp hi, 2,3,4,5,6,7,8,9,a,b,c,d,e,f
    .irp lo, 0,1,2,3,4,5,6,7,8,9,a,b,c,d,e,f
    .quad septum_irq_0x\hi\lo
    .endr
    .endr
    "#,
    handler = sym exception,
    interrupt = sym host_interrupt,
);

/// What a module registered for each interrupt vector (index: vector - 32).
static HANDLERS: [Once<fn(u8)>; INTERRUPTS] = [const { Once::new() }; INTERRUPTS];

/// A maskable interrupt the host took (VMX acknowledges them on exit instead, so under VMX only
/// the idle window takes any): its registered handler, which must end it.
extern "C" fn host_interrupt(vector: u64) {
    let handler = (vector as usize)
        .checked_sub(VECTORS)
        .and_then(|i| HANDLERS.get(i))
        .and_then(Once::get);
    // Only registered vectors have a present gate, so there is always one.
    if let Some(handler) = handler {
        handler(vector as u8);
    }
}

extern "C" {
    static septum_exception_stubs: [u64; VECTORS];
    static septum_interrupt_stubs: [u64; INTERRUPTS];
}

/// What the stub and the CPU pushed, lowest address first.
#[repr(C)]
struct ExceptionFrame {
    vector: u64,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

const NAMES: [&str; VECTORS] = [
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor segment overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack fault",
    "#GP general protection",
    "#PF page fault",
    "reserved",
    "#MF x87 error",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD error",
    "#VE virtualization exception",
    "#CP control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "#HV hypervisor injection",
    "#VC VMM communication",
    "#SX security exception",
    "reserved",
];

extern "C" fn exception(frame: &ExceptionFrame) -> ! {
    let name = NAMES.get(frame.vector as usize).copied().unwrap_or("?");
    crate::console::print_unlocked(format_args!(
        "\nEXCEPTION on cpu{}: vector {} ({}) error {:#x} RIP={:#x} CR2={:#x} RSP={:#x} CS={:#x} RFLAGS={:#x}\n",
        Current::cpu_index(),
        frame.vector,
        name,
        frame.error,
        frame.rip,
        read_cr2(),
        frame.rsp,
        frame.cs,
        frame.rflags,
    ));
    Current::exit(Outcome::Failure)
}

#[repr(C, align(16))]
struct Idt([[u64; 2]; ENTRIES]);

static mut IDT: Idt = Idt([[0; 2]; ENTRIES]);

/// An interrupt-gate descriptor for `handler`.
fn gate(handler: u64, ist: u8) -> [u64; 2] {
    let low = (handler & 0xffff)
        | (u64::from(KERNEL_CS) << 16)
        | (u64::from(ist) << 32)
        | (0x8e << 40) // present, DPL 0, 64-bit interrupt gate
        | ((handler >> 16 & 0xffff) << 48);
    [low, handler >> 32]
}

/// Fills the shared IDT's exception vectors. Runs once, on the boot CPU, before any CPU loads
/// it.
pub fn init() {
    // SAFETY: runs once on the boot CPU before any other CPU exists or any IDT load; the stub
    // table is immutable data from the assembly above.
    unsafe {
        let stubs = &*addr_of!(septum_exception_stubs);
        let idt = &mut *addr_of_mut!(IDT);
        for (v, entry) in idt.0.iter_mut().take(VECTORS).enumerate() {
            *entry = gate(stubs[v], if v == DOUBLE_FAULT { 1 } else { 0 });
        }
    }
}

/// Makes interrupt vector `vector` present, taken by `handler` (called with the vector, with
/// interrupts off; it must end the interrupt). Each vector is registered once, on the boot CPU
/// before the other CPUs start, and before anything can raise it.
pub fn register(vector: u8, handler: fn(u8)) {
    let index = usize::from(vector)
        .checked_sub(VECTORS)
        .expect("an exception vector cannot be registered");
    let mut fresh = false;
    HANDLERS[index].call_once(|| {
        fresh = true;
        handler
    });
    assert!(fresh, "interrupt vector {vector:#x} registered twice");
    // SAFETY: the stub table is immutable data from the assembly above. The entry is written
    // through a raw pointer (no reference to the shared table exists), once per vector thanks to
    // the `Once` above, and before anything raises the vector, so no CPU reads it meanwhile.
    unsafe {
        let stub = (*addr_of!(septum_interrupt_stubs))[index];
        addr_of_mut!(IDT.0[usize::from(vector)]).write_volatile(gate(stub, 0));
    }
}

/// Loads the shared IDT on the calling CPU.
pub fn load() {
    let ptr = DescriptorTablePointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: addr_of!(IDT) as u64,
    };
    // SAFETY: the IDT was filled by `init` before any CPU calls `load`, is never changed again,
    // and its gates point at the stubs above, which are sound to run at any time.
    unsafe { lidt(&ptr) };
}
