//! Every shipped board file passes the checker, and its generated tables name its partitions.

use board_config::check::{check_file, generate_rust, summary};
use std::path::{Path, PathBuf};

/// The five boards the project ships.
const BOARDS: [&str; 5] = [
    "qemu-virt-la64",
    "ls3a5000-7a2000",
    "qemu-x86_64",
    "bochs-x86_64",
    "pc-x86_64",
];

fn board_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(format!("{name}.toml"))
}

#[test]
fn shipped_boards_pass() {
    for name in BOARDS {
        let b = check_file(&board_path(name)).unwrap_or_else(|e| panic!("{name}:\n{e}"));
        assert_eq!(b.name, name);
        assert!(
            b.partitions.len() >= 2,
            "{name} has fewer than two partitions"
        );
        assert_eq!(b.partitions.iter().filter(|p| p.manager).count(), 1);
        println!("{}", summary(&b));
    }
}

#[test]
fn generated_source_has_partitions() {
    for name in BOARDS {
        let b = check_file(&board_path(name)).unwrap();
        let src = generate_rust(&board_path(name)).unwrap();
        assert!(src.contains("pub static BOARD: board_config::Board"));
        for p in &b.partitions {
            assert!(
                src.contains(&format!("name: {:?}", p.name)),
                "{name}: {} missing",
                p.name
            );
        }
    }
}
