//! The test guests' common code: the runtime for the architecture being built (`rt/`), the
//! hypercall wrappers of Septum's guest ABI (`vcpu/README.md`), a console that prints through the
//! console-write hypercall, and the shared-memory protocol between the manager and the worker.
//! Each guest (`src/bin/*.rs`) defines `guest_main`; the runtime's entry code calls it through
//! [`enter`] with the boot registers the hypervisor set.
//!
//! Adding an architecture: write `rt/<arch>.rs` (entry, stack, hypercall instruction, the layout
//! constants) and `rt/<arch>.ld` (the load address of that arch's board files), then add it to
//! the `rt` selection below.
#![no_std]

use core::fmt;

#[cfg(target_arch = "x86_64")]
pub mod devirq;
#[cfg_attr(target_arch = "loongarch64", path = "rt/loongarch64.rs")]
#[cfg_attr(target_arch = "x86_64", path = "rt/x86_64.rs")]
pub mod rt;
#[cfg(target_arch = "loongarch64")]
pub mod rtc_irq;
pub mod smp;
#[cfg(target_arch = "x86_64")]
pub mod x2apic;

/// What the hypervisor tells a guest at entry (the boot registers, see `rt`).
#[derive(Clone, Copy, Debug)]
pub struct BootArgs {
    /// This partition's id (board-file order).
    pub id: u64,
    /// Flags (LoongArch bit 0: hypercalls use `hvcl`; bit 1: run the multi-vCPU scenario).
    pub flags: u64,
    /// How many times this partition was started before this run.
    pub starts: u64,
    /// Guest-physical address of the first shared region, 0 if none.
    pub shared: u64,
    /// Its size in bytes.
    pub shared_size: u64,
}

extern "Rust" {
    /// Each guest binary's main function.
    fn guest_main(args: BootArgs) -> !;
}

/// Called by the runtime's entry code on the guest's stack.
pub fn enter(args: BootArgs) -> ! {
    // SAFETY: every guest binary defines `guest_main` with exactly this signature.
    unsafe { guest_main(args) }
}

/// Runs in which the hostile guest attacks, one attack each (`bin/hostile.rs`): five on every
/// architecture, and on x86 also an I/O port and an MSR it was not given. The manager restarts
/// it until the last one has been stopped.
pub const HOSTILE_ATTACKS: u64 = if cfg!(target_arch = "x86_64") { 7 } else { 5 };

/// The boot flags that select an attack by volume (issue 13; the hypervisor sets them from
/// `hostile=storm|spin|fuzz` on its command line). The hostile guest attacks; the manager
/// measures.
pub mod volume {
    /// An interrupt and IPI storm; the manager times its worker without and with it.
    pub const STORM: u64 = 8;
    /// A vCPU spinning with interrupts masked; the manager stops and restarts it.
    pub const SPIN: u64 = 16;
    /// Hypercalls with random numbers and arguments.
    pub const FUZZ: u64 = 32;
    pub const ANY: u64 = STORM | SPIN | FUZZ;
    pub use vcpu::hypercall::TIMER_MIN_NS;
}

/// The mean cost of `calls` hypercalls that do nothing (`VERSION`), in counter ticks (the TSC on
/// x86, the stable counter on LoongArch): the reference other costs are compared with.
pub fn hypercall_round_trip(calls: u64) -> u64 {
    let start = rt::now();
    for _ in 0..calls {
        call(nr::VERSION, 0, 0, 0);
    }
    (rt::now() - start) / calls.max(1)
}

/// The manager's boot flags, bits 8-15: 1 + the id of a Linux partition to watch (0: none).
pub fn linux_to_watch(flags: u64) -> Option<u64> {
    ((flags >> 8) & 0xff).checked_sub(1)
}

/// Hypercall numbers (`vcpu/README.md`), from the ABI's definition.
pub use vcpu::hypercall::nr;

/// Partition states as `PARTITION_STATE` reports them.
pub mod state {
    pub const CREATED: i64 = 0;
    pub const RUNNING: i64 = 1;
    pub const STOPPED: i64 = 2;
    pub const FINISHED: i64 = 3;
}

/// A hypercall with up to three arguments.
pub fn call(nr: u64, a: u64, b: u64, c: u64) -> i64 {
    rt::hypercall(nr, [a, b, c, 0, 0, 0])
}

/// Ends this partition with `code` (0 = success).
pub fn power_off(code: u64) -> ! {
    call(nr::POWER_OFF, code, 0, 0);
    // The hypervisor never resumes a partition that powered off; spin if it somehow does.
    loop {
        rt::relax();
    }
}

/// Prints `bytes` on the hypervisor console (prefixed there with the partition's name).
pub fn console_write(bytes: &[u8]) -> i64 {
    // VA == GPA in every backend, so the buffer's address is its guest-physical address.
    call(
        nr::CONSOLE_WRITE,
        bytes.as_ptr() as u64,
        bytes.len() as u64,
        0,
    )
}

/// A line buffer flushed through the console hypercall (at most 256 bytes per call).
pub struct Console {
    buf: [u8; 256],
    len: usize,
}

impl Console {
    pub const fn new() -> Self {
        Self {
            buf: [0; 256],
            len: 0,
        }
    }

