//! The x86 vCPU on Intel VMX, as a `vcpu::ArchVcpu`: one VMCS filled from its start state
//! ([`super::start`]), the guest's general-purpose registers, and the loop steps. `run` enters
//! the guest and turns the exit into a `VmExit` ([`super::exit::decode`]), emulating on the way
//! the EFER accesses the guest owns, keeping the IA-32e entry control in step with EFER.LMA and
//! loading the preemption timer with this CPU's deadline; `complete` writes back what the handler
//! decided; an event the exit interrupted in its delivery (IDT-vectoring information) is
//! delivered again at the next entry; `inject_interrupt` injects a vector or, when the guest
//! cannot take one, asks for an interrupt-window exit. A kick (an NMI) and any stray external
//! interrupt (acknowledged by the exit, ended through the hardware) both reach the handler as
//! `ExternalInterrupt`. CPUID, too, goes to the handler (and is counted there).
//!
//! Every VMCS access and everything outside the VMCS (VMLAUNCH/VMRESUME, INVEPT/INVVPID, the
//! host's registers, NMI blocking and interrupts, instruction fetches for MMIO) goes through
//! [`VmxHw`], so all of this is tested on the host against a VMCS model (`vcpu_tests.rs`); the
//! image holds the one implementation that runs the instructions.

use super::bitmaps::{IoBitmap, MsrBitmap};
use super::caps::VmxCapabilities;
use super::controls::{ENTRY_IA32E_GUEST, PROC_INTERRUPT_WINDOW};
use super::enter::GuestRegs;
use super::exit::{self, ExitInfo};
use super::fields::{w32, w64, wn};
use super::instr::InvType;
use super::start::{self, ControlAddrs, HostState, VcpuConfig};
use super::VmFail;
use crate::msr::{guest_efer_write, EFER_LMA, IA32_EFER};
use crate::upcall::{handler_rsp, UpcallFrame, HANDLER_RFLAGS};
use alloc::boxed::Box;
use vcpu::{ArchVcpu, Completion, Delivery, VmExit};

/// `InvalidState` raw values for failures before the guest ran: bit 32 marks "VMLAUNCH/VMRESUME
/// failed" (or the vCPU was never created), the low bits carry the VM-instruction error number
/// (SDM Vol. 3C §31.4).
pub const ENTRY_INSTRUCTION_FAILED: u64 = 1 << 32;

/// Guest interruptibility state, bit 3: blocking by NMI.
const INTERRUPTIBILITY_NMI_BLOCKED: u64 = 1 << 3;
/// Valid bit of the interruption-information fields.
const EVENT_VALID: u64 = 1 << 31;
/// IDT-vectoring information bit 12: NMI unblocking due to IRET, which the entry format lacks.
const VECTORING_NMI_UNBLOCKED_BY_IRET: u64 = 1 << 12;
/// What a kick reports as: the NMI vector.
const KICK_VECTOR: u32 = 2;

