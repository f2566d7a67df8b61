//! The image crate's module graph and its cycles: which module of `platform/src` names which
//! (`crate::a::b`, `super::x`, `self::y` paths, `use` lists included), and the strongly connected
//! groups of more than one module. Dependencies should point one way (leaves, then interrupt
//! entry, controllers, backends, the partition glue on top), so a cycle fails the suite unless
//! its modules all belong to a group listed in [`KNOWN`] with the reason it must stay (none is
//! listed: the image has no cycle). The reading is textual: comments are dropped, macros and glob
//! imports are not followed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Cycles still in the image, each with why (none today: a cycle is a failure).
const KNOWN: &[(&[&str], &str)] = &[];

/// Every module of the crate rooted at `src` (`a::b` for `a/b.rs` or `a/b/mod.rs`), with its
/// source.
fn modules(src: &Path) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(src).map_err(|e| e.to_string())?;
            let mut parts: Vec<String> = rel
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "main" | "lib")
            ) {
                parts.pop();
            }
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            out.insert(parts.join("::"), text);
        }
    }
    Ok(out)
}

/// The source without `//` comments (doc comments name modules without depending on them).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths `text` names that start at `crate`, `super` or `self`, with `{a, b}` lists expanded
/// one level.
fn paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let starts = ["crate::", "super::", "self::"]
            .iter()
            .any(|s| text[i..].starts_with(s))
            && (i == 0 || !word(bytes[i - 1]));
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < bytes.len() && (word(bytes[j]) || text[j..].starts_with("::")) {
            j += if bytes[j] == b':' { 2 } else { 1 };
        }
        let path = text[i..j].trim_end_matches("::").to_string();
        if text[j..].starts_with('{') {
            if let Some(end) = text[j..].find('}') {
                for item in text[j + 1..j + end].split(',') {
                    let name = item.split_whitespace().next().unwrap_or("");
                    let name = name.split("::").next().unwrap_or("");
                    if !name.is_empty() {
                        out.push(format!("{path}::{name}"));
                    }
                }
            }
        }
        out.push(path);
        i = j.max(i + 1);
    }
    out
}

/// The module a path from module `from` lands in (the longest known prefix).
fn resolve(from: &str, path: &str, known: &BTreeMap<String, String>) -> Option<String> {
    let mut segs: Vec<&str> = path.split("::").collect();
    let mut base: Vec<&str> = if from.is_empty() {
        Vec::new()
    } else {
        from.split("::").collect()
    };
    match segs.first().copied() {
        Some("crate") => base.clear(),
        Some("self") => {}
        Some("super") => {
            base.pop();
            while segs.get(1) == Some(&"super") {
                segs.remove(0);
                base.pop();
            }
        }
        _ => return None,
    }
    segs.remove(0);
    (1..=segs.len()).rev().find_map(|n| {
        let mut parts = base.clone();
        parts.extend_from_slice(&segs[..n]);
        let name = parts.join("::");
        known.contains_key(&name).then_some(name)
    })
}

/// The module graph: an edge from each module to every other module it names (not to its own
/// ancestors, whose items a child uses by design).
fn graph(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, text) in mods {
        let set = edges.entry(name.clone()).or_default();
        for p in paths(&code_of(text)) {
            if let Some(to) = resolve(name, &p, mods) {
                let ancestor = name.starts_with(&format!("{to}::")) || to.is_empty();
                if to != *name && !ancestor {
                    set.insert(to);
                }
            }
        }
    }
    edges
}

/// The strongly connected groups of more than one module (Tarjan's algorithm, iterative).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let edges = s.edges;
        for w in edges.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                group.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                s.out.push(group);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// The suite's check of the image crate at `src`: Ok with one line per remaining known cycle,
/// or the cycles no known group covers.
pub fn check(src: &Path) -> Result<Vec<String>, String> {
    let found = cycles(&graph(&modules(src)?));
    let mut known_lines = Vec::new();
    let mut new = Vec::new();
    for group in &found {
        let list = group.iter().cloned().collect::<Vec<_>>().join(", ");
        match KNOWN
            .iter()
            .find(|(members, _)| group.iter().all(|m| members.contains(&m.as_str())))
        {
            Some((_, why)) => known_lines.push(format!("known cycle [{list}]: {why}")),
            None => new.push(format!("new module cycle [{list}]")),
        }
    }
    if new.is_empty() {
        Ok(known_lines)
    } else {
        Err(new.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> BTreeMap<String, String> {
        files
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn paths_and_lists_resolve_to_modules() {
        let mods = tree(&[
            ("", ""),
            ("a", ""),
            (
                "a::b",
                "use super::c::{Thing, d::Other};\nuse crate::e::f; // crate::g is a comment",
            ),
            ("a::c", ""),
            ("a::c::d", ""),
            ("e", ""),
            ("g", ""),
        ]);
        let edges = graph(&mods);
        let got: Vec<&str> = edges["a::b"].iter().map(String::as_str).collect();
        assert_eq!(got, ["a::c", "a::c::d", "e"]);
    }

    #[test]
    fn a_cycle_is_found_and_a_chain_is_not() {
        let mods = tree(&[
            ("", ""),
            ("x", "use crate::y::Y;"),
            ("y", "fn f() { crate::z::go() }"),
            ("z", "use super::x;"),
            ("w", "use crate::x::X;"),
        ]);
        let found = cycles(&graph(&mods));
        assert_eq!(found.len(), 1);
        let names: Vec<&str> = found[0].iter().map(String::as_str).collect();
        assert_eq!(names, ["x", "y", "z"]);
        let chain = tree(&[("", ""), ("x", "use crate::y::Y;"), ("y", "")]);
        assert!(cycles(&graph(&chain)).is_empty());
    }

    #[test]
    fn a_child_naming_its_parent_is_no_cycle() {
        let mods = tree(&[
            ("", ""),
            ("p", "use self::q::Q;"),
            ("p::q", "use super::P;"),
        ]);
        assert!(cycles(&graph(&mods)).is_empty());
    }
}
