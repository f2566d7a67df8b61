//! The corpus of broken board files (`tests/broken/*.toml`). Each file opens with a comment on the
//! fault it holds and one `# expect: <message>` line per error the checker must report, in order,
//! without the leading `<file>: ` (the test adds it). Set `SEPTUM_BLESS=1` to rewrite the expect
//! lines from the checker's output after a deliberate change to its messages, then review the diff.

use board_config::check::{check_file, messages, Rule};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const DIR: &str = "tests/broken";
const EXPECT: &str = "# expect: ";

fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(DIR)
        .expect("run from the crate directory, as cargo test does")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// Rewrites `path`'s expect lines (after its leading comment) from `actual`.
fn bless(path: &Path, text: &str, actual: &[String], prefix: &str) {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(l) = lines.next_if(|l| l.starts_with('#') && !l.starts_with(EXPECT)) {
        out.push_str(l);
        out.push('\n');
    }
    for a in actual {
        out.push_str(EXPECT);
        out.push_str(a.strip_prefix(prefix).unwrap_or(a));
        out.push('\n');
    }
    for l in lines.filter(|l| !l.starts_with(EXPECT)) {
        out.push_str(l);
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn every_broken_file_reports_exactly_its_errors() {
    let files = corpus();
    assert!(
        files.len() >= 20,
        "the corpus has only {} files",
        files.len()
    );
    let blessing = std::env::var_os("SEPTUM_BLESS").is_some();
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let prefix = format!("{}: ", path.display());
        let expected: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix(EXPECT))
            .map(|e| format!("{prefix}{e}"))
            .collect();
        let actual = match check_file(path) {
            Ok(_) => vec!["(the checker accepted it)".to_string()],
            Err(e) => messages(&e),
        };
        if blessing {
            bless(path, &text, &actual, &prefix);
        } else if expected.is_empty() || actual != expected {
            failures.push(format!(
                "{}\n  expected:\n    {}\n  actual:\n    {}",
                path.display(),
                expected.join("\n    "),
                actual.join("\n    ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} corpus mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn corpus_covers_every_rule() {
    let mut seen = BTreeSet::new();
    for path in corpus() {
        if let Err(e) = check_file(&path) {
            seen.extend(e.iter().map(|c| format!("{:?}", c.rule)));
        }
    }
    let all = [
        Rule::Parse,
        Rule::Invalid,
        Rule::HostOverlap,
        Rule::GuestOverlap,
        Rule::OutsideRam,
        Rule::Hypervisor,
        Rule::Misaligned,
        Rule::CpuTwice,
        Rule::CpuRange,
        Rule::DeviceTwice,
        Rule::Irq,
        Rule::SharedNoPartner,
        Rule::Entry,
        Rule::Manager,
        Rule::ImageMissing,
        Rule::ImagePath,
        Rule::Limit,
        Rule::HypervisorDevice,
        Rule::Footprint,
    ];
    for r in all {
        assert!(
            seen.contains(&format!("{r:?}")),
            "no corpus file breaks {r:?}"
        );
    }
}

#[test]
fn errors_carry_file_partitions_key_and_values() {
    let e = check_file(Path::new("tests/broken/host-overlap.toml")).unwrap_err();
    let c = &e.0[0];
    assert_eq!(c.file, "tests/broken/host-overlap.toml");
    assert_eq!(c.rule, Rule::HostOverlap);
    assert_eq!(c.key, "memory.host");
    assert_eq!(
        c.values,
        ["[0x2000000, 0x4000000)", "[0x3000000, 0x5000000)"]
    );
    assert_eq!(
        c.scope,
        board_config::check::Scope::Pair("linux".into(), "rtos".into())
    );
}
