//! Control plane benchmarks: start-up, get/list/watch throughput, watch fan-out latency.

fn main() {}
