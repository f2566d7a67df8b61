//! The emulator boot tests: per board, the command line, the serial lines expected in order and
//! anywhere, the lines that fail a run, how the emulator must end, and the timeout. Issue 9's
//! three multi-vCPU scenarios are one list ([`smp_tests`]) run on every board whose worker
//! partition has two vCPUs. The volume attacks are [`volume`]; the Linux partitions [`linux`];
//! the QEMU-LVZ reruns of the LoongArch tests are [`lvz`].

mod linux;
mod lvz;
mod volume;

use crate::boot_test::{BootTest, Ending, Figure};
use crate::emulator::Flavour;
use linux::linux_tests;
use lvz::for_lvz;
pub use lvz::not_under_lvz;
use std::time::Duration;
use volume::volume_tests;

/// Lines every successful boot prints, in order, on every board.
const BANNER: &str = "Septum 0.1.0 on board";
const NO_CRASH: &[&str] = &["PANIC", "EXCEPTION", "exit: FAILURE"];
/// A partition run fails on a crash, a scenario result that did not match, or an attack that
/// got through.
const PARTITION_FAULTS: &[&str] = &[
    "PANIC",
    "EXCEPTION",
    "exit: FAILURE",
    "MISMATCH",
    "ATTACK SUCCEEDED",
    "guest panic",
    "did not acknowledge",
];

/// The manager's CPUID check on x86: the exit reached the hypervisor, was counted, and got the
/// filtered answer.
const CPUID_OK: &str =
    "[manager] manager: cpuid SeptumSeptum ABI 1.1, VMX and SVM hidden yes, 4 exits counted (expected 4) ok";
/// The hostile guest's seven runs on an x86 test board (the same layout on QEMU and Bochs): each
/// attack stops it alone with its reason; malformed hypercalls only get error codes.
const X86_HOSTILE: &[&str] = &[
    "partition hostile: vCPU 0 starts on cpu3 at 0x100000 (run 0)",
    "[hostile] hostile: bad hypercalls refused: -1 -2 -3 -6 -3",
    "partition hostile stopped: read of unowned address 0x6000000",
    "partition hostile stopped: write to unowned address 0x4000000",
    "partition hostile stopped: read of unowned address 0xfed00000",
    "partition hostile stopped: privileged instruction at",
    "partition hostile stopped: write to unowned port 0xcf8",
    "partition hostile stopped: write to MSR 0x1b",
    // The jump leaves the guest's 4 GiB page tables: #PF with no IDT, so a triple fault comes
    // before any stage-2 fault.
    "partition hostile stopped: triple fault",
    "[manager] manager: partition 2 stopped after 6 restarts",
    "summary: hostile stopped",
    "partitions: all ended as expected",
];

/// The hostile guest's five runs on a LoongArch test board (deprivileged backend; `lvz` maps
/// them for LVZ): each attack stops it alone with its reason.
const LA_HOSTILE: &[&str] = &[
    "partition hostile: vCPU 0 starts on cpu3 at 0x200000 (run 0)",
    "[hostile] hostile: bad hypercalls refused: -1 -2 -3 -6 -3",
    "partition hostile stopped: read of unowned address 0x6000000",
    "partition hostile stopped: write to unowned address 0x4000000",
    "partition hostile stopped: read of unowned address 0x100d0100",
    "partition hostile stopped: privileged instruction at",
    "partition hostile stopped: fetch from unowned address 0x1000000000",
    "[manager] manager: partition 2 stopped after 4 restarts",
    "summary: hostile stopped",
    "partitions: all ended as expected",
];

/// The manager's reference cost, printed by every partitions test: the mean of 1000 `VERSION`
/// hypercalls, in the board's counter ticks (emulator clock: a proxy).
const HYPERCALL_ROUND_TRIP: Figure = Figure {
    name: "hypercall round trip (counter ticks, emulator clock)",
    after: "manager: hypercall round trip ",
    min: 1,
    max: i64::MAX,
};

