//! A request head, parsed as hyper parses it, through `refuse.rs`'s checks before
//! routing: no panic, and the refusals it promises (`keel_fuzz::host`).
//!
//! Run: `cargo +nightly fuzz run host fuzz/corpus/host`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| keel_fuzz::host(data));
