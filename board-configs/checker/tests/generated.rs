//! Compiles the generated tables of every shipped board against the model (build.rs writes them
//! into OUT_DIR), then reads them back: a generator that drifts from the model fails to compile here.

mod boards {
    include!(concat!(env!("OUT_DIR"), "/boards/all.rs"));
}

use board_config::check::{check_file, Checked, CheckedBoard, ImageSpec};
use board_config::{Arch, Board, Image, Partition, Region, TestGuest};
use std::path::Path;

fn all() -> [&'static Board; 5] {
    [
        &boards::qemu_virt_la64::BOARD,
        &boards::ls3a5000_7a2000::BOARD,
        &boards::qemu_x86_64::BOARD,
        &boards::bochs_x86_64::BOARD,
        &boards::pc_x86_64::BOARD,
    ]
}

#[test]
fn generated_boards_compile_and_match() {
    for b in all() {
        assert!(b.partitions.len() >= 2, "{}", b.name);
        assert!(b.manager().is_some(), "{}", b.name);
        let page = match b.arch {
            Arch::LoongArch64 => 16 << 10,
            Arch::X86_64 => 4 << 10,
        };
        assert_eq!(b.base_page, page, "{}", b.name);
        for p in b.partitions {
            assert_eq!(b.partition(p.name).map(|q| q.name), Some(p.name));
            // The entry point translates to host memory the partition owns.
            assert!(p.translate(p.entry).is_some(), "{}/{}", b.name, p.name);
        }
    }
}

#[test]
fn hostile_names_stay_strings() {
    let b = &boards::hostile_names::BOARD;
    assert_eq!(
        b.name,
        r#"evil"; compile_error!("board name injected"); // \"#
    );
    assert_eq!(
        b.partitions[0].name,
        r##"m\"}, compile_error!("partition name injected"), r#""##
    );
    assert_eq!(
        b.partitions[0].memory[1].shared_with,
        Some(b.partitions[1].name)
    );
    assert_eq!(
        b.partition(b.partitions[1].name).map(|p| p.cpus),
        Some(&[1][..])
    );
}

#[test]
fn emulator_boards_run_test_guests() {
    // Every emulator board runs the same three scenarios: manager, worker, hostile.
    let want = [
        Image::Guest(TestGuest::Manager),
        Image::Guest(TestGuest::Worker),
        Image::Guest(TestGuest::Hostile),
    ];
    for b in [
        &boards::qemu_virt_la64::BOARD,
        &boards::qemu_x86_64::BOARD,
        &boards::bochs_x86_64::BOARD,
    ] {
        let guests: Vec<Image> = b.partitions.iter().map(|p| p.image).collect();
        assert_eq!(guests, want, "{}", b.name);
    }
    assert_eq!(boards::bochs_x86_64::BOARD.cpus, 4);
    assert_eq!(boards::qemu_x86_64::BOARD.cpus, 4);
    // The multi-vCPU scenarios need a 2-vCPU worker on every emulator board.
    for b in [
        &boards::qemu_virt_la64::BOARD,
        &boards::qemu_x86_64::BOARD,
        &boards::bochs_x86_64::BOARD,
    ] {
        assert_eq!(b.partitions[1].cpus.len(), 2, "{}", b.name);
    }
    assert_eq!(boards::qemu_x86_64::BOARD.partitions[0].name, "manager");
}

/// Every blob of `l` ends inside partition `p`'s memory.
fn blobs_lie_in_its_memory(p: &board_config::Partition, l: &board_config::LinuxBoot) {
    for x in l.blobs {
        assert!(
            p.translate(x.gpa + x.bytes.len() as u64 - 1).is_some(),
            "blob at {:#x}",
            x.gpa
        );
    }
}

#[test]
fn a_linux_boot_is_generated_as_blobs_the_image_copies() {
    let b = &boards::linux::BOARD;
    let Image::Linux(l) = b.partitions[1].image else {
        panic!("partition 1 does not boot Linux");
    };
    assert_eq!(l.kernel_path, "bzimage.bin");
    assert_eq!(l.entry, 0x100_0200);
    let file = std::fs::read("tests/valid/bzimage.bin").unwrap();
    // The kernel blob is the file past its setup sectors, at the load address.
    let kernel = l.blobs.iter().find(|x| x.gpa == 0x100_0000).unwrap();
    assert_eq!(kernel.bytes, &file[5 * 512..]);
    // The zero page carries the kernel's HdrS magic at 0x202 and the command line pointer.
    let zp = l.blobs.iter().find(|x| x.gpa == l.zero_page).unwrap();
    assert_eq!(&zp.bytes[0x202..0x206], b"HdrS");
    let cmdline = u32::from_le_bytes(zp.bytes[0x228..0x22c].try_into().unwrap()) as u64;
    let cl = l.blobs.iter().find(|x| x.gpa == cmdline).unwrap();
    assert_eq!(cl.bytes, b"console=ttyS0 panic=-1\0");
    blobs_lie_in_its_memory(&b.partitions[1], &l);
}

#[test]
fn a_loongarch_linux_boot_is_generated_as_blobs_and_entry_registers() {
    let b = &boards::la_linux::BOARD;
    let Image::Linux(l) = b.partitions[1].image else {
        panic!("partition 1 does not boot Linux");
    };
    assert_eq!(l.entry, 0x20_0000);
    assert_eq!(l.args, [1, l.cmdline, 0x2000]);
    let file = std::fs::read("tests/valid/la-vmlinux.elf").unwrap();
    // The kernel's one segment, from the file, at its physical address.
    let kernel = l.blobs.iter().find(|x| x.gpa == 0x20_0000).unwrap();
    assert_eq!(kernel.bytes, &file[120..136]);
    let cl = l.blobs.iter().find(|x| x.gpa == l.cmdline).unwrap();
    assert_eq!(cl.bytes, b"console=ttyS0 panic=-1\0");
    assert!(l.cmdline_capacity as usize > cl.bytes.len());
    // The system table starts with its signature, "IBI SYST".
    let st = l.blobs.iter().find(|x| x.gpa == l.args[2]).unwrap();
    assert_eq!(&st.bytes[..8], b"IBI SYST");
    blobs_lie_in_its_memory(&b.partitions[1], &l);
}

