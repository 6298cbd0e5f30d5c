//! Fuzz target `yaml_values`: the bytes go to `upstart_release_engine::fuzz_targets::yaml_values`, the entry function
//! CI also replays over fuzz/corpus/yaml_values.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| upstart_release_engine::fuzz_targets::yaml_values(data));
