//! A machine for host tests: [`MockArch`] implements the whole seam over one recorded [`World`]
//! (console lines, physical routes, kicks, timers, the exits each vCPU's guest makes, what the
//! engine answered). Host memory is the test process's heap, reached at its own address. Each
//! test thread is one CPU ([`on_cpu`]). Tests share the world, so each holds [`Machine`] (the
//! world's lock against other tests) for its whole run.

use crate::arch::{DeviceRoute, GuestBoot, MachineServices, PartitionArch, VirtualUartAt};
use crate::{Partition, PartitionId};
use mmu::{Flush, FrameAllocator, HeapFrameAllocator, Hpa};

/// The stage-2 format of the architecture under test.
#[cfg(feature = "x86")]
pub type Format = mmu::Ept;
#[cfg(feature = "loongarch")]
pub type Format = arch_loongarch::stage2::GpaTable16K;
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use vcpu::{ArchVcpu, Completion, Delivery, VmExit};

/// The mock counter's rate: one tick per nanosecond.
pub const HZ: u64 = 1_000_000_000;

/// What the engine did to the machine, and the guests' scripts.
#[derive(Default)]
pub struct World {
    pub console: Vec<String>,
    /// `route_device_line` calls, in order.
    pub routes: Vec<(u32, Option<DeviceRoute>)>,
    /// `end_device_line` calls (x86: only its guests end lines by an EOI the hypervisor sees).
    #[cfg(feature = "x86")]
    pub ended_lines: Vec<u32>,
    pub kicks: Vec<usize>,
    pub flush_ipis: Vec<usize>,
    /// Local flushes: the CPU, the partition and its table root, what.
    pub local_flushes: Vec<(usize, PartitionId, Hpa, Flush)>,
    /// Each vCPU start: partition, and how.
    pub boots: Vec<(PartitionId, GuestBoot)>,
    /// What each run of a vCPU (partition, vCPU index) does, one list per run, in order.
    pub scripts: HashMap<(PartitionId, u32), VecDeque<Vec<Step>>>,
    /// What the engine answered each exit, per (partition, vCPU).
    pub completions: Vec<(PartitionId, u32, Completion)>,
    pub upcalls: Vec<(PartitionId, u32, Delivery)>,
    /// The lines `device_lines` reports behind each vector (default: the vector's own line).
    pub vector_lines: HashMap<u32, u64>,
    pub input: VecDeque<u8>,
}

static WORLD: Mutex<Option<World>> = Mutex::new(None);
static SERIAL: Mutex<()> = Mutex::new(());
static NOW: AtomicU64 = AtomicU64::new(1);
/// A flush IPI sent to each CPU and not yet taken by its spinning guest.
static FLUSH_IPI: [AtomicBool; board_config::MAX_CPUS] =
    [const { AtomicBool::new(false) }; board_config::MAX_CPUS];

thread_local! {
    static CPU: Cell<usize> = const { Cell::new(0) };
}

/// The world of the running test, exclusively.
pub struct Machine {
    _serial: MutexGuard<'static, ()>,
}

impl Machine {
    /// A fresh world; held until the test ends.
    pub fn new() -> Self {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        *lock() = Some(World::default());
        for f in &FLUSH_IPI {
            f.store(false, Ordering::SeqCst);
        }
        on_cpu(0);
        Self { _serial: serial }
    }

    /// Reads or changes the world.
    pub fn with<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        with(f)
    }

    /// Queues one run of `vcpu` of partition `id`: what its guest does, in order.
    pub fn script(&self, id: PartitionId, vcpu: u32, steps: Vec<Step>) {
        with(|w| w.scripts.entry((id, vcpu)).or_default().push_back(steps));
    }

    /// The console lines containing `text`.
    pub fn said(&self, text: &str) -> Vec<String> {
        with(|w| {
            w.console
                .iter()
                .filter(|l| l.contains(text))
                .cloned()
                .collect()
        })
    }

    /// The values the engine completed vCPU `vcpu` of `id`'s exits with, in order (hypercall
    /// results among them).
    pub fn values(&self, id: PartitionId, vcpu: u32) -> Vec<u64> {
        with(|w| {
            w.completions
                .iter()
                .filter(|c| c.0 == id && c.1 == vcpu)
                .filter_map(|c| match c.2 {
                    Completion::Value(v) => Some(v),
                    _ => None,
                })
                .collect()
        })
    }
}

fn lock() -> MutexGuard<'static, Option<World>> {
    WORLD.lock().unwrap_or_else(|e| e.into_inner())
}

