//! The LVZ world switch, the one part of the LVZ backend that cannot run on the host: the asm that
//! `ertn`s into guest mode and the exit vector that comes back, plus [`RealWorld`], the
//! `arch_loongarch::lvz::LvzWorld` of the running CPU that the backend's logic
//! (`arch_loongarch::lvz::LvzVcpu`, host-tested) drives.
//!
//! Entry (`septum_lvz_enter`, called after `lvz::program_entry` has set PGDL, GTLBC.TGID,
//! GINTC, GCNTC, ERA, PRMD.PIE and, last, GSTAT.GID/PVM): save the hypervisor's callee-saved
//! registers and stack in the [`LvzContext`], point KS3 at it and EENTRY at the exit vector, load
//! the guest's GPRs and `ertn` (PVM = 1 makes it enter guest mode). Exit (`septum_lvz_exit`,
//! EENTRY while the guest runs; ECFG.VS = 0 sends every root exception and interrupt there):
//! GSTAT.PVM says whether the exception came from guest mode. If not, the hypervisor itself
//! faulted in the window around the switch, and the exception goes on to the fatal trap vector
//! (per-CPU trap stack in KS1). Otherwise save the guest's GPRs and ESTAT/ERA/BADV/BADI, clear
//! PVM at once (so nothing in root can `ertn` back into the guest by accident), restore EENTRY
//! and the hypervisor's stack and registers, and return from the call. The guest CSRs stay in
//! the CPU (`gcsrrd`/`gcsrwr` only when a vCPU is (un)loaded); the root TLB refill of guest
//! GPAs is `trap.rs`'s handler, which walks PGDL when GSTAT.PVM is set.

use crate::partitions::Partition;
use arch_loongarch::csr;
use arch_loongarch::lvz::real::RealLvz;
use arch_loongarch::lvz::{gstat, LvzHw, LvzWorld, Trap};
use core::arch::global_asm;
use core::mem::offset_of;
use partition::arch::PartitionArch;

/// The guest's registers across one switch, and the exit's exception state.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct LvzContext {
    /// `regs[n]` is `$rn` (`regs[0]` stays 0).
    regs: [u64; 32],
    estat: u64,
    era: u64,
    badv: u64,
    badi: u64,
    /// The hypervisor's stack pointer while the guest runs.
    host_sp: u64,
}

const REGS: usize = offset_of!(LvzContext, regs);
const ESTAT: usize = offset_of!(LvzContext, estat);
const ERA: usize = offset_of!(LvzContext, era);
const BADV: usize = offset_of!(LvzContext, badv);
const BADI: usize = offset_of!(LvzContext, badi);
const HOST_SP: usize = offset_of!(LvzContext, host_sp);

global_asm!(
    ".section .text, \"ax\"",
    ".global septum_lvz_enter",
    "septum_lvz_enter:",
    "    addi.d  $sp, $sp, -96",
    "    st.d    $ra, $sp, 0",
    "    st.d    $fp, $sp, 8",
    "    .irp n, 0,1,2,3,4,5,6,7,8",
    "    st.d    $s\\n, $sp, 16 + \\n * 8",
    "    .endr",
    "    st.d    $sp, $a0, {host_sp}",
    "    move    $t0, $a0",
    "    csrwr   $t0, {KS3}",
    "    la.abs  $t0, septum_lvz_exit",
    "    csrwr   $t0, {EENTRY}",
    "    .irp n, 1,2,3,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    "    ld.d    $r\\n, $a0, {regs} + \\n * 8",
    "    .endr",
    "    ld.d    $a0, $a0, {regs} + 4 * 8",
    // ERA = guest PC, PRMD.PIE = 1, GSTAT.PVM = 1: into guest mode.
    "    ertn",
    "",
    // EENTRY needs 4 KiB alignment.
    ".balign 4096",
    "septum_lvz_exit:",
    "    csrwr   $t0, {KS2}",
    "    csrrd   $t0, {GSTAT}",
    "    andi    $t0, $t0, {PVM}",
    "    bnez    $t0, 1f",
    // Not from the guest: the hypervisor faulted between setting EENTRY and `ertn`, or after the
    // exit before restoring it. Report it like any hypervisor exception.
    "    csrrd   $t0, {KS2}",
    "    b       septum_trap_vector",
    "1:  csrrd   $t0, {KS3}",
    "    .irp n, 1,2,3,4,5,6,7,8,9,10,11,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    "    st.d    $r\\n, $t0, {regs} + \\n * 8",
    "    .endr",
    "    csrrd   $t1, {KS2}",
    "    st.d    $t1, $t0, {regs} + 12 * 8",
    "    csrrd   $t1, {ESTAT}",
    "    st.d    $t1, $t0, {estat}",
    "    csrrd   $t1, {ERA}",
    "    st.d    $t1, $t0, {era}",
    "    csrrd   $t1, {BADV}",
    "    st.d    $t1, $t0, {badv}",
    "    csrrd   $t1, {BADI}",
    "    st.d    $t1, $t0, {badi}",
    // GSTAT.PVM = 0 (csrxchg with the mask in t1, which is neither r0 nor r1).
    "    li.d    $t1, {PVM}",
    "    move    $t2, $zero",
    "    csrxchg $t2, $t1, {GSTAT}",
    "    la.abs  $t1, septum_trap_vector",
    "    csrwr   $t1, {EENTRY}",
    "    ld.d    $sp, $t0, {host_sp}",
    "    ld.d    $ra, $sp, 0",
    "    ld.d    $fp, $sp, 8",
    "    .irp n, 0,1,2,3,4,5,6,7,8",
    "    ld.d    $s\\n, $sp, 16 + \\n * 8",
    "    .endr",
    "    addi.d  $sp, $sp, 96",
    "    jirl    $zero, $ra, 0",
    KS2 = const csr::KS2,
    KS3 = const csr::KS3,
    EENTRY = const csr::EENTRY,
    GSTAT = const csr::GSTAT,
    PVM = const gstat::PVM,
    ESTAT = const csr::ESTAT,
    ERA = const csr::ERA,
    BADV = const csr::BADV,
    BADI = const csr::BADI,
    regs = const REGS,
    estat = const ESTAT,
    era = const ERA,
    badv = const BADV,
    badi = const BADI,
    host_sp = const HOST_SP,
);