/// What a partitions test wants anywhere on the emulator boards that run the test guests
/// (manager on CPU 0, the 2-vCPU worker on CPUs 1 and 2, the hostile guest on CPU 3).
const PARTITIONS_ANYWHERE: &[&str] = &[
    "smp: cpu1 joins partition worker as vCPU 0",
    "smp: cpu2 joins partition worker as vCPU 1",
    "smp: cpu3 joins partition hostile as vCPU 0",
    "[manager] manager: checksum",
    "[worker] worker: checksum",
    "[worker] worker: final checksum",
];

/// The emulator boot tests.
pub fn boot_tests() -> Vec<BootTest> {
    let t = Duration::from_secs;
    let mut tests = vec![
        BootTest {
            name: "boot",
            board: "qemu-virt-la64",
            args: "log=info",
            ordered: &[
                "Septum 0.1.0 on board qemu-virt-la64",
                "boot: QEMU -kernel, FDT at 0x100000",
                "cpu: ",
                "virt: LVZ absent (CPUCFG2.LVZP=0)",
                "memory: ram [0x0, 0x10000000) 256 MiB",
                "memory: ram [0x80000000, 0xb0000000) 768 MiB",
                "memory: frame allocator",
                "memory: self-test passed",
                "smp: 4 of 4 CPUs online",
                "boot complete",
            ],
            anywhere: &["smp: cpu1 online", "smp: cpu2 online", "smp: cpu3 online"],
            forbidden: NO_CRASH,
            figures: &[],
            ending: Ending::Success,
            // The run goes on to the partitions' scenarios (multi-vCPU ones included).
            timeout: t(150),
            flavour: Flavour::Stock,
        },
        BootTest {
            name: "partitions",
            board: "qemu-virt-la64",
            args: "log=info",
            ordered: &[
                "virt: LVZ absent (CPUCFG2.LVZP=0)",
                "partition: backend deprivileged (LVZ absent)",
                "partition manager (id 0): cpus [0]",
                "partition worker (id 1): cpus [1, 2]",
                "partition hostile (id 2): cpus [3]",
                "boot complete",
                "[manager] manager: dirty log start -> 0",
                "[manager] manager: dirty pages 37 (expected 37) ok",
                "[manager] manager: second harvest 0 ok",
                "[manager] manager: age start -> 0",
                "[manager] manager: working set",
                "[worker] worker: done",
                "partition worker finished (code 0) (vCPU 0)",
                "[manager] manager: done ok",
                "partition manager finished (code 0)",
                "summary: manager finished with code 0",
                "summary: worker finished with code 0",
                "partitions: all ended as expected",
            ],
            anywhere: PARTITIONS_ANYWHERE,
            forbidden: PARTITION_FAULTS,
            figures: &[HYPERCALL_ROUND_TRIP],
            ending: Ending::Success,
            timeout: t(150),
            flavour: Flavour::Stock,
        },
        BootTest {
            name: "hostile-stopped",
            board: "qemu-virt-la64",
            args: "log=info",
            ordered: LA_HOSTILE,
            anywhere: &["partition worker finished (code 0)"],
            forbidden: PARTITION_FAULTS,
            figures: &[],
            ending: Ending::Success,
            timeout: t(150),
            flavour: Flavour::Stock,
        },
        BootTest {
            name: "uefi",
            board: "ls3a5000-7a2000",
            args: "",
            ordered: &[
                "Septum: UEFI entry, leaving boot services",
                "Septum 0.1.0 on board ls3a5000-7a2000",
                "boot: UEFI, RAM from the memory map",
                "virt: LVZ absent (CPUCFG2.LVZP=0)",
                "memory: self-test passed",
                "partition: backend deprivileged (LVZ absent)",
                "smp: 4 of 4 CPUs online",
                "boot complete",
                "partition manager finished (code 0)",
                "summary: control finished with code 0",
                "summary: app finished with code 0",
                "partitions: all ended as expected",
                "exit: success, parking",
            ],
            anywhere: &["[control] worker: checksum", "[app] worker: checksum"],
            forbidden: PARTITION_FAULTS,
            figures: &[],
            ending: Ending::Success,
            timeout: t(240),
            flavour: Flavour::Stock,
        },
        panic_fails("qemu-virt-la64", t(60)),
        fault_fails("qemu-virt-la64", t(60)),
        BootTest {
            name: "boot",
            board: "qemu-x86_64",
            args: "log=info",
            ordered: &[
                "Septum 0.1.0 on board qemu-x86_64",
                "boot: multiboot1",
                "cpu: ",
                "virt: VMX not available on this CPU",
                "virt: AMD SVM present, nested paging yes",
                "svm: revision 1, 16 ASIDs, nested paging yes, NRIP save no",
                "memory: ram [",
                "memory: frame allocator",
                "memory: self-test passed",
                "virt: SVM (EFER.SVME) enabled on cpu0",
                "smp: 4 of 4 CPUs online",
                "boot complete",
            ],
            anywhere: &[
                "smp: cpu1 online",
                "smp: cpu2 online",
                "smp: cpu3 online",
                "virt: SVM (EFER.SVME) enabled on cpu1",
                "virt: SVM (EFER.SVME) enabled on cpu3",
            ],
            forbidden: NO_CRASH,
            figures: &[],
            ending: Ending::Success,
            timeout: t(60),
            flavour: Flavour::Stock,
        },
        // Issue 8: the same partitions and scenarios as on the Bochs board, under SVM with nested
        // paging (QEMU's TCG has no VMX): manager and worker complete with their checksums, CPUID
        // is answered (filtered) and counted, dirty logging sees exactly the worker's 37 pages and
        // then none, aging sees its working set.
        x86_partitions(
            "qemu-x86_64",
            [
                "virt: AMD SVM present, nested paging yes",
                "partition: backend SVM: nested paging",
            ],
            t(120),
        ),
        // Issue 8 (and 6, test 3): each attack stops the hostile guest alone with its reason.
        BootTest {
            name: "hostile-stopped",
            board: "qemu-x86_64",
            args: "log=info",
            ordered: X86_HOSTILE,
            anywhere: &["partition worker finished (code 0)"],
            forbidden: PARTITION_FAULTS,
            figures: &[],
            ending: Ending::Success,
            timeout: t(120),
            flavour: Flavour::Stock,
        },
        fault_fails("qemu-x86_64", t(60)),
        BootTest {
            name: "boot",
            board: "bochs-x86_64",
            args: "log=info",
            ordered: &[
                "Septum 0.1.0 on board bochs-x86_64",
                "boot: multiboot2",
                "cpu: ",
                "virt: VMX present",
                "vmx: ",
                "memory: frame allocator",
                "memory: self-test passed",
                "virt: VMXON enabled on cpu0",
                "CPUs online",
                "boot complete",
            ],
            anywhere: &["smp: cpu1 online", "virt: VMXON enabled on cpu1"],
            forbidden: NO_CRASH,
            figures: &[],
            ending: Ending::Success,
            timeout: t(300),
            flavour: Flavour::Stock,
        },
        // Issue 6, tests 1 and 2: manager and worker run to completion under VMX + EPT on their
        // own CPUs with their checksums; dirty logging sees exactly the pages the worker wrote,
        // then none; aging sees the worker's working set.
        x86_partitions(
            "bochs-x86_64",
            [
                "virt: VMX present",
                "partition: backend VMX: EPT with A/D, VPID",
            ],
            t(300),
        ),
        // Issue 6, test 3: each attack stops the hostile guest alone with its reason (malformed
        // hypercalls only get error codes); the worker finishes and the run ends cleanly.
        BootTest {
            name: "hostile-stopped",
            board: "bochs-x86_64",
            args: "log=info",
            ordered: X86_HOSTILE,
            anywhere: &["partition worker finished (code 0)"],
            forbidden: PARTITION_FAULTS,
            figures: &[],
            ending: Ending::Success,
            timeout: t(300),
            flavour: Flavour::Stock,
        },
        // Issue 8: the real-PC board's image boots the way a UEFI PC boots it, in QEMU: OVMF
        // starts GRUB's EFI image from a CD, GRUB loads the ELF with multiboot2. TCG has no VMX,
        // so the partitions (test guests: manager, and workers in `rtos` and `app`) run under
        // SVM; the run ends through isa-debug-exit (status 33).
        BootTest {
            name: "uefi",
            board: "pc-x86_64",
            args: "log=info",
            ordered: &[
                "BdsDxe: starting Boot",
                "Booting `Septum'",
                "Septum 0.1.0 on board pc-x86_64",
                "boot: multiboot2",
                "virt: VMX not available on this CPU",
                "virt: AMD SVM present, nested paging yes",
                "memory: self-test passed",
                "virt: SVM (EFER.SVME) enabled on cpu0",
                "partition: backend SVM: nested paging",
                "partition manager (id 0): cpus [0]",
                "partition rtos (id 1): cpus [1]",
                "partition app (id 2): cpus [2, 3]",
                "smp: 4 of 4 CPUs online",
                "boot complete",
                "[manager] manager: done ok",
                "partition manager finished (code 0)",
                "summary: manager finished with code 0",
                "summary: rtos finished with code 0",
                "summary: app finished with code 0",
                "partitions: all ended as expected",
            ],
            anywhere: &[
                "smp: cpu1 joins partition rtos as vCPU 0",
                "smp: cpu2 joins partition app as vCPU 0",
                CPUID_OK,
                "[manager] manager: checksum",
                "[rtos] worker: checksum",
                "[app] worker: checksum",
                "partition rtos finished (code 0)",
                "partition app finished (code 0)",
            ],
            forbidden: PARTITION_FAULTS,
            figures: &[],
            ending: Ending::Success,
            timeout: t(240),
            flavour: Flavour::Stock,
        },
        panic_fails("bochs-x86_64", t(300)),
    ];
    // Issue 9 on the three emulated boards whose worker has two vCPUs (cpus 1 and 2).
    tests.extend(smp_tests("qemu-virt-la64", t(150)));
    tests.extend(smp_tests("qemu-x86_64", t(150)));
    tests.extend(smp_tests("bochs-x86_64", t(300)));
    tests.push(BootTest {
        // LoongArch: vCPU 1 started the firmware way (mailbox + IPI through the emulated IOCSR
        // block), then the same timers and IPIs; an IPI_SEND to core 5 is refused. Last, a
        // physical device interrupt: the RTC's line (6 on QEMU 10), routed to vCPU 1 with
        // IRQ_ROUTE, arrives once as an upcall (the hypervisor programs the real PCH-PIC and
        // EIOINTC); under LVZ see `lvz.rs`.
        name: "mailbox-start",
        board: "qemu-virt-la64",
        args: "log=info smp-test=2",
        ordered: &[
            "[worker] worker: upcall handler -> 0, start vCPU 1 (mailbox + IPI) -> 0",
            "partition worker: IPI refused: vCPU 5 is outside its 2 vCPUs",
            "[worker] worker: timer ticks vCPU 0 10 vCPU 1 10 (expected 10 each) ok",
            "[worker] worker: IPIs 5 sent, 5 answered (expected 5) ok",
            LA_DEVICE_IRQ_UPCALL,
            "partition worker finished (code 0) (vCPU 0)",
            "partitions: all ended as expected",
        ],
        // The hypervisor's line and the guest's race on the console.
        anywhere: &["partition worker: vCPU 1 starts on cpu2 at"],
        forbidden: PARTITION_FAULTS,
        figures: &[],
        ending: Ending::Success,
        timeout: t(150),
        flavour: Flavour::Stock,
    });
    tests.push(x2apic_test("qemu-x86_64", t(150)));
    tests.push(x2apic_test("bochs-x86_64", t(300)));
    // Issue 13 §4: attacks by volume on each emulated backend.
    tests.extend(volume_tests("qemu-virt-la64", t(150)));
    tests.extend(volume_tests("qemu-x86_64", t(150)));
    tests.extend(volume_tests("bochs-x86_64", t(400)));
    // Every LoongArch test again on QEMU-LVZ, the lines following the LVZ backend.
    let lvz: Vec<BootTest> = tests
        .iter()
        .filter(|t| t.loongarch())
        .filter_map(|t| for_lvz(t).ok())
        .collect();
    tests.extend(lvz);
    // Issues 16 and 17: Linux in an x86 partition, and in a LoongArch one (QEMU-LVZ only).
    tests.extend(linux_tests());
    tests
}

