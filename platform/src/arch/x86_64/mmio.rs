//! MMIO emulation for both x86 backends. A stage-2 fault (VMX EPT violation, SVM #NPF) says where
//! a guest access went but not what it was, so for a fault inside an emulated device window (the
//! interrupt controller view, `partition::irqchip`, the only MMIO device partitions have on x86)
//! this module fetches the instruction at the guest's RIP through the guest's own page tables,
//! decodes it (`arch_x86::mmio`) and turns the exit into `MmioRead`/`MmioWrite`. The decoded
//! instruction belongs to the vCPU that faulted: it waits in that vCPU's [`PendingMmio`] until the
//! handler's answer comes back, and [`PendingMmio::complete`] then writes a load's destination
//! register and resumes after the instruction.
//!
//! The backends' vCPUs call [`PendingMmio::decode`] on every exit (which also forgets a decode
//! whose exit ended the run) and [`PendingMmio::complete`] before their own completion. A fault
//! the module cannot decode stays a stage-2 fault, so the partition is stopped as before.

use super::percpu;
use crate::board::BOARD;
use arch_x86::mmio::{MmioInsn, Op};
use vcpu::{Completion, VmExit};

/// Both backends' general-purpose register files (rsp lives in the VMCS/VMCB, not here).
pub trait Gprs {
    /// Register n (0 = rax ... 15 = r15), `None` for rsp.
    fn gpr(&self, n: u8) -> Option<u64>;
    /// Sets register n (ignored for rsp).
    fn set_gpr(&mut self, n: u8, v: u64);
}

macro_rules! gprs {
    ($t:ty) => {
        impl Gprs for $t {
            fn gpr(&self, n: u8) -> Option<u64> {
                Some(match n {
                    0 => self.rax,
                    1 => self.rcx,
                    2 => self.rdx,
                    3 => self.rbx,
                    5 => self.rbp,
                    6 => self.rsi,
                    7 => self.rdi,
                    8 => self.r8,
                    9 => self.r9,
                    10 => self.r10,
                    11 => self.r11,
                    12 => self.r12,
                    13 => self.r13,
                    14 => self.r14,
                    15 => self.r15,
                    _ => return None,
                })
            }

            fn set_gpr(&mut self, n: u8, v: u64) {
                let r = match n {
                    0 => &mut self.rax,
                    1 => &mut self.rcx,
                    2 => &mut self.rdx,
                    3 => &mut self.rbx,
                    5 => &mut self.rbp,
                    6 => &mut self.rsi,
                    7 => &mut self.rdi,
                    8 => &mut self.r8,
                    9 => &mut self.r9,
                    10 => &mut self.r10,
                    11 => &mut self.r11,
                    12 => &mut self.r12,
                    13 => &mut self.r13,
                    14 => &mut self.r14,
                    15 => &mut self.r15,
                    _ => return,
                };
                *r = v;
            }
        }
    };
}
gprs!(arch_x86::vmx::enter::GuestRegs);
gprs!(arch_x86::svm::enter::GuestRegs);

/// Both backends' exit records: where the guest was, and how far its completion skips.
pub trait ExitRecord {
    /// The guest RIP at the exit.
    fn rip(&self) -> u64;
    /// Makes a `Completion::Skip` of this exit resume `n` bytes after [`ExitRecord::rip`].
    fn set_len(&mut self, n: u8);
}

impl ExitRecord for arch_x86::vmx::exit::ExitInfo {
    fn rip(&self) -> u64 {
        self.rip
    }

    fn set_len(&mut self, n: u8) {
        // The field is undefined after an EPT violation; the decoded length replaces it.
        self.instruction_len = n.into();
    }
}

impl ExitRecord for arch_x86::svm::exit::ExitInfo {
    fn rip(&self) -> u64 {
        self.rip
    }

    fn set_len(&mut self, n: u8) {
        // Without decode assists there is no next RIP for a #NPF; the decoded length gives it.
        self.nrip = self.rip.wrapping_add(n.into());
    }
}

