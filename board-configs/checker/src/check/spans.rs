//! Overlap finding in O(n log n). A board file may list thousands of regions, ranges or windows,
//! and comparing every pair made a 20,000-region file take 20 s; here each set is sorted once and
//! swept, and each span that meets another is reported against one witness, so both the time and
//! the number of messages grow with the input, never with its square.

/// A half-open range `[start, end)` carrying the caller's tag (an index into its own list).
#[derive(Clone, Copy, Debug)]
pub struct Span<T> {
    pub start: u64,
    pub end: u64,
    pub tag: T,
}

impl<T> Span<T> {
    /// `[start, start + size)`; an end past 2^64 saturates, as such ranges are reported elsewhere.
    pub fn new(start: u64, size: u64, tag: T) -> Self {
        Span {
            start,
            end: start.saturating_add(size),
            tag,
        }
    }
}

/// Every span that overlaps a span before it in address order, as `(witness, span)`: the witness
/// is the earlier span reaching furthest, which overlaps the span whenever any earlier one does.
/// Empty spans overlap nothing.
pub fn overlaps_within<T: Copy>(spans: &[Span<T>]) -> Vec<(T, T)> {
    let mut sorted: Vec<&Span<T>> = spans.iter().filter(|s| s.end > s.start).collect();
    sorted.sort_by_key(|s| (s.start, s.end));
    let mut out = Vec::new();
    let mut witness: Option<&Span<T>> = None;
    for s in sorted {
        match witness {
            Some(w) if w.end > s.start => {
                out.push((w.tag, s.tag));
                if s.end > w.end {
                    witness = Some(s);
                }
            }
            _ => witness = Some(s),
        }
    }
    out
}

/// A set of spans sorted for "does this range meet any of them" queries.
pub struct Index<T> {
    /// Non-empty spans by start.
    spans: Vec<Span<T>>,
    /// `reach[i]`: the position among `spans[..=i]` of the one that ends last.
    reach: Vec<usize>,
}

impl<T: Copy> Index<T> {
    pub fn new(spans: impl IntoIterator<Item = Span<T>>) -> Self {
        let mut spans: Vec<Span<T>> = spans.into_iter().filter(|s| s.end > s.start).collect();
        spans.sort_by_key(|s| (s.start, s.end));
        let mut reach: Vec<usize> = Vec::with_capacity(spans.len());
        for (i, s) in spans.iter().enumerate() {
            let best = match reach.last() {
                Some(&b) if spans[b].end >= s.end => b,
                _ => i,
            };
            reach.push(best);
        }
        Index { spans, reach }
    }

    /// One span of the set that overlaps `[start, end)`, if any does.
    pub fn hit(&self, start: u64, end: u64) -> Option<&Span<T>> {
        if end <= start {
            return None;
        }
        // Spans starting before `end`; of those the one reaching furthest decides.
        let n = self.spans.partition_point(|s| s.start < end);
        let best = &self.spans[*self.reach.get(n.checked_sub(1)?)?];
        (best.end > start).then_some(best)
    }

    /// Whether `[start, end)` lies inside one span of the set (spans that touch are not merged).
    pub fn covers(&self, start: u64, end: u64) -> bool {
        let n = self.spans.partition_point(|s| s.start <= start);
        n > 0 && self.spans[self.reach[n - 1]].end >= end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(spans: &[Span<usize>]) -> Vec<usize> {
        let mut v: Vec<usize> = spans
            .iter()
            .filter(|s| {
                spans.iter().any(|o| {
                    o.tag != s.tag
                        && o.start < s.end
                        && s.start < o.end
                        && (o.start, o.end, o.tag) < (s.start, s.end, s.tag)
                })
            })
            .map(|s| s.tag)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn sweep_reports_each_overlapping_span_once() {
        let spans: Vec<Span<usize>> = [(0, 10), (5, 3), (20, 5), (24, 1), (30, 0), (9, 20)]
            .iter()
            .enumerate()
            .map(|(i, &(s, n))| Span::new(s, n, i))
            .collect();
        let mut got: Vec<usize> = overlaps_within(&spans).iter().map(|p| p.1).collect();
        got.sort();
        assert_eq!(got, naive(&spans));
        for (w, s) in overlaps_within(&spans) {
            let (w, s) = (&spans[w], &spans[s]);
            assert!(w.start < s.end && s.start < w.end);
        }
    }

    #[test]
    fn index_finds_a_witness() {
        let idx = Index::new([
            Span::new(0, 100, 0),
            Span::new(10, 5, 1),
            Span::new(200, 8, 2),
        ]);
        assert_eq!(idx.hit(50, 60).map(|s| s.tag), Some(0));
        assert_eq!(idx.hit(100, 200).map(|s| s.tag), None);
        assert_eq!(idx.hit(207, 300).map(|s| s.tag), Some(2));
        assert!(idx.covers(0, 100) && idx.covers(200, 208));
        assert!(!idx.covers(99, 101) && !idx.covers(150, 151));
        assert_eq!(idx.hit(u64::MAX - 1, u64::MAX).map(|s| s.tag), None);
    }
}