/// The LoongArch worker's device interrupt in the deprivileged backend (`mailbox-start`).
pub(super) const LA_DEVICE_IRQ_UPCALL: &str = "[worker] worker: device IRQ line 6 (RTC, edge, \
     IRQ_ROUTE upcall) -> vCPU 1: 1 interrupts (expected 1) ok";

/// x86: the worker's vCPU 0 starts vCPU 1 the hardware way (INIT and STARTUP IPIs through its
/// x2APIC; vCPU 1 runs the guest's real-mode start code into long mode), and after the upcall
/// scenario both do it the hardware way too (guest IDT, x2APIC timer and ICR, vectors injected
/// by the hypervisor); an IPI to an APIC ID outside the partition is refused. Then a device
/// interrupt: COM2's line 3, routed through the worker's I/O APIC view to vCPU 1, reaches it as
/// the vector asked for, exactly 5 times (the hypervisor programs the real I/O APIC entry).
fn x2apic_test(board: &'static str, timeout: Duration) -> BootTest {
    BootTest {
        name: "x2apic-init-sipi",
        board,
        args: "log=info smp-test=2",
        ordered: &[
            "[worker] worker: upcall handler -> 0, start vCPU 1 (INIT + STARTUP) -> 0",
            "[worker] worker: timer ticks vCPU 0 10 vCPU 1 10 (expected 10 each) ok",
            "[worker] worker: IPIs 5 sent, 5 answered (expected 5) ok",
            "[worker] worker: x2APIC IDs 0 and 1, timer ticks vCPU 0 10 vCPU 1 10 (expected 10 \
             each) ok",
            "partition worker: IPI refused: vCPU 7 is outside its 2 vCPUs",
            "[worker] worker: x2APIC IPIs 5 sent, 5 answered (expected 5), 0 from the IPI to \
             APIC ID 7 ok",
            "partition worker: IOAPIC line 3 -> vCPU 1 (vector 0x42, unmasked)",
            // The guest masks the line again before it prints its count.
            "partition worker: IOAPIC line 3 -> vCPU 1 (vector 0x42, masked)",
            "[worker] worker: device IRQ line 3 (COM2, edge) -> vCPU 1: 5 interrupts (expected 5) \
             ok",
            // Again as a level-triggered line: held masked from each interrupt to the guest's EOI.
            "partition worker: IOAPIC line 3 -> vCPU 1 (vector 0x42, unmasked)",
            "[worker] worker: device IRQ line 3 (COM2, level) -> vCPU 1: 5 interrupts (expected \
             5) ok",
            // vCPU 1 offline and online again: INIT while it runs, then STARTUP.
            "partition worker: vCPU 1 reset by INIT, waits for STARTUP",
            "[worker] worker: vCPU 1 reset by INIT and started again by STARTUP ok",
            "partition worker finished (code 0) (vCPU 0)",
            "partitions: all ended as expected",
        ],
        // The hypervisor's line and the guest's race on the console.
        anywhere: &["partition worker: vCPU 1 starts on cpu2 at 0x8000"],
        forbidden: PARTITION_FAULTS,
        figures: &[],
        ending: Ending::Success,
        timeout,
        flavour: Flavour::Stock,
    }
}

