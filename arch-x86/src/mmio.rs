//! Decoding the instruction behind an x86 MMIO exit. Neither VMX (EPT violation) nor SVM without
//! decode assists (#NPF) says what a faulting access was, only where, so the backend reads the
//! instruction at the guest's RIP and decodes it here: which register or immediate a store
//! writes, which register a load fills and how (an 8- or 16-bit load merges into the register,
//! a 32-bit one zero-extends), the access width, and the instruction's length (for resuming
//! after it). Only the moves a driver uses on device registers are accepted: `mov` to and from
//! memory (0x88, 0x89, 0x8a, 0x8b), `mov` of an immediate (0xc6, 0xc7) and `movzx` (0x0f 0xb6,
//! 0x0f 0xb7), with an operand-size prefix, segment prefixes and REX. Anything else (string
//! instructions, read-modify-write arithmetic, `lock`, the legacy AH..BH registers) is not
//! decoded, and the caller treats the access as a plain stage-2 fault.

use vcpu::AccessSize;

/// Register numbers as the instruction encodes them (REX.R / REX.B extend to 8-15).
pub const RSP: u8 = 4;

/// What a decoded store writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The low bytes of general-purpose register n (0 = rax ... 15 = r15).
    Reg(u8),
    /// An immediate, already sign-extended to 64 bits.
    Imm(u64),
}

/// What a decoded instruction does with memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A store of `Source`'s low `size` bytes.
    Store(Source),
    /// A load into register `dst`, written as [`MmioInsn::load_result`] says.
    Load {
        /// Destination register number.
        dst: u8,
        /// The destination's width in bytes (differs from the access for `movzx`).
        dst_bytes: u8,
    },
}

/// A decoded MMIO instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioInsn {
    /// Its length in bytes (RIP advances by this).
    pub len: u8,
    /// The memory access width.
    pub size: AccessSize,
    /// Load or store.
    pub op: Op,
}

impl MmioInsn {
    /// The new value of the destination register of a load that read `value`, given its old
    /// value `old`: x86's rules, 8- and 16-bit writes keep the upper bits, 32-bit writes clear
    /// them.
    pub fn load_result(&self, old: u64, value: u64) -> u64 {
        let value = value & self.size.mask();
        match self.op {
            Op::Load { dst_bytes: 1, .. } => (old & !0xff) | value,
            Op::Load { dst_bytes: 2, .. } => (old & !0xffff) | value,
            _ => value,
        }
    }

    /// The value a store writes, given register number n's value as `reg(n)` (`None` for a
    /// register the caller cannot read, e.g. rsp kept outside its register file).
    pub fn store_value(&self, reg: impl Fn(u8) -> Option<u64>) -> Option<u64> {
        match self.op {
            Op::Store(Source::Reg(n)) => reg(n).map(|v| v & self.size.mask()),
            Op::Store(Source::Imm(v)) => Some(v & self.size.mask()),
            Op::Load { .. } => None,
        }
    }
}

