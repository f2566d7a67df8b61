//! The Linux boot tests: on x86 (issue 16) Debian's unmodified kernel, on LoongArch (issue 17,
//! QEMU-LVZ only: the deprivileged backend runs no kernel) a kernel built from Debian's sources,
//! each in a 2-vCPU partition beside the manager and a worker (or, on x86, the hostile guest,
//! attacking while Linux boots), its `/init` printing what the test checks, the manager
//! watching it with dirty logging and aging. Every row's name contains `linux`.

use super::{LA_HOSTILE, PARTITION_FAULTS, X86_HOSTILE};
use crate::boot_test::{BootTest, Ending, Figure};
use crate::emulator::Flavour;
use std::time::Duration;

/// What a Linux run must print, in order, on any x86 Linux board.
const LINUX_ORDERED: &[&str] = &[
    "partition linux (id 1): cpus [1, 2]",
    "partition linux: vCPU 0 starts on cpu1",
    "partition linux: vCPU 1 starts on cpu2",
    "[linux] linux-init: reached /init",
    "[linux] linux-init: online CPUs 0-1 count 2",
    "[linux] linux-init: clocksource tsc",
    "[linux] linux-init: local timer ticked on every CPU yes",
    "[linux] linux-init: workload wrote 32 MiB in",
    "partition linux finished (code 0)",
    "[manager] manager: Linux wrote",
    "[manager] manager: Linux working set peak",
    "[manager] manager: Linux exits:",
    "[manager] manager: done ok",
    "summary: linux finished with code 0",
    "partitions: all ended as expected",
];

/// `/init` powers off after its checks instead of starting a shell.
const POWER_OFF: &str = "log=info linux:septum.poweroff";
/// The same, after a reboot on the partition's first boot.
const REBOOT_THEN_POWER_OFF: &str = "log=info linux:septum.poweroff linux:septum.reboot-test";

/// A reboot ahead of the run: the first boot resets the partition through the ACPI reset
/// register, and the hypervisor boots it again.
const REBOOT: [&str; 4] = [
    "partition linux (id 1): cpus [1, 2]",
    "[linux] linux-init: first boot, rebooting",
    "partition linux stopped: reset requested",
    "partition linux: reboot 1",
];
/// The reboot, then a Linux run without its first line (the partition's boot-time line).
const LINUX_REBOOTED: [&str; REBOOT.len() + LINUX_ORDERED.len() - 1] =
    concat(&REBOOT, LINUX_ORDERED.split_at(1).1);

/// Lines of a Linux run that may come in any order with the rest.
const LINUX_ANYWHERE: [&str; 3] = [
    "partition linux: IOAPIC line 4 -> vCPU 0",
    "IO-APIC   4-edge      ttyS0",
    "kept 32768 KiB",
];

/// With the worker beside Linux: it finishes its checksums.
const WORKER_DONE: [&str; 2] = [
    "[worker] worker: final checksum",
    "summary: worker finished with code 0",
];

const WITH_WORKER: [&str; LINUX_ANYWHERE.len() + WORKER_DONE.len()] =
    concat(&LINUX_ANYWHERE, &WORKER_DONE);
const WITH_HOSTILE: [&str; LINUX_ANYWHERE.len() + X86_HOSTILE.len()] =
    concat(&LINUX_ANYWHERE, X86_HOSTILE);

/// `a` then `b`, for the line lists above (N = both lengths).
const fn concat<const N: usize>(a: &[&'static str], b: &[&'static str]) -> [&'static str; N] {
    let mut all = [""; N];
    let mut i = 0;
    while i < N {
        all[i] = if i < a.len() { a[i] } else { b[i - a.len()] };
        i += 1;
    }
    all
}

/// What tells of a kernel in trouble, or of `/init`'s workload failing.
const KERNEL_TROUBLE: [&str; 4] = ["Kernel panic", "Oops", "BUG:", "linux-init: dd failed"];

/// A Linux run fails on anything that fails a test-guest run, and on a kernel in trouble.
const LINUX_FORBIDDEN: [&str; PARTITION_FAULTS.len() + KERNEL_TROUBLE.len()] =
    concat(PARTITION_FAULTS, &KERNEL_TROUBLE);

const LINUX_FIGURES: &[Figure] = &[
    Figure {
        name: "Linux MemTotal (kB, partition 256 MiB)",
        after: "linux-init: MemTotal:",
        min: 150_000,
        max: 262_144,
    },
    Figure {
        name: "Linux uptime at /init (s)",
        after: "linux-init: uptime ",
        min: 0,
        max: i64::MAX,
    },
    Figure {
        name: "pages Linux dirtied, harvested (4 KiB)",
        after: "manager: Linux wrote ",
        min: 8192,
        max: 65536,
    },
    Figure {
        name: "Linux working-set peak (4 KiB pages)",
        after: "manager: Linux working set peak ",
        min: 8192,
        max: 65536,
    },
    Figure {
        name: "dirty harvest of 256 MiB (counter ticks: TSC, LoongArch 100 MHz; emulator clock, a proxy)",
        after: "manager: Linux dirty harvest mean ",
        min: 1,
        max: i64::MAX,
    },
    Figure {
        name: "Linux boots (a reboot counts)",
        after: "summary: linux finished with code 0 after ",
        min: 1,
        max: 2,
    },
];

