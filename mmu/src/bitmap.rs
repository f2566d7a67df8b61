//! `GfnBitmap`: one bit per guest frame over a window, the harvest target of dirty logging and
//! aging.
//!
//! A huge leaf that is dirty stands for all of its frames; it is reported whole, so a 2 MiB page
//! written once shows up as 512 dirty 4 KiB frames. The table cleans a huge leaf only when the whole
//! leaf fits in the bitmap's window, so no dirty frame is ever cleaned without being reported.

use alloc::vec;
use alloc::vec::Vec;

use crate::addr::Gfn;

/// A bitmap of guest frames `[base, base + len)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GfnBitmap {
    base: u64,
    len: u64,
    words: Vec<u64>,
}

impl GfnBitmap {
    /// An empty bitmap for frames `[base, base + len)`.
    pub fn new(base: Gfn, len: u64) -> Self {
        let words = usize::try_from(len.div_ceil(64)).expect("bitmap fits in memory");
        Self {
            base: base.0,
            len,
            words: vec![0; words],
        }
    }

    /// First frame covered.
    pub fn base(&self) -> Gfn {
        Gfn(self.base)
    }

    /// Number of frames covered.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `[first, first + n)` lies inside the window.
    #[inline]
    pub fn covers(&self, first: u64, n: u64) -> bool {
        first >= self.base && first - self.base <= self.len && n <= self.len - (first - self.base)
    }

    /// Set the bit of `gfn` (ignored outside the window).
    #[inline]
    pub fn set(&mut self, gfn: Gfn) {
        self.set_range(gfn.0, 1);
    }

    /// Whether `gfn` is set.
    pub fn get(&self, gfn: Gfn) -> bool {
        if gfn.0 < self.base || gfn.0 - self.base >= self.len {
            return false;
        }
        let i = gfn.0 - self.base;
        self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// Set the bits of `[first, first + n)` that lie inside the window.
    pub fn set_range(&mut self, first: u64, n: u64) {
        let lo = first.max(self.base);
        let hi = first.saturating_add(n).min(self.base + self.len);
        if lo >= hi {
            return;
        }
        let (mut i, end) = (lo - self.base, hi - self.base);
        while i < end {
            let bit = i % 64;
            let take = (64 - bit).min(end - i);
            let mask = if take == 64 {
                u64::MAX
            } else {
                ((1u64 << take) - 1) << bit
            };
            self.words[(i / 64) as usize] |= mask;
            i += take;
        }
    }

    /// OR a 64-bit word of frames starting at `first` (which must be 64-aligned relative to
    /// `base` and inside the window); the fast path for level-0 scans.
    #[inline]
    pub(crate) fn or_word(&mut self, first: u64, bits: u64) {
        let i = first - self.base;
        if i.is_multiple_of(64) && i + 64 <= self.len {
            self.words[(i / 64) as usize] |= bits;
        } else {
            let mut b = bits;
            while b != 0 {
                let t = b.trailing_zeros() as u64;
                self.set_range(first + t, 1);
                b &= b - 1;
            }
        }
    }

    /// Number of set bits.
    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// The set frames, ascending.
    pub fn iter(&self) -> impl Iterator<Item = Gfn> + '_ {
        self.words.iter().enumerate().flat_map(move |(wi, &w)| {
            let base = self.base + wi as u64 * 64;
            let mut bits = w;
            core::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let t = bits.trailing_zeros() as u64;
                bits &= bits - 1;
                Some(Gfn(base + t))
            })
        })
    }

    /// Clear every bit.
    pub fn clear(&mut self) {
        self.words.iter_mut().for_each(|w| *w = 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_words() {
        let mut b = GfnBitmap::new(Gfn(100), 200);
        b.set_range(90, 20);
        assert_eq!(b.count(), 10);
        assert!(b.get(Gfn(100)) && b.get(Gfn(109)) && !b.get(Gfn(110)));
        b.or_word(164, 0b101);
        assert!(b.get(Gfn(164)) && b.get(Gfn(166)));
        b.or_word(290, u64::MAX);
        assert!(b.get(Gfn(299)) && !b.get(Gfn(300)));
        assert_eq!(b.iter().next(), Some(Gfn(100)));
        assert!(b.covers(100, 200) && !b.covers(100, 201) && !b.covers(99, 1));
    }
}
