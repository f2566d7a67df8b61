//! Running a partition's vCPUs. Every CPU the board file gives a partition joins it: the CPU of
//! vCPU 0 loads the image and runs vCPU 0 (again each time the manager restarts the partition);
//! the CPU of every other vCPU waits, in the hypervisor, until vCPU 0 starts it with
//! `VCPU_START`, then runs it from the entry and argument it was given. A run ends for the whole
//! partition when any of its vCPUs ends (power-off, a violation, the manager's stop): the first
//! vCPU to end records why and stops the others, and vCPU 0's CPU sets the partition's state once
//! every vCPU is out of its guest.

use crate::arch::{BootAbi, GuestBoot, PartitionArch};
use crate::{guest_mem, handler, Partition, Partitions, RunEnv, State};
use core::sync::atomic::Ordering;
use vcpu::slot::VcpuState;
use vcpu::{ExitCounters, StopReason};

/// Polls vCPU 0's CPU waits for the others to leave their guests at the end of a run.
const END_POLLS: u64 = 500_000_000;

/// The command-line words that select a volume attack, and the boot flag each sets.
const VOLUME_SCENARIOS: [(&str, u64); 3] = [
    ("hostile=storm", 8),
    ("hostile=spin", 16),
    ("hostile=fuzz", 32),
];

/// Copies each blob a Linux boot was laid out into (kernel, initrd, zero page, command line, GDT,
/// ACPI tables) to its guest-physical address. The build checked that each lies in the
/// partition's RAM; the copy still goes through the checked translation.
fn load_linux<A: PartitionArch>(
    env: &RunEnv,
    p: &Partition<A>,
    linux: &board_config::LinuxBoot,
) -> Result<(), &'static str> {
    for blob in linux.blobs {
        let dst = guest_mem::host_slice(p, blob.gpa, blob.bytes.len() as u64, false)
            .ok_or("a Linux boot blob does not fit in the partition's memory")?;
        dst.copy_from_slice(blob.bytes);
    }
    add_runtime_args(env, p, linux);
    Ok(())
}

/// Appends what only the running hypervisor knows to the kernel's command line
/// (`vcpu::cmdline`): the architecture's words ([`arch_words`]), the boot count, and the
/// hypervisor command line's `linux:WORD` words as `WORD` (how a boot test tells the test
/// `/init` to power off instead of starting a shell).
fn add_runtime_args<A: PartitionArch>(
    env: &RunEnv,
    p: &Partition<A>,
    linux: &board_config::LinuxBoot,
) {
    let Some((line, limit)) = cmdline_space(p, linux) else {
        return;
    };
    // Which boot of this partition this is (0 first; a reboot counts), for a guest that acts
    // once per power-on.
    let run = alloc::format!("septum.run={}", p.starts.load(Ordering::SeqCst) - 1);
    let forwarded = env.words().filter_map(|w| w.strip_prefix("linux:"));
    let arch = arch_words(A::counter_hz());
    let args = arch
        .iter()
        .map(|a| a.as_bytes())
        .chain([run.as_bytes()])
        .chain(forwarded.map(str::as_bytes));
    for arg in args {
        let text = core::str::from_utf8(arg).unwrap_or("?");
        match vcpu::cmdline::append(line, arg, limit) {
            Ok(_) => say!(A, "partition {}: command line += {text}", p.name()),
            Err(e) => say!(
                A,
                "partition {}: {text} not added to the command line: {e:?}",
                p.name()
            ),
        }
    }
}

/// x86: the command line the zero page points at, to the end of its page (the build's layout
/// gives it a page of its own), and the kernel's limit.
#[cfg(feature = "x86")]
fn cmdline_space<'a, A: PartitionArch>(
    p: &'a Partition<A>,
    linux: &board_config::LinuxBoot,
) -> Option<(&'a mut [u8], usize)> {
    use arch_x86::linux_args::{CMDLINE_SIZE, CMD_LINE_PTR};
    let zp = guest_mem::host_slice(p, linux.zero_page, 0x1000, true)?;
    let word = |at: usize| u32::from_le_bytes(zp[at..at + 4].try_into().unwrap());
    let (ptr, limit) = (u64::from(word(CMD_LINE_PTR)), word(CMDLINE_SIZE) as usize);
    let space = 0x1000 - (ptr & 0xfff);
    Some((guest_mem::host_slice(p, ptr, space, true)?, limit))
}