/// A LoongArch Linux boot from its command line to its power off.
const LA_LINUX_BOOT: [&str; 9] = [
    "partition linux: command line += septum.poweroff",
    "partition linux: vCPU 0 starts on cpu1",
    "partition linux: vCPU 1 starts on cpu2",
    "[linux] linux-init: reached /init",
    "[linux] linux-init: online CPUs 0-1 count 2",
    "[linux] linux-init: local timer ticked on every CPU yes",
    "[linux] linux-init: workload wrote 32 MiB in",
    "partition linux finished (code 0)",
    "[manager] manager: Linux wrote",
];

/// What a LoongArch Linux run must print, in order, after its reboot (the same reboot as x86's,
/// through the power register block the device tree names for `syscon-reboot`).
const LA_LINUX_ORDERED: [&str; 5 + LA_LINUX_BOOT.len() + 4] = concat(
    &[
        "partition: backend LVZ (GID 1 for manager, GID 2 for linux, GID 3 for worker)",
        REBOOT[0],
        REBOOT[1],
        REBOOT[2],
        REBOOT[3],
    ],
    &concat::<{ LA_LINUX_BOOT.len() + 4 }>(
        &LA_LINUX_BOOT,
        &[
            "[manager] manager: Linux working set peak",
            "[manager] manager: Linux exits:",
            "[manager] manager: done ok",
            "partitions: all ended as expected",
        ],
    ),
);

/// Lines of a LoongArch Linux run that may come in any order with the rest: the console's
/// interrupt counted as a PCH-PIC line (through the partition's EIOINTC view), the kept file, the
/// worker's end.
const LA_LINUX_ANYWHERE: [&str; 4] = [
    "PCH PIC 0 ttyS0",
    "kept 32768 KiB",
    "[worker] worker: final checksum",
    "summary: worker finished with code 0",
];

/// The x86 figures, and the console interrupts LoongArch's `/init` counts: its UART line reaches
/// Linux.
const LA_LINUX_FIGURES: [Figure; 7] = {
    let x86 = LINUX_FIGURES;
    [
        x86[0],
        x86[1],
        x86[2],
        x86[3],
        x86[4],
        x86[5],
        Figure {
            name: "console (ttyS0) interrupts Linux took, all CPUs",
            after: "linux-init: console interrupts ",
            min: 1,
            max: i64::MAX,
        },
    ]
};

/// A LoongArch Linux run beside the hostile guest (no reboot, no worker).
const LA_LINUX_BESIDE_HOSTILE: [&str; 2 + LA_LINUX_BOOT.len() + 1] = concat(
    &[
        "partition: backend LVZ (GID 1 for manager, GID 2 for linux, GID 3 for hostile)",
        "partition linux (id 1): cpus [1, 2]",
    ],
    &concat::<{ LA_LINUX_BOOT.len() + 1 }>(&LA_LINUX_BOOT, &["[manager] manager: done ok"]),
);

/// Anywhere in that run: the console's interrupt, the kept file, and the hostile guest's
/// attacks as LVZ answers them, each stopping it alone.
fn la_beside_hostile_anywhere() -> &'static [&'static str] {
    let mut lines = vec!["PCH PIC 0 ttyS0", "kept 32768 KiB"];
    lines.extend(LA_HOSTILE.iter().flat_map(|l| super::lvz::lvz_line(l)));
    lines.leak()
}

/// The Linux boot tests.
pub fn linux_tests() -> Vec<BootTest> {
    let linux = |name, board, args, ordered, anywhere: &'static [&'static str]| BootTest {
        name,
        board,
        args,
        ordered,
        anywhere,
        forbidden: &LINUX_FORBIDDEN,
        figures: LINUX_FIGURES,
        ending: Ending::Success,
        timeout: Duration::from_secs(240),
        flavour: Flavour::Stock,
    };
    // Bochs runs Linux about 30 times slower than QEMU TCG (its four CPUs share one host
    // thread): one boot, no reboot.
    let bochs = BootTest {
        timeout: Duration::from_secs(1200),
        ..linux(
            "linux",
            "bochs-x86_64-linux",
            POWER_OFF,
            LINUX_ORDERED,
            &WITH_WORKER,
        )
    };
    // QEMU-LVZ prints a debug line per guest exit; a Linux boot makes many.
    let loongarch = BootTest {
        timeout: Duration::from_secs(900),
        flavour: Flavour::Lvz,
        figures: &LA_LINUX_FIGURES,
        ..linux(
            "linux",
            "qemu-virt-la64-linux",
            REBOOT_THEN_POWER_OFF,
            &LA_LINUX_ORDERED,
            &LA_LINUX_ANYWHERE,
        )
    };
    let loongarch_hostile = BootTest {
        timeout: Duration::from_secs(900),
        flavour: Flavour::Lvz,
        figures: &LA_LINUX_FIGURES,
        ..linux(
            "linux-beside-hostile",
            "qemu-virt-la64-linux-hostile",
            POWER_OFF,
            &LA_LINUX_BESIDE_HOSTILE,
            la_beside_hostile_anywhere(),
        )
    };
    vec![
        linux(
            "linux",
            "qemu-x86_64-linux",
            REBOOT_THEN_POWER_OFF,
            &LINUX_REBOOTED,
            &WITH_WORKER,
        ),
        linux(
            "linux-beside-hostile",
            "qemu-x86_64-linux-hostile",
            POWER_OFF,
            LINUX_ORDERED,
            &WITH_HOSTILE,
        ),
        bochs,
        loongarch,
        loongarch_hostile,
    ]
}
