//! Architecture-neutral description of a leaf: permissions, memory type and tracking state.
//!
//! Callers speak in these terms; each `PteFormat` translates them into its own bits. Keeping young
//! and dirty in the same struct lets a split child or a collapsed huge page be rebuilt from the
//! decoded attributes without losing the state that aging and dirty logging depend on.

use core::ops::BitOr;

/// Guest access permissions of a mapping.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Perms(u8);

impl Perms {
    /// No access.
    pub const NONE: Perms = Perms(0);
    /// Readable.
    pub const R: Perms = Perms(1);
    /// Writable.
    pub const W: Perms = Perms(2);
    /// Executable.
    pub const X: Perms = Perms(4);
    /// Read, write and execute: ordinary guest RAM.
    pub const RWX: Perms = Perms(7);

    /// Whether every permission of `other` is present.
    #[inline]
    pub const fn contains(self, other: Perms) -> bool {
        self.0 & other.0 == other.0
    }

    /// These permissions without those of `other`.
    #[inline]
    pub const fn without(self, other: Perms) -> Perms {
        Perms(self.0 & !other.0)
    }

    /// The raw three-bit value (R=1, W=2, X=4).
    #[inline]
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// From the raw three-bit value; higher bits are dropped.
    #[inline]
    pub const fn from_bits(bits: u8) -> Perms {
        Perms(bits & 7)
    }
}

impl BitOr for Perms {
    type Output = Perms;
    fn bitor(self, rhs: Perms) -> Perms {
        Perms(self.0 | rhs.0)
    }
}

/// Memory type of a mapping, in the vocabulary both architectures share.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum MemType {
    /// Strongly ordered, uncached: device memory (EPT UC, LoongArch SUC).
    Uncached,
    /// Write-combining (EPT WC, LoongArch WUC).
    WriteCombining,
    /// Write-through (EPT only).
    WriteThrough,
    /// Write-protected (EPT only).
    WriteProtect,
    /// Cached, coherent: guest RAM (EPT WB, LoongArch CC).
    #[default]
    WriteBack,
}

/// What a leaf maps to, apart from the address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LeafAttrs {
    /// Guest permissions. `W` here means "may be written"; whether the hardware currently allows
    /// the write also depends on `dirty` in formats that track dirtiness by write-protection.
    pub perms: Perms,
    /// Memory type.
    pub mem: MemType,
    /// Accessed since the last `age`.
    pub young: bool,
    /// Written since the last dirty harvest.
    pub dirty: bool,
}

impl LeafAttrs {
    /// Young, clean, write-back RAM with `perms`.
    pub const fn ram(perms: Perms) -> Self {
        Self {
            perms,
            mem: MemType::WriteBack,
            young: true,
            dirty: false,
        }
    }

    /// Whether two leaves map with the same permissions and memory type (tracking state aside).
    #[inline]
    pub fn same_mapping(&self, other: &Self) -> bool {
        self.perms == other.perms && self.mem == other.mem
    }
}

/// The kind of guest access that faulted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    /// A data read.
    Read,
    /// A data write.
    Write,
    /// An instruction fetch.
    Exec,
}
