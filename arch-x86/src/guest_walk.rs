//! A guest's own page walk: the guest-physical address behind a linear address, under the
//! 4-level long-mode tables at the guest's CR3 (partitions run in 64-bit mode), read through
//! whatever gives the hypervisor the partition's memory. The MMIO decode fetches the faulting
//! instruction with it (`mmio_exit`).

/// A partition's memory as the hypervisor reads it, by guest-physical address.
pub trait GuestMemory {
    /// Copies `[gpa, gpa + buf.len())` into `buf`; false (and `buf` untouched) if the partition
    /// has no memory there.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> bool;
}

/// Physical address bits of a page-table entry and of CR3.
const ADDR: u64 = 0x000f_ffff_ffff_f000;
const PRESENT: u64 = 1;
/// PS: the entry maps a 1 GiB (level 2) or 2 MiB (level 1) page.
const HUGE: u64 = 1 << 7;

/// The guest-physical address of linear address `va` under the tables at `cr3`, or `None` if
/// an entry on the way is not present or not in the partition's memory.
pub fn linear_to_gpa(mem: &impl GuestMemory, cr3: u64, va: u64) -> Option<u64> {
    let mut table = cr3 & ADDR;
    for level in (0..4u32).rev() {
        let shift = 12 + 9 * level;
        let index = (va >> shift) & 0x1ff;
        let mut entry = [0u8; 8];
        if !mem.read(table + index * 8, &mut entry) {
            return None;
        }
        let e = u64::from_le_bytes(entry);
        if e & PRESENT == 0 {
            return None;
        }
        if (level == 1 || level == 2) && e & HUGE != 0 {
            let page = 1u64 << shift;
            return Some((e & ADDR & !(page - 1)) | (va & (page - 1)));
        }
        table = e & ADDR;
    }
    Some(table | (va & 0xfff))
}

#[cfg(test)]
pub(crate) mod tests {
    extern crate std;

    use super::*;
    use std::collections::BTreeMap;

    /// Guest memory as sparse 4 KiB pages, with a builder for its page tables.
    #[derive(Default)]
    pub struct Pages {
        pages: BTreeMap<u64, [u8; 4096]>,
        /// The top-level table (CR3's address).
        root: u64,
        /// The next free page for tables.
        next_table: u64,
    }

    impl GuestMemory for Pages {
        fn read(&self, gpa: u64, buf: &mut [u8]) -> bool {
            let mut out = std::vec::Vec::with_capacity(buf.len());
            for a in gpa..gpa + buf.len() as u64 {
                match self.pages.get(&(a & !0xfff)) {
                    Some(p) => out.push(p[(a & 0xfff) as usize]),
                    None => return false,
                }
            }
            buf.copy_from_slice(&out);
            true
        }
    }

    impl Pages {
        /// Tables from guest-physical `tables` on; the root (CR3) is the first page.
        pub fn new(tables: u64) -> Self {
            let mut p = Self {
                pages: BTreeMap::new(),
                root: tables,
                next_table: tables,
            };
            p.new_table();
            p
        }

        fn new_table(&mut self) -> u64 {
            let at = self.next_table;
            self.next_table += 0x1000;
            self.pages.insert(at, [0; 4096]);
            at
        }

        pub fn write(&mut self, gpa: u64, bytes: &[u8]) {
            for (i, b) in bytes.iter().enumerate() {
                let a = gpa + i as u64;
                self.pages.entry(a & !0xfff).or_insert([0; 4096])[(a & 0xfff) as usize] = *b;
            }
        }

        fn entry(&self, gpa: u64) -> u64 {
            let mut e = [0u8; 8];
            assert!(self.read(gpa, &mut e));
            u64::from_le_bytes(e)
        }

        /// Maps linear `va` to `gpa` with a page of level `leaf` (0: 4 KiB, 1: 2 MiB, 2: 1 GiB).
        pub fn map(&mut self, va: u64, gpa: u64, leaf: u32) {
            let mut table = self.root;
            for level in (leaf..4).rev() {
                let slot = table + ((va >> (12 + 9 * level)) & 0x1ff) * 8;
                if level == leaf {
                    let huge = if leaf > 0 { HUGE } else { 0 };
                    self.write(slot, &(gpa | PRESENT | huge | 2).to_le_bytes());
                    return;
                }
                let e = self.entry(slot);
                table = if e & PRESENT != 0 {
                    e & ADDR
                } else {
                    let t = self.new_table();
                    self.write(slot, &(t | PRESENT | 2).to_le_bytes());
                    t
                };
            }
        }

        pub fn root(&self) -> u64 {
            self.root
        }
    }

    const TABLES: u64 = 0x10_0000;

    #[test]
    fn each_page_size_translates_with_its_offset() {
        let mut m = Pages::new(TABLES);
        m.map(0xffff_8000_0000_1000, 0x4000, 0);
        m.map(0x4060_0000, 0x80_0000, 1);
        m.map(0x8000_0000, 0x4000_0000, 2);
        let cr3 = m.root() | 0x18; // PCD/PWT bits are not address bits
        assert_eq!(linear_to_gpa(&m, cr3, 0xffff_8000_0000_1abc), Some(0x4abc));
        assert_eq!(
            linear_to_gpa(&m, cr3, 0x4060_0000 + 0x12_3456),
            Some(0x92_3456)
        );
        assert_eq!(
            linear_to_gpa(&m, cr3, 0x8000_0000 + 0x1234_5678),
            Some(0x5234_5678)
        );
    }

    #[test]
    fn a_missing_entry_or_table_stops_the_walk() {
        let mut m = Pages::new(TABLES);
        m.map(0x40_0000, 0x4000, 0);
        let cr3 = m.root();
        // The next page's PTE is zero; another 2 MiB region has no page table at all.
        assert_eq!(linear_to_gpa(&m, cr3, 0x40_1000), None);
        assert_eq!(linear_to_gpa(&m, cr3, 0x80_0000), None);
        // A PDE pointing outside the partition's memory.
        let pde = m.entry(m.root()) & ADDR;
        let pd = m.entry(pde) & ADDR;
        m.write(pd + 8 * 3, &(0xdead_0000u64 | PRESENT).to_le_bytes());
        assert_eq!(linear_to_gpa(&m, cr3, 0x60_0000), None);
    }
}