/// What the hostile guest's IPI and IRQ attacks print (`smp_tests`, test 3), on a board whose
/// interrupt controller is `$chip`.
macro_rules! hostile_ipi_irq {
    ($chip:literal) => {
        [
            "partition hostile: vCPU start refused: vCPU 1 is outside its 1 vCPUs",
            "partition hostile: IPI refused: vCPU 3 is outside its 1 vCPUs",
            "partition hostile: IRQ route refused: line 3 is not one of its lines []",
            "[hostile] hostile: vCPU start, IPI and IRQ route refused: -2 -2 -3",
            concat!(
                "partition hostile: ",
                $chip,
                " route refused: line 3 is not one of its lines []"
            ),
            concat!(
                "[hostile] hostile: ",
                $chip,
                " route of line 3 refused, reads back masked"
            ),
            "partition hostile stopped: read of unowned address 0x6000000",
            "[manager] manager: done ok",
            "partitions: all ended as expected",
        ]
    };
}
const HOSTILE_IPI_IRQ_IOAPIC: [&str; 9] = hostile_ipi_irq!("IOAPIC");
const HOSTILE_IPI_IRQ_PCH_PIC: [&str; 9] = hostile_ipi_irq!("PCH-PIC");

/// A `panic=1` boot must say where it panicked and end as a failure, on `board`.
fn panic_fails(board: &'static str, timeout: Duration) -> BootTest {
    BootTest {
        name: "panic-fails",
        board,
        args: "panic=1",
        ordered: &[BANNER, "PANIC on cpu0"],
        anywhere: &["panic requested on the command line"],
        forbidden: &["boot complete"],
        figures: &[],
        ending: Ending::Failure,
        timeout,
        flavour: Flavour::Stock,
    }
}

