//! The `log` backend: every record becomes one console line tagged with its level and CPU, so
//! interleaved output from several CPUs stays readable and a boot test can match lines.

use crate::arch::{Current, Machine};
use board_config::LogLevel;
use log::{LevelFilter, Log, Metadata, Record};

struct ConsoleLogger;

impl Log for ConsoleLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            crate::console::print(format_args!(
                "[{:<5} cpu{}] {}\n",
                record.level(),
                Current::cpu_index(),
                record.args()
            ));
        }
    }

    fn flush(&self) {}
}

static LOGGER: ConsoleLogger = ConsoleLogger;

fn filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Off => LevelFilter::Off,
        LogLevel::Error => LevelFilter::Error,
        LogLevel::Warn => LevelFilter::Warn,
        LogLevel::Info => LevelFilter::Info,
        LogLevel::Debug => LevelFilter::Debug,
        LogLevel::Trace => LevelFilter::Trace,
    }
}

/// Parses `log=<level>` out of a boot command line.
fn level_from_cmdline(cmdline: &str) -> Option<LevelFilter> {
    cmdline
        .split_ascii_whitespace()
        .find_map(|word| word.strip_prefix("log="))
        .and_then(|lvl| lvl.parse().ok())
}

/// Installs the logger with the board's level, overridden by `log=<level>` on the command line.
pub fn init(cmdline: &str) {
    let level = level_from_cmdline(cmdline).unwrap_or(filter(crate::board::BOARD.log_level));
    // A second call only fails because a logger is set already, which is harmless.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
