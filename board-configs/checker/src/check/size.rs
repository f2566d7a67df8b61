//! Sizes and addresses as people write and read them. A size is a byte count or a string with a
//! binary unit (`"512M"`, `"16K"`, `"4G"`, `"0x4000"`); addresses are plain integers (TOML hex).
//! The same module prints them back (`[0x80000000, 0x90000000)`, `256M`) so error messages, the
//! summary and the board files all use one notation.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;

/// A byte count read from the file, already converted to bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

/// Parses `"512M"`, `"16K"`, `"1G"`, `"2T"`, `"4096"`, `"0x1000"` (units are powers of 1024; an
/// optional `iB`/`B` after the unit is accepted, so `"16KiB"` works too).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("invalid size {text:?}: expected bytes or a number with K, M, G or T");
    let t = text.trim().replace('_', "");
    // Hex is taken whole: its digits include `B`, which would otherwise read as "bytes".
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).map_err(|_| bad());
    }
    let (body, unit_required) = match (t.strip_suffix("iB"), t.strip_suffix('B')) {
        (Some(b), _) => (b, true),
        (None, Some(b)) => (b, false),
        (None, None) => (t.as_str(), false),
    };
    let shift = match body.chars().last() {
        Some('K') => 10,
        Some('M') => 20,
        Some('G') => 30,
        Some('T') => 40,
        _ if unit_required => return Err(bad()),
        _ => 0,
    };
    let digits = if shift > 0 {
        &body[..body.len() - 1]
    } else {
        body
    };
    let n = digits.parse::<u64>().map_err(|_| bad())?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size: bytes or a string like \"512M\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom(format!("invalid size {v}: must not be negative")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                parse_size(v).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A size in the largest binary unit that divides it exactly (`256M`, `16K`, `1G`), else bytes in hex.
pub fn fmt_size(bytes: u64) -> String {
    const UNITS: [(u32, &str); 4] = [(40, "T"), (30, "G"), (20, "M"), (10, "K")];
    if bytes == 0 {
        return "0".into();
    }
    for (shift, unit) in UNITS {
        if bytes.is_multiple_of(1u64 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes:#x}")
}

/// A half-open range `[start, end)` in hex; `end` saturates so a wrapping range still prints.
pub fn fmt_range(start: u64, size: u64) -> String {
    format!("[{start:#x}, {:#x})", start.saturating_add(size))
}

/// Whether `[a, a + asize)` and `[b, b + bsize)` share a byte (empty ranges share nothing).
pub fn overlaps(a: u64, asize: u64, b: u64, bsize: u64) -> bool {
    asize > 0 && bsize > 0 && a < b.saturating_add(bsize) && b < a.saturating_add(asize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("16K"), Ok(16 << 10));
        assert_eq!(parse_size("16KiB"), Ok(16 << 10));
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4096B"), Ok(4096));
        assert_eq!(parse_size("0x4000"), Ok(0x4000));
        assert_eq!(parse_size("1_024K"), Ok(1 << 20));
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("-1M").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn prints_units() {
        assert_eq!(fmt_size(256 << 20), "256M");
        assert_eq!(fmt_size(3840 << 20), "3840M");
        assert_eq!(fmt_size(16 << 10), "16K");
        assert_eq!(fmt_size(1 << 30), "1G");
        assert_eq!(fmt_size(0x1800), "6K");
        assert_eq!(fmt_size(100), "0x64");
        assert_eq!(fmt_range(0x1000, 0x1000), "[0x1000, 0x2000)");
    }

    #[test]
    fn range_relations() {
        assert!(overlaps(0, 10, 9, 1));
        assert!(!overlaps(0, 10, 10, 1));
        assert!(!overlaps(0, 0, 0, 10));
    }
}
