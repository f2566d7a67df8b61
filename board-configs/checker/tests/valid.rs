//! Valid files beyond the shipped boards (`tests/valid/`): they pass, and what they exercise
//! (image files, spanning RAM, device-cached shared memory) comes through to the generated tables.

use board_config::check::{check_file, generate_rust, ImageSpec};
use board_config::Cache;
use std::path::Path;

#[test]
fn edge_cases_pass_and_generate() {
    let path = Path::new("tests/valid/edge-cases.toml");
    let b = check_file(path).unwrap_or_else(|e| panic!("{e}"));
    let boss = &b.partitions[0];
    assert!(matches!(
        &boss.image,
        ImageSpec::File {
            size: Some(4096),
            ..
        }
    ));
    assert_eq!(boss.memory[1].cache, Cache::Device);
    assert_eq!(boss.memory[1].size, 64 << 10);
    // The region [0x7000000, 0x9000000) spans both RAM entries.
    assert_eq!(boss.memory[0].host, 0x700_0000);
    let src = generate_rust(path).unwrap();
    assert!(src.contains("include_bytes!("), "{src}");
    assert!(src.contains("kernel.bin"));
    assert!(src.contains("shared_with: Some(\"io\")"));
    let summary = board_config::check::summary(&b);
    assert!(summary.contains("idle CPUs: none"), "{summary}");
    assert!(
        summary.contains("free memory: 190.9M of 255M RAM"),
        "{summary}"
    );
    assert!(summary.contains("total memory 32.1M"), "{summary}");
}

#[test]
fn readme_example_passes() {
    let readme = std::fs::read_to_string("../README.md").unwrap();
    let start = readme.find("```toml\n").expect("README has a toml example") + "```toml\n".len();
    let len = readme[start..].find("```").unwrap();
    // The example boots a kernel the repository does not ship; point it at the test fixture.
    let text = readme[start..start + len].replace("images/bzImage.bin", "kernel.bin");
    let b = board_config::check::check_str(&text, Path::new("README.md"), Path::new("tests/valid"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.partitions.len(), 2);
}

#[test]
fn a_linux_partition_is_laid_out_and_generated_as_data() {
    let path = Path::new("tests/valid/linux.toml");
    let b = check_file(path).unwrap_or_else(|e| panic!("{e}"));
    let ImageSpec::Linux {
        plan: Some(plan),
        cmdline,
        ..
    } = &b.partitions[1].image
    else {
        panic!(
            "not a laid-out Linux partition: {:?}",
            b.partitions[1].image
        );
    };
    assert_eq!(cmdline, "console=ttyS0 panic=-1");
    // The sample kernel prefers 16M; its 64-bit entry is 0x200 in.
    assert_eq!(plan.kernel[0].0, 0x100_0000);
    assert_eq!(plan.entry, 0x100_0200);
    // Its setup sectors (4 + the boot sector) stay in the file.
    assert_eq!(plan.kernel[0].1, 5 * 512);
    // The initrd goes to the top of the 96M partition, page aligned.
    assert_eq!(plan.initrd, Some(96 * (1 << 20) - 4096));
    let src = generate_rust(path).unwrap();
    assert!(src.contains("Image::Linux("), "{src}");
    assert!(src.contains("split_at(0xa00)"), "{src}");
    assert!(src.contains("initrd.bin"));
    let summary = board_config::check::summary(&b);
    assert!(
        summary.contains("Linux \"bzimage.bin\" with initrd \"initrd.bin\", loaded at 0x1000000"),
        "{summary}"
    );
}

#[test]
fn a_loongarch_linux_partition_is_laid_out_from_its_elf_and_generated_as_data() {
    let path = Path::new("tests/valid/la-linux.toml");
    let b = check_file(path).unwrap_or_else(|e| panic!("{e}"));
    let ImageSpec::Linux {
        plan: Some(plan), ..
    } = &b.partitions[1].image
    else {
        panic!(
            "not a laid-out Linux partition: {:?}",
            b.partitions[1].image
        );
    };
    // One 16-byte segment at 0x9000_0000_0020_0000 in the file, 120 bytes in (after the ELF
    // and program headers): placed at its physical address without the window bits.
    assert_eq!(plan.kernel, vec![(0x20_0000, 120, 16)]);
    assert_eq!(plan.entry, 0x20_0000);
    // The boot protocol: EFI flag, command line, system table.
    assert_eq!(plan.args, [1, 0x1000, 0x2000]);
    assert_eq!(plan.cmdline, (0x1000, 2048));
    // The initrd goes to the top of the 64M partition, 64 KiB aligned.
    let rd = std::fs::metadata("tests/valid/initrd.bin").unwrap().len();
    assert_eq!(plan.initrd, Some(((64 << 20) - rd) & !0xffff));
    let made: Vec<u64> = plan.made.iter().map(|(gpa, _)| *gpa).collect();
    assert_eq!(made, [0x1000, 0x2000, 0x3000, 0x1_0000]);
    let src = generate_rust(path).unwrap();
    assert!(src.contains("args: [0x1, 0x1000, 0x2000]"), "{src}");
    assert!(src.contains("cmdline: 0x1000,"), "{src}");
    assert!(src.contains("cmdline_capacity: 2048,"), "{src}");
    // The kernel's one loaded segment: 0x10 bytes from offset 0x78 of the ELF.
    let squeezed: String = src.split_whitespace().collect();
    assert!(
        squeezed.contains("split_at(0x78).1.split_at(0x10).0"),
        "{src}"
    );
}
