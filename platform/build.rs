//! Turns `board-configs/$SEPTUM_BOARD.toml` into `$OUT_DIR/board.rs` through the board checker, so a
//! bad board file fails the build with the checker's message, picks the linker script per arch, and
//! makes the test guests (flat binaries in `$SEPTUM_GUESTS_DIR`, built by `cargo xtask build`)
//! available to `include_bytes!` through `$OUT_DIR/guests.rs`.

use board_config::check::{check_file, rust_source, CheckedBoard, ImageSpec};
use std::path::{Path, PathBuf};

const GUESTS: [(&str, &str); 3] = [
    ("WORKER", "worker"),
    ("MANAGER", "manager"),
    ("HOSTILE", "hostile"),
];

/// `guests.rs`: one `&[u8]` per test guest, empty when the board runs none of them.
fn guests(board: &CheckedBoard, board_file: &Path, out: &Path) {
    println!("cargo:rerun-if-env-changed=SEPTUM_GUESTS_DIR");
    let uses_guests = board
        .partitions
        .iter()
        .any(|p| matches!(p.image, ImageSpec::Guest(_)));
    let dir = std::env::var_os("SEPTUM_GUESTS_DIR").map(PathBuf::from);
    let mut source = quote::quote!();
    for (constant, name) in GUESTS {
        let value = match (&dir, uses_guests) {
            (Some(dir), true) => {
                let file = dir.join(format!("{name}.bin"));
                if !file.exists() {
                    eprintln!(
                        "error: test guest {} is missing: build images with `cargo xtask build`, \
                         which builds the guests first",
                        file.display()
                    );
                    std::process::exit(1);
                }
                println!("cargo:rerun-if-changed={}", file.display());
                let file = file.display().to_string();
                quote::quote!(include_bytes!(#file))
            }
            (None, true) => {
                eprintln!(
                    "error: board file {} runs test guests but SEPTUM_GUESTS_DIR is not set: \
                     build images with `cargo xtask build --board B`, which builds the guests \
                     (package test-guests) and sets it",
                    board_file.display()
                );
                std::process::exit(1);
            }
            (_, false) => quote::quote!(&[]),
        };
        let constant = quote::format_ident!("{constant}");
        let doc = format!(" The `{name}` test guest (flat binary).");
        source.extend(quote::quote! {
            #[doc = #doc]
            pub static #constant: &[u8] = #value;
        });
    }
    let source = source.to_string();
    std::fs::write(out.join("guests.rs"), source).unwrap();
}

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
    // Checked once: the board's data and the guests it needs both come from this result.
    let board = match check_file(&file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    std::fs::write(out.join("board.rs"), rust_source(&board)).unwrap();
    guests(&board, &file, &out);

    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap();
    // Architectures whose `Current` implements `partition::arch::PartitionArch` run partitions;
    // the others boot and stop at "boot complete". Add an arch here when its backend lands.
    println!("cargo::rustc-check-cfg=cfg(septum_partitions)");
    if arch == "loongarch64" || arch == "x86_64" {
        println!("cargo:rustc-cfg=septum_partitions");
    }
    let script = manifest.join("src/arch").join(&arch).join("linker.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    if script.exists() {
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    }
    println!("cargo:rustc-link-arg-bins=--no-pie");
}
