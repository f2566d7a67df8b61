//! Boot tests: boot a board in its emulator under a timeout, then judge the run by its serial log
//! (expected lines in order, others anywhere, forbidden ones nowhere) and its exit status. A failed
//! test says which check failed and shows the last 40 lines of the log.

use crate::boards::{self, Board};
use crate::emulator::{self, Captured};
use crate::image::Artifacts;
use std::time::Duration;

/// How the run must end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The image reported success to the emulator.
    Success,
    /// The image reported failure (a deliberate panic or fault).
    Failure,
}

/// One boot test.
pub struct BootTest {
    pub name: &'static str,
    pub board: &'static str,
    /// The kernel command line.
    pub args: &'static str,
    /// Lines that must appear in this order (each a substring of one line).
    pub ordered: &'static [&'static str],
    /// Lines that must appear somewhere (CPUs report in any order).
    pub anywhere: &'static [&'static str],
    /// Text that must not appear anywhere.
    pub forbidden: &'static [&'static str],
    pub ending: Ending,
    pub timeout: Duration,
}

/// The checks of a boot test, applied to a finished run; every failed check is listed.
pub fn judge(test: &BootTest, board: &Board, run: &Captured) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let lines: Vec<&str> = run.serial.lines().collect();
    let mut at = 0;
    for want in test.ordered {
        match lines[at..].iter().position(|l| l.contains(want)) {
            Some(i) => at += i + 1,
            None => {
                let earlier = lines[..at].iter().any(|l| l.contains(want));
                problems.push(if earlier {
                    format!("line {want:?} appeared, but not after the lines expected before it")
                } else {
                    format!("missing line {want:?}")
                });
            }
        }
    }
    for want in test.anywhere {
        if !lines.iter().any(|l| l.contains(want)) {
            problems.push(format!("missing line {want:?}"));
        }
    }
    for bad in test.forbidden {
        if let Some(l) = lines.iter().find(|l| l.contains(bad)) {
            problems.push(format!("forbidden {bad:?} in line {l:?}"));
        }
    }
    let want_status = match test.ending {
        Ending::Success => board.success_status(),
        Ending::Failure => board.failure_status(),
    };
    match run.status {
        None => problems.push(format!(
            "no exit within {} s: killed",
            test.timeout.as_secs()
        )),
        Some(s) if s != want_status => problems.push(format!(
            "exit status {s}, expected {want_status} ({:?})",
            test.ending
        )),
        Some(_) => {}
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Runs one boot test on already-built artifacts, printing its verdict.
pub fn run(test: &BootTest, artifacts: &Artifacts) -> Result<Duration, String> {
    let board = boards::load(test.board)?;
    let run = emulator::run_captured(&board, artifacts, test.args, test.name, test.timeout)?;
    match judge(test, &board, &run) {
        Ok(()) => Ok(run.elapsed),
        Err(problems) => {
            let lines: Vec<&str> = run.serial.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            let mut report = format!("boot test {} on {} failed:\n", test.name, test.board);
            for p in &problems {
                report.push_str(&format!("  - {p}\n"));
            }
            report.push_str(&format!(
                "  last {} serial lines (run files in {}):\n",
                tail.len(),
                run.dir.display()
            ));
            for l in tail {
                report.push_str(&format!("  | {l}\n"));
            }
            Err(report)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boards::{Arch, Boot, Emulator};

    fn board() -> Board {
        Board {
            name: "b".into(),
            file: "b.toml".into(),
            arch: Arch::X86_64,
            boot: Boot::Direct,
            emulator: Some(Emulator::QemuX86),
            cpus: 2,
        }
    }

    fn test() -> BootTest {
        BootTest {
            name: "t",
            board: "b",
            args: "",
            ordered: &["one", "two"],
            anywhere: &["cpu1"],
            forbidden: &["PANIC"],
            ending: Ending::Success,
            timeout: Duration::from_secs(1),
        }
    }

    fn captured(serial: &str, status: Option<i32>) -> Captured {
        Captured {
            status,
            elapsed: Duration::ZERO,
            serial: serial.into(),
            dir: "d".into(),
        }
    }

    #[test]
    fn passes_when_every_check_holds() {
        assert_eq!(
            judge(&test(), &board(), &captured("one\ncpu1\ntwo\n", Some(33))),
            Ok(())
        );
    }

    #[test]
    fn out_of_order_lines_fail() {
        let e = judge(&test(), &board(), &captured("two\none\ncpu1\n", Some(33))).unwrap_err();
        assert_eq!(
            e,
            vec!["line \"two\" appeared, but not after the lines expected before it".to_string()]
        );
    }

    #[test]
    fn missing_forbidden_status_and_timeout_each_fail() {
        let e = judge(
            &test(),
            &board(),
            &captured("one\ntwo\nPANIC x\n", Some(35)),
        )
        .unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        let e = judge(&test(), &board(), &captured("one\ncpu1\ntwo\n", None)).unwrap_err();
        assert_eq!(e, vec!["no exit within 1 s: killed".to_string()]);
    }
}
