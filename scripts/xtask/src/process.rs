//! Running child processes: plain commands that must succeed, and emulator runs that are bounded by
//! a timeout and judged by their output and exit status.

use nix::sys::signal::{killpg, signal, SigHandler, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::{tcgetpgrp, tcsetpgrp, Pid};
use std::fs::File;
use std::io::IsTerminal;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
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

/// Runs `cmd` with stdin closed and stdout+stderr written to `log`, killing its process group
/// after `timeout`. Emulators can hang on a guest fault and ignore SIGTERM, so the kill is SIGKILL
/// on the whole group. The run also ends as soon as the log shows one of `ends` (text, status):
/// a real-board image cannot power the emulator off, so it prints how the run ended and parks,
/// and that line stands for the exit status the board would have given.
pub fn run_bounded_until(
    cmd: &mut Command,
    log: &Path,
    timeout: Duration,
    ends: &[(&str, i32)],
) -> Result<Bounded, String> {
    run_bounded_split(cmd, log, None, timeout, ends)
}

/// [`run_bounded_until`], with stderr written to `err_log` instead of `log` when given (an
/// emulator whose stderr is a debug flood that must never reach the parsed serial log).
pub fn run_bounded_split(
    cmd: &mut Command,
    log: &Path,
    err_log: Option<&Path>,
    timeout: Duration,
    ends: &[(&str, i32)],
) -> Result<Bounded, String> {
    let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = match err_log {
        Some(p) => File::create(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => out.try_clone().map_err(|e| e.to_string())?,
    };
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
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
    let mut group = Group::spawn(cmd)?;
    group.run_until(timeout, ended)
}

/// Runs `cmd` with the terminal attached (for `cargo xtask run`), still bounded by `timeout`. The
/// emulator gets its own process group, made the terminal's foreground group so that it reads the
/// keyboard and Ctrl-C reaches it (and not this tool, which waits and then takes the terminal back).
pub fn run_attached(cmd: &mut Command, timeout: Duration) -> Result<Bounded, String> {
    eprintln!("+ {}", show(cmd));
    let mut group = Group::spawn(cmd)?;
    let terminal = Foreground::take(group.pgid);
    let result = group.run_until(timeout, || None);
    drop(terminal);
    result
}

/// A child that leads a process group of its own, and everything it starts. The group is ended
/// with `killpg(2)`, never by running a program: procps-ng 4.0.2's `kill -KILL -PGID` (Debian
/// bookworm) signals every process on the machine. The leader is not reaped until the group has
/// been signalled, so its PID (the group's ID) cannot be reused by a stranger in between.
pub struct Group {
    child: Child,
    pgid: Pid,
    start: Instant,
}

impl Group {
    /// Starts `cmd` as the leader of a new process group.
    pub fn spawn(cmd: &mut Command) -> Result<Self, String> {
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", show(cmd)))?;
        let pgid = Pid::from_raw(child.id() as i32);
        Ok(Self {
            child,
            pgid,
            start: Instant::now(),
        })
    }

    /// Waits until the leader exits, `ended` gives a verdict, or `timeout` passes; then ends
    /// whatever is left of the group.
    pub fn run_until(
        &mut self,
        timeout: Duration,
        ended: impl Fn() -> Option<i32>,
    ) -> Result<Bounded, String> {
        loop {
            if let Some(code) = self.leader_exit()? {
                self.end();
                return Ok(Bounded {
                    status: Some(code),
                    elapsed: self.start.elapsed(),
                });
            }
            let verdict = ended();
            if verdict.is_some() || self.start.elapsed() >= timeout {
                self.end();
                return Ok(Bounded {
                    status: verdict,
                    elapsed: self.start.elapsed(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The leader's exit code once it has exited, leaving it unreaped (`WNOWAIT`).
    fn leader_exit(&self) -> Result<Option<i32>, String> {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::Pid(self.pgid), flags) {
            Ok(WaitStatus::Exited(_, code)) => Ok(Some(code)),
            Ok(WaitStatus::Signaled(_, signal, _)) => Ok(Some(128 + signal as i32)),
            Ok(_) => Ok(None),
            Err(e) => Err(format!("waitid({}): {e}", self.pgid)),
        }
    }

    /// SIGKILLs the group (stragglers the leader left behind too), then reaps the leader. The
    /// leader is still unreaped here, so the group ID is still ours.
    fn end(&mut self) {
        // ESRCH only means every member is gone already.
        let _ = killpg(self.pgid, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.end();
        }
    }
}

/// The terminal's foreground process group handed to a child group for as long as this lives.
struct Foreground {
    tty: std::io::Stdin,
    previous: Pid,
}

impl Foreground {
    /// Hands the terminal to `pgid` when standard input is a terminal this process controls.
    fn take(pgid: Pid) -> Option<Self> {
        let tty = std::io::stdin();
        if !tty.is_terminal() {
            return None;
        }
        let previous = tcgetpgrp(&tty).ok()?;
        tcsetpgrp(&tty, pgid).ok()?;
        Some(Self { tty, previous })
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        // Taking the terminal back from a background group raises SIGTTOU, which would stop
        // this tool; ignore it for the call only.
        // SAFETY: SIG_IGN installs no handler code; the old disposition is put back right after.
        let old = unsafe { signal(Signal::SIGTTOU, SigHandler::SigIgn) };
        let _ = tcsetpgrp(&self.tty, self.previous);
        if let Ok(old) = old {
            // SAFETY: restores the disposition that was in force before the call above.
            let _ = unsafe { signal(Signal::SIGTTOU, old) };
        }
    }
}

/// True when `program` is on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `pid` names a live process (a zombie waiting for its reaper counts as ended).
    fn alive(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => false,
            // The state follows the parenthesised command name.
            Ok(stat) => {
                !matches!(stat.rsplit(')').next().map(str::trim_start), Some(s) if s.starts_with('Z') || s.starts_with('X'))
            }
        }
    }

    fn wait_until_gone(pid: i32) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !alive(pid) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn a_timed_out_group_dies_whole_and_a_sibling_lives() {
        let dir = std::env::temp_dir().join(format!("xtask-group-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let grandchild_file = dir.join("grandchild.pid");
        let log = dir.join("child.log");
        // Unrelated to the group under test: started by us, in our own process group.
        let mut sibling = Command::new("sleep").arg("60").spawn().unwrap();
        let mut child = Command::new("sh");
        child.arg("-c").arg(format!(
            "sleep 60 & echo $! > {}; echo started; sleep 60",
            grandchild_file.display()
        ));
        let run = run_bounded_until(&mut child, &log, Duration::from_millis(500), &[]).unwrap();
        assert_eq!(run.status, None, "the child was killed at its timeout");
        assert!(run.elapsed >= Duration::from_millis(500));
        let grandchild: i32 = std::fs::read_to_string(&grandchild_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            wait_until_gone(grandchild),
            "the group's other member survived"
        );
        assert!(
            matches!(sibling.try_wait(), Ok(None)),
            "the unrelated sibling was killed"
        );
        assert!(alive(sibling.id() as i32));
        sibling.kill().unwrap();
        sibling.wait().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_split_run_keeps_stderr_out_of_the_log() {
        let dir = std::env::temp_dir().join(format!("xtask-split-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (log, err) = (dir.join("out.log"), dir.join("err.log"));
        let mut child = Command::new("sh");
        child.arg("-c").arg("echo serial; echo VM_EXIT pc=0 >&2");
        let run =
            run_bounded_split(&mut child, &log, Some(&err), Duration::from_secs(30), &[]).unwrap();
        assert_eq!(run.status, Some(0));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "serial\n");
        assert_eq!(std::fs::read_to_string(&err).unwrap(), "VM_EXIT pc=0\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_marker_in_the_log_ends_the_run_with_its_status() {
        let dir = std::env::temp_dir().join(format!("xtask-marker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("child.log");
        let mut child = Command::new("sh");
        child
            .arg("-c")
            .arg("echo 'exit: success, parking'; sleep 60");
        let ends = [("exit: success, parking", 7)];
        let run = run_bounded_until(&mut child, &log, Duration::from_secs(30), &ends).unwrap();
        assert_eq!(run.status, Some(7));
        assert!(run.elapsed < Duration::from_secs(30));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_exit_status_is_reported() {
        let log = std::env::temp_dir().join(format!("xtask-status-{}.log", std::process::id()));
        let mut child = Command::new("sh");
        child.arg("-c").arg("exit 3");
        let run = run_bounded_until(&mut child, &log, Duration::from_secs(30), &[]).unwrap();
        assert_eq!(run.status, Some(3));
        std::fs::remove_file(&log).unwrap();
    }

    /// No source in the workspace ends processes by running a program (see `Group`).
    #[test]
    fn no_source_runs_the_kill_program() {
        let needle = ["Command::new(\"", "kill", "\")"].concat();
        let mut offenders = Vec::new();
        let mut dirs = vec![crate::root()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                let name = entry.file_name();
                if name == "target" || name == ".git" || name == "out" {
                    continue;
                }
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    if text.contains(&needle) {
                        offenders.push(path);
                    }
                }
            }
        }
        assert!(offenders.is_empty(), "{needle} in {offenders:?}");
    }
}
