//! The hostile test guest: attacks isolation, one attack per run (the manager restarts it, and the
//! hypervisor passes the run number at entry). Run 0 first sends malformed and forbidden
//! hypercalls, which must be refused with error codes, then tries to start and interrupt vCPUs
//! outside its partition and to route another partition's IRQ line to itself (refused with error
//! codes and a reason on the console; it keeps running), programs that line in the interrupt
//! controller's registers (ignored; it reads back masked), then reads another partition's memory;
//! later runs write outside their memory, touch a device they do not own, execute a privileged
//! instruction, on x86 write an I/O port and an MSR they were not given, and finally jump into
//! unmapped memory (`test_guests::HOSTILE_ATTACKS` runs in all). Every attack must stop this partition
//! alone, with a reason on the hypervisor console; a line saying an attack succeeded is a failure.
#![no_std]
#![no_main]

use test_guests::{call, console_write, nr, println, read, rt, write, BootArgs};

#[no_mangle]
fn guest_main(args: BootArgs) -> ! {
    println!("hostile: run {}", args.starts);
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
