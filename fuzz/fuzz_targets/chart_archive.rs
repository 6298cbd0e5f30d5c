//! Fuzz target `chart_archive`: the bytes go to `upstart_chart_source::fuzz_targets::chart_archive`, the entry function
//! CI also replays over fuzz/corpus/chart_archive.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| upstart_chart_source::fuzz_targets::chart_archive(data));
