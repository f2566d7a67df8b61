//! Host benchmark of the stage-2 engine: per operation and format, ns per entry, ms per GiB of
//! guest memory and the number of flushes, each compared with a floor measured over the same
//! entries in the same run (see `layout`), and `map_range` compared with two other Rust
//! page-table crates mapping the same range with the same page sizes (see `peers`).
//!
//! `cargo bench -p mmu` runs 1 and 16 GiB; `cargo bench -p mmu -- --short` (or
//! `SEPTUM_BENCH_SHORT=1`) runs 64 and 256 MiB and finishes in seconds. Every timed operation is
//! repeated (`REPS`) and the best run counts, with its floor measured next to it each time.

mod arena;
mod layout;
mod peers;
mod rows;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arena::ArenaFrames;
use mmu::{
    Ept, Flush, FlushBatch, FrameAllocator, Gpa, GpaRange, Hpa, HugePolicy, LeafAttrs,
    LoongArch16K, Npt, Perms, PteFormat, StageTwoTable, TlbFlush,
};
use rows::bench_format;

const GIB: u64 = 1 << 30;
const HPA_BASE: u64 = 1 << 40;
const REPS: usize = 5;

#[derive(Default)]
struct CountingTlb(AtomicU64);

impl TlbFlush for CountingTlb {
    fn flush(&self, _what: Flush) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

type Table<F, A = ArenaFrames> = StageTwoTable<F, A, CountingTlb>;

/// Leaf size of a map_range row.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PageKind {
    /// Base pages (4 KiB, LoongArch 16 KiB).
    Base,
    /// First huge level (2 MiB, LoongArch 32 MiB), never the second.
    Mid,
    /// 1 GiB (x86 formats).
    Top,
}

impl PageKind {
    /// Offset added to the host base so the peers pick this page size (x86 layout).
    fn hpa_offset(self) -> u64 {
        if self == PageKind::Mid {
            2 << 20
        } else {
            0
        }
    }
}

/// What a row is held to.
#[derive(Clone, Copy)]
enum Target {
    None,
    /// At most this many times the floor.
    Floor(f64),
    /// At least 2x faster than each peer.
    Peers,
}

struct Row {
    op: String,
    format: &'static str,
    size: u64,
    entries: u64,
    ns: f64,
    flushes: u64,
    floor: Option<(&'static str, f64)>,
    peers: Option<(f64, f64)>,
    target: Target,
}

impl Row {
    fn verdict(&self) -> &'static str {
        let per = self.ns / self.entries as f64;
        let ok = match self.target {
            Target::None => return "",
            Target::Floor(x) => self.floor.is_some_and(|(_, f)| per <= x * f),
            Target::Peers => self
                .peers
                .is_some_and(|(a, b)| self.ns * 2.0 <= a && self.ns * 2.0 <= b),
        };
        if !ok {
            "MISS"
        } else if self.flushes > 1 {
            "MISS (flushes)"
        } else {
            "ok"
        }
    }
}

fn print_header() {
    println!(
        "{:<30} {:<6} {:>6} {:>9} {:>8} {:>8} {:>3} {:>14} {:>22} {:>6}",
        "operation",
        "format",
        "guest",
        "entries",
        "ns/ent",
        "ms/GiB",
        "fl",
        "vs floor",
        "vs peer (ptm, x86_64)",
        "target"
    );
}

fn print_row(r: &Row) {
    let per = r.ns / r.entries as f64;
    let ms_gib = r.ns / 1e6 / (r.size as f64 / GIB as f64);
    let floor = r.floor.map_or(String::from("-"), |(name, f)| {
        format!("{:.2}x {}", per / f, name)
    });
    let peers = r.peers.map_or(String::from("-"), |(a, b)| {
        format!("{:.2}x  {:.2}x", r.ns / a, r.ns / b)
    });
    println!(
        "{:<30} {:<6} {:>5}M {:>9} {:>8.2} {:>8.3} {:>3} {:>14} {:>22} {:>6}",
        r.op,
        r.format,
        r.size >> 20,
        r.entries,
        per,
        ms_gib,
        r.flushes,
        floor,
        peers,
        r.verdict()
    );
}

pub fn timed<R>(f: impl FnOnce() -> R) -> (R, f64) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed().as_nanos() as f64)
}

fn new_table<F: PteFormat + Default, A: FrameAllocator + Default>() -> Table<F, A> {
    StageTwoTable::new(F::default(), A::default(), CountingTlb::default()).unwrap()
}

fn flushes<F: PteFormat, A: FrameAllocator>(t: &Table<F, A>) -> u64 {
    t.tlb().0.load(Ordering::Relaxed)
}

