//! Fuzz target: the LoongArch IPI and mailbox decoder, driven the way the platform drives it
//! (`partition/src/mailbox.rs`) for a partition of 1-8 vCPUs. Any sequence of IOCSR
//! accesses decodes without a panic; decoded fields are in range (mailbox 0-3, offset and width
//! inside 8 bytes, IPI bit 0-31, core 0-1023); a mailbox byte write changes only its bytes; and
//! a send reaches a vCPU only if the partition has it, so no other vCPU's state ever changes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vcpu::ipi_mailbox::{
    bytes, decode, exit_word, split_exit_word, with_bytes, with_half, IocsrOp,
};

#[derive(Clone, Copy, Default, PartialEq, Debug)]
struct Slot {
    ipi: u32,
    mailboxes: [u64; 4],
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let vcpus = usize::from(first % 8) + 1;
    // Slots past the partition's stand for other partitions' vCPUs: they must never change.
    let mut slots = [Slot::default(); 16];
    for op in rest.chunks_exact(12) {
        let me = usize::from(op[0]) % vcpus;
        let addr = 0x1000 + u64::from(u16::from_le_bytes([op[1], op[2]]) & 0x7f);
        let size = 1u32 << (op[3] & 3);
        let value = u64::from_le_bytes(op[4..12].try_into().unwrap());
        assert_eq!(split_exit_word(exit_word(addr, size)), Some((addr, size)));
        let write = op[3] & 4 != 0;
        let before = slots;
        match decode(addr, size, write.then_some(value)) {
            None => {}
            Some(IocsrOp::ReadMailbox {
                mailbox,
                offset,
                size,
            }) => {
                assert!(mailbox < 4 && offset + size <= 8 && offset % size == 0);
                let _ = bytes(slots[me].mailboxes[mailbox], offset, size);
            }
            Some(IocsrOp::WriteMailbox {
                mailbox,
                offset,
                size,
                value,
            }) => {
                assert!(mailbox < 4 && offset + size <= 8 && offset % size == 0);
                let old = slots[me].mailboxes[mailbox];
                let new = with_bytes(old, offset, size, value);
                let mask = if size == 8 {
                    u64::MAX
                } else {
                    ((1u64 << (8 * size)) - 1) << (8 * offset)
                };
                assert_eq!(new & !mask, old & !mask, "bytes outside the access changed");
                assert_eq!(bytes(new, offset, size), bytes(value, 0, size));
                slots[me].mailboxes[mailbox] = new;
            }
            Some(IocsrOp::SetOwn(bits)) => slots[me].ipi |= bits,
            Some(IocsrOp::ClearOwn(bits)) => slots[me].ipi &= !bits,
            Some(IocsrOp::SendIpi { core, vector }) => {
                assert!(core < 1024 && vector < 32);
                if (core as usize) < vcpus {
                    slots[core as usize].ipi |= 1 << vector;
                }
            }
            Some(IocsrOp::SendMail { core, half, data }) => {
                assert!(core < 1024 && half < 8);
                if (core as usize) < vcpus {
                    let m = &mut slots[core as usize].mailboxes[(half / 2) as usize];
                    *m = with_half(*m, half, data);
                }
            }
            Some(_) => {}
        }
        assert_eq!(
            slots[vcpus..],
            before[vcpus..],
            "a vCPU outside the partition changed"
        );
    }
});
