//! Generates the tables of every shipped board (`board-configs/*.toml`) into `$OUT_DIR/boards/`, so
//! `tests/generated.rs` can compile them against the model: a type error in the generator, or a
//! model change it misses, fails `cargo test` here rather than the image build of one board.
//! It also generates the valid test boards the tests read back: `tests/valid/hostile-names.toml`,
//! whose names try to break out of the string literals (compiling it proves they cannot),
//! `edge-cases.toml` (an image file, device-cached sharing, ports), and the two Linux boots as
//! data. It includes the checker's own sources (the crate cannot depend on itself), and it never
//! fails the build: a board that does not check becomes a `compile_error!` that only that test sees.

#![allow(dead_code, unused_imports)]

#[path = "src/model.rs"]
mod model;

#[path = "src/check/mod.rs"]
mod check;

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("boards");
    let boards_dir = manifest.join("..");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src");
    // The directory itself, so a new board file regenerates too.
    println!("cargo:rerun-if-changed={}", boards_dir.display());
    std::fs::create_dir_all(&out).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&boards_dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        // A shipped board with a Linux partition is left out: its kernel is fetched by `cargo
        // xtask` (never committed), so a fresh clone does not have it; the Linux layout is
        // generated from `tests/valid/linux.toml` below instead.
        .filter(|p| !boots_linux(p))
        .collect();
    files.sort();
    // Plus a board whose names try to inject Rust into the generated source.
    files.push(manifest.join("tests/valid/hostile-names.toml"));
    // And the valid corners (an image file, device-cached sharing, ports, an entry past its load).
    files.push(manifest.join("tests/valid/edge-cases.toml"));
    // And a Linux partition, whose layout is generated as byte data and file slices.
    files.push(manifest.join("tests/valid/linux.toml"));
    files.push(manifest.join("tests/valid/la-linux.toml"));
    let mut index = String::new();
    for file in files {
        println!("cargo:rerun-if-changed={}", file.display());
        let stem = file.file_stem().unwrap().to_string_lossy().to_string();
        // The stem becomes a module name and part of a path literal: only plain names qualify.
        let plain = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        if stem.is_empty() || !stem.chars().all(plain) {
            continue;
        }
        let module = stem.replace('-', "_");
        let source = match check::generate_rust(&file) {
            Ok(s) => s,
            Err(e) => {
                let e = e.to_string();
                quote::quote!(compile_error!(#e);).to_string()
            }
        };
        std::fs::write(out.join(format!("{stem}.rs")), source).unwrap();
        writeln!(
            index,
            "pub mod {module} {{ include!(concat!(env!(\"OUT_DIR\"), \"/boards/{stem}.rs\")); }}"
        )
        .unwrap();
    }
    std::fs::write(out.join("all.rs"), index).unwrap();
}

/// Whether a partition of the board file at `path` names a Linux `kernel` (an unreadable or
/// unparsable file is not left out: its `compile_error!` is what the test should see).
fn boots_linux(path: &std::path::Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| toml::from_str::<check::schema::FileToml>(&text).ok())
        .is_some_and(|f| f.partition.iter().any(|p| p.kernel.is_some()))
}
