//! The boards the workspace ships (`board-configs/*.toml`) and the few facts about each that the
//! tool needs to build and boot it. Validation itself is the board checker's job.

use crate::root;
use std::path::{Path, PathBuf};

/// Instruction set, as the target triple needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    LoongArch64,
    X86_64,
}

impl Arch {
    pub fn target(self) -> &'static str {
        match self {
            Arch::LoongArch64 => "loongarch64-unknown-none-softfloat",
            Arch::X86_64 => "x86_64-unknown-none",
        }
    }
}

/// How the board starts the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boot {
    Direct,
    Grub,
    Uefi,
}

/// Which emulator boots the board in tests, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emulator {
    QemuLoongArch,
    QemuX86,
    Bochs,
}

/// One board file, read for the facts the tool uses.
#[derive(Clone, Debug)]
pub struct Board {
    pub name: String,
    pub file: PathBuf,
    pub arch: Arch,
    pub boot: Boot,
    pub emulator: Option<Emulator>,
    pub cpus: u32,
    /// One past the highest RAM address the board file declares.
    pub ram_top: u64,
}

impl Board {
    pub fn emulator_name(&self) -> &'static str {
        match self.test_emulator() {
            Emulator::QemuLoongArch => "qemu-system-loongarch64",
            Emulator::QemuX86 => "qemu-system-x86_64",
            Emulator::Bochs => "bochs",
        }
    }

    /// The emulator a boot test runs the board in: the board file's, or for a real board QEMU of
    /// its architecture under UEFI firmware (`emulator.rs`).
    pub fn test_emulator(&self) -> Emulator {
        self.emulator.unwrap_or(match self.arch {
            Arch::LoongArch64 => Emulator::QemuLoongArch,
            Arch::X86_64 => Emulator::QemuX86,
        })
    }

    /// The emulator's exit status for a run the image ended with success: QEMU loongarch powers
    /// off through GED (0), QEMU x86 writes 0x10 to isa-debug-exit ((0x10 << 1) | 1 = 33, since 0
    /// is what a triple fault gives), Bochs stops at the magic breakpoint and quits (0).
    pub fn success_status(&self) -> i32 {
        match self.test_emulator() {
            Emulator::QemuX86 => 33,
            _ => 0,
        }
    }

    /// The status for a run the image ended with a failure (panic, exception, failed check).
    pub fn failure_status(&self) -> i32 {
        match self.test_emulator() {
            Emulator::QemuX86 => 35,
            _ => 1,
        }
    }

    /// The emulator's memory size in MiB: enough for the board's highest RAM address.
    pub fn memory_mib(&self) -> u64 {
        self.ram_top.div_ceil(1 << 20)
    }

    pub fn is_success(&self, status: i32) -> bool {
        status == self.success_status()
    }
}

pub fn dir() -> PathBuf {
    root().join("board-configs")
}

/// Names of all shipped boards, sorted.
pub fn names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Reads and checks board `name` from `board-configs/<name>.toml`. A board that fails the
/// checker is an error here too, with every fault listed, so nothing builds from a bad file.
pub fn load(name: &str) -> Result<Board, String> {
    let file = dir().join(format!("{name}.toml"));
    if !file.exists() {
        return Err(format!("no board {name:?}; boards: {}", names().join(", ")));
    }
    if crate::linux::board_uses_images(&file) {
        // Once per run of the tool: the kernel is fetched if missing, and the initramfs is
        // rebuilt whenever this clone's `/init` differs from the one in it.
        static ENSURED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
        ENSURED
            .get_or_init(crate::linux::ensure_images)
            .clone()
            .map_err(|e| format!("board {name}: its Linux files could not be fetched: {e}"))?;
    }
    if crate::la_linux::board_uses_images(&file) {
        // Once per run of the tool: the kernel and the initramfs are built into the per-machine
        // cache when missing (minutes, once) and copied in when they differ.
        static LA_ENSURED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
        LA_ENSURED
            .get_or_init(crate::la_linux::ensure_images)
            .clone()
            .map_err(|e| {
                format!("board {name}: its LoongArch Linux files could not be built: {e}")
            })?;
    }
    let checked = board_config::check::check_file(&file).map_err(|e| e.to_string())?;
    Ok(Board {
        name: checked.name.clone(),
        file,
        arch: match checked.arch {
            board_config::Arch::LoongArch64 => Arch::LoongArch64,
            board_config::Arch::X86_64 => Arch::X86_64,
        },
        boot: match checked.boot {
            board_config::BootMethod::Direct => Boot::Direct,
            board_config::BootMethod::Grub => Boot::Grub,
            board_config::BootMethod::Uefi => Boot::Uefi,
        },
        emulator: checked.emulator.map(|e| match e {
            board_config::Emulator::QemuLoongArchVirt => Emulator::QemuLoongArch,
            board_config::Emulator::QemuX86 => Emulator::QemuX86,
            board_config::Emulator::Bochs => Emulator::Bochs,
        }),
        cpus: checked.cpus,
        ram_top: checked.ram.iter().map(|r| r.end()).max().unwrap_or(0),
    })
}

/// `cargo xtask check-config FILE`: the board checker's verdict and summary.
pub fn check_config(file: &Path) -> bool {
    board_config::check::cli_check_config(file)
}
