//! The hostile test guest: attacks isolation, one attack per run (the manager restarts it, and the
//! hypervisor passes the run number at entry). Run 0 first sends malformed and forbidden
//! hypercalls, which must be refused with error codes, then tries to start and interrupt vCPUs
//! outside its partition and to route another partition's IRQ line to itself (refused with error
//! codes and a reason on the console; it keeps running), programs that line in the interrupt
//! controller's registers (ignored; it reads back masked), then reads another partition's memory;
//! later runs write outside their memory, touch a device they do not own, execute a privileged
//! instruction (under LVZ, where a guest's CSRs are its own: read an IOCSR register no partition
//! owns; run 0 there also aims a root TLB operation at another GID, which the CPU must refuse),
//! on x86 write an I/O port and an MSR they were not given, and finally jump into
//! unmapped memory (`test_guests::HOSTILE_ATTACKS` runs in all). Every attack must stop this partition
//! alone, with a reason on the hypervisor console; a line saying an attack succeeded is a failure.
//!
//! The boot flags can ask instead for an attack by volume (issue 13, `volume`): an interrupt
//! storm, a vCPU that never exits, or a hypercall fuzzer.
#![no_std]
#![no_main]

use test_guests::{call, console_write, nr, println, read, rt, write, BootArgs};

#[no_mangle]
fn guest_main(args: BootArgs) -> ! {
    println!("hostile: run {}", args.starts);
    if args.flags & test_guests::volume::ANY != 0 {
        volume::run(args);
    }
    match args.starts {
        0 => {
            let unknown = call(0x7777, 0, 0, 0);
            let bad_arg = call(nr::VERSION, 1, 0, 0);
            let not_manager = call(nr::PARTITION_STOP, 0, 0, 0);
            // A console write whose buffer lies in another partition's memory.
            let foreign = call(nr::CONSOLE_WRITE, rt::OTHER_PARTITION, 16, 0);
            let harvest = call(nr::DIRTY_HARVEST, 0, 0x1000, 64);
            println!(
                "hostile: bad hypercalls refused: {unknown} {bad_arg} {not_manager} {foreign} {harvest}"
            );
            let _ = console_write(b"");
            // Indices name vCPUs of this partition only (it has one): 1 and 3 are outside it.
            let start = call(nr::VCPU_START, 1, 0x200000, 0);
            let ipi = call(nr::SEND_IPI, 3, 0, 0);
            // Line 3 belongs to the worker on the test board; this partition owns none.
            let route = call(nr::IRQ_ROUTE, 3, 0, 0);
            println!("hostile: vCPU start, IPI and IRQ route refused: {start} {ipi} {route}");
            // Under LVZ: a root TLB operation aimed at another partition's GID (the manager's,
            // GID 1). The CPU must refuse it in the guest; it must not run.
            #[cfg(target_arch = "loongarch64")]
            if rt::under_lvz() {
                match test_guests::smp::expect_exception(|| rt::invtlb_for_gid(1, 0x20_0000)) {
                    Some(e) => println!(
                        "hostile: invtlb 0x16 for GID 1 refused by the CPU (guest exception {e:#x})"
                    ),
                    None => println!("hostile: ATTACK SUCCEEDED: invtlb 0x16 for GID 1 ran"),
                }
                // Probing the CPU: a partition must not see the virtualization extension (it
                // cannot nest) or a PMU (the counters are the hypervisor's).
                let (word2, word6) = (rt::cpucfg(2), rt::cpucfg(6));
                if word2 & (1 << 10) == 0 && word6 == 0 {
                    println!("hostile: cpucfg hides LVZ and the PMU");
                } else {
                    println!("hostile: ATTACK SUCCEEDED: cpucfg 2 {word2:#x}, 6 {word6:#x}");
                }
            }
            // The same line through the interrupt controller's registers: point it at this
            // partition and unmask it. The write is ignored, so it must read back masked.
            let chip = rt::IRQCHIP_NAME;
            match rt::irqchip_route_to_self(3, 0x33) {
                rt::IRQCHIP_MASKED => {
                    println!("hostile: {chip} route of line 3 refused, reads back masked")
                }
                v => println!("hostile: ATTACK SUCCEEDED: {chip} line 3 reads back {v:#x}"),
            }
            println!(
                "hostile: reading another partition's memory at {:#x}",
                rt::OTHER_PARTITION
            );
            let v = read(rt::OTHER_PARTITION);
            println!("hostile: ATTACK SUCCEEDED: read {v:#x}");
        }
        1 => {
            println!("hostile: writing outside my memory at {:#x}", rt::OUTSIDE);
            write(rt::OUTSIDE, 0xbad);
            println!("hostile: ATTACK SUCCEEDED: wrote outside");
        }
        2 => {
            println!(
                "hostile: touching a device I do not own at {:#x}",
                rt::FOREIGN_DEVICE
            );
            let v = read(rt::FOREIGN_DEVICE);
            println!("hostile: ATTACK SUCCEEDED: device read {v:#x}");
        }
        #[cfg(target_arch = "loongarch64")]
        3 if rt::under_lvz() => {
            // A guest's CSRs are its own under LVZ; IOCSR is the machine's.
            println!("hostile: reading IOCSR {:#x}", rt::FOREIGN_IOCSR);
            let v = rt::iocsr_read32(rt::FOREIGN_IOCSR);
            println!("hostile: ATTACK SUCCEEDED: IOCSR read {v:#x}");
        }
        3 => {
            println!("hostile: executing a privileged instruction");
            rt::privileged_instruction();
            println!("hostile: ATTACK SUCCEEDED: privileged instruction ran");
        }
        #[cfg(target_arch = "x86_64")]
        4 => {
            println!("hostile: writing port {:#x}", rt::FOREIGN_PORT);
            rt::port_write(rt::FOREIGN_PORT, 0x8000_0000);
            println!("hostile: ATTACK SUCCEEDED: port write");
        }
        #[cfg(target_arch = "x86_64")]
        5 => {
            println!("hostile: writing MSR {:#x}", rt::FOREIGN_MSR);
            rt::msr_write(rt::FOREIGN_MSR, 0);
            println!("hostile: ATTACK SUCCEEDED: MSR write");
        }
        _ => {
            println!(
                "hostile: jumping to unmapped memory at {:#x}",
                rt::UNMAPPED_CODE
            );
            rt::jump(rt::UNMAPPED_CODE);
        }
    }
    test_guests::power_off(0)
}

