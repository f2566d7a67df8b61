//! Decoding the instruction word the CPU reports in BADI: the load or store behind a trapped
//! device access (both backends emulate MMIO from it), and the guest-sensitive instructions LVZ
//! reports as GSPR exits (`cpucfg`, CSR and IOCSR access, `idle`, `cacop`). Pure, host-tested.

use vcpu::AccessSize;

/// A decoded load or store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemAccess {
    /// A store (the value is in register `rd`); otherwise a load into `rd`.
    pub store: bool,
    /// The access width.
    pub size: AccessSize,
    /// A load that sign-extends (`ld.b/h/w`, `ldx.b/h/w`, `ldptr.w`).
    pub signed: bool,
    /// The data register.
    pub rd: usize,
}

fn size_of(code: u32) -> AccessSize {
    match code & 3 {
        0 => AccessSize::Byte,
        1 => AccessSize::Half,
        2 => AccessSize::Word,
        _ => AccessSize::Double,
    }
}

/// The load or store `insn` performs, if it is one of the plain integer loads and stores
/// (`ld/st.{b,h,w,d}`, `ld.{bu,hu,wu}`, their indexed `ldx/stx` forms, `ldptr/stptr.{w,d}`).
/// Atomics, LL/SC and vector accesses are not emulated on device memory.
pub fn mem_access(insn: u32) -> Option<MemAccess> {
    let rd = (insn & 0x1f) as usize;
    let op22 = insn >> 22;
    let op15 = insn >> 15;
    let (store, size, signed) = match op22 {
        0xa0..=0xa3 => (false, size_of(op22), true),
        0xa4..=0xa7 => (true, size_of(op22), false),
        0xa8..=0xaa => (false, size_of(op22), false),
        _ => match op15 {
            0x7000 | 0x7008 | 0x7010 | 0x7018 => (false, size_of(op15 >> 3), true),
            0x7020 | 0x7028 | 0x7030 | 0x7038 => (true, size_of(op15 >> 3), false),
            0x7040 | 0x7048 | 0x7050 => (false, size_of(op15 >> 3), false),
            _ => match insn >> 24 {
                0x24 => (false, AccessSize::Word, true),
                0x25 => (true, AccessSize::Word, false),
                0x26 => (false, AccessSize::Double, false),
                0x27 => (true, AccessSize::Double, false),
                _ => return None,
            },
        },
    };
    // The Double loads are "signed" above only in name: a 64-bit value needs no extension.
    let signed = signed && size != AccessSize::Double;
    Some(MemAccess {
        store,
        size,
        signed,
        rd,
    })
}

/// `value` as a load of `access` leaves it in the destination register.
pub fn load_result(access: &MemAccess, value: u64) -> u64 {
    let bits = access.size.bytes() * 8;
    let v = value & access.size.mask();
    if access.signed && bits < 64 {
        let shift = 64 - bits;
        (((v << shift) as i64) >> shift) as u64
    } else {
        v
    }
}

/// A guest-sensitive instruction (LVZ GSPR exit). Fields are register numbers (`rd`, `rj`), the
/// CSR number, and the access width, as each variant's instruction names them.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sensitive {
    /// `cpucfg rd, rj`: the word index is in `rj`.
    CpuCfg { rd: usize, rj: usize },
    /// `csrrd rd, csr`.
    CsrRead { rd: usize, csr: u32 },
    /// `csrwr rd, csr` (the new value is in `rd`, which receives the old one).
    CsrWrite { rd: usize, csr: u32 },
    /// `csrxchg rd, rj, csr` (mask in `rj`).
    CsrXchg { rd: usize, rj: usize, csr: u32 },
    /// `iocsrrd.{b,h,w,d} rd, rj` (address in `rj`).
    IocsrRead {
        rd: usize,
        rj: usize,
        size: AccessSize,
    },
    /// `iocsrwr.{b,h,w,d} rd, rj`.
    IocsrWrite {
        rd: usize,
        rj: usize,
        size: AccessSize,
    },
    /// `idle level`.
    Idle,
    /// `cacop`.
    Cacop,
}

