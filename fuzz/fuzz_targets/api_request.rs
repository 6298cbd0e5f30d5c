//! Fuzz target `api_request`: the bytes go to `upstart_control_plane::fuzz_targets::api_request`, the entry function
//! CI also replays over fuzz/corpus/api_request.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| upstart_control_plane::fuzz_targets::api_request(data));
