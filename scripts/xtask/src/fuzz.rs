//! The libFuzzer targets of `fuzz/`: built with the sanitizer-coverage passes the stable toolchain
//! has (libFuzzer itself comes from the `libfuzzer-sys` crate, compiled from source), into their
//! own target directory so the normal build is untouched. `cargo xtask fuzz TARGET [--time S]`
//! runs one target and grows its corpus; `cargo xtask test` runs each briefly from the committed
//! corpus into a scratch directory, so a test run never changes the tree.

use crate::{process, root};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Every target, as named in `fuzz/Cargo.toml`.
pub const TARGETS: &[&str] = &[
    "board_checker",
    "hypercall",
    "x86_mmio",
    "loongarch_badi",
    "ipi_mailbox",
    "x2apic",
    "ioapic",
    "pch_pic",
    "mmu_ops",
];

/// Seconds each target runs in `cargo xtask test`: about a minute across all nine.
pub const TEST_SECONDS: u64 = 7;

// Coverage instrumentation without `-Z` flags: inline 8-bit counters and a PC table are what
// libFuzzer's coverage feedback reads; compare tracing lets it solve magic numbers.
const RUSTFLAGS: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing";

fn host_triple() -> &'static str {
    // An explicit --target keeps the flags off build scripts and proc macros.
    "x86_64-unknown-linux-gnu"
}

fn target_dir() -> PathBuf {
    root().join("target/fuzz")
}

/// Builds every target; returns the folder holding the binaries.
pub fn build() -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root())
        .env("RUSTFLAGS", RUSTFLAGS)
        .args(["build", "-p", "septum-fuzz", "--bins", "--profile", "fuzz"])
        .args(["--target", host_triple()])
        .arg("--target-dir")
        .arg(target_dir());
    process::run(&mut cmd)?;
    Ok(target_dir().join(host_triple()).join("fuzz"))
}

fn check_name(target: &str) -> Result<(), String> {
    if TARGETS.contains(&target) {
        Ok(())
    } else {
        Err(format!(
            "no fuzz target {target:?} (targets: {})",
            TARGETS.join(", ")
        ))
    }
}

fn corpus(target: &str) -> PathBuf {
    root().join("fuzz/corpus").join(target)
}

fn artifacts(target: &str) -> Result<PathBuf, String> {
    let dir = target_dir().join("artifacts").join(target);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

fn fuzzer(bins: &std::path::Path, target: &str, seconds: u64) -> Result<Command, String> {
    let mut cmd = Command::new(bins.join(target));
    cmd.arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        // Every answer should come well under a second; ten is a hang.
        .arg("-timeout=10")
        .arg(format!(
            "-artifact_prefix={}/",
            artifacts(target)?.display()
        ));
    Ok(cmd)
}

/// `cargo xtask fuzz TARGET --time S`: new inputs go into the committed corpus folder.
pub fn run_one(target: &str, seconds: u64) -> Result<bool, String> {
    check_name(target)?;
    let bins = build()?;
    let mut cmd = fuzzer(&bins, target, seconds)?;
    cmd.arg(corpus(target));
    let run = process::run_attached(&mut cmd, Duration::from_secs(seconds + 120))?;
    Ok(run.status == Some(0))
}

/// One brief run from the committed corpus; the executions count on success, the crash on failure.
pub fn run_brief(bins: &std::path::Path, target: &str) -> Result<u64, String> {
    let scratch = target_dir().join("scratch").join(target);
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let log = target_dir().join(format!("{target}.log"));
    let mut cmd = fuzzer(bins, target, TEST_SECONDS)?;
    cmd.arg(&scratch).arg(corpus(target));
    eprintln!("+ {}", process::show(&cmd));
    let run =
        process::run_bounded_until(&mut cmd, &log, Duration::from_secs(TEST_SECONDS + 120), &[])?;
    let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
    let execs = text
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|v| v.trim().parse().ok());
    match (run.status, execs) {
        (Some(0), Some(n)) => Ok(n),
        _ => {
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Err(format!(
                "fuzz target {target} failed (status {:?}); log {}; crash inputs in {}:\n{}",
                run.status,
                log.display(),
                artifacts(target)?.display(),
                tail.join("\n")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list here, the binaries of `fuzz/Cargo.toml` and the committed corpora agree, so a
    /// target added to one is run by `cargo xtask test` and starts from seeds.
    #[test]
    fn every_target_is_listed_built_and_seeded() {
        let manifest = std::fs::read_to_string(root().join("fuzz/Cargo.toml")).unwrap();
        let bins: Vec<&str> = manifest
            .lines()
            .filter_map(|l| l.strip_prefix("name = \""))
            .filter_map(|l| l.strip_suffix('"'))
            .filter(|&n| n != "septum-fuzz")
            .collect();
        let mut listed = TARGETS.to_vec();
        let mut built = bins.clone();
        listed.sort_unstable();
        built.sort_unstable();
        assert_eq!(
            listed, built,
            "TARGETS and fuzz/Cargo.toml's binaries differ"
        );
        for t in TARGETS {
            let seeds = std::fs::read_dir(corpus(t))
                .unwrap_or_else(|e| panic!("fuzz/corpus/{t}: {e}"))
                .count();
            assert!(seeds > 0, "fuzz/corpus/{t} has no seeds");
        }
    }
}
