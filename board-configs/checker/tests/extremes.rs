//! Property tests at the edges of the address space: boards whose addresses and sizes are drawn
//! from near 0, near the largest TOML integer (2^63 - 1) and, for sizes, near 2^64, mixed with
//! ordinary page-aligned values so that some boards pass. The checker must never panic, and every
//! board it accepts must keep partitions apart: no host memory shared between two partitions
//! unless both declare the same range shared with each other, none inside one partition twice,
//! none in the hypervisor's or reserved ranges or outside RAM, and no range reaching 2^64.

use board_config::check::{check_str, CheckedBoard};
use proptest::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

const PAGE: u64 = 4 << 10;
const TOP: u64 = i64::MAX as u64;

/// An address: ordinary (from `base`, in 1M steps) most of the time, else at an edge.
fn addr_from(base: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        24 => (0u64..64).prop_map(move |k| base + k * (1 << 20)),
        1 => 0u64..0x10000,
        1 => (TOP - 0x10000)..=TOP,
        1 => (0u64..16).prop_map(|k| (TOP & !(PAGE - 1)) - k * PAGE),
    ]
}

/// A size: ordinary most of the time, else zero, tiny, or near 2^63 or 2^64.
fn size() -> impl Strategy<Value = u64> {
    prop_oneof![
        24 => prop::sample::select(vec![PAGE, 64 << 10, 1 << 20, 16 << 20]),
        1 => Just(0u64),
        1 => 1u64..0x2000,
        1 => (u64::MAX - 0x10000)..=u64::MAX,
        1 => (0u64..16).prop_map(|k| (1u64 << 63) - k * PAGE),
        1 => (0u64..16).prop_map(|k| (1u64 << 63) + k * PAGE),
    ]
}

#[derive(Clone, Debug)]
struct Reg {
    guest: u64,
    host: u64,
    size: u64,
    shared: bool,
}

/// One partition: its regions and its MMIO windows.
type Part = (Vec<Reg>, Vec<(u64, u64)>);

#[derive(Clone, Debug)]
struct Board {
    ram: Vec<(u64, u64)>,
    hypervisor: (u64, u64),
    reserved: Vec<(u64, u64)>,
    irqchip: (u64, u64),
    parts: Vec<Part>,
    /// A region p0 and p1 declare shared with each other: guest addresses in each, host, size.
    pair: Option<(u64, u64, u64, u64)>,
}

fn addr() -> impl Strategy<Value = u64> {
    addr_from(32 << 20)
}

fn range() -> impl Strategy<Value = (u64, u64)> {
    (addr(), size())
}

fn board() -> impl Strategy<Value = Board> {
    let reg = (addr_from(0), addr(), size(), prop::bool::weighted(0.15)).prop_map(
        |(guest, host, size, shared)| Reg {
            guest,
            host,
            size,
            shared,
        },
    );
    let part = (
        prop::collection::vec(reg, 1..3),
        prop_oneof![3 => Just(vec![]), 1 => prop::collection::vec(range(), 1..2)],
    );
    (
        prop_oneof![
            4 => Just(vec![(1u64 << 20, 1u64 << 30)]),
            1 => prop::collection::vec(range(), 1..3),
        ],
        prop_oneof![4 => Just((1u64 << 20, 31u64 << 20)), 1 => range()],
        prop_oneof![3 => Just(vec![]), 1 => prop::collection::vec(range(), 1..3)],
        prop_oneof![4 => Just((0xfec0_0000u64, PAGE)), 1 => range()],
        prop::collection::vec(part, 1..3),
        prop::option::weighted(
            0.7,
            (
                addr_from(256 << 20),
                addr_from(256 << 20),
                addr_from(512 << 20),
                size(),
            ),
        ),
    )
        .prop_map(|(ram, hypervisor, reserved, irqchip, parts, pair)| Board {
            ram,
            hypervisor,
            reserved,
            irqchip,
            parts,
            pair,
        })
}

fn r(start: u64, size: u64) -> String {
    format!("{{ start = {start:#x}, size = \"{size:#x}\" }}")
}

