//! QEMU-LVZ, the emulator the LoongArch boot tests use for the LVZ backend: a third-party fork of
//! QEMU 9.0 that adds the virtualization extension to TCG. No registry serves it, so it is built
//! from source, once per machine, into a cache outside the clone (CI's fresh clones on one
//! machine share it):
//!
//! ```text
//! ${XDG_CACHE_HOME:-$HOME/.cache}/septum/qemu-lvz/<first 16 hex digits of the tarball's sha256>/
//!     src/<tree>/   the unpacked tarball          build/   configure + ninja
//!     build.log     configure and ninja output    bin/qemu-system-loongarch64   the result
//! ```
//!
//! Where the source comes from, first match wins:
//! * `SEPTUM_QEMU_LVZ=/path/to/qemu-system-loongarch64`: a binary built elsewhere, used as is;
//! * `SEPTUM_QEMU_LVZ_SRC=/path/to/QEMU-LVZ`: a source tree, built (incrementally) in the cache
//!   under a key from the tree's path;
//! * `SEPTUM_QEMU_LVZ_TARBALL=/path/to/qemu-lvz-*.tar.xz`, else the vendored tarball
//!   `../shared/vendor/qemu-lvz-42b4d34.tar.xz` beside the clone.
//!
//! Only the `loongarch64-softmmu` target is configured, with everything optional off, and only
//! the emulator binary is built (the fork's `tests/fp` does not compile against the vendored
//! testfloat). The fork prints `VM_EXIT`/`GPA->HPA` debug lines on stderr unconditionally, so
//! its runs keep stderr in a file of its own (`emulator.rs`).

use crate::cache::{logged, sha256_bytes, sha256_file, Lock};
use crate::deps::{self, Need};
use crate::{process, root};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

/// The vendored tarball's name (in `../shared/vendor/` beside the clone).
pub const TARBALL: &str = "qemu-lvz-42b4d34.tar.xz";
/// Where the fork lives upstream, for machines without the vendored copy.
pub const UPSTREAM: &str = "https://github.com/Hengyu-Yu/QEMU-LVZ";
const BINARY: &str = "qemu-system-loongarch64";

const CONFIGURE: &[&str] = &[
    "--target-list=loongarch64-softmmu",
    "--disable-docs",
    "--disable-werror",
    "--disable-download",
    "--enable-slirp",
    "--disable-gtk",
    "--disable-sdl",
    "--disable-vnc",
    "--disable-opengl",
    "--disable-libusb",
    "--disable-spice",
];

/// What building the fork needs (Debian packages; a C compiler and make come with the image).
const BUILD_DEPS: &[Need] = &[
    Need {
        path: "/usr/include/libfdt.h",
        package: "libfdt-dev",
        backports: false,
    },
    Need {
        path: "/usr/include/glib-2.0/glib.h",
        package: "libglib2.0-dev",
        backports: false,
    },
    Need {
        path: "/usr/include/pixman-1/pixman.h",
        package: "libpixman-1-dev",
        backports: false,
    },
    Need {
        path: "/usr/bin/ninja",
        package: "ninja-build",
        backports: false,
    },
    Need {
        path: "/usr/bin/flex",
        package: "flex",
        backports: false,
    },
    Need {
        path: "/usr/bin/bison",
        package: "bison",
        backports: false,
    },
    Need {
        path: "/usr/include/slirp/libslirp.h",
        package: "libslirp-dev",
        backports: false,
    },
    Need {
        path: "/usr/share/doc/python3-venv",
        package: "python3-venv",
        backports: false,
    },
    Need {
        path: "/usr/bin/pkg-config",
        package: "pkg-config",
        backports: false,
    },
];

/// The cache directory of one source, from a hex digest.
pub fn cache_dir(key: &str) -> Result<PathBuf, String> {
    Ok(crate::cache::root()?.join("qemu-lvz").join(key))
}

/// The emulator binary, built on first use. Memoised: a suite asks many times.
pub fn ensure() -> Result<PathBuf, String> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(locate_or_build).clone()
}

/// The message for a machine that has no QEMU-LVZ and nothing to build it from.
fn missing(tarball: &Path) -> String {
    format!(
        "QEMU-LVZ (the LVZ backend's emulator) is not available: {} does not exist.\n  \
         Get the fork from {UPSTREAM} (QEMU 9.0 with LVZ in TCG; its meson subprojects \
         keycodemapdb, berkeley-softfloat-3 and berkeley-testfloat-3 must be in subprojects/), then \
         one of:\n    \
         SEPTUM_QEMU_LVZ_SRC=/path/to/QEMU-LVZ cargo xtask setup     (build a source tree)\n    \
         SEPTUM_QEMU_LVZ_TARBALL=/path/to/{TARBALL} cargo xtask setup  (build a tarball)\n    \
         SEPTUM_QEMU_LVZ=/path/to/{BINARY} cargo xtask test     (use a built binary)",
        tarball.display()
    )
}