fn with<R>(f: impl FnOnce(&mut World) -> R) -> R {
    f(lock().as_mut().expect("a test holds a Machine"))
}

/// Makes the calling thread CPU `cpu`.
pub fn on_cpu(cpu: usize) {
    CPU.with(|c| c.set(cpu));
}

/// One thing a scripted guest does.
pub enum Step {
    /// Exits once.
    Exit(VmExit),
    /// Runs this on its CPU between two exits (as the guest's own work would take time), e.g.
    /// waits for another CPU or touches its memory.
    Act(Box<dyn FnOnce() + Send>),
    /// Runs without exiting until its CPU is kicked or sent a flush IPI, then exits as the
    /// IPI makes it (an external interrupt), and again, until the run ends. A guest spinning
    /// with nothing to exit for: only the hypervisor's IPIs bring it out.
    Spin,
}

/// How long a spinning guest waits for an IPI before the test fails.
const SPIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A hypercall exit.
pub fn call(nr: u64, args: &[u64]) -> Step {
    let mut a = [0; 6];
    a[..args.len()].copy_from_slice(args);
    Step::Exit(VmExit::Hypercall {
        code: 0,
        nr,
        args: a,
    })
}

/// Waits, on a CPU's thread, until `done` holds; fails the test after [`SPIN_LIMIT`].
pub fn wait_for(what: &str, done: impl Fn() -> bool) {
    let since = std::time::Instant::now();
    while !done() {
        assert!(since.elapsed() < SPIN_LIMIT, "waited too long for {what}");
        std::thread::yield_now();
    }
}

/// A step that waits until vCPU `vcpu` of `p` runs its guest.
pub fn once_running(p: &'static Partition<MockArch>, vcpu: usize) -> Step {
    Step::Act(Box::new(move || {
        wait_for("a vCPU to run", || {
            p.vcpus[vcpu].state() == vcpu::slot::VcpuState::Running
        })
    }))
}

/// Runs CPU 0's share of `all` on the calling thread and CPU 1's on a thread of its own, which
/// keeps waiting for starts until CPU 0's share is done; returns when both are.
pub fn run_two_cpus(all: &'static crate::Partitions<MockArch>) {
    let done: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    let cpu1 = std::thread::spawn(move || {
        on_cpu(1);
        all.run_cpu(1, || !done.load(Ordering::SeqCst));
    });
    all.run_cpu(0, || false);
    done.store(true, Ordering::SeqCst);
    cpu1.join().expect("CPU 1's thread");
}

/// The guest's side of one vCPU: its script, then a power-off with code 99 (the script ran out).
pub struct MockVcpu {
    id: PartitionId,
    index: u32,
    /// Its CPU's kick flag, which every kick sets.
    kick: &'static AtomicBool,
    steps: VecDeque<Step>,
}

impl ArchVcpu for MockVcpu {
    fn run(&mut self) -> VmExit {
        loop {
            match self.steps.pop_front() {
                Some(Step::Exit(e)) => return e,
                Some(Step::Act(f)) => f(),
                Some(Step::Spin) => {
                    self.steps.push_front(Step::Spin);
                    let since = std::time::Instant::now();
                    let cpu = MockArch::cpu_index();
                    while !self.kick.load(Ordering::SeqCst)
                        && !FLUSH_IPI[cpu].swap(false, Ordering::SeqCst)
                    {
                        assert!(since.elapsed() < SPIN_LIMIT, "cpu{cpu}: no IPI came");
                        std::thread::yield_now();
                    }
                    return VmExit::ExternalInterrupt { vector: 0xfe };
                }
                None => {
                    return VmExit::Hypercall {
                        code: 0,
                        nr: vcpu::hypercall::nr::POWER_OFF,
                        args: [99, 0, 0, 0, 0, 0],
                    }
                }
            }
        }
    }

    fn complete(&mut self, completion: Completion) {
        if completion != Completion::Retry {
            with(|w| w.completions.push((self.id, self.index, completion)));
        }
    }

    fn deliver_upcall(&mut self, delivery: Delivery) -> bool {
        with(|w| w.upcalls.push((self.id, self.index, delivery)));
        true
    }

    fn return_from_upcall(&mut self) {}

    fn inject_interrupt(&mut self, _vector: u8) -> bool {
        true
    }

    fn set_irq_lines(&mut self, _lines: u32) {}
}

