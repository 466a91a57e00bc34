//! Feeds arbitrary bytes, read as UTF-8 (lossily), to `keel_check::load` and renders
//! the report both ways: none of it may panic, whatever the input (`keel_fuzz::check`).
//!
//! Run: `cargo +nightly fuzz run check fuzz/corpus/check`. Add any crashing input to
//! `crates/keel-check/tests/corpus/` so the stable test suite keeps covering it.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| keel_fuzz::check(data));