/// The CPU a vCPU runs on, with the vCPU's VMCS current on it, and the host around it; one
/// implementation per world (the running CPU in the image, a VMCS model in the host tests). A
/// vCPU stays on the CPU that created it, so "this CPU" is always the same one.
pub trait VmxHw {
    /// What this CPU's VMX offers (its capability MSRs, decoded).
    fn capabilities(&self) -> VmxCapabilities;
    /// This CPU as the VMCS host state must describe it.
    fn host_state(&self) -> HostState;
    /// The physical address of the host memory at virtual address `addr` (the bitmaps the VMCS
    /// points at, which the CPU reads by physical address).
    fn phys_addr(&self, addr: usize) -> u64;
    /// VMREAD of `field` of the vCPU's VMCS.
    fn vmread(&self, field: u32) -> Result<u64, VmFail>;
    /// VMWRITE of `value` to `field` of the vCPU's VMCS.
    fn vmwrite(&mut self, field: u32, value: u64) -> Result<(), VmFail>;
    /// VMLAUNCH (`launched` false) or VMRESUME of the guest with `regs` until its next VM exit
    /// (the exit fields and guest state are then in the VMCS, its other registers in `regs`):
    /// `Ok(true)`; `Ok(false)` when the CPU's kick flag abandoned the entry and the guest did
    /// not run.
    fn enter(&mut self, regs: &mut GuestRegs, launched: bool) -> Result<bool, VmFail>;
    /// INVEPT of `kind` for `eptp`.
    fn invept(&mut self, kind: InvType, eptp: u64) -> Result<(), VmFail>;
    /// INVVPID of `kind` for `vpid` (and linear address `addr` for [`InvType::Address`]).
    fn invvpid(&mut self, kind: InvType, vpid: u16, addr: u64) -> Result<(), VmFail>;
    /// The VMX-preemption timer value that makes the guest exit at this CPU's deadline, when
    /// the preemption timer carries deadlines here.
    fn preemption_countdown(&self) -> Option<u32>;
    /// Ends the host's NMI blocking, which an NMI exit leaves on until an IRET.
    fn unblock_host_nmi(&mut self);
    /// Ends the host interrupt `vector` that an external-interrupt exit acknowledged (holding
    /// its device line first when it is a level one, until the guest ends it).
    fn end_host_interrupt(&mut self, vector: u8);
    /// `exit` as the handler should see it: a stage-2 fault in an emulated device window
    /// becomes an MMIO access once the instruction at `last.rip` (under the guest's page tables
    /// at `cr3`) is fetched and decoded; anything else passes through.
    fn decode_mmio(&mut self, exit: VmExit, last: &ExitInfo, cr3: u64, regs: &GuestRegs) -> VmExit;
    /// Applies the handler's `completion` of the MMIO access [`VmxHw::decode_mmio`] decoded last
    /// (a load's register, the instruction's length into `last`), returning what is left to
    /// complete; any other completion passes through.
    fn complete_mmio(
        &mut self,
        completion: Completion,
        regs: &mut GuestRegs,
        last: &mut ExitInfo,
    ) -> Completion;
}

/// Drops every guest-physical and combined translation of `eptp` on the CPU of `hw`: one
/// context where the CPU can, every context otherwise. EPT has no range invalidation, so this is
/// what any flush of a partition's table must at least do.
pub fn flush_ept(hw: &mut impl VmxHw, eptp: u64) -> Result<(), VmFail> {
    let kind = if hw.capabilities().invept_single() {
        InvType::SingleContext
    } else {
        InvType::AllContexts
    };
    hw.invept(kind, eptp)
}

/// An event to deliver at the next entry: the entry interruption information, its error code
/// and instruction length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Event {
    info: u64,
    error: u64,
    len: u64,
}

/// One vCPU, bound to the CPU that created it.
pub struct VmxVcpu<H: VmxHw> {
    hw: H,
    launched: bool,
    regs: GuestRegs,
    last: ExitInfo,
    /// Kept alive (and at a fixed address) for as long as the VMCS points at them.
    io: Box<IoBitmap>,
    _msr: Box<MsrBitmap>,
    /// Set when the vCPU could not be created; `run` reports it as the first exit.
    broken: Option<&'static str>,
    /// The context an upcall interrupted (`vcpu::upcall`), while its handler runs.
    saved: Option<UpcallFrame<GuestRegs>>,
    /// An event the last exit interrupted in its delivery, or an exception the handler raised:
    /// delivered at the next entry, or the guest would lose it.
    redeliver: Option<Event>,
    /// The last entry was abandoned for a kick: no exit to complete.
    abandoned: bool,
}

