//! The LoongArch Linux guest's files: a kernel built here from Debian's `linux-source-6.12`
//! (`tinyconfig` plus `la-linux/config-fragment`) and an initramfs holding `la-linux/init.c`,
//! a static libc-free `/init` that prints the facts a boot test checks (the LoongArch twin of
//! the shell `/init` in `linux.rs`). Debian bookworm has no LoongArch cross compiler and trixie
//! has no LoongArch userland, so both are built with trixie's cross gcc in a trixie chroot made
//! by `debootstrap`. Everything lives in a per-machine cache outside the clone, built once:
//!
//! ```text
//! ${XDG_CACHE_HOME:-$HOME/.cache}/septum/la-linux/
//!     chroot/                 trixie minbase, then the build packages
//!     chroot.done             stamp: debootstrap finished       (debootstrap.log)
//!     packages.done           stamp: packages installed         (packages.log; holds the list)
//!     kernel-<key>/           vmlinux, vmlinux.efi, config, System.map, build.log, done
//!     initrd-<key>/           init, initrd.cpio, compile.log, done
//! ```
//!
//! The kernel's key is a sha256 of the recipe (fragment, package list, the installed
//! `linux-source-6.12` version, [`RECIPE_VERSION`]), the initramfs's of `init.c` and its compiler
//! flags, so editing either rebuilds it once. A stage whose stamp is missing was interrupted: its
//! directory is deleted and the stage redone (the package stage reruns `apt-get`, which resumes).
//! The three newest complete entries of each kind stay (branches with other recipes on one
//! machine do not rebuild in turn); older and unfinished ones are deleted after a build.
//! Building needs root (debootstrap, chroot, mount); using a complete cache does not. The two
//! files a board names are copied into `board-configs/images/` (gitignored) whenever they are
//! missing or differ. Delete the cache directory to start over (e.g. for a newer linux-source).

mod chroot;
mod kernel;

use crate::cache::{logged, sha256_bytes as sha256, Lock};
use crate::deps::is_root;
use crate::linux::Cpio;
use chroot::{in_chroot, remove_tree, unmount_below};
use kernel::{build_kernel, kernel_key};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

/// The kernel a LoongArch Linux board names (relative to `board-configs/`).
pub const KERNEL: &str = "images/la-linux-vmlinux";
/// The initramfs a LoongArch Linux board names.
pub const INITRD: &str = "images/la-linux-initrd.cpio";

/// Bump to rebuild every machine's kernel when the recipe changes in a way the key cannot see
/// (the build commands below).
const RECIPE_VERSION: u32 = 1;
const FRAGMENT: &str = include_str!("../la-linux/config-fragment");
const INIT_C: &str = include_str!("../la-linux/init.c");

const SUITE: &str = "trixie";
const MIRROR: &str = "http://deb.debian.org/debian";
/// What the chroot needs: the cross toolchain, the kernel's build tools and its source.
const PACKAGES: &[&str] = &[
    "gcc-loongarch64-linux-gnu",
    "libc6-dev-loong64-cross",
    "make",
    "bc",
    "flex",
    "bison",
    "libssl-dev",
    "libelf-dev",
    "cpio",
    "xz-utils",
    "linux-source-6.12",
    "gcc",
    "libc6-dev",
    "perl",
    "python3-minimal",
    "kmod",
];
const SOURCE_PACKAGE: &str = "linux-source-6.12";
const SOURCE_TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";
const MAKE: &str = "make ARCH=loongarch CROSS_COMPILE=loongarch64-linux-gnu-";
/// `/init` has no C library: no start files, no stack protector (it would call into libc), and
/// a fixed address. No LSX/LASX either: the cross gcc's default `la64v1.0` vectorizes loops
/// with them, and the kernel (`CPU_HAS_LSX` off) answers those with SIGILL.
const INIT_CFLAGS: &[&str] = &[
    "-static",
    "-nostdlib",
    "-ffreestanding",
    "-fno-pic",
    "-no-pie",
    "-O2",
    "-mno-lsx",
    "-mno-lasx",
    "-fno-stack-protector",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-s",
];
/// ELF `e_machine` of LoongArch.
const EM_LOONGARCH: u16 = 258;
/// The PATH inside the chroot (and for finding `chroot` and `debootstrap` on the host).
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// The built files in the cache.
#[derive(Clone, Debug)]
struct Cached {
    vmlinux: PathBuf,
    efi: Option<PathBuf>,
    initrd: PathBuf,
}

