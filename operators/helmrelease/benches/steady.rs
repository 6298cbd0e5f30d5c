//! SPEC §9 steady state: an unchanged Ready release costs no render subprocess and at most one
//! apply per interval. `HR_BENCH_STEADY_RELEASES` releases (default 20) with
//! `interval: HR_BENCH_STEADY_INTERVAL_SECONDS` (default 5) are made Ready, then watched for
//! `HR_BENCH_STEADY_INTERVALS` intervals (default 4): `helm template` runs are counted by a
//! wrapper around helm, applies by the operator's `objects_applied_total`.

mod common;

use std::time::Duration;

use common::{BenchResult, Cluster, Release, env_usize, print_load};

/// Objects in the bench chart: what one apply of a release applies.
const OBJECTS_PER_RELEASE: f64 = 2.0;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> BenchResult<()> {
    let count = env_usize("HR_BENCH_STEADY_RELEASES", 20).max(1);
    let interval = env_usize("HR_BENCH_STEADY_INTERVAL_SECONDS", 5).max(1);
    let intervals = env_usize("HR_BENCH_STEADY_INTERVALS", 4).max(1);
    print_load();
    let cluster = Cluster::start().await?;
    let namespace = "steady";
    cluster.create_namespace(namespace).await?;
    let releases: Vec<Release> = (0..count)
        .map(|i| Release {
            interval: Some(format!("{interval}s")),
            ..Release::new(namespace, &format!("r{i:03}"), &[])
        })
        .collect();
    cluster.create_releases(&releases).await?;
    cluster
        .wait_ready(&releases, Duration::from_secs(300))
        .await?;
    // Let the last installs' own follow-up reconciles pass.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let templates_before = cluster.helm_templates();
    let metrics_before = cluster.metrics().await?;
    let requests_before = cluster.requests();
    // Per interval, so that a one-off cost (the first re-apply) shows apart from the rest.
    let mut per_interval = Vec::new();
    let mut templates_mark = templates_before;
    for _ in 0..intervals {
        tokio::time::sleep(Duration::from_secs(interval as u64)).await;
        let now = cluster.helm_templates();
        per_interval.push(now - templates_mark);
        templates_mark = now;
    }
    let templates = templates_mark - templates_before;
    let metrics = cluster.metrics().await?;
    let requests = cluster.requests().since(&requests_before).https;
    let applied = metrics.value("upstart_helmrelease_objects_applied_total")
        - metrics_before.value("upstart_helmrelease_objects_applied_total");
    let reconciles = metrics.value("upstart_reconciles_total{controller=\"helmrelease\"}")
        - metrics_before.value("upstart_reconciles_total{controller=\"helmrelease\"}");
    let per_release_interval = count as f64 * intervals as f64;
    let listed: Vec<String> = per_interval.iter().map(ToString::to_string).collect();

    println!(
        "steady: {templates} helm template runs for {count} unchanged Ready releases over {intervals} intervals of {interval} s, by interval: {} (target 0)",
        listed.join(", ")
    );
    println!(
        "steady: {:.2} applies per release per interval ({applied} objects applied, {} per apply) (target <= 1)",
        applied / OBJECTS_PER_RELEASE / per_release_interval,
        OBJECTS_PER_RELEASE,
    );
    println!(
        "steady: {:.2} reconciles and {:.1} API requests per release per interval (requests: {requests}) (no target)",
        reconciles / per_release_interval,
        requests.total() as f64 / per_release_interval,
    );
    cluster.stop();
    Ok(())
}