/// Every generated board, with the file it came from.
fn every_generated() -> [(&'static Board, &'static str); 9] {
    [
        (&boards::qemu_virt_la64::BOARD, "../qemu-virt-la64.toml"),
        (&boards::ls3a5000_7a2000::BOARD, "../ls3a5000-7a2000.toml"),
        (&boards::qemu_x86_64::BOARD, "../qemu-x86_64.toml"),
        (&boards::bochs_x86_64::BOARD, "../bochs-x86_64.toml"),
        (&boards::pc_x86_64::BOARD, "../pc-x86_64.toml"),
        (
            &boards::hostile_names::BOARD,
            "tests/valid/hostile-names.toml",
        ),
        (&boards::edge_cases::BOARD, "tests/valid/edge-cases.toml"),
        (&boards::linux::BOARD, "tests/valid/linux.toml"),
        (&boards::la_linux::BOARD, "tests/valid/la-linux.toml"),
    ]
}

/// The image's board held the checker's way, so it compares with `==` against what was checked.
/// Images are held differently on each side (bytes against files and plans): each partition
/// takes the checked one here, and `same_image` compares them apart. Every field is named, so
/// a field added to the model is compared or this does not compile.
fn as_checked(e: &Board, c: &CheckedBoard) -> Board<Checked> {
    let Board {
        name,
        arch,
        boot,
        emulator,
        cpus,
        ram,
        hypervisor,
        reserved,
        base_page,
        console,
        irqchip,
        log_level,
        partitions,
    } = *e;
    let region = |r: &Region| {
        let Region {
            guest,
            host,
            size,
            access,
            cache,
            shared_with,
        } = *r;
        Region::<Checked> {
            guest,
            host,
            size,
            access,
            cache,
            shared_with: shared_with.map(String::from),
        }
    };
    let partition = |(p, checked): (&Partition, &Partition<Checked>)| {
        let Partition {
            name,
            cpus,
            memory,
            mmio,
            ports,
            irqs,
            uart,
            image: _,
            load,
            entry,
            console,
            manager,
        } = *p;
        Partition::<Checked> {
            name: name.into(),
            cpus: cpus.to_vec(),
            memory: memory.iter().map(region).collect(),
            mmio: mmio.to_vec(),
            ports: ports.to_vec(),
            irqs: irqs.to_vec(),
            uart,
            image: checked.image.clone(),
            load,
            entry,
            console,
            manager,
        }
    };
    Board::<Checked> {
        name: name.into(),
        arch,
        boot,
        emulator,
        cpus,
        ram: ram.to_vec(),
        hypervisor,
        reserved: reserved.to_vec(),
        base_page,
        console,
        irqchip,
        log_level,
        partitions: partitions
            .iter()
            .zip(&c.partitions)
            .map(partition)
            .collect(),
    }
}

/// The image's bytes are the checked image: the same test guest, the named file's bytes, or
/// every piece of the planned Linux boot with its contents.
fn same_image(e: &Image, c: &ImageSpec, at: &str) {
    match (e, c) {
        (Image::Guest(e), ImageSpec::Guest(c)) => assert_eq!(e, c, "{at}"),
        (
            Image::File { path, bytes },
            ImageSpec::File {
                path: p, resolved, ..
            },
        ) => {
            assert_eq!(path, p, "{at}");
            assert_eq!(*bytes, std::fs::read(resolved).unwrap(), "{at}");
        }
        (
            Image::Linux(l),
            ImageSpec::Linux {
                kernel,
                initrd,
                plan,
                ..
            },
        ) => {
            let plan = plan.as_deref().unwrap();
            let file = std::fs::read(&kernel.resolved).unwrap();
            let mut want: Vec<(u64, Vec<u8>)> = plan
                .kernel
                .iter()
                .map(|&(gpa, offset, len)| (gpa, file[offset..offset + len].to_vec()))
                .collect();
            if let (Some(f), Some(at)) = (initrd, plan.initrd) {
                want.push((at, std::fs::read(&f.resolved).unwrap()));
            }
            want.extend(plan.made.iter().cloned());
            let got: Vec<(u64, Vec<u8>)> =
                l.blobs.iter().map(|b| (b.gpa, b.bytes.to_vec())).collect();
            assert_eq!(got, want, "{at}: blobs");
            assert_eq!(l.kernel_path, kernel.path, "{at}");
            let planned = (
                plan.entry,
                plan.args,
                plan.cmdline,
                plan.zero_page,
                plan.gdt,
            );
            let embedded = (
                l.entry,
                l.args,
                (l.cmdline, l.cmdline_capacity),
                l.zero_page,
                l.gdt,
            );
            assert_eq!(embedded, planned, "{at}");
        }
        _ => panic!("{at}: the image is {e:?}, but {c:?} was checked"),
    }
}

#[test]
fn the_image_gets_exactly_the_checked_board() {
    for (embedded, file) in every_generated() {
        let checked = check_file(Path::new(file)).unwrap_or_else(|e| panic!("{file}:\n{e}"));
        assert_eq!(as_checked(embedded, &checked), checked.board, "{file}");
        for (e, c) in embedded.partitions.iter().zip(&checked.partitions) {
            same_image(&e.image, &c.image, &format!("{file}/{}", c.name));
        }
    }
}