/// A `fault=1` boot (a CPU exception on purpose) must name it and end as a failure, on `board`.
fn fault_fails(board: &'static str, timeout: Duration) -> BootTest {
    BootTest {
        name: "fault-fails",
        board,
        args: "fault=1",
        ordered: &[BANNER, "EXCEPTION on cpu0"],
        anywhere: &[],
        forbidden: &["boot complete"],
        figures: &[],
        ending: Ending::Failure,
        timeout,
        flavour: Flavour::Stock,
    }
}

/// The x86 boards' partitions test (issues 6 and 8): the backend's two lines, then the same run
/// on both — manager and worker complete with their checksums, CPUID is answered (filtered) and
/// counted, dirty logging sees exactly the worker's 37 pages and then none, aging sees its
/// working set.
fn x86_partitions(board: &'static str, backend: [&'static str; 2], timeout: Duration) -> BootTest {
    let mut ordered = backend.to_vec();
    ordered.extend_from_slice(&[
        "partition manager (id 0): cpus [0]",
        "partition worker (id 1): cpus [1, 2]",
        "partition hostile (id 2): cpus [3]",
        "boot complete",
        "[manager] manager: hypercall round trip",
        CPUID_OK,
        "[manager] manager: dirty log start -> 0",
        "[manager] manager: dirty pages 37 (expected 37) ok",
        "[manager] manager: second harvest 0 ok",
        "[manager] manager: age start -> 0",
        "[manager] manager: working set",
        "[worker] worker: done",
        "partition worker finished (code 0)",
        "[manager] manager: done ok",
        "partition manager finished (code 0)",
        "summary: manager finished with code 0",
        "summary: worker finished with code 0",
        "partitions: all ended as expected",
    ]);
    BootTest {
        name: "partitions",
        board,
        args: "log=info",
        // A host tool: the list lives as long as the suite anyway.
        ordered: ordered.leak(),
        anywhere: PARTITIONS_ANYWHERE,
        forbidden: PARTITION_FAULTS,
        figures: &[HYPERCALL_ROUND_TRIP],
        ending: Ending::Success,
        timeout,
        flavour: Flavour::Stock,
    }
}

