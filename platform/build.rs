//! Turns `board-configs/$SEPTUM_BOARD.toml` into `$OUT_DIR/board.rs` through the board checker, so a
//! bad board file fails the build with the checker's message, and picks the linker script per arch.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-env-changed=SEPTUM_BOARD");
    let board = std::env::var("SEPTUM_BOARD").unwrap_or_else(|_| {
        panic!("SEPTUM_BOARD is not set: build images with `cargo xtask build --board B`")
    });
    let file = manifest
        .join("../board-configs")
        .join(format!("{board}.toml"));
    println!("cargo:rerun-if-changed={}", file.display());
    let source = match board_config::check::generate_rust(&file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    std::fs::write(out.join("board.rs"), source).unwrap();

    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap();
    let script = manifest.join("src/arch").join(&arch).join("linker.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    if script.exists() {
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    }
    println!("cargo:rustc-link-arg-bins=--no-pie");
}
