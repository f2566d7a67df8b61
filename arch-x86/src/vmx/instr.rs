//! The VMX instructions that work on a VMCS or on cached translations: VMCLEAR, VMPTRLD, VMREAD,
//! VMWRITE, INVEPT and INVVPID. Each reports failure the VMX way (CF or ZF, SDM Vol. 3C §31.2),
//! read with `setc`/`setz` inside the same asm block so nothing can disturb the flags in between.

use super::{vm_result, VmFail};
use core::arch::asm;

/// Makes the VMCS at `pa` inactive and not current, writing its cached state back to memory.
///
/// # Safety
/// VMX root operation; `pa` is a 4 KiB-aligned VMCS region owned by the caller.
pub unsafe fn vmclear(pa: u64) -> Result<(), VmFail> {
    let (cf, zf): (u8, u8);
    // SAFETY: the caller guarantees VMX operation and the region; the operand is on our stack.
    unsafe {
        asm!("vmclear [{pa}]", "setc {cf}", "setz {zf}",
            pa = in(reg) &pa, cf = out(reg_byte) cf, zf = out(reg_byte) zf, options(nostack))
    };
    vm_result(cf, zf)
}

/// Makes the VMCS at `pa` the current VMCS of this CPU.
///
/// # Safety
/// VMX root operation; `pa` is a VMCS region holding the revision id, cleared before its first
/// load and not current on any other CPU.
pub unsafe fn vmptrld(pa: u64) -> Result<(), VmFail> {
    let (cf, zf): (u8, u8);
    // SAFETY: as for `vmclear`.
    unsafe {
        asm!("vmptrld [{pa}]", "setc {cf}", "setz {zf}",
            pa = in(reg) &pa, cf = out(reg_byte) cf, zf = out(reg_byte) zf, options(nostack))
    };
    vm_result(cf, zf)
}

/// Reads VMCS field `field` of the current VMCS.
///
/// # Safety
/// VMX root operation with a current VMCS.
pub unsafe fn vmread(field: u32) -> Result<u64, VmFail> {
    let (cf, zf): (u8, u8);
    let value: u64;
    // SAFETY: VMREAD only reads the current VMCS into a register.
    unsafe {
        asm!("vmread {v}, {f}", "setc {cf}", "setz {zf}",
            v = out(reg) value, f = in(reg) u64::from(field),
            cf = out(reg_byte) cf, zf = out(reg_byte) zf, options(nostack, nomem))
    };
    vm_result(cf, zf).map(|()| value)
}

/// Writes `value` to VMCS field `field` of the current VMCS.
///
/// # Safety
/// VMX root operation with a current VMCS; the value must be one the caller means the next VM
/// entry (or the host after the next exit) to use.
pub unsafe fn vmwrite(field: u32, value: u64) -> Result<(), VmFail> {
    let (cf, zf): (u8, u8);
    // SAFETY: VMWRITE only changes the current VMCS, which the caller owns.
    unsafe {
        asm!("vmwrite {f}, {v}", "setc {cf}", "setz {zf}",
            f = in(reg) u64::from(field), v = in(reg) value,
            cf = out(reg_byte) cf, zf = out(reg_byte) zf, options(nostack, nomem))
    };
    vm_result(cf, zf)
}

/// INVEPT and INVVPID invalidation types (SDM Vol. 3C §30.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum InvType {
    /// INVVPID only: one linear address of one VPID.
    Address = 0,
    /// One EPTP (INVEPT) or one VPID (INVVPID).
    SingleContext = 1,
    /// Every EPTP or every VPID.
    AllContexts = 2,
}

/// Invalidates EPT-derived translations for `eptp` (single context) or for every EPTP.
///
/// # Safety
/// VMX root operation and the CPU supports the requested type (IA32_VMX_EPT_VPID_CAP).
pub unsafe fn invept(kind: InvType, eptp: u64) -> Result<(), VmFail> {
    let desc: [u64; 2] = [eptp, 0];
    let (cf, zf): (u8, u8);
    // SAFETY: INVEPT reads the 16-byte descriptor on our stack and only drops cached translations.
    unsafe {
        asm!("invept {t}, [{d}]", "setc {cf}", "setz {zf}",
            t = in(reg) kind as u64, d = in(reg) &desc,
            cf = out(reg_byte) cf, zf = out(reg_byte) zf, options(nostack))
    };
    vm_result(cf, zf)
}

/// Invalidates linear and combined translations tagged with `vpid` (or all of them).
///
/// # Safety
/// VMX root operation, VPID supported, `vpid` non-zero for the single-context and address types.
pub unsafe fn invvpid(kind: InvType, vpid: u16, addr: u64) -> Result<(), VmFail> {
    let desc: [u64; 2] = [u64::from(vpid), addr];
    let (cf, zf): (u8, u8);
    // SAFETY: INVVPID reads the descriptor on our stack and only drops cached translations.
    unsafe {
        asm!("invvpid {t}, [{d}]", "setc {cf}", "setz {zf}",
            t = in(reg) kind as u64, d = in(reg) &desc,
            cf = out(reg_byte) cf, zf = out(reg_byte) zf, options(nostack))
    };
    vm_result(cf, zf)
}
