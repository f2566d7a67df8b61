//! VM entry and exit: the trampoline that saves the host's callee-saved registers, points the
//! VMCS's HOST_RSP/HOST_RIP at itself, loads the guest's general-purpose registers (and CR2, which
//! VMX does not switch) from a [`GuestRegs`], and runs VMLAUNCH or VMRESUME. The exit lands back
//! in the same function with the host stack it left, stores every guest register, and returns
//! to Rust as if the call had simply finished. The guest owns the FPU/SSE state outright: the
//! image is built soft-float, so the hypervisor never touches those registers.
//!
//! The entry window. A kick is an NMI, and an NMI that reaches the hypervisor between an exit and
//! the next entry is taken by its handler and lost, so the guest would run on with the request
//! unseen. So the kicker sets the CPU's flag before the NMI, the trampoline checks the flag
//! (`GuestRegs::kick`) at `septum_vmx_window_start`, and an NMI that interrupts the hypervisor
//! from there to `septum_vmx_window_end` (the VMLAUNCH, inclusive) resumes at
//! `septum_vmx_window_abort` (the host's NMI handler, platform `idt.rs`), which abandons the entry
//! as if the flag had been seen. Every kick thus either is seen by the check, lands in the
//! window, or exits the guest.

use super::fields::wn;
use super::VmFail;
use core::arch::global_asm;

/// The guest registers VMX does not keep in the VMCS. RSP and RIP live in the VMCS.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestRegs {
    /// rax: the hypercall number and result.
    pub rax: u64,
    /// rbx.
    pub rbx: u64,
    /// rcx.
    pub rcx: u64,
    /// rdx.
    pub rdx: u64,
    /// rsi.
    pub rsi: u64,
    /// rdi.
    pub rdi: u64,
    /// rbp.
    pub rbp: u64,
    /// r8.
    pub r8: u64,
    /// r9.
    pub r9: u64,
    /// r10.
    pub r10: u64,
    /// r11.
    pub r11: u64,
    /// r12.
    pub r12: u64,
    /// r13.
    pub r13: u64,
    /// r14.
    pub r14: u64,
    /// r15.
    pub r15: u64,
    /// CR2: VMX leaves it alone, so a guest page-fault address survives only if we carry it.
    pub cr2: u64,
    /// Address of a byte that, when non-zero, abandons the entry (0: none): the CPU's "kicked"
    /// flag, checked in the entry window (module documentation).
    pub kick: u64,
}

global_asm!(
    r#"
    .section .text.septum_vmx, "ax"
    .global septum_vmx_enter
    /* u64 septum_vmx_enter(GuestRegs *regs [rdi], u64 launched [rsi]);
       0 = a VM exit happened, 1 = VMfailInvalid, 2 = VMfailValid, 3 = abandoned (kicked). */
septum_vmx_enter:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    push rdi                       /* the exit path finds GuestRegs here, at HOST_RSP */
    mov rax, {host_rsp}
    vmwrite rax, rsp
    jbe 7f
    mov rax, {host_rip}
    lea rcx, [rip + 8f]
    vmwrite rax, rcx
    jbe 7f
    .global septum_vmx_window_start
septum_vmx_window_start:
    mov rax, [rdi + 16*8]
    test rax, rax
    jz 3f
    cmp byte ptr [rax], 0
    jne septum_vmx_window_abort
3:  mov rax, [rdi + 15*8]
    mov cr2, rax
    cmp rsi, 0                     /* the flags survive the loads below: mov changes none */
    mov rax, [rdi + 0*8]
    mov rbx, [rdi + 1*8]
    mov rcx, [rdi + 2*8]
    mov rdx, [rdi + 3*8]
    mov rsi, [rdi + 4*8]
    mov rbp, [rdi + 6*8]
    mov r8,  [rdi + 7*8]
    mov r9,  [rdi + 8*8]
    mov r10, [rdi + 9*8]
    mov r11, [rdi + 10*8]
    mov r12, [rdi + 11*8]
    mov r13, [rdi + 12*8]
    mov r14, [rdi + 13*8]
    mov r15, [rdi + 14*8]
    mov rdi, [rdi + 5*8]
    je 5f
    vmresume
    jmp 7f
5:
    .global septum_vmx_window_end
septum_vmx_window_end:
    vmlaunch
7:  /* VMfail: CF set = invalid (1), else ZF set = valid (2). */
    mov eax, 2
    mov ecx, 1
    cmovc eax, ecx
    add rsp, 8
    jmp 9f
    .global septum_vmx_window_abort
septum_vmx_window_abort:
    mov eax, 3
    add rsp, 8
    jmp 9f
8:  /* VM exit: rsp is HOST_RSP, [rsp] is the GuestRegs pointer. */
    push rdi
    mov rdi, [rsp + 8]
    mov [rdi + 0*8], rax
    mov [rdi + 1*8], rbx
    mov [rdi + 2*8], rcx
    mov [rdi + 3*8], rdx
    mov [rdi + 4*8], rsi
    mov [rdi + 6*8], rbp
    mov [rdi + 7*8], r8
    mov [rdi + 8*8], r9
    mov [rdi + 9*8], r10
    mov [rdi + 10*8], r11
    mov [rdi + 11*8], r12
    mov [rdi + 12*8], r13
    mov [rdi + 13*8], r14
    mov [rdi + 14*8], r15
    pop rax
    mov [rdi + 5*8], rax
    mov rax, cr2
    mov [rdi + 15*8], rax
    add rsp, 8
    xor eax, eax
9:  pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret
    "#,
    host_rsp = const wn::HOST_RSP,
    host_rip = const wn::HOST_RIP,
);

extern "C" {
    fn septum_vmx_enter(regs: *mut GuestRegs, launched: u64) -> u64;
}

/// Enters the guest of the current VMCS with `regs` and returns at its next VM exit, with `regs`
/// holding the guest's registers at the exit: `Ok(true)`. `Ok(false)`: the entry was abandoned
/// because `regs.kick` pointed at a set flag (the guest did not run).
///
/// # Safety
/// VMX root operation with a current VMCS whose guest, host and control state is complete and
/// consistent (its host state must describe this CPU: CR3, GDT, IDT, TR, GS base); `launched`
/// must say whether this VMCS was launched since its last VMCLEAR.
pub unsafe fn enter(regs: &mut GuestRegs, launched: bool) -> Result<bool, VmFail> {
    // SAFETY: the caller guarantees the VMCS; the trampoline saves and restores every register
    // the Rust ABI needs and returns on this stack.
    match unsafe { septum_vmx_enter(regs, u64::from(launched)) } {
        0 => Ok(true),
        3 => Ok(false),
        1 => Err(VmFail::Invalid),
        _ => Err(VmFail::Valid),
    }
}