/// LoongArch: the command line the build placed, with the capacity it set aside.
#[cfg(feature = "loongarch")]
fn cmdline_space<'a, A: PartitionArch>(
    p: &'a Partition<A>,
    linux: &board_config::LinuxBoot,
) -> Option<(&'a mut [u8], usize)> {
    let capacity = linux.cmdline_capacity as usize;
    let line = guest_mem::host_slice(p, linux.cmdline, capacity as u64, true)?;
    Some((line, capacity - 1))
}

/// x86: the TSC rate, which Linux cannot calibrate in a partition (`arch_x86::linux_args`),
/// and how the platform resets: Linux on a hardware-reduced ACPI platform without EFI would
/// reset through the BIOS (its EFI choice falls through to a real-mode jump to the reset
/// vector, which a partition does not have), so say so.
#[cfg(feature = "x86")]
fn arch_words(counter_hz: u64) -> alloc::vec::Vec<alloc::string::String> {
    use arch_x86::linux_args::tsc_early_khz;
    let khz = counter_hz / 1000;
    let mut words = alloc::vec::Vec::new();
    if khz != 0 {
        let arg = tsc_early_khz(khz);
        words.push(alloc::string::String::from(
            core::str::from_utf8(arg.as_bytes()).unwrap_or(""),
        ));
    }
    words.push("reboot=acpi".into());
    words
}

/// LoongArch: nothing; the counter's rate is in `cpucfg`, and the device tree names the reset
/// register.
#[cfg(feature = "loongarch")]
fn arch_words(_counter_hz: u64) -> alloc::vec::Vec<alloc::string::String> {
    alloc::vec::Vec::new()
}

/// Copies the partition's image to its memory at the load address.
fn load_image<A: PartitionArch>(env: &RunEnv, p: &Partition<A>) -> Result<(), &'static str> {
    let bytes: &[u8] = match p.config.image {
        board_config::Image::Linux(ref linux) => return load_linux(env, p, linux),
        board_config::Image::File { bytes, .. } => bytes,
        board_config::Image::Guest(g) => env.guests.get(g),
    };
    if bytes.is_empty() {
        return Err("the image is empty (test guests not built in)");
    }
    let dst = guest_mem::host_slice(p, p.config.load, bytes.len() as u64, false)
        .ok_or("the image does not fit in the memory at its load address")?;
    dst.copy_from_slice(bytes);
    Ok(())
}

/// The boot arguments of vCPU 0 (see [`GuestBoot::args`]). The shared region passed is the one
/// shared with the manager (for the manager, its first shared region): that is the region the
/// management scenario talks over; other links are the partitions' own business.
fn boot_args<A: PartitionArch>(all: &Partitions<A>, p: &Partition<A>, starts: u64) -> GuestBoot {
    let manager = all.board.manager().map(|m| m.name);
    let shared = p
        .config
        .memory
        .iter()
        .find(|r| match r.shared_with {
            Some(other) => p.config.manager || Some(other) == manager,
            None => false,
        })
        .map_or((0, 0), |r| (r.guest, r.size));
    // Flag bit 1: the boot test asked the test guests for their multi-vCPU scenario; bit 2
    // (`smp-test=2`): x86 guests start their second vCPU with INIT and STARTUP IPIs.
    let mut flags = if all.env.has("smp-test=1") {
        2
    } else if all.env.has("smp-test=2") {
        2 | 4
    } else {
        0
    };
    // Bits 3-5: the volume attacks of issue 13 (`hostile=storm|spin|fuzz`), read by the hostile
    // guest and by the manager that measures them.
    for (word, bit) in VOLUME_SCENARIOS {
        if all.env.has(word) {
            flags |= bit;
        }
    }
    // Bits 8-15 (the manager only): 1 + the id of the board's Linux partition, which the
    // manager watches with dirty logging and aging while it runs.
    if p.config.manager {
        let linux = all
            .board
            .partitions
            .iter()
            .position(|q| matches!(q.image, board_config::Image::Linux(_)));
        if let Some(id) = linux {
            flags |= ((id as u64 + 1) & 0xff) << 8;
        }
    }
    if let board_config::Image::Linux(linux) = p.config.image {
        // The kernel's boot protocol (x86: RSI holds the zero page; LoongArch: a0-a2 are the
        // EFI flag, the command line and the system table); every other register is its own.
        let [a, b, c] = linux.args;
        return GuestBoot {
            entry: linux.entry,
            args: [a, b, c, 0, 0],
            vcpu: 0,
            real_mode: false,
            abi: BootAbi::Exact,
        };
    }
    GuestBoot {
        entry: p.config.entry,
        args: [u64::from(p.id), flags, starts, shared.0, shared.1],
        vcpu: 0,
        real_mode: false,
        abi: BootAbi::TestGuest,
    }
}

