//! The span of guest addresses one table operation changed, kept as a single `[lo, hi)` so the
//! operation queues one range flush at its end instead of one per entry it touched.

use crate::addr::Gpa;
use crate::flush::FlushBatch;

pub(crate) struct Touched {
    lo: u64,
    hi: u64,
}

impl Touched {
    pub(crate) const fn none() -> Self {
        Self {
            lo: u64::MAX,
            hi: 0,
        }
    }

    #[inline(always)]
    pub(crate) fn add(&mut self, start: u64, end: u64) {
        self.lo = self.lo.min(start);
        self.hi = self.hi.max(end);
    }

    /// Queues the span in `batch`, if anything was touched.
    pub(crate) fn flush_into(&self, batch: &mut FlushBatch) {
        if self.lo < self.hi {
            batch.add_range(Gpa(self.lo), Gpa(self.hi));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_the_hull_of_what_was_added_or_nothing() {
        let mut b = FlushBatch::new();
        Touched::none().flush_into(&mut b);
        assert!(b.is_empty());
        let mut t = Touched::none();
        t.add(0x5000, 0x6000);
        t.add(0x1000, 0x2000);
        t.flush_into(&mut b);
        assert_eq!(
            b.pending(),
            crate::flush::Flush::range(Gpa(0x1000), Gpa(0x6000))
        );
        let _ = b.take();
    }
}