/// The attacks by volume. Each one is measured by the manager or the hypervisor, not here.
mod volume {
    use core::sync::atomic::{AtomicU64, Ordering};
    use test_guests::smp::{self, IRQ_IPI};
    use test_guests::volume::{FUZZ, SPIN, STORM, TIMER_MIN_NS};
    use test_guests::{call, nr, println, rt, BootArgs};

    pub fn run(args: BootArgs) -> ! {
        if args.flags & STORM != 0 {
            storm(args.starts)
        } else if args.flags & SPIN != 0 {
            println!(
                "hostile: spinning with interrupts masked (run {})",
                args.starts
            );
            rt::spin_masked()
        } else if args.flags & FUZZ != 0 {
            fuzz()
        }
        test_guests::power_off(1)
    }

    static INTERRUPTS: AtomicU64 = AtomicU64::new(0);

    /// Every interrupt is counted; each IPI is answered with another one to itself, so the
    /// flood keeps itself going from inside the handler (where this vCPU may spend all its time
    /// once the storm runs: on Bochs 10 us is about 40 instructions, less than one exit). The
    /// first interrupt also starts the fastest timer the hypervisor allows.
    fn on_interrupt(irq: u64, _detail: u64) {
        if INTERRUPTS.fetch_add(1, Ordering::Relaxed) == 0 && smp::timer_periodic(TIMER_MIN_NS) != 0
        {
            println!("hostile: storm: the 10 us timer was refused MISMATCH");
        }
        if irq == IRQ_IPI {
            smp::send_ipi(0);
        }
    }

    /// The storm. Run 0 only says it is armed and ends (the manager times its worker first with
    /// this partition quiet, then starts it again); later runs flood this partition's own vCPU
    /// with IPIs, from a loop and from the handler, on top of a 10 us timer, until the manager
    /// stops it. (The test boards give this partition no device line to hold asserted.)
    fn storm(run: u64) -> ! {
        if run == 0 {
            println!("hostile: storm armed, waiting for the manager to start it");
            test_guests::power_off(0);
        }
        let too_fast = call(nr::TIMER_SET, 1, 1, 0);
        let set = smp::set_handler(on_interrupt);
        println!(
            "hostile: storm: timer at 1 ns -> {too_fast}, handler -> {set}; timer every 10 us \
             and flooding vCPU 0 with IPIs"
        );
        loop {
            smp::send_ipi(0);
        }
    }

    /// Calls the fuzzer makes.
    const FUZZ_CALLS: u64 = 2000;

    /// xorshift64*: deterministic, so a failing run can be replayed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A console buffer of printable filler: a console write the fuzzer aims at its own memory
    /// lands here, so what gets printed is dots, never this guest's own strings.
    #[repr(C, align(4096))]
    struct Scratch([u8; 4096]);
    static mut SCRATCH: Scratch = Scratch([b'.'; 4096]);

    fn scratch() -> u64 {
        core::ptr::addr_of!(SCRATCH) as u64
    }

