//! Exceptions the hypervisor does not expect are fatal; a partition's own exceptions go to the
//! guest exit vector instead (`world.rs`, `lvz_world.rs` under LVZ), and its TLB misses are
//! refilled here by walking its GPA table (PGDL) with `lddir`/`ldpte`, the Linux-style handler (3
//! levels of 16 KiB tables; `notes/plv3-facts.md`). Two vectors, both
//! 4 KiB aligned as the CSRs require: the general one (EENTRY, a virtual address; ECFG.VS = 0
//! sends every exception and interrupt there) and the TLB-refill one (TLBRENTRY, a physical
//! address: refill runs in direct-address mode, so it first jumps to the cached window and turns
//! paging back on). Both switch to this CPU's trap stack (its top is kept in KS1, so a fault on a
//! broken stack still reports), save the registers, and report through the unlocked console
//! before ending the run with a failure.

use super::Current;
use crate::arch::{Machine, Outcome};
use arch_loongarch::csr;
use arch_loongarch::estat::Estat;
use board_config::MAX_CPUS;
use core::arch::global_asm;
use core::sync::atomic::{AtomicUsize, Ordering};

const TRAP_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct TrapStacks([[u8; TRAP_STACK_SIZE]; MAX_CPUS]);

/// Only the trap entry code touches it, through its symbol, each CPU in its own slot.
static mut TRAP_STACKS: TrapStacks = TrapStacks([[0; TRAP_STACK_SIZE]; MAX_CPUS]);

/// The registers at the moment of the exception: `regs[n]` is `$rn` (`regs[0]` is 0).
#[repr(C)]
pub struct TrapFrame {
    regs: [u64; 32],
}

global_asm!(
    // Saves r1..r31 on the trap stack (the interrupted sp comes from KS0) and calls Rust with
    // a0 = frame, a1 = `kind`.
    ".macro SEPTUM_TRAP_SAVE kind",
    "    csrwr   $sp, {KS0}",
    "    csrrd   $sp, {KS1}",
    "    addi.d  $sp, $sp, -256",
    "    .irp n, 1,2,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    "    st.d    $r\\n, $sp, \\n * 8",
    "    .endr",
    "    csrrd   $t0, {KS0}",
    "    st.d    $t0, $sp, 24",
    "    st.d    $zero, $sp, 0",
    "    move    $a0, $sp",
    "    li.d    $a1, \\kind",
    "    bl      {fatal}",
    "9:  idle    0",
    "    b       9b",
    ".endm",
    "",
    ".section .text.trap, \"ax\"",
    ".balign 4096",
    ".global septum_trap_vector",
    "septum_trap_vector:",
    "    SEPTUM_TRAP_SAVE 0",
    "",
    ".balign 4096",
    "septum_tlbr_vector:",
    "    csrwr   $t0, {TLBRSAVE}",
    // A miss of partition code: from PLV3 (deprivileged backend) or from guest mode (LVZ,
    // GSTAT.PVM; reads 0 where LVZ is absent). Walk the partition's GPA table in PGDL.
    "    csrrd   $t0, {TLBRPRMD}",
    "    andi    $t0, $t0, 3",
    "    bnez    $t0, 7f",
    "    csrrd   $t0, {GSTAT}",
    "    andi    $t0, $t0, 2",
    "    beqz    $t0, 8f",
    "7:  csrrd   $t0, {PGD}",
    "    lddir   $t0, $t0, 3",
    "    lddir   $t0, $t0, 1",
    "    ldpte   $t0, 0",
    "    ldpte   $t0, 1",
    "    tlbfill",
    "    csrrd   $t0, {TLBRSAVE}",
    "    ertn",
    // A miss of the hypervisor itself (it runs in the DMW windows only): a bug, reported.
    "8:  la.abs  $t0, 1f",
    "    jirl    $zero, $t0, 0",
    "1:  li.d    $t0, {crmd}",
    "    csrwr   $t0, {CRMD}",
    "    csrrd   $t0, {TLBRSAVE}",
    "    SEPTUM_TRAP_SAVE 1",
    "",
    // Called from the entry code on every CPU (leaf, clobbers t0/t1 only): EENTRY, TLBRENTRY,
    // and KS1 = top of this CPU's trap stack.
    ".section .text, \"ax\"",
    ".global septum_install_traps",
    "septum_install_traps:",
    "    la.abs  $t0, septum_trap_vector",
    "    csrwr   $t0, {EENTRY}",
    "    la.abs  $t0, septum_tlbr_vector",
    "    li.d    $t1, {pa_mask}",
    "    and     $t0, $t0, $t1",
    "    csrwr   $t0, {TLBRENTRY}",
    "    csrrd   $t0, {CPUID}",
    "    andi    $t0, $t0, 0x1ff",
    "    li.d    $t1, {last_cpu}",
    "    bgeu    $t1, $t0, 1f",
    // An index beyond the tables shares the last slot rather than writing past the end.
    "    move    $t0, $t1",
    "1:  addi.d  $t0, $t0, 1",
    "    li.d    $t1, {stack_size}",
    "    mul.d   $t0, $t0, $t1",
    "    la.abs  $t1, {stacks}",
    "    add.d   $t0, $t0, $t1",
    "    csrwr   $t0, {KS1}",
    "    jirl    $zero, $ra, 0",
    KS0 = const csr::KS0,
    KS1 = const csr::KS1,
    TLBRSAVE = const csr::TLBRSAVE,
    TLBRPRMD = const csr::TLBRPRMD,
    GSTAT = const csr::GSTAT,
    PGD = const csr::PGD,
    CRMD = const csr::CRMD,
    EENTRY = const csr::EENTRY,
    TLBRENTRY = const csr::TLBRENTRY,
    CPUID = const csr::CPUID,
    crmd = const csr::CRMD_HYPERVISOR,
    pa_mask = const 0x0000_ffff_ffff_ffffu64,
    last_cpu = const MAX_CPUS - 1,
    stack_size = const TRAP_STACK_SIZE,
    stacks = sym TRAP_STACKS,
    fatal = sym fatal,
);

