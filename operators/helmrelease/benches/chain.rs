//! SPEC §9 chain: 20 releases, each depending on the one before, instant workloads, Ready in
//! <= 5 s in total. `HR_BENCH_CHAIN_RUNS` chains (default 3) of `HR_BENCH_CHAIN_LENGTH` (default
//! 20) run one after another, the operator in its own process.

mod common;

use std::time::{Duration, Instant};

use common::{BenchResult, Cluster, chain, env_usize, ms, ms_opt, percentile, print_load};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> BenchResult<()> {
    let runs = env_usize("HR_BENCH_CHAIN_RUNS", 3).max(1);
    let length = env_usize("HR_BENCH_CHAIN_LENGTH", 20).max(1);
    print_load();
    let cluster = Cluster::start().await?;
    let mut walls = Vec::new();
    for run in 0..runs {
        let namespace = format!("chain-{run}");
        cluster.create_namespace(&namespace).await?;
        let before = cluster.metrics().await?;
        let requests_before = cluster.requests();
        let templates_before = cluster.helm_templates();
        let releases = chain(&namespace, "link", length);
        let started = Instant::now();
        cluster.create_releases(&releases).await?;
        let last = cluster
            .wait_ready(&releases, Duration::from_secs(300))
            .await?;
        let wall = last.duration_since(started);
        let after = cluster.metrics().await?;
        let requests = cluster.requests().since(&requests_before).https;
        let templates = cluster.helm_templates() - templates_before;
        let render = after
            .histogram("upstart_helmrelease_render_duration_seconds")
            .since(&before.histogram("upstart_helmrelease_render_duration_seconds"));
        let reconciles = after.value("upstart_reconciles_total{controller=\"helmrelease\"}")
            - before.value("upstart_reconciles_total{controller=\"helmrelease\"}");
        let handoffs = cluster.handoffs(&releases);
        let (writes, longest) = cluster.writes(&releases);
        let longest = longest.len();
        println!(
            "chain run {}: {length} releases Ready in {} ({} per link; hand-off p50 {}, render mean {}, {templates} helm template runs, {reconciles} reconciles, {writes} HelmRelease writes, longest Ready message so far {longest} bytes, {} operator requests: {requests})",
            run + 1,
            ms(wall),
            ms(wall / length as u32),
            ms(percentile(&handoffs, 0.5)),
            ms_opt(render.mean()),
            requests.total(),
        );
        walls.push(wall);
    }
    println!(
        "chain: {length} dependent releases Ready in {} (median of {runs} runs; best {}, worst {}) from creation to the last Ready (target <= 5 s for 20)",
        ms(percentile(&walls, 0.5)),
        ms(percentile(&walls, 0.0)),
        ms(percentile(&walls, 1.0)),
    );
    let (_, longest) = cluster.writes(&[]);
    let shown: String = longest.chars().take(240).collect();
    println!(
        "  longest Ready message seen ({} bytes): {shown}{}",
        longest.len(),
        if shown.len() < longest.len() {
            "..."
        } else {
            ""
        }
    );
    cluster.stop();
    Ok(())
}
