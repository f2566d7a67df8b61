//! What the checker reports. Every fault becomes one [`ConfigError`] that names the file, the
//! partition or partitions involved, the key and both conflicting values, so a board owner can fix
//! the file without reading the checker. A file's faults are collected into [`Errors`] rather than
//! stopping at the first, because fixing one fault per build is slow and hides related faults.

use std::fmt;

/// Where in the file a fault is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A TOML syntax or schema error at a position in the file (1-based line and column).
    Position { line: usize, column: usize },
    /// The `[board]` section, or the file as a whole.
    Board,
    /// One partition, by name.
    Partition(String),
    /// Two partitions that conflict, in file order.
    Pair(String, String),
    /// The report itself (the count of faults left out).
    File,
}

/// The rule a fault breaks, for callers that react to a kind of fault rather than its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The file cannot be read, is not TOML, has an unknown or missing key or a value of the wrong form.
    Parse,
    /// A value is well-formed but not allowed (e.g. 16K pages on x86, an empty CPU list).
    Invalid,
    /// Host memory of two partitions overlaps, or a partition maps the same host memory twice.
    HostOverlap,
    /// Two regions of one partition overlap in guest-physical space (or with its devices).
    GuestOverlap,
    /// Memory outside the board's RAM.
    OutsideRam,
    /// Memory inside the hypervisor's own region or a reserved range.
    Hypervisor,
    /// An address or size not aligned to the base page.
    Misaligned,
    /// A CPU given to two partitions.
    CpuTwice,
    /// A CPU number not below the board's CPU count.
    CpuRange,
    /// An MMIO range, port range or UART given twice, or overlapping the hypervisor's devices.
    DeviceTwice,
    /// An IRQ line given twice or beyond the interrupt controller.
    Irq,
    /// A shared region whose named partner does not share it back.
    SharedNoPartner,
    /// The load address or entry point is not in suitable memory, or the image does not fit.
    Entry,
    /// Not exactly one manager partition.
    Manager,
    /// The image file does not exist.
    ImageMissing,
    /// The image path is absolute, leaves the board's folder, or names no regular file.
    ImagePath,
    /// Beyond what the image supports: CPUs, address widths, interrupt lines.
    Limit,
    /// A device or I/O port the hypervisor keeps, or one that resets or reconfigures the machine.
    HypervisorDevice,
    /// `board.hypervisor` does not cover the image as it is linked.
    Footprint,
    /// A Linux kernel, initrd or command line that cannot be booted as given.
    Linux,
}

/// One fault in a board file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The board file, as the caller named it.
    pub file: String,
    pub scope: Scope,
    pub rule: Rule,
    /// The key at fault, dotted from its partition or section (`memory.host`, `cpus`, `board.ram`).
    pub key: String,
    /// The conflicting values as printed (one or two), for tools that want them apart from the text.
    pub values: Vec<String>,
    /// The sentence after the key: what is wrong, with the values in it.
    pub text: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scope {
            Scope::Position { line, column } => {
                write!(
                    f,
                    "{}: line {line}, column {column}: {}",
                    self.file, self.text
                )
            }
            Scope::Board => write!(f, "{}: board: {} {}", self.file, self.key, self.text),
            Scope::Partition(p) => {
                write!(
                    f,
                    "{}: partition {p:?}: {} {}",
                    self.file, self.key, self.text
                )
            }
            Scope::File => write!(f, "{}: {}", self.file, self.text),
            Scope::Pair(p, q) => {
                write!(
                    f,
                    "{}: partitions {p:?} and {q:?}: {} {}",
                    self.file, self.key, self.text
                )
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every fault found in one file, in the order the checks ran (never empty when returned as an error).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Errors(pub Vec<ConfigError>);

impl Errors {
    /// The faults, one per entry.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Errors {
    /// One fault per line, so build logs and terminals show each on its own.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

impl<'a> IntoIterator for &'a Errors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// The most faults one report lists: a hostile file can repeat one fault a million times, and
/// past this many the owner learns nothing more from the list.
pub const MAX_FAULTS: usize = 100;

/// Gathers faults while the checks run; each check adds to it instead of returning early.
pub(crate) struct Sink {
    file: String,
    pub(crate) errors: Vec<ConfigError>,
    /// Faults found past [`MAX_FAULTS`], counted but not kept.
    dropped: usize,
}

impl Sink {
    pub(crate) fn new(file: String) -> Self {
        Sink {
            file,
            errors: Vec::new(),
            dropped: 0,
        }
    }

    /// Records one fault. `values` are the conflicting values also embedded in `text`.
    pub(crate) fn push(
        &mut self,
        scope: Scope,
        rule: Rule,
        key: &str,
        values: &[&str],
        text: String,
    ) {
        if self.errors.len() >= MAX_FAULTS {
            self.dropped += 1;
            return;
        }
        self.errors.push(ConfigError {
            file: self.file.clone(),
            scope,
            rule,
            key: key.to_string(),
            values: values.iter().map(|v| v.to_string()).collect(),
            text,
        });
    }

    pub(crate) fn board(&mut self, rule: Rule, key: &str, values: &[&str], text: String) {
        self.push(Scope::Board, rule, key, values, text);
    }

    pub(crate) fn one(&mut self, p: &str, rule: Rule, key: &str, values: &[&str], text: String) {
        self.push(Scope::Partition(p.to_string()), rule, key, values, text);
    }

    pub(crate) fn pair(
        &mut self,
        p: &str,
        q: &str,
        rule: Rule,
        key: &str,
        values: &[&str],
        text: String,
    ) {
        self.push(
            Scope::Pair(p.to_string(), q.to_string()),
            rule,
            key,
            values,
            text,
        );
    }

    pub(crate) fn finish(mut self) -> Result<(), Errors> {
        if self.dropped > 0 {
            let n = self.dropped;
            self.errors.push(ConfigError {
                file: self.file.clone(),
                scope: Scope::File,
                rule: Rule::Invalid,
                key: String::new(),
                values: vec![n.to_string()],
                text: format!("{n} more faults not listed (only the first {MAX_FAULTS} are)"),
            });
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Errors(self.errors))
        }
    }
}