extern "C" {
    fn septum_lvz_enter(ctx: *mut LvzContext);
}

/// The running CPU as one partition's vCPU sees it under LVZ.
pub struct RealWorld {
    hw: RealLvz,
    ctx: LvzContext,
    partition: &'static Partition,
}

impl RealWorld {
    pub fn new(partition: &'static Partition) -> Self {
        Self {
            hw: RealLvz,
            ctx: LvzContext::default(),
            partition,
        }
    }
}

impl LvzHw for RealWorld {
    fn csr_read(&mut self, csr: u16) -> u64 {
        self.hw.csr_read(csr)
    }
    fn csr_write(&mut self, csr: u16, value: u64) {
        self.hw.csr_write(csr, value)
    }
    fn gcsr_read(&mut self, csr: u16) -> u64 {
        self.hw.gcsr_read(csr)
    }
    fn gcsr_write(&mut self, csr: u16, value: u64) {
        self.hw.gcsr_write(csr, value)
    }
    fn gcsr_xchg(&mut self, csr: u16, value: u64, mask: u64) -> u64 {
        self.hw.gcsr_xchg(csr, value, mask)
    }
    fn invtlb(&mut self, op: u32, rj: u64, rk: u64) {
        self.hw.invtlb(op, rj, rk)
    }
}

impl LvzWorld for RealWorld {
    fn enter(&mut self, regs: &mut [u64; 32]) -> Trap {
        self.ctx.regs = *regs;
        // SAFETY: `LvzVcpu` calls this only after `program_entry`: PGDL holds the partition's
        // GPA table (empty slots lead to invalid tables, never to address 0), GTLBC.TGID and
        // GSTAT.GID its own non-zero GID, PRMD.PIE and GSTAT.PVM are set and CRMD.IE is clear,
        // so the `ertn` enters this partition's guest and only its exits reach the vector. The asm
        // saves and restores every callee-saved register and the stack and returns here with
        // `ctx` filled in.
        unsafe { septum_lvz_enter(&mut self.ctx) };
        *regs = self.ctx.regs;
        Trap {
            estat: self.ctx.estat,
            era: self.ctx.era,
            badv: self.ctx.badv,
            badi: self.ctx.badi as u32,
        }
    }

    fn acknowledge(&mut self, is: u32) -> u32 {
        super::host_irq::acknowledge_interrupts(is)
    }

    /// Mapped in the partition's stage-2 table: its memory, or a device window of its own (whose
    /// first write takes a fault too, the table keeping the dirty bit for the fault to set).
    fn owned(&self, gpa: u64) -> bool {
        self.partition.table().translate(mmu::Gpa(gpa)).is_some()
    }

    fn recheck_after(&mut self, ns: Option<u64>) {
        let deadline = ns.map(|ns| {
            let hz = u128::from(super::Current::counter_hz());
            let ticks = (u128::from(ns) * hz / 1_000_000_000).max(1) as u64;
            arch_loongarch::instr::rdtime().wrapping_add(ticks)
        });
        super::host_irq::arm_recheck(deadline);
    }
}
