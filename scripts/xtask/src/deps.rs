//! Emulator and image-tool packages. What a board needs is checked by file; what is missing is
//! installed from Debian when the tool runs as root on Debian (QEMU from bookworm-backports on
//! bookworm, since its own QEMU 7.2 has no usable loongarch64 virt and conflicts with the image's
//! qemu-utils), and otherwise the exact install command is printed and the step fails.

use crate::boards::{Arch, Board, Boot, Emulator};
use crate::process;
use std::path::Path;
use std::process::Command;

/// A file that must exist and the Debian package that provides it.
pub struct Need {
    pub path: &'static str,
    pub package: &'static str,
    pub backports: bool,
}

const QEMU_LA: &[Need] = &[Need {
    path: "/usr/bin/qemu-system-loongarch64",
    package: "qemu-system-misc",
    backports: true,
}];
const QEMU_X86: &[Need] = &[
    Need {
        path: "/usr/bin/qemu-system-x86_64",
        package: "qemu-system-x86",
        backports: true,
    },
    Need {
        path: "/usr/share/qemu/qboot.rom",
        package: "qemu-system-data",
        backports: true,
    },
];
const BOCHS: &[Need] = &[
    Need {
        path: "/usr/bin/bochs-bin",
        package: "bochs",
        backports: false,
    },
    Need {
        path: "/usr/share/bochs/BIOS-bochs-latest",
        package: "bochsbios",
        backports: false,
    },
    Need {
        path: "/usr/share/vgabios/vgabios.bin",
        package: "vgabios",
        backports: false,
    },
];
const GRUB_ISO: &[Need] = &[
    Need {
        path: "/usr/bin/grub-mkrescue",
        package: "grub-common",
        backports: false,
    },
    Need {
        path: "/usr/lib/grub/i386-pc/multiboot2.mod",
        package: "grub-pc-bin",
        backports: false,
    },
    Need {
        path: "/usr/bin/xorriso",
        package: "xorriso",
        backports: false,
    },
    Need {
        path: "/usr/bin/mformat",
        package: "mtools",
        backports: false,
    },
];

/// A real x86 GRUB board's boot test: OVMF, and GRUB's x86_64 EFI platform for the EFI ISO
/// (`grub-mkrescue` and `xorriso` come with [`GRUB_ISO`]).
const UEFI_X86: &[Need] = &[
    Need {
        path: "/usr/share/ovmf/OVMF.fd",
        package: "ovmf",
        backports: false,
    },
    Need {
        path: "/usr/lib/grub/x86_64-efi/multiboot2.mod",
        package: "grub-efi-amd64-bin",
        backports: false,
    },
];

fn needs(board: &Board) -> Vec<&'static Need> {
    let mut v: Vec<&Need> = Vec::new();
    match board.emulator {
        Some(Emulator::QemuLoongArch) => v.extend(QEMU_LA),
        Some(Emulator::QemuX86) => v.extend(QEMU_X86),
        Some(Emulator::Bochs) => v.extend(BOCHS),
        // A real x86 board is tested in QEMU under UEFI (`emulator.rs`).
        None if board.arch == Arch::X86_64 && board.boot == Boot::Grub => {
            v.extend(QEMU_X86);
            v.extend(UEFI_X86);
        }
        None => {}
    }
    if board.boot == Boot::Grub {
        v.extend(GRUB_ISO);
    }
    v
}

/// Makes sure everything `board` needs to build and boot is installed.
pub fn ensure(board: &Board) -> Result<(), String> {
    install(&needs(board))
}

/// Installs everything any shipped board needs (`cargo xtask setup`, and the start of `test`),
/// QEMU-LVZ included (built from the vendored source into the per-machine cache when missing).
pub fn ensure_all() -> Result<(), String> {
    let all: Vec<&Need> = [QEMU_LA, QEMU_X86, BOCHS, GRUB_ISO, UEFI_X86]
        .into_iter()
        .flatten()
        .collect();
    install(&all)?;
    crate::qemu_lvz::ensure().map(|_| ())
}