/// Run `op` on `t`, returning (ns, flushes it issued).
fn measure<F: PteFormat, A: FrameAllocator>(
    t: &mut Table<F, A>,
    op: impl FnOnce(&mut Table<F, A>),
) -> (f64, u64) {
    let f0 = flushes(t);
    let (_, ns) = timed(|| op(t));
    (ns, flushes(t) - f0)
}

/// Map `size` bytes at GPA 0 onto `hpa` with leaves up to `max_level` into a fresh table and
/// commit: (table, ns, flushes).
fn map_once<F: PteFormat + Default, A: FrameAllocator + Default>(
    size: u64,
    hpa: u64,
    max_level: usize,
) -> (Table<F, A>, f64, u64) {
    let t = new_table::<F, A>();
    let range = GpaRange::from_len(Gpa(0), size).unwrap();
    let attrs = LeafAttrs::ram(Perms::RWX);
    let (_, ns) = timed(|| {
        let mut b = FlushBatch::new();
        t.map_range(range, Hpa(hpa), attrs, HugePolicy { max_level }, &mut b)
            .unwrap();
        let _ = t.commit(b);
    });
    let f = flushes(&t);
    (t, ns, f)
}

/// Best of `reps` runs of `f`, which returns (op ns, floor ns per entry); the floors' best too.
fn best(reps: usize, mut f: impl FnMut() -> (f64, f64)) -> (f64, f64) {
    let (mut op, mut fl) = (f64::MAX, f64::MAX);
    for _ in 0..reps {
        let (a, b) = f();
        op = op.min(a);
        fl = fl.min(b);
    }
    (op, fl)
}

/// Repetitions for an operation that takes about `ns_guess`: at least `REPS`, more for small
/// ones, so that a row is never a single sub-millisecond sample.
fn reps_for(ns_guess: f64) -> usize {
    ((2e7 / ns_guess.max(1.0)) as usize).clamp(REPS, 2000)
}

struct Peers {
    base: (f64, f64),
    mid: (f64, f64),
    top: (f64, f64),
}

fn peer_times(size: u64) -> Peers {
    let one = |kind: PageKind| {
        let guess = peers::ptm::map(size, kind);
        let n = reps_for(guess);
        let a = (0..n)
            .map(|_| peers::ptm::map(size, kind))
            .fold(guess, f64::min);
        let b = (0..n)
            .map(|_| peers::x86::map(size, kind))
            .fold(f64::MAX, f64::min);
        (a, b)
    };
    Peers {
        base: one(PageKind::Base),
        mid: one(PageKind::Mid),
        top: one(PageKind::Top),
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
    arena::init(if short { 64 << 20 } else { 320 << 20 });
    println!(
        "septum mmu bench ({} mode), best of {REPS}+ runs per row.",
        if short { "short" } else { "full" }
    );
    println!(
        "Floors, per base-page entry, measured over the table's own leaf pages (same entries, same\n\
         memory layout: pages of 512 or 2048 entries wherever the allocator put them), next to the\n\
         operation: scan = one load; atomic = one atomic RMW; fill = one plain store. Table pages\n\
         come from a pre-faulted arena (as from a hypervisor's frame pool); `heap` rows use the\n\
         host heap (first-touch page faults and all) instead. Peers map the same range with the\n\
         same page sizes from the same arena."
    );
    for &size in sizes {
        let peers = peer_times(size);
        println!(
            "\n== guest {} MiB; peers: page_table_multiarch 4K {:.2} ms, 2M {:.4} ms, 1G {:.5} ms; x86_64 4K {:.2} ms, 2M {:.4} ms, 1G {:.5} ms",
            size >> 20,
            peers.base.0 / 1e6,
            peers.mid.0 / 1e6,
            peers.top.0 / 1e6,
            peers.base.1 / 1e6,
            peers.mid.1 / 1e6,
            peers.top.1 / 1e6,
        );
        let mut rows = Vec::new();
        bench_format::<Ept>(size, Some(&peers), &mut rows);
        bench_format::<Npt>(size, Some(&peers), &mut rows);
        bench_format::<LoongArch16K>(size, None, &mut rows);
        print_header();
        for r in &rows {
            print_row(r);
        }
    }
    println!("\nvs floor: ns/entry divided by the floor named. vs peer: our time divided by theirs (below 1 = faster).");
    println!("target: age/clear_dirty <= 2x floor, map_range base and split <= 3x fill, map_range 4K/2M >= 2x faster than each peer (1G shown only), <= 1 flush.");
}
