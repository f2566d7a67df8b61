//! The Linux partition beside the same kernel on the bare emulator: `cargo xtask test` boots
//! Debian's kernel and the same initramfs directly in QEMU (no hypervisor, the partition's CPU
//! count and memory) right after the partition's own boot test, and prints the ratios of the two
//! runs' times: the kernel's own clock at `Run /init` and the time `/init` measured for its
//! 32 MiB workload. Both clocks are the emulated TSC, so the figures are emulator-clock proxies.

use crate::boards::Board;
use crate::image;
use crate::process::{self, Bounded};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The boot test whose serial log the comparison reads (`scenarios::linux`).
pub const PARTITION_TEST: &str = "linux";
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

/// Whether `board` has the comparison: the board of the boot test [`PARTITION_TEST`], booted in
/// QEMU, where the kernel boots bare with `-kernel` too. (Bochs would need a GRUB ISO of the kernel; not built yet.)
pub fn compares(board: &Board) -> bool {
    board.emulator == Some(crate::boards::Emulator::QemuX86)
        && crate::scenarios::boot_tests()
            .iter()
            .any(|t| t.name == PARTITION_TEST && t.board == board.name)
}

/// Boots the kernel bare and compares it with the partition's boot test run on `board`.
pub fn compare(board: &Board) -> Result<(), String> {
    let septum_log = image::out_dir(&board.name)
        .join(format!("test-{PARTITION_TEST}"))
        .join("emulator.out");
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
    let log = dir.join("emulator.out");
    let mut cmd = bare_qemu(
        &images.join(crate::linux::KERNEL),
        &images.join(crate::linux::INITRD),
    );
    let Bounded { status, elapsed } =
        process::run_bounded_until(&mut cmd, &log, Duration::from_secs(180), &[])?;
    let serial = String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
    let bare = times(&serial).ok_or_else(|| {
        format!(
            "the bare boot (status {status:?} after {:.0} s) printed no Linux times; see {}",
            elapsed.as_secs_f64(),
            log.display()
        )
    })?;
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
        .args([
            "-append",
            "console=ttyS0,115200 panic=-1 tsc=reliable septum.poweroff",
        ]);
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
