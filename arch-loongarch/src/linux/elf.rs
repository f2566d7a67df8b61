//! The loadable segments of a LoongArch `vmlinux` (ELF64, little-endian, machine 258). The
//! kernel is linked in a direct-mapped window (0x9000_...); it starts in direct-address mode,
//! where the CPU ignores address bits above the physical width, so each segment's guest-physical
//! address is its physical address with those bits dropped ([`PHYS_MASK`]), and so is the entry.
// The plain data types here are documented; their fields and error variants are named for
// what they hold.
#![allow(missing_docs)]

use alloc::vec::Vec;
use core::fmt;

/// The machine number of LoongArch.
pub const EM_LOONGARCH: u16 = 258;
/// Physical address bits a direct-address-mode access keeps (LA464's PALEN).
pub const PHYS_MASK: u64 = (1 << 48) - 1;
const PT_LOAD: u32 = 1;

/// One segment to copy: `file_size` bytes from `offset` of the file to `gpa`, followed by
/// `mem_size - file_size` bytes the kernel clears itself (its BSS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub gpa: u64,
    pub offset: usize,
    pub file_size: usize,
    pub mem_size: u64,
}

/// A kernel as the loader sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    pub segments: Vec<Segment>,
    /// Guest-physical address of the first instruction.
    pub entry: u64,
}

impl Kernel {
    /// The lowest and highest guest-physical addresses the segments occupy (end exclusive).
    pub fn span(&self) -> (u64, u64) {
        let start = self.segments.iter().map(|s| s.gpa).min().unwrap_or(0);
        let end = self
            .segments
            .iter()
            .map(|s| s.gpa + s.mem_size)
            .max()
            .unwrap_or(0);
        (start, end)
    }
}