/// Issue 9's scenarios, the same lines on every board but for the interrupt controller's name
/// (the test guests and the board layouts agree: manager on CPU 0, a 2-vCPU worker on CPUs 1
/// and 2 owning IRQ line 3, the hostile guest on CPU 3).
fn smp_tests(board: &'static str, timeout: Duration) -> [BootTest; 3] {
    [
        // 1: the worker starts its second vCPU, both tick their own timers, and they exchange
        // IPIs (delivered as upcalls); the console and the manager show per-vCPU state.
        BootTest {
            name: "smp-timers-ipis",
            board,
            args: "log=info smp-test=1",
            ordered: &[
                "partition worker (id 1): cpus [1, 2]",
                "partition worker: vCPU 0 starts on cpu1 at",
                "[worker] worker: 2 vCPUs, I am vCPU 0",
                "[worker] worker: upcall handler -> 0, start vCPU 1 (VCPU_START) -> 0",
                "[worker] worker: timer ticks vCPU 0 10 vCPU 1 10 (expected 10 each) ok",
                "[worker] worker: IPIs 5 sent, 5 answered (expected 5) ok",
                "[manager] manager: worker vCPU 0 on cpu1: state 2,",
                "[manager] manager: worker vCPU 1 on cpu2: state 2,",
                "partition worker finished (code 0) (vCPU 0)",
                "vcpus: partition  vcpu cpu state",
                "vcpus: worker        0   1 ended",
                "vcpus: worker        1   2 ended",
                "summary: worker finished with code 0",
                "partitions: all ended as expected",
            ],
            anywhere: &["partition worker: vCPU 1 starts on cpu2 at"],
            forbidden: PARTITION_FAULTS,
            figures: &[],
            ending: Ending::Success,
            timeout,
            flavour: Flavour::Stock,
        },
        // 2: both worker vCPUs write while the manager harvests; the union of the harvests is
        // exactly the set written, and no page's last write is missed (each harvest's flush
        // reached both CPUs before the harvest returned).
        BootTest {
            name: "smp-dirty-shootdown",
            board,
            args: "log=info smp-test=1",
            ordered: &[
                "[manager] manager: dirty pages 37 (expected 37) ok",
                "[manager] manager: 2 vCPUs wrote 96 pages over 13 harvests, union of harvests \
                 96 pages, 0 never seen, 0 last writes missed, 0 strays ok",
                "[manager] manager: done ok",
                "shootdown: ",
                "partitions: all ended as expected",
            ],
            anywhere: &[],
            forbidden: PARTITION_FAULTS,
            figures: &[],
            ending: Ending::Success,
            timeout,
            flavour: Flavour::Stock,
        },
        // 3: the hostile partition names vCPUs outside itself and the worker's IRQ line, by
        // hypercall and then in the interrupt controller's registers: each is refused with a
        // reason, and it keeps running (its next attack, the foreign read, is what stops it);
        // the worker and manager finish.
        BootTest {
            name: "hostile-ipi-irq",
            board,
            args: "log=info",
            ordered: if board.contains("la64") {
                &HOSTILE_IPI_IRQ_PCH_PIC
            } else {
                &HOSTILE_IPI_IRQ_IOAPIC
            },
            anywhere: &["partition worker finished (code 0)"],
            forbidden: PARTITION_FAULTS,
            figures: &[],
            ending: Ending::Success,
            timeout,
            flavour: Flavour::Stock,
        },
    ]
}
