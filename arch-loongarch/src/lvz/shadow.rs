//! CSRs a guest may use that LVZ does not give it: the machine-error CSRs (MERRCTL..MERRSAVE),
//! the implementation-control CSRs and the debug CSRs. Their guest accesses trap (GSPR); a kernel
//! writes MERRENTRY when it sets up its exception vectors, so refusing them would stop every
//! Linux. Each vCPU keeps them as plain registers of its own: what the guest writes it reads
//! back, and nothing reaches the hardware's (a machine error stays the root's). The CSRs LVZ
//! keeps for the root (GSTAT, GCFG, GINTC, GCNTC, GTLBC, TRGP) are not among them: an access to
//! those still exits to the partition layer, which refuses it.

use crate::decode::Sensitive;

/// The shadowed CSRs, in slot order.
pub const SHADOWED: [u32; 11] = [
    0x80,  // IMPCTL1
    0x81,  // IMPCTL2
    0x90,  // MERRCTL
    0x91,  // MERRINFO1
    0x92,  // MERRINFO2
    0x93,  // MERRENTRY
    0x94,  // MERRERA
    0x95,  // MERRSAVE
    0x500, // DBG
    0x501, // DERA
    0x502, // DSAVE
];

/// One vCPU's shadowed CSRs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShadowCsrs([u64; SHADOWED.len()]);

impl ShadowCsrs {
    /// Performs `insn` (a decoded GSPR instruction) on the shadows with the guest's registers
    /// `regs`, as the CPU would on a real CSR; `false` (nothing changed) if it is not a CSR
    /// instruction on a shadowed CSR.
    pub fn emulate(&mut self, insn: Sensitive, regs: &mut [u64; 32]) -> bool {
        let (rd, csr, mask) = match insn {
            Sensitive::CsrRead { rd, csr } => (rd, csr, None),
            Sensitive::CsrWrite { rd, csr } => (rd, csr, Some(u64::MAX)),
            Sensitive::CsrXchg { rd, rj, csr } => (rd, csr, Some(regs[rj])),
            _ => return false,
        };
        let Some(slot) = SHADOWED.iter().position(|&c| c == csr) else {
            return false;
        };
        let old = self.0[slot];
        if let Some(mask) = mask {
            self.0[slot] = (old & !mask) | (regs[rd] & mask);
        }
        // Every form hands the old value back in rd; r0 stays zero.
        if rd != 0 {
            regs[rd] = old;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_read_back_and_exchanges_honour_the_mask() {
        let mut s = ShadowCsrs::default();
        let mut regs = [0u64; 32];
        regs[4] = 0x9000_0000_0000_1000;
        assert!(s.emulate(Sensitive::CsrWrite { rd: 4, csr: 0x93 }, &mut regs));
        assert_eq!(regs[4], 0, "csrwr returns the old value");
        assert!(s.emulate(Sensitive::CsrRead { rd: 5, csr: 0x93 }, &mut regs));
        assert_eq!(regs[5], 0x9000_0000_0000_1000);
        regs[6] = 0xff;
        regs[7] = 0x0f;
        assert!(s.emulate(
            Sensitive::CsrXchg {
                rd: 6,
                rj: 7,
                csr: 0x93
            },
            &mut regs
        ));
        assert_eq!(regs[6], 0x9000_0000_0000_1000);
        s.emulate(Sensitive::CsrRead { rd: 5, csr: 0x93 }, &mut regs);
        assert_eq!(regs[5], 0x9000_0000_0000_100f);
    }

    #[test]
    fn the_roots_csrs_and_other_instructions_are_not_shadowed() {
        let mut s = ShadowCsrs::default();
        let mut regs = [7u64; 32];
        for csr in [0x50, 0x51, 0x52, 0x53, 0x0, 0x1] {
            assert!(!s.emulate(Sensitive::CsrWrite { rd: 4, csr }, &mut regs));
        }
        assert!(!s.emulate(Sensitive::Idle, &mut regs));
        assert_eq!(regs, [7; 32]);
        assert_eq!(s, ShadowCsrs::default());
    }
}
