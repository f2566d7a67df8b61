//! A LoongArch partition's view of the per-core IPI and mailbox registers (IOCSR 0x1000-0x104f),
//! as a decoder: what a guest's IOCSR access asks the hypervisor to do. The state (each vCPU's
//! pending IPI bits, enable mask and four mailboxes) lives with the caller, because other vCPUs
//! change it from other CPUs; nothing here knows a CPU or a partition, and the caller refuses a
//! core number beyond the partition's vCPUs.
//!
//! Identity: the core number a guest names is its vCPU index (the guest's CPUID CSR, or the
//! `VCPU_ID` hypercall, says which it is), so a send can only reach the partition's own vCPUs.
//! Starting a secondary works the way Loongson firmware parks its cores: the sender stores the
//! entry in the target's mailbox 0 (and, by Septum's convention, an argument in mailbox 1), then
//! sends it an IPI; a vCPU that has not started then starts at mailbox 0 with a0 = mailbox 1 and
//! a1 = its index.

/// IOCSR addresses (Loongson 3A5000 manual, "inter-processor interrupts and communication").
pub const IPI_STATUS: u64 = 0x1000;
pub const IPI_ENABLE: u64 = 0x1004;
pub const IPI_SET: u64 = 0x1008;
pub const IPI_CLEAR: u64 = 0x100c;
pub const MAILBOX0: u64 = 0x1020;
pub const IPI_SEND: u64 = 0x1040;
pub const MAIL_SEND: u64 = 0x1048;

/// How a LoongArch backend reports an IOCSR access in `VmExit::CsrRead`/`CsrWrite`'s `csr`:
/// this flag, the access width as log2 of its bytes in bits 29:28, the address below.
pub const IOCSR_FLAG: u32 = 1 << 31;
const SIZE_SHIFT: u32 = 28;
const ADDR_MASK: u32 = (1 << SIZE_SHIFT) - 1;

/// The `csr` word of an IOCSR access of `size` bytes (1, 2, 4, 8) at `addr`.
pub const fn exit_word(addr: u64, size: u32) -> u32 {
    IOCSR_FLAG | (size.trailing_zeros() << SIZE_SHIFT) | (addr as u32 & ADDR_MASK)
}

/// The address and width of an IOCSR exit word; `None` for a CSR.
pub const fn split_exit_word(csr: u32) -> Option<(u64, u32)> {
    if csr & IOCSR_FLAG == 0 {
        return None;
    }
    Some(((csr & ADDR_MASK) as u64, 1 << ((csr >> SIZE_SHIFT) & 3)))
}

/// What an IOCSR access of the block is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IocsrOp {
    /// Read this vCPU's pending IPI bits.
    ReadStatus,
    /// Read / write this vCPU's enable mask.
    ReadEnable,
    WriteEnable(u32),
    /// Set / clear bits of this vCPU's own pending IPIs.
    SetOwn(u32),
    ClearOwn(u32),
    /// Read / write one of this vCPU's mailboxes (0-3), `size` bytes at byte `offset` in it.
    ReadMailbox {
        mailbox: usize,
        offset: u32,
        size: u32,
    },
    WriteMailbox {
        mailbox: usize,
        offset: u32,
        size: u32,
        value: u64,
    },
    /// Raise IPI bit `vector` (0-31) on core `core`.
    SendIpi {
        core: u32,
        vector: u32,
    },
    /// Store 32-bit `data` in half `half` (0-7: mailbox `half / 2`, high half if odd) of core
    /// `core`'s mailboxes.
    SendMail {
        core: u32,
        half: u32,
        data: u32,
    },
}