/// Prints how a run ended and records it; the first vCPU to end a run does this, once.
fn end_run<A: PartitionArch>(p: &Partition<A>, vcpu: u32, why: StopReason) {
    if p.run_ended.swap(true, Ordering::SeqCst) {
        return;
    }
    *p.last_end.lock() = Some(why);
    let name = p.name();
    let by = if p.vcpus.len() > 1 {
        alloc::format!(" (vCPU {vcpu})")
    } else {
        alloc::string::String::new()
    };
    match why {
        StopReason::PowerOff { code } => {
            say!(A, "partition {name} finished (code {code}){by}")
        }
        StopReason::Stopped => say!(A, "partition {name} stopped: by the manager"),
        StopReason::Reset => say!(A, "partition {name} stopped: reset requested{by}"),
        StopReason::TripleFault => say!(A, "partition {name} stopped: triple fault{by}"),
        StopReason::Violation { what, addr } => {
            say!(A, "partition {name} stopped: {what} {addr:#x}{by}")
        }
        StopReason::InvalidState { raw } => {
            say!(
                A,
                "partition {name} stopped: invalid guest state {raw:#x}{by}"
            )
        }
        // Never ends a run (`run_vcpu`).
        StopReason::Init => {}
    }
    p.request_stop();
}

/// Runs vCPU `index` of `p` on the calling CPU until it stops; returns why.
fn run_vcpu<A: PartitionArch>(
    all: &'static Partitions<A>,
    p: &'static Partition<A>,
    cpu: usize,
    boot: GuestBoot,
    run: u64,
) -> StopReason {
    let index = boot.vcpu;
    p.begin_run_on(cpu);
    say!(
        A,
        "partition {}: vCPU {index} starts on cpu{cpu} at {:#x} (run {run})",
        p.name(),
        boot.entry
    );
    let mut vcpu = A::create_vcpu(p, boot, p.kick_flag(cpu));
    let mut handler = handler::Handler::new(all, p, cpu, index);
    let mut counters = ExitCounters::default();
    let why = vcpu::run_until_stopped(&mut vcpu, &mut handler, &mut counters);
    handler.stop();
    p.end_run_on(cpu);
    if why == StopReason::Init {
        // Reset, not ended: the vCPU waits for a STARTUP again (or takes one that came meanwhile)
        // and the partition runs on.
        p.vcpus[index as usize].finish_init();
        say!(
            A,
            "partition {}: vCPU {index} reset by INIT, waits for STARTUP",
            p.name()
        );
        return why;
    }
    p.vcpus[index as usize].set_state(VcpuState::Ended);
    end_run(p, index, why);
    why
}

