//! The LoongArch64 runtime of the test guests: the entry point, the stack, the hypercall
//! instruction, and the facts about the board layout the scenarios rely on.
//!
//! Boot registers (set by the hypervisor, both backends): a0 = partition id, a1 = flags (bit 0:
//! make hypercalls with `hvcl 0`, i.e. the LVZ backend; clear: `syscall 0`, the deprivileged
//! backend), a2 = how many times the partition was started before, a3 = guest-physical address of
//! the partition's first shared region (0 if none), a4 = its size. Hypercall: number in a7,
//! arguments in a0-a5, result in a0 (`vcpu/README.md`). A secondary vCPU starts with a0 = the
//! argument its `VCPU_START` passed (here: its stack top) and a1 = its index.

use crate::BootArgs;
use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, Ordering};

/// The stage-2 base page on LoongArch boards (16 KiB): the unit dirty logging and aging see.
pub const PAGE: u64 = 16 * 1024;
/// Guest-physical base of the worker's workload pages: its high-RAM region in
/// `board-configs/qemu-virt-la64.toml` (`guest = 0x40000000`).
pub const WORKLOAD_BASE: u64 = 0x4000_0000;
/// Bit of the workload's first 4 KiB page in a dirty bitmap of the worker's memory (regions in
/// board-file order: 32 MiB low RAM, 2 MiB shared, then the workload region).
pub const WORKLOAD_BIT: u64 = (32 + 2) << 8;
/// An address no test partition owns: the worker's host memory, which the hostile guest reads as
/// if it were its own guest-physical address.
pub const OTHER_PARTITION: u64 = 0x600_0000;
/// Outside every test partition's memory, inside the manager's and worker's shared window.
pub const OUTSIDE: u64 = 0x400_0000;
/// A device the hostile guest does not own: the LS7A RTC (`board-configs/qemu-virt-la64.toml`
/// gives it to the worker; the hypervisor's console is UART0 at 0x1fe0_01e0).
pub const FOREIGN_DEVICE: u64 = 0x100d_0100;
/// The interrupt controller every partition sees (a view of the board's PCH-PIC, `irqchip`).
pub const IRQCHIP: u64 = 0x1000_0000;
/// Its name, as the hypervisor's console lines say it.
pub const IRQCHIP_NAME: &str = "PCH-PIC";
/// A guest-physical address nothing maps, to jump to.
pub const UNMAPPED_CODE: u64 = 0x10_0000_0000;

const STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);

/// Only the entry code uses it, through its symbol.
#[no_mangle]
static mut GUEST_STACK: Stack = Stack([0; STACK_SIZE]);

static USE_HVCL: AtomicBool = AtomicBool::new(false);

global_asm!(
    ".section .text.entry, \"ax\"",
    ".global _start",
    "_start:",
    "    la.abs  $t0, __bss_start",
    "    la.abs  $t1, __bss_end",
    "1:  bgeu    $t0, $t1, 2f",
    "    st.d    $zero, $t0, 0",
    "    addi.d  $t0, $t0, 8",
    "    b       1b",
    "2:  la.abs  $sp, GUEST_STACK",
    "    li.d    $t0, {size}",
    "    add.d   $sp, $sp, $t0",
    "    move    $fp, $zero",
    "    bl      {start}",
    "3:  b       3b",
    size = const STACK_SIZE,
    start = sym start,
);

global_asm!(
    ".section .text, \"ax\"",
    ".global septum_guest_secondary_entry",
    "septum_guest_secondary_entry:",
    "    move    $sp, $a0",
    "    move    $a0, $a1",
    "    move    $fp, $zero",
    "    bl      {secondary}",
    "1:  b       1b",
    secondary = sym crate::smp::secondary,
);

/// Writes a 64-bit IOCSR (privileged: the hypervisor emulates the partition's IPI block).
pub fn iocsr_write64(addr: u64, value: u64) {
    // SAFETY: traps to the hypervisor, which emulates the access or stops the partition.
    unsafe { asm!("iocsrwr.d {v}, {a}", v = in(reg) value, a = in(reg) addr, options(nostack)) };
}

/// Writes a 32-bit IOCSR.
pub fn iocsr_write32(addr: u64, value: u32) {
    // SAFETY: as `iocsr_write64`.
    unsafe { asm!("iocsrwr.w {v}, {a}", v = in(reg) value, a = in(reg) addr, options(nostack)) };
}

