//! Fuzz target `expressions`: the bytes go to `upstart_dag::fuzz_targets::expressions`, the entry function
//! CI also replays over fuzz/corpus/expressions.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| upstart_dag::fuzz_targets::expressions(data));
