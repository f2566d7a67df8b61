//! The board-file checker and code generator (host only, `check` feature). It reads
//! `board-configs/<board>.toml`, converts it into a [`CheckedBoard`], runs every rule and reports
//! all faults at once, each naming the file, the partition(s), the key and both values. The image
//! build calls [`generate_rust`]; `cargo xtask check-config FILE` calls [`cli_check_config`]; other
//! tools call [`check_file`] and read the [`CheckedBoard`].
//!
//! Order of the rules, which is also the order of the messages: TOML syntax and keys, values
//! (`spec`), the hypervisor's and reserved ranges, what the image supports (`limits`), names /
//! manager / CPUs, memory layout, devices and IRQs, image files. After linking, the image build
//! also calls [`check_footprint`] with where the image really lies.

mod codegen;
mod devices;
mod error;
mod image_path;
mod layout;
mod limits;
mod linux;
pub(crate) mod schema;
mod size;
mod spans;
mod spec;
mod summary;

pub use error::MAX_FAULTS;
pub use error::{ConfigError, Errors, Rule, Scope};
pub use layout::free_memory;
pub use limits::{guest_bits, link_address, max_lines, Footprint, HYPERVISOR_PORTS, MAX_CPUS};
pub use linux::PlannedBoot;
pub use size::{fmt_size, parse_size};
pub use spec::{Checked, CheckedBoard, FileSpec, ImageSpec, PartitionSpec, RegionSpec};
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
    let mut board = spec::convert(&parsed, file, base_dir, &mut sink);
    linux::plan_partitions(&mut board, &mut sink);
    layout::check_board(&board, &mut sink);
    limits::check_board(&board, &mut sink);
    for p in &board.partitions {
        limits::check_partition(&board, p, &mut sink);
    }
    devices::check_ownership(&board, &mut sink);
    layout::check(&board, &mut sink);
    devices::check(&board, &mut sink);
    sink.finish().map(|()| board)
}

/// The largest board file read: far more than any board a person writes (a 20,000-region file
/// is about 1.2M), and small enough that parsing it takes well under a second.
pub const MAX_FILE_SIZE: u64 = 4 << 20;

/// The file's text, refusing what is not a regular file or is larger than [`MAX_FILE_SIZE`], so
/// a device (`/dev/zero`) or a huge file is never read without end.
fn read_board_file(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.is_dir() {
        return Err("it is a directory".into());
    }
    if !meta.is_file() {
        return Err("it is not a regular file (a device, FIFO or socket)".into());
    }
    let too_large = || {
        format!(
            "it is larger than {}, the most a board file may be",
            fmt_size(MAX_FILE_SIZE)
        )
    };
    if meta.len() > MAX_FILE_SIZE {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_SIZE + 1).read_to_end(&mut bytes))
        .map_err(|e| e.to_string())?;
    // It may have grown since the size was looked at.
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".into())
}

/// Reads and checks one board file; every fault in it is in the error, one per line.
pub fn check_file(path: &Path) -> Result<CheckedBoard, Errors> {
    let text = read_board_file(path).map_err(|e| {
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

/// The image build's last check, once the image is linked: `board.hypervisor` must cover where
/// the image really lies (`footprint`: its loadable segments, including the zero-initialised
/// heap and stacks), or a partition could be given the hypervisor's own memory.
pub fn check_footprint(board: &CheckedBoard, footprint: Footprint) -> Result<(), Errors> {
    let mut sink = Sink::new(board.file.display().to_string());
    limits::footprint_fault(board, footprint, &mut sink);
    sink.finish()
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
