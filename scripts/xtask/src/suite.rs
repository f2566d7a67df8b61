//! `cargo xtask test`: every check the project has, in the order a failure is cheapest to find —
//! formatting, lints, host tests, cross-builds of every board, emulator boot tests, and the mmu
//! benchmark in its short mode — ending with one summary row per test.

use crate::boards::{self, Board};
use crate::boot_test;
use crate::image::{self, Artifacts, Profile};
use crate::scenarios::{boot_tests, not_under_lvz};
use crate::{deps, fuzz, process, root};
use std::collections::HashMap;
use std::process::Command;
use std::time::Instant;

/// One row of the summary.
struct Row {
    test: String,
    board: String,
    passed: bool,
    seconds: f64,
}

struct Suite {
    filter: Option<String>,
    rows: Vec<Row>,
    failures: Vec<String>,
    /// LoongArch scenarios left out under LVZ, with why (printed, never silent).
    not_run: Vec<String>,
    built: HashMap<String, Result<Artifacts, String>>,
}

impl Suite {
    fn selected(&self, test: &str, board: &str) -> bool {
        self.filter
            .as_deref()
            .is_none_or(|f| test.contains(f) || board.contains(f))
    }

    /// Runs one step if the filter selects it, recording its row.
    fn step(&mut self, test: &str, board: &str, f: impl FnOnce(&mut Self) -> Result<(), String>) {
        if !self.selected(test, board) {
            return;
        }
        eprintln!("\n=== {test} [{board}]");
        let start = Instant::now();
        let result = f(self);
        let seconds = start.elapsed().as_secs_f64();
        if let Err(e) = &result {
            eprintln!("{e}");
            self.failures.push(format!("{test} [{board}]: {e}"));
        }
        self.rows.push(Row {
            test: test.into(),
            board: board.into(),
            passed: result.is_ok(),
            seconds,
        });
    }

    /// Builds a board once per suite run; later steps reuse the artifacts (or the error).
    fn artifacts(&mut self, board: &Board) -> Result<&Artifacts, String> {
        if !self.built.contains_key(&board.name) {
            let result = image::build(board, Profile::Release);
            self.built.insert(board.name.clone(), result);
        }
        self.built[&board.name]
            .as_ref()
            .map_err(|e| format!("image for {} did not build: {e}", board.name))
    }