/// Decodes an IOCSR read (`value` is `None`) or write of `size` bytes at `addr`; `None` if the
/// address is not in the IPI block (or the access has a width the register does not take).
pub fn decode(addr: u64, size: u32, value: Option<u64>) -> Option<IocsrOp> {
    let word = size == 4;
    Some(match (addr, value) {
        (IPI_STATUS, None) if word => IocsrOp::ReadStatus,
        (IPI_ENABLE, None) if word => IocsrOp::ReadEnable,
        (IPI_ENABLE, Some(v)) if word => IocsrOp::WriteEnable(v as u32),
        (IPI_SET, Some(v)) if word => IocsrOp::SetOwn(v as u32),
        (IPI_CLEAR, Some(v)) if word => IocsrOp::ClearOwn(v as u32),
        (MAILBOX0..=0x103f, _) => {
            let off = addr - MAILBOX0;
            let (mailbox, offset) = ((off / 8) as usize, (off % 8) as u32);
            if offset + size > 8 || offset % size != 0 {
                return None;
            }
            match value {
                None => IocsrOp::ReadMailbox {
                    mailbox,
                    offset,
                    size,
                },
                Some(value) => IocsrOp::WriteMailbox {
                    mailbox,
                    offset,
                    size,
                    value,
                },
            }
        }
        (IPI_SEND, Some(v)) if size >= 4 => IocsrOp::SendIpi {
            core: ((v >> 16) & 0x3ff) as u32,
            vector: (v & 0x1f) as u32,
        },
        (MAIL_SEND, Some(v)) if size == 8 => IocsrOp::SendMail {
            core: ((v >> 16) & 0x3ff) as u32,
            half: ((v >> 2) & 7) as u32,
            data: (v >> 32) as u32,
        },
        _ => return None,
    })
}

/// `mailbox` with 32-bit half `half & 1` replaced by `data`.
pub fn with_half(mailbox: u64, half: u32, data: u32) -> u64 {
    let shift = (half & 1) * 32;
    (mailbox & !(0xffff_ffff << shift)) | (u64::from(data) << shift)
}

/// `mailbox` with `size` bytes at byte `offset` replaced by `value`.
pub fn with_bytes(mailbox: u64, offset: u32, size: u32, value: u64) -> u64 {
    let mask = if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    };
    (mailbox & !(mask << (offset * 8))) | ((value & mask) << (offset * 8))
}

/// The `size` bytes at byte `offset` of `mailbox`.
pub fn bytes(mailbox: u64, offset: u32, size: u32) -> u64 {
    let v = mailbox >> (offset * 8);
    if size >= 8 {
        v
    } else {
        v & ((1u64 << (size * 8)) - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_decode_core_vector_half_and_data() {
        // The commands Septum's own boot code sends (`arch_loongarch::ipi` builds the same).
        let ipi = (1u64 << 31) | (2 << 16) | 5;
        assert_eq!(
            decode(IPI_SEND, 4, Some(ipi)),
            Some(IocsrOp::SendIpi { core: 2, vector: 5 })
        );
        let mail = (1u64 << 31) | (3 << 2) | (1 << 16) | (0x1234_5678 << 32);
        assert_eq!(
            decode(MAIL_SEND, 8, Some(mail)),
            Some(IocsrOp::SendMail {
                core: 1,
                half: 3,
                data: 0x1234_5678
            })
        );
        // A 32-bit MAIL_SEND cannot carry data: not decoded.
        assert_eq!(decode(MAIL_SEND, 4, Some(mail)), None);
    }

    #[test]
    fn own_registers_and_mailboxes() {
        assert_eq!(decode(IPI_STATUS, 4, None), Some(IocsrOp::ReadStatus));
        assert_eq!(decode(IPI_STATUS, 8, None), None);
        assert_eq!(decode(IPI_CLEAR, 4, Some(6)), Some(IocsrOp::ClearOwn(6)));
        assert_eq!(
            decode(MAILBOX0 + 8, 8, None),
            Some(IocsrOp::ReadMailbox {
                mailbox: 1,
                offset: 0,
                size: 8
            })
        );
        assert_eq!(
            decode(MAILBOX0 + 0x1c, 4, Some(7)),
            Some(IocsrOp::WriteMailbox {
                mailbox: 3,
                offset: 4,
                size: 4,
                value: 7
            })
        );
        assert_eq!(decode(MAILBOX0 + 6, 4, None), None, "straddles");
        assert_eq!(decode(0x1050, 4, None), None);
        assert_eq!(with_half(0x1111_1111_2222_2222, 1, 0xab), 0xab_2222_2222);
        assert_eq!(
            with_half(0x1111_1111_2222_2222, 0, 0xab),
            0x1111_1111_0000_00ab
        );
        assert_eq!(with_bytes(0xffff_ffff, 2, 1, 0), 0xff00_ffff);
        assert_eq!(bytes(0x1122_3344_5566_7788, 4, 2), 0x3344);
    }

    #[test]
    fn exit_words_round_trip() {
        for size in [1, 2, 4, 8] {
            assert_eq!(
                split_exit_word(exit_word(0x1048, size)),
                Some((0x1048, size))
            );
        }
        assert_eq!(split_exit_word(0x105), None);
    }
}
