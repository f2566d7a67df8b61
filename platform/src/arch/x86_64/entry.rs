//! The image's first instructions. A multiboot loader (QEMU `-kernel` with multiboot1, GRUB with
//! multiboot1 or multiboot2) starts us in 32-bit protected mode with paging off, the magic in EAX
//! and the boot information's address in EBX. The stub clears .bss, identity-maps the first 4 GiB
//! with 2 MiB pages (so `phys_to_virt(pa) == pa` for all RAM we use, the local APIC and the ACPI
//! tables), enters long mode and calls [`boot_entry`] on a boot stack. The secondary CPUs' trampoline
//! (`smp.rs`) reuses these page tables.

use super::{idt, ioapic, multiboot, percpu, timer};
use core::arch::global_asm;

/// Multiboot1 header flags: page-align modules (bit 0), memory info (bit 1), and the address
/// fields (bit 16, the "a.out kludge") that let QEMU `-kernel` load an ELF64 image.
const MB1_FLAGS: u32 = 0x0001_0003;
const MB1_MAGIC: u32 = 0x1bad_b002;
const MB2_MAGIC: u32 = 0xe852_50d6;
/// The boot CPU's stack until it is in Rust for good (primary_main never returns).
const BOOT_STACK_SIZE: usize = 64 * 1024;

global_asm!(
    r#"
    .section .multiboot_header, "a"
    .balign 8
septum_mb1_header:
    .long {mb1_magic}
    .long {mb1_flags}
    .long (0x100000000 - {mb1_magic} - {mb1_flags}) & 0xffffffff
    .long septum_mb1_header       /* header_addr */
    .long __image_start           /* load_addr: the file is loaded linearly from here */
    .long __load_end              /* load_end_addr: end of .data */
    .long __bss_end               /* bss_end_addr: the loader zeroes up to here */
    .long _start                  /* entry_addr */

    .balign 8
septum_mb2_header:
    .long {mb2_magic}
    .long 0                       /* architecture: i386 protected mode */
    .long 24                      /* header length */
    .long (0x100000000 - {mb2_magic} - 24) & 0xffffffff
    .short 0                      /* end tag */
    .short 0
    .long 8

    .section .text.boot, "ax"
    .code32
    .global _start
_start:
    cli
    cld
    mov ebp, eax                  /* multiboot magic */
    mov esi, ebx                  /* boot information address */

    /* Zero .bss: the page tables and stacks below live there. */
    mov edi, offset __bss_start
    mov ecx, offset __bss_end
    sub ecx, edi
    shr ecx, 2
    xor eax, eax
    rep stosd

    /* PML4[0] -> PDPT; PDPT[0..4] -> four page directories. */
    mov eax, offset septum_boot_pdpt
    or eax, 3
    mov dword ptr [septum_boot_pml4], eax
    mov eax, offset septum_boot_pd
    or eax, 3
    xor ecx, ecx
.Lpdpt_loop:
    mov dword ptr [septum_boot_pdpt + ecx * 8], eax
    add eax, 4096
    inc ecx
    cmp ecx, 4
    jne .Lpdpt_loop

    /* 2048 present, writable 2 MiB pages: identity map of [0, 4 GiB). */
    mov eax, 0x83
    xor ecx, ecx
.Lpd_loop:
    mov dword ptr [septum_boot_pd + ecx * 8], eax
    add eax, 0x200000
    inc ecx
    cmp ecx, 2048
    jne .Lpd_loop

    lgdt [septum_boot_gdtr]
    mov eax, offset septum_boot_pml4
    mov cr3, eax
    mov eax, cr4
    or eax, 0x20                  /* PAE */
    mov cr4, eax
    mov ecx, 0xc0000080           /* IA32_EFER */
    rdmsr
    or eax, 0x100                 /* LME */
    wrmsr
    mov eax, cr0
    and eax, 0x9fffffff           /* clear CD and NW: INIT leaves caching disabled */
    or eax, 0x80000021            /* PG | NE | PE */
    mov cr0, eax
    /* Far jump to the 64-bit code segment (ljmp 0x08:septum_start64). */
    .byte 0xea
    .long septum_start64
    .short 0x08

    .code64
septum_start64:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov rsp, offset septum_boot_stack_top
    mov edi, ebp                  /* zero-extends: the upper halves are undefined after the switch */
    mov esi, esi
    call {entry}
.Lboot_hang:
    cli
    hlt
    jmp .Lboot_hang

    .section .rodata.septum_boot_gdt, "a"
    .balign 16
septum_boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff      /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff      /* 0x10: data */
septum_boot_gdtr:
    .short 23
    .long septum_boot_gdt

    .section .bss.septum_boot, "aw", @nobits
    .balign 4096
    .global septum_boot_pml4
septum_boot_pml4:
    .skip 4096
septum_boot_pdpt:
    .skip 4096
septum_boot_pd:
    .skip 4 * 4096
    .balign 16
septum_boot_stack:
    .skip {stack_size}
septum_boot_stack_top:
    "#,
    mb1_magic = const MB1_MAGIC,
    mb1_flags = const MB1_FLAGS,
    mb2_magic = const MB2_MAGIC,
    stack_size = const BOOT_STACK_SIZE,
    entry = sym boot_entry,
);

/// The boot CPU's first Rust code, called by the stub with the multiboot magic and info address.
extern "C" fn boot_entry(magic: u32, info: u32) -> ! {
    crate::console::attach(super::uart::console_regs(&crate::board::BOARD.console));
    idt::init();
    // The host's interrupt handlers, before any CPU can take one (or loads the IDT).
    timer::register_interrupt();
    ioapic::register_interrupts();
    percpu::init(0);
    idt::load();
    let boot = multiboot::parse(magic, u64::from(info));
    crate::boot::primary_main(boot)
}