fn codename() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|s| s.trim_matches('"').to_owned())
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

pub fn install(needs: &[&Need]) -> Result<(), String> {
    let missing: Vec<&&Need> = needs
        .iter()
        .filter(|n| !Path::new(n.path).exists())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let codename = codename();
    let use_backports = codename.as_deref() == Some("bookworm");
    let mut plain: Vec<&str> = missing
        .iter()
        .filter(|n| !(n.backports && use_backports))
        .map(|n| n.package)
        .collect();
    let mut bpo: Vec<&str> = missing
        .iter()
        .filter(|n| n.backports && use_backports)
        .map(|n| n.package)
        .collect();
    plain.sort();
    plain.dedup();
    bpo.sort();
    bpo.dedup();
    let files: Vec<&str> = missing.iter().map(|n| n.path).collect();
    let mut advice = String::new();
    if !bpo.is_empty() {
        advice.push_str(
            "echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/backports.list && apt-get update && ",
        );
        advice.push_str(&format!(
            "apt-get install -y -t bookworm-backports {}",
            bpo.join(" ")
        ));
    }
    if !plain.is_empty() {
        if !advice.is_empty() {
            advice.push_str(" && ");
        } else {
            advice.push_str("apt-get update && ");
        }
        advice.push_str(&format!("apt-get install -y {}", plain.join(" ")));
    }
    if !(is_root() && process::on_path("apt-get")) {
        return Err(format!(
            "missing {}; install with (as root):\n  {advice}",
            files.join(", ")
        ));
    }
    eprintln!(
        "xtask: installing {} for {}",
        [bpo.clone(), plain.clone()].concat().join(" "),
        files.join(", ")
    );
    if !bpo.is_empty() {
        let list = Path::new("/etc/apt/sources.list.d/septum-backports.list");
        let already = std::fs::read_dir("/etc/apt/sources.list.d")
            .map(|rd| {
                rd.filter_map(|e| e.ok()).any(|e| {
                    std::fs::read_to_string(e.path())
                        .is_ok_and(|t| t.contains("bookworm-backports"))
                })
            })
            .unwrap_or(false)
            || std::fs::read_to_string("/etc/apt/sources.list")
                .is_ok_and(|t| t.contains("bookworm-backports"));
        if !already {
            std::fs::write(
                list,
                "deb http://deb.debian.org/debian bookworm-backports main\n",
            )
            .map_err(|e| format!("{}: {e}", list.display()))?;
        }
    }
    process::run(Command::new("apt-get").args(["update", "-qq"]))?;
    let apt = |extra: &[&str], pkgs: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq"]);
        cmd.args(extra).args(pkgs);
        process::run(&mut cmd)
    };
    if !bpo.is_empty() {
        apt(&["-t", "bookworm-backports"], &bpo)?;
    }
    if !plain.is_empty() {
        apt(&[], &plain)?;
    }
    let still: Vec<&str> = needs
        .iter()
        .filter(|n| !Path::new(n.path).exists())
        .map(|n| n.path)
        .collect();
    if still.is_empty() {
        Ok(())
    } else {
        Err(format!("still missing after install: {}", still.join(", ")))
    }
}

/// build-std needs the standard library's source for the pinned toolchain. rust-toolchain.toml
/// lists the component, but a toolchain installed before that file existed may lack it, so it is
/// checked here and added through rustup when missing.
pub fn ensure_rust_src() -> Result<(), String> {
    let sysroot = Command::new("rustc")
        .current_dir(crate::root())
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_owned();
    let library = Path::new(&sysroot).join("lib/rustlib/src/rust/library/core");
    if library.exists() {
        return Ok(());
    }
    if !process::on_path("rustup") {
        return Err(format!(
            "{} is missing and rustup is not installed",
            library.display()
        ));
    }
    process::run(Command::new("rustup").current_dir(crate::root()).args([
        "component",
        "add",
        "rust-src",
    ]))
}
