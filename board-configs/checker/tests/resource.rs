//! Inputs built to exhaust the checker: thousands of regions (the overlap checks must stay
//! O(n log n)), a CPU count in the billions, faults repeated without end, and board-file or image
//! paths that are devices, directories or huge. Each must be answered quickly and with a message.

use board_config::check::{check_file, check_str, messages, Errors, MAX_FAULTS, MAX_FILE_SIZE};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

const BOARD: &str = r#"[board]
name = "big"
arch = "x86_64"
boot = "direct"
cpus = CPUS
ram = [{ start = 0x100000, size = "2047M" }]
hypervisor = { start = 0x100000, size = "31M" }
console = { port = 0x3f8, clock = 1843200, baud = 115200 }
irqchip = { kind = "ioapic", mmio = 0xfec00000, size = "4K", lines = 24 }
"#;

/// A complexity guard, not a benchmark: generous for debug builds on a loaded machine, yet far
/// below what the old quadratic checks took.
fn limit() -> Duration {
    Duration::from_secs(if cfg!(debug_assertions) { 5 } else { 1 })
}

fn timed(text: &str) -> (Result<(), Errors>, Duration) {
    let t = Instant::now();
    let r = check_str(text, Path::new("big.toml"), Path::new(".")).map(|_| ());
    (r, t.elapsed())
}

/// One partition with `n` regions of 4K, each at `host(i)`.
fn many_regions(n: u64, host: impl Fn(u64) -> u64) -> String {
    let mut s = BOARD.replace("CPUS", "2");
    s.push_str(
        "\n[[partition]]\nname = \"boss\"\nmanager = true\ncpus = [0]\nguest = \"manager\"\n",
    );
    s.push_str("load = 0x0\nentry = 0x0\nmemory = [\n");
    for i in 0..n {
        let flags = if i == 0 { "rwx" } else { "rw" };
        writeln!(
            s,
            "{{guest={:#x},host={:#x},size=0x1000,flags=\"{flags}\"}},",
            i * 0x1000,
            host(i)
        )
        .unwrap();
    }
    s.push_str("]\n\n[[partition]]\nname = \"w\"\ncpus = [1]\nguest = \"worker\"\n");
    s.push_str("load = 0x0\nentry = 0x0\nmemory = [{ guest = 0x0, host = 0x70000000, size = \"1M\", flags = \"rwx\" }]\n");
    s
}

#[test]
fn twenty_thousand_regions_check_quickly() {
    let text = many_regions(20_000, |i| 0x200_0000 + i * 0x1000);
    assert!(text.len() as u64 <= MAX_FILE_SIZE, "{} bytes", text.len());
    let (r, took) = timed(&text);
    assert!(r.is_ok(), "{}", r.unwrap_err());
    assert!(took < limit(), "20,000 regions took {took:?}");
}

#[test]
fn twenty_thousand_overlapping_regions_check_quickly_and_report_at_most_the_cap() {
    // Every region at one host page: 20,000 aliases, about 2 * 10^8 overlapping pairs.
    let (r, took) = timed(&many_regions(20_000, |_| 0x200_0000));
    let e = r.unwrap_err();
    assert!(took < limit(), "took {took:?}");
    assert_eq!(e.len(), MAX_FAULTS + 1);
    let last = messages(&e).pop().unwrap();
    assert!(
        last.ends_with("more faults not listed (only the first 100 are)"),
        "{last}"
    );
}

#[test]
fn a_cpu_count_in_the_billions_is_refused_at_once() {
    let mut s = BOARD.replace("CPUS", "4294967295");
    s.push_str("\n[[partition]]\nname = \"boss\"\nmanager = true\ncpus = [4294967294]\nguest = \"manager\"\n");
    s.push_str("load = 0x0\nentry = 0x0\nmemory = [{ guest = 0x0, host = 0x2000000, size = \"1M\", flags = \"rwx\" }]\n");
    let (r, took) = timed(&s);
    assert!(took < limit(), "took {took:?}");
    assert_eq!(
        messages(&r.unwrap_err())[0],
        "big.toml: board: cpus 4294967295 is more than the image supports (at most 8)"
    );
}

fn read_error(path: &Path) -> String {
    let e = check_file(path).unwrap_err();
    assert_eq!(e.len(), 1);
    messages(&e).remove(0)
}

#[test]
fn a_device_is_never_read() {
    let t = Instant::now();
    assert_eq!(
        read_error(Path::new("/dev/zero")),
        "/dev/zero: line 1, column 1: cannot read the file: it is not a regular file (a device, FIFO or socket)"
    );
    assert!(t.elapsed() < limit());
    assert_eq!(
        read_error(Path::new("tests")),
        "tests: line 1, column 1: cannot read the file: it is a directory"
    );
}

#[test]
fn a_file_past_the_size_limit_is_refused() {
    let dir = std::env::temp_dir().join(format!("board-config-big-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.toml");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(MAX_FILE_SIZE + 1).unwrap();
    let msg = read_error(&path);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        msg.ends_with("cannot read the file: it is larger than 4M, the most a board file may be"),
        "{msg}"
    );
}

#[test]
fn an_image_that_is_a_device_is_refused() {
    let mut s = BOARD.replace("CPUS", "2");
    s.push_str("\n[[partition]]\nname = \"boss\"\nmanager = true\ncpus = [0]\nimage = \"zero\"\n");
    s.push_str("load = 0x0\nentry = 0x0\nmemory = [{ guest = 0x0, host = 0x2000000, size = \"1M\", flags = \"rwx\" }]\n");
    let e = check_str(&s, Path::new("big.toml"), Path::new("/dev")).unwrap_err();
    assert_eq!(
        messages(&e),
        ["big.toml: partition \"boss\": image \"zero\" is not a regular file (a device, FIFO or socket)"]
    );
}
