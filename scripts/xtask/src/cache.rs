//! Building blocks of the per-machine caches the tool fills outside the clone (QEMU-LVZ, the
//! LoongArch Linux guest): where they live, a build lock between concurrent runs, commands whose
//! output goes to a log, and the SHA-256 digests that key cache entries.

use crate::process;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The per-machine cache root: `$XDG_CACHE_HOME/septum`, else `$HOME/.cache/septum`.
pub fn root() -> Result<PathBuf, String> {
    let xdg = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = match xdg {
        Some(p) => p,
        None => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cache"))
            .ok_or("neither XDG_CACHE_HOME nor HOME is set: no place for the per-machine caches")?,
    };
    Ok(base.join("septum"))
}

/// Holds `dir/.lock` (with this process's ID in it) while building, so two runs on one machine
/// do not build into each other. A lock whose process is gone was left by a killed run.
pub struct Lock(PathBuf);

impl Lock {
    /// Takes `dir`'s lock, waiting while a live process holds it; `what` names the build in the
    /// waiting message.
    pub fn take(dir: &Path, what: &str) -> Result<Self, String> {
        let path = dir.join(".lock");
        let mut said = false;
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    let _ = write!(f, "{}", std::process::id());
                    return Ok(Self(path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path).unwrap_or_default();
                    let holder = holder.trim();
                    let alive = !holder.is_empty() && Path::new("/proc").join(holder).exists();
                    if !alive {
                        // Give a holder that has created the file but not yet written its
                        // ID a moment; then the lock is stale.
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        if std::fs::read_to_string(&path).is_ok_and(|h| h.trim() == holder) {
                            let _ = std::fs::remove_file(&path);
                        }
                        continue;
                    }
                    if !said {
                        eprintln!(
                            "xtask: waiting for process {holder}'s {what} build ({})",
                            path.display()
                        );
                        said = true;
                    }
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `cmd` with its output appended to `log`; on failure the error names the log and shows
/// its last 30 lines.
pub fn logged(cmd: &mut Command, log: &Path) -> Result<(), String> {
    eprintln!("+ {}  (output in {})", process::show(cmd), log.display());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let err = file
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .status()
        .map_err(|e| format!("cannot start {}: {e}", process::show(cmd)))?;
    if status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(30)..].join("\n  | ");
    Err(format!(
        "`{}` failed with {status}; last lines of {}:\n  | {tail}",
        process::show(cmd),
        log.display()
    ))
}

/// The hex sha256 of `bytes`, from coreutils' `sha256sum`.
pub fn sha256_bytes(bytes: &[u8]) -> Result<String, String> {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run sha256sum: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(bytes)
        .map_err(|e| format!("sha256sum: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("sha256sum: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let digest = text.split_whitespace().next().unwrap_or("");
    if !out.status.success() || digest.len() != 64 {
        return Err(format!("sha256sum printed {text:?}"));
    }
    Ok(digest.to_owned())
}

/// The hex sha256 of `file`, from coreutils' `sha256sum`.
pub fn sha256_file(file: &Path) -> Result<String, String> {
    let out = Command::new("sha256sum")
        .arg(file)
        .output()
        .map_err(|e| format!("cannot run sha256sum: {e}"))?;
    if !out.status.success() {
        return Err(format!("sha256sum {} failed", file.display()));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let digest = text.split_whitespace().next().unwrap_or("");
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("sha256sum printed {text:?}"));
    }
    Ok(digest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_left_by_a_dead_process_is_taken_over_and_released() {
        let dir = std::env::temp_dir().join(format!("septum-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // No process has this ID (above the kernel's pid_max limit).
        std::fs::write(dir.join(".lock"), "4194305").unwrap();
        let lock = Lock::take(&dir, "test").unwrap();
        let holder = std::fs::read_to_string(dir.join(".lock")).unwrap();
        assert_eq!(holder, std::process::id().to_string());
        drop(lock);
        assert!(!dir.join(".lock").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn digests_of_bytes_and_files_agree() {
        let file = std::env::temp_dir().join(format!("septum-digest-{}", std::process::id()));
        std::fs::write(&file, b"abc").unwrap();
        let d = sha256_bytes(b"abc").unwrap();
        assert_eq!(
            d,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(sha256_file(&file).unwrap(), d);
        std::fs::remove_file(&file).unwrap();
    }
}
