//! Host tests of the engine on a mock machine (`mock`): boards made here (`board`), guests as
//! scripts of exits, each test a run of real partitions through the real handler, hypercall
//! dispatch, run loop and shootdown, with CPUs as threads where a test needs two. They run once
//! per architecture feature (`cargo test -p partition` is x86; `--no-default-features --features
//! loongarch` is LoongArch, with its page size and interrupt controller), and each
//! architecture's own exits have a file of their own (`x86`, `loongarch`).

mod board;
mod hypercalls;
mod lifecycle;
#[cfg(feature = "loongarch")]
mod loongarch;
mod mock;
mod routing;
#[cfg(feature = "x86")]
mod x86;
