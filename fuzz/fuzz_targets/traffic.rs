//! Any bytes as a traffic file (`keel diff --traffic`, `keel apply --dry-run`): no
//! panic, and an error names a line of the input (`keel_fuzz::traffic`).
//!
//! Run: `cargo +nightly fuzz run traffic fuzz/corpus/traffic`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| keel_fuzz::traffic(data));
