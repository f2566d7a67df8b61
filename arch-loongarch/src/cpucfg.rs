//! `cpucfg`: the CPU's self-description words, and a typed decode of the fields the hypervisor
//! cares about (address widths, vector units, and above all whether LVZ, the virtualization
//! extension, is there). The decode is pure so the host tests it against known words.

/// The first words of CPUCFG (0..=5), as read from the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuCfg {
    /// Words 0 to 5: PRID, architecture, features, cache/TLB behaviour, counter clock.
    pub words: [u32; 6],
}

fn bits(word: u32, lo: u32, width: u32) -> u32 {
    (word >> lo) & ((1u32 << width) - 1)
}

fn bit(word: u32, n: u32) -> bool {
    word & (1 << n) != 0
}

impl CpuCfg {
    /// Reads words 0 to 5 from the running CPU.
    #[cfg(target_arch = "loongarch64")]
    pub fn read() -> Self {
        let mut words = [0; 6];
        for (i, w) in words.iter_mut().enumerate() {
            *w = read(i as u32);
        }
        Self { words }
    }

    /// Processor id (CPUCFG0).
    pub fn prid(&self) -> u32 {
        self.words[0]
    }

    /// Architecture level (CPUCFG1[1:0]): 1 = LA32, 2 = LA64.
    pub fn arch(&self) -> u32 {
        bits(self.words[1], 0, 2)
    }

    /// Paging MMU present (CPUCFG1[2]).
    pub fn paging(&self) -> bool {
        bit(self.words[1], 2)
    }

    /// IOCSR space present (CPUCFG1[3]).
    pub fn iocsr(&self) -> bool {
        bit(self.words[1], 3)
    }

    /// Physical address bits (CPUCFG1[11:4] holds the count minus one).
    pub fn palen(&self) -> u32 {
        bits(self.words[1], 4, 8) + 1
    }

    /// Virtual address bits (CPUCFG1[19:12] holds the count minus one).
    pub fn valen(&self) -> u32 {
        bits(self.words[1], 12, 8) + 1
    }

    /// Page-table entries may carry RPLV (CPUCFG1[23]).
    pub fn rplv(&self) -> bool {
        bit(self.words[1], 23)
    }

    /// Hardware page-table walker / huge-page support (CPUCFG1[24], "HP").
    pub fn huge_pages(&self) -> bool {
        bit(self.words[1], 24)
    }

    /// Scalar floating point (CPUCFG2[0]).
    pub fn fp(&self) -> bool {
        bit(self.words[2], 0)
    }

    /// 128-bit vectors, LSX (CPUCFG2[6]).
    pub fn lsx(&self) -> bool {
        bit(self.words[2], 6)
    }

    /// 256-bit vectors, LASX (CPUCFG2[7]).
    pub fn lasx(&self) -> bool {
        bit(self.words[2], 7)
    }

    /// Crypto instructions (CPUCFG2[9]).
    pub fn crypto(&self) -> bool {
        bit(self.words[2], 9)
    }

    /// The virtualization extension: `Some(version)` when CPUCFG2.LVZP (bit 10) is set, with the
    /// version from CPUCFG2.LVZVER (bits 13:11).
    pub fn lvz(&self) -> Option<u32> {
        bit(self.words[2], 10).then(|| bits(self.words[2], 11, 3))
    }

    /// Binary-translation extensions (CPUCFG2[20:18]: x86, ARM, MIPS), as a 3-bit mask.
    pub fn lbt(&self) -> u32 {
        bits(self.words[2], 18, 3)
    }

    /// Atomic memory operations, AM* (CPUCFG2[22]).
    pub fn lam(&self) -> bool {
        bit(self.words[2], 22)
    }

    /// Frequency of the stable counter in Hz: CPUCFG4 (crystal) × CPUCFG5[15:0] / CPUCFG5[31:16].
    /// `None` when the words are zero (no counter described).
    pub fn counter_hz(&self) -> Option<u64> {
        let base = u64::from(self.words[4]);
        let mul = u64::from(bits(self.words[5], 0, 16));
        let div = u64::from(bits(self.words[5], 16, 16));
        (base != 0 && mul != 0 && div != 0).then(|| base * mul / div)
    }
}

