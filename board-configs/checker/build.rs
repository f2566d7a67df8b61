//! Generates the tables of every shipped board (`board-configs/*.toml`) into `$OUT_DIR/boards/`, so
//! `tests/generated.rs` can compile them against the model: a type error in the generator, or a
//! model change it misses, fails `cargo test` here rather than the image build of one board.
//! It includes the checker's own sources (the crate cannot depend on itself), and it never fails
//! the build: a board that does not check becomes a `compile_error!` that only that test sees.

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
        .collect();
    files.sort();
    let mut index = String::new();
    for file in files {
        println!("cargo:rerun-if-changed={}", file.display());
        let stem = file.file_stem().unwrap().to_string_lossy().to_string();
        let module = stem.replace('-', "_");
        let source = match check::generate_rust(&file) {
            Ok(s) => s,
            Err(e) => format!("compile_error!({:?});", e.to_string()),
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