/// The sensitive instruction `insn` is, if any.
pub fn sensitive(insn: u32) -> Option<Sensitive> {
    let rd = (insn & 0x1f) as usize;
    let rj = ((insn >> 5) & 0x1f) as usize;
    if insn >> 10 == 0x1b {
        return Some(Sensitive::CpuCfg { rd, rj });
    }
    if insn >> 24 == 0x04 {
        let csr = (insn >> 10) & 0x3fff;
        return Some(match rj {
            0 => Sensitive::CsrRead { rd, csr },
            1 => Sensitive::CsrWrite { rd, csr },
            _ => Sensitive::CsrXchg { rd, rj, csr },
        });
    }
    match insn >> 10 {
        0x19200..=0x19203 => {
            return Some(Sensitive::IocsrRead {
                rd,
                rj,
                size: size_of(insn >> 10),
            })
        }
        0x19204..=0x19207 => {
            return Some(Sensitive::IocsrWrite {
                rd,
                rj,
                size: size_of(insn >> 10),
            })
        }
        _ => {}
    }
    if insn >> 15 == 0xc91 {
        return Some(Sensitive::Idle);
    }
    if insn >> 22 == 0x18 {
        return Some(Sensitive::Cacop);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_and_stores_seen_in_qemu() {
        // Words from the PLV3 probe on QEMU 10.0.2 (notes/plv3-facts.md, point 4).
        let ld_d = mem_access(0x28c4_0186).unwrap();
        assert_eq!(
            (ld_d.store, ld_d.size, ld_d.rd),
            (false, AccessSize::Double, 6)
        );
        let ldx_w = mem_access(0x3808_3d86).unwrap();
        assert_eq!(
            (ldx_w.store, ldx_w.size, ldx_w.signed),
            (false, AccessSize::Word, true)
        );
        let ld_bu = mem_access(0x2a07_9586).unwrap();
        assert_eq!((ld_bu.size, ld_bu.signed), (AccessSize::Byte, false));
        let st_w = mem_access(0x2988_018d).unwrap();
        assert_eq!(
            (st_w.store, st_w.size, st_w.rd),
            (true, AccessSize::Word, 13)
        );
        let ld_wu = mem_access(0x2a88_0186).unwrap();
        assert_eq!((ld_wu.size, ld_wu.signed), (AccessSize::Word, false));
        let st_b = mem_access(0x2907_818d).unwrap();
        assert_eq!((st_b.store, st_b.size), (true, AccessSize::Byte));
        // syscall 0 and ertn are not memory accesses.
        assert_eq!(mem_access(0x002b_0000), None);
        assert_eq!(mem_access(0x0648_3800), None);
    }

    #[test]
    fn loads_extend_by_their_kind() {
        let ld_w = mem_access(0x2880_0186).unwrap();
        assert_eq!(load_result(&ld_w, 0xfeed_face), 0xffff_ffff_feed_face);
        let ld_wu = mem_access(0x2a88_0186).unwrap();
        assert_eq!(load_result(&ld_wu, 0x1_feed_face), 0xfeed_face);
        let stptr_d = mem_access(0x2700_0000 | 5).unwrap();
        assert_eq!(
            (stptr_d.store, stptr_d.size, stptr_d.rd),
            (true, AccessSize::Double, 5)
        );
    }

    #[test]
    fn sensitive_instructions() {
        // cpucfg $a0, $a1
        assert_eq!(
            sensitive(0x0000_6ca4),
            Some(Sensitive::CpuCfg { rd: 4, rj: 5 })
        );
        // csrrd $a1, 0x5 / csrwr $a0, 0x5 / csrxchg $a0, $a1, 0x50
        assert_eq!(
            sensitive(0x0400_1405),
            Some(Sensitive::CsrRead { rd: 5, csr: 5 })
        );
        assert_eq!(
            sensitive(0x0400_1424),
            Some(Sensitive::CsrWrite { rd: 4, csr: 5 })
        );
        assert_eq!(
            sensitive(0x0401_40a4),
            Some(Sensitive::CsrXchg {
                rd: 4,
                rj: 5,
                csr: 0x50
            })
        );
        // iocsrrd.w $a0, $a1 / iocsrwr.d $a0, $a1
        assert_eq!(
            sensitive(0x0648_08a4),
            Some(Sensitive::IocsrRead {
                rd: 4,
                rj: 5,
                size: AccessSize::Word
            })
        );
        assert_eq!(
            sensitive(0x0648_1ca4),
            Some(Sensitive::IocsrWrite {
                rd: 4,
                rj: 5,
                size: AccessSize::Double
            })
        );
        assert_eq!(sensitive(0x0648_8000), Some(Sensitive::Idle));
        assert_eq!(sensitive(0x0600_0000), Some(Sensitive::Cacop));
        assert_eq!(sensitive(0x002b_0000), None);
    }
}