/// Whether the board file at `file` names the LoongArch Linux files.
pub fn board_uses_images(file: &Path) -> bool {
    std::fs::read_to_string(file).is_ok_and(|t| t.contains(KERNEL) || t.contains(INITRD))
}

/// Makes sure `board-configs/images/` holds the kernel and the initramfs, building them into the
/// cache first when needed.
pub fn ensure_images() -> Result<(), String> {
    let dir = crate::boards::dir();
    let (kernel_dest, initrd_dest) = (dir.join(KERNEL), dir.join(INITRD));
    let cached = match ensure_cache() {
        Ok(c) => c,
        // A machine that cannot build (not root) keeps files copied there before.
        Err(e) if !is_root() && kernel_dest.is_file() && initrd_dest.is_file() => {
            eprintln!("xtask: warning: keeping the LoongArch Linux files already in place: {e}");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    copy_if_changed(&cached.vmlinux, &kernel_dest)?;
    copy_if_changed(&cached.initrd, &initrd_dest)
}

/// The cached kernel ELF, `vmlinux.efi` when the build made one, and the initramfs, built when
/// needed (for a bare boot on stock QEMU).
pub fn cached_paths() -> Result<(PathBuf, Option<PathBuf>, PathBuf), String> {
    let c = ensure_cache()?;
    Ok((c.vmlinux, c.efi, c.initrd))
}

/// The cache, built once per run of the tool.
fn ensure_cache() -> Result<Cached, String> {
    static CACHED: OnceLock<Result<Cached, String>> = OnceLock::new();
    CACHED.get_or_init(build_cache).clone()
}

fn cache_dir() -> Result<PathBuf, String> {
    Ok(crate::cache::root()?.join("la-linux"))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

/// Paths of one kernel or initramfs cache entry.
fn kernel_dir(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("kernel-{}", &key[..16]))
}

fn initrd_dir(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("initrd-{}", &key[..16]))
}

fn cached_in(kernel: &Path, initrd: &Path) -> Cached {
    let efi = kernel.join("vmlinux.efi");
    Cached {
        vmlinux: kernel.join("vmlinux"),
        efi: efi.is_file().then_some(efi),
        initrd: initrd.join("initrd.cpio"),
    }
}

/// The complete cache entry for the current recipe and `init.c`, if there is one: no root,
/// no lock, no process started.
fn complete(dir: &Path) -> Option<Cached> {
    let chroot = dir.join("chroot");
    if !packages_done(dir) {
        return None;
    }
    let version = installed_version(&chroot, SOURCE_PACKAGE).ok()?;
    let kernel = kernel_dir(dir, &kernel_key(FRAGMENT, PACKAGES, &version).ok()?);
    let initrd = initrd_dir(dir, &initrd_key(INIT_C).ok()?);
    (kernel.join("done").is_file() && initrd.join("done").is_file())
        .then(|| cached_in(&kernel, &initrd))
}

fn build_cache() -> Result<Cached, String> {
    let dir = cache_dir()?;
    if let Some(c) = complete(&dir) {
        return Ok(c);
    }
    if !is_root() {
        let mut advice = String::new();
        if !debootstrap_installed() {
            advice.push_str("apt-get install -y debootstrap && ");
        }
        advice.push_str("cargo xtask setup");
        return Err(format!(
            "the LoongArch Linux guest's kernel or initramfs for this recipe is not in {} yet, \
             and building needs root (debootstrap, chroot, mount); run as root:\n  {advice}",
            dir.display()
        ));
    }
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let _lock = Lock::take(&dir, "LoongArch Linux")?;
    // Another run may have finished it while this one waited for the lock.
    if let Some(c) = complete(&dir) {
        return Ok(c);
    }
    let start = Instant::now();
    ensure_chroot(&dir)?;
    let chroot = dir.join("chroot");
    let version = installed_version(&chroot, SOURCE_PACKAGE)?;
    let kernel = kernel_dir(&dir, &kernel_key(FRAGMENT, PACKAGES, &version)?);
    if !kernel.join("done").is_file() {
        build_kernel(&chroot, &kernel, &version)?;
    }
    let initrd = initrd_dir(&dir, &initrd_key(INIT_C)?);
    if !initrd.join("done").is_file() {
        build_initrd(&chroot, &initrd)?;
    }
    prune(&dir, &[&kernel, &initrd]);
    eprintln!(
        "xtask: LoongArch Linux guest ready in {:.0} s ({})",
        start.elapsed().as_secs_f64(),
        dir.display()
    );
    Ok(cached_in(&kernel, &initrd))
}

fn debootstrap_installed() -> bool {
    std::env::split_paths(PATH).any(|d| d.join("debootstrap").is_file())
}

fn packages_done(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("packages.done")).is_ok_and(|t| t == PACKAGES.join(" "))
}

