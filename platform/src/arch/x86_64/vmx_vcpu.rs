//! The x86 vCPU: one VMCS on the calling CPU, the guest's general-purpose registers, and the
//! `vcpu::ArchVcpu` loop steps. `run` enters the guest and turns the exit into a `VmExit`
//! (`arch_x86::vmx::exit::decode`); `complete` writes back what the handler decided. A kick (an
//! NMI) and any stray external interrupt (acknowledged by the exit, ended here) both reach the
//! handler as `ExternalInterrupt`. CPUID, too, goes to the handler (and is counted there); the
//! answer comes back as `Completion::CpuId` from the arch's filter (`guests.rs`).

use super::vmcs::{self, VcpuSetup};
use super::{smp, virt};
use crate::memory;
use alloc::boxed::Box;
use arch_x86::msr::{guest_efer_write, EFER_LMA, IA32_EFER};
use arch_x86::upcall::{handler_rsp, UpcallFrame, HANDLER_RFLAGS};
use arch_x86::vmx::bitmaps::{IoBitmap, MsrBitmap};
use arch_x86::vmx::controls::{ENTRY_IA32E_GUEST, PROC_INTERRUPT_WINDOW};
use arch_x86::vmx::enter::{enter, GuestRegs};
use arch_x86::vmx::exit::{self, ExitInfo};
use arch_x86::vmx::fields::{w32, w64, wn};
use arch_x86::vmx::instr::{invvpid, vmclear, vmptrld, vmread, vmwrite, InvType};
use arch_x86::vmx::VmFail;
use vcpu::{ArchVcpu, Completion, Delivery, VmExit};

/// `InvalidState` raw values for failures before the guest ran: bit 32 marks "VMLAUNCH/VMRESUME
/// failed", the low bits carry the VM-instruction error number (SDM Vol. 3C §31.4).
pub const ENTRY_INSTRUCTION_FAILED: u64 = 1 << 32;

/// Guest interruptibility state, bit 3: blocking by NMI.
const INTERRUPTIBILITY_NMI_BLOCKED: u64 = 1 << 3;

/// Everything the creation of a vCPU needs from the partition layer.
pub struct VcpuConfig {
    /// The partition's EPT pointer.
    pub eptp: u64,
    /// The vCPU's VPID.
    pub vpid: u16,
    /// First instruction.
    pub entry: u64,
    /// rdi, rsi, rdx, rcx, r8 at entry (the test guests' boot arguments).
    pub args: [u64; 5],
    /// The ports the partition owns, which do not exit.
    pub ports: &'static [board_config::PortRange],
    /// Start in real mode, as a STARTUP IPI starts a processor.
    pub real_mode: bool,
    /// The CPU's kick flag, which the entry stub checks with interrupts off.
    pub kick: &'static core::sync::atomic::AtomicBool,
}

/// One vCPU, bound to the CPU that created it.
pub struct VmxVcpu {
    vmcs: u64,
    launched: bool,
    regs: GuestRegs,
    last: ExitInfo,
    /// Kept alive (and at a fixed address) for as long as the VMCS points at them.
    _io: Box<IoBitmap>,
    _msr: Box<MsrBitmap>,
    /// Set when the vCPU could not be created; `run` reports it as the first exit.
    broken: Option<&'static str>,
    /// The context an upcall interrupted (`vcpu::upcall`), while its handler runs.
    saved: Option<UpcallFrame<GuestRegs>>,
    /// An event the last exit interrupted in its delivery (IDT-vectoring information, error
    /// code, instruction length): delivered again at the next entry, or the guest would lose it.
    redeliver: Option<(u64, u64, u64)>,
    /// The last entry was abandoned for a kick: no exit to complete.
    abandoned: bool,
}

/// Valid bit of the interruption-information fields.
const EVENT_VALID: u64 = 1 << 31;

fn read(field: u32) -> u64 {
    // SAFETY: only called with this vCPU's VMCS current on this CPU.
    unsafe { vmread(field) }.unwrap_or(0)
}

