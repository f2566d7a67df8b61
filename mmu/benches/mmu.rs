//! Host benchmark of the stage-2 engine: per operation and format, ns per entry, ms per GiB of
//! guest memory and the number of flushes, each compared with two floors measured in the same run
//! (a plain scan and one atomic read-modify-write per 8-byte entry, over as many entries), and
//! map_range compared with two other Rust page-table crates.
//!
//! `cargo bench -p mmu` runs 1 and 16 GiB; `cargo bench -p mmu -- --short` (or
//! `SEPTUM_BENCH_SHORT=1`) runs 64 and 256 MiB and finishes in seconds.

use std::alloc::Layout;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use mmu::{
    Access, Ept, FastFix, Flush, FlushBatch, Gfn, GfnBitmap, Gpa, GpaRange, HeapFrameAllocator,
    Hpa, HugePolicy, LeafAttrs, LoongArch16K, Npt, Perms, PteFormat, StageTwoTable, TlbFlush,
    UnmapMode,
};

const GIB: u64 = 1 << 30;

#[derive(Default)]
struct CountingTlb(AtomicU64);

impl TlbFlush for CountingTlb {
    fn flush(&self, _what: Flush) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

type Table<F> = StageTwoTable<F, HeapFrameAllocator, CountingTlb>;

/// The two floors for `n` entries, in ns per entry: best of a few runs.
struct Floors {
    scan: f64,
    atomic: f64,
}

fn floors(n: usize) -> Floors {
    let v: Vec<AtomicU64> = (0..n as u64).map(|i| AtomicU64::new(i | 1)).collect();
    let mut scan = f64::MAX;
    let mut atomic = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let mut acc = 0u64;
        for e in &v {
            let x = e.load(Ordering::Relaxed);
            if x & 0x100 != 0 {
                acc = acc.wrapping_add(x);
            }
        }
        black_box(acc);
        scan = scan.min(t.elapsed().as_nanos() as f64 / n as f64);
        let t = Instant::now();
        for e in &v {
            e.fetch_and(!0x100, Ordering::AcqRel);
        }
        atomic = atomic.min(t.elapsed().as_nanos() as f64 / n as f64);
    }
    Floors { scan, atomic }
}

struct Row {
    op: String,
    format: &'static str,
    size: u64,
    entries: u64,
    ns: f64,
    flushes: u64,
    floor: Option<(&'static str, f64)>,
    peer: Option<String>,
}

fn print_header() {
    println!(
        "{:<28} {:<7} {:>7} {:>10} {:>9} {:>10} {:>7} {:>16} {:>22}",
        "operation",
        "format",
        "guest",
        "entries",
        "ns/entry",
        "ms/GiB",
        "flushes",
        "vs floor",
        "vs peer"
    );
}

fn print_row(r: &Row) {
    let per_entry = r.ns / r.entries as f64;
    let ms_gib = r.ns / 1e6 / (r.size as f64 / GIB as f64);
    let floor = r.floor.map_or(String::from("-"), |(name, f)| {
        format!("{:.2}x {}", per_entry / f, name)
    });
    println!(
        "{:<28} {:<7} {:>6}M {:>10} {:>9.2} {:>10.3} {:>7} {:>16} {:>22}",
        r.op,
        r.format,
        r.size >> 20,
        r.entries,
        per_entry,
        ms_gib,
        r.flushes,
        floor,
        r.peer.as_deref().unwrap_or("-")
    );
}

fn timed<R>(f: impl FnOnce() -> R) -> (R, f64) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed().as_nanos() as f64)
}

fn new_table<F: PteFormat + Default>() -> Table<F> {
    StageTwoTable::new(
        F::default(),
        HeapFrameAllocator::new(),
        CountingTlb::default(),
    )
    .unwrap()
}

fn flushes<F: PteFormat>(t: &Table<F>) -> u64 {
    t.tlb().0.load(Ordering::Relaxed)
}

const HPA_BASE: u64 = 1 << 40;