/// Reads a 32-bit IOCSR.
pub fn iocsr_read32(addr: u64) -> u32 {
    let v: u64;
    // SAFETY: as `iocsr_write64`.
    unsafe { asm!("iocsrrd.w {v}, {a}", v = out(reg) v, a = in(reg) addr, options(nostack)) };
    v as u32
}

/// The stable counter (readable at PLV3 and in LVZ guests).
pub fn now() -> u64 {
    let t: u64;
    // SAFETY: rdtime.d reads the counter into a register; the id goes to a discarded one.
    unsafe { asm!("rdtime.d {0}, $zero", out(reg) t, options(nomem, nostack)) };
    t
}

extern "C" fn start(id: u64, flags: u64, starts: u64, shared: u64, shared_size: u64) -> ! {
    USE_HVCL.store(flags & 1 != 0, Ordering::Relaxed);
    crate::enter(BootArgs {
        id,
        flags,
        starts,
        shared,
        shared_size,
    })
}

/// Whether the guest runs under LVZ (boot flag bit 0): it is then a LoongArch kernel in guest
/// PLV0 with its own CSRs, timer and exception vector, and takes interrupts the hardware way.
pub fn under_lvz() -> bool {
    USE_HVCL.load(Ordering::Relaxed)
}

/// The stable counter's rate: 100 MHz on QEMU `virt` and the 3A5000 (CPUCFG4 x CPUCFG5).
pub const COUNTER_HZ: u64 = 100_000_000;

/// CPUCFG word `index` (under LVZ the hypervisor answers it, filtered).
pub fn cpucfg(index: u32) -> u32 {
    let value: usize;
    // SAFETY: cpucfg only reports configuration (under LVZ it exits to the hypervisor).
    unsafe {
        core::arch::asm!("cpucfg {0}, {1}", out(reg) value, in(reg) index as usize,
            options(nomem, nostack))
    };
    value as u32
}

/// Guest CSR numbers the LVZ interrupt path writes.
mod gcsr {
    pub const ECFG: u32 = 0x4;
    pub const EENTRY: u32 = 0xc;
    pub const TCFG: u32 = 0x41;
    pub const TICLR: u32 = 0x44;
}

/// ESTAT.IS / ECFG.LIE bits of the timer, the IPI line and HWI1 (the EIOINTC view's line).
pub const LINE_TIMER: u64 = 1 << 11;
pub const LINE_IPI: u64 = 1 << 12;
pub const LINE_DEVICE: u64 = 1 << 3;

// The guest's exception vector (LVZ only): EENTRY points here, ECFG.VS = 0 sends every
// exception and interrupt to it. It saves every register the Rust handler may change on the
// interrupted stack, calls `handler(ESTAT)`, restores them and returns with `ertn`.
global_asm!(
    ".section .text, \"ax\"",
    ".balign 4096",
    ".global septum_guest_exception",
    "septum_guest_exception:",
    "    addi.d  $sp, $sp, -256",
    "    st.d    $ra, $sp, 8",
    "    st.d    $a0, $sp, 32",
    "    st.d    $a1, $sp, 40",
    "    st.d    $a2, $sp, 48",
    "    st.d    $a3, $sp, 56",
    "    st.d    $a4, $sp, 64",
    "    st.d    $a5, $sp, 72",
    "    st.d    $a6, $sp, 80",
    "    st.d    $a7, $sp, 88",
    "    st.d    $t0, $sp, 96",
    "    st.d    $t1, $sp, 104",
    "    st.d    $t2, $sp, 112",
    "    st.d    $t3, $sp, 120",
    "    st.d    $t4, $sp, 128",
    "    st.d    $t5, $sp, 136",
    "    st.d    $t6, $sp, 144",
    "    st.d    $t7, $sp, 152",
    "    st.d    $t8, $sp, 160",
    "    st.d    $r21, $sp, 168",
    "    st.d    $fp, $sp, 176",
    "    csrrd   $a0, 0x5",
    "    bl      {handler}",
    "    ld.d    $ra, $sp, 8",
    "    ld.d    $a0, $sp, 32",
    "    ld.d    $a1, $sp, 40",
    "    ld.d    $a2, $sp, 48",
    "    ld.d    $a3, $sp, 56",
    "    ld.d    $a4, $sp, 64",
    "    ld.d    $a5, $sp, 72",
    "    ld.d    $a6, $sp, 80",
    "    ld.d    $a7, $sp, 88",
    "    ld.d    $t0, $sp, 96",
    "    ld.d    $t1, $sp, 104",
    "    ld.d    $t2, $sp, 112",
    "    ld.d    $t3, $sp, 120",
    "    ld.d    $t4, $sp, 128",
    "    ld.d    $t5, $sp, 136",
    "    ld.d    $t6, $sp, 144",
    "    ld.d    $t7, $sp, 152",
    "    ld.d    $t8, $sp, 160",
    "    ld.d    $r21, $sp, 168",
    "    ld.d    $fp, $sp, 176",
    "    addi.d  $sp, $sp, 256",
    "    ertn",
    handler = sym crate::smp::on_exception,
);

