//! The board-file checker and code generator (host only, `check` feature). It reads
//! `board-configs/<board>.toml`, converts it into a [`CheckedBoard`], runs every rule and reports
//! all faults at once, each naming the file, the partition(s), the key and both values. The image
//! build calls [`generate_rust`]; `cargo xtask check-config FILE` calls [`cli_check_config`]; other
//! tools call [`check_file`] and read the [`CheckedBoard`].
//!
//! Order of the rules, which is also the order of the messages: TOML syntax and keys, values
//! (`spec`), names / manager / CPUs, memory layout, devices and IRQs, image files.

mod codegen;
mod devices;
mod error;
mod layout;
mod schema;
mod size;
mod spec;
mod summary;

pub use error::{ConfigError, Errors, Rule, Scope};
pub use layout::free_memory;
pub use size::{fmt_size, parse_size};
pub use spec::{CheckedBoard, ImageSpec, PartitionSpec, RegionSpec};
pub use summary::summary;

use error::Sink;
use std::path::Path;

/// 1-based line and column of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Checks board-file text. `file` names it in messages; image paths resolve against `base_dir`.
pub fn check_str(text: &str, file: &Path, base_dir: &Path) -> Result<CheckedBoard, Errors> {
    let mut sink = Sink::new(file.display().to_string());
    let parsed: schema::FileToml = match toml::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            // TOML's own rendering spans several lines with a source excerpt; keep one line.
            let (line, column) = e.span().map_or((1, 1), |s| position(text, s.start));
            let msg = e.message().trim().to_string();
            sink.push(Scope::Position { line, column }, Rule::Parse, "", &[], msg);
            return Err(sink.finish().unwrap_err());
        }
    };
    let board = spec::convert(&parsed, file, base_dir, &mut sink);
    layout::check_board(&board, &mut sink);
    devices::check_ownership(&board, &mut sink);
    layout::check(&board, &mut sink);
    devices::check(&board, &mut sink);
    sink.finish().map(|()| board)
}

/// Reads and checks one board file; every fault in it is in the error, one per line.
pub fn check_file(path: &Path) -> Result<CheckedBoard, Errors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let mut sink = Sink::new(path.display().to_string());
        let msg = format!("cannot read the file: {e}");
        sink.push(
            Scope::Position { line: 1, column: 1 },
            Rule::Parse,
            "",
            &[],
            msg,
        );
        sink.finish().unwrap_err()
    })?;
    let base_dir = path.parent().unwrap_or(Path::new("."));
    check_str(&text, path, base_dir)
}

/// Rust source for a checked board (`pub static BOARD: board_config::Board = …;`).
pub fn rust_source(board: &CheckedBoard) -> String {
    codegen::rust(board)
}

/// Checks `path` and returns Rust source defining `pub static BOARD: board_config::Board`, which
/// `platform/build.rs` writes to `$OUT_DIR/board.rs` for the image to `include!`.
pub fn generate_rust(path: &Path) -> Result<String, Errors> {
    check_file(path).map(|b| codegen::rust(&b))
}

/// `cargo xtask check-config FILE`: prints the summary to stdout and returns true, or prints every
/// fault to stderr (one per line, then a count) and returns false.
pub fn cli_check_config(path: &Path) -> bool {
    match check_file(path) {
        Ok(board) => {
            print!("{}", summary(&board));
            println!("\n{}: ok", path.display());
            true
        }
        Err(errors) => {
            eprintln!("{errors}");
            let n = errors.len();
            eprintln!(
                "{}: {n} error{}",
                path.display(),
                if n == 1 { "" } else { "s" }
            );
            false
        }
    }
}

/// The faults as plain strings, one per fault (what the corpus tests compare).
pub fn messages(errors: &Errors) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}