    /// The numbers the ABI defines (`vcpu/README.md`) with how many arguments each takes, but for
    /// the two whose success ends the experiment rather than answering it: `POWER_OFF` (this run
    /// would end) and `UPCALL_SET` (a random handler address would be entered on the next
    /// interrupt). Both are tested by the other scenarios and the host tests.
    const KNOWN: [(u64, usize); 21] = [
        (nr::VERSION, 0),
        (nr::CONSOLE_WRITE, 2),
        (nr::SELF_ID, 0),
        (nr::VCPU_ID, 0),
        (nr::VCPU_COUNT, 0),
        (nr::VCPU_START, 3),
        (nr::SEND_IPI, 1),
        (nr::TIMER_SET, 2),
        (nr::UPCALL_RETURN, 0),
        (nr::IRQ_ROUTE, 2),
        (nr::PARTITION_COUNT, 0),
        (nr::PARTITION_STATE, 1),
        (nr::PARTITION_STOP, 1),
        (nr::PARTITION_START, 1),
        (nr::DIRTY_LOG_START, 1),
        (nr::DIRTY_LOG_STOP, 1),
        (nr::DIRTY_HARVEST, 3),
        (nr::AGE_START, 1),
        (nr::AGE_HARVEST, 1),
        (nr::EXIT_COUNTERS, 3),
        (nr::VCPU_INFO, 3),
    ];

    /// A hypercall number and how many arguments to fill: mostly defined numbers with their
    /// own argument count (the decoder refuses a nonzero unused argument, so the arguments it
    /// does read get through to the checks behind it), else anything with six.
    fn number(r: &mut Rng) -> (u64, usize) {
        let (n, argc) = match r.below(8) {
            0 => (r.next(), 6),
            1 => (r.below(0x60), 6),
            2 => {
                let (n, _) = KNOWN[r.below(KNOWN.len() as u64) as usize];
                (n, 6)
            }
            _ => KNOWN[r.below(KNOWN.len() as u64) as usize],
        };
        if n == nr::POWER_OFF || n == nr::UPCALL_SET {
            (0x7777, argc)
        } else {
            (n, argc)
        }
    }

    /// An argument: a pointer at the hypervisor, a neighbour, its own memory or the top of the
    /// address space, a length that wraps past 2^64 from the previous argument, a small number,
    /// or anything.
    fn argument(r: &mut Rng, previous: u64) -> u64 {
        let t = &rt::FUZZ_TARGETS;
        match r.below(8) {
            0 => t[r.below(t.len() as u64) as usize] + r.below(0x4000),
            1 => r.below(rt::OWN_MEMORY),
            2 => u64::MAX - r.below(0x1000),
            3 => 0u64.wrapping_sub(previous).wrapping_add(r.below(0x100)),
            4 | 5 => r.below(16),
            6 => r.below(0x1_0000),
            _ => r.next(),
        }
    }

    /// The fuzzer: every call must come back, answered (>= 0) or refused with one of the ABI's
    /// error codes; anything else, or never coming back, fails the test. The tally is the
    /// figure the boot test checks.
    fn fuzz() -> ! {
        let mut r = Rng(0x5e97_f022_1234_5678);
        // answered, then -1 .. -6, then anything else
        let mut tally = [0u64; 8];
        for _ in 0..FUZZ_CALLS {
            let (n, argc) = number(&mut r);
            let mut a = [0u64; 6];
            let mut prev = 0;
            for slot in &mut a[..argc] {
                *slot = argument(&mut r, prev);
                prev = *slot;
            }
            // A console write into its own memory prints the filler, not its code or strings.
            if n == nr::CONSOLE_WRITE && a[0] < rt::OWN_MEMORY {
                a[0] = scratch() + a[0] % 4096;
            }
            let v = rt::hypercall(n, a);
            let slot = match v {
                0.. => 0,
                -6..=-1 => (-v) as usize,
                _ => 7,
            };
            tally[slot] += 1;
        }
        // The fuzzer may have armed the timer; no upcall handler was ever set, so nothing ran.
        call(nr::TIMER_SET, 0, 0, 0);
        let good = tally[7] == 0 && tally.iter().sum::<u64>() == FUZZ_CALLS;
        println!(
            "hostile: fuzz: {FUZZ_CALLS} hypercalls, {} answered, refused -1:{} -2:{} -3:{} \
             -4:{} -5:{} -6:{}, other:{} {}",
            tally[0],
            tally[1],
            tally[2],
            tally[3],
            tally[4],
            tally[5],
            tally[6],
            tally[7],
            if good { "ok" } else { "MISMATCH" }
        );
        test_guests::power_off(if good { 0 } else { 1 })
    }
}