impl<H: VmxHw> VmxVcpu<H> {
    /// Creates the vCPU on the CPU of `hw` (in VMX operation, the vCPU's VMCS cleared and
    /// current), letting the guest use the ports `[start, start + size)` of `ports` directly.
    pub fn new(hw: H, config: &VcpuConfig, ports: impl IntoIterator<Item = (u16, u16)>) -> Self {
        let mut io = Box::new(IoBitmap::all_exit());
        for (start, size) in ports {
            io.allow(start, size);
        }
        let [rdi, rsi, rdx, rcx, r8] = config.args;
        let mut v = Self {
            hw,
            launched: false,
            regs: GuestRegs {
                kick: config.kick.as_ptr() as u64,
                rdi,
                rsi,
                rdx,
                rcx,
                r8,
                ..GuestRegs::default()
            },
            last: ExitInfo::default(),
            io,
            _msr: Box::new(MsrBitmap::for_partition()),
            broken: None,
            saved: None,
            redeliver: None,
            abandoned: false,
        };
        if let Err(e) = v.fill(config) {
            log::error!("vmx: vCPU not created: {e}");
            v.broken = Some(e);
        }
        v
    }

    /// A vCPU that cannot run; its first `run` reports why as an invalid state.
    pub fn unavailable(hw: H, why: &'static str) -> Self {
        Self {
            hw,
            launched: false,
            regs: GuestRegs::default(),
            last: ExitInfo::default(),
            io: Box::new(IoBitmap::all_exit()),
            _msr: Box::new(MsrBitmap::all_exit()),
            broken: Some(why),
            saved: None,
            redeliver: None,
            abandoned: false,
        }
    }

    /// The guest's general-purpose registers as the next entry will load them.
    pub fn regs(&self) -> &GuestRegs {
        &self.regs
    }

    /// The I/O bitmaps the VMCS points at.
    pub fn io_bitmap(&self) -> &IoBitmap {
        &self.io
    }

    /// The CPU this vCPU runs on.
    pub fn hw(&mut self) -> &mut H {
        &mut self.hw
    }

