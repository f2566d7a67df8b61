//! The Linux partition beside the same kernel on the bare emulator: `cargo xtask test` boots the
//! board's kernel and the same initramfs directly in an emulator (QEMU `-kernel`, or Bochs from a
//! GRUB ISO; LoongArch: stock QEMU `-kernel`, since the partition's own run is QEMU-LVZ's; no
//! hypervisor, the partition's CPU count and memory) right after the partition's own boot test,
//! and prints the ratios of the two runs' times: the kernel's own clock at `Run /init` and the
//! time `/init` measured for its 32 MiB workload. Both clocks are emulated counters (TSC, the
//! LoongArch stable counter), so the figures are emulator-clock proxies.

use crate::boards::{Board, Emulator};
use crate::emulator;
use crate::image;
use crate::process::{self, Bounded};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The boot test whose serial log the comparison reads (`scenarios::linux`).
pub const PARTITION_TEST: &str = "linux";
/// The bare kernel's command line: the Linux boards' console, clock and watchdog words, and
/// `/init`'s power off after its checks.
const BARE_CMDLINE: &str = "console=ttyS0,115200 panic=-1 tsc=reliable nowatchdog septum.poweroff";
/// LoongArch's: the LoongArch Linux board's console words and the same power off.
const BARE_CMDLINE_LA: &str =
    "console=ttyS0,115200 earlycon=uart,mmio,0x1fe001e0 panic=-1 septum.poweroff";
/// The partition's size and vCPU count on the Linux boards (the board files).
const MEMORY: &str = "256M";
const CPUS: &str = "2";

/// What one run printed that the comparison needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinuxTimes {
    /// The kernel's timestamp on its `Run /init as init process` line, in seconds.
    pub to_init: f64,
    /// What `/init` measured for its workload, in seconds.
    pub workload: f64,
}

/// Reads [`LinuxTimes`] from a serial log.
pub fn times(serial: &str) -> Option<LinuxTimes> {
    let to_init = serial
        .lines()
        .filter(|l| l.contains("Run /init as init process"))
        .find_map(|l| {
            // The kernel's stamp is the last `[ seconds]` before the text (the partition's
            // lines start with the partition's own `[linux]`).
            let stamp = l.rsplit('[').next()?.split(']').next()?;
            stamp.trim().parse().ok()
        })?;
    let workload = serial.lines().find_map(|l| {
        let rest = &l[l.find("workload wrote 32 MiB in ")? + "workload wrote 32 MiB in ".len()..];
        rest.split_whitespace().next()?.parse().ok()
    })?;
    Some(LinuxTimes { to_init, workload })
}

/// Whether `board` has the comparison: the board of a boot test [`PARTITION_TEST`] that boots
/// in QEMU (the kernel then boots bare with `-kernel`) or Bochs (from a GRUB ISO of its own).
pub fn compares(board: &Board) -> bool {
    matches!(
        board.emulator,
        Some(Emulator::QemuX86 | Emulator::Bochs | Emulator::QemuLoongArch)
    ) && crate::scenarios::boot_tests()
        .iter()
        .any(|t| t.name == PARTITION_TEST && t.board == board.name)
}