impl VmxVcpu {
    /// Creates the vCPU on the calling CPU (which must be in VMX operation).
    pub fn new(cfg: &VcpuConfig) -> Self {
        let mut io = Box::new(IoBitmap::all_exit());
        for r in cfg.ports {
            io.allow(r.start, r.size);
        }
        let msr = Box::new(MsrBitmap::for_partition());
        let [rdi, rsi, rdx, rcx, r8] = cfg.args;
        let regs = GuestRegs {
            kick: cfg.kick.as_ptr() as u64,
            rdi,
            rsi,
            rdx,
            rcx,
            r8,
            ..GuestRegs::default()
        };
        let mut v = Self {
            vmcs: 0,
            launched: false,
            regs,
            last: ExitInfo::default(),
            broken: None,
            saved: None,
            redeliver: None,
            abandoned: false,
            _io: io,
            _msr: msr,
        };
        if let Err(e) = v.setup(cfg) {
            log::error!("vmx: vCPU not created: {e}");
            v.broken = Some(e);
        }
        v
    }

    /// A vCPU that cannot run; its first `run` reports why as an invalid state.
    pub fn unavailable(why: &'static str) -> Self {
        Self {
            vmcs: 0,
            launched: false,
            regs: GuestRegs::default(),
            last: ExitInfo::default(),
            _io: Box::new(IoBitmap::all_exit()),
            _msr: Box::new(MsrBitmap::all_exit()),
            broken: Some(why),
            saved: None,
            redeliver: None,
            abandoned: false,
        }
    }

    fn setup(&mut self, cfg: &VcpuConfig) -> Result<(), &'static str> {
        let caps = virt::capabilities();
        self.vmcs = memory::alloc_frame().ok_or("no free frame for the VMCS")?;
        let ptr = super::Current::phys_to_virt_ptr(self.vmcs) as *mut u32;
        // SAFETY: the frame was just allocated for this VMCS alone and is mapped.
        unsafe {
            core::ptr::write_bytes(ptr as *mut u8, 0, memory::FRAME_SIZE as usize);
            ptr.write_volatile(caps.basic.revision_id);
        }
        // SAFETY: the CPU is in VMX operation (prepare_cpu) and the region holds the revision id.
        unsafe { vmclear(self.vmcs) }.map_err(|_| "VMCLEAR failed")?;
        // SAFETY: as above; the region was just cleared and is current on no other CPU.
        unsafe { vmptrld(self.vmcs) }.map_err(|_| "VMPTRLD failed")?;
        vmcs::fill(
            &caps,
            &VcpuSetup {
                eptp: cfg.eptp,
                vpid: cfg.vpid,
                io_bitmap: &*self._io as *const IoBitmap as u64,
                msr_bitmap: &*self._msr as *const MsrBitmap as u64,
                entry: cfg.entry,
                real_mode: cfg.real_mode,
            },
        )?;
        // This VPID tagged the previous run's translations on this CPU: they must not survive
        // into a fresh start (the same holds when a vCPU moves to another CPU).
        if caps.vpid() {
            // SAFETY: VMX operation, VPID supported, the VPID is non-zero.
            let _ = unsafe { invvpid(InvType::SingleContext, cfg.vpid, 0) };
        }
        Ok(())
    }

    fn entry_failed(&self, e: VmFail) -> VmExit {
        let error = match e {
            VmFail::Valid => read(w32::VM_INSTRUCTION_ERROR),
            VmFail::Invalid => 0,
        };
        VmExit::InvalidState {
            raw: ENTRY_INSTRUCTION_FAILED | error,
        }
    }
}

impl ArchVcpu for VmxVcpu {
    fn run(&mut self) -> VmExit {
        loop {
            let exit = self.run_once();
            // EFER is CPU state the guest owns (within limits): emulated here, not an event.
            match exit {
                VmExit::MsrRead { msr: IA32_EFER } => {
                    let efer = read(w64::GUEST_EFER);
                    exit::complete(&self.last, Completion::Value(efer), &mut self.regs);
                }
                VmExit::MsrWrite {
                    msr: IA32_EFER,
                    value,
                } => {
                    let efer = guest_efer_write(read(w64::GUEST_EFER), value);
                    // SAFETY: this vCPU's VMCS is current on this CPU.
                    let _ = unsafe { vmwrite(w64::GUEST_EFER, efer) };
                }
                other => return other,
            }
            let next = self.last.rip + u64::from(self.last.instruction_len);
            // SAFETY: this vCPU's VMCS is current on this CPU.
            let _ = unsafe { vmwrite(wn::GUEST_RIP, next) };
        }
    }