    /// Writes the start state into the VMCS and drops what the VPID tagged before.
    fn fill(&mut self, config: &VcpuConfig) -> Result<(), &'static str> {
        let caps = self.hw.capabilities();
        let addrs = ControlAddrs {
            io_bitmap: self.hw.phys_addr((&*self.io as *const IoBitmap).addr()),
            msr_bitmap: self.hw.phys_addr((&*self._msr as *const MsrBitmap).addr()),
        };
        let fields = start::fields(&caps, config, addrs, &self.hw.host_state()).map_err(|r| {
            log::error!("vmx: the CPU refuses {} controls {:#x}", r.word, r.bits);
            "a VMX control the partition needs is not supported"
        })?;
        for (field, value) in fields {
            if self.hw.vmwrite(field, value).is_err() {
                let kind = start::field_kind(field);
                log::error!("vmx: VMWRITE of {kind} field {field:#06x} failed");
                return Err("VMWRITE failed");
            }
        }
        // This VPID tagged the previous run's translations on this CPU: they must not survive
        // into a fresh start (the same holds when a vCPU moves to another CPU).
        if caps.vpid() {
            let _ = self.hw.invvpid(InvType::SingleContext, config.vpid, 0);
        }
        Ok(())
    }

    /// A VMCS field, 0 if the CPU refuses the read.
    fn read(&self, field: u32) -> u64 {
        self.hw.vmread(field).unwrap_or(0)
    }

    /// Writes a field whose refusal changes nothing the vCPU could act on (the VMCS is current
    /// and the field valid; the next entry's checks report anything wrong with the value).
    fn write(&mut self, field: u32, value: u64) {
        let _ = self.hw.vmwrite(field, value);
    }

    fn entry_failed(&self, e: VmFail) -> VmExit {
        let error = match e {
            VmFail::Valid => self.read(w32::VM_INSTRUCTION_ERROR),
            VmFail::Invalid => 0,
        };
        VmExit::InvalidState {
            raw: ENTRY_INSTRUCTION_FAILED | error,
        }
    }

    /// One entry and the exit that ends it.
    fn run_once(&mut self) -> VmExit {
        if let Some(why) = self.broken {
            log::error!("vmx: cannot enter the guest: {why}");
            return VmExit::InvalidState {
                raw: ENTRY_INSTRUCTION_FAILED,
            };
        }
        if let Some(e) = self.redeliver.take() {
            self.write(w32::ENTRY_INTERRUPTION_INFO, e.info);
            self.write(w32::ENTRY_EXCEPTION_ERROR, e.error);
            self.write(w32::ENTRY_INSTRUCTION_LEN, e.len);
        }
        // A guest that turned long mode on or off itself (CR0.PG with EFER.LME, no exit) must
        // enter with the IA-32e entry control matching EFER.LMA, or the entry fails.
        let lma = self.read(w64::GUEST_EFER) & EFER_LMA != 0;
        let entry = self.read(w32::ENTRY_CONTROLS);
        let ia32e = u64::from(ENTRY_IA32E_GUEST);
        if lma != (entry & ia32e != 0) {
            self.write(w32::ENTRY_CONTROLS, entry ^ ia32e);
        }
        if let Some(countdown) = self.hw.preemption_countdown() {
            // The countdown to this CPU's deadline, from now (the field counts in the guest only).
            self.write(w32::PREEMPTION_TIMER_VALUE, countdown.into());
        }
        match self.hw.enter(&mut self.regs, self.launched) {
            Err(e) => return self.entry_failed(e),
            Ok(false) => {
                // Kicked before the guest could run: report the kick as the exit it would have
                // been; `complete` leaves the guest state alone.
                self.abandoned = true;
                return VmExit::ExternalInterrupt {
                    vector: KICK_VECTOR,
                };
            }
            Ok(true) => {}
        }
        self.launched = true;
        self.last = ExitInfo {
            reason: self.read(w32::EXIT_REASON) as u32,
            qualification: self.read(wn::EXIT_QUALIFICATION),
            guest_physical: self.read(w64::GUEST_PHYSICAL_ADDRESS),
            instruction_len: self.read(w32::EXIT_INSTRUCTION_LEN) as u32,
            interruption_info: self.read(w32::EXIT_INTERRUPTION_INFO) as u32,
            rip: self.read(wn::GUEST_RIP),
        };
        let vectoring = self.read(w32::IDT_VECTORING_INFO);
        if vectoring & EVENT_VALID != 0 {
            self.redeliver = Some(Event {
                info: vectoring & !VECTORING_NMI_UNBLOCKED_BY_IRET,
                error: self.read(w32::IDT_VECTORING_ERROR),
                len: u64::from(self.last.instruction_len),
            });
        }
        if self.last.basic() == exit::reason::INTERRUPT_WINDOW {
            // The window is open; `inject_interrupt` asks for the next one if it still needs it.
            let proc = self.read(w32::PROC_CONTROLS) & !u64::from(PROC_INTERRUPT_WINDOW);
            self.write(w32::PROC_CONTROLS, proc);
        }
        let exit = exit::decode(&self.last, &self.regs);
        let cr3 = self.read(wn::GUEST_CR3);
        let exit = self.hw.decode_mmio(exit, &self.last, cr3, &self.regs);
        if exit
            == (VmExit::ExternalInterrupt {
                vector: KICK_VECTOR,
            })
        {
            // The host is NMI-blocked after an NMI exit until an IRET; lift that here, or later
            // kicks would stay pending while this CPU runs its guest.
            self.hw.unblock_host_nmi();
            // A kick. The exit saved the guest as "blocked by NMI" (the NMI being handled), and
            // the next entry would restore that blocking, so every later kick would stay pending
            // and never make this CPU leave its guest. The guest never had the NMI: unblock.
            let state = self.read(w32::GUEST_INTERRUPTIBILITY);
            if state & INTERRUPTIBILITY_NMI_BLOCKED != 0 {
                self.write(
                    w32::GUEST_INTERRUPTIBILITY,
                    state & !INTERRUPTIBILITY_NMI_BLOCKED,
                );
            }
        }
        if self.last.basic() == exit::reason::EXTERNAL_INTERRUPT {
            // Acknowledged by the exit (the "acknowledge interrupt on exit" control): end it.
            // A kick is an NMI, which has no end-of-interrupt.
            self.hw
                .end_host_interrupt(self.last.interruption_info as u8);
        }
        exit
    }
}

