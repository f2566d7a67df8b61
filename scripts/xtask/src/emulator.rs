//! Emulator command lines for each board, and the two ways of running them: attached to the
//! terminal (`cargo xtask run`) or captured for a boot test. Every run is bounded by a timeout.

use crate::boards::{Arch, Board, Boot, Emulator};
use crate::image::{self, Artifacts};
use crate::process::{self, Bounded};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where the guest's serial console goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Serial {
    Terminal,
    Captured,
}

/// A prepared emulator invocation.
struct Invocation {
    cmd: Command,
    /// The file the serial console is written to when it is not the process's stdout (Bochs).
    serial_file: Option<PathBuf>,
    /// Whether the emulator's stderr goes to a file of its own (QEMU-LVZ's debug flood).
    split_stderr: bool,
}

/// Set (to anything) to keep QEMU-LVZ's per-exit debug log, in the run's `emulator.err`.
pub const LVZ_DEBUG_LOG: &str = "SEPTUM_LVZ_DEBUG_LOG";

/// Which LoongArch emulator a run uses: Debian's QEMU (no LVZ: the deprivileged backend) or
/// QEMU-LVZ (`qemu_lvz.rs`: the LVZ backend).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    Stock,
    Lvz,
}

impl Flavour {
    /// The backend the image is expected to choose under this emulator, for the summary's
    /// board column (`qemu-virt-la64/lvz`).
    pub fn suffix(self) -> &'static str {
        match self {
            Flavour::Stock => "depriv",
            Flavour::Lvz => "lvz",
        }
    }

    fn qemu_loongarch(self) -> Result<PathBuf, String> {
        match self {
            Flavour::Stock => Ok(PathBuf::from("qemu-system-loongarch64")),
            Flavour::Lvz => crate::qemu_lvz::ensure(),
        }
    }
}

