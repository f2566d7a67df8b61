//! The QEMU-LVZ runs of the LoongArch boot tests: every stock-QEMU (deprivileged backend)
//! scenario again with the LVZ backend, its expected lines following the backend chosen, and the
//! scenarios that cannot run there yet listed with their reason.

use super::{boot_tests, LA_DEVICE_IRQ_UPCALL};
use crate::boot_test::BootTest;
use crate::emulator::Flavour;

/// LoongArch tests that do not run under QEMU-LVZ yet, and why; `cargo xtask test` prints a line
/// for each (nothing is left out silently).
pub fn not_under_lvz() -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for t in boot_tests_stock_loongarch() {
        if let Err(why) = for_lvz(&t) {
            out.push((format!("{} on {}", t.name, t.board), why));
        }
    }
    out
}

fn boot_tests_stock_loongarch() -> Vec<BootTest> {
    boot_tests()
        .into_iter()
        .filter(|t| t.loongarch() && t.flavour == Flavour::Stock)
        .collect()
}

/// Scenarios that cannot pass under LVZ yet, with the reason printed for each (none today: the
/// storm runs there too, its IPIs counted when the guest acknowledges them).
const LVZ_KNOWN_FAILING: &[(&str, &str)] = &[];

/// The LVZ backend's version of a line a stock-QEMU (deprivileged) run expects; `None` drops a
/// line that has no counterpart under LVZ.
pub(super) fn lvz_line(line: &'static str) -> Vec<&'static str> {
    match line {
        "virt: LVZ absent (CPUCFG2.LVZP=0)" => vec!["virt: LVZ present (version 1)"],
        "partition: backend deprivileged (LVZ absent)" => vec!["partition: backend LVZ (GID 1 for"],
        other => LVZ_REPLACED
            .iter()
            .find(|(from, _)| *from == other)
            .map_or_else(|| vec![other], |(_, to)| to.to_vec()),
    }
}

/// Lines whose LVZ counterpart differs in more than the backend name.
const LVZ_REPLACED: &[(&str, &[&str])] = &[
    // Under LVZ a guest's CSRs are its own: the hostile guest's CSR attack becomes an IOCSR read
    // outside its devices, and its run 0 also aims a root TLB operation at another GID.
    (
        "partition hostile stopped: privileged instruction at",
        &["partition hostile stopped: IOCSR access outside its devices at 0x420"],
    ),
    (
        "[hostile] hostile: bad hypercalls refused: -1 -2 -3 -6 -3",
        &[
            "[hostile] hostile: bad hypercalls refused: -1 -2 -3 -6 -3",
            LVZ_INVTLB_REFUSED,
            LVZ_CPUCFG_FILTERED,
        ],
    ),
    (
        "[hostile] hostile: vCPU start, IPI and IRQ route refused: -2 -2 -3",
        &[
            "[hostile] hostile: vCPU start, IPI and IRQ route refused: -2 -2 -3",
            LVZ_INVTLB_REFUSED,
            LVZ_CPUCFG_FILTERED,
        ],
    ),
    // LVZ guests take their timer and IPIs through their own exception vector, not upcalls.
    (
        "[worker] worker: upcall handler -> 0, start vCPU 1 (VCPU_START) -> 0",
        &["[worker] worker: exception vector -> 0, start vCPU 1 (VCPU_START) -> 0"],
    ),
    (
        "[worker] worker: upcall handler -> 0, start vCPU 1 (mailbox + IPI) -> 0",
        &["[worker] worker: exception vector -> 0, start vCPU 1 (mailbox + IPI) -> 0"],
    ),
    // The RTC's line is 3 on QEMU 9.0, QEMU-LVZ's base. The guest routes it the hardware way,
    // level-triggered through its PCH-PIC and EIOINTC views (the route is said once, the
    // guest's mask and unmask at each interrupt are not), and takes exactly the 5 interrupts it
    // re-arms the line for: the hypervisor keeps the line masked from each interrupt until the
    // guest unmasks it in its view.
    (
        LA_DEVICE_IRQ_UPCALL,
        &[
            "partition worker: PCH-PIC line 3 -> vCPU 1 (vector 0x13, masked)",
            "[worker] worker: device IRQ line 3 (RTC, level, PCH-PIC and EIOINTC views) -> vCPU \
             1: 5 interrupts (expected 5) ok",
        ],
    ),
];

/// The hostile guest's TLB attack on another GID, refused by the CPU (IPE, Ecode 0xe).
const LVZ_INVTLB_REFUSED: &str =
    "[hostile] hostile: invtlb 0x16 for GID 1 refused by the CPU (guest exception 0xe)";

/// The hostile guest's probe of the CPU: the hypervisor's `cpucfg` answer hides LVZ and the
/// PMU.
const LVZ_CPUCFG_FILTERED: &str = "[hostile] hostile: cpucfg hides LVZ and the PMU";

/// `test` as a QEMU-LVZ run, or why it does not run there yet.
pub(super) fn for_lvz(test: &BootTest) -> Result<BootTest, &'static str> {
    if let Some((_, why)) = LVZ_KNOWN_FAILING.iter().find(|(n, _)| *n == test.name) {
        return Err(why);
    }
    let map = |lines: &'static [&'static str]| -> &'static [&'static str] {
        let v: Vec<&'static str> = lines.iter().flat_map(|l| lvz_line(l)).collect();
        v.leak()
    };
    Ok(BootTest {
        name: test.name,
        board: test.board,
        args: test.args,
        ordered: map(test.ordered),
        anywhere: map(test.anywhere),
        forbidden: test.forbidden,
        figures: test.figures,
        ending: test.ending,
        timeout: test.timeout * 2,
        flavour: Flavour::Lvz,
    })
}
