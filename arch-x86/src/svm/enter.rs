//! The world switch: a trampoline that runs one guest until its next #VMEXIT (AMD APM Vol. 2
//! §15.5). VMRUN itself saves and restores only part of the host (RSP, RIP, RAX, RFLAGS, control
//! registers, EFER, GDTR/IDTR and ES/CS/SS/DS, through the host save area of `VM_HSAVE_PA`), so
//! the trampoline also moves the rest: VMSAVE/VMLOAD exchange FS, GS, TR and LDTR with their hidden
//! state, KernelGsBase and the SYSCALL/SYSENTER MSRs between the host's own save page and the
//! VMCB, and the general-purpose registers other than RAX (which lives in the VMCB) are loaded
//! from and stored to a [`GuestRegs`]. All of it runs with the global interrupt flag clear (CLGI
//! … STGI), so an interrupt or the kick NMI that arrives meanwhile waits, makes the guest exit at
//! once if it came during the guest, and is taken by the host right after STGI. Right after CLGI
//! the trampoline checks the kick flag ([`GuestRegs::kick`]) and abandons the entry if it is set.
//!
//! The guest owns the FPU/SSE state outright: the image is built soft-float, so the hypervisor
//! never touches those registers.

use super::vmcb::Vmcb;
use core::arch::global_asm;

/// The guest's general-purpose registers. RAX is carried in the VMCB across the switch (VMRUN
/// loads it from there); [`enter`] copies it in and out, so callers see all sixteen here.
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
    /// Address of a byte that, when non-zero, abandons the entry (0: none): the CPU's "kicked"
    /// flag. It is checked after CLGI, so a kick NMI sent after the check waits for VMRUN and
    /// exits the guest at once; one sent before it set the flag first. No kick is lost between
    /// an exit and the next entry.
    pub kick: u64,
}

global_asm!(
    r#"
    .section .text.septum_svm, "ax"
    .global septum_svm_enter
    /* u64 septum_svm_enter(GuestRegs *regs [rdi], u64 vmcb_pa [rsi], u64 host_save_pa [rdx],
                            Vmcb *vmcb [rcx, only so the compiler knows the VMCB changes]);
       0 = the guest ran until a #VMEXIT, 1 = abandoned (kicked). */
septum_svm_enter:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    push rdi                       /* [rsp + 16]: the GuestRegs pointer */
    push rdx                       /* [rsp + 8]: the host's VMSAVE page */
    push rsi                       /* [rsp]: the VMCB */
    clgi
    mov rax, [rdi + 15*8]
    test rax, rax
    jz 3f
    cmp byte ptr [rax], 0
    je 3f
    stgi
    add rsp, 24
    mov eax, 1
    jmp 4f
3:
    /* IF=1 at VMRUN (GIF=0 still holds every interrupt off the host): with V_INTR_MASKING the
       host's IF is what lets a physical interrupt reach the guest and exit through the INTR
       intercept; with IF=0 the hypervisor's timer would never end a guest's run. */
    sti
    mov rax, rdx
    vmsave rax
    mov rax, rsi
    vmload rax
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
    mov rax, [rsp]
    vmrun rax
    /* #VMEXIT: RSP, RIP and RAX are the host's again; every other GPR is still the guest's. */
    push rdi
    mov rdi, [rsp + 24]
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
    mov rax, [rsp]
    vmsave rax
    mov rax, [rsp + 8]
    vmload rax
    cli
    stgi
    add rsp, 24
    xor eax, eax
4:  pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret
    "#
);

extern "C" {
    fn septum_svm_enter(
        regs: *mut GuestRegs,
        vmcb_pa: u64,
        host_save_pa: u64,
        vmcb: *mut Vmcb,
    ) -> u64;
}

/// Runs the guest of `vmcb` (at physical address `vmcb_pa`) with `regs` until its next #VMEXIT;
/// on return `regs` and the VMCB hold the guest's state at the exit, and the exit code is in
/// the VMCB (VMEXIT_INVALID when VMRUN refused the state): `true`. `false`: the entry was
/// abandoned because `regs.kick` pointed at a set flag (the guest did not run).
///
/// # Safety
/// EFER.SVME must be set and `VM_HSAVE_PA` must point at this CPU's host save area; `vmcb` must
/// be a complete VMCB (VMRUN intercepted, ASID non-zero) at `vmcb_pa`, whose bitmaps and nested
/// table stay valid while the guest runs; `host_save_pa` must be a page this CPU alone uses for
/// VMSAVE/VMLOAD of its own state.
pub unsafe fn enter(
    regs: &mut GuestRegs,
    vmcb: &mut Vmcb,
    vmcb_pa: u64,
    host_save_pa: u64,
) -> bool {
    vmcb.set_rax(regs.rax);
    // SAFETY: the caller guarantees SVM is on and the VMCB is valid; the trampoline saves and
    // restores every register the Rust ABI needs and returns on this stack, with the host's
    // segment and MSR state back from its VMSAVE page.
    let ran = unsafe { septum_svm_enter(regs, vmcb_pa, host_save_pa, vmcb) } == 0;
    if ran {
        regs.rax = vmcb.rax();
    }
    ran
}