fn qemu_loongarch(board: &Board, elf: &Path, args: &str, program: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(["-M", "virt", "-cpu", "max", "-m", "1G", "-smp"])
        .arg(board.cpus.to_string())
        .args([
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-nic",
            "none",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(elf)
        .args(["-append", args])
        // A failing run ends through pvpanic, which this turns into exit status 1.
        .args([
            "-device",
            "pvpanic-pci,addr=0x5",
            "-action",
            "panic=exit-failure",
        ]);
    cmd
}

/// A LoongArch UEFI board's EFI image on QEMU `virt` under edk2 (`uefi.rs`): the firmware boots
/// `/EFI/BOOT/BOOTLOONGARCH64.EFI` from a FAT view of the image's ESP directory. QEMU's `virt`
/// is not the board, but the image takes its memory from the UEFI map, so the boot path, the
/// EFI entry and ExitBootServices are exercised here; 4 GiB covers the board file's RAM.
fn qemu_loongarch_uefi(
    board: &Board,
    artifacts: &Artifacts,
    program: &Path,
) -> Result<Command, String> {
    let firmware = crate::uefi::ensure_firmware()?;
    let efi = artifacts
        .efi
        .as_ref()
        .ok_or("the UEFI board has no EFI image")?;
    // out/<board>/esp/EFI/BOOT/BOOTLOONGARCH64.EFI -> out/<board>/esp
    let esp = efi
        .ancestors()
        .nth(3)
        .ok_or("the EFI image is not in an ESP tree")?;
    let mut cmd = Command::new(program);
    cmd.args(["-M", "virt", "-cpu", "max", "-m", "4G", "-smp"])
        .arg(board.cpus.to_string())
        .args([
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-nic",
            "none",
            "-no-reboot",
            "-bios",
        ])
        .arg(firmware)
        .arg("-drive")
        .arg(format!(
            "file=fat:rw:{},format=raw,if=virtio",
            esp.display()
        ))
        .args([
            "-device",
            "pvpanic-pci,addr=0x5",
            "-action",
            "panic=exit-failure",
        ]);
    Ok(cmd)
}

fn qemu_x86(board: &Board, elf: &Path, args: &str) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg", "-cpu", "max", "-m"])
        .arg(format!("{}M", board.memory_mib()))
        .arg("-smp")
        .arg(board.cpus.to_string())
        .args([
            "-nic",
            "none",
            "-bios",
            "/usr/share/qemu/qboot.rom",
            "-kernel",
        ])
        .arg(elf)
        .args(["-append", args])
        .args([
            "-display",
            "none",
            "-serial",
            "stdio",
            // COM2, the worker partition's device (its interrupt line 3 is the device-IRQ
            // test's); `-serial` options fill COM1, COM2, ... in order, so COM1 stays on stdio.
            "-serial",
            "null",
            "-monitor",
            "none",
            "-no-reboot",
        ])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4"]);
    cmd
}

/// OVMF from Debian's `ovmf` package: code and variables in one image, for `-bios`.
const OVMF: &str = "/usr/share/ovmf/OVMF.fd";

/// A real x86 GRUB board (no emulator in its file) booted the way a UEFI PC boots it: OVMF starts
/// GRUB's EFI image from a CD (`image::GrubFirmware::Uefi`), and GRUB loads the ELF with
/// multiboot2 from the same ISO, command line `args`. TCG's `-cpu max` has no VMX, so the image
/// runs its partitions under SVM; the memory is the board file's 2 GiB of RAM, and the image ends
/// the run through isa-debug-exit as on the QEMU board.
fn qemu_x86_uefi(board: &Board, elf: &Path, args: &str, dir: &Path) -> Result<Command, String> {
    let iso = image::grub_iso_for(image::GrubFirmware::Uefi, dir, elf, args)?;
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg", "-cpu", "max", "-m", "2G", "-smp"])
        .arg(board.cpus.to_string())
        .args(["-nic", "none", "-bios", OVMF, "-cdrom"])
        .arg(iso)
        .args([
            "-display",
            "none",
            "-serial",
            "stdio",
            "-monitor",
            "none",
            "-no-reboot",
        ])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4"]);
    Ok(cmd)
}

/// Bochs booting `iso` with `megs` MiB and `cpus` CPUs, COM1 written to `com1`, its files in
/// `dir` (config, debugger script, log): the command to run there. `bare_linux`: a kernel
/// booted without the hypervisor reads MSRs Bochs does not model (IA32_MISC_ENABLE first,
/// before it has an IDT), so unknown MSRs read 0 there; the hypervisor's runs keep the strict
/// setting, where such a read is a fault.
pub fn bochs_command(
    dir: &Path,
    iso: &Path,
    megs: u64,
    cpus: u32,
    com1: &str,
    bare_linux: bool,
) -> Result<Command, String> {
    let ignore_bad_msrs = u8::from(bare_linux);
    let rc = format!(
        "megs: {megs}\n\
         romimage: file=/usr/share/bochs/BIOS-bochs-latest\n\
         vgaromimage: file=/usr/share/vgabios/vgabios.bin\n\
         cpu: model=corei7_skylake_x, count={cpus}, ips=4000000, reset_on_triple_fault=0, ignore_bad_msrs={ignore_bad_msrs}\n\
         ata0: enabled=1, ioaddr1=0x1f0, ioaddr2=0x3f0, irq=14\n\
         ata0-slave: type=cdrom, path={iso}, status=inserted\n\
         boot: cdrom\n\
         display_library: rfb, options=\"timeout=0\"\n\
         com1: enabled=1, mode=file, dev={com1}\n\
         com2: enabled=1, mode=file, dev=com2.out\n\
         clock: sync=none, time0=946684800\n\
         log: {log}\n\
         panic: action=fatal\nerror: action=report\ninfo: action=report\ndebug: action=ignore\n\
         speaker: enabled=0\n\
         sound: waveoutdrv=dummy, waveindrv=dummy, midioutdrv=dummy\n\
         magic_break: enabled=1\n",
        iso = iso.display(),
        log = dir.join("bochs.log").display(),
    );
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("bochsrc"), rc).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("cont.rc"), "continue\nquit\n").map_err(|e| e.to_string())?;
    let mut cmd = Command::new("bochs-bin");
    cmd.current_dir(dir)
        .args(["-q", "-f", "bochsrc", "-rc", "cont.rc"]);
    Ok(cmd)
}

/// Bochs wants a config file, a debugger script (the Debian build has the debugger, and without a
/// script it stops at the first instruction) and an ISO carrying the command line in grub.cfg.
fn bochs(
    board: &Board,
    artifacts: &Artifacts,
    args: &str,
    dir: &Path,
    serial: Serial,
) -> Result<Invocation, String> {
    let iso = if args.is_empty() {
        artifacts.iso.clone().ok_or("the Bochs board has no ISO")?
    } else {
        image::grub_iso(dir, &artifacts.elf, args)?
    };
    let serial_file = dir.join("serial.out");
    let com1 = match serial {
        Serial::Terminal => "/dev/stdout".to_string(),
        Serial::Captured => serial_file.display().to_string(),
    };
    let _ = std::fs::remove_file(&serial_file);
    let cmd = bochs_command(dir, &iso, board.memory_mib(), board.cpus, &com1, false)?;
    Ok(Invocation {
        cmd,
        serial_file: (serial == Serial::Captured).then_some(serial_file),
        split_stderr: false,
    })
}

