//! The Linux partition beside the same kernel on the bare emulator: `cargo xtask test` boots
//! Debian's kernel and the same initramfs directly in the board's emulator (QEMU `-kernel`, or
//! Bochs from a GRUB ISO; no hypervisor, the partition's CPU count and memory) right after the partition's own boot test, and prints the ratios of the two
//! runs' times: the kernel's own clock at `Run /init` and the time `/init` measured for its
//! 32 MiB workload. Both clocks are the emulated TSC, so the figures are emulator-clock proxies.

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
    matches!(board.emulator, Some(Emulator::QemuX86 | Emulator::Bochs))
        && crate::scenarios::boot_tests()
            .iter()
            .any(|t| t.name == PARTITION_TEST && t.board == board.name)
}

/// Boots the kernel bare and compares it with the partition's boot test run on `board`.
pub fn compare(board: &Board) -> Result<(), String> {
    // The boot test's serial log: Bochs writes COM1 to a file of its own.
    let run_dir = image::out_dir(&board.name).join(format!("test-{PARTITION_TEST}"));
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
    let (kernel, initrd) = (
        images.join(crate::linux::KERNEL),
        images.join(crate::linux::INITRD),
    );
    let log = dir.join("emulator.out");
    let (mut cmd, timeout) = match board.emulator {
        Some(Emulator::Bochs) => {
            let iso = image::grub_linux_iso(&dir, &kernel, &initrd, BARE_CMDLINE)?;
            let cpus = CPUS.parse().unwrap_or(2);
            let megs = MEMORY.trim_end_matches('M').parse().unwrap_or(256);
            // COM1 on Bochs's stdout, so the run can end on the kernel's last line (Bochs
            // reports an ACPI power off and goes on running).
            let cmd = emulator::bochs_command(&dir, &iso, megs, cpus, "/dev/stdout", true)?;
            (cmd, Duration::from_secs(900))
        }
        _ => (bare_qemu(&kernel, &initrd), Duration::from_secs(180)),
    };
    let ends = [("reboot: Power down", 0)];
    let Bounded { status, elapsed } = process::run_bounded_until(&mut cmd, &log, timeout, &ends)?;
    let serial = String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
    let bare = times(&serial).ok_or_else(|| {
        format!(
            "the bare boot (status {status:?} after {:.0} s) printed no Linux times; see {}",
            elapsed.as_secs_f64(),
            log.display()
        )
    })?;
    // Bochs advances its clock by instructions and skips ahead while every CPU halts, which a
    // bare boot's idle CPUs do and a partitioned board's spinning manager never lets happen:
    // there the wall time of the two runs is the fairer comparison (the table's row for the
    // boot test holds the partition's).
    eprintln!(
        "figure bare boot to power off (s, wall clock, this machine): {:.1}",
        elapsed.as_secs_f64()
    );
    eprintln!(
        "figure Linux kernel time to /init (s, emulator clock): in the partition {:.2}, bare {:.2}, ratio {:.2}",
        septum.to_init,
        bare.to_init,
        septum.to_init / bare.to_init
    );
    eprintln!(
        "figure Linux /init 32 MiB workload (s, emulator clock): in the partition {:.2}, bare {:.2}, ratio {:.2}",
        septum.workload,
        bare.workload,
        septum.workload / bare.workload.max(0.001)
    );
    Ok(())
}

/// QEMU booting the kernel itself (`-kernel`, `-initrd`) with the partition's CPUs and memory.
fn bare_qemu(kernel: &Path, initrd: &Path) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg", "-cpu", "max", "-m", MEMORY, "-smp", CPUS])
        .args(["-nic", "none", "-display", "none", "-monitor", "none"])
        .args(["-serial", "stdio", "-no-reboot"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", BARE_CMDLINE]);
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
