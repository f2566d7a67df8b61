//! Starting the other CPUs. Their APIC IDs come from the ACPI MADT (else IDs 1..=max are tried).
//! Each is started alone with INIT, then STARTUP (twice if needed) at a real-mode trampoline copied
//! to [`TRAMPOLINE`]; the trampoline goes 16 → 32 → 64-bit on the boot page tables and jumps into
//! the image, where the CPU takes its stack and index from a mailbox the boot CPU filled, sets up
//! its per-CPU state and acknowledges. Starting one CPU at a time keeps one mailbox enough.

use super::lapic::local_apic;
use super::{acpi, delay, idt, percpu};
use crate::arch::{Current, Machine};
use crate::cpu_stacks::cpu_stack_top;
use arch_x86::apic::LocalApic;
use board_config::MAX_CPUS;
use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

/// Where the trampoline runs: a page below 1 MiB (reserved with the low 1 MiB), vector 0x08.
const TRAMPOLINE: u64 = 0x8000;
/// INIT → STARTUP wait from the Intel SDM's MP initialization protocol.
const INIT_DELAY_US: u64 = 10_000;
/// How long a CPU may take from STARTUP to its acknowledgement before a second STARTUP.
const FIRST_SIPI_WAIT_US: u64 = 1_000;
/// How long after the second STARTUP before giving the CPU up.
const SECOND_SIPI_WAIT_US: u64 = 200_000;

/// The mailbox: the next CPU's stack top and index; `AP_ACK` is set to the index when it runs.
static AP_STACK: AtomicU64 = AtomicU64::new(0);
static AP_CPU: AtomicU64 = AtomicU64::new(0);
static AP_ACK: AtomicU64 = AtomicU64::new(u64::MAX);

global_asm!(
    r#"
    .section .text.septum_trampoline, "ax"
    .global septum_trampoline_start
    .global septum_trampoline_end
    .code16
septum_trampoline_start:
    cli
    cld
    xor ax, ax
    mov ds, ax
    lgdt [.Ltramp_gdtr_at]
    mov eax, cr0
    or eax, 1                     /* PE */
    mov cr0, eax
    /* ljmp 0x18:tramp32 with a 32-bit offset */
    .byte 0x66, 0xea
    .long {base} + (.Ltramp32 - septum_trampoline_start)
    .short 0x18

    .code32
.Ltramp32:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov eax, cr4
    or eax, 0x20                  /* PAE */
    mov cr4, eax
    mov eax, offset septum_boot_pml4
    mov cr3, eax
    mov ecx, 0xc0000080           /* IA32_EFER */
    rdmsr
    or eax, 0x100                 /* LME */
    wrmsr
    mov eax, cr0
    and eax, 0x9fffffff           /* clear CD and NW: INIT leaves caching disabled */
    or eax, 0x80000021            /* PG | NE | PE */
    mov cr0, eax
    .byte 0xea
    .long {base} + (.Ltramp64 - septum_trampoline_start)
    .short 0x08

    .code64
.Ltramp64:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    movabs rax, offset septum_ap_entry64
    jmp rax

    .balign 8
.Ltramp_gdt:
    .quad 0
    .quad 0x00af9a000000ffff      /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff      /* 0x10: data */
    .quad 0x00cf9a000000ffff      /* 0x18: 32-bit code */
.Ltramp_gdtr:
    .short 31
    .long {base} + (.Ltramp_gdt - septum_trampoline_start)
septum_trampoline_end:
    /* Where the GDT pointer lands once copied (a memory operand may name only one symbol). */
    .set .Ltramp_gdtr_at, {base} + (.Ltramp_gdtr - septum_trampoline_start)

    /* In the image, at its linked address: take the mailbox's stack and index. */
    .section .text.septum_ap_entry, "ax"
    .global septum_ap_entry64
septum_ap_entry64:
    mov rsp, qword ptr [rip + {stack}]
    mov rdi, qword ptr [rip + {cpu}]
    call {main}
    ud2
    "#,
    base = const TRAMPOLINE,
    stack = sym AP_STACK,
    cpu = sym AP_CPU,
    main = sym ap_main,
);

