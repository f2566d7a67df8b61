//! The hypervisor's command line, kept for switches read after boot (`smp-test=1`,
//! `linux:WORD`, ...). The boot sequence sets it once, first thing.

/// The kernel command line, for switches read after boot (e.g. `smp-test=1`).
static CMDLINE: spin::Once<&'static str> = spin::Once::new();

/// Whether the command line has the word `word`.
#[allow(dead_code)]
pub fn cmdline_has(word: &str) -> bool {
    cmdline_words().any(|w| w == word)
}

/// The words of the hypervisor's command line.
pub fn cmdline_words() -> impl Iterator<Item = &'static str> {
    CMDLINE
        .get()
        .into_iter()
        .flat_map(|c| c.split_ascii_whitespace())
}

/// Records the command line (the boot CPU, once, before anything reads it).
pub fn set(cmdline: &'static str) {
    CMDLINE.call_once(|| cmdline);
}

/// The whole command line (empty before [`set`]).
pub fn cmdline() -> &'static str {
    CMDLINE.get().copied().unwrap_or("")
}