    fn complete(&mut self, completion: Completion) {
        if core::mem::take(&mut self.abandoned) {
            return;
        }
        let completion = super::mmio::complete(completion, &mut self.regs, &mut self.last);
        if let Completion::Exception { vector, error_code } = completion {
            // Raised on the instruction itself at the next entry (which then waits for no
            // interrupt window: an exception is delivered first).
            let info = exit::exception_event(vector, error_code.is_some());
            self.redeliver = Some((info, u64::from(error_code.unwrap_or(0)), 0));
        }
        let rip = exit::complete(&self.last, completion, &mut self.regs);
        if rip != self.last.rip {
            // SAFETY: this vCPU's VMCS is current on this CPU.
            let _ = unsafe { vmwrite(wn::GUEST_RIP, rip) };
        }
    }

    fn deliver_upcall(&mut self, d: Delivery) -> bool {
        if self.saved.is_some() || self.broken.is_some() {
            return false;
        }
        self.saved = Some(UpcallFrame {
            regs: self.regs,
            rip: read(wn::GUEST_RIP),
            rsp: read(wn::GUEST_RSP),
            rflags: read(wn::GUEST_RFLAGS),
        });
        self.regs.rdi = d.irq.code();
        self.regs.rsi = d.detail;
        // SAFETY: this vCPU's VMCS is current on this CPU.
        unsafe {
            let _ = vmwrite(wn::GUEST_RIP, d.upcall.entry);
            let _ = vmwrite(wn::GUEST_RSP, handler_rsp(d.upcall.stack));
            let _ = vmwrite(wn::GUEST_RFLAGS, HANDLER_RFLAGS);
        }
        true
    }

    fn inject_interrupt(&mut self, vector: u8) -> bool {
        if self.broken.is_some() {
            return false;
        }
        // An event still waiting in the entry field (an entry abandoned for a kick leaves it
        // there) is delivered first; this vector waits for the window after it.
        let ready = self.redeliver.is_none()
            && exit::interrupt_injectable(
                read(wn::GUEST_RFLAGS),
                read(w32::GUEST_INTERRUPTIBILITY),
                read(w32::ENTRY_INTERRUPTION_INFO),
            );
        let proc = read(w32::PROC_CONTROLS);
        if !ready {
            // Come back as soon as the guest can take it.
            // SAFETY: this vCPU's VMCS is current on this CPU.
            let _ = unsafe { vmwrite(w32::PROC_CONTROLS, proc | u64::from(PROC_INTERRUPT_WINDOW)) };
            return false;
        }
        // SAFETY: this vCPU's VMCS is current on this CPU.
        let _ = unsafe {
            vmwrite(
                w32::ENTRY_INTERRUPTION_INFO,
                EVENT_VALID | u64::from(vector),
            )
        };
        true
    }

    fn return_from_upcall(&mut self) {
        let Some(f) = self.saved.take() else { return };
        // Everything as it was, rax included: the interrupted code never sees the call.
        self.regs = f.regs;
        // SAFETY: this vCPU's VMCS is current on this CPU.
        unsafe {
            let _ = vmwrite(wn::GUEST_RIP, f.rip);
            let _ = vmwrite(wn::GUEST_RSP, f.rsp);
            let _ = vmwrite(wn::GUEST_RFLAGS, f.rflags);
        }
    }
    /// Ignored: x86 interrupts are vectors (`inject_interrupt`), not lines.
    fn set_irq_lines(&mut self, _lines: u32) {}
}

