//! Fuzz target `manifest`: the bytes go to `upstart_release_engine::fuzz_targets::manifest`, the entry function
//! CI also replays over fuzz/corpus/manifest.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| upstart_release_engine::fuzz_targets::manifest(data));
