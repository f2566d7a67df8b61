//! Dirty logging and aging of a whole guest, as a manager asks for them: over the guest's memory
//! regions (in its board-file order), with harvests reported in 4 KiB pages so the answer does not
//! depend on the table's base page (with 16 KiB pages one page sets four bits). Built on the
//! table's own operations (`split`, `clear_dirty`, `test_age`, `age`), in shared mode, so the
//! guest keeps running while it is harvested; every change is committed through the table's
//! flush, which the image makes a shootdown, before the harvest returns.

use crate::addr::{Gfn, GpaRange};
use crate::bitmap::GfnBitmap;
use crate::flush::{Flush, FlushBatch, TlbFlush};
use crate::format::PteFormat;
use crate::frame::FrameAllocator;
use crate::mirror::MirrorHook;
use crate::table::StageTwoTable;
use crate::Error;

/// The unit of harvest bitmaps and young counts.
pub const HARVEST_PAGE: u64 = 4096;

/// Why a harvest could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HarvestError {
    /// The output has fewer bits than the regions have 4 KiB pages.
    TooSmall,
    /// The table refused an operation (a region outside it, say).
    Table(Error),
}

impl From<Error> for HarvestError {
    fn from(e: Error) -> Self {
        Self::Table(e)
    }
}

/// 4 KiB pages in `regions`, the bits a harvest needs.
pub fn harvest_bits(regions: &[GpaRange]) -> u64 {
    regions.iter().map(|r| r.len() / HARVEST_PAGE).sum()
}

/// The whole-guest operations: the bounds are the table's, once.
impl<F: PteFormat, A: FrameAllocator, T: TlbFlush, M: MirrorHook> StageTwoTable<F, A, T, M> {
    /// A log of `range` in base pages.
    fn log_for(range: &GpaRange) -> GfnBitmap {
        GfnBitmap::new(
            Gfn::of(range.start, F::PAGE_SHIFT),
            range.len() >> F::PAGE_SHIFT,
        )
    }

    /// Splits every huge leaf in `regions` to base pages, so tracking is per page.
    pub fn split_to_base(&self, regions: &[GpaRange]) -> Result<(), Error> {
        let mut batch = FlushBatch::new();
        for r in regions {
            self.split(*r, 0, &mut batch)?;
        }
        let _ = self.commit(batch);
        Ok(())
    }

    /// Starts dirty logging: base pages, every page cleaned, so only writes from now on count.
    pub fn start_dirty_log(&self, regions: &[GpaRange]) -> Result<(), Error> {
        self.split_to_base(regions)?;
        let mut batch = FlushBatch::new();
        for r in regions {
            let mut scratch = Self::log_for(r);
            self.clear_dirty(*r, &mut scratch, &mut batch)?;
        }
        let _ = self.commit(batch);
        Ok(())
    }

    /// The pages written since the last harvest (or the start), cleaned again: bit n of `out` is
    /// 4 KiB page n of the regions concatenated. Returns how many bits are set; `out` is written
    /// only after the flush that makes the cleaning count has reached every CPU.
    pub fn harvest_dirty_log(
        &self,
        regions: &[GpaRange],
        out: &mut [u8],
    ) -> Result<u64, HarvestError> {
        if (out.len() as u64) * 8 < harvest_bits(regions) {
            return Err(HarvestError::TooSmall);
        }
        let per_page = self.page_size() / HARVEST_PAGE;
        let mut bits = alloc::vec![0u8; out.len()];
        let mut set = 0u64;
        let mut base = 0u64;
        let mut batch = FlushBatch::new();
        for r in regions {
            let mut log = Self::log_for(r);
            self.clear_dirty(*r, &mut log, &mut batch)?;
            let first = log.base().0;
            for i in (0..log.len()).filter(|&i| log.get(Gfn(first + i))) {
                for k in 0..per_page {
                    let bit = base + i * per_page + k;
                    bits[(bit / 8) as usize] |= 1 << (bit % 8);
                    set += 1;
                }
            }
            base += r.len() / HARVEST_PAGE;
        }
        let _ = self.commit(batch);
        out.copy_from_slice(&bits);
        Ok(set)
    }

    /// Makes every page of `regions` old and drops the table's cached translations everywhere (on
    /// LoongArch a cached valid entry would keep serving accesses without the fault that marks the
    /// page young); returns how many 4 KiB pages were young.
    pub fn age_all(&self, regions: &[GpaRange]) -> u64 {
        let mut young = 0;
        for r in regions {
            if !self.test_age(*r).unwrap_or(true) {
                continue;
            }
            let mut log = Self::log_for(r);
            young += self.age(*r, &mut log).unwrap_or(0);
        }
        self.tlb().flush(Flush::All);
        young * (self.page_size() / HARVEST_PAGE)
    }
}