extern "C" {
    static septum_trampoline_start: u8;
    static septum_trampoline_end: u8;
}

/// A secondary CPU's first Rust code, on its own stack.
extern "C" fn ap_main(cpu: usize) -> ! {
    percpu::init(cpu);
    idt::load();
    let apic_id = local_apic().id();
    percpu::this_cpu().apic_id.store(apic_id, Ordering::SeqCst);
    AP_ACK.store(cpu as u64, Ordering::SeqCst);
    crate::boot::secondary_main(cpu)
}

fn copy_trampoline() {
    // SAFETY: the trampoline bytes are part of the image; the destination page is in the low
    // 1 MiB, which is reserved from the frame allocator and used by nothing else after boot.
    unsafe {
        let start = core::ptr::addr_of!(septum_trampoline_start);
        let len = core::ptr::addr_of!(septum_trampoline_end) as usize - start as usize;
        assert!(len <= 4096, "SMP trampoline larger than a page");
        core::ptr::copy_nonoverlapping(start, Current::phys_to_virt(TRAMPOLINE) as *mut u8, len);
    }
}

/// Starts the CPU with `apic_id` as `cpu`; returns whether it acknowledged.
fn start_one(apic: &LocalApic, apic_id: u32, cpu: usize) -> bool {
    AP_STACK.store(cpu_stack_top(cpu) as u64, Ordering::SeqCst);
    AP_CPU.store(cpu as u64, Ordering::SeqCst);
    AP_ACK.store(u64::MAX, Ordering::SeqCst);
    let acked = || AP_ACK.load(Ordering::SeqCst) == cpu as u64;
    let vector = (TRAMPOLINE >> 12) as u8;
    if !apic.send_init(apic_id) {
        log::warn!("smp: INIT to APIC {apic_id} was not delivered");
    }
    apic.send_init_deassert(apic_id);
    delay::wait_us(INIT_DELAY_US);
    apic.send_startup(apic_id, vector);
    if delay::wait_until(FIRST_SIPI_WAIT_US, 100, acked) {
        return true;
    }
    apic.send_startup(apic_id, vector);
    delay::wait_until(SECOND_SIPI_WAIT_US, 1_000, acked)
}

/// Starts up to `max` other CPUs; returns how many were asked to start (CPUs the MADT lists that
/// do not answer count, so the boot sequence reports them; guessed IDs that do not answer do not).
pub fn start_secondaries(max: usize) -> usize {
    let apic = local_apic();
    apic.software_enable();
    let own = apic.id();
    percpu::this_cpu().apic_id.store(own, Ordering::SeqCst);

    let mut ids = [0u32; MAX_CPUS * 4];
    let (listed, from_madt) = match acpi::madt_apic_ids(&mut ids) {
        Some(n) if n > 0 => (n, true),
        _ => {
            log::warn!("smp: no ACPI MADT; trying APIC IDs 1..={max}");
            for (i, id) in ids.iter_mut().enumerate().take(max + 1) {
                *id = i as u32;
            }
            (max + 1, false)
        }
    };
    let mut targets = [0u32; MAX_CPUS];
    let mut count = 0;
    for &id in &ids[..listed] {
        if id != own && count < max && !targets[..count].contains(&id) {
            targets[count] = id;
            count += 1;
        }
    }
    let source = if from_madt {
        "the MADT lists"
    } else {
        "guessing"
    };
    log::info!("smp: boot CPU has APIC ID {own}; {source} {listed} CPUs; starting {count}");
    if count == 0 {
        return 0;
    }

    copy_trampoline();
    let mut asked = 0;
    for (i, &id) in targets[..count].iter().enumerate() {
        let cpu = i + 1;
        if start_one(&apic, id, cpu) {
            asked += 1;
        } else if from_madt {
            log::error!("smp: cpu{cpu} (APIC {id}) did not start");
            asked += 1;
        } else {
            log::warn!("smp: no CPU answered at APIC {id}");
        }
    }
    asked
}
