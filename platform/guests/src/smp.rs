//! The guests' side of multi-vCPU partitions and virtual interrupts (`vcpu/README.md`): which vCPU
//! this is, starting another vCPU of the partition on a stack of its own, the partition-wide
//! upcall handler (each vCPU registers it with its own upcall stack), the timer and IPIs.
//! Secondary vCPUs enter through the runtime's `secondary_entry` (`rt`), which takes the stack
//! this module passes as the start argument and calls the function given to [`start`].

use crate::{call, nr, rt};
use core::sync::atomic::{AtomicUsize, Ordering};

/// The most vCPUs a test guest uses.
pub const MAX_VCPUS: usize = 4;
const STACK_SIZE: usize = 32 * 1024;

#[repr(C, align(16))]
struct Stacks([[u8; STACK_SIZE]; MAX_VCPUS]);

static mut MAIN_STACKS: Stacks = Stacks([[0; STACK_SIZE]; MAX_VCPUS]);
static mut UPCALL_STACKS: Stacks = Stacks([[0; STACK_SIZE]; MAX_VCPUS]);

/// The secondary vCPUs' main function, and the upcall handler (`fn(irq, detail)`).
static SECONDARY_MAIN: AtomicUsize = AtomicUsize::new(0);
static HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Upcall numbers (`vcpu::upcall`).
pub const IRQ_TIMER: u64 = 0;
pub const IRQ_IPI: u64 = 1;
/// LoongArch under LVZ: an EIOINTC vector (the detail) arrived on HWI1.
pub const IRQ_VECTOR: u64 = 2;
/// Device line n's upcall is `IRQ_DEVICE + n`.
pub const IRQ_DEVICE: u64 = 16;

fn stack_top(stacks: *mut Stacks, index: u64) -> u64 {
    // Only the address is taken; each vCPU uses its own slot.
    let base = stacks as u64;
    base + (index + 1) * STACK_SIZE as u64
}

/// This vCPU's index inside the partition.
pub fn vcpu_id() -> u64 {
    call(nr::VCPU_ID, 0, 0, 0) as u64
}

/// How many vCPUs the partition has.
pub fn vcpu_count() -> u64 {
    call(nr::VCPU_COUNT, 0, 0, 0).max(1) as u64
}

/// Where a secondary vCPU enters (the runtime's `septum_guest_secondary_entry`, which takes the
/// stack top in the first argument register and the index in the second).
pub fn secondary_entry_address() -> u64 {
    extern "C" {
        fn septum_guest_secondary_entry();
    }
    septum_guest_secondary_entry as unsafe extern "C" fn() as usize as u64
}

/// Records `main` for vCPU `index` and returns the top of its stack, or `None` if the guests
/// have no stack for it. Every way of starting a vCPU begins here.
fn prepare(index: u64, main: fn(u64) -> !) -> Option<u64> {
    if index as usize >= MAX_VCPUS {
        return None;
    }
    SECONDARY_MAIN.store(main as usize, Ordering::SeqCst);
    Some(stack_top(core::ptr::addr_of_mut!(MAIN_STACKS), index))
}

/// Starts vCPU `index` in `main(index)` on its own stack; returns the hypercall's result.
pub fn start(index: u64, main: fn(u64) -> !) -> i64 {
    let Some(stack) = prepare(index, main) else {
        return -2;
    };
    call(nr::VCPU_START, index, secondary_entry_address(), stack)
}

/// x86: starts vCPU `index` in `main(index)` the hardware way, with INIT and STARTUP IPIs
/// through its x2APIC (`crate::x2apic::start_by_startup`); it reaches `main` through the same
/// secondary entry as [`start`].
#[cfg(target_arch = "x86_64")]
pub fn start_by_startup(index: u64, main: fn(u64) -> !) -> i64 {
    let Some(stack) = prepare(index, main) else {
        return -2;
    };
    crate::x2apic::start_by_startup(index, stack);
    0
}

/// LoongArch: starts vCPU `index` in `main(index)` the way firmware-parked cores are started:
/// its stack in its mailbox 1, the secondary entry in mailbox 0 (through MAIL_SEND, high half
/// first), then an IPI (IPI_SEND); the hypervisor emulates the IOCSR block.
#[cfg(target_arch = "loongarch64")]
pub fn start_by_mailbox(index: u64, main: fn(u64) -> !) -> i64 {
    let Some(stack) = prepare(index, main) else {
        return -2;
    };
    mail(index, 1, stack);
    mail(index, 0, secondary_entry_address());
    rt::iocsr_write32(IPI_SEND, (1 << 31) | ((index as u32) << 16));
    0
}

