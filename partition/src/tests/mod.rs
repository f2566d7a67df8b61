//! Host tests of the engine on a mock machine (`mock`): boards made here (`board`), guests as
//! scripts of exits, each test a run of real partitions through the real handler, hypercall
//! dispatch, run loop and shootdown, with CPUs as threads where a test needs two.

mod board;
mod hypercalls;
mod lifecycle;
mod mock;
mod routing;