impl VmxVcpu {
    /// One entry and the exit that ends it.
    fn run_once(&mut self) -> VmExit {
        if let Some(why) = self.broken {
            log::error!("vmx: cannot enter the guest: {why}");
            return VmExit::InvalidState {
                raw: ENTRY_INSTRUCTION_FAILED,
            };
        }
        if let Some((info, error, len)) = self.redeliver.take() {
            // SAFETY: this vCPU's VMCS is current on this CPU.
            unsafe {
                let _ = vmwrite(w32::ENTRY_INTERRUPTION_INFO, info);
                let _ = vmwrite(w32::ENTRY_EXCEPTION_ERROR, error);
                let _ = vmwrite(w32::ENTRY_INSTRUCTION_LEN, len);
            }
        }
        // A guest that turned long mode on or off itself (CR0.PG with EFER.LME, no exit) must
        // enter with the IA-32e entry control matching EFER.LMA, or the entry fails.
        let lma = read(w64::GUEST_EFER) & EFER_LMA != 0;
        let entry = read(w32::ENTRY_CONTROLS);
        let ia32e = u64::from(ENTRY_IA32E_GUEST);
        if lma != (entry & ia32e != 0) {
            // SAFETY: this vCPU's VMCS is current on this CPU.
            let _ = unsafe { vmwrite(w32::ENTRY_CONTROLS, entry ^ ia32e) };
        }
        if let Some(rate) = super::timer::preemption_rate() {
            // The countdown to this CPU's deadline, from now (the field counts in the guest only).
            // SAFETY: this vCPU's VMCS is current on this CPU.
            let _ = unsafe {
                vmwrite(
                    w32::PREEMPTION_TIMER_VALUE,
                    super::timer::preemption_value(rate).into(),
                )
            };
        }
        // SAFETY: this vCPU's VMCS is current on this CPU (loaded in `setup`, and vCPUs never
        // move), filled completely; `launched` tracks VMLAUNCH since the VMCLEAR.
        match unsafe { enter(&mut self.regs, self.launched) } {
            Err(e) => return self.entry_failed(e),
            Ok(false) => {
                // Kicked before the guest could run: report the kick as the exit it would have
                // been; `complete` leaves the guest state alone.
                self.abandoned = true;
                return VmExit::ExternalInterrupt { vector: 2 };
            }
            Ok(true) => {}
        }
        self.launched = true;
        self.last = ExitInfo {
            reason: read(w32::EXIT_REASON) as u32,
            qualification: read(wn::EXIT_QUALIFICATION),
            guest_physical: read(w64::GUEST_PHYSICAL_ADDRESS),
            instruction_len: read(w32::EXIT_INSTRUCTION_LEN) as u32,
            interruption_info: read(w32::EXIT_INTERRUPTION_INFO) as u32,
            rip: read(wn::GUEST_RIP),
        };
        let vectoring = read(w32::IDT_VECTORING_INFO);
        if vectoring & EVENT_VALID != 0 {
            // Bit 12 (NMI unblocking) is not part of the entry format.
            self.redeliver = Some((
                vectoring & !(1 << 12),
                read(w32::IDT_VECTORING_ERROR),
                u64::from(self.last.instruction_len),
            ));
        }
        if self.last.basic() == exit::reason::INTERRUPT_WINDOW {
            // The window is open; `inject_interrupt` asks for the next one if it still needs it.
            let proc = read(w32::PROC_CONTROLS) & !u64::from(PROC_INTERRUPT_WINDOW);
            // SAFETY: this vCPU's VMCS is current on this CPU.
            let _ = unsafe { vmwrite(w32::PROC_CONTROLS, proc) };
        }
        let exit = exit::decode(&self.last, &self.regs);
        let exit = super::mmio::decode(exit, &self.last, read(wn::GUEST_CR3), &self.regs);
        if let VmExit::ExternalInterrupt { vector: 2 } = exit {
            // The host is NMI-blocked after an NMI exit until an IRET; lift that here, or later
            // kicks would stay pending while this CPU runs its guest.
            arch_x86::regs::unblock_nmi();
            // A kick. The exit saved the guest as "blocked by NMI" (the NMI being handled), and
            // the next entry would restore that blocking, so every later kick would stay pending
            // and never make this CPU leave its guest. The guest never had the NMI: unblock.
            let state = read(w32::GUEST_INTERRUPTIBILITY);
            if state & INTERRUPTIBILITY_NMI_BLOCKED != 0 {
                // SAFETY: this vCPU's VMCS is current on this CPU.
                let _ = unsafe {
                    vmwrite(
                        w32::GUEST_INTERRUPTIBILITY,
                        state & !INTERRUPTIBILITY_NMI_BLOCKED,
                    )
                };
            }
        }
        if self.last.basic() == exit::reason::EXTERNAL_INTERRUPT {
            // Acknowledged by the exit (the "acknowledge interrupt on exit" control): end it.
            // A kick is an NMI, which has no end-of-interrupt. A level device line is masked
            // first, until its guest ends the interrupt (`ioapic`).
            if let Some(line) = super::ioapic::line_of(self.last.interruption_info as u8) {
                super::ioapic::hold(line);
            }
            smp::local_apic().eoi();
        }
        exit
    }
}

impl Drop for VmxVcpu {
    fn drop(&mut self) {
        if self.vmcs != 0 {
            // SAFETY: the VMCS is this vCPU's; clearing it makes it inactive before the frame
            // goes back to the allocator.
            let _ = unsafe { vmclear(self.vmcs) };
            memory::free_frame(self.vmcs);
        }
    }
}