fn invocation(
    board: &Board,
    artifacts: &Artifacts,
    args: &str,
    dir: &Path,
    serial: Serial,
    flavour: Flavour,
) -> Result<Invocation, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let plain = |cmd| Invocation {
        cmd,
        serial_file: None,
        split_stderr: false,
    };
    let loongarch = |mut cmd: Command| {
        // QEMU-LVZ logs a line for every guest exit (hundreds of MB for a Linux boot); its log
        // goes nowhere unless asked for, which also spares the emulator the writes.
        if flavour == Flavour::Lvz && std::env::var_os(LVZ_DEBUG_LOG).is_none() {
            cmd.args(["-D", "/dev/null"]);
        }
        Invocation {
            cmd,
            serial_file: None,
            split_stderr: flavour == Flavour::Lvz,
        }
    };
    match board.emulator {
        Some(Emulator::QemuLoongArch) => Ok(loongarch(qemu_loongarch(
            board,
            &artifacts.elf,
            args,
            &flavour.qemu_loongarch()?,
        ))),
        Some(Emulator::QemuX86) => Ok(plain(qemu_x86(board, &artifacts.elf, args))),
        Some(Emulator::Bochs) => bochs(board, artifacts, args, dir, serial),
        None if board.boot == Boot::Uefi && board.arch == Arch::LoongArch64 => Ok(loongarch(
            qemu_loongarch_uefi(board, artifacts, &flavour.qemu_loongarch()?)?,
        )),
        None if board.boot == Boot::Grub && board.arch == Arch::X86_64 => {
            Ok(plain(qemu_x86_uefi(board, &artifacts.elf, args, dir)?))
        }
        None => Err(format!(
            "board {} is real hardware with no emulator; flash {} instead",
            board.name,
            artifacts
                .iso
                .as_ref()
                .or(artifacts.efi.as_ref())
                .unwrap_or(&artifacts.elf)
                .display()
        )),
    }
}

/// Boots `board` with its console on this terminal. Returns the emulator's exit status.
pub fn run_interactive(
    board: &Board,
    artifacts: &Artifacts,
    args: &str,
    timeout_secs: u64,
    flavour: Flavour,
) -> Result<i32, String> {
    let dir = image::out_dir(&board.name).join("run");
    let mut inv = invocation(board, artifacts, args, &dir, Serial::Terminal, flavour)?;
    if board.emulator == Some(Emulator::Bochs) {
        inv.cmd.stdin(std::process::Stdio::null());
    }
    if inv.split_stderr {
        let err = dir.join("emulator.err");
        eprintln!("xtask: QEMU-LVZ's debug output goes to {}", err.display());
        let f = std::fs::File::create(&err).map_err(|e| format!("{}: {e}", err.display()))?;
        inv.cmd.stderr(f);
    }
    let Bounded { status, elapsed } =
        process::run_attached(&mut inv.cmd, Duration::from_secs(timeout_secs))?;
    status.ok_or_else(|| {
        format!(
            "{} still running after {:.0} s: killed",
            board.emulator_name(),
            elapsed.as_secs_f64()
        )
    })
}

/// The outcome of a captured run.
pub struct Captured {
    pub status: Option<i32>,
    pub elapsed: Duration,
    /// What the guest printed on its serial console.
    pub serial: String,
    /// Where the run's files are (emulator output, Bochs log), for a failure report.
    pub dir: PathBuf,
}

/// Boots `board` with command line `args`, capturing the serial console, killed after `timeout`.
pub fn run_captured(
    board: &Board,
    artifacts: &Artifacts,
    args: &str,
    tag: &str,
    timeout: Duration,
    flavour: Flavour,
) -> Result<Captured, String> {
    let dir = image::out_dir(&board.name).join(format!("test-{tag}"));
    let mut inv = invocation(board, artifacts, args, &dir, Serial::Captured, flavour)?;
    let output = dir.join("emulator.out");
    let err_log = inv.split_stderr.then(|| dir.join("emulator.err"));
    // A real board's image parks after saying how the run ended (`power.rs`); on an emulator
    // standing in for the board that line ends the run with the board's status.
    let ends: &[(&str, i32)] = if board.emulator.is_none() {
        &[
            ("exit: success, parking", board.success_status()),
            ("exit: FAILURE, parking", board.failure_status()),
        ]
    } else {
        &[]
    };
    let Bounded { status, elapsed } =
        process::run_bounded_split(&mut inv.cmd, &output, err_log.as_deref(), timeout, ends)?;
    let serial_path = inv.serial_file.unwrap_or(output);
    let serial =
        String::from_utf8_lossy(&std::fs::read(&serial_path).unwrap_or_default()).replace('\r', "");
    Ok(Captured {
        status,
        elapsed,
        serial,
        dir,
    })
}