/// Reads CPUCFG word `index`.
#[cfg(target_arch = "loongarch64")]
#[inline]
pub fn read(index: u32) -> u32 {
    let value: usize;
    // SAFETY: cpucfg only reports configuration; it has no side effect at any privilege level.
    unsafe {
        core::arch::asm!("cpucfg {0}, {1}", out(reg) value, in(reg) index as usize,
            options(nomem, nostack, pure))
    };
    value as u32
}

/// CPUCFG2 bits a partition does not get: LVZ (10) and its version (13:11). A partition
/// cannot nest, and a guest that saw LVZ would try its instructions.
const WORD2_HIDDEN: u32 = 0xf << 10;
/// The PMU word: the counters are the hypervisor's.
const WORD_PMU: u32 = 6;

/// What a partition's `cpucfg` returns for word `index`, given the CPU's own `real` word: the
/// real CPU (a partition owns its cores) with LVZ hidden and no PMU; words the architecture
/// does not define read 0. Address widths, vector units, the counter's clock (words 4-5) and
/// the cache words (0x10-0x14) are the real ones, which a kernel needs to run.
pub fn guest_word(index: u32, real: u32) -> u32 {
    match index {
        0 | 1 | 3 | 4 | 5 | 0x10..=0x14 => real,
        2 => real & !WORD2_HIDDEN,
        WORD_PMU => 0,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What QEMU 10.0.2 `-M virt -cpu max` reports (measured).
    const QEMU_MAX: CpuCfg = CpuCfg {
        words: [
            0x0014_c010,
            0x03f2_f2fe,
            0x0060_c0cf,
            0,
            0x05f5_e100,
            0x0001_0001,
        ],
    };

    #[test]
    fn qemu_max_decodes() {
        let c = QEMU_MAX;
        assert_eq!(c.prid(), 0x14c010);
        assert_eq!(c.arch(), 2);
        assert!(c.paging() && c.iocsr());
        assert_eq!((c.palen(), c.valen()), (48, 48));
        assert!(c.fp() && c.lsx() && c.lasx());
        assert_eq!(c.lvz(), None);
        assert_eq!(c.counter_hz(), Some(100_000_000));
    }

    #[test]
    fn lvz_bit_and_version() {
        let mut c = QEMU_MAX;
        c.words[2] |= 1 << 10;
        assert_eq!(c.lvz(), Some(0));
        c.words[2] |= 0b011 << 11;
        assert_eq!(c.lvz(), Some(3));
        // The version field alone does not mean LVZ is there.
        c.words[2] &= !(1 << 10);
        assert_eq!(c.lvz(), None);
    }

    #[test]
    fn missing_counter_words() {
        let c = CpuCfg { words: [0; 6] };
        assert_eq!(c.counter_hz(), None);
        assert_eq!((c.palen(), c.valen()), (1, 1));
    }

    #[test]
    fn a_partition_sees_the_real_cpu_without_lvz_or_pmu() {
        let word2 = 0x0060_cfcf | (1 << 10) | (1 << 11);
        assert_eq!(
            guest_word(2, word2),
            0x0060_c3cf,
            "LVZ and its version hidden"
        );
        assert_eq!(guest_word(2, word2) & (1 << 10), 0);
        assert_eq!(
            guest_word(1, 0x03f2_f2fe),
            0x03f2_f2fe,
            "address widths kept"
        );
        assert_eq!(
            guest_word(4, 100_000_000),
            100_000_000,
            "counter clock kept"
        );
        assert_eq!(guest_word(0x11, 0x1234), 0x1234, "cache words kept");
        assert_eq!(guest_word(6, 0xffff_ffff), 0, "no PMU");
        assert_eq!(guest_word(7, 0xffff_ffff), 0, "undefined words read 0");
        assert_eq!(guest_word(0x40, 0xffff_ffff), 0);
    }
}
