//! Property tests against a simple model of a layout: partitions given disjoint host memory, CPUs
//! and GPA ranges always pass; adding one region whose host memory overlaps another partition's
//! always fails with exactly a host-overlap fault naming both partitions, and a region overlapping
//! its own partition's guest memory always fails with a guest-overlap fault.

use board_config::check::{check_str, Errors, Rule, Scope};
use proptest::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

const PAGE: u64 = 4 << 10;
const RAM_START: u64 = 1 << 20;
const RAM_END: u64 = 1 << 30;
/// The hypervisor takes [1M, 32M); partitions are laid out above it.
const FIRST_FREE: u64 = 32 << 20;

/// One region: guest and host page numbers and a length in pages.
#[derive(Clone, Debug)]
struct Reg {
    guest: u64,
    host: u64,
    pages: u64,
}

/// A valid layout: per partition its regions (the first executable, holding the entry point).
#[derive(Clone, Debug)]
struct Layout {
    parts: Vec<Vec<Reg>>,
}

/// Lays out `sizes[p][r]` pages with `gaps` in between: host ranges consecutive across all
/// partitions, guest ranges consecutive within each partition.
fn layout(sizes: Vec<Vec<(u64, u64)>>) -> Layout {
    let mut host = FIRST_FREE / PAGE;
    let parts = sizes
        .into_iter()
        .map(|regions| {
            let mut guest = 0;
            regions
                .into_iter()
                .map(|(pages, gap)| {
                    host += gap;
                    guest += gap;
                    let r = Reg { guest, host, pages };
                    host += pages;
                    guest += pages;
                    r
                })
                .collect()
        })
        .collect();
    Layout { parts }
}

fn arb_layout() -> impl Strategy<Value = Layout> {
    prop::collection::vec(prop::collection::vec((1u64..512, 0u64..64), 1..5), 2..6).prop_map(layout)
}

fn name(i: usize) -> String {
    format!("p{i}")
}

fn region_toml(r: &Reg, flags: &str) -> String {
    format!(
        "{{ guest = {:#x}, host = {:#x}, size = {:#x}, flags = \"{flags}\" }}",
        r.guest * PAGE,
        r.host * PAGE,
        r.pages * PAGE
    )
}

fn to_toml(l: &Layout) -> String {
    let mut s = String::new();
    writeln!(
        s,
        "[board]\nname = \"prop\"\narch = \"x86_64\"\nboot = \"direct\"\ncpus = {}\n\
         ram = [{{ start = {RAM_START:#x}, size = {:#x} }}]\n\
         hypervisor = {{ start = {RAM_START:#x}, size = \"31M\" }}\n\
         console = {{ port = 0x3f8, clock = 1843200, baud = 115200 }}\n\
         irqchip = {{ kind = \"ioapic\", mmio = 0xfec00000, size = \"4K\", lines = 24 }}",
        l.parts.len(),
        RAM_END - RAM_START
    )
    .unwrap();
    for (i, regs) in l.parts.iter().enumerate() {
        let first = &regs[0];
        let mems: Vec<String> = regs
            .iter()
            .enumerate()
            .map(|(k, r)| region_toml(r, if k == 0 { "rwx" } else { "rw" }))
            .collect();
        writeln!(
            s,
            "\n[[partition]]\nname = \"{}\"\nmanager = {}\ncpus = [{i}]\nguest = \"worker\"\n\
             load = {:#x}\nentry = {:#x}\nmemory = [{}]",
            name(i),
            i == 0,
            first.guest * PAGE,
            first.guest * PAGE,
            mems.join(", ")
        )
        .unwrap();
    }
    s
}

fn check(text: &str) -> Result<(), Errors> {
    check_str(text, Path::new("prop.toml"), Path::new(".")).map(|_| ())
}

/// A partition and region index of `l`, and an offset/length inside that region, from raw numbers.
fn pick(l: &Layout, raw: (usize, usize, u64, u64)) -> (usize, usize, u64, u64) {
    let p = raw.0 % l.parts.len();
    let r = raw.1 % l.parts[p].len();
    let pages = l.parts[p][r].pages;
    let off = raw.2 % pages;
    let len = 1 + raw.3 % 64;
    (p, r, off, len)
}

/// The guest page just past partition `p`'s last region (free guest space for a new region).
fn guest_end(l: &Layout, p: usize) -> u64 {
    l.parts[p].iter().map(|r| r.guest + r.pages).max().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn valid_layouts_pass(l in arb_layout()) {
        let text = to_toml(&l);
        prop_assert!(check(&text).is_ok(), "{}\n{}", check(&text).unwrap_err(), text);
    }

    #[test]
    fn host_overlap_between_partitions_fails(
        l in arb_layout(),
        victim in (any::<usize>(), any::<usize>(), any::<u64>(), any::<u64>()),
        thief in any::<usize>(),
    ) {
        let mut l = l;
        let (vp, vr, off, len) = pick(&l, victim);
        let tp = (vp + 1 + thief % (l.parts.len() - 1)) % l.parts.len();
        let host = l.parts[vp][vr].host + off;
        let guest = guest_end(&l, tp) + 1;
        l.parts[tp].push(Reg { guest, host, pages: len });
        let text = to_toml(&l);
        let errors = check(&text).expect_err("an overlapping layout passed");
        prop_assert!(errors.iter().all(|e| e.rule == Rule::HostOverlap), "{}", errors);
        let (a, b) = (name(vp.min(tp)), name(vp.max(tp)));
        prop_assert!(
            errors.iter().any(|e| e.scope == Scope::Pair(a.clone(), b.clone())
                && e.key == "memory.host"),
            "{}", errors
        );
    }

    #[test]
    fn guest_overlap_inside_a_partition_fails(
        l in arb_layout(),
        at in (any::<usize>(), any::<usize>(), any::<u64>(), any::<u64>()),
    ) {
        let mut l = l;
        let (p, r, off, len) = pick(&l, at);
        // Fresh host memory past everything, so only the guest ranges collide.
        let host = l.parts.iter().flatten().map(|r| r.host + r.pages).max().unwrap() + 1;
        let guest = l.parts[p][r].guest + off;
        l.parts[p].push(Reg { guest, host, pages: len });
        let text = to_toml(&l);
        let errors = check(&text).expect_err("a guest overlap passed");
        prop_assert!(errors.iter().all(|e| e.rule == Rule::GuestOverlap), "{}", errors);
        prop_assert!(errors.iter().all(|e| e.scope == Scope::Partition(name(p))), "{}", errors);
    }
}
