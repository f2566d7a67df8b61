//! An audit of a finished table against the windows it was built from: every present leaf must
//! map guest `[gpa, gpa + size)` to host `[hpa, hpa + size)` inside one window, at that window's
//! own offset. The hypervisor runs it after its partitions end (the self-check of issue 13), so
//! a hypercall or a fault fix that ever installed a leaf pointing elsewhere, into the hypervisor
//! or a neighbour, shows up as a leaf outside.

/// One range a table may map: guest `[guest, guest + size)` to host `[host, host + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First guest-physical address.
    pub guest: u64,
    /// Host-physical address of `guest`.
    pub host: u64,
    /// Bytes.
    pub size: u64,
}

/// Whether the leaf mapping `[gpa, gpa + size)` to `[hpa, hpa + size)` lies inside one of
/// `windows`, at that window's offset. A leaf that would wrap the address space never does.
pub fn leaf_within(gpa: u64, hpa: u64, size: u64, windows: &[Window]) -> bool {
    windows.iter().any(|w| {
        let Some(off) = gpa.checked_sub(w.guest) else {
            return false;
        };
        let fits = off.checked_add(size).is_some_and(|end| end <= w.size);
        // The host range may end at 2^64 exactly (half-open), never past it.
        let host_fits = size
            .checked_sub(1)
            .is_some_and(|last| hpa.checked_add(last).is_some());
        fits && w.host.checked_add(off) == Some(hpa) && host_fits
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: [Window; 2] = [
        Window {
            guest: 0,
            host: 0x400_0000,
            size: 0x200_0000,
        },
        Window {
            guest: 0x4000_0000,
            host: 0x8000_0000,
            size: 0x1000_0000,
        },
    ];

    #[test]
    fn leaves_inside_their_window_at_its_offset() {
        assert!(leaf_within(0, 0x400_0000, 0x20_0000, &W));
        assert!(leaf_within(0x1ff_f000, 0x5ff_f000, 0x1000, &W));
        assert!(leaf_within(0x4000_0000, 0x8000_0000, 0x1000_0000, &W));
    }

    #[test]
    fn leaves_elsewhere_are_outside() {
        // Right guest range, wrong host offset (another window's host, or shifted).
        assert!(!leaf_within(0, 0x8000_0000, 0x1000, &W));
        assert!(!leaf_within(0x1000, 0x400_0000, 0x1000, &W));
        // Running past the end of its window.
        assert!(!leaf_within(0x1ff_f000, 0x5ff_f000, 0x2000, &W));
        // A guest address no window has.
        assert!(!leaf_within(0x300_0000, 0x700_0000, 0x1000, &W));
        // Wrapping.
        assert!(!leaf_within(u64::MAX - 0xfff, 0, 0x1000, &W));
        let top = [Window {
            guest: u64::MAX - 0xfff,
            host: u64::MAX - 0xfff,
            size: 0x1000,
        }];
        assert!(leaf_within(
            u64::MAX - 0xfff,
            u64::MAX - 0xfff,
            0x1000,
            &top
        ));
        assert!(!leaf_within(
            u64::MAX - 0xfff,
            u64::MAX - 0xfff,
            0x2000,
            &top
        ));
        assert!(!leaf_within(0, 0, 0x1000, &[]));
        assert!(
            !leaf_within(0, 0x400_0000, 0, &W),
            "a leaf of no size is no leaf"
        );
    }
}
