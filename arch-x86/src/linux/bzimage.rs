//! The setup header of a Linux bzImage (the x86 boot protocol, `Documentation/arch/x86/boot.rst`),
//! read from the file's bytes: whether the file is a kernel this loader can start in 64-bit mode,
//! where its protected-mode part begins, and the constraints it puts on where it is loaded.
//!
//! Every offset below is the offset in the file, which is also the offset in `boot_params` (the
//! header is copied to the zero page at the same place).

use core::fmt;
use core::ops::Range;

/// Where the setup header starts in the file and in `boot_params`.
pub const SETUP_HEADER_START: usize = 0x1f1;
/// The first boot-protocol version with `xloadflags` (and so with a declared 64-bit entry).
pub const MIN_PROTOCOL: u16 = 0x020c;
/// The 64-bit entry point is this far into the protected-mode part.
pub const ENTRY_64_OFFSET: u64 = 0x200;
/// `xloadflags` bit: the kernel has the 64-bit entry point at offset 0x200.
const XLF_KERNEL_64: u16 = 1 << 0;
/// `loadflags` bit: the protected-mode part is loaded at 1M or above.
pub const LOADED_HIGH: u8 = 1 << 0;

/// Why a file is not a bzImage this loader can start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BzImageError {
    /// Shorter than the header, or than the size the header declares.
    Truncated { needed: usize, have: usize },
    /// No `0xAA55` boot flag or `HdrS` magic: not a bzImage.
    NotBzImage,
    /// The boot protocol is older than 2.12, which declares the 64-bit entry.
    OldProtocol(u16),
    /// The kernel does not declare a 64-bit entry point (a 32-bit kernel).
    No64BitEntry,
    /// `kernel_alignment` is not a power of two.
    BadAlignment(u32),
}

impl fmt::Display for BzImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { needed, have } => write!(
                f,
                "is truncated: the boot header needs {needed} bytes, the file has {have}"
            ),
            Self::NotBzImage => {
                f.write_str("is not a Linux bzImage (no boot flag 0xAA55 and HdrS magic)")
            }
            Self::OldProtocol(v) => write!(
                f,
                "uses boot protocol {}.{:02}; a 64-bit entry needs 2.12 or later",
                v >> 8,
                v & 0xff
            ),
            Self::No64BitEntry => {
                f.write_str("has no 64-bit entry point (xloadflags bit 0 clear: a 32-bit kernel)")
            }
            Self::BadAlignment(a) => {
                write!(f, "declares kernel_alignment {a:#x}, not a power of two")
            }
        }
    }
}

/// A bzImage's boot header, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BzImage<'a> {
    file: &'a [u8],
    /// Boot protocol version (0x020f is 2.15).
    pub protocol: u16,
    /// Offset in the file of the protected-mode part (after the real-mode setup sectors).
    pub payload_offset: usize,
    /// Where the kernel would like to be loaded, if it can be.
    pub pref_address: u64,
    /// Bytes the kernel needs from its load address until it has set up its own memory.
    pub init_size: u64,
    /// The load address must be a multiple of this if the kernel is relocated.
    pub kernel_alignment: u64,
    /// Whether the kernel may be loaded elsewhere than `pref_address`.
    pub relocatable: bool,
    /// Longest command line, without its terminating zero.
    pub cmdline_size: u32,
    /// Highest address the initrd's last byte may have.
    pub initrd_addr_max: u32,
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from(u32_at(b, off)) | (u64::from(u32_at(b, off + 4)) << 32)
}

impl<'a> BzImage<'a> {
    /// Checks `file` as a bzImage with a 64-bit entry.
    pub fn parse(file: &'a [u8]) -> Result<Self, BzImageError> {
        // Everything up to init_size (0x260..0x264) is read below.
        let header_needs = 0x264;
        if file.len() < header_needs {
            return Err(BzImageError::Truncated {
                needed: header_needs,
                have: file.len(),
            });
        }
        if u16_at(file, 0x1fe) != 0xaa55 || &file[0x202..0x206] != b"HdrS" {
            return Err(BzImageError::NotBzImage);
        }
        let protocol = u16_at(file, 0x206);
        if protocol < MIN_PROTOCOL {
            return Err(BzImageError::OldProtocol(protocol));
        }
        if u16_at(file, 0x236) & XLF_KERNEL_64 == 0 {
            return Err(BzImageError::No64BitEntry);
        }
        let kernel_alignment = u32_at(file, 0x230);
        if !kernel_alignment.is_power_of_two() {
            return Err(BzImageError::BadAlignment(kernel_alignment));
        }
        // A setup_sects of 0 means 4, for compatibility with the oldest loaders.
        let setup_sects = match file[0x1f1] {
            0 => 4,
            n => usize::from(n),
        };
        let payload_offset = (setup_sects + 1) * 512;
        // The protected-mode part must hold at least the 64-bit entry.
        let needed = payload_offset + ENTRY_64_OFFSET as usize + 1;
        if file.len() < needed {
            return Err(BzImageError::Truncated {
                needed,
                have: file.len(),
            });
        }
        let syssize = u64::from(u32_at(file, 0x1f4)) * 16;
        let declared = payload_offset as u64 + syssize;
        if (file.len() as u64) < declared {
            return Err(BzImageError::Truncated {
                needed: declared as usize,
                have: file.len(),
            });
        }
        Ok(Self {
            file,
            protocol,
            payload_offset,
            pref_address: u64_at(file, 0x258),
            init_size: u64::from(u32_at(file, 0x260)),
            kernel_alignment: u64::from(kernel_alignment),
            relocatable: file[0x234] != 0,
            cmdline_size: u32_at(file, 0x238),
            initrd_addr_max: u32_at(file, 0x22c),
        })
    }

