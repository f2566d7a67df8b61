//! Boot tests: boot a board in its emulator under a timeout, then judge the run by its serial log
//! (expected lines in order, others anywhere, forbidden ones nowhere) and its exit status. A failed
//! test says which check failed and shows the last 40 lines of the log.

use crate::boards::{self, Board};
use crate::emulator::{self, Captured, Flavour};
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
    /// Numbers the run prints, each checked against its bounds and shown when the test passes.
    pub figures: &'static [Figure],
    pub ending: Ending,
    pub timeout: Duration,
    /// LoongArch: the emulator, and so the backend the image must choose.
    pub flavour: Flavour,
}

impl BootTest {
    /// The board column of the summary: a LoongArch board names its backend
    /// (`qemu-virt-la64/lvz`, `qemu-virt-la64/depriv`).
    pub fn board_label(&self) -> String {
        if self.loongarch() {
            format!("{}/{}", self.board, self.flavour.suffix())
        } else {
            self.board.to_owned()
        }
    }

    /// Whether the board is a LoongArch one (its tests run on both emulators).
    pub fn loongarch(&self) -> bool {
        self.board.contains("la64") || self.board.starts_with("ls3a")
    }
}

/// A number a scenario prints: the integer right after the text `after` on every line that has
/// it. At least one such line must exist, and every value must lie in `min..=max`.
#[derive(Clone, Copy, Debug)]
pub struct Figure {
    pub name: &'static str,
    pub after: &'static str,
    pub min: i64,
    pub max: i64,
}

/// The integer (optionally signed) that starts `text`, after any spaces.
fn leading_int(text: &str) -> Option<i64> {
    let t = text.trim_start();
    let end = t
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map_or(t.len(), |(i, _)| i);
    t[..end].parse().ok()
}

/// Every value of figure `f` in `lines`, in order (a line where no number follows counts as a
/// problem, reported by [`judge`]).
pub fn figure_values(f: &Figure, lines: &[&str]) -> Vec<Option<i64>> {
    lines
        .iter()
        .filter_map(|l| {
            l.find(f.after)
                .map(|i| leading_int(&l[i + f.after.len()..]))
        })
        .collect()
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
    for f in test.figures {
        let values = figure_values(f, &lines);
        if values.is_empty() {
            problems.push(format!("figure {}: no line with {:?}", f.name, f.after));
        }
        for v in values {
            match v {
                None => problems.push(format!("figure {}: no number after {:?}", f.name, f.after)),
                Some(v) if v < f.min || v > f.max => problems.push(format!(
                    "figure {}: {v} outside its bounds {}..={}",
                    f.name, f.min, f.max
                )),
                Some(_) => {}
            }
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
    let tag = if test.loongarch() {
        format!("{}-{}", test.name, test.flavour.suffix())
    } else {
        test.name.to_owned()
    };
    let run = emulator::run_captured(
        &board,
        artifacts,
        test.args,
        &tag,
        test.timeout,
        test.flavour,
    )?;
    match judge(test, &board, &run) {
        Ok(()) => {
            let lines: Vec<&str> = run.serial.lines().collect();
            for f in test.figures {
                let values: Vec<String> = figure_values(f, &lines)
                    .iter()
                    .map(|v| v.map_or("?".into(), |v| v.to_string()))
                    .collect();
                eprintln!(
                    "figure {}: {} (bounds {}..={})",
                    f.name,
                    values.join(", "),
                    f.min,
                    f.max
                );
            }
            Ok(run.elapsed)
        }
        Err(problems) => {
            let lines: Vec<&str> = run.serial.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            let mut report = format!(
                "boot test {} on {} failed:\n",
                test.name,
                test.board_label()
            );
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
            ram_top: 256 << 20,
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
            figures: &[Figure {
                name: "stop time",
                after: "stopped after ",
                min: 0,
                max: 500,
            }],
            ending: Ending::Success,
            timeout: Duration::from_secs(1),
            flavour: Flavour::Stock,
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
            judge(
                &test(),
                &board(),
                &captured("one\ncpu1\nstopped after 12 us\ntwo\n", Some(33))
            ),
            Ok(())
        );
    }

    #[test]
    fn figures_out_of_bounds_missing_or_not_numbers_fail() {
        let run = |serial: &str| judge(&test(), &board(), &captured(serial, Some(33)));
        assert_eq!(
            run("one\ncpu1\nstopped after 12 us\nstopped after 501 us\ntwo\n").unwrap_err(),
            vec!["figure stop time: 501 outside its bounds 0..=500".to_string()]
        );
        assert_eq!(
            run("one\ncpu1\nstopped after -3\ntwo\n").unwrap_err(),
            vec!["figure stop time: -3 outside its bounds 0..=500".to_string()]
        );
        assert_eq!(
            run("one\ncpu1\ntwo\n").unwrap_err(),
            vec!["figure stop time: no line with \"stopped after \"".to_string()]
        );
        assert_eq!(
            run("one\ncpu1\nstopped after soon\ntwo\n").unwrap_err(),
            vec!["figure stop time: no number after \"stopped after \"".to_string()]
        );
    }

    #[test]
    fn figure_values_read_signed_integers() {
        assert_eq!(leading_int(" -28% (bound"), Some(-28));
        assert_eq!(leading_int("1363 interrupts"), Some(1363));
        assert_eq!(leading_int("-"), None);
        assert_eq!(leading_int("x1"), None);
    }

    #[test]
    fn out_of_order_lines_fail() {
        let e = judge(
            &test(),
            &board(),
            &captured("two\none\ncpu1\nstopped after 1\n", Some(33)),
        )
        .unwrap_err();
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
            &captured("one\ntwo\nstopped after 1\nPANIC x\n", Some(35)),
        )
        .unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        let e = judge(
            &test(),
            &board(),
            &captured("one\ncpu1\nstopped after 1\ntwo\n", None),
        )
        .unwrap_err();
        assert_eq!(e, vec!["no exit within 1 s: killed".to_string()]);
    }
}
