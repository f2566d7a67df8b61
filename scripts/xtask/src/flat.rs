//! ELF to flat image: what `objcopy -O binary` does for a bare-metal image, without needing a
//! cross binutils. Loadable segments are laid out by physical address from the lowest one, gaps
//! zero-filled; the zero-initialised tail (.bss) is left out, as the image clears it itself.

fn u16_at(b: &[u8], off: usize) -> Result<u16, String> {
    b.get(off..off + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| format!("truncated at {off:#x}"))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, String> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| format!("truncated at {off:#x}"))
}

fn u64_at(b: &[u8], off: usize) -> Result<u64, String> {
    b.get(off..off + 8)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| format!("truncated at {off:#x}"))
}

const PT_LOAD: u32 = 1;

/// The flat image of a little-endian ELF64 file.
pub fn from_elf(elf: &[u8]) -> Result<Vec<u8>, String> {
    if elf.get(..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err("not a little-endian ELF64 file".into());
    }
    let phoff = u64_at(elf, 0x20)? as usize;
    let phentsize = u16_at(elf, 0x36)? as usize;
    let phnum = u16_at(elf, 0x38)? as usize;
    let mut segments = Vec::new();
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(elf, ph)? != PT_LOAD {
            continue;
        }
        let (offset, paddr, filesz) = (
            u64_at(elf, ph + 8)?,
            u64_at(elf, ph + 24)?,
            u64_at(elf, ph + 32)?,
        );
        if filesz > 0 {
            segments.push((paddr, offset as usize, filesz as usize));
        }
    }
    segments.sort();
    let base = segments
        .first()
        .ok_or("no loadable segment with file contents")?
        .0;
    let mut image = Vec::new();
    for (paddr, offset, size) in segments {
        let at = (paddr - base) as usize;
        if at < image.len() {
            return Err(format!("segments overlap at physical address {paddr:#x}"));
        }
        image.resize(at, 0);
        let data = elf
            .get(offset..offset + size)
            .ok_or("segment beyond the end of the file")?;
        image.extend_from_slice(data);
    }
    Ok(image)
}

/// Where the image lies in physical memory once loaded and running: from the lowest loadable
/// segment's physical address to the end of the highest one's memory size, which counts the
/// zero-initialised tail (.bss, where the linker scripts put the heap and the CPU stacks).
pub fn footprint(elf: &[u8]) -> Result<(u64, u64), String> {
    if elf.get(..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err("not a little-endian ELF64 file".into());
    }
    let phoff = u64_at(elf, 0x20)? as usize;
    let phentsize = u16_at(elf, 0x36)? as usize;
    let phnum = u16_at(elf, 0x38)? as usize;
    let mut span: Option<(u64, u64)> = None;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(elf, ph)? != PT_LOAD {
            continue;
        }
        let (paddr, memsz) = (u64_at(elf, ph + 24)?, u64_at(elf, ph + 40)?);
        if memsz == 0 {
            continue;
        }
        let end = paddr
            .checked_add(memsz)
            .ok_or_else(|| format!("segment at {paddr:#x} wraps the address space"))?;
        span = Some(match span {
            None => (paddr, end),
            Some((s, e)) => (s.min(paddr), e.max(end)),
        });
    }
    span.ok_or_else(|| "no loadable segment".into())
}

const MACHINE_LOONGARCH64: u16 = 0x6264;
const MACHINE_X86_64: u16 = 0x8664;
const LINUX_LOONGARCH_MAGIC: u32 = 0x8182_23cd;

/// Checks that `image` starts with a DOS stub pointing at a PE32+ header for the right machine
/// (and, on LoongArch, the Linux image header QEMU's `-kernel` also accepts).
pub fn check_pe(image: &[u8], loongarch: bool) -> Result<(), String> {
    if image.get(..2) != Some(b"MZ") {
        return Err("no MZ signature at offset 0".into());
    }
    let pe = u32_at(image, 0x3c)? as usize;
    if image.get(pe..pe + 4) != Some(b"PE\0\0") {
        return Err(format!("no PE signature at {pe:#x}"));
    }
    let machine = u16_at(image, pe + 4)?;
    let want = if loongarch {
        MACHINE_LOONGARCH64
    } else {
        MACHINE_X86_64
    };
    if machine != want {
        return Err(format!("PE machine {machine:#x}, expected {want:#x}"));
    }
    if u16_at(image, pe + 24)? != 0x20b {
        return Err("optional header is not PE32+".into());
    }
    if loongarch && u32_at(image, 0x38)? != LINUX_LOONGARCH_MAGIC {
        return Err("no LoongArch Linux image magic at 0x38".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 with the given (paddr, bytes) PT_LOAD segments, memory size = file size.
    fn elf(segments: &[(u64, &[u8])]) -> Vec<u8> {
        let phoff = 64usize;
        let data_start = phoff + 56 * segments.len();
        let mut f = vec![0u8; data_start];
        f[..6].copy_from_slice(b"\x7fELF\x02\x01");
        f[0x20..0x28].copy_from_slice(&(phoff as u64).to_le_bytes());
        f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        f[0x38..0x3a].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        for (i, (paddr, bytes)) in segments.iter().enumerate() {
            let ph = phoff + 56 * i;
            let offset = f.len() as u64;
            f[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
            f[ph + 8..ph + 16].copy_from_slice(&offset.to_le_bytes());
            f[ph + 24..ph + 32].copy_from_slice(&paddr.to_le_bytes());
            f[ph + 32..ph + 40].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
            f[ph + 40..ph + 48].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
            f.extend_from_slice(bytes);
        }
        f
    }

    #[test]
    fn segments_are_placed_by_physical_address_with_gaps_zeroed() {
        let image = from_elf(&elf(&[(0x1004, b"cd"), (0x1000, b"ab")])).unwrap();
        assert_eq!(image, b"ab\0\0cd");
    }

    #[test]
    fn footprint_counts_memory_size_past_the_file() {
        let mut f = elf(&[(0x20_0000, b"abcd"), (0x20_1000, b"ef")]);
        // The second segment's memory size (its .bss) runs 0x10000 bytes past its file bytes.
        let ph = 64 + 56;
        f[ph + 40..ph + 48].copy_from_slice(&0x10002u64.to_le_bytes());
        assert_eq!(footprint(&f), Ok((0x20_0000, 0x21_1002)));
        assert!(footprint(b"not an elf").is_err());
    }

    #[test]
    fn overlapping_segments_are_refused() {
        assert!(from_elf(&elf(&[(0x1000, b"abcd"), (0x1002, b"xy")])).is_err());
    }

    #[test]
    fn non_elf_is_refused() {
        assert!(from_elf(b"MZ not an elf").is_err());
    }

    #[test]
    fn pe_check_wants_mz_pe_and_machine() {
        let mut img = vec![0u8; 0x100];
        img[..2].copy_from_slice(b"MZ");
        img[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
        img[0x38..0x3c].copy_from_slice(&LINUX_LOONGARCH_MAGIC.to_le_bytes());
        img[0x40..0x44].copy_from_slice(b"PE\0\0");
        img[0x44..0x46].copy_from_slice(&MACHINE_LOONGARCH64.to_le_bytes());
        img[0x58..0x5a].copy_from_slice(&0x20bu16.to_le_bytes());
        assert_eq!(check_pe(&img, true), Ok(()));
        assert!(check_pe(&img, false).is_err());
        img[0x40] = b'X';
        assert!(check_pe(&img, true).is_err());
    }
}
