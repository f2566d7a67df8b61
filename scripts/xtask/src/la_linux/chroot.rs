//! The trixie chroot the LoongArch guest is built in, as the build uses it: commands run inside
//! it with `/proc` mounted only for as long as they run, and trees removed only after whatever
//! is mounted below them is unmounted, so deleting a cache entry never reaches outside it.

use super::PATH;
use crate::cache::logged;
use crate::process;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `/proc` mounted in the chroot for as long as this lives: unmounted on every path out,
/// errors and panics included, so the cache never keeps a mount (which deleting it would
/// descend into).
struct ProcMount(PathBuf);

impl ProcMount {
    fn new(chroot: &Path) -> Result<Self, String> {
        let target = chroot.join("proc");
        unmount_below(&target)?;
        std::fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
        process::run_quiet(
            Command::new("mount")
                .env("PATH", PATH)
                .args(["-t", "proc", "proc"])
                .arg(&target),
        )?;
        Ok(Self(target))
    }
}

impl Drop for ProcMount {
    fn drop(&mut self) {
        if let Err(e) = unmount_below(&self.0) {
            eprintln!("xtask: warning: {e}");
        }
    }
}

/// Runs `script` with `sh -e` in the chroot, with `/proc` mounted and a clean environment,
/// its output appended to `log`.
pub(super) fn in_chroot(chroot: &Path, script: &str, log: &Path) -> Result<(), String> {
    let _proc = ProcMount::new(chroot)?;
    let mut cmd = Command::new("chroot");
    cmd.env_clear()
        .env("PATH", PATH)
        .env("HOME", "/root")
        .env("LANG", "C.UTF-8")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .arg(chroot)
        .args(["/bin/sh", "-ec", script]);
    logged(&mut cmd, log)
}

/// The mount points at or below `dir`, deepest first (from `/proc/self/mounts`, whose octal
/// escapes such as `\040` for a space are decoded).
fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .map(|m| PathBuf::from(unescape_mount(m)))
        .filter(|m| m.starts_with(dir))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    found.dedup();
    found
}

fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) if b[i] == b'\\' => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts everything at or below `dir` (lazily when busy); an error if something stays.
pub(super) fn unmount_below(dir: &Path) -> Result<(), String> {
    for m in mounts_below(dir) {
        let umount = |lazy: bool| {
            let mut cmd = Command::new("umount");
            cmd.env("PATH", PATH);
            if lazy {
                cmd.arg("-l");
            }
            cmd.arg(&m).status().is_ok_and(|s| s.success())
        };
        if !umount(false) {
            umount(true);
        }
    }
    let left = mounts_below(dir);
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!("cannot unmount {left:?}"))
    }
}

/// Deletes `path` (after unmounting anything below it, so nothing outside is touched).
pub(super) fn remove_tree(path: &Path) -> Result<(), String> {
    unmount_below(path)?;
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("{}: {e}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape_mount(r"/a\040b/proc"), "/a b/proc");
        assert_eq!(unescape_mount(r"/plain\x"), r"/plain\x");
    }
}
