//! The hypervisor range against the image's real footprint: the image build passes where the
//! linked ELF lies ([`check_footprint`]), and the link addresses the checker assumes before any
//! build are the ones the linker scripts use.

use board_config::check::{check_file, check_footprint, link_address, messages, Footprint};
use board_config::Arch;
use std::path::{Path, PathBuf};

fn board(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(format!("{name}.toml"))
}

#[test]
fn a_footprint_inside_the_hypervisor_range_passes() {
    let b = check_file(&board("qemu-x86_64")).unwrap();
    let fp = Footprint {
        start: 0x10_0000,
        end: 0x10_0000 + (20 << 20),
    };
    assert_eq!(check_footprint(&b, fp), Ok(()));
}

#[test]
fn a_footprint_past_the_hypervisor_range_fails_the_build() {
    let path = board("qemu-x86_64");
    let b = check_file(&path).unwrap();
    let fp = Footprint {
        start: 0x10_0000,
        end: 0x210_0000,
    };
    let e = check_footprint(&b, fp).unwrap_err();
    assert_eq!(
        messages(&e),
        [format!(
            "{}: board: hypervisor [0x100000, 0x2000000) does not cover the image as linked, \
             [0x100000, 0x2100000) (32M: code, data, heap and stacks)",
            path.display()
        )]
    );
    // Starting below the range is as bad as ending past it.
    let low = Footprint {
        start: 0xf_f000,
        end: 0x20_0000,
    };
    assert!(check_footprint(&b, low).is_err());
    let empty = Footprint {
        start: 0x10_0000,
        end: 0x10_0000,
    };
    assert_eq!(
        messages(&check_footprint(&b, empty).unwrap_err()),
        [format!(
            "{}: board: hypervisor cannot be checked: the image's footprint [0x100000, 0x100000) is empty",
            path.display()
        )]
    );
}

/// The first `0x…` number on the first line of `script` that contains `marker`.
fn address_after(script: &str, marker: &str) -> u64 {
    let line = script
        .lines()
        .find(|l| l.trim_start().starts_with(marker))
        .unwrap_or_else(|| panic!("no line starting with {marker:?}"));
    let hex = line.split("0x").nth(1).unwrap();
    let digits: String = hex.chars().take_while(char::is_ascii_hexdigit).collect();
    u64::from_str_radix(&digits, 16).unwrap()
}

#[test]
fn link_addresses_match_the_linker_scripts() {
    let arch_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../platform/src/arch");
    let read = |a: &str| std::fs::read_to_string(arch_dir.join(a).join("linker.ld")).unwrap();
    assert_eq!(
        address_after(&read("x86_64"), ". = 0x"),
        link_address(Arch::X86_64)
    );
    assert_eq!(
        address_after(&read("loongarch64"), "LOAD_PA ="),
        link_address(Arch::LoongArch64)
    );
}
