//! A backend answer's headers through `headers.rs`'s hop-by-hop removal and its
//! `Keep-Alive: timeout=N` reading: no panic, nothing hop-by-hop left
//! (`keel_fuzz::hop_by_hop`).
//!
//! Run: `cargo +nightly fuzz run hop_by_hop fuzz/corpus/hop_by_hop`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| keel_fuzz::hop_by_hop(data));