/// Stage 1 and 2: the trixie chroot with the build packages.
fn ensure_chroot(dir: &Path) -> Result<(), String> {
    let chroot = dir.join("chroot");
    let stamp = dir.join("chroot.done");
    let origin = format!("{SUITE} {MIRROR}");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(origin.as_str()) {
        if !debootstrap_installed() {
            eprintln!("xtask: installing debootstrap (for the LoongArch Linux build chroot)");
            let log = dir.join("host-apt.log");
            let install = || {
                logged(
                    Command::new("apt-get")
                        .env("DEBIAN_FRONTEND", "noninteractive")
                        .args(["install", "-y", "-q", "debootstrap"]),
                    &log,
                )
            };
            if install().is_err() {
                logged(Command::new("apt-get").args(["update", "-q"]), &log)?;
                install()?;
            }
        }
        let _ = std::fs::remove_file(dir.join("packages.done"));
        remove_tree(&chroot)?;
        eprintln!("xtask: debootstrap {SUITE} into {}", chroot.display());
        let start = Instant::now();
        let mut cmd = Command::new("debootstrap");
        cmd.env("PATH", PATH)
            .args(["--variant=minbase", SUITE])
            .arg(&chroot)
            .arg(MIRROR);
        let result = logged(&mut cmd, &dir.join("debootstrap.log"));
        // debootstrap mounts /proc and /sys in the target; an interrupted run can leave them.
        unmount_below(&chroot)?;
        result?;
        std::fs::write(&stamp, &origin).map_err(io(&stamp))?;
        eprintln!(
            "xtask: debootstrap took {:.0} s",
            start.elapsed().as_secs_f64()
        );
    }
    if !packages_done(dir) {
        eprintln!(
            "xtask: installing the LoongArch cross toolchain and linux-source in the chroot \
             (about 280 MB download)"
        );
        // The chroot resolves names with the host's configuration.
        if let Ok(resolv) = std::fs::read("/etc/resolv.conf") {
            let target = chroot.join("etc/resolv.conf");
            if target.is_symlink() {
                let _ = std::fs::remove_file(&target);
            }
            std::fs::write(&target, resolv).map_err(io(&target))?;
        }
        let start = Instant::now();
        // `dpkg --configure -a` finishes what an interrupted run left half-installed.
        let script = format!(
            "dpkg --configure -a\napt-get update -q\n\
             apt-get install -y -q --no-install-recommends {}",
            PACKAGES.join(" ")
        );
        in_chroot(&chroot, &script, &dir.join("packages.log"))?;
        let stamp = dir.join("packages.done");
        std::fs::write(&stamp, PACKAGES.join(" ")).map_err(io(&stamp))?;
        eprintln!(
            "xtask: chroot packages installed in {:.0} s",
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// The `Version:` of package `name` in the chroot's dpkg database.
fn installed_version(chroot: &Path, name: &str) -> Result<String, String> {
    let status = chroot.join("var/lib/dpkg/status");
    let text = std::fs::read_to_string(&status).map_err(io(&status))?;
    package_version(&text, name)
        .ok_or_else(|| format!("{name} is not installed in {}", chroot.display()))
}

/// The version of `name` in a dpkg status file, if it is installed.
fn package_version(status: &str, name: &str) -> Option<String> {
    status.split("\n\n").find_map(|para| {
        let field = |f: &str| para.lines().find_map(|l| l.strip_prefix(f).map(str::trim));
        (field("Package:")? == name && field("Status:")?.ends_with(" installed"))
            .then(|| field("Version:").map(str::to_owned))?
    })
}

/// The initramfs's cache key: `/init`'s source and how it is compiled.
fn initrd_key(init_c: &str) -> Result<String, String> {
    sha256(format!("{}\n{init_c}", INIT_CFLAGS.join(" ")).as_bytes())
}

/// Stage 4: `/init` compiled with the chroot's cross gcc, packed into the initramfs.
fn build_initrd(chroot: &Path, initrd: &Path) -> Result<(), String> {
    remove_tree(initrd)?;
    std::fs::create_dir_all(initrd).map_err(io(initrd))?;
    let work = chroot.join("build/init");
    remove_tree(&work)?;
    std::fs::create_dir_all(&work).map_err(io(&work))?;
    let source = work.join("init.c");
    std::fs::write(&source, INIT_C).map_err(io(&source))?;
    eprintln!("xtask: compiling the LoongArch /init");
    in_chroot(
        chroot,
        &format!(
            "loongarch64-linux-gnu-gcc {} -o /build/init/init /build/init/init.c",
            INIT_CFLAGS.join(" ")
        ),
        &initrd.join("compile.log"),
    )?;
    let binary = work.join("init");
    let init = std::fs::read(&binary).map_err(io(&binary))?;
    if init.len() < 20 || &init[..4] != b"\x7fELF" || init[18..20] != EM_LOONGARCH.to_le_bytes() {
        return Err(format!("{} is not a LoongArch ELF", binary.display()));
    }
    for (name, bytes) in [("init", init.clone()), ("initrd.cpio", initramfs(&init))] {
        let path = initrd.join(name);
        std::fs::write(&path, bytes).map_err(io(&path))?;
    }
    let done = initrd.join("done");
    std::fs::write(&done, "").map_err(io(&done))
}

/// The initramfs: the mount points `/init` uses, `/dev/console` (the kernel opens it as init's
/// standard streams before any devtmpfs exists) and `/init`.
fn initramfs(init: &[u8]) -> Vec<u8> {
    let mut c = Cpio::default();
    for d in ["dev", "proc", "sys"] {
        c.dir(d);
    }
    c.char_device("dev/console", 5, 1);
    c.file("init", 0o755, init);
    c.finish()
}

/// How many complete entries of each kind (`kernel-`, `initrd-`) the cache keeps: a few, so
/// clones on different branches of one machine do not rebuild each other's kernel in turn.
const KEEP_ENTRIES: usize = 3;

/// Deletes unfinished cache entries (this run holds the lock: nothing is building them) and all
/// but the [`KEEP_ENTRIES`] newest complete ones of each kind, never those in `keep`.
fn prune(dir: &Path, keep: &[&Path]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let entries: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    for kind in ["kernel-", "initrd-"] {
        let mut done: Vec<(std::time::SystemTime, &PathBuf)> = Vec::new();
        for path in &entries {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if !name.starts_with(kind) || keep.contains(&path.as_path()) {
                continue;
            }
            match std::fs::metadata(path.join("done")).and_then(|m| m.modified()) {
                Ok(built) => done.push((built, path)),
                Err(_) => {
                    let _ = remove_tree(path);
                }
            }
        }
        done.sort_by_key(|e| std::cmp::Reverse(e.0));
        for (_, path) in done.into_iter().skip(KEEP_ENTRIES.saturating_sub(1)) {
            let _ = remove_tree(path);
        }
    }
}

/// Copies `from` to `to` unless `to` already holds the same bytes.
fn copy_if_changed(from: &Path, to: &Path) -> Result<(), String> {
    let bytes = std::fs::read(from).map_err(io(from))?;
    if std::fs::read(to).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    let parent = to.parent().expect("a file in a directory");
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    std::fs::write(to, bytes).map_err(io(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_outside_the_clone() {
        let dir = cache_dir().unwrap();
        assert!(dir.ends_with("septum/la-linux"));
        assert!(!dir.starts_with(crate::root()));
    }

    #[test]
    fn the_initramfs_holds_the_console_mount_points_and_an_executable_init() {
        let e = crate::linux::tests::parse(&initramfs(b"\x7fELF-init"));
        let names: Vec<&str> = e.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(names, ["dev", "proc", "sys", "dev/console", "init"]);
        assert_eq!((e[3].1, e[3].2, e[3].3), (0o020600, 5, 1));
        assert_eq!(e[4].1, 0o100755);
        assert_eq!(e[4].4, b"\x7fELF-init");
        assert!(e[..3].iter().all(|d| d.1 == 0o040755));
    }

    #[test]
    fn the_source_version_comes_from_the_dpkg_database() {
        let status = "Package: make\nStatus: install ok installed\nVersion: 4.4\n\n\
                      Package: linux-source-6.12\nStatus: install ok installed\n\
                      Architecture: all\nVersion: 6.12.57-1\n\n\
                      Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n";
        assert_eq!(
            package_version(status, "linux-source-6.12").as_deref(),
            Some("6.12.57-1")
        );
        assert_eq!(package_version(status, "gone"), None);
        assert_eq!(package_version(status, "linux-source"), None);
    }

    #[test]
    fn pruning_keeps_the_current_and_the_newest_complete_entries() {
        let dir = std::env::temp_dir().join(format!("la-linux-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let now = std::time::SystemTime::now();
        // (name, built this many seconds ago; None: unfinished)
        let entries = [
            ("kernel-current", Some(500)),
            ("kernel-new", Some(10)),
            ("kernel-newer", Some(5)),
            ("kernel-old", Some(100)),
            ("kernel-broken", None),
            ("initrd-current", Some(1)),
            ("initrd-other", Some(2)),
        ];
        for (name, age) in entries {
            std::fs::create_dir_all(dir.join(name)).unwrap();
            if let Some(age) = age {
                let done = std::fs::File::create(dir.join(name).join("done")).unwrap();
                done.set_modified(now - std::time::Duration::from_secs(age))
                    .unwrap();
            }
        }
        prune(
            &dir,
            &[&dir.join("kernel-current"), &dir.join("initrd-current")],
        );
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "initrd-current",
                "initrd-other",
                "kernel-current",
                "kernel-new",
                "kernel-newer"
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_board_naming_the_files_uses_them() {
        let file = std::env::temp_dir().join(format!("la-linux-board-{}.toml", std::process::id()));
        std::fs::write(&file, format!("kernel = \"{KERNEL}\"\n")).unwrap();
        assert!(board_uses_images(&file));
        std::fs::write(&file, "kernel = \"images/debian-vmlinuz\"\n").unwrap();
        assert!(!board_uses_images(&file));
        std::fs::remove_file(&file).unwrap();
    }
}
