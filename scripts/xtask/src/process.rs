//! Running child processes: plain commands that must succeed, and emulator runs that are bounded by
//! a timeout and judged by their output and exit status.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Renders a command the way a person would type it, for logs and error messages.
pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.contains(' ') || a.is_empty() {
            s.push_str(&format!(" '{a}'"));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

/// Runs `cmd` with inherited output; an error unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("+ {}", show(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {}: {e}", show(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed with {status}", show(cmd)))
    }
}

/// How a bounded run ended.
pub struct Bounded {
    /// Exit status, or `None` when the run was killed at its timeout.
    pub status: Option<i32>,
    pub elapsed: Duration,
}

/// Runs `cmd` with its output captured, showing it only when the command fails (tools such as
/// grub-mkrescue are chatty on success and terse about the one line that matters on failure).
pub fn run_quiet(cmd: &mut Command) -> Result<(), String> {
    eprintln!("+ {}", show(cmd));
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start {}: {e}", show(cmd)))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "`{}` failed with {}:\n{}{}",
        show(cmd),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Runs `cmd` with stdin closed and stdout+stderr written to `log`, killing it (and its process
/// group) after `timeout`. Emulators can hang on a guest fault and ignore SIGTERM, so the kill is
/// SIGKILL on the whole group. The run also ends as soon as the log shows one of `ends` (text,
/// status):
/// a real-board image cannot power the emulator off, so it prints how the run ended and parks,
/// and that line stands for the exit status the board would have given.
pub fn run_bounded_until(
    cmd: &mut Command,
    log: &Path,
    timeout: Duration,
    ends: &[(&str, i32)],
) -> Result<Bounded, String> {
    let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    std::os::unix::process::CommandExt::process_group(cmd, 0);
    let ended = || {
        if ends.is_empty() {
            return None;
        }
        let text = std::fs::read(log).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        ends.iter()
            .find(|(marker, _)| text.contains(marker))
            .map(|&(_, status)| status)
    };
    run_with_deadline(cmd, timeout, ended)
}

/// Runs `cmd` with the terminal attached (for `cargo xtask run`), still bounded by `timeout`.
pub fn run_attached(cmd: &mut Command, timeout: Duration) -> Result<Bounded, String> {
    eprintln!("+ {}", show(cmd));
    run_with_deadline(cmd, timeout, || None)
}

fn run_with_deadline(
    cmd: &mut Command,
    timeout: Duration,
    ended: impl Fn() -> Option<i32>,
) -> Result<Bounded, String> {
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", show(cmd)))?;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(Bounded {
                status: Some(status.code().unwrap_or(-1)),
                elapsed: start.elapsed(),
            });
        }
        let verdict = ended();
        if verdict.is_some() || start.elapsed() >= timeout {
            let pid = child.id() as i32;
            // The child leads its own process group (when started by run_bounded); kill it all.
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{pid}")])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Bounded {
                status: verdict,
                elapsed: start.elapsed(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True when `program` is on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}