/// Map `size` bytes at GPA 0 with `policy` into a fresh table and commit, best of `reps()` runs
/// (the first run also pays for the host faulting in fresh heap pages); returns (table, ns,
/// flushes of one run).
fn map<F: PteFormat + Default>(
    size: u64,
    policy: HugePolicy,
    attrs: LeafAttrs,
) -> (Table<F>, f64, u64) {
    let range = GpaRange::from_len(Gpa(0), size).unwrap();
    let mut best = f64::MAX;
    let mut last = None;
    for _ in 0..reps() {
        drop(last.take());
        let t = new_table::<F>();
        let (_, ns) = timed(|| {
            let mut b = FlushBatch::new();
            t.map_range(range, Hpa(HPA_BASE), attrs, policy, &mut b)
                .unwrap();
            let _ = t.commit(b);
        });
        best = best.min(ns);
        last = Some(t);
    }
    let t = last.unwrap();
    let f = flushes(&t);
    (t, best, f)
}

fn reps() -> usize {
    3
}

fn best_of(f: impl Fn() -> f64) -> f64 {
    (0..reps()).map(|_| f()).fold(f64::MAX, f64::min)
}

/// Run `op` (which commits its own batch) and return (ns, flushes it issued).
fn measure<F: PteFormat>(t: &mut Table<F>, op: impl FnOnce(&mut Table<F>)) -> (f64, u64) {
    let f0 = flushes(t);
    let (_, ns) = timed(|| op(t));
    (ns, flushes(t) - f0)
}

struct Peers {
    ptm_4k: f64,
    ptm_huge: f64,
    x86_4k: f64,
    x86_huge: f64,
}