    fn print_summary(&self) {
        println!(
            "\n{:<28} {:<26} {:<6} {:>8}",
            "test", "board", "result", "seconds"
        );
        println!("{}", "-".repeat(71));
        for r in &self.rows {
            let result = if r.passed { "pass" } else { "FAIL" };
            println!(
                "{:<28} {:<26} {:<6} {:>8.1}",
                r.test, r.board, result, r.seconds
            );
        }
        let passed = self.rows.iter().filter(|r| r.passed).count();
        println!(
            "\nsummary: {} passed, {} failed",
            passed,
            self.rows.len() - passed
        );
        for n in &self.not_run {
            println!("not run under LVZ: {n}");
        }
    }
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// `cargo xtask bench mmu`: the benchmark in full, or in its short mode (small sizes, every row).
pub fn bench_mmu(short: bool) -> Result<bool, String> {
    let mut cmd = cargo();
    cmd.args(["bench", "-p", "mmu"]);
    if short {
        cmd.env("SEPTUM_BENCH_SHORT", "1");
    }
    process::run(&mut cmd).map(|()| true)
}

/// Runs the suite (or the steps whose test or board name contains `filter`). True when all passed.
pub fn run(filter: Option<&str>) -> bool {
    let mut suite = Suite {
        filter: filter.map(str::to_owned),
        rows: Vec::new(),
        failures: Vec::new(),
        not_run: Vec::new(),
        built: HashMap::new(),
    };
    suite.step("emulators installed", "-", |_| deps::ensure_all());
    suite.step("fmt", "-", |_| {
        process::run(cargo().args(["fmt", "--all", "--check"]))
    });
    suite.step("clippy (host crates)", "-", |_| {
        process::run(cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]))
    });
    // Every test binary runs even when an earlier one fails, so one run shows every failure.
    suite.step("host tests", "-", |_| {
        process::run(cargo().args(["test", "--no-fail-fast"]))
    });
    // The partition engine is built for one architecture at a time; the plain runs above take
    // its default (x86), these its LoongArch build, so both architectures' paths are tested.
    const ENGINE_LA: [&str; 5] = [
        "-p",
        "partition",
        "--no-default-features",
        "--features",
        "loongarch",
    ];
    suite.step("clippy (partition, loongarch)", "-", |_| {
        process::run(cargo().arg("clippy").args(ENGINE_LA).args([
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    });
    suite.step("host tests (partition, loongarch)", "-", |_| {
        process::run(cargo().arg("test").args(ENGINE_LA))
    });
    for (name, krate) in [("image", "platform"), ("partition", "partition")] {
        suite.step(&format!("module cycles ({name})"), "-", move |_| {
            let src = crate::root().join(krate).join("src");
            for line in crate::module_cycles::check(&src)? {
                eprintln!("{line}");
            }
            Ok(())
        });
    }
    suite.step("clippy (fuzz targets)", "-", |_| {
        process::run(cargo().args([
            "clippy",
            "-p",
            "septum-fuzz",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    });
    let fuzz_selected = fuzz::TARGETS
        .iter()
        .any(|t| suite.selected(&format!("fuzz: {t}"), "-"));
    if fuzz_selected {
        let bins = fuzz::build();
        for target in fuzz::TARGETS {
            suite.step(&format!("fuzz: {target}"), "-", |_| {
                let bins = bins.as_ref().map_err(|e| format!("fuzz build: {e}"))?;
                let n = fuzz::run_brief(bins, target)?;
                eprintln!("{target}: {n} executions in {} s", fuzz::TEST_SECONDS);
                Ok(())
            });
        }
    }

    let boards: Vec<Board> = match boards::names().iter().map(|n| boards::load(n)).collect() {
        Ok(b) => b,
        Err(e) => {
            suite.step("board files", "-", |_| Err(e));
            Vec::new()
        }
    };
    let mut linted_arch = Vec::new();
    for board in &boards {
        if !linted_arch.contains(&board.arch) {
            linted_arch.push(board.arch);
            suite.step("clippy (image)", &board.name, |_| {
                image::build_guests(board)?;
                process::run(
                    image::cargo_for_target(board, "clippy", Profile::Release)
                        .args(["--", "-D", "warnings"]),
                )
            });
        }
        suite.step("check-config", &board.name, |_| {
            if boards::check_config(&board.file) {
                Ok(())
            } else {
                Err(format!(
                    "{} does not pass the board checker",
                    board.file.display()
                ))
            }
        });
        suite.step("build", &board.name, |s| {
            s.artifacts(board).map(|a| a.print())
        });
    }
    let tests = boot_tests();
    for (what, why) in not_under_lvz() {
        if suite.selected(&what, "lvz") {
            eprintln!("not run under LVZ: {what} ({why})");
            suite.not_run.push(format!("{what}: {why}"));
        }
    }
    for test in tests {
        let name = format!("boot: {}", test.name);
        suite.step(&name, &test.board_label(), |s| {
            let board = boards::load(test.board)?;
            deps::ensure(&board)?;
            let artifacts = s.artifacts(&board)?;
            boot_test::run(&test, artifacts)
                .map(|elapsed| eprintln!("passed in {:.1} s", elapsed.as_secs_f64()))
        });
    }
    // Issue 16: the Linux partition beside the same kernel on the bare emulator, after the
    // partition's boot test, whose log it reads.
    for board in boards.iter().filter(|b| crate::linux_bare::compares(b)) {
        suite.step("linux: partition vs bare", &board.name, |_| {
            crate::linux_bare::compare(board)
        });
    }
    suite.step("bench mmu (short)", "-", |_| bench_mmu(true).map(|_| ()));

    suite.print_summary();
    if !suite.failures.is_empty() {
        println!("\nfailed:");
        for f in &suite.failures {
            println!("  {}", f.lines().next().unwrap_or(""));
        }
    }
    suite.failures.is_empty() && !suite.rows.is_empty()
}