/// LVZ: points the guest's exception vector at [`septum_guest_exception`], unmasks the timer,
/// IPI and device lines (ECFG.LIE) and turns interrupts on (CRMD.IE).
pub fn interrupts_on() {
    extern "C" {
        fn septum_guest_exception();
    }
    let entry = septum_guest_exception as unsafe extern "C" fn() as usize as u64;
    // SAFETY: under LVZ these are the guest's own CSRs; the vector is ready before IE is set.
    unsafe {
        asm!("csrwr {0}, {1}", inout(reg) entry => _, const gcsr::EENTRY, options(nostack));
        asm!("csrwr {0}, {1}", inout(reg) LINE_TIMER | LINE_IPI | LINE_DEVICE => _, const gcsr::ECFG,
            options(nostack));
        // The mask is pinned to $t0: rj = 0 or 1 would make the word a csrrd or a csrwr.
        asm!("csrxchg $t1, $t0, 0x0", inout("$t1") 4u64 => _, in("$t0") 4u64, options(nostack));
    }
}

/// LVZ: the guest's own timer, periodic every `ticks` counter ticks (0 stops it).
pub fn guest_timer(ticks: u64) {
    let tcfg = if ticks == 0 {
        0
    } else {
        (ticks.max(4) & !3) | 0b11
    };
    // SAFETY: the guest's own TCFG (GCFG.TIT is clear: no trap); it only raises its own line.
    unsafe { asm!("csrwr {0}, {1}", inout(reg) tcfg => _, const gcsr::TCFG, options(nostack)) };
}

/// LVZ, in the exception handler: resumes after the instruction that raised the exception.
pub fn skip_faulting_instruction() {
    // SAFETY: the guest's own ERA; `ertn` then returns past the refused instruction.
    unsafe {
        asm!("csrrd $t0, 0x6", "addi.d $t0, $t0, 4", "csrwr $t0, 0x6", out("$t0") _,
            options(nostack))
    };
}

/// LVZ: `invtlb 0x16` (one GID's entry for one address) naming guest `gid`, from inside a guest:
/// the GID-scoped operations are the root's, so the CPU must refuse it.
pub fn invtlb_for_gid(gid: u64, gpa: u64) {
    // SAFETY: an attack the CPU refuses (a guest exception); were it executed it would only drop
    // TLB entries, which are refilled from the tables.
    unsafe { asm!("invtlb 0x16, {0}, {1}", in(reg) gid << 16, in(reg) gpa, options(nostack)) };
}

/// An IOCSR read of a chip-wide register no partition owns (MISC_FUNC, 0x420).
pub const FOREIGN_IOCSR: u64 = 0x420;

/// LVZ: acknowledges the guest timer's interrupt.
pub fn ack_timer() {
    // SAFETY: the guest's own TICLR; writing bit 0 clears its timer line.
    unsafe { asm!("csrwr {0}, {1}", inout(reg) 1u64 => _, const gcsr::TICLR, options(nostack)) };
}