/// Table pages from the test process's heap.
#[derive(Clone, Copy)]
pub struct MockFrames(&'static HeapFrameAllocator);

impl Default for MockFrames {
    fn default() -> Self {
        Self(Box::leak(Box::default()))
    }
}

// SAFETY: every call goes to the heap allocator, which keeps the trait's promises.
unsafe impl FrameAllocator for MockFrames {
    fn alloc_table(&self, size: usize) -> Option<Hpa> {
        self.0.alloc_table(size)
    }

    unsafe fn free_table(&self, pa: Hpa, size: usize) {
        // SAFETY: the caller's promise, passed on.
        unsafe { self.0.free_table(pa, size) }
    }

    fn phys_to_virt(&self, pa: Hpa) -> *mut u8 {
        self.0.phys_to_virt(pa)
    }
}

/// The machine of the host tests.
pub struct MockArch;

impl PartitionArch for MockArch {
    type Format = Format;
    type Frames = MockFrames;
    type Vcpu = MockVcpu;
    #[cfg(feature = "x86")]
    const VIRTUAL_UART: VirtualUartAt = VirtualUartAt::Port(0x3f8);
    #[cfg(feature = "x86")]
    const VIRTUAL_UART_LINE: Option<u32> = Some(4);
    #[cfg(feature = "loongarch")]
    const VIRTUAL_UART: VirtualUartAt = VirtualUartAt::Mmio(arch_loongarch::linux::UART);
    #[cfg(feature = "loongarch")]
    const VIRTUAL_UART_LINE: Option<u32> = Some(arch_loongarch::linux::UART_LINE);

    fn stage2_format() -> Format {
        Format::default()
    }

    fn backend() -> &'static str {
        "mock"
    }

    fn prepare_cpu() {}

    fn create_vcpu(
        partition: &'static Partition<Self>,
        boot: GuestBoot,
        kick: &'static AtomicBool,
    ) -> MockVcpu {
        let (id, index) = (partition.id, boot.vcpu);
        let steps = with(|w| {
            w.boots.push((id, boot));
            w.scripts
                .get_mut(&(id, index))
                .and_then(VecDeque::pop_front)
                .unwrap_or_default()
        });
        MockVcpu {
            id,
            index,
            kick,
            steps: steps.into(),
        }
    }

    fn flush_local(id: PartitionId, root: Hpa, what: Flush) {
        with(|w| {
            w.local_flushes
                .push((MockArch::cpu_index(), id, root, what))
        });
    }

    fn kick(cpu: usize) {
        with(|w| w.kicks.push(cpu));
    }

    fn send_flush_ipi(cpu: usize) {
        FLUSH_IPI[cpu].store(true, Ordering::SeqCst);
        with(|w| w.flush_ipis.push(cpu));
    }

    fn now() -> u64 {
        NOW.fetch_add(1000, Ordering::SeqCst)
    }

    fn counter_hz() -> u64 {
        HZ
    }

    fn arm_timer(_deadline: Option<u64>) {}

    fn idle(_deadline: Option<u64>, _kick: &AtomicBool, _taken: &mut dyn FnMut(u32)) {
        std::thread::yield_now();
    }

    fn wait(kick: &AtomicBool) {
        kick.store(false, Ordering::SeqCst);
        std::thread::yield_now();
    }

    fn available() -> bool {
        true
    }

    fn cpuid(leaf: u32, _subleaf: u32) -> [u32; 4] {
        [leaf, 0, 0, 0]
    }

    fn route_device_line(line: u32, to: Option<DeviceRoute>) {
        with(|w| w.routes.push((line, to)));
    }

    fn device_lines(vector: u32) -> u64 {
        let own = 1u64.checked_shl(vector).unwrap_or(0);
        with(|w| w.vector_lines.get(&vector).copied().unwrap_or(own))
    }

    #[cfg(feature = "x86")]
    fn end_device_line(line: u32) {
        with(|w| w.ended_lines.push(line));
    }

    /// A CPU whose identity words all read as their own address.
    #[cfg(feature = "loongarch")]
    fn iocsr_read64(addr: u64) -> u64 {
        addr
    }
}

impl MachineServices for MockArch {
    fn cpu_index() -> usize {
        CPU.with(Cell::get)
    }

    fn phys_to_virt(pa: u64) -> *mut u8 {
        pa as *mut u8
    }

    fn print_line(line: core::fmt::Arguments) {
        let text = line.to_string();
        with(|w| w.console.push(text));
    }

    fn write_console(bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes).into_owned();
        with(|w| w.console.push(text));
    }

    fn take_console_input(buf: &mut [u8]) -> usize {
        with(|w| {
            let n = buf.len().min(w.input.len());
            for (b, i) in buf.iter_mut().zip(w.input.drain(..n)) {
                *b = i;
            }
            n
        })
    }
}
