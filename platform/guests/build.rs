//! Links every guest at its architecture's load address with `src/rt/<arch>.ld`. The addresses in
//! those scripts must match the `load`/`entry` of the board files that run test guests.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap();
    let script = manifest.join("src/rt").join(format!("{arch}.ld"));
    println!("cargo:rerun-if-changed={}", script.display());
    if script.exists() {
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
        println!("cargo:rustc-link-arg-bins=--no-pie");
    }
}
