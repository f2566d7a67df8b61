//! Fuzz target: the x86 MMIO instruction decoder. Any bytes decode or are refused without a
//! panic; a decoded move has a length within the bytes and 15, needs every one of those bytes,
//! names a register 0-15 and a destination at least as wide as the access, and its load and
//! store values follow x86's merge and zero-extension rules.
#![no_main]

use arch_x86::mmio::{decode, Op, Source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let code = &data[..data.len().min(20)];
    let Some(insn) = decode(code) else { return };
    let len = usize::from(insn.len);
    assert!(
        len >= 2 && len <= code.len() && len <= 15,
        "{code:x?} -> {insn:?}"
    );
    assert_eq!(
        decode(&code[..len]),
        Some(insn),
        "the instruction's own bytes suffice"
    );
    assert_eq!(
        decode(&code[..len - 1]),
        None,
        "every byte counted is needed"
    );
    let mask = insn.size.mask();
    let seed = data.iter().fold(0x1122_3344_5566_7788u64, |h, &b| {
        h.rotate_left(7) ^ u64::from(b)
    });
    let (old, value) = (seed, !seed.rotate_left(13));
    match insn.op {
        Op::Load { dst, dst_bytes } => {
            assert!(dst < 16);
            assert!(
                matches!(dst_bytes, 1 | 2 | 4 | 8) && u64::from(dst_bytes) >= insn.size.bytes()
            );
            let got = insn.load_result(old, value);
            let want = if dst_bytes < 4 {
                let dmask = (1u64 << (8 * dst_bytes)) - 1;
                (old & !dmask) | (value & mask)
            } else {
                value & mask
            };
            assert_eq!(got, want);
            assert_eq!(insn.store_value(|_| Some(value)), None);
        }
        Op::Store(src) => {
            if let Source::Reg(n) = src {
                assert!(n < 16);
                assert_eq!(insn.store_value(|_| None), None);
            }
            if let Source::Imm(imm) = src {
                // Sign-extended from at most 32 bits.
                let n = insn.size.bytes().min(4) as u32 * 8;
                let shift = 64 - n;
                assert_eq!((((imm << shift) as i64) >> shift) as u64, imm);
            }
            let v = insn.store_value(|_| Some(value));
            assert!(v.is_some_and(|v| v & !mask == 0));
        }
    }
});
