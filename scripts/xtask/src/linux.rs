//! The Linux test partition's files: Debian's unmodified `linux-image-amd64` kernel and an
//! initramfs built here from Debian's `busybox-static` and an `/init` script that prints facts a
//! boot test checks (kernel release, online CPUs, MemTotal, clocksource, timer and serial
//! interrupt lines), times a fixed memory-bound workload (32 MiB written to a file it keeps, which
//! the manager's dirty harvest must see) and powers off. Nothing is patched or rebuilt, and nothing is committed: the
//! packages are fetched with `apt-get download` into a per-machine cache outside the clone (keyed
//! by package and version, so a new Debian upload is fetched once), unpacked with `dpkg-deb -x`,
//! and the two files a board names are copied into `board-configs/images/` (gitignored) whenever
//! they are missing or differ. The initramfs is an uncompressed newc archive written by
//! [`Cpio`], so no `cpio` program is needed.

use crate::{process, root};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The kernel a Linux board names.
pub const KERNEL: &str = "images/debian-vmlinuz";
/// The initramfs a Linux board names.
pub const INITRD: &str = "images/debian-initrd.cpio";

/// What `/init` does. Every line it prints starts with `linux-init:` so the boot test finds it
/// among the kernel's own. With `septum.poweroff` on the kernel command line (the boot tests
/// pass `linux:septum.poweroff` to the hypervisor, which forwards it) it powers off after its
/// checks; otherwise it gives the console a shell, whose exit powers off. With
/// `septum.reboot-test` it reboots at once on the partition's first boot (`septum.run=0`, which
/// the hypervisor appends), so a test sees the reboot and the second boot.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "linux-init: reached /init"
if grep -qw septum.reboot-test /proc/cmdline && grep -qw septum.run=0 /proc/cmdline; then
  echo "linux-init: first boot, rebooting"
  reboot -f
fi
echo "linux-init: uname -r $(uname -r)"
echo "linux-init: online CPUs $(cat /sys/devices/system/cpu/online) count $(nproc)"
echo "linux-init: $(grep MemTotal /proc/meminfo)"
echo "linux-init: clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
grep -E 'LOC|ttyS|timer' /proc/interrupts | while read l; do echo "linux-init: irq $l"; done
grep LOC: /proc/interrupts | awk '{ ok = 1; for (i = 2; i <= NF - 3; i++) if ($i == 0) ok = 0;
  print "linux-init: local timer ticked on every CPU " (ok ? "yes" : "NO") }'
echo "linux-init: uptime $(cut -d' ' -f1 /proc/uptime) s"
t0=$(cut -d' ' -f1 /proc/uptime)
dd if=/dev/zero of=/fill bs=1M count=32 2>/dd.err || sed 's/^/linux-init: dd failed: /' /dd.err
t1=$(cut -d' ' -f1 /proc/uptime)
echo "linux-init: workload wrote 32 MiB in $(awk "BEGIN { print $t1 - $t0 }") s, kept $(du -k /fill | cut -f1) KiB"
if grep -q septum.poweroff /proc/cmdline; then
  echo "linux-init: powering off"
  poweroff -f
fi
echo "linux-init: starting a shell on the console (exit powers the partition off)"
setsid cttyhack sh
poweroff -f
"#;

/// One Debian package in the cache.
struct Package {
    name: String,
    version: String,
}

/// The per-machine cache: `$XDG_CACHE_HOME/septum/debian`, else `~/.cache/septum/debian`.
fn cache_dir() -> Result<PathBuf, String> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .ok_or("neither XDG_CACHE_HOME nor HOME is set: no place for the Debian package cache")?;
    Ok(base.join("septum/debian"))
}

fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The package `linux-image-amd64` depends on (the archive keeps only the current ABI).
fn kernel_package() -> Result<String, String> {
    let text = output(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-") && p.ends_with("-amd64"))
        .map(str::to_owned)
        .ok_or_else(|| format!("apt-cache depends linux-image-amd64 names no kernel:\n{text}"))
}

/// The candidate version of `name`.
fn resolve(name: &str) -> Result<Package, String> {
    let text = output(Command::new("apt-cache").args(["policy", name]))?;
    let version = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate: "))
        .filter(|v| *v != "(none)")
        .ok_or_else(|| {
            format!("no candidate version of {name} (run apt-get update as root):\n{text}")
        })?;
    Ok(Package {
        name: name.to_owned(),
        version: version.to_owned(),
    })
}

/// The unpacked package's directory in the cache, fetched and unpacked on first use.
fn unpacked(pkg: &Package) -> Result<PathBuf, String> {
    let key = format!("{}_{}", pkg.name, pkg.version.replace(':', "%3a"));
    let dir = cache_dir()?.join(&key);
    let tree = dir.join("tree");
    if tree.join(".complete").exists() {
        return Ok(tree);
    }
    let io = |e: std::io::Error| format!("{}: {e}", dir.display());
    std::fs::create_dir_all(&dir).map_err(io)?;
    eprintln!("xtask: fetching {} {}", pkg.name, pkg.version);
    let spec = format!("{}={}", pkg.name, pkg.version);
    process::run(
        Command::new("apt-get")
            .current_dir(&dir)
            .args(["-q", "-o", "APT::Sandbox::User=root", "download"])
            .arg(&spec),
    )?;
    let deb = std::fs::read_dir(&dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| format!("apt-get download {spec} left no package"))?;
    let _ = std::fs::remove_dir_all(&tree);
    process::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree))?;
    std::fs::write(tree.join(".complete"), "").map_err(io)?;
    let _ = std::fs::remove_file(&deb);
    Ok(tree)
}

/// Writes `bytes` to `path` unless it already holds exactly them (so builds that depend on the
/// file do not rerun for nothing).
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    std::fs::create_dir_all(path.parent().unwrap())
        .and_then(|()| std::fs::write(path, bytes))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Whether the board file at `file` names the Linux test files.
pub fn board_uses_images(file: &Path) -> bool {
    std::fs::read_to_string(file).is_ok_and(|t| t.contains(KERNEL) || t.contains(INITRD))
}

/// Makes sure `board-configs/images/` holds the kernel and the initramfs, fetching and building
/// them when needed.
pub fn ensure_images() -> Result<(), String> {
    let images = root().join("board-configs");
    let (kernel_dest, initrd_dest) = (images.join(KERNEL), images.join(INITRD));
    let offline = kernel_dest.exists() && initrd_dest.exists();
    for tool in ["apt-cache", "apt-get", "dpkg-deb"] {
        if !process::on_path(tool) {
            if offline {
                // A machine without apt keeps what was fetched before.
                return Ok(());
            }
            return Err(format!(
                "{} and {} are missing, and fetching them needs {tool} (a Debian host): \
                 the Linux board needs Debian's linux-image-amd64 and busybox-static",
                kernel_dest.display(),
                initrd_dest.display()
            ));
        }
    }
    let kernel_pkg = resolve(&kernel_package()?)?;
    let kernel_tree = unpacked(&kernel_pkg)?;
    let release = kernel_pkg.name.trim_start_matches("linux-image-");
    let vmlinuz = kernel_tree.join(format!("boot/vmlinuz-{release}"));
    let bytes = std::fs::read(&vmlinuz).map_err(|e| format!("{}: {e}", vmlinuz.display()))?;
    write_if_changed(&kernel_dest, &bytes)?;

    let busybox_tree = unpacked(&resolve("busybox-static")?)?;
    let busybox = busybox_tree.join("bin/busybox");
    let busybox = std::fs::read(&busybox).map_err(|e| format!("{}: {e}", busybox.display()))?;
    write_if_changed(&initrd_dest, &initramfs(&busybox))
}

