//! Fuzz target: the hypercall decoder. Any number and arguments decode or fail without a panic;
//! a decoded call's arguments are within their declared ranges and copied without truncation,
//! and arguments past those the call takes are zero.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vcpu::hypercall::{
    nr, Hypercall, HypercallError, BITMAP_MAX_BYTES, CONSOLE_WRITE_MAX, TIMER_MAX_NS,
};

fn word(data: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    for (k, slot) in b.iter_mut().enumerate() {
        *slot = data.get(i * 8 + k).copied().unwrap_or(0);
    }
    u64::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    // A small first byte picks a real number (the raw word rarely would).
    let number = match data.first() {
        Some(&b) if b < 0x80 => u64::from(b & 0x47),
        _ => word(data, 0),
    };
    let args: [u64; 6] = core::array::from_fn(|i| word(data.get(1..).unwrap_or(&[]), i));
    let fits = |v: u64| v <= u64::from(u32::MAX);
    let used = match Hypercall::decode(number, args) {
        Err(e) => {
            assert!(e.code() < 0);
            assert_eq!(HypercallError::from_code(e.code()), Some(e));
            return;
        }
        Ok(call) => {
            assert_eq!(call.needs_manager(), number >= nr::PARTITION_COUNT);
            match call {
                Hypercall::ConsoleWrite { gpa, len } => {
                    assert!(len <= CONSOLE_WRITE_MAX && gpa.checked_add(len).is_some());
                    assert_eq!((gpa, len), (args[0], args[1]));
                    2
                }
                Hypercall::PowerOff { code } => {
                    assert_eq!(code, args[0]);
                    1
                }
                Hypercall::VcpuStart { index, entry, arg } => {
                    assert_eq!((u64::from(index), entry, arg), (args[0], args[1], args[2]));
                    3
                }
                Hypercall::SendIpi { index } => {
                    assert_eq!(u64::from(index), args[0]);
                    1
                }
                Hypercall::TimerSet { ns, periodic } => {
                    assert!(ns <= TIMER_MAX_NS && args[1] <= 1);
                    assert_eq!((ns, periodic), (args[0], args[1] == 1));
                    2
                }
                Hypercall::UpcallSet { entry, stack } => {
                    assert!(entry == 0 || stack != 0);
                    2
                }
                Hypercall::IrqRoute { line, index } => {
                    assert_eq!((u64::from(line), u64::from(index)), (args[0], args[1]));
                    2
                }
                Hypercall::PartitionState { id }
                | Hypercall::PartitionStop { id }
                | Hypercall::PartitionStart { id }
                | Hypercall::DirtyLogStart { id }
                | Hypercall::DirtyLogStop { id }
                | Hypercall::AgeStart { id }
                | Hypercall::AgeHarvest { id } => {
                    assert_eq!(u64::from(id), args[0]);
                    1
                }
                Hypercall::DirtyHarvest {
                    id,
                    bitmap_gpa,
                    bytes,
                } => {
                    assert!(fits(args[0]) && u64::from(id) == args[0]);
                    assert!((1..=BITMAP_MAX_BYTES).contains(&bytes));
                    assert!(bitmap_gpa.checked_add(bytes).is_some());
                    3
                }
                Hypercall::ExitCounters { id, gpa, bytes }
                | Hypercall::VcpuInfo { id, gpa, bytes } => {
                    assert_eq!(u64::from(id), args[0]);
                    assert!((8..=4096).contains(&bytes) && bytes % 8 == 0);
                    assert!(gpa.checked_add(bytes).is_some());
                    3
                }
                _ => 0,
            }
        }
    };
    assert!(
        args[used..].iter().all(|&a| a == 0),
        "unused arguments must be zero"
    );
});
