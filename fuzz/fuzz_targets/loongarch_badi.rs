//! Fuzz target: the LoongArch BADI decoder. Every instruction word decodes or is refused without
//! a panic, and the decoded load or store matches an independent table of the ISA manual's
//! encodings (mask and match per instruction); registers are 0-31, CSR numbers 14 bits, and a
//! load's result is the access width, sign- or zero-extended as its kind says.
#![no_main]

use arch_loongarch::decode::{load_result, mem_access, sensitive, MemAccess, Sensitive};
use libfuzzer_sys::fuzz_target;
use vcpu::AccessSize::{self, Byte, Double, Half, Word};

/// (mask, match, store, size, signed) for every plain integer load and store.
const MEM: &[(u32, u32, bool, AccessSize, bool)] = &[
    (0xffc0_0000, 0x2800_0000, false, Byte, true),
    (0xffc0_0000, 0x2840_0000, false, Half, true),
    (0xffc0_0000, 0x2880_0000, false, Word, true),
    (0xffc0_0000, 0x28c0_0000, false, Double, false),
    (0xffc0_0000, 0x2900_0000, true, Byte, false),
    (0xffc0_0000, 0x2940_0000, true, Half, false),
    (0xffc0_0000, 0x2980_0000, true, Word, false),
    (0xffc0_0000, 0x29c0_0000, true, Double, false),
    (0xffc0_0000, 0x2a00_0000, false, Byte, false),
    (0xffc0_0000, 0x2a40_0000, false, Half, false),
    (0xffc0_0000, 0x2a80_0000, false, Word, false),
    (0xffff_8000, 0x3800_0000, false, Byte, true),
    (0xffff_8000, 0x3804_0000, false, Half, true),
    (0xffff_8000, 0x3808_0000, false, Word, true),
    (0xffff_8000, 0x380c_0000, false, Double, false),
    (0xffff_8000, 0x3810_0000, true, Byte, false),
    (0xffff_8000, 0x3814_0000, true, Half, false),
    (0xffff_8000, 0x3818_0000, true, Word, false),
    (0xffff_8000, 0x381c_0000, true, Double, false),
    (0xffff_8000, 0x3820_0000, false, Byte, false),
    (0xffff_8000, 0x3824_0000, false, Half, false),
    (0xffff_8000, 0x3828_0000, false, Word, false),
    (0xff00_0000, 0x2400_0000, false, Word, true),
    (0xff00_0000, 0x2500_0000, true, Word, false),
    (0xff00_0000, 0x2600_0000, false, Double, false),
    (0xff00_0000, 0x2700_0000, true, Double, false),
];

fn reference(insn: u32) -> Option<MemAccess> {
    MEM.iter()
        .find(|&&(mask, m, ..)| insn & mask == m)
        .map(|&(_, _, store, size, signed)| MemAccess {
            store,
            size,
            signed,
            rd: (insn & 0x1f) as usize,
        })
}

fn check(insn: u32, value: u64) {
    let access = mem_access(insn);
    assert_eq!(access, reference(insn), "{insn:#010x}");
    if let Some(a) = access {
        let got = load_result(&a, value);
        let bits = a.size.bytes() * 8;
        let v = value & a.size.mask();
        let want = if a.signed && bits < 64 {
            (((v << (64 - bits)) as i64) >> (64 - bits)) as u64
        } else {
            v
        };
        assert_eq!(got, want);
        assert!(
            sensitive(insn).is_none(),
            "{insn:#010x} is both a memory access and sensitive"
        );
    }
    match sensitive(insn) {
        Some(Sensitive::CpuCfg { rd, rj }) => {
            assert!(rd < 32 && rj < 32 && insn & 0xffff_fc00 == 0x6c00)
        }
        Some(Sensitive::CsrRead { rd, csr } | Sensitive::CsrWrite { rd, csr }) => {
            assert!(rd < 32 && csr < 0x4000 && insn >> 24 == 4)
        }
        Some(Sensitive::CsrXchg { rd, rj, csr }) => {
            assert!(rd < 32 && (2..32).contains(&rj) && csr < 0x4000)
        }
        Some(Sensitive::IocsrRead { rd, rj, .. } | Sensitive::IocsrWrite { rd, rj, .. }) => {
            assert!(rd < 32 && rj < 32 && insn & 0xffff_e000 == 0x0648_0000)
        }
        Some(Sensitive::Idle) => assert_eq!(insn & 0xffff_8000, 0x0648_8000),
        Some(Sensitive::Cacop) => assert_eq!(insn & 0xffc0_0000, 0x0600_0000),
        None => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let seed = data.iter().fold(0x8000_0000_0000_0081u64, |h, &b| {
        h.rotate_left(5) ^ u64::from(b)
    });
    for w in data.chunks_exact(4).take(64) {
        check(u32::from_le_bytes([w[0], w[1], w[2], w[3]]), seed);
    }
});
