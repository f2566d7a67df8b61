//! ESTAT, the exception status register: which interrupts are pending (IS) and why the last
//! exception was taken (Ecode, EsubCode), decoded into names for the hypervisor's fault reports
//! and, later, its exit dispatch. Pure, so the host tests it.

/// The raw ESTAT value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Estat(pub u64);

impl Estat {
    /// Pending interrupt lines, IS[12:0] (SWI0-1, HWI0-7, PMI, timer, IPI).
    pub fn is(self) -> u32 {
        (self.0 & 0x1fff) as u32
    }

    /// Exception code, bits 21:16.
    pub fn ecode(self) -> u32 {
        ((self.0 >> 16) & 0x3f) as u32
    }

    /// Exception sub-code, bits 30:22.
    pub fn esubcode(self) -> u32 {
        ((self.0 >> 22) & 0x1ff) as u32
    }

    /// The decoded cause.
    pub fn cause(self) -> Cause {
        Cause::from_codes(self.ecode(), self.esubcode())
    }
}

/// Why an exception was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// An interrupt (Ecode 0); see [`Estat::is`].
    Interrupt,
    /// Load from a page whose entry is invalid (PIL).
    PageInvalidLoad,
    /// Store to a page whose entry is invalid (PIS).
    PageInvalidStore,
    /// Fetch from a page whose entry is invalid (PIF).
    PageInvalidFetch,
    /// Store to a page whose entry is not dirty (PME).
    PageModify,
    /// Read from a no-read page (PNR).
    PageNoRead,
    /// Fetch from a no-execute page (PNX).
    PageNoExecute,
    /// Privilege level too low for the page (PPI).
    PagePrivilege,
    /// Fetch address error (ADEF, sub-code 0).
    AddressErrorFetch,
    /// Memory-access address error (ADEM, sub-code 1).
    AddressErrorMemory,
    /// Unaligned access (ALE).
    Unaligned,
    /// Bounds-check failure (BCE).
    BoundsCheck,
    /// `syscall` (SYS).
    Syscall,
    /// `break` (BRK).
    Breakpoint,
    /// Instruction not defined (INE).
    InstructionNotExist,
    /// Privileged instruction at a lower privilege level (IPE).
    InstructionPrivilege,
    /// Floating point disabled (FPD).
    FpDisabled,
    /// LSX disabled (SXD).
    LsxDisabled,
    /// LASX disabled (ASXD).
    LasxDisabled,
    /// Floating-point exception (FPE, sub-code 0) or vector FP exception (VFPE, sub-code 1).
    FpError,
    /// Watchpoint (WPEF / WPEM).
    Watch,
    /// Binary translation disabled (BTD).
    BtDisabled,
    /// Binary translation exception (BTE).
    BtError,
    /// Guest-sensitive privileged resource (GSPR, LVZ): a guest `cpucfg`, CSR, IOCSR, `idle`,
    /// `cacop` that root must emulate.
    GuestSensitive,
    /// Hypercall (HVC, LVZ): a guest `hvcl`.
    Hypercall,
    /// Guest CSR modified (GCM, LVZ): sub-code 0 software-caused, 1 hardware-caused.
    GuestCsrModified,
    /// Any other Ecode.
    Other(u32),
}

impl Cause {
    /// Decodes an Ecode / EsubCode pair.
    pub fn from_codes(ecode: u32, esubcode: u32) -> Self {
        match ecode {
            0x0 => Self::Interrupt,
            0x1 => Self::PageInvalidLoad,
            0x2 => Self::PageInvalidStore,
            0x3 => Self::PageInvalidFetch,
            0x4 => Self::PageModify,
            0x5 => Self::PageNoRead,
            0x6 => Self::PageNoExecute,
            0x7 => Self::PagePrivilege,
            0x8 if esubcode == 0 => Self::AddressErrorFetch,
            0x8 => Self::AddressErrorMemory,
            0x9 => Self::Unaligned,
            0xa => Self::BoundsCheck,
            0xb => Self::Syscall,
            0xc => Self::Breakpoint,
            0xd => Self::InstructionNotExist,
            0xe => Self::InstructionPrivilege,
            0xf => Self::FpDisabled,
            0x10 => Self::LsxDisabled,
            0x11 => Self::LasxDisabled,
            0x12 => Self::FpError,
            0x13 => Self::Watch,
            0x14 => Self::BtDisabled,
            0x15 => Self::BtError,
            0x16 => Self::GuestSensitive,
            0x17 => Self::Hypercall,
            0x18 => Self::GuestCsrModified,
            other => Self::Other(other),
        }
    }

    /// The manual's short name, for fault reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Interrupt => "INT",
            Self::PageInvalidLoad => "PIL",
            Self::PageInvalidStore => "PIS",
            Self::PageInvalidFetch => "PIF",
            Self::PageModify => "PME",
            Self::PageNoRead => "PNR",
            Self::PageNoExecute => "PNX",
            Self::PagePrivilege => "PPI",
            Self::AddressErrorFetch => "ADEF",
            Self::AddressErrorMemory => "ADEM",
            Self::Unaligned => "ALE",
            Self::BoundsCheck => "BCE",
            Self::Syscall => "SYS",
            Self::Breakpoint => "BRK",
            Self::InstructionNotExist => "INE",
            Self::InstructionPrivilege => "IPE",
            Self::FpDisabled => "FPD",
            Self::LsxDisabled => "SXD",
            Self::LasxDisabled => "ASXD",
            Self::FpError => "FPE",
            Self::Watch => "WPE",
            Self::BtDisabled => "BTD",
            Self::BtError => "BTE",
            Self::GuestSensitive => "GSPR",
            Self::Hypercall => "HVC",
            Self::GuestCsrModified => "GCM",
            Self::Other(_) => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        // Ecode 0xd (INE), EsubCode 0, timer + IPI pending.
        let e = Estat((0xd << 16) | (1 << 11) | (1 << 12));
        assert_eq!(e.ecode(), 0xd);
        assert_eq!(e.esubcode(), 0);
        assert_eq!(e.is(), 0x1800);
        assert_eq!(e.cause(), Cause::InstructionNotExist);
        assert_eq!(e.cause().name(), "INE");
    }

    #[test]
    fn subcodes_select_the_address_error_kind() {
        assert_eq!(Estat(8 << 16).cause(), Cause::AddressErrorFetch);
        assert_eq!(
            Estat((8 << 16) | (1 << 22)).cause(),
            Cause::AddressErrorMemory
        );
        let gcm = Estat((0x18 << 16) | (1 << 22));
        assert_eq!((gcm.cause(), gcm.esubcode()), (Cause::GuestCsrModified, 1));
    }

    #[test]
    fn lvz_exits_and_unknown_codes() {
        assert_eq!(Cause::from_codes(0x16, 0).name(), "GSPR");
        assert_eq!(Cause::from_codes(0x17, 0).name(), "HVC");
        assert_eq!(Cause::from_codes(0x3f, 0), Cause::Other(0x3f));
        // Bits above EsubCode do not leak into the fields.
        assert_eq!(Estat(u64::MAX).esubcode(), 0x1ff);
        assert_eq!(Estat(u64::MAX).ecode(), 0x3f);
    }
}