#[cfg(target_arch = "loongarch64")]
const IPI_SEND: u64 = 0x1040;
#[cfg(target_arch = "loongarch64")]
const MAIL_SEND: u64 = 0x1048;

/// Stores `value` in mailbox `mailbox` of core `core` (two MAIL_SEND commands, high half first).
#[cfg(target_arch = "loongarch64")]
pub fn mail(core: u64, mailbox: u64, value: u64) {
    for (half, data) in [
        (mailbox * 2 + 1, value >> 32),
        (mailbox * 2, value & 0xffff_ffff),
    ] {
        rt::iocsr_write64(
            MAIL_SEND,
            (1 << 31) | (half << 2) | (core << 16) | (data << 32),
        );
    }
}

/// LoongArch: an IPI through IPI_SEND to core `core` (what a guest's IPI to another partition's
/// core would look like: the hypervisor refuses a core beyond the partition's vCPUs).
#[cfg(target_arch = "loongarch64")]
pub fn iocsr_ipi(core: u64) {
    rt::iocsr_write32(IPI_SEND, (1 << 31) | ((core as u32) << 16));
}

/// Called by the runtime's secondary entry, on the stack [`prepare`] chose.
pub extern "C" fn secondary(index: u64) -> ! {
    let f = SECONDARY_MAIN.load(Ordering::SeqCst);
    // SAFETY: only `prepare` stores this, always a `fn(u64) -> !`, before the vCPU can run.
    let main: fn(u64) -> ! = unsafe { core::mem::transmute::<usize, fn(u64) -> !>(f) };
    main(index)
}

extern "C" fn upcall_entry(irq: u64, detail: u64) -> ! {
    let f = HANDLER.load(Ordering::SeqCst);
    if f != 0 {
        // SAFETY: only `set_handler` stores this, always a `fn(u64, u64)`.
        let handler: fn(u64, u64) = unsafe { core::mem::transmute::<usize, fn(u64, u64)>(f) };
        handler(irq, detail);
    }
    call(nr::UPCALL_RETURN, 0, 0, 0);
    // The hypervisor resumes the interrupted code instead of returning here.
    loop {
        rt::relax();
    }
}

/// Whether interrupts come the hardware way (LoongArch under LVZ: the guest's own exception
/// vector, timer and IPI line) rather than as upcalls.
pub fn hardware_interrupts() -> bool {
    #[cfg(target_arch = "loongarch64")]
    return rt::under_lvz();
    #[cfg(not(target_arch = "loongarch64"))]
    false
}

/// LoongArch under LVZ: the guest's exception vector (`rt::septum_guest_exception`) calls this
/// with ESTAT. A timer tick is acknowledged (TICLR) and reported as [`IRQ_TIMER`]; the IPI line
/// is served like a kernel serves it: read IPI_STATUS, write the bits back to IPI_CLEAR (the
/// line drops), and report each bit as [`IRQ_IPI`] with the bit number, which the sender sets
/// to its own vCPU index, as the detail. HWI1 is the EIOINTC view's line: its ISR is read and
/// written back (the line drops), and each pending vector (0-31) is reported as [`IRQ_VECTOR`].
/// Any exception is fatal for a test guest.
#[cfg(target_arch = "loongarch64")]
pub extern "C" fn on_exception(estat: u64) {
    let f = HANDLER.load(Ordering::SeqCst);
    let ecode = (estat >> 16) & 0x3f;
    if ecode != 0 && TRAP_ARMED.swap(false, Ordering::SeqCst) {
        // An instruction expected to be refused: note why and go on after it.
        TRAPPED.store(ecode, Ordering::SeqCst);
        rt::skip_faulting_instruction();
        return;
    }
    if ecode != 0 || f == 0 {
        crate::println!("guest exception: ESTAT {estat:#x} with no handler for it");
        crate::power_off(1);
    }
    // SAFETY: only `set_handler` stores this, always a `fn(u64, u64)`.
    let handler: fn(u64, u64) = unsafe { core::mem::transmute::<usize, fn(u64, u64)>(f) };
    if estat & rt::LINE_TIMER != 0 {
        rt::ack_timer();
        handler(IRQ_TIMER, 0);
    }
    if estat & rt::LINE_IPI != 0 {
        let status = rt::iocsr_read32(IPI_STATUS);
        rt::iocsr_write32(IPI_CLEAR, status);
        for bit in 0..32 {
            if status & 1 << bit != 0 {
                handler(IRQ_IPI, bit);
            }
        }
    }
    if estat & rt::LINE_DEVICE != 0 {
        let pending = rt::iocsr_read32(EIOINTC_ISR);
        rt::iocsr_write32(EIOINTC_ISR, pending);
        for bit in 0..32 {
            if pending & 1 << bit != 0 {
                handler(IRQ_VECTOR, bit);
            }
        }
    }
}

