//! The IOCSR identity words a Linux partition reads at boot: the feature word, filtered, and
//! the vendor and CPU name strings, passed through. Linux reads all three in its CPU probe (the
//! strings name the CPU in `/proc/cpuinfo`, the features choose interrupt paths). Everything
//! else in IOCSR space is the hypervisor's, apart from the partition's IPI view.

use crate::iocsr::{CPU_NAME, FEATURES, VENDOR};

/// Feature bits a partition sees: only "IPIs through IOCSR" (bit 4), which its IPI view
/// provides. Hidden: the extended I/O interrupt controller and its decode and flat modes (no
/// EIOINTC in the partition's platform), the MSI, temperature, node-count and frequency
/// registers (not emulated), and the "running under a hypervisor" bit (no paravirtual
/// interface is offered).
pub const FEATURES_SHOWN: u64 = 1 << 4;

/// The answer to a guest's IOCSR read of `size` bytes at `addr`, given the real register
/// reader `real` (called with the 8-byte-aligned address): `None` if `addr` is not an identity
/// word, or the access is misaligned or crosses one.
pub fn read(addr: u64, size: u32, real: impl FnOnce(u64) -> u64) -> Option<u64> {
    let word = addr & !7;
    let offset = addr & 7;
    if !matches!(size, 1 | 2 | 4 | 8) || !offset.is_multiple_of(u64::from(size)) {
        return None;
    }
    let value = match word {
        FEATURES => real(FEATURES) & FEATURES_SHOWN,
        VENDOR | CPU_NAME => real(word),
        _ => return None,
    };
    let bits = value >> (8 * offset);
    Some(if size == 8 {
        bits
    } else {
        bits & ((1u64 << (8 * size)) - 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real(addr: u64) -> u64 {
        match addr {
            FEATURES => 0xffff_ffff_ffff_ffff,
            VENDOR => u64::from_le_bytes(*b"Loongson"),
            CPU_NAME => u64::from_le_bytes(*b"3A5000\0\0"),
            _ => panic!("not an identity word: {addr:#x}"),
        }
    }

    #[test]
    fn features_are_filtered_to_iocsr_ipis() {
        assert_eq!(read(FEATURES, 4, real), Some(1 << 4));
        assert_eq!(read(FEATURES, 8, real), Some(1 << 4));
    }

    #[test]
    fn the_strings_pass_through_in_any_aligned_piece() {
        assert_eq!(
            read(VENDOR, 8, real),
            Some(u64::from_le_bytes(*b"Loongson"))
        );
        assert_eq!(
            read(VENDOR + 4, 4, real),
            Some(u64::from(u32::from_le_bytes(*b"gson")))
        );
        assert_eq!(read(CPU_NAME + 1, 1, real), Some(u64::from(b'A')));
    }

    #[test]
    fn other_addresses_and_misaligned_reads_are_not_identity_words() {
        assert_eq!(read(0x0, 4, real), None);
        assert_eq!(read(0x420, 8, real), None);
        assert_eq!(read(0x1000, 4, real), None);
        assert_eq!(read(VENDOR + 2, 4, real), None);
        assert_eq!(read(VENDOR, 3, real), None);
    }
}
