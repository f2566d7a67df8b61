//! `cargo xtask`: the developer tool behind the README's commands. It builds board images, boots
//! them in their emulators, and runs every check the project has, ending with a summary table.
//!
//! ```text
//! cargo xtask build --board B            image for board B (ELF, plus ISO or EFI image)
//! cargo xtask run [--board B] [--lvz] [-- ARGS]  build and boot B in its emulator (LoongArch:
//!                                        --lvz boots QEMU-LVZ, as a Linux board always does),
//!                                        console on the terminal
//! cargo xtask test [FILTER]              fmt, clippy, host tests, cross-builds, boot tests, bench
//! cargo xtask check-config FILE          check a board file and print its summary
//! cargo xtask bench mmu [--short]        the mmu benchmark
//! cargo xtask fuzz TARGET [--time S]     run one libFuzzer target, adding finds to its corpus
//! cargo xtask setup                      install the emulators (Debian, as root), build QEMU-LVZ
//! ```

mod boards;
mod boot_test;
mod cache;
mod deps;
mod emulator;
mod flat;
mod fuzz;
mod image;
mod la_linux;
mod linux;
mod linux_bare;
mod module_cycles;
mod process;
mod qemu_lvz;
mod scenarios;
mod suite;
mod uefi;

use std::path::PathBuf;
use std::process::ExitCode;

/// The board `cargo xtask run` boots when none is named: the one where the most runs.
pub const DEFAULT_BOARD: &str = "qemu-virt-la64";

/// The workspace root (this crate lives in `scripts/xtask`).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo xtask <command>\n\
         \n  build --board B [--debug]          build the image for board B\
         \n  run [--board B] [--timeout S] [--lvz] [-- KERNEL-ARGS]\
         \n                                     build and boot B in its emulator (default {DEFAULT_BOARD})\
         \n  test [FILTER]                      everything: fmt, clippy, host tests, builds, boot tests\
         \n  check-config FILE                  check a board file and print its summary\
         \n  bench mmu [--short]                run the mmu benchmark\
         \n  fuzz TARGET [--time S]             run a fuzz target for S seconds (default 60)\
         \n  setup                              install missing emulators (Debian, as root)\
         \n\nboards: {}",
        boards::names().join(", ")
    );
    ExitCode::from(2)
}

/// Takes `--flag VALUE` out of `args`.
fn take_option(args: &mut Vec<String>, flag: &str) -> Result<Option<String>, String> {
    match args.iter().position(|a| a == flag) {
        None => Ok(None),
        Some(i) if i + 1 < args.len() => {
            let value = args.remove(i + 1);
            args.remove(i);
            Ok(Some(value))
        }
        Some(_) => Err(format!("{flag} needs a value")),
    }
}

fn take_flag(args: &mut Vec<String>, flag: &str) -> bool {
    match args.iter().position(|a| a == flag) {
        Some(i) => {
            args.remove(i);
            true
        }
        None => false,
    }
}

fn run_command(mut args: Vec<String>) -> Result<bool, String> {
    if args.is_empty() {
        return Err(String::new());
    }
    let command = args.remove(0);
    // Everything after `--` goes to the kernel command line.
    let extra = match args.iter().position(|a| a == "--") {
        Some(i) => {
            let rest = args.split_off(i + 1);
            args.pop();
            rest.join(" ")
        }
        None => String::new(),
    };
    match command.as_str() {
        "build" => {
            let board = take_option(&mut args, "--board")?.ok_or("build needs --board B")?;
            let profile = if take_flag(&mut args, "--debug") {
                image::Profile::Debug
            } else {
                image::Profile::Release
            };
            reject_rest(&args)?;
            let board = boards::load(&board)?;
            let artifacts = image::build(&board, profile)?;
            artifacts.print();
            Ok(true)
        }
        "run" => {
            let board = take_option(&mut args, "--board")?.unwrap_or_else(|| DEFAULT_BOARD.into());
            let timeout = match take_option(&mut args, "--timeout")? {
                Some(t) => t
                    .parse()
                    .map_err(|_| format!("--timeout takes seconds, not {t:?}"))?,
                None => 600,
            };
            let lvz = take_flag(&mut args, "--lvz");
            reject_rest(&args)?;
            let board = boards::load(&board)?;
            // A LoongArch Linux partition needs LVZ: its board always boots on QEMU-LVZ.
            let flavour = if lvz || la_linux::board_uses_images(&board.file) {
                emulator::Flavour::Lvz
            } else {
                emulator::Flavour::Stock
            };
            deps::ensure(&board)?;
            let artifacts = image::build(&board, image::Profile::Release)?;
            let status = emulator::run_interactive(&board, &artifacts, &extra, timeout, flavour)?;
            println!(
                "\nxtask: {} exited with status {status}",
                board.emulator_name()
            );
            Ok(board.is_success(status))
        }
        "test" => {
            let filter = args.first().cloned();
            Ok(suite::run(filter.as_deref()))
        }
        "check-config" => {
            let [file] = args.as_slice() else {
                return Err("check-config takes one FILE".into());
            };
            Ok(boards::check_config(&PathBuf::from(file)))
        }
        "bench" => {
            let short = take_flag(&mut args, "--short");
            match args.as_slice() {
                [what] if what == "mmu" => suite::bench_mmu(short),
                _ => Err("bench takes `mmu`".into()),
            }
        }
        "fuzz" => {
            let time = match take_option(&mut args, "--time")? {
                Some(t) => t
                    .parse()
                    .map_err(|_| format!("--time takes seconds, not {t:?}"))?,
                None => 60,
            };
            let [target] = args.as_slice() else {
                return Err(format!(
                    "fuzz takes one TARGET: {}",
                    fuzz::TARGETS.join(", ")
                ));
            };
            fuzz::run_one(target, time)
        }
        "setup" => {
            reject_rest(&args)?;
            deps::ensure_all()?;
            println!("xtask: QEMU-LVZ is {}", qemu_lvz::ensure()?.display());
            la_linux::ensure_images()?;
            let (vmlinux, _, initrd) = la_linux::cached_paths()?;
            println!(
                "xtask: the LoongArch Linux guest is {} and {}",
                vmlinux.display(),
                initrd.display()
            );
            Ok(true)
        }
        other => Err(format!("unknown command {other:?}")),
    }
}

fn reject_rest(args: &[String]) -> Result<(), String> {
    match args.first() {
        None => Ok(()),
        Some(a) => Err(format!("unexpected argument {a:?}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run_command(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) if e.is_empty() => usage(),
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}