/// Physical address bits of a page-table entry and of CR3.
const ADDR: u64 = 0x000f_ffff_ffff_f000;
const PRESENT: u64 = 1;
const HUGE: u64 = 1 << 7;

/// A vCPU's MMIO access in flight: the instruction its current exit decoded to, until the
/// handler's completion of that exit.
#[derive(Default)]
pub struct PendingMmio(Option<MmioInsn>);

impl PendingMmio {
    /// `exit` as the handler should see it: a stage-2 fault in an emulated device window whose
    /// instruction (at the exit's RIP, under the guest's page tables at `cr3`) decodes becomes
    /// an MMIO access, remembered until [`PendingMmio::complete`].
    pub fn decode(
        &mut self,
        exit: VmExit,
        last: &impl ExitRecord,
        cr3: u64,
        regs: &impl Gprs,
    ) -> VmExit {
        self.0 = None;
        let VmExit::StageTwoFault { gpa, .. } = exit else {
            return exit;
        };
        let window = BOARD.irqchip.mmio;
        if gpa < window.start || gpa >= window.end() {
            return exit;
        }
        let Some((p, _)) = crate::partitions::get().and_then(|all| all.of_cpu(percpu::cpu_index()))
        else {
            return exit;
        };
        let rip = last.rip();
        let mut code = [0u8; 15];
        let mut n = 0;
        while n < code.len() {
            let byte = linear_to_gpa(p, cr3, rip.wrapping_add(n as u64))
                .and_then(|gpa| p.read_guest(gpa, &mut code[n..n + 1]).then_some(()));
            if byte.is_none() {
                break;
            }
            n += 1;
        }
        let Some(insn) = arch_x86::mmio::decode(&code[..n]) else {
            return exit;
        };
        let access = match insn.op {
            Op::Load { .. } => VmExit::MmioRead {
                gpa,
                size: insn.size,
            },
            Op::Store(_) => match insn.store_value(|r| regs.gpr(r)) {
                Some(value) => VmExit::MmioWrite {
                    gpa,
                    size: insn.size,
                    value,
                },
                None => return exit,
            },
        };
        self.0 = Some(insn);
        access
    }

    /// Applies the handler's `completion` of the MMIO access decoded last: a load's value goes
    /// to its register, and the guest resumes after the instruction (its length goes into the
    /// exit record `last`, so the backend's own completion of the returned `Skip` steps over
    /// it). Any other completion, or one with no access decoded, passes through.
    pub fn complete(
        &mut self,
        completion: Completion,
        regs: &mut impl Gprs,
        last: &mut impl ExitRecord,
    ) -> Completion {
        let Some(insn) = self.0.take() else {
            return completion;
        };
        match completion {
            Completion::Value(v) => {
                if let Op::Load { dst, .. } = insn.op {
                    let old = regs.gpr(dst).unwrap_or(0);
                    regs.set_gpr(dst, insn.load_result(old, v));
                }
                last.set_len(insn.len);
                Completion::Skip
            }
            Completion::Skip => {
                last.set_len(insn.len);
                Completion::Skip
            }
            other => other,
        }
    }
}

/// The guest-physical address of linear address `va` under the 4-level long-mode page tables
/// at `cr3` (the backends run partitions in 64-bit mode), read from the partition's memory.
fn linear_to_gpa(p: &crate::partitions::Partition, cr3: u64, va: u64) -> Option<u64> {
    let mut table = cr3 & ADDR;
    for level in (0..4u32).rev() {
        let shift = 12 + 9 * level;
        let index = (va >> shift) & 0x1ff;
        let mut entry = [0u8; 8];
        if !p.read_guest(table + index * 8, &mut entry) {
            return None;
        }
        let e = u64::from_le_bytes(entry);
        if e & PRESENT == 0 {
            return None;
        }
        // A 1 GiB (level 2) or 2 MiB (level 1) page ends the walk.
        if (level == 1 || level == 2) && e & HUGE != 0 {
            let page = 1u64 << shift;
            return Some((e & ADDR & !(page - 1)) | (va & (page - 1)));
        }
        table = e & ADDR;
    }
    Some(table | (va & 0xfff))
}
