//! Building a board's image: the test guests for the board's target (flat binaries the image embeds),
//! the hypervisor ELF for the board's target (core and alloc built from source, since no prebuilt
//! std exists for these targets here), then what the board boots: the ELF itself (QEMU `-kernel`),
//! a GRUB ISO (x86 boards booted by GRUB), or an EFI application image.

use crate::boards::{Arch, Board, Boot};
use crate::{flat, process, root};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

/// What a build produced for one board.
pub struct Artifacts {
    pub board: String,
    pub elf: PathBuf,
    pub iso: Option<PathBuf>,
    pub efi: Option<PathBuf>,
}

impl Artifacts {
    pub fn print(&self) {
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        println!("board {}:", self.board);
        for p in [Some(&self.elf), self.iso.as_ref(), self.efi.as_ref()]
            .into_iter()
            .flatten()
        {
            println!("  {} ({} bytes)", p.display(), size(p));
        }
    }
}

/// `out/<board>/`, where a board's artifacts and run files go.
pub fn out_dir(board: &str) -> PathBuf {
    root().join("out").join(board)
}

/// The test guests (`platform/guests`, package `test-guests`), one binary each.
pub const GUESTS: [&str; 3] = ["worker", "manager", "hostile"];

/// `out/guests/<target>/`: the flat test-guest binaries for one target, which the image build
/// reads through `SEPTUM_GUESTS_DIR`.
pub fn guests_dir(board: &Board) -> PathBuf {
    root().join("out").join("guests").join(board.arch.target())
}

/// The cargo invocation that builds (or, with `subcommand = "clippy"`, lints) the image crate for
/// `board`. Shared by build and the clippy step so both see the same flags. The test guests must
/// have been built first ([`build_guests`]): the image embeds them.
pub fn cargo_for_target(board: &Board, subcommand: &str, profile: Profile) -> Command {
    let mut cmd = cargo_cross(board, subcommand, "platform", profile);
    cmd.env("SEPTUM_BOARD", &board.name)
        .env("SEPTUM_GUESTS_DIR", guests_dir(board));
    cmd
}

/// A cargo command for `package` on the board's target, with core and alloc built from source.
fn cargo_cross(board: &Board, subcommand: &str, package: &str, profile: Profile) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root())
        .arg(subcommand)
        .args(["-p", package, "--target", board.arch.target()])
        .args([
            "-Zbuild-std=core,alloc",
            "-Zbuild-std-features=compiler-builtins-mem",
        ])
        // build-std is unstable; the pinned stable toolchain allows it with this switch.
        .env("RUSTC_BOOTSTRAP", "1");
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    cmd
}

fn target_dir(board: &Board, profile: Profile) -> PathBuf {
    let dir = match profile {
        Profile::Debug => "debug",
        Profile::Release => "release",
    };
    root().join("target").join(board.arch.target()).join(dir)
}

/// Builds the test guests for the board's target (always optimised: they are small and their
/// scenarios count pages, so they should not spill to the stack) and writes each as a flat binary
/// into [`guests_dir`], which the image build then embeds.
pub fn build_guests(board: &Board) -> Result<PathBuf, String> {
    crate::deps::ensure_rust_src()?;
    process::run(&mut cargo_cross(
        board,
        "build",
        "test-guests",
        Profile::Release,
    ))?;
    let out = guests_dir(board);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    for name in GUESTS {
        let elf_path = target_dir(board, Profile::Release).join(name);
        let elf = std::fs::read(&elf_path).map_err(|e| format!("{}: {e}", elf_path.display()))?;
        let flat = flat::from_elf(&elf).map_err(|e| format!("guest {name}: {e}"))?;
        let path = out.join(format!("{name}.bin"));
        // Rewrite only on change, so the image's build script does not rerun needlessly.
        if std::fs::read(&path).ok().as_deref() != Some(flat.as_slice()) {
            std::fs::write(&path, &flat).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(out)
}

/// Builds board `board`'s image (test guests first) and everything it boots from.
pub fn build(board: &Board, profile: Profile) -> Result<Artifacts, String> {
    build_guests(board)?;
    process::run(&mut cargo_for_target(board, "build", profile))?;
    let built = target_dir(board, profile).join("septum");
    let out = out_dir(&board.name);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    // Every board builds to the same cargo path, so each one's ELF is copied out at once.
    let elf = out.join("septum.elf");
    std::fs::copy(&built, &elf).map_err(|e| format!("copy {}: {e}", built.display()))?;
    check_footprint(board, &elf)?;
    let mut artifacts = Artifacts {
        board: board.name.clone(),
        elf,
        iso: None,
        efi: None,
    };
    match board.boot {
        Boot::Direct => {}
        Boot::Grub => artifacts.iso = Some(grub_iso(&out, &artifacts.elf, "")?),
        Boot::Uefi => artifacts.efi = Some(efi_image(board, &out, &artifacts.elf)?),
    }
    Ok(artifacts)
}

/// The board's `hypervisor` range covers the linked image (code, data, and the heap and stacks in
/// .bss): only now is the image's real size known, so the checker's last rule runs here and a
/// board that would hand the hypervisor's memory to a partition fails the build.
fn check_footprint(board: &Board, elf: &Path) -> Result<(), String> {
    let bytes = std::fs::read(elf).map_err(|e| format!("{}: {e}", elf.display()))?;
    let (start, end) = flat::footprint(&bytes).map_err(|e| format!("{}: {e}", elf.display()))?;
    let checked = board_config::check::check_file(&board.file).map_err(|e| e.to_string())?;
    board_config::check::check_footprint(&checked, board_config::check::Footprint { start, end })
        .map_err(|e| {
            format!(
                "{e}\nthe image for board {} does not fit its hypervisor range",
                board.name
            )
        })
}

/// The firmware a GRUB ISO is made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrubFirmware {
    /// PC BIOS (`grub-pc-bin`): what Bochs and GRUB boards boot.
    Bios,
    /// x86_64 UEFI (`grub-efi-amd64-bin`): the ISO's El Torito EFI image holds GRUB as
    /// `/efi/boot/bootx64.efi`, which OVMF starts from the CD.
    Uefi,
}

impl GrubFirmware {
    /// GRUB's platform directory. Naming it makes `grub-mkrescue` build for this firmware alone
    /// (by default it builds for every platform installed, and the module lists differ).
    fn dir(self) -> &'static str {
        match self {
            GrubFirmware::Bios => "/usr/lib/grub/i386-pc",
            GrubFirmware::Uefi => "/usr/lib/grub/x86_64-efi",
        }
    }

    /// The modules built into GRUB's core image.
    fn modules(self) -> &'static str {
        match self {
            GrubFirmware::Bios => "multiboot2 normal serial terminal configfile iso9660 biosdisk",
            GrubFirmware::Uefi => "multiboot2 normal serial terminal configfile iso9660 part_msdos",
        }
    }

    /// The modules copied onto the ISO: for BIOS only those the boot needs (an ISO near 2 MB
    /// instead of 10); for UEFI all of them, since the EFI image's own start-up script loads
    /// every partition-map module and prints an error for each one missing.
    fn installed(self) -> Option<&'static str> {
        match self {
            GrubFirmware::Bios => Some(self.modules()),
            GrubFirmware::Uefi => None,
        }
    }
}

