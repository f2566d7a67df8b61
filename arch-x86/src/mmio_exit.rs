//! MMIO exits for both x86 backends. A stage-2 fault (VMX EPT violation, SVM #NPF) says where a
//! guest access went but not what it was, so for a fault inside an emulated device window this
//! module fetches the instruction at the guest's RIP through the guest's own page tables
//! (`guest_walk`), decodes it (`mmio`) and turns the exit into `MmioRead`/`MmioWrite`. The decoded
//! instruction belongs to the vCPU that faulted: it waits in that vCPU's [`PendingMmio`] until the
//! handler's answer comes back, and [`PendingMmio::complete`] then writes a load's destination
//! register and resumes after the instruction. A fault that cannot be decoded stays a stage-2
//! fault, so the partition is stopped as before.
//!
//! The backends' hardware glue (`SvmHw`/`VmxHw::decode_mmio`, `complete_mmio`) calls
//! [`PendingMmio::decode`] on every exit (which also forgets a decode whose exit ended the run)
//! and [`PendingMmio::complete`] before the vCPU's own completion.

use crate::guest_walk::{linear_to_gpa, GuestMemory};
use crate::mmio::{MmioInsn, Op};
use core::ops::Range;
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
gprs!(crate::vmx::enter::GuestRegs);
gprs!(crate::svm::enter::GuestRegs);

/// Both backends' exit records: where the guest was, and how far its completion skips.
pub trait ExitRecord {
    /// The guest RIP at the exit.
    fn rip(&self) -> u64;
    /// Makes a `Completion::Skip` of this exit resume `n` bytes after [`ExitRecord::rip`].
    fn set_len(&mut self, n: u8);
}

impl ExitRecord for crate::vmx::exit::ExitInfo {
    fn rip(&self) -> u64 {
        self.rip
    }

    fn set_len(&mut self, n: u8) {
        // The field is undefined after an EPT violation; the decoded length replaces it.
        self.instruction_len = n.into();
    }
}

impl ExitRecord for crate::svm::exit::ExitInfo {
    fn rip(&self) -> u64 {
        self.rip
    }

    fn set_len(&mut self, n: u8) {
        // Without decode assists there is no next RIP for a #NPF; the decoded length gives it.
        self.nrip = self.rip.wrapping_add(n.into());
    }
}

/// The partition an exit came from, as the decode needs it: its memory, and the guest-physical
/// window of its emulated devices.
pub struct MmioGuest<'a, M: GuestMemory> {
    /// The partition's memory.
    pub memory: &'a M,
    /// Faults here are device accesses; faults elsewhere are left alone.
    pub devices: Range<u64>,
}

/// A vCPU's MMIO access in flight: the instruction its current exit decoded to, until the
/// handler's completion of that exit.
#[derive(Default)]
pub struct PendingMmio(Option<MmioInsn>);