/// One run of partition `p` from a fresh copy of its image, driven from vCPU 0's CPU.
fn run_partition<A: PartitionArch>(
    all: &'static Partitions<A>,
    p: &'static Partition<A>,
    cpu: usize,
) {
    let starts = p.starts.fetch_add(1, Ordering::SeqCst);
    p.stop_requested.store(false, Ordering::SeqCst);
    p.run_ended.store(false, Ordering::SeqCst);
    *p.last_end.lock() = None;
    for v in &p.vcpus {
        v.reset_for_run();
    }
    p.set_state(State::Running);
    if let Err(e) = load_image(&all.env, p) {
        log::error!("partition {}: {e}", p.name());
        *p.last_end.lock() = Some(StopReason::Violation {
            what: "image could not be loaded",
            addr: p.config.load,
        });
        p.set_state(State::Stopped);
        return;
    }
    p.vcpus[0].set_state(VcpuState::Running);
    run_vcpu(all, p, cpu, boot_args(all, p, starts), starts);
    // The other vCPUs were asked to stop; a start nobody picked up is cancelled.
    let mut left = END_POLLS;
    loop {
        let mut busy = false;
        for v in &p.vcpus[1..] {
            match v.state() {
                VcpuState::Running => busy = true,
                VcpuState::Starting => v.set_state(VcpuState::Ended),
                _ => {}
            }
        }
        if !busy {
            break;
        }
        left -= 1;
        if left == 0 {
            log::warn!("partition {}: a vCPU did not stop", p.name());
            break;
        }
        core::hint::spin_loop();
    }
    super::device_irq::end_run(p);
    report_stop_time(p);
    let state = match p.last_end() {
        Some(StopReason::PowerOff { .. }) => State::Finished,
        // The guest reset its machine: the partition boots again at once, as a board would,
        // up to MAX_REBOOTS times in a row; the state never shows it stopped in between, so
        // the manager does not start it a second time.
        Some(StopReason::Reset) if p.reboots.load(Ordering::SeqCst) < MAX_REBOOTS => {
            let n = p.reboots.fetch_add(1, Ordering::SeqCst) + 1;
            say!(A, "partition {}: reboot {n}", p.name());
            p.start_requested.store(true, Ordering::SeqCst);
            State::Running
        }
        _ => State::Stopped,
    };
    p.set_state(state);
}

/// Resets a partition may ask for in a row before it stays stopped (a guest that resets at once
/// on every boot would otherwise keep its CPUs forever).
const MAX_REBOOTS: u64 = 16;

/// If the manager stopped this run, says how long it took from its `PARTITION_STOP` to the
/// moment every vCPU was out of its guest (whatever the guest was doing: a vCPU spinning with
/// its interrupts masked is made to exit by the kick, a host interrupt it cannot mask).
fn report_stop_time<A: PartitionArch>(p: &Partition<A>) {
    let asked = p.stop_asked_at.swap(0, Ordering::SeqCst);
    if asked == 0 || p.last_end() != Some(StopReason::Stopped) {
        return;
    }
    let hz = A::counter_hz();
    if hz == 0 {
        return;
    }
    let ticks = A::now().wrapping_sub(asked);
    let us = u128::from(ticks) * 1_000_000 / u128::from(hz);
    say!(
        A,
        "partition {}: stopped {us} us after the manager asked (every vCPU out of its guest)",
        p.name()
    );
}

/// A secondary vCPU's run, from the start request vCPU 0 posted.
fn run_secondary<A: PartitionArch>(
    all: &'static Partitions<A>,
    p: &'static Partition<A>,
    cpu: usize,
    index: u32,
    entry: u64,
    arg: u64,
    real_mode: bool,
) {
    if p.stop_requested.load(Ordering::SeqCst) || p.state() != State::Running {
        p.vcpus[index as usize].set_state(VcpuState::Ended);
        return;
    }
    let boot = GuestBoot {
        entry,
        args: [arg, u64::from(index), 0, 0, 0],
        vcpu: index,
        real_mode,
        abi: BootAbi::TestGuest,
    };
    run_vcpu(all, p, cpu, boot, p.starts.load(Ordering::SeqCst) - 1);
}

/// What a CPU does with its partition: vCPU 0's CPU runs the partition, and again each time the
/// manager starts it, while `keep_going` holds; every other vCPU's CPU runs its vCPU each time
/// vCPU 0 starts it.
impl<A: PartitionArch> Partitions<A> {
    pub fn run_cpu(&'static self, cpu: usize, keep_going: impl Fn() -> bool) {
        let all = self;
        let Some((p, vcpu)) = self.of_cpu(cpu) else {
            say!(A, "smp: cpu{cpu} has no partition, idle");
            return;
        };
        say!(
            A,
            "smp: cpu{cpu} joins partition {} as vCPU {vcpu}",
            p.name()
        );
        A::prepare_cpu();
        p.vcpus[vcpu].set_joined();
        if vcpu == 0 {
            run_partition(all, p, cpu);
        }
        while keep_going() {
            if vcpu == 0 {
                if p.start_requested.swap(false, Ordering::SeqCst) {
                    run_partition(all, p, cpu);
                }
            } else if let Some((entry, arg, real_mode)) = p.vcpus[vcpu].take_start() {
                run_secondary(all, p, cpu, vcpu as u32, entry, arg, real_mode);
            }
            A::wait(p.kick_flag(cpu));
        }
    }
}