/// LoongArch under LVZ: the next exception is expected (an attack the CPU should refuse); its
/// Ecode lands in [`TRAPPED`] and the guest continues after the instruction.
#[cfg(target_arch = "loongarch64")]
static TRAP_ARMED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
#[cfg(target_arch = "loongarch64")]
static TRAPPED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// LoongArch under LVZ: runs `f`, which should raise an exception in the guest; returns its
/// Ecode, or `None` if `f` ran without one.
#[cfg(target_arch = "loongarch64")]
pub fn expect_exception(f: impl FnOnce()) -> Option<u64> {
    TRAPPED.store(0, Ordering::SeqCst);
    TRAP_ARMED.store(true, Ordering::SeqCst);
    rt::interrupts_on();
    f();
    TRAP_ARMED.store(false, Ordering::SeqCst);
    match TRAPPED.load(Ordering::SeqCst) {
        0 => None,
        e => Some(e),
    }
}

#[cfg(target_arch = "loongarch64")]
const IPI_STATUS: u64 = 0x1000;
#[cfg(target_arch = "loongarch64")]
const IPI_ENABLE: u64 = 0x1004;
#[cfg(target_arch = "loongarch64")]
const IPI_CLEAR: u64 = 0x100c;
/// The EIOINTC view's ISR of the reading vCPU (vectors 0-31).
#[cfg(target_arch = "loongarch64")]
const EIOINTC_ISR: u64 = 0x1800;

/// Registers `handler` as this vCPU's interrupt handler: an upcall handler on this vCPU's upcall
/// stack, or under LVZ the guest's own exception vector with the IPI block enabled.
pub fn set_handler(handler: fn(u64, u64)) -> i64 {
    HANDLER.store(handler as usize, Ordering::SeqCst);
    #[cfg(target_arch = "loongarch64")]
    if rt::under_lvz() {
        rt::iocsr_write32(IPI_ENABLE, u32::MAX);
        rt::interrupts_on();
        return 0;
    }
    let index = vcpu_id().min(MAX_VCPUS as u64 - 1);
    let stack = stack_top(core::ptr::addr_of_mut!(UPCALL_STACKS), index);
    let entry = upcall_entry as extern "C" fn(u64, u64) -> ! as usize as u64;
    call(nr::UPCALL_SET, entry, stack, 0)
}

/// Arms this vCPU's timer every `ns` nanoseconds (0 stops it): `TIMER_SET`, or under LVZ the
/// guest's own timer.
pub fn timer_periodic(ns: u64) -> i64 {
    #[cfg(target_arch = "loongarch64")]
    if rt::under_lvz() {
        rt::guest_timer(ns * (rt::COUNTER_HZ / 1_000_000) / 1000);
        return 0;
    }
    call(nr::TIMER_SET, ns, 1, 0)
}

/// Sends an IPI to vCPU `index` of this partition: `SEND_IPI`, or under LVZ through the IOCSR
/// IPI block (IPI_SEND, the vector being the sender's index).
pub fn send_ipi(index: u64) -> i64 {
    #[cfg(target_arch = "loongarch64")]
    if rt::under_lvz() {
        let me = vcpu_id() & 0x1f;
        rt::iocsr_write32(IPI_SEND, (1 << 31) | ((index as u32) << 16) | me as u32);
        return 0;
    }
    call(nr::SEND_IPI, index, 0, 0)
}