fn locate_or_build() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("SEPTUM_QEMU_LVZ") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!(
                "SEPTUM_QEMU_LVZ={} is not a file (it names a built {BINARY})",
                bin.display()
            ))
        };
    }
    if let Some(src) = std::env::var_os("SEPTUM_QEMU_LVZ_SRC") {
        let src = PathBuf::from(src)
            .canonicalize()
            .map_err(|e| format!("SEPTUM_QEMU_LVZ_SRC: {e}"))?;
        if !src.join("configure").is_file() {
            return Err(format!(
                "SEPTUM_QEMU_LVZ_SRC={} has no configure script: not a QEMU source tree",
                src.display()
            ));
        }
        let key = format!(
            "src-{}",
            &sha256_bytes(src.as_os_str().as_encoded_bytes())?[..16]
        );
        let dir = cache_dir(&key)?;
        // A tree may change: always let ninja bring the build up to date (a no-op when it is).
        return build(&dir, Some(&src), true);
    }
    let tarball = match std::env::var_os("SEPTUM_QEMU_LVZ_TARBALL") {
        Some(t) => PathBuf::from(t),
        None => root()
            .join("..")
            .join("shared")
            .join("vendor")
            .join(TARBALL),
    };
    if !tarball.is_file() {
        return Err(missing(&tarball));
    }
    let digest = sha256_file(&tarball)?;
    let dir = cache_dir(&digest[..16])?;
    let bin = dir.join("bin").join(BINARY);
    if bin.is_file() {
        return Ok(bin);
    }
    unpack(&tarball, &dir)?;
    build(&dir, None, false)
}

/// The source tree inside `dir/src`: the one directory there with a `configure` script.
fn unpacked_tree(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir.join("src"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.join("configure").is_file())
}

fn unpack(tarball: &Path, dir: &Path) -> Result<(), String> {
    let io = |e: std::io::Error| format!("{}: {e}", dir.display());
    let done = dir.join("src/.unpacked");
    if done.exists() && unpacked_tree(dir).is_some() {
        return Ok(());
    }
    let src = dir.join("src");
    let _ = std::fs::remove_dir_all(&src);
    std::fs::create_dir_all(&src).map_err(io)?;
    eprintln!(
        "xtask: unpacking {} into {}",
        tarball.display(),
        src.display()
    );
    process::run(
        Command::new("tar")
            .arg("-xJf")
            .arg(tarball)
            .arg("-C")
            .arg(&src),
    )?;
    if unpacked_tree(dir).is_none() {
        return Err(format!("{} holds no QEMU source tree", tarball.display()));
    }
    std::fs::write(&done, b"").map_err(io)
}

/// Configures (once) and builds the emulator in `dir/build` from `src` (else the unpacked
/// tarball), logging to `dir/build.log`. With `in_place`, the binary is used from the build
/// directory; otherwise it is copied to `dir/bin`, which marks the cache entry complete.
fn build(dir: &Path, src: Option<&Path>, in_place: bool) -> Result<PathBuf, String> {
    let io = |e: std::io::Error| format!("{}: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(io)?;
    let _lock = Lock::take(dir, "QEMU-LVZ")?;
    let bin = dir.join("bin").join(BINARY);
    if !in_place && bin.is_file() {
        return Ok(bin);
    }
    let src = match src {
        Some(s) => s.to_path_buf(),
        None => unpacked_tree(dir).ok_or("the QEMU-LVZ source was not unpacked")?,
    };
    deps::install(&BUILD_DEPS.iter().collect::<Vec<_>>())?;
    let build = dir.join("build");
    std::fs::create_dir_all(&build).map_err(io)?;
    let log_path = dir.join("build.log");
    let start = Instant::now();
    eprintln!(
        "xtask: building QEMU-LVZ from {} in {} (several minutes; log {})",
        src.display(),
        build.display(),
        log_path.display()
    );
    if !build.join("build.ninja").is_file() {
        let mut cmd = Command::new(src.join("configure"));
        cmd.current_dir(&build).args(CONFIGURE);
        logged(&mut cmd, &log_path)?;
    }
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    logged(
        Command::new("ninja")
            .arg("-C")
            .arg(&build)
            .arg(format!("-j{jobs}"))
            .arg(BINARY),
        &log_path,
    )?;
    let built = build.join(BINARY);
    if !built.is_file() {
        return Err(format!("ninja left no {}", built.display()));
    }
    eprintln!(
        "xtask: QEMU-LVZ built in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    if in_place {
        return Ok(built);
    }
    std::fs::create_dir_all(dir.join("bin")).map_err(io)?;
    let tmp = dir.join("bin").join(format!("{BINARY}.partial"));
    std::fs::copy(&built, &tmp).map_err(io)?;
    std::fs::rename(&tmp, &bin).map_err(io)?;
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_outside_the_clone_and_keyed_by_the_digest() {
        let dir = cache_dir("602c82e69b2ee8f0").unwrap();
        assert!(dir.ends_with("septum/qemu-lvz/602c82e69b2ee8f0"));
        assert!(
            !dir.starts_with(root()),
            "{} is inside the clone",
            dir.display()
        );
    }

    #[test]
    fn a_missing_tarball_says_where_to_get_the_fork_and_how_to_point_at_it() {
        let m = missing(Path::new("/nowhere/qemu-lvz.tar.xz"));
        assert!(m.contains(UPSTREAM));
        for var in [
            "SEPTUM_QEMU_LVZ_SRC=",
            "SEPTUM_QEMU_LVZ=",
            "SEPTUM_QEMU_LVZ_TARBALL=",
        ] {
            assert!(m.contains(var), "{var} missing from {m}");
        }
    }
}