extern "C" {
    /// Installs the vectors and the trap stack on the calling CPU (see the asm above). Only the
    /// entry code calls it, before any stack exists.
    pub(super) fn septum_install_traps();
}

/// How many times any CPU has entered [`fatal`]: a fault while reporting a fault must not loop.
static FATAL_ENTRIES: AtomicUsize = AtomicUsize::new(0);

/// Reports an unexpected exception (`kind` 0) or TLB refill (`kind` 1) and fails the run.
extern "C" fn fatal(frame: &TrapFrame, kind: usize) -> ! {
    let nested = FATAL_ENTRIES.fetch_add(1, Ordering::SeqCst);
    if nested > 4 {
        Current::park();
    }
    let cpu = Current::cpu_index();
    if kind == 1 {
        crate::console::print_unlocked(format_args!(
            "\nEXCEPTION on cpu{cpu}: TLB refill (TLBR) TLBRBADV={:#x} TLBRERA={:#x}\n",
            csr::read::<{ csr::TLBRBADV }>(),
            csr::read::<{ csr::TLBRERA }>() & !1,
        ));
    } else {
        let estat = Estat(csr::read::<{ csr::ESTAT }>());
        crate::console::print_unlocked(format_args!(
            "\nEXCEPTION on cpu{cpu}: Ecode {:#x} ({}) EsubCode {} ERA={:#x} BADV={:#x} BADI={:#x} \
             IS={:#x}\n",
            estat.ecode(),
            estat.cause().name(),
            estat.esubcode(),
            csr::read::<{ csr::ERA }>(),
            csr::read::<{ csr::BADV }>(),
            csr::read::<{ csr::BADI }>(),
            estat.is(),
        ));
    }
    if nested == 0 {
        crate::console::print_unlocked(format_args!(
            "  ra={:#x} sp={:#x} a0={:#x} a1={:#x}\n",
            frame.regs[1], frame.regs[3], frame.regs[4], frame.regs[5]
        ));
    }
    Current::exit(Outcome::Failure)
}

/// The hidden `fault=1` / `fault=2` switches: raise an exception on purpose so a boot test can
/// check the failure path end to end. 1 loads from an address no DMW window covers (paging is on
/// and the TLB is empty, so this is a TLB refill); 2 executes `break`.
pub fn deliberate_fault(kind: u32) {
    log::warn!("fault={kind}: raising an exception on purpose");
    match kind {
        1 => {
            // SAFETY: the load targets an address outside both DMW windows with no TLB entry,
            // so it never reaches memory: it raises a TLB refill, which is fatal by design.
            unsafe {
                core::arch::asm!("ld.d {0}, {1}, 0", out(reg) _, in(reg) 0x1000usize,
                    options(nostack))
            };
        }
        _ => arch_loongarch::instr::breakpoint::<7>(),
    }
}
