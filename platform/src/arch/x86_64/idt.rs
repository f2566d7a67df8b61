//! The interrupt descriptor table: vectors 0-31 (CPU exceptions) go to small assembly stubs that
//! push a uniform frame and call [`exception`], which names the exception on the console and ends
//! the run as a failure. Nothing in the hypervisor expects an exception yet, so any one is a bug
//! worth stopping for. Vectors 32 and up are not present: a stray interrupt shows up as #GP with
//! the IDT index in the error code. One table is shared by all CPUs; #DF runs on each CPU's IST1
//! stack so a stack overflow still gets reported. The one exception is the NMI (vector 2): the
//! hypervisor's kick (`guests.rs`) is an NMI, and one that reaches a CPU outside its guest has
//! nothing left to do (the kicker set the CPU's kick flag first, which the next entry checks), so
//! its stub just returns, except inside the VMX entry window or the idle window (`idle`), where
//! it resumes at the window's abort label (`arch_x86::vmx::enter`). And one interrupt vector is present: the local
//! APIC timer's (`timer::TIMER_VECTOR`), which the SVM backend takes with interrupts briefly on
//! after the guest exit it caused; its stub saves the caller-saved registers and ends it. The
//! device vectors of the I/O APIC lines (`ioapic::FIRST_VECTOR` and the `ioapic::VECTORS` after
//! it) are present for the same reason: their stubs pass the vector to
//! `ioapic::on_device_interrupt`, which records it for the vCPU and ends it.

use super::ioapic;
use super::percpu::KERNEL_CS;
use crate::arch::{Current, Machine, Outcome};
use arch_x86::regs::{lidt, read_cr2, DescriptorTablePointer};
use core::arch::global_asm;
use core::ptr::addr_of;

const VECTORS: usize = 32;
/// Entries in the table: every vector, so the timer's can be present.
const ENTRIES: usize = 256;
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

    /* The interrupts the host takes (SVM, after the intercept): the timer's vector and the
       device vectors 0x50..0x6f. Each stub puts its vector in rdi for {interrupt}; the CPU
       pushed 5 words on a 16-byte aligned stack, and 9 more keep the call aligned. */
    .global septum_timer_irq
septum_timer_irq:
    push rdi
    mov edi, {timer_vector}
    jmp septum_host_irq_common
    .irp v, 0x50,0x51,0x52,0x53,0x54,0x55,0x56,0x57,0x58,0x59,0x5a,0x5b,0x5c,0x5d,0x5e,0x5f,0x60,0x61,0x62,0x63,0x64,0x65,0x66,0x67,0x68,0x69,0x6a,0x6b,0x6c,0x6d,0x6e,0x6f
septum_device_irq_\v:
    push rdi
    mov edi, \v
    jmp septum_host_irq_common
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
    .global septum_device_irq_stubs
septum_device_irq_stubs:
    .irp v, 0x50,0x51,0x52,0x53,0x54,0x55,0x56,0x57,0x58,0x59,0x5a,0x5b,0x5c,0x5d,0x5e,0x5f,0x60,0x61,0x62,0x63,0x64,0x65,0x66,0x67,0x68,0x69,0x6a,0x6b,0x6c,0x6d,0x6e,0x6f
    .quad septum_device_irq_\v
    .endr
    "#,
    handler = sym exception,
    interrupt = sym host_interrupt,
    timer_vector = const super::timer::TIMER_VECTOR,
);

/// A maskable interrupt the host took (only SVM takes them: VMX acknowledges them on exit):
/// the timer's, which only has to end, or a device line's, which is recorded for the vCPU.
extern "C" fn host_interrupt(vector: u64) {
    if vector == u64::from(super::timer::TIMER_VECTOR) {
        super::timer::on_timer_interrupt();
    } else {
        ioapic::on_device_interrupt(vector);
    }
}

extern "C" {
    static septum_exception_stubs: [u64; VECTORS];
    static septum_device_irq_stubs: [u64; ioapic::VECTORS as usize];
    fn septum_timer_irq();
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

/// Fills the shared IDT. Runs once, on the boot CPU, before any CPU loads it.
pub fn init() {
    // SAFETY: runs once on the boot CPU before any other CPU exists or any IDT load; the stub
    // table is immutable data from the assembly above.
    unsafe {
        let stubs = &*addr_of!(septum_exception_stubs);
        let idt = &mut *core::ptr::addr_of_mut!(IDT);
        for (v, entry) in idt.0.iter_mut().take(VECTORS).enumerate() {
            *entry = gate(stubs[v], if v == DOUBLE_FAULT { 1 } else { 0 });
        }
        let timer = septum_timer_irq as unsafe extern "C" fn() as usize as u64;
        idt.0[usize::from(super::timer::TIMER_VECTOR)] = gate(timer, 0);
        let devices = &*addr_of!(septum_device_irq_stubs);
        for (i, &stub) in devices.iter().enumerate() {
            idt.0[usize::from(ioapic::FIRST_VECTOR) + i] = gate(stub, 0);
        }
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
