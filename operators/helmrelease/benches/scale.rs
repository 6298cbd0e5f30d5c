//! SPEC §9 scale: 1000 HelmReleases (100 namespaces x 10, some depending on each other within
//! their namespace) created at once with instant workloads: all Ready in <= 2 min, operator
//! peak RSS <= 150 MiB; also the API requests per release. The operator runs in its own
//! process (its RSS is its own); requests are counted by the control plane over HTTPS, the
//! operator's only way in. Beside the total time, its baseline from the same run (issue 21):
//! the render-CPU bound, the CPU of the operator's helm subprocesses divided by the cores
//! (SPEC §9: total within 10 % of it). `HR_BENCH_NAMESPACES` and `HR_BENCH_PER_NAMESPACE`
//! shrink it.

mod common;

use std::time::{Duration, Instant};

use common::{BenchResult, Cluster, Release, cores, env_usize, ms, ms_opt, percentile, print_load};

/// The labels of the runtime's reconcile metrics for this operator.
const HELMRELEASE: &str = "controller=\"helmrelease\"";

/// Ten releases of a namespace: `r0`..`r4` on their own, `r5`..`r9` each on `r(i-5)`, and `r9`
/// also on `r8` (three levels).
fn namespace_releases(namespace: &str, count: usize) -> Vec<Release> {
    (0..count)
        .rev()
        .map(|i| {
            let mut dependencies = Vec::new();
            if i >= 5 {
                dependencies.push(format!("r{}", i - 5));
            }
            if i == 9 {
                dependencies.push("r8".to_owned());
            }
            Release::new(namespace, &format!("r{i}"), &dependencies)
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> BenchResult<()> {
    let namespaces = env_usize("HR_BENCH_NAMESPACES", 100).max(1);
    let per_namespace = env_usize("HR_BENCH_PER_NAMESPACE", 10).max(1);
    print_load();
    let cluster = Cluster::start().await?;
    let mut releases = Vec::new();
    for n in 0..namespaces {
        let namespace = format!("env-{n:03}");
        cluster.create_namespace(&namespace).await?;
        releases.extend(namespace_releases(&namespace, per_namespace));
    }
    let total = releases.len();
    let idle = cluster.operator_usage()?;
    let requests_before = cluster.requests();
    let metrics_before = cluster.metrics().await?;
    let templates_before = cluster.helm_templates();

    let started = Instant::now();
    cluster.create_releases(&releases).await?;
    let created = started.elapsed();
    let last = cluster
        .wait_ready(&releases, Duration::from_secs(600))
        .await?;
    let wall = last.duration_since(started);

    let usage = cluster.operator_usage()?;
    let requests = cluster.requests().since(&requests_before).https;
    let metrics = cluster.metrics().await?;
    let templates = cluster.helm_templates() - templates_before;
    let render = metrics
        .histogram("upstart_helmrelease_render_duration_seconds")
        .since(&metrics_before.histogram("upstart_helmrelease_render_duration_seconds"));
    let reconcile = metrics
        .labelled_histogram("upstart_reconcile_duration_seconds", HELMRELEASE)
        .since(
            &metrics_before.labelled_histogram("upstart_reconcile_duration_seconds", HELMRELEASE),
        );
    let errors = metrics.total("upstart_reconcile_errors_total")
        - metrics_before.total("upstart_reconcile_errors_total");
    let reconciles = reconcile.count;
    let handoffs = cluster.handoffs(&releases);
    let ready_at: Vec<Duration> = {
        let seen = common::lock_seen(&cluster);
        releases
            .iter()
            .filter_map(|r| seen.ready.get(&r.key()).map(|t| t.duration_since(started)))
            .collect()
    };

    println!(
        "scale: {total} releases ({namespaces} namespaces x {per_namespace}) all Ready in {:.1} s from the first create (created in {:.1} s; half Ready by {:.1} s) (target <= 120 s)",
        wall.as_secs_f64(),
        created.as_secs_f64(),
        percentile(&ready_at, 0.5).as_secs_f64(),
    );
    println!(
        "scale: operator peak RSS {:.1} MiB (VmHWM of the operator process; {:.1} MiB when idle before the load) (target <= 150 MiB)",
        usage.peak_rss_kib as f64 / 1024.0,
        idle.rss_kib as f64 / 1024.0,
    );
    println!(
        "scale: {:.1} API requests per release ({} requests from the operator over HTTPS while the {total} became Ready: {}) (no target; lower is better)",
        requests.total() as f64 / total as f64,
        requests.total(),
        requests,
    );
    println!(
        "scale: where the time went: operator CPU {:.1} s, its helm subprocesses {:.1} s CPU for {templates} `helm template` runs (render mean {}), {reconciles} reconciles (mean {}, p95 {}), {errors} failed reconciles",
        usage.cpu.saturating_sub(idle.cpu).as_secs_f64(),
        usage
            .children_cpu
            .saturating_sub(idle.children_cpu)
            .as_secs_f64(),
        ms_opt(render.mean()),
        ms_opt(reconcile.mean()),
        ms_opt(reconcile.quantile(0.95)),
    );
    let helm_cpu = usage.children_cpu.saturating_sub(idle.children_cpu);
    let bound = helm_cpu / cores() as u32;
    println!(
        "scale: render-CPU bound {:.1} s (helm subprocesses' CPU {:.1} s / {} cores): total time {:.1} s = {:.2} x the bound (SPEC §9: within 10 %, <= 1.10)",
        bound.as_secs_f64(),
        helm_cpu.as_secs_f64(),
        cores(),
        wall.as_secs_f64(),
        wall.as_secs_f64() / bound.as_secs_f64(),
    );
    println!(
        "scale: hand-off under this load: p50 {}, p95 {} over {} hand-offs (dependency seen Ready -> dependent's first object seen; includes fetch + render)",
        ms(percentile(&handoffs, 0.5)),
        ms(percentile(&handoffs, 0.95)),
        handoffs.len(),
    );
    let shown = env_usize("HR_BENCH_SHOW_SLOWEST", 1);
    for slow in cluster.handoff_details(&releases).iter().take(shown) {
        println!(
            "  slow hand-off: {}: dependencies Ready at {:.1} s, its first object applied at {:.1} s (from the first create)",
            slow.release,
            slow.dependencies_ready
                .duration_since(started)
                .as_secs_f64(),
            slow.applied.duration_since(started).as_secs_f64(),
        );
    }
    cluster.stop();
    Ok(())
}
