//! Compiles the generated tables of every shipped board against the model (build.rs writes them
//! into OUT_DIR), then reads them back: a generator that drifts from the model fails to compile here.

mod boards {
    include!(concat!(env!("OUT_DIR"), "/boards/all.rs"));
}

use board_config::{Arch, Board, Image, TestGuest};

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