/// A BIOS GRUB ISO in `out` that boots the ELF with multiboot2, command line `args`, and the
/// console on COM1.
pub fn grub_iso(out: &Path, elf: &Path, args: &str) -> Result<PathBuf, String> {
    grub_iso_for(GrubFirmware::Bios, out, elf, args)
}

/// A GRUB ISO for `firmware` in `out`, booting the ELF as [`grub_iso`] says.
pub fn grub_iso_for(
    firmware: GrubFirmware,
    out: &Path,
    elf: &Path,
    args: &str,
) -> Result<PathBuf, String> {
    let entry = format!("multiboot2 /boot/septum.elf {args}");
    let iso = match firmware {
        GrubFirmware::Bios => "septum.iso",
        GrubFirmware::Uefi => "septum-uefi.iso",
    };
    make_grub_iso(firmware, out, &[(elf, "septum.elf")], &entry, iso, "")
}

/// A BIOS GRUB ISO in `out` that boots a Linux kernel and initramfs itself (no hypervisor),
/// command line `args`: the bare boot a Linux partition's is compared with.
pub fn grub_linux_iso(
    out: &Path,
    kernel: &Path,
    initrd: &Path,
    args: &str,
) -> Result<PathBuf, String> {
    let entry = format!("linux /boot/vmlinuz {args}\n  initrd /boot/initrd");
    let files = [(kernel, "vmlinuz"), (initrd, "initrd")];
    make_grub_iso(
        GrubFirmware::Bios,
        out,
        &files,
        &entry,
        "linux.iso",
        "linux",
    )
}

/// Lays `files` out under `boot/` of a tree in `out`, with a grub.cfg whose one entry runs
/// `entry` with the console on COM1, and makes ISO `iso` of it (`more_modules` joins the core
/// image's modules).
fn make_grub_iso(
    firmware: GrubFirmware,
    out: &Path,
    files: &[(&Path, &str)],
    entry: &str,
    iso: &str,
    more_modules: &str,
) -> Result<PathBuf, String> {
    let tree = out.join("iso");
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(tree.join("boot/grub")).map_err(|e| e.to_string())?;
    for (src, name) in files {
        std::fs::copy(src, tree.join("boot").join(name))
            .map_err(|e| format!("{}: {e}", src.display()))?;
    }
    let cfg = format!(
        "set timeout=0\nset default=0\nserial --unit=0 --speed=115200\nterminal_input serial\n\
         terminal_output serial\nmenuentry \"Septum\" {{\n  {entry}\n  boot\n}}\n"
    );
    std::fs::write(tree.join("boot/grub/grub.cfg"), cfg).map_err(|e| e.to_string())?;
    let iso = out.join(iso);
    let modules = format!("{} {more_modules}", firmware.modules());
    let mut cmd = Command::new("grub-mkrescue");
    cmd.args(["-d", firmware.dir()]);
    if firmware.installed().is_some() {
        cmd.arg(format!("--install-modules={modules}"));
    }
    cmd.arg(format!("--modules={}", modules.trim()))
        .args(["--locales=", "--fonts=", "--themes=", "-o"])
        .arg(&iso)
        .arg(&tree);
    process::run_quiet(&mut cmd)?;
    Ok(iso)
}

/// The EFI application for UEFI boards: the ELF's loadable segments as one flat file. The image
/// starts with its own PE32+ (and LoongArch Linux image) header, so the file is checked for both
/// before it is called an EFI application.
fn efi_image(board: &Board, out: &Path, elf: &Path) -> Result<PathBuf, String> {
    let bytes = std::fs::read(elf).map_err(|e| format!("{}: {e}", elf.display()))?;
    let image = flat::from_elf(&bytes)?;
    flat::check_pe(&image, board.arch == Arch::LoongArch64)
        .map_err(|e| format!("{}: the image is not an EFI application: {e}", board.name))?;
    let name = match board.arch {
        Arch::LoongArch64 => "BOOTLOONGARCH64.EFI",
        Arch::X86_64 => "BOOTX64.EFI",
    };
    let esp = out.join("esp/EFI/BOOT");
    std::fs::create_dir_all(&esp).map_err(|e| e.to_string())?;
    let path = esp.join(name);
    std::fs::write(&path, &image).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}
