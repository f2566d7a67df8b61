//! Fuzz target: the board-file checker. Any text is accepted or refused without a panic, and an
//! accepted file satisfies the isolation invariants, computed here independently of the checker
//! (with 128-bit ends, so ranges at the top of the address space cannot wrap): no two
//! partitions' host memory meets unless both declare the same range shared with each other, and
//! no partition's memory meets the hypervisor's range.
#![no_main]

use board_config::check::check_str;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fn meets(a: u64, an: u64, b: u64, bn: u64) -> bool {
    let (a, an, b, bn) = (u128::from(a), u128::from(an), u128::from(b), u128::from(bn));
    an != 0 && bn != 0 && a < b + bn && b < a + an
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Image paths resolve against a folder with nothing in it.
    let Ok(board) = check_str(
        text,
        Path::new("fuzz.toml"),
        Path::new("/nonexistent-fuzz-dir"),
    ) else {
        return;
    };
    let hv = board.hypervisor;
    for (i, p) in board.partitions.iter().enumerate() {
        for a in &p.memory {
            assert!(
                !meets(a.host, a.size, hv.start, hv.size),
                "partition {} memory {:#x}+{:#x} meets the hypervisor",
                p.name,
                a.host,
                a.size
            );
        }
        for q in &board.partitions[i + 1..] {
            for a in &p.memory {
                for c in &q.memory {
                    if meets(a.host, a.size, c.host, c.size) {
                        let shared = a.shared_with.as_deref() == Some(q.name.as_str())
                            && c.shared_with.as_deref() == Some(p.name.as_str())
                            && (a.host, a.size) == (c.host, c.size);
                        assert!(
                            shared,
                            "{} and {} meet at {:#x} unshared",
                            p.name, q.name, a.host
                        );
                    }
                }
            }
        }
    }
});