/// Makes hypercall `nr` with `args`; returns a0.
pub fn hypercall(nr: u64, args: [u64; 6]) -> i64 {
    let mut a0 = args[0];
    if USE_HVCL.load(Ordering::Relaxed) {
        // SAFETY: `hvcl` traps to the hypervisor (LVZ), which reads a7/a0-a5 and writes a0.
        unsafe {
            asm!("hvcl 0", inout("$a0") a0, in("$a1") args[1], in("$a2") args[2],
                in("$a3") args[3], in("$a4") args[4], in("$a5") args[5], in("$a7") nr,
                options(nostack))
        };
    } else {
        // SAFETY: `syscall` traps to the hypervisor (deprivileged backend), same registers.
        unsafe {
            asm!("syscall 0", inout("$a0") a0, in("$a1") args[1], in("$a2") args[2],
                in("$a3") args[3], in("$a4") args[4], in("$a5") args[5], in("$a7") nr,
                options(nostack))
        };
    }
    a0 as i64
}

/// Executes an instruction only the hypervisor may use (a CSR read).
pub fn privileged_instruction() {
    // SAFETY: at PLV3 (or in an LVZ guest without that CSR) this traps; if it ever ran, it only
    // reads CRMD into a scratch register.
    unsafe { asm!("csrrd {0}, 0x0", out(reg) _, options(nomem, nostack)) };
}

/// Jumps to `addr` (never comes back when the address is unmapped).
pub fn jump(addr: u64) -> ! {
    // SAFETY: deliberately transfers control to `addr`; the hostile guest uses this to fault.
    unsafe { asm!("jirl $zero, {0}, 0", in(reg) addr, options(noreturn, nostack)) }
}

/// What [`irqchip_route_to_self`] returns for a line left masked and unrouted.
pub const IRQCHIP_MASKED: u64 = 1 << 16;

/// Programs device line `line` (< 32) of the interrupt controller to reach this partition's
/// vCPU 0 with `vector`, unmasked: its PCH-PIC route byte (bit 0: vCPU 0), its HTMSI vector
/// byte, then its MASK bit cleared with a read-modify-write of the mask word. Returns what the
/// line reads back afterwards: route byte | vector byte << 8 | mask bit << 16 (0x1_0000 is
/// "masked, unrouted").
pub fn irqchip_route_to_self(line: u32, vector: u8) -> u64 {
    let route = (IRQCHIP + 0x100 + u64::from(line)) as *mut u8;
    let htvec = (IRQCHIP + 0x200 + u64::from(line)) as *mut u8;
    let mask = (IRQCHIP + 0x20) as *mut u32;
    // SAFETY: the controller's window is a device the hypervisor emulates for every partition;
    // each access traps to it and touches no guest memory.
    unsafe {
        route.write_volatile(1);
        htvec.write_volatile(vector);
        mask.write_volatile(mask.read_volatile() & !(1 << line));
        u64::from(route.read_volatile())
            | u64::from(htvec.read_volatile()) << 8
            | u64::from((mask.read_volatile() >> line) & 1) << 16
    }
}

/// Spins a little: lets other CPUs make progress between polls.
pub fn relax() {
    for _ in 0..64 {
        core::hint::spin_loop();
    }
}

/// Masks interrupts where the guest can (an LVZ guest clears CRMD.IE; a PLV3 partition has no
/// way to) and spins forever without another exit: the guest that never gives its CPU back.
/// Only the hypervisor's own preemption source (its timer or IPI, which a guest cannot mask)
/// can take the CPU back.
pub fn spin_masked() -> ! {
    if USE_HVCL.load(Ordering::Relaxed) {
        // SAFETY: in an LVZ guest CRMD is the guest's own CSR; clearing IE (bit 2) masks only
        // its interrupts.
        unsafe { asm!("csrxchg $zero, {m}, 0x0", m = in(reg) 4u64, options(nomem, nostack)) };
    }
    // SAFETY: the loop touches nothing.
    unsafe { asm!("2: b 2b", options(noreturn, nomem, nostack)) }
}

/// The hostile guest's memory: guest-physical `[0, OWN_MEMORY)` (`qemu-virt-la64.toml`).
pub const OWN_MEMORY: u64 = 0x200_0000;
/// Addresses the hypercall fuzzer aims at: the hypervisor's image (its physical address, which
/// in this partition's guest-physical space is its own memory, and its cached DMW window), just
/// past its own memory, and the other test partitions' host memory (manager, worker, their
/// shared region), none of which a buffer argument may reach.
pub const FUZZ_TARGETS: [u64; 6] = [
    0x20_0000,
    0x9000_0000_0020_0000,
    OWN_MEMORY,
    0x400_0000,
    0x600_0000,
    0xa00_0000,
];