/// Decodes the instruction whose first bytes are `code` (up to 15; fewer if the fetch stopped at
/// the end of guest memory). `None`: not a move this module decodes, or one whose memory operand
/// is a register.
pub fn decode(code: &[u8]) -> Option<MmioInsn> {
    let mut i = 0;
    let mut opsize16 = false;
    // Legacy prefixes: operand size, and segment overrides (the fault already gave the address).
    while let Some(&b) = code.get(i) {
        match b {
            0x66 => opsize16 = true,
            0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 => {}
            _ => break,
        }
        i += 1;
    }
    let mut rex = 0u8;
    if let Some(&b @ 0x40..=0x4f) = code.get(i) {
        rex = b;
        i += 1;
    }
    let w = rex & 8 != 0;
    let word = if w {
        AccessSize::Double
    } else if opsize16 {
        AccessSize::Half
    } else {
        AccessSize::Word
    };
    let opcode = *code.get(i)?;
    i += 1;
    let (size, kind) = match opcode {
        0x88 => (AccessSize::Byte, Kind::StoreReg),
        0x89 => (word, Kind::StoreReg),
        0x8a => (AccessSize::Byte, Kind::LoadReg),
        0x8b => (word, Kind::LoadReg),
        0xc6 => (AccessSize::Byte, Kind::StoreImm),
        0xc7 => (word, Kind::StoreImm),
        0x0f => {
            let second = *code.get(i)?;
            i += 1;
            match second {
                0xb6 => (AccessSize::Byte, Kind::Movzx),
                0xb7 => (AccessSize::Half, Kind::Movzx),
                _ => return None,
            }
        }
        _ => return None,
    };
    let modrm = *code.get(i)?;
    i += 1;
    let (mode, reg, rm) = (modrm >> 6, (modrm >> 3) & 7, modrm & 7);
    if mode == 3 {
        return None;
    }
    // SIB and displacement bytes (their values do not matter: the fault gave the address).
    if rm == 4 {
        let sib = *code.get(i)?;
        i += 1;
        if mode == 0 && sib & 7 == 5 {
            i += 4;
        }
    }
    i += match (mode, rm) {
        (0, 5) => 4,
        (1, _) => 1,
        (2, _) => 4,
        _ => 0,
    };
    let reg = reg | (rex & 4) << 1;
    // Without REX, byte registers 4-7 are AH, CH, DH, BH: not decoded.
    let byte_reg = matches!(kind, Kind::StoreReg | Kind::LoadReg) && size == AccessSize::Byte;
    if byte_reg && rex == 0 && (4..8).contains(&reg) {
        return None;
    }
    let op = match kind {
        Kind::StoreReg => Op::Store(Source::Reg(reg)),
        Kind::LoadReg => Op::Load {
            dst: reg,
            dst_bytes: size.bytes() as u8,
        },
        Kind::Movzx => Op::Load {
            dst: reg,
            dst_bytes: word.bytes() as u8,
        },
        Kind::StoreImm => {
            if reg != 0 {
                return None;
            }
            let n = size.bytes().min(4) as usize;
            let bytes = code.get(i..i + n)?;
            i += n;
            let imm = bytes
                .iter()
                .rev()
                .fold(0u64, |v, &b| (v << 8) | u64::from(b));
            // Sign-extend from the immediate's width (a REX.W store of imm32 writes 64 bits).
            let shift = 64 - 8 * n as u32;
            Op::Store(Source::Imm((((imm << shift) as i64) >> shift) as u64))
        }
    };
    if i > code.len() || i > 15 {
        return None;
    }
    Some(MmioInsn {
        len: i as u8,
        size,
        op,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    StoreReg,
    LoadReg,
    StoreImm,
    Movzx,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(dst: u8, dst_bytes: u8) -> Op {
        Op::Load { dst, dst_bytes }
    }

    #[test]
    fn decodes_the_moves_a_driver_uses() {
        let cases: &[(&[u8], u8, AccessSize, Op)] = &[
            // mov dword [rax], ecx
            (
                &[0x89, 0x08],
                2,
                AccessSize::Word,
                Op::Store(Source::Reg(1)),
            ),
            // mov eax, dword [rcx]
            (&[0x8b, 0x01], 2, AccessSize::Word, load(0, 4)),
            // mov dword [rdi+0x10], r9d (REX.R)
            (
                &[0x44, 0x89, 0x4f, 0x10],
                4,
                AccessSize::Word,
                Op::Store(Source::Reg(9)),
            ),
            // mov rax, qword [rsp+8] (SIB, disp8, REX.W)
            (
                &[0x48, 0x8b, 0x44, 0x24, 0x08],
                5,
                AccessSize::Double,
                load(0, 8),
            ),
            // mov dword [rip+disp32], 0x33
            (
                &[0xc7, 0x05, 1, 2, 3, 4, 0x33, 0, 0, 0],
                10,
                AccessSize::Word,
                Op::Store(Source::Imm(0x33)),
            ),
            // mov byte [rax+disp32], 0xff
            (
                &[0xc6, 0x80, 0, 1, 0, 0, 0xff],
                7,
                AccessSize::Byte,
                Op::Store(Source::Imm(u64::MAX)),
            ),
            // mov word [rax], dx
            (
                &[0x66, 0x89, 0x10],
                3,
                AccessSize::Half,
                Op::Store(Source::Reg(2)),
            ),
            // movzx eax, byte [rdx]
            (&[0x0f, 0xb6, 0x02], 3, AccessSize::Byte, load(0, 4)),
            // movzx r8d, word [rdx] (REX.R)
            (&[0x44, 0x0f, 0xb7, 0x02], 4, AccessSize::Half, load(8, 4)),
            // mov al, byte [rbx] with a ds prefix
            (&[0x3e, 0x8a, 0x03], 3, AccessSize::Byte, load(0, 1)),
            // mov qword [rax], -1 (imm32 sign-extended)
            (
                &[0x48, 0xc7, 0x00, 0xff, 0xff, 0xff, 0xff],
                7,
                AccessSize::Double,
                Op::Store(Source::Imm(u64::MAX)),
            ),
        ];
        for &(code, len, size, op) in cases {
            assert_eq!(decode(code), Some(MmioInsn { len, size, op }), "{code:x?}");
        }
    }

    #[test]
    fn refuses_what_it_does_not_emulate() {
        for code in [
            &[0x89, 0xc8][..],         // mov eax, ecx: no memory operand
            &[0x01, 0x08],             // add [rax], ecx
            &[0xf3, 0xa5],             // rep movsd
            &[0x88, 0x20],             // mov [rax], ah
            &[0xc7, 0x08, 0, 0, 0, 0], // /1 is not mov
            &[0x8b, 0x05, 1, 2],       // truncated displacement
            &[0x0f, 0xb8, 0x00],       // not movzx
            &[],
        ] {
            assert_eq!(decode(code), None, "{code:x?}");
        }
    }

    #[test]
    fn loads_merge_or_zero_extend_as_x86_does() {
        let old = 0x1122_3344_5566_7788;
        let byte = decode(&[0x8a, 0x03]).unwrap();
        assert_eq!(byte.load_result(old, 0x1ab), 0x1122_3344_5566_77ab);
        let half = decode(&[0x66, 0x8b, 0x03]).unwrap();
        assert_eq!(half.load_result(old, 0xabcd), 0x1122_3344_5566_abcd);
        let word = decode(&[0x8b, 0x03]).unwrap();
        assert_eq!(word.load_result(old, 0xdead_beef), 0xdead_beef);
        let movzx = decode(&[0x0f, 0xb6, 0x03]).unwrap();
        assert_eq!(movzx.load_result(old, 0x1ab), 0xab);
        let store = decode(&[0x89, 0x08]).unwrap();
        assert_eq!(
            store.store_value(|n| Some(u64::from(n) << 32 | 0x42)),
            Some(0x42)
        );
        let from_rsp = decode(&[0x89, 0x20]).unwrap();
        assert_eq!(from_rsp.store_value(|n| (n != RSP).then_some(0)), None);
    }
}