/// Boots the kernel bare and compares it with the partition's boot test run on `board`.
pub fn compare(board: &Board) -> Result<(), String> {
    // The boot test's serial log: Bochs writes COM1 to a file of its own; LoongArch runs are
    // tagged with their flavour (the Linux one runs on QEMU-LVZ).
    let tag = match board.emulator {
        Some(Emulator::QemuLoongArch) => {
            format!("{PARTITION_TEST}-{}", emulator::Flavour::Lvz.suffix())
        }
        _ => PARTITION_TEST.to_owned(),
    };
    let run_dir = image::out_dir(&board.name).join(format!("test-{tag}"));
    let septum_log = ["serial.out", "emulator.out"]
        .iter()
        .map(|f| run_dir.join(f))
        .find(|p| p.exists())
        .unwrap_or_else(|| run_dir.join("emulator.out"));
    let septum = std::fs::read_to_string(&septum_log)
        .ok()
        .and_then(|s| times(&s))
        .ok_or_else(|| {
            format!(
                "{} holds no Linux times: the boot test `{PARTITION_TEST}` must run first",
                septum_log.display()
            )
        })?;
    let dir = image::out_dir(&board.name).join("linux-bare");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let images = crate::boards::dir();
    let (kernel, initrd) = match board.emulator {
        Some(Emulator::QemuLoongArch) => (
            images.join(crate::la_linux::KERNEL),
            images.join(crate::la_linux::INITRD),
        ),
        _ => (
            images.join(crate::linux::KERNEL),
            images.join(crate::linux::INITRD),
        ),
    };
    // LoongArch: bare on stock QEMU (as the issue asks) and bare on QEMU-LVZ itself, so the
    // emulator's own cost and the hypervisor's can be told apart.
    // Each run: log prefix, command, time bound, split stderr, attempts. A bare reference boot
    // under Bochs gets a second attempt: bare SMP Linux there has been seen to stall for good
    // after "PCI: CLS" (its second CPU never ran the initramfs unpack), which says nothing about
    // the hypervisor, so a stalled reference is booted again rather than failing the comparison.
    let runs: Vec<(&str, Command, Duration, bool, u32)> = match board.emulator {
        Some(Emulator::Bochs) => {
            let iso = image::grub_linux_iso(&dir, &kernel, &initrd, BARE_CMDLINE)?;
            let cpus = CPUS.parse().unwrap_or(2);
            let megs = MEMORY.trim_end_matches('M').parse().unwrap_or(256);
            // COM1 on Bochs's stdout, so the run can end on the kernel's last line (Bochs
            // reports an ACPI power off and goes on running).
            let cmd = emulator::bochs_command(&dir, &iso, megs, cpus, "/dev/stdout", true)?;
            vec![("", cmd, Duration::from_secs(420), false, 2)]
        }
        Some(Emulator::QemuLoongArch) => {
            let lvz = crate::qemu_lvz::ensure()?;
            vec![
                (
                    "",
                    bare_qemu_la(Path::new("qemu-system-loongarch64"), &kernel, &initrd),
                    Duration::from_secs(300),
                    false,
                    1,
                ),
                (
                    "qemu-lvz-",
                    bare_qemu_la(&lvz, &kernel, &initrd),
                    Duration::from_secs(600),
                    true,
                    1,
                ),
            ]
        }
        _ => vec![(
            "",
            bare_qemu(&kernel, &initrd),
            Duration::from_secs(180),
            false,
            1,
        )],
    };
    for (prefix, mut cmd, timeout, split, attempts) in runs {
        let log = dir.join(format!("{prefix}emulator.out"));
        let err = split.then(|| dir.join(format!("{prefix}emulator.err")));
        // QEMU-LVZ's older virt machine has no power-off register: Linux halts instead.
        let ends = [
            ("reboot: Power down", 0),
            ("You can safely turn off the power now", 0),
        ];
        let mut attempt = 1;
        let (bare, elapsed) = loop {
            let Bounded { status, elapsed } =
                process::run_bounded_split(&mut cmd, &log, err.as_deref(), timeout, &ends)?;
            let serial =
                String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
            if let Some(bare) = times(&serial) {
                break (bare, elapsed);
            }
            let why = format!(
                "the bare boot (status {status:?} after {:.0} s) printed no Linux times; see {}",
                elapsed.as_secs_f64(),
                log.display()
            );
            if attempt == attempts {
                return Err(why);
            }
            eprintln!(
                "{why}; booting the bare reference again (attempt {} of {attempts})",
                attempt + 1
            );
            attempt += 1;
        };
        let on = if split { ", bare on QEMU-LVZ" } else { "" };
        // Bochs advances its clock by instructions and skips ahead while every CPU halts, which
        // a bare boot's idle CPUs do and a partitioned board's spinning manager never lets
        // happen: there the wall time of the two runs is the fairer comparison (the table's row
        // for the boot test holds the partition's).
        eprintln!(
            "figure bare boot to power off (s, wall clock, this machine{on}): {:.1}",
            elapsed.as_secs_f64()
        );
        eprintln!(
            "figure Linux kernel time to /init (s, emulator clock{on}): in the partition {:.2}, bare {:.2}, ratio {:.2}",
            septum.to_init,
            bare.to_init,
            septum.to_init / bare.to_init
        );
        eprintln!(
            "figure Linux /init 32 MiB workload (s, emulator clock{on}): in the partition {:.2}, bare {:.2}, ratio {:.2}",
            septum.workload,
            bare.workload,
            septum.workload / bare.workload.max(0.001)
        );
    }
    Ok(())
}

/// QEMU booting the kernel itself (`-kernel`, `-initrd`) with the partition's CPUs and memory.
fn bare_qemu(kernel: &Path, initrd: &Path) -> Command {
    qemu_direct(
        Path::new("qemu-system-x86_64"),
        &[],
        kernel,
        initrd,
        BARE_CMDLINE,
    )
}

/// A LoongArch QEMU (`qemu`: stock, or QEMU-LVZ) booting the kernel itself on its virt machine,
/// with the partition's CPUs and memory.
fn bare_qemu_la(qemu: &Path, kernel: &Path, initrd: &Path) -> Command {
    qemu_direct(qemu, &["-M", "virt"], kernel, initrd, BARE_CMDLINE_LA)
}

fn qemu_direct(
    qemu: &Path,
    machine: &[&str],
    kernel: &Path,
    initrd: &Path,
    cmdline: &str,
) -> Command {
    let mut cmd = Command::new(qemu);
    cmd.args(machine)
        .args(["-accel", "tcg", "-cpu", "max", "-m", MEMORY, "-smp", CPUS])
        .args(["-nic", "none", "-display", "none", "-monitor", "none"])
        .args(["-serial", "stdio", "-no-reboot"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", cmdline]);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_times_come_from_the_kernel_and_init_lines() {
        let log = "[linux] [    8.660801] Run /init as init process\n\
                   [linux] linux-init: workload wrote 32 MiB in 0.65 s, kept 32768 KiB\n";
        assert_eq!(
            times(log),
            Some(LinuxTimes {
                to_init: 8.660801,
                workload: 0.65
            })
        );
        let bare = "[    1.5] Run /init as init process\r\nlinux-init: workload wrote 32 MiB in 0.2 s, kept 32768 KiB\n";
        assert_eq!(times(bare).map(|t| t.to_init), Some(1.5));
        assert_eq!(times("[ 1.0] Run /init as init process\n"), None);
    }
}