    pub fn flush(&mut self) {
        if self.len > 0 {
            console_write(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

/// Prints one line.
pub fn print_line(args: fmt::Arguments) {
    let mut c = Console::new();
    let _ = fmt::Write::write_fmt(&mut c, args);
    let _ = fmt::Write::write_str(&mut c, "\n");
    c.flush();
}

/// `println!` through the console hypercall.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::print_line(format_args!($($arg)*))
    };
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    print_line(format_args!("guest panic: {info}"));
    power_off(1)
}

/// Words the timed work runs over (64 KiB of the guest's own memory), and its passes.
const TIMED_WORDS: usize = 8192;
const TIMED_PASSES: u64 = 1024;

#[repr(C, align(4096))]
struct TimedBuf([u64; TIMED_WORDS]);
static mut TIMED_BUF: TimedBuf = TimedBuf([0; TIMED_WORDS]);

/// A fixed amount of work (loads, stores and multiplies over 64 KiB), timed with the
/// architecture's counter: the neighbour's run time the storm scenario compares. Returns the
/// median of three runs' ticks, so one descheduling of the emulator does not decide it.
pub fn timed_work() -> u64 {
    // SAFETY: only the worker's vCPU 0 calls this, one call at a time.
    let buf = unsafe { &mut (*core::ptr::addr_of_mut!(TIMED_BUF)).0 };
    let mut runs = [0u64; 3];
    let mut x = 0x5e97_0000_0000_0005u64;
    for t in &mut runs {
        let start = rt::now();
        for _ in 0..TIMED_PASSES {
            for w in buf.iter_mut() {
                x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(*w);
                *w = x;
            }
        }
        *t = rt::now().wrapping_sub(start);
    }
    core::hint::black_box(x);
    runs.sort_unstable();
    runs[1]
}

/// Volatile access to one u64 of guest memory.
pub fn read(addr: u64) -> u64 {
    // SAFETY: callers pass addresses of their own memory (or deliberately foreign ones, which
    // trap to the hypervisor before anything is read).
    unsafe { (addr as *const u64).read_volatile() }
}

/// Volatile store to one u64 of guest memory.
pub fn write(addr: u64, value: u64) {
    // SAFETY: as for `read`.
    unsafe { (addr as *mut u64).write_volatile(value) }
}

/// The manager/worker protocol on the first page of their shared region: word offsets.
pub mod shared {
    /// The worker writes its partition id + 1 here when it is ready.
    pub const READY: u64 = 0;
    /// The manager's command.
    pub const COMMAND: u64 = 8;
    /// The worker's acknowledgement: the last command it completed.
    pub const ACK: u64 = 16;

    /// Dirty phase: write [`DIRTY_PAGES`] workload pages.
    pub const CMD_DIRTY: u64 = 1;
    /// Aging phase: read [`AGE_PAGES`] workload pages.
    pub const CMD_AGE: u64 = 2;
    /// Print the results and power off.
    pub const CMD_FINISH: u64 = 3;
    /// Multi-vCPU dirty phase: every vCPU writes its own pages, over and over, recording the
    /// harvest epoch it saw before each write, until the manager sets [`SMP_STOP`].
    pub const CMD_DIRTY_SMP: u64 = 4;
    /// Timed phases of the storm scenario: run [`timed_work`](crate::timed_work) and write its
    /// counter ticks to [`TIMED_TICKS`]. Two numbers, since a command is only seen when it
    /// differs from the last one.
    pub const CMD_TIMED_QUIET: u64 = 5;
    pub const CMD_TIMED_STORM: u64 = 6;
    /// The worker's run time of its last timed phase, in its counter's ticks.
    pub const TIMED_TICKS: u64 = 56;

    /// The manager's harvest epoch: set to h before harvest h starts (after h - 1 returned).
    pub const EPOCH: u64 = 32;
    /// The manager sets this to 1 to end the multi-vCPU dirty phase.
    pub const SMP_STOP: u64 = 40;
    /// How many vCPUs wrote in the multi-vCPU dirty phase.
    pub const SMP_WRITERS: u64 = 48;
    /// Byte offset of the per-page records of the multi-vCPU dirty phase: vCPU v's page i at
    /// `SMP_RECORDS + (v * SMP_PAGES + i) * 8` holds 1 + the epoch it read before its last write
    /// to that page (0: never written).
    pub const SMP_RECORDS: u64 = 0x1000;
    /// Pages each vCPU writes in that phase, and the first workload page of vCPU v's set.
    pub const SMP_PAGES: u64 = 48;
    pub const fn smp_first_page(v: u64) -> u64 {
        100 + v * 100
    }

    /// Workload pages the worker fills at start; the dirty and aging checks count this window
    /// only (on x86 the shared flag page follows the workload in bitmap order, and the guest's
    /// page tables count as written at every page walk).
    pub const WORKLOAD_PAGES: u64 = 64;
    /// Workload pages the worker writes in the dirty phase.
    pub const DIRTY_PAGES: u64 = 37;
    /// Workload pages the worker reads in the aging phase.
    pub const AGE_PAGES: u64 = 40;
    /// Pages besides the workload that may be young after the aging phase: the code being run,
    /// the stack, the shared flag page (each may straddle two pages).
    pub const AGE_SLACK: u64 = 8;
}

/// Waits until `f` holds, polling at most `polls` times; returns whether it held. Inlined, so a
/// poll loop makes no calls: on x86 a call writes the stack, which dirty logging would see.
#[inline(always)]
pub fn wait_until(polls: u64, mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..polls {
        if f() {
            return true;
        }
        rt::relax();
    }
    f()
}