    /// The protected-mode part, which the loader places at the load address.
    pub fn payload(&self) -> &'a [u8] {
        &self.file[self.payload_offset..]
    }

    /// The setup header's bytes (from 0x1f1 to the end the header's jump declares), which go to
    /// the same offsets of the zero page.
    pub fn setup_header(&self) -> &'a [u8] {
        &self.file[self.setup_header_range()]
    }

    fn setup_header_range(&self) -> Range<usize> {
        // The byte at 0x201 is the jump's displacement: the header ends where the jump lands.
        let end = (0x202 + usize::from(self.file[0x201])).clamp(0x264, 0x290);
        SETUP_HEADER_START..end.min(self.file.len())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// A minimal bzImage with the fields a 6.x kernel has: protocol 2.15, relocatable,
    /// 64-bit entry, 2M alignment, 16M preferred address.
    pub(crate) fn sample(setup_sects: u8, payload: usize) -> Vec<u8> {
        let payload_offset = (usize::from(setup_sects.max(4)) + 1) * 512;
        let mut f = vec![0u8; payload_offset + payload];
        f[0x1f1] = setup_sects;
        f[0x1f4..0x1f8].copy_from_slice(&((payload as u32).div_ceil(16)).to_le_bytes());
        f[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
        f[0x200] = 0xeb;
        f[0x201] = 0x6a; // header ends at 0x26c
        f[0x202..0x206].copy_from_slice(b"HdrS");
        f[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        f[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        f[0x230..0x234].copy_from_slice(&0x20_0000u32.to_le_bytes());
        f[0x234] = 1;
        f[0x236..0x238].copy_from_slice(&0x7fu16.to_le_bytes());
        f[0x238..0x23c].copy_from_slice(&2047u32.to_le_bytes());
        f[0x258..0x260].copy_from_slice(&0x100_0000u64.to_le_bytes());
        f[0x260..0x264].copy_from_slice(&0x300_0000u32.to_le_bytes());
        f
    }

    #[test]
    fn a_64_bit_kernel_is_read() {
        let f = sample(30, 0x1000);
        let k = BzImage::parse(&f).unwrap();
        assert_eq!(k.protocol, 0x020f);
        assert_eq!(k.payload_offset, 31 * 512);
        assert_eq!(k.payload().len(), 0x1000);
        assert_eq!(k.pref_address, 0x100_0000);
        assert_eq!(k.init_size, 0x300_0000);
        assert_eq!(k.kernel_alignment, 0x20_0000);
        assert!(k.relocatable);
        assert_eq!(k.cmdline_size, 2047);
        assert_eq!(k.setup_header().len(), 0x26c - 0x1f1);
    }

    #[test]
    fn zero_setup_sects_means_four() {
        let f = sample(0, 0x400);
        assert_eq!(BzImage::parse(&f).unwrap().payload_offset, 5 * 512);
    }

    #[test]
    fn wrong_files_are_refused_with_the_reason() {
        assert_eq!(
            BzImage::parse(&[0u8; 16]),
            Err(BzImageError::Truncated {
                needed: 0x264,
                have: 16
            })
        );
        let mut f = sample(30, 0x1000);
        f[0x202] = b'X';
        assert_eq!(BzImage::parse(&f), Err(BzImageError::NotBzImage));
        let mut f = sample(30, 0x1000);
        f[0x206..0x208].copy_from_slice(&0x020bu16.to_le_bytes());
        assert_eq!(BzImage::parse(&f), Err(BzImageError::OldProtocol(0x020b)));
        let mut f = sample(30, 0x1000);
        f[0x236] = 0;
        assert_eq!(BzImage::parse(&f), Err(BzImageError::No64BitEntry));
        let mut f = sample(30, 0x1000);
        f[0x230..0x234].copy_from_slice(&0x3000u32.to_le_bytes());
        assert_eq!(BzImage::parse(&f), Err(BzImageError::BadAlignment(0x3000)));
    }

    #[test]
    fn a_file_cut_short_of_its_declared_size_is_truncated() {
        let f = sample(30, 0x1000);
        let cut = &f[..f.len() - 0x100];
        assert!(matches!(
            BzImage::parse(cut),
            Err(BzImageError::Truncated { .. })
        ));
        // Cut inside the setup sectors: the 64-bit entry is missing.
        assert!(matches!(
            BzImage::parse(&f[..31 * 512]),
            Err(BzImageError::Truncated { .. })
        ));
    }
}
