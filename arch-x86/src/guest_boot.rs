//! The 64-bit start both x86 backends give a partition's vCPU: identity page tables in the
//! partition's own memory at [`GUEST_PML4`] (the test guests' runtime,
//! `platform/guests/src/rt/x86_64.rs`, expects exactly these, and no real-mode or mode-switch
//! code has to run under Bochs) and the selectors of the hypervisor's GDT layout. The VMX start
//! (`vmx::start`) and the SVM start (`svm::start`) both build on this, so the two cannot drift.

/// Guest-physical address of the guest's PML4; its PDPT follows in the next page. Both lie in
/// the low 1 MiB of a partition's first region, below any image (loaded at 1 MiB or above).
pub const GUEST_PML4: u64 = 0x1000;
/// The guest's page tables map `[0, 4 GiB)` with four 1 GiB pages: all memory and devices a
/// partition can be given; anything else it touches is a page fault, hence a triple fault.
pub const GUEST_MAPPED_GIB: u64 = 4;
/// The size of one page-table page.
pub const TABLE_BYTES: usize = 4096;

/// Present, writable, user (so the guest may run ring 3 on them if it wants), accessed and dirty
/// already set, so the CPU has no reason to write these pages back (which would make them look
/// written to dirty logging).
const TABLE: u64 = 0x1 | 0x2 | 0x4 | 0x20;
/// A 1 GiB leaf: [`TABLE`] plus dirty and page size.
const HUGE: u64 = TABLE | 0x40 | 0x80;

/// The selectors of the 64-bit start state: the guest shares the hypervisor's GDT layout, so
/// the values it reads back are the ones a kernel on this machine would have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selectors {
    /// CS.
    pub code: u16,
    /// ES, SS, DS, FS and GS.
    pub data: u16,
    /// TR.
    pub tss: u16,
}

/// Fills the two pages of the guest's boot page tables, given as the host bytes behind
/// [`GUEST_PML4`] and the page after it: a PML4 with one entry, and a PDPT mapping
/// [`GUEST_MAPPED_GIB`] GiB identity with 1 GiB pages (two table pages, so the guest's own page
/// walks touch as few pages as possible when it is aged).
pub fn write_page_tables(pml4: &mut [u8; TABLE_BYTES], pdpt: &mut [u8; TABLE_BYTES]) {
    pml4.fill(0);
    pdpt.fill(0);
    pml4[..8].copy_from_slice(&((GUEST_PML4 + TABLE_BYTES as u64) | TABLE).to_le_bytes());
    for gib in 0..GUEST_MAPPED_GIB {
        let at = gib as usize * 8;
        pdpt[at..at + 8].copy_from_slice(&((gib << 30) | HUGE).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(page: &[u8; TABLE_BYTES], index: usize) -> u64 {
        u64::from_le_bytes(page[index * 8..index * 8 + 8].try_into().unwrap())
    }

    #[test]
    fn the_boot_tables_map_4_gib_identity_and_nothing_else() {
        let (mut pml4, mut pdpt) = ([0xaa; TABLE_BYTES], [0x55; TABLE_BYTES]);
        write_page_tables(&mut pml4, &mut pdpt);
        assert_eq!(entry(&pml4, 0), 0x2027, "PDPT at 0x2000: P, RW, US, A");
        assert!((1..512).all(|i| entry(&pml4, i) == 0));
        for gib in 0..4 {
            assert_eq!(
                entry(&pdpt, gib),
                (gib as u64) << 30 | 0xe7,
                "1 GiB page, A and D set"
            );
        }
        assert!((4..512).all(|i| entry(&pdpt, i) == 0));
    }
}