fn bench_format<F: PteFormat + Default>(
    size: u64,
    fl: &Floors,
    peers: Option<&Peers>,
    rows: &mut Vec<Row>,
) {
    let page = 1u64 << F::PAGE_SHIFT;
    let n = size / page;
    let range = GpaRange::from_len(Gpa(0), size).unwrap();
    let mut row = |op: &str,
                   entries: u64,
                   ns: f64,
                   flushes: u64,
                   floor: Option<(&'static str, f64)>,
                   peer: Option<String>| {
        rows.push(Row {
            op: op.into(),
            format: F::NAME,
            size,
            entries,
            ns,
            flushes,
            floor,
            peer,
        });
    };
    let scan = Some(("scan", fl.scan));
    let atomic = Some(("atomic", fl.atomic));
    let clean = LeafAttrs::ram(Perms::RWX);

    // map_range, base pages and huge pages.
    let (mut t, ns, f) = map::<F>(size, HugePolicy::BASE_PAGES, clean);
    let peer = peers.map(|p| format!("{:.2}x ptm {:.2}x x86_64", ns / p.ptm_4k, ns / p.x86_4k));
    row("map_range base pages", n, ns, f, scan, peer);
    let (th, ns_h, f_h) = map::<F>(size, HugePolicy::LARGEST, clean);
    let peer = peers.map(|p| {
        format!(
            "{:.2}x ptm {:.2}x x86_64",
            ns_h / p.ptm_huge,
            ns_h / p.x86_huge
        )
    });
    let leaves: u64 = th.stats().leaves.iter().sum();
    row("map_range huge pages", leaves, ns_h, f_h, None, peer);
    drop(th);

    // Aging: everything young, then nothing young.
    let mut log = GfnBitmap::new(Gfn(0), n);
    let (ns, f) = measure(&mut t, |t| {
        t.age(range, &mut log).unwrap();
    });
    row("age, all young", n, ns, f, atomic, None);
    log.clear();
    let (ns, f) = measure(&mut t, |t| {
        t.age(range, &mut log).unwrap();
    });
    row("age, none young", n, ns, f, scan, None);
    let (ns, f) = measure(&mut t, |t| {
        black_box(t.test_age(range).unwrap());
    });
    row("test_age, none young", n, ns, f, scan, None);

    // clear_dirty at 0%, 1%, 100%.
    for (label, every) in [
        ("clear_dirty, 0% dirty", 0u64),
        ("clear_dirty, 1% dirty", 100),
        ("clear_dirty, 100% dirty", 1),
    ] {
        if every > 0 {
            for g in (0..n).step_by(every as usize) {
                let _ = t.fast_fix(Gpa(g * page), Access::Write);
            }
        }
        log.clear();
        let (ns, f) = measure(&mut t, |t| {
            let mut b = FlushBatch::new();
            t.clear_dirty(range, &mut log, &mut b).unwrap();
            let _ = t.commit(b);
        });
        row(
            label,
            n,
            ns,
            f,
            if every == 1 { atomic } else { scan },
            None,
        );
    }
    let (ns, f) = measure(&mut t, |t| {
        let mut b = FlushBatch::new();
        let mut d = 0;
        for w in 0..(n / 64).min(1 << 14) {
            d += t
                .clear_dirty_masked(Gfn(w * 64), u64::MAX, &mut log, &mut b)
                .unwrap();
        }
        black_box(d);
        let _ = t.commit(b);
    });
    row(
        "clear_dirty_masked x64",
        (n / 64).min(1 << 14) * 64,
        ns,
        f,
        scan,
        None,
    );

    // fast_fix on old pages (one walk and one compare-and-swap each).
    let mut log2 = GfnBitmap::new(Gfn(0), n);
    t.age(range, &mut log2).unwrap();
    let calls = n.min(1 << 20);
    let (ns, f) = measure(&mut t, |t| {
        for g in 0..calls {
            match t.fast_fix(Gpa(g * page), Access::Read) {
                FastFix::Fixed { flush, .. } | FastFix::Spurious { flush } => {
                    let _ = black_box(flush);
                }
                other => panic!("{other:?}"),
            }
        }
    });
    row("fast_fix (young)", calls, ns, f, atomic, None);

    // write_protect.
    let (ns, f) = measure(&mut t, |t| {
        let mut b = FlushBatch::new();
        t.write_protect(range, &mut b).unwrap();
        let _ = t.commit(b);
    });
    row("write_protect", n, ns, f, atomic, None);

    // unmap, freeing tables.
    let (ns, f) = measure(&mut t, |t| {
        let mut b = FlushBatch::new();
        t.unmap(range, UnmapMode::FreeTables, &mut b, None).unwrap();
        let _ = t.commit(b);
    });
    row("unmap + free tables", n, ns, f, atomic, None);
    drop(t);

    // split huge -> base pages.
    let (mut t, _, _) = map::<F>(size, HugePolicy::LARGEST, clean);
    let (ns, f) = measure(&mut t, |t| {
        let mut b = FlushBatch::new();
        t.split(range, 0, &mut b).unwrap();
        let _ = t.commit(b);
    });
    let label = if F::MAX_LEAF_LEVEL == 2 {
        "split 1G -> 4K"
    } else {
        "split huge -> base"
    };
    row(label, n, ns, f, atomic, None);
    drop(t);

    // collapse base -> first huge level.
    let (mut t, _, _) = map::<F>(size, HugePolicy::BASE_PAGES, clean);
    let (ns, f) = measure(&mut t, |t| {
        let mut b = FlushBatch::new();
        t.collapse(range, 1, &mut b).unwrap();
        let _ = t.commit(b);
    });
    let label = if F::PAGE_SHIFT == 12 {
        "collapse 4K -> 2M"
    } else {
        "collapse 16K -> 32M"
    };
    row(label, n, ns, f, atomic, None);
}

// ---- peers ----

mod ptm {
    use super::*;
    use memory_addr::{PhysAddr, VirtAddr};
    use page_table_multiarch::x86_64::X64PageTable;
    use page_table_multiarch::{MappingFlags, PagingHandler};

    pub struct Heap;

    impl PagingHandler for Heap {
        fn alloc_frames(num: usize, align: usize) -> Option<PhysAddr> {
            let layout = Layout::from_size_align(num * 4096, align.max(4096)).ok()?;
            // SAFETY: non-zero size.
            let p = unsafe { std::alloc::alloc_zeroed(layout) };
            (!p.is_null()).then(|| PhysAddr::from(p as usize))
        }

        fn dealloc_frames(paddr: PhysAddr, num: usize) {
            let layout = Layout::from_size_align(num * 4096, 4096).unwrap();
            // SAFETY: allocated above with this layout.
            unsafe { std::alloc::dealloc(paddr.as_usize() as *mut u8, layout) }
        }

        fn phys_to_virt(paddr: PhysAddr) -> VirtAddr {
            VirtAddr::from(paddr.as_usize())
        }
    }

    pub fn map(size: u64, huge: bool) -> f64 {
        let mut pt = X64PageTable::<Heap>::try_new().unwrap();
        let flags = MappingFlags::READ | MappingFlags::WRITE | MappingFlags::EXECUTE;
        let (_, ns) = timed(|| {
            let mut c = pt.cursor();
            c.map_region(
                VirtAddr::from(0usize),
                |va| PhysAddr::from(va.as_usize() + HPA_BASE as usize),
                size as usize,
                flags,
                huge,
            )
            .unwrap();
        });
        drop(pt);
        ns
    }
}

mod x86 {
    use super::*;
    use x86_64::structures::paging::{
        FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame,
        Size2MiB, Size4KiB,
    };
    use x86_64::{PhysAddr, VirtAddr};

    struct Heap(Vec<*mut u8>);

    // SAFETY: hands out distinct, zeroed, 4 KiB-aligned pages that stay allocated until dropped.
    unsafe impl FrameAllocator<Size4KiB> for Heap {
        fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
            // SAFETY: non-zero size.
            let p =
                unsafe { std::alloc::alloc_zeroed(Layout::from_size_align(4096, 4096).unwrap()) };
            self.0.push(p);
            Some(PhysFrame::containing_address(PhysAddr::new(p as u64)))
        }
    }

    impl Drop for Heap {
        fn drop(&mut self) {
            for p in self.0.drain(..) {
                // SAFETY: allocated above with this layout.
                unsafe { std::alloc::dealloc(p, Layout::from_size_align(4096, 4096).unwrap()) }
            }
        }
    }

    pub fn map(size: u64, huge: bool) -> f64 {
        let mut frames = Heap(Vec::new());
        let root = frames.allocate_frame().unwrap();
        // SAFETY: the root page is ours, zeroed, and "physical" equals virtual (offset 0).
        let l4 = unsafe { &mut *(root.start_address().as_u64() as *mut PageTable) };
        // SAFETY: every table page is reachable at its physical address (offset 0).
        let mut m = unsafe { OffsetPageTable::new(l4, VirtAddr::new(0)) };
        let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
        let (_, ns) = timed(|| {
            if huge {
                for i in 0..size / (2 << 20) {
                    let a = i * (2 << 20);
                    let page = Page::<Size2MiB>::containing_address(VirtAddr::new(a));
                    let frame =
                        PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(a + HPA_BASE));
                    // SAFETY: a host-side table no CPU loads; the frames are never accessed.
                    unsafe { m.map_to(page, frame, flags, &mut frames).unwrap().ignore() };
                }
            } else {
                for i in 0..size / 4096 {
                    let a = i * 4096;
                    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(a));
                    let frame =
                        PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(a + HPA_BASE));
                    // SAFETY: as above.
                    unsafe { m.map_to(page, frame, flags, &mut frames).unwrap().ignore() };
                }
            }
        });
        ns
    }
}