impl<H: VmxHw> ArchVcpu for VmxVcpu<H> {
    fn run(&mut self) -> VmExit {
        loop {
            let exit = self.run_once();
            // EFER is CPU state the guest owns (within limits): emulated here, not an event.
            match exit {
                VmExit::MsrRead { msr: IA32_EFER } => {
                    let efer = self.read(w64::GUEST_EFER);
                    exit::complete(&self.last, Completion::Value(efer), &mut self.regs);
                }
                VmExit::MsrWrite {
                    msr: IA32_EFER,
                    value,
                } => {
                    let efer = guest_efer_write(self.read(w64::GUEST_EFER), value);
                    self.write(w64::GUEST_EFER, efer);
                }
                other => return other,
            }
            let next = self.last.rip + u64::from(self.last.instruction_len);
            self.write(wn::GUEST_RIP, next);
        }
    }

    fn complete(&mut self, completion: Completion) {
        if core::mem::take(&mut self.abandoned) {
            return;
        }
        let completion = self
            .hw
            .complete_mmio(completion, &mut self.regs, &mut self.last);
        if let Completion::Exception { vector, error_code } = completion {
            // Raised on the instruction itself at the next entry (which then waits for no
            // interrupt window: an exception is delivered first).
            self.redeliver = Some(Event {
                info: exit::exception_event(vector, error_code.is_some()),
                error: u64::from(error_code.unwrap_or(0)),
                len: 0,
            });
        }
        let rip = exit::complete(&self.last, completion, &mut self.regs);
        if rip != self.last.rip {
            self.write(wn::GUEST_RIP, rip);
        }
    }

    fn deliver_upcall(&mut self, d: Delivery) -> bool {
        if self.saved.is_some() || self.broken.is_some() {
            return false;
        }
        self.saved = Some(UpcallFrame {
            regs: self.regs,
            rip: self.read(wn::GUEST_RIP),
            rsp: self.read(wn::GUEST_RSP),
            rflags: self.read(wn::GUEST_RFLAGS),
        });
        self.regs.rdi = d.irq.code();
        self.regs.rsi = d.detail;
        self.write(wn::GUEST_RIP, d.upcall.entry);
        self.write(wn::GUEST_RSP, handler_rsp(d.upcall.stack));
        self.write(wn::GUEST_RFLAGS, HANDLER_RFLAGS);
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
                self.read(wn::GUEST_RFLAGS),
                self.read(w32::GUEST_INTERRUPTIBILITY),
                self.read(w32::ENTRY_INTERRUPTION_INFO),
            );
        if !ready {
            // Come back as soon as the guest can take it.
            let proc = self.read(w32::PROC_CONTROLS);
            self.write(w32::PROC_CONTROLS, proc | u64::from(PROC_INTERRUPT_WINDOW));
            return false;
        }
        // Type 0 (external interrupt).
        self.write(
            w32::ENTRY_INTERRUPTION_INFO,
            EVENT_VALID | u64::from(vector),
        );
        true
    }

    fn return_from_upcall(&mut self) {
        let Some(f) = self.saved.take() else { return };
        // Everything as it was, rax included: the interrupted code never sees the call.
        self.regs = f.regs;
        self.write(wn::GUEST_RIP, f.rip);
        self.write(wn::GUEST_RSP, f.rsp);
        self.write(wn::GUEST_RFLAGS, f.rflags);
    }

    /// Ignored: x86 interrupts are vectors (`inject_interrupt`), not lines.
    fn set_irq_lines(&mut self, _lines: u32) {}
}