impl PendingMmio {
    /// `exit` as the handler should see it: a stage-2 fault in `guest`'s device window whose
    /// instruction (at the exit's RIP, under the guest's page tables at `cr3`) decodes becomes
    /// an MMIO access, remembered until [`PendingMmio::complete`].
    pub fn decode<M: GuestMemory>(
        &mut self,
        exit: VmExit,
        last: &impl ExitRecord,
        cr3: u64,
        regs: &impl Gprs,
        guest: &MmioGuest<'_, M>,
    ) -> VmExit {
        self.0 = None;
        let VmExit::StageTwoFault { gpa, .. } = exit else {
            return exit;
        };
        if !guest.devices.contains(&gpa) {
            return exit;
        }
        let rip = last.rip();
        let mut code = [0u8; 15];
        let mut n = 0;
        while n < code.len() {
            let byte = linear_to_gpa(guest.memory, cr3, rip.wrapping_add(n as u64))
                .filter(|&at| guest.memory.read(at, &mut code[n..n + 1]));
            if byte.is_none() {
                break;
            }
            n += 1;
        }
        let Some(insn) = crate::mmio::decode(&code[..n]) else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_walk::tests::Pages;
    use crate::svm::enter::GuestRegs as SvmRegs;
    use crate::svm::exit::ExitInfo as SvmExit;
    use crate::vmx::enter::GuestRegs as VmxRegs;
    use crate::vmx::exit::ExitInfo as VmxExit;
    use vcpu::{Access, AccessSize};

    const WINDOW: Range<u64> = 0xfec0_0000..0xfec0_1000;
    /// The guest's code: linear 0xffff_8000_0010_0000 at guest-physical 0x20_0000.
    const RIP: u64 = 0xffff_8000_0010_0ffe;

    /// A guest whose code page holds `code` at [`RIP`] (which is 2 bytes before the end of the
    /// page; the next page is mapped too, so instructions may straddle them).
    fn guest(code: &[u8]) -> Pages {
        let mut m = Pages::new(0x10_0000);
        m.map(RIP & !0xfff, 0x20_0000, 0);
        m.map((RIP & !0xfff) + 0x1000, 0x30_0000, 0);
        let first = 0x1000 - (RIP & 0xfff) as usize;
        let (a, b) = code.split_at(first.min(code.len()));
        m.write(0x20_0000 + (RIP & 0xfff), a);
        m.write(0x30_0000, b);
        m
    }

    fn fault(gpa: u64) -> VmExit {
        VmExit::StageTwoFault {
            gpa,
            access: Access::Read,
        }
    }

    fn vmx_exit() -> VmxExit {
        VmxExit {
            rip: RIP,
            instruction_len: 0xdead,
            ..VmxExit::default()
        }
    }

    #[test]
    fn a_load_straddling_two_pages_decodes_and_fills_its_register() {
        // mov r9d, [rax + 0x20]: 44 8b 48 20, split across the page boundary.
        let m = guest(&[0x44, 0x8b, 0x48, 0x20]);
        let g = MmioGuest {
            memory: &m,
            devices: WINDOW,
        };
        let (mut p, mut regs, mut last) = (PendingMmio::default(), VmxRegs::default(), vmx_exit());
        regs.r9 = u64::MAX;
        let exit = p.decode(fault(0xfec0_0020), &last, m.root(), &regs, &g);
        assert_eq!(
            exit,
            VmExit::MmioRead {
                gpa: 0xfec0_0020,
                size: AccessSize::Word
            }
        );
        let done = p.complete(Completion::Value(0x1234_5678_9abc), &mut regs, &mut last);
        assert_eq!(done, Completion::Skip);
        // A 32-bit load zero-extends; the guest resumes 4 bytes on.
        assert_eq!(regs.r9, 0x5678_9abc);
        assert_eq!(last.instruction_len, 4);
        // Completed once: a later completion passes through.
        assert_eq!(
            p.complete(Completion::Value(1), &mut regs, &mut last),
            Completion::Value(1)
        );
    }

    #[test]
    fn a_store_carries_its_register_and_svm_resumes_after_it() {
        // mov [rbx], cx: 66 89 0b.
        let m = guest(&[0x66, 0x89, 0x0b]);
        let g = MmioGuest {
            memory: &m,
            devices: WINDOW,
        };
        let mut regs = SvmRegs {
            rcx: 0xaaaa_bbbb_cccc_dddd,
            ..SvmRegs::default()
        };
        let mut last = SvmExit {
            rip: RIP,
            ..SvmExit::default()
        };
        let mut p = PendingMmio::default();
        let exit = p.decode(fault(0xfec0_0010), &last, m.root(), &regs, &g);
        assert_eq!(
            exit,
            VmExit::MmioWrite {
                gpa: 0xfec0_0010,
                size: AccessSize::Half,
                value: 0xdddd
            }
        );
        assert_eq!(
            p.complete(Completion::Skip, &mut regs, &mut last),
            Completion::Skip
        );
        assert_eq!(last.nrip, RIP + 3);
        assert_eq!(regs.rcx, 0xaaaa_bbbb_cccc_dddd);
    }

    #[test]
    fn what_cannot_be_decoded_stays_a_stage_two_fault() {
        let load = [0x8b, 0x03];
        let m = guest(&load);
        let g = MmioGuest {
            memory: &m,
            devices: WINDOW,
        };
        let (regs, last) = (VmxRegs::default(), vmx_exit());
        let mut p = PendingMmio::default();
        // Outside the device window: RAM the partition may not touch, not a device.
        assert_eq!(
            p.decode(fault(0xfec0_1000), &last, m.root(), &regs, &g),
            fault(0xfec0_1000)
        );
        // Code the guest's tables do not map.
        let unmapped = VmxExit {
            rip: 0x7000,
            ..vmx_exit()
        };
        assert_eq!(
            p.decode(fault(0xfec0_0000), &unmapped, m.root(), &regs, &g),
            fault(0xfec0_0000)
        );
        // An instruction that is not a move (add [rbx], eax: 01 03).
        let add = guest(&[0x01, 0x03]);
        let g2 = MmioGuest {
            memory: &add,
            devices: WINDOW,
        };
        assert_eq!(
            p.decode(fault(0xfec0_0000), &last, add.root(), &regs, &g2),
            fault(0xfec0_0000)
        );
        // Nothing pending: a completion passes through and sets no length.
        let mut last2 = vmx_exit();
        let mut regs2 = VmxRegs::default();
        assert_eq!(
            p.complete(Completion::Value(5), &mut regs2, &mut last2),
            Completion::Value(5)
        );
        assert_eq!((regs2.rax, last2.instruction_len), (0, 0xdead));
    }

    #[test]
    fn a_new_exit_forgets_the_access_decoded_before() {
        let m = guest(&[0x8b, 0x03]); // mov eax, [rbx]
        let g = MmioGuest {
            memory: &m,
            devices: WINDOW,
        };
        let (mut regs, mut last) = (VmxRegs::default(), vmx_exit());
        let mut p = PendingMmio::default();
        let _ = p.decode(fault(0xfec0_0000), &last, m.root(), &regs, &g);
        // The run ended before the completion; the next exit is something else.
        assert_eq!(
            p.decode(VmExit::Halt, &last, m.root(), &regs, &g),
            VmExit::Halt
        );
        assert_eq!(
            p.complete(Completion::Value(7), &mut regs, &mut last),
            Completion::Value(7)
        );
        assert_eq!(regs.rax, 0);
    }
}
