//! What entering a partition's upcall handler replaces on x86, under either backend: the
//! frame saved for `UPCALL_RETURN` and the RFLAGS and stack pointer the handler starts with. It
//! lives here rather than with one backend so the VMX vCPU (`vmx::vcpu`) and the SVM vCPU
//! (`svm::vcpu`) enter handlers the same way.

/// What an upcall replaces and `UPCALL_RETURN` puts back: every register the guest can see
/// change (the backend's general-purpose set `R`, and RIP, RSP, RFLAGS, which live in its VMCS or
/// VMCB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpcallFrame<R: Copy> {
    /// The general-purpose registers the backend keeps outside its VMCS or VMCB.
    pub regs: R,
    /// RIP.
    pub rip: u64,
    /// RSP.
    pub rsp: u64,
    /// RFLAGS.
    pub rflags: u64,
}

/// RFLAGS an upcall handler starts with: only the always-one bit (DF clear, as the ABI wants;
/// interrupts off, so a vector waits for the handler's return).
pub const HANDLER_RFLAGS: u64 = 0x2;

/// The stack pointer a handler starts with: `stack` as if a call had pushed a return address,
/// so the handler (a normal function) finds the alignment the x86_64 ABI promises.
pub fn handler_rsp(stack: u64) -> u64 {
    stack.wrapping_sub(8)
}