/// The initramfs: `/dev/console`, busybox at `/bin/busybox` and `/init`.
pub fn initramfs(busybox: &[u8]) -> Vec<u8> {
    let mut c = Cpio::default();
    for d in ["dev", "bin", "proc", "sys"] {
        c.dir(d);
    }
    c.char_device("dev/console", 5, 1);
    c.file("bin/busybox", 0o755, busybox);
    c.file("init", 0o755, INIT.as_bytes());
    c.finish()
}

/// A newc ("070701") cpio archive, the format the kernel unpacks an initramfs from: per entry a
/// 110-byte ASCII header of thirteen 8-digit hex fields, the NUL-terminated name padded to 4
/// bytes, the data padded to 4 bytes; the archive ends with an entry named `TRAILER!!!`.
#[derive(Default)]
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;

impl Cpio {
    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            data.len() as u32,
            0, // dev major
            0, // dev minor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    /// A directory.
    pub fn dir(&mut self, name: &str) {
        self.entry(name, S_IFDIR | 0o755, (0, 0), &[]);
    }

    /// A regular file.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, S_IFREG | perm, (0, 0), data);
    }

    /// A character device node.
    pub fn char_device(&mut self, name: &str, major: u32, minor: u32) {
        self.entry(name, S_IFCHR | 0o600, (major, minor), &[]);
    }

    /// The archive with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.ino = 0;
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Reads a newc archive back: (name, mode, rdev major, minor, data) per entry, checking its
    /// framing (the LoongArch initramfs's tests use it too).
    pub(crate) fn parse(mut a: &[u8]) -> Vec<(String, u32, u32, u32, Vec<u8>)> {
        let mut v = Vec::new();
        let total = a.len();
        loop {
            assert_eq!(&a[..6], b"070701");
            let field = |i: usize| {
                u32::from_str_radix(std::str::from_utf8(&a[6 + i * 8..14 + i * 8]).unwrap(), 16)
                    .unwrap()
            };
            let (mode, size, major, minor, namesize) =
                (field(1), field(6), field(9), field(10), field(11));
            let name_end = 110 + namesize as usize;
            let name = std::str::from_utf8(&a[110..name_end - 1])
                .unwrap()
                .to_owned();
            assert_eq!(a[name_end - 1], 0, "name is NUL-terminated");
            let data_at = name_end.div_ceil(4) * 4;
            let data = a[data_at..data_at + size as usize].to_vec();
            let next = (data_at + size as usize).div_ceil(4) * 4;
            assert_eq!(
                (total - a.len() + next) % 4,
                0,
                "entries stay 4-byte aligned"
            );
            a = &a[next..];
            if name == "TRAILER!!!" {
                assert!(a.is_empty(), "nothing after the trailer");
                return v;
            }
            v.push((name, mode, major, minor, data));
        }
    }

    #[test]
    fn the_initramfs_holds_console_busybox_and_init() {
        let archive = initramfs(b"\x7fELF-busybox");
        let e = parse(&archive);
        let names: Vec<&str> = e.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "dev",
                "bin",
                "proc",
                "sys",
                "dev/console",
                "bin/busybox",
                "init"
            ]
        );
        let console = &e[4];
        assert_eq!((console.1, console.2, console.3), (0o020600, 5, 1));
        assert_eq!(e[5].4, b"\x7fELF-busybox");
        assert_eq!(e[5].1, 0o100755);
        let init = std::str::from_utf8(&e[6].4).unwrap();
        assert!(init.starts_with("#!/bin/busybox sh\n"));
        assert!(init.contains("poweroff -f"));
        assert_eq!(e[0].1 & S_IFDIR, S_IFDIR);
    }

    #[test]
    fn odd_sizes_are_padded() {
        let mut c = Cpio::default();
        c.file("a", 0o644, b"x");
        c.file("bcd", 0o644, b"12345");
        let e = parse(&c.finish());
        assert_eq!(e[0].4, b"x");
        assert_eq!(e[1].4, b"12345");
    }
}
