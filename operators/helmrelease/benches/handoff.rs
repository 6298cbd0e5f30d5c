//! SPEC §9 dependency hand-off: from a dependency becoming Ready to its dependent starting to
//! apply (target p50 <= 100 ms, p95 <= 500 ms). Chains of releases are run one after another
//! (`HR_BENCH_HANDOFF_CHAINS` chains of `HR_BENCH_HANDOFF_LENGTH` releases), the operator in
//! its own process.

mod common;

use std::time::Duration;

use common::{BenchResult, Cluster, chain, env_usize, ms, ms_opt, percentile, print_load};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> BenchResult<()> {
    let chains = env_usize("HR_BENCH_HANDOFF_CHAINS", 10);
    let length = env_usize("HR_BENCH_HANDOFF_LENGTH", 21).max(2);
    print_load();
    let cluster = Cluster::start().await?;
    let before = cluster.metrics().await?;
    let mut handoffs = Vec::new();
    for c in 0..chains {
        let namespace = format!("handoff-{c}");
        cluster.create_namespace(&namespace).await?;
        let releases = chain(&namespace, "link", length);
        cluster.create_releases(&releases).await?;
        cluster
            .wait_ready(&releases, Duration::from_secs(120))
            .await?;
        handoffs.extend(cluster.handoffs(&releases));
    }
    let after = cluster.metrics().await?;
    let operator = after
        .histogram("upstart_dependency_handoff_seconds")
        .since(&before.histogram("upstart_dependency_handoff_seconds"));
    let fetch = after
        .histogram("upstart_helmrelease_chart_fetch_duration_seconds")
        .since(&before.histogram("upstart_helmrelease_chart_fetch_duration_seconds"));
    let render = after
        .histogram("upstart_helmrelease_render_duration_seconds")
        .since(&before.histogram("upstart_helmrelease_render_duration_seconds"));
    let prepare = fetch.mean().unwrap_or_default() + render.mean().unwrap_or_default();
    let without_render: Vec<Duration> =
        handoffs.iter().map(|d| d.saturating_sub(prepare)).collect();

    println!(
        "handoff: p50 {}, p95 {} over {} hand-offs ({chains} chains of {length}, one chain at a time) (target p50 <= 100 ms, p95 <= 500 ms)",
        ms(percentile(&handoffs, 0.5)),
        ms(percentile(&handoffs, 0.95)),
        handoffs.len()
    );
    println!(
        "  measured by the bench: dependency first seen Ready -> dependent's first object first seen (in-process watches); this includes the chart fetch and the helm render that precede the first apply"
    );
    println!(
        "handoff minus the operator's mean chart fetch + render ({} + {}): p50 {}, p95 {} (estimate of Ready -> apply starts)",
        ms_opt(fetch.mean()),
        ms_opt(render.mean()),
        ms(percentile(&without_render, 0.5)),
        ms(percentile(&without_render, 0.95)),
    );
    println!(
        "handoff per the operator's histogram upstart_dependency_handoff_seconds: p50 {}, p95 {}, mean {} over {} observations (bucket-interpolated; timed by the operator from the dependency's readyAt in status, which has whole seconds, so it reads up to 1 s high unless the operator times from its own Ready write)",
        ms_opt(operator.quantile(0.5)),
        ms_opt(operator.quantile(0.95)),
        ms_opt(operator.mean()),
        operator.count
    );
    cluster.stop();
    Ok(())
}