fn to_toml(b: &Board) -> String {
    let list = |v: &[(u64, u64)]| {
        v.iter()
            .map(|&(s, n)| r(s, n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut s = String::new();
    writeln!(
        s,
        "[board]\nname = \"edge\"\narch = \"x86_64\"\nboot = \"direct\"\ncpus = {}\nram = [{}]\n\
         hypervisor = {}\nreserved = [{}]\nconsole = {{ port = 0x3f8, clock = 1843200, baud = 115200 }}\n\
         irqchip = {{ kind = \"ioapic\", mmio = {:#x}, size = \"{:#x}\", lines = 24 }}",
        b.parts.len(),
        list(&b.ram),
        r(b.hypervisor.0, b.hypervisor.1),
        list(&b.reserved),
        b.irqchip.0,
        b.irqchip.1
    )
    .unwrap();
    let n = b.parts.len();
    for (i, (regs, mmio)) in b.parts.iter().enumerate() {
        let partner = format!("p{}", (i + 1) % n);
        let mut mems: Vec<String> = regs
            .iter()
            .enumerate()
            .map(|(k, g)| {
                let share = if g.shared && n > 1 {
                    format!(", shared_with = \"{partner}\"")
                } else {
                    String::new()
                };
                let flags = if k == 0 { "rwx" } else { "rw" };
                format!(
                    "{{ guest = {:#x}, host = {:#x}, size = \"{:#x}\", flags = \"{flags}\"{share} }}",
                    g.guest, g.host, g.size
                )
            })
            .collect();
        if let (Some((g0, g1, host, size)), true) = (b.pair, n > 1 && i < 2) {
            let (guest, other) = if i == 0 { (g0, 1) } else { (g1, 0) };
            mems.push(format!(
                "{{ guest = {guest:#x}, host = {host:#x}, size = \"{size:#x}\", flags = \"rw\", shared_with = \"p{other}\" }}"
            ));
        }
        writeln!(
            s,
            "\n[[partition]]\nname = \"p{i}\"\nmanager = {}\ncpus = [{i}]\nguest = \"worker\"\n\
             load = {:#x}\nentry = {:#x}\nmmio = [{}]\nmemory = [{}]",
            i == 0,
            regs[0].guest,
            regs[0].guest,
            list(mmio),
            mems.join(", ")
        )
        .unwrap();
    }
    s
}

fn meets(a: u64, an: u64, b: u64, bn: u64) -> bool {
    an > 0 && bn > 0 && a < b + bn && b < a + an
}

/// The isolation invariants of an accepted board, checked the slow, obvious way.
fn isolated(b: &CheckedBoard) -> Result<(), String> {
    let ends = |s: u64, n: u64| s.checked_add(n).ok_or(format!("{s:#x} + {n:#x} wraps"));
    for x in b.ram.iter().chain(&b.reserved).chain([&b.hypervisor]) {
        ends(x.start, x.size)?;
    }
    let in_ram = |s: u64, n: u64| {
        // Touching RAM ranges count as one: walk forward through them.
        let mut at = s;
        while at < s + n {
            match b
                .ram
                .iter()
                .find(|r| r.start <= at && at < r.start + r.size)
            {
                Some(r) => at = r.start + r.size,
                None => return false,
            }
        }
        true
    };
    for (i, p) in b.partitions.iter().enumerate() {
        for (k, a) in p.memory.iter().enumerate() {
            ends(a.host, a.size)?;
            ends(a.guest, a.size)?;
            if !in_ram(a.host, a.size) {
                return Err(format!("{}: host {:#x} outside RAM", p.name, a.host));
            }
            for kept in b.reserved.iter().chain([&b.hypervisor]) {
                if meets(a.host, a.size, kept.start, kept.size) {
                    return Err(format!("{}: host {:#x} in kept memory", p.name, a.host));
                }
            }
            for c in &p.memory[k + 1..] {
                if meets(a.host, a.size, c.host, c.size) || meets(a.guest, a.size, c.guest, c.size)
                {
                    return Err(format!("{}: two regions overlap", p.name));
                }
            }
            for q in &b.partitions[i + 1..] {
                for c in &q.memory {
                    if !meets(a.host, a.size, c.host, c.size) {
                        continue;
                    }
                    let mutual = a.shared_with.as_deref() == Some(q.name.as_str())
                        && c.shared_with.as_deref() == Some(p.name.as_str())
                        && (a.host, a.size) == (c.host, c.size);
                    if !mutual {
                        return Err(format!("{} and {} meet at {:#x}", p.name, q.name, a.host));
                    }
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn edges_never_panic_and_accepted_boards_are_isolated(b in board()) {
        let text = to_toml(&b);
        if let Ok(checked) = check_str(&text, Path::new("edge.toml"), Path::new(".")) {
            prop_assert!(isolated(&checked).is_ok(), "{}\n{}", isolated(&checked).unwrap_err(), text);
        }
    }
}

/// The generator is not so hostile that nothing passes (the invariant would be checked on nothing).
#[test]
fn some_generated_boards_pass() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut passed, mut shared) = (0, 0);
    for _ in 0..2000 {
        let b = board().new_tree(&mut runner).unwrap().current();
        if let Ok(c) = check_str(&to_toml(&b), Path::new("edge.toml"), Path::new(".")) {
            passed += 1;
            shared += usize::from(
                c.partitions
                    .iter()
                    .flat_map(|p| &p.memory)
                    .any(|r| r.shared_with.is_some()),
            );
        }
    }
    assert!(
        passed >= 20,
        "only {passed} of 2000 generated boards passed"
    );
    assert!(shared >= 5, "only {shared} passing boards share memory");
    println!("{passed} of 2000 passed, {shared} with shared memory");
}
