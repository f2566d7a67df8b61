//! Address newtypes for the two sides of a stage-2 translation.
//!
//! A guest-physical address (`Gpa`) is what the guest believes is physical memory; a host-physical
//! address (`Hpa`) is where the bytes really are. Keeping them apart in the type system stops the
//! classic bug of feeding one where the other belongs. Arithmetic is checked: an overflow near the
//! top of the address space is an error, never a silent wrap (KVM's LoongArch v3 code passed
//! `~0 << PAGE_SHIFT` as a range end and wrapped).

use core::fmt;

/// Errors of address arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrError {
    /// The result does not fit in 64 bits.
    Overflow,
    /// A range whose end lies below its start.
    Inverted,
}

/// Result alias for address arithmetic.
pub type Result<T> = core::result::Result<T, AddrError>;

macro_rules! address {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The raw value.
            #[inline]
            pub const fn as_u64(self) -> u64 {
                self.0
            }

            /// `self + bytes`, or an error on overflow.
            #[inline]
            pub fn checked_add(self, bytes: u64) -> Result<Self> {
                self.0.checked_add(bytes).map(Self).ok_or(AddrError::Overflow)
            }

            /// `self - bytes`, or an error on underflow.
            #[inline]
            pub fn checked_sub(self, bytes: u64) -> Result<Self> {
                self.0.checked_sub(bytes).map(Self).ok_or(AddrError::Overflow)
            }

            /// Whether the address is a multiple of `align` (a power of two).
            #[inline]
            pub const fn is_aligned(self, align: u64) -> bool {
                self.0 & (align - 1) == 0
            }

            /// The address rounded down to `align` (a power of two).
            #[inline]
            pub const fn align_down(self, align: u64) -> Self {
                Self(self.0 & !(align - 1))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }
    };
}

address!(
    /// A guest-physical address.
    Gpa
);
address!(
    /// A host-physical address (or, for host-side tests, whatever the allocator calls physical).
    Hpa
);

/// A guest frame number: a `Gpa` divided by the table's base page size.
///
/// The base page size depends on the format (4 KiB for EPT, 16 KiB by default on LoongArch), so
/// conversions take the page shift explicitly.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
#[repr(transparent)]
pub struct Gfn(pub u64);

impl Gfn {
    /// The frame holding `gpa` for pages of `1 << page_shift` bytes.
    #[inline]
    pub const fn of(gpa: Gpa, page_shift: u32) -> Self {
        Self(gpa.0 >> page_shift)
    }

    /// The first address of this frame, or an error if it does not fit in 64 bits.
    #[inline]
    pub fn to_gpa(self, page_shift: u32) -> Result<Gpa> {
        if page_shift != 0 && self.0 >> (64 - page_shift) != 0 {
            return Err(AddrError::Overflow);
        }
        Ok(Gpa(self.0 << page_shift))
    }

    /// `self + frames`, or an error on overflow.
    #[inline]
    pub fn checked_add(self, frames: u64) -> Result<Self> {
        self.0
            .checked_add(frames)
            .map(Self)
            .ok_or(AddrError::Overflow)
    }
}

/// A half-open guest-physical range `[start, end)`.
///
/// Every range operation of the crate takes one of these: half-open everywhere, so adjacent ranges
/// compose without the off-by-one page that mixed inclusive/exclusive code produced in KVM.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct GpaRange {
    /// First address inside the range.
    pub start: Gpa,
    /// First address past the range.
    pub end: Gpa,
}

impl GpaRange {
    /// `[start, end)`, refused when `end < start`.
    pub fn new(start: Gpa, end: Gpa) -> Result<Self> {
        if end < start {
            return Err(AddrError::Inverted);
        }
        Ok(Self { start, end })
    }

    /// `[start, start + len)`, refused on overflow.
    pub fn from_len(start: Gpa, len: u64) -> Result<Self> {
        Ok(Self {
            start,
            end: start.checked_add(len)?,
        })
    }

    /// Length in bytes.
    #[inline]
    pub const fn len(&self) -> u64 {
        self.end.0 - self.start.0
    }

    /// Whether the range holds no address.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.end.0 == self.start.0
    }

    /// Whether `gpa` lies inside.
    #[inline]
    pub const fn contains(&self, gpa: Gpa) -> bool {
        self.start.0 <= gpa.0 && gpa.0 < self.end.0
    }

    /// The overlap of two ranges (possibly empty).
    pub fn intersect(&self, other: &Self) -> Self {
        let start = if self.start > other.start {
            self.start
        } else {
            other.start
        };
        let end = if self.end < other.end {
            self.end
        } else {
            other.end
        };
        if end < start {
            Self { start, end: start }
        } else {
            Self { start, end }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_arithmetic_refuses_overflow() {
        assert_eq!(Gpa(u64::MAX - 1).checked_add(2), Err(AddrError::Overflow));
        assert_eq!(Hpa(1).checked_sub(2), Err(AddrError::Overflow));
        assert_eq!(Gfn(u64::MAX >> 11).to_gpa(12), Err(AddrError::Overflow));
        assert_eq!(Gfn(3).to_gpa(14), Ok(Gpa(3 << 14)));
        assert_eq!(GpaRange::new(Gpa(2), Gpa(1)), Err(AddrError::Inverted));
    }

    #[test]
    fn ranges_are_half_open() {
        let r = GpaRange::new(Gpa(0x1000), Gpa(0x3000)).unwrap();
        assert!(r.contains(Gpa(0x1000)) && r.contains(Gpa(0x2fff)) && !r.contains(Gpa(0x3000)));
        let o = r.intersect(&GpaRange::new(Gpa(0x3000), Gpa(0x4000)).unwrap());
        assert!(o.is_empty());
    }
}