fn main() {
    let short = std::env::args().any(|a| a == "--short")
        || std::env::var("SEPTUM_BENCH_SHORT").is_ok_and(|v| !v.is_empty() && v != "0");
    let sizes: &[u64] = if short {
        &[64 << 20, 256 << 20]
    } else {
        &[GIB, 16 * GIB]
    };
    println!("septum mmu bench ({} mode); floors measured per size over the same number of 8-byte entries", if short { "short" } else { "full" });
    let mut all = Vec::new();
    for &size in sizes {
        let n4k = (size / 4096) as usize;
        let fl = floors(n4k);
        let fl16 = floors((size >> 14) as usize);
        println!(
            "\n== guest {} MiB: floors 4K-entries scan {:.3} ns, atomic {:.3} ns; 16K-entries scan {:.3} ns, atomic {:.3} ns",
            size >> 20,
            fl.scan,
            fl.atomic,
            fl16.scan,
            fl16.atomic
        );
        let peers = Peers {
            ptm_4k: best_of(|| ptm::map(size, false)),
            ptm_huge: best_of(|| ptm::map(size, true)),
            x86_4k: best_of(|| x86::map(size, false)),
            x86_huge: best_of(|| x86::map(size, true)),
        };
        println!(
            "peers map {} MiB: page_table_multiarch 4K {:.1} ms, huge {:.3} ms; x86_64 4K {:.1} ms, 2M {:.3} ms",
            size >> 20,
            peers.ptm_4k / 1e6,
            peers.ptm_huge / 1e6,
            peers.x86_4k / 1e6,
            peers.x86_huge / 1e6
        );
        let mut rows = Vec::new();
        bench_format::<Ept>(size, &fl, Some(&peers), &mut rows);
        bench_format::<Npt>(size, &fl, Some(&peers), &mut rows);
        bench_format::<LoongArch16K>(size, &fl16, None, &mut rows);
        print_header();
        for r in &rows {
            print_row(r);
        }
        all.extend(rows);
    }
    println!("\nvs floor: ns/entry divided by the floor named (scan = one load per entry, atomic = one RMW per entry).");
    println!("vs peer: our time divided by theirs for the same range (below 1 = faster); peers only map on x86 layouts.");
    let _ = all;
}