/// Why a file is not a kernel this loader takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElfError {
    NotElf,
    Not64BitLittleEndian,
    NotLoongArch(u16),
    Truncated,
    NoLoadableSegment,
    SegmentOutsideFile { index: usize },
    SegmentLargerInFile { index: usize },
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotElf => write!(f, "is not an ELF file (a LoongArch vmlinux is expected)"),
            Self::Not64BitLittleEndian => write!(f, "is not a 64-bit little-endian ELF file"),
            Self::NotLoongArch(m) => write!(f, "is for ELF machine {m}, not LoongArch (258)"),
            Self::Truncated => write!(f, "is truncated: its headers end past the file"),
            Self::NoLoadableSegment => write!(f, "has no loadable segment"),
            Self::SegmentOutsideFile { index } => {
                write!(f, "segment {index} lies (partly) outside the file")
            }
            Self::SegmentLargerInFile { index } => {
                write!(
                    f,
                    "segment {index} has more bytes in the file than in memory"
                )
            }
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, ElfError> {
    let s = b.get(at..at + 2).ok_or(ElfError::Truncated)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, ElfError> {
    let s = b.get(at..at + 4).ok_or(ElfError::Truncated)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, ElfError> {
    let s = b.get(at..at + 8).ok_or(ElfError::Truncated)?;
    let mut w = [0; 8];
    w.copy_from_slice(s);
    Ok(u64::from_le_bytes(w))
}

/// Reads the loadable segments and the entry of `file`.
pub fn parse(file: &[u8]) -> Result<Kernel, ElfError> {
    if file.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(ElfError::NotElf);
    }
    // EI_CLASS 2 (64-bit), EI_DATA 1 (little-endian).
    if file.get(4..6) != Some([2u8, 1].as_slice()) {
        return Err(ElfError::Not64BitLittleEndian);
    }
    let machine = u16_at(file, 18)?;
    if machine != EM_LOONGARCH {
        return Err(ElfError::NotLoongArch(machine));
    }
    let entry = u64_at(file, 24)? & PHYS_MASK;
    let phoff = u64_at(file, 32)? as usize;
    let phentsize = usize::from(u16_at(file, 54)?);
    let phnum = usize::from(u16_at(file, 56)?);
    if phentsize < 56 {
        return Err(ElfError::Truncated);
    }
    let mut segments = Vec::new();
    for index in 0..phnum {
        let ph = phoff
            .checked_add(index * phentsize)
            .ok_or(ElfError::Truncated)?;
        if u32_at(file, ph)? != PT_LOAD {
            continue;
        }
        let offset = u64_at(file, ph + 8)?;
        let paddr = u64_at(file, ph + 24)?;
        let file_size = u64_at(file, ph + 32)?;
        let mem_size = u64_at(file, ph + 40)?;
        if file_size > mem_size {
            return Err(ElfError::SegmentLargerInFile { index });
        }
        let end = offset.checked_add(file_size);
        if end.is_none_or(|e| e > file.len() as u64) {
            return Err(ElfError::SegmentOutsideFile { index });
        }
        if mem_size == 0 {
            continue;
        }
        segments.push(Segment {
            gpa: paddr & PHYS_MASK,
            offset: offset as usize,
            file_size: file_size as usize,
            mem_size,
        });
    }
    if segments.is_empty() {
        return Err(ElfError::NoLoadableSegment);
    }
    Ok(Kernel { segments, entry })
}

/// A minimal LoongArch ELF with the given loadable segments `(paddr, bytes, mem_size)` and
/// entry, for tests here and in the layout.
#[cfg(test)]
pub fn test_kernel(segments: &[(u64, &[u8], u64)], entry: u64) -> Vec<u8> {
    let phoff = 64usize;
    let data_at = phoff + 56 * segments.len();
    let mut f = alloc::vec![0u8; data_at];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[6] = 1;
    f[16..18].copy_from_slice(&2u16.to_le_bytes());
    f[18..20].copy_from_slice(&EM_LOONGARCH.to_le_bytes());
    f[24..32].copy_from_slice(&entry.to_le_bytes());
    f[32..40].copy_from_slice(&(phoff as u64).to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());
    for (i, (paddr, bytes, mem)) in segments.iter().enumerate() {
        let ph = phoff + 56 * i;
        let offset = f.len() as u64;
        f[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        f[ph + 8..ph + 16].copy_from_slice(&offset.to_le_bytes());
        f[ph + 16..ph + 24].copy_from_slice(&paddr.to_le_bytes());
        f[ph + 24..ph + 32].copy_from_slice(&paddr.to_le_bytes());
        f[ph + 32..ph + 40].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
        f[ph + 40..ph + 48].copy_from_slice(&mem.to_le_bytes());
        f.extend_from_slice(bytes);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_entry_lose_the_window_bits() {
        let k = test_kernel(
            &[
                (0x9000_0000_0020_0000, b"text", 0x10),
                (0x9000_0000_0030_0000, b"d", 0x100),
            ],
            0x9000_0000_0020_0008,
        );
        let k = parse(&k).unwrap();
        assert_eq!(k.entry, 0x20_0008);
        assert_eq!(k.segments.len(), 2);
        assert_eq!(k.segments[0].gpa, 0x20_0000);
        assert_eq!(k.segments[0].file_size, 4);
        assert_eq!(k.span(), (0x20_0000, 0x30_0100));
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        assert_eq!(parse(b"MZ\0\0"), Err(ElfError::NotElf));
        let mut k = test_kernel(&[(0x20_0000, b"x", 1)], 0x20_0000);
        k[18..20].copy_from_slice(&62u16.to_le_bytes());
        assert_eq!(parse(&k), Err(ElfError::NotLoongArch(62)));
        let k = test_kernel(&[(0x20_0000, b"xyz", 1)], 0x20_0000);
        assert_eq!(parse(&k), Err(ElfError::SegmentLargerInFile { index: 0 }));
        let k = test_kernel(&[(0x20_0000, b"xyz", 8)], 0x20_0000);
        assert_eq!(
            parse(&k[..k.len() - 1]),
            Err(ElfError::SegmentOutsideFile { index: 0 })
        );
        let k = test_kernel(&[], 0x20_0000);
        assert_eq!(parse(&k), Err(ElfError::NoLoadableSegment));
        assert_eq!(parse(&k[..40]), Err(ElfError::Truncated));
    }
}
