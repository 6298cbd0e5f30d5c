//! Benchmarks for SPEC §9 (placeholder replaced below).
fn main() {}
