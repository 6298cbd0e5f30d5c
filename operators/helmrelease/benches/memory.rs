//! SPEC §9 memory at scale (issue 21, target 5): `HR_BENCH_MEMORY_RELEASES` independent
//! releases (default 10 000) in namespaces of 100, created at once; once all are Ready and
//! `HR_BENCH_MEMORY_SETTLE_SECONDS` (default 10) have passed, the operator's RSS at steady
//! state (target <= 300 MiB). Then the operator is killed and started again with the same
//! flags: its startup, the time to `/readyz` and to its first full sync (every release
//! reconciled once), and its RSS after that.

mod common;

use std::time::{Duration, Instant};

use common::{BenchResult, Cluster, Metrics, Release, Usage, env_usize, print_load};

/// Releases per namespace.
const PER_NAMESPACE: usize = 100;
/// The first full sync is over once the reconcile count has not moved for this long.
const QUIET: Duration = Duration::from_secs(2);
const RECONCILES: &str = "upstart_reconciles_total{controller=\"helmrelease\"}";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> BenchResult<()> {
    let count = env_usize("HR_BENCH_MEMORY_RELEASES", 10_000).max(1);
    let settle = Duration::from_secs(env_usize("HR_BENCH_MEMORY_SETTLE_SECONDS", 10) as u64);
    print_load();
    let mut cluster = Cluster::start().await?;
    let namespaces = count.div_ceil(PER_NAMESPACE);
    let mut releases = Vec::with_capacity(count);
    for n in 0..namespaces {
        let namespace = format!("mem-{n:03}");
        cluster.create_namespace(&namespace).await?;
        let here = PER_NAMESPACE.min(count - n * PER_NAMESPACE);
        releases.extend((0..here).map(|i| Release::new(&namespace, &format!("r{i:02}"), &[])));
    }
    let idle = cluster.operator_usage()?;

    let started = Instant::now();
    cluster.create_releases(&releases).await?;
    let created = started.elapsed();
    let last = cluster
        .wait_ready(&releases, Duration::from_secs(3600))
        .await?;
    println!(
        "memory: {count} releases ({namespaces} namespaces of up to {PER_NAMESPACE}) all Ready in {:.1} s from the first create (created in {:.1} s)",
        last.duration_since(started).as_secs_f64(),
        created.as_secs_f64(),
    );
    tokio::time::sleep(settle).await;
    let steady = cluster.operator_usage()?;
    println!(
        "memory: operator RSS at steady state {} (VmRSS, {} s after the last Ready), peak {} (VmHWM), {} when idle before the load (target <= 300 MiB at 10000)",
        mib(steady.rss_kib),
        settle.as_secs(),
        mib(steady.peak_rss_kib),
        mib(idle.rss_kib),
    );

    let templates_before = cluster.helm_templates();
    let requests_before = cluster.requests();
    let (writes_before, _) = cluster.writes(&releases);
    let restarted = cluster.restart_operator().await?;
    let sync = first_full_sync(&cluster, count).await?;
    let after = cluster.operator_usage()?;
    let metrics = cluster.metrics().await?;
    let templates = cluster.helm_templates() - templates_before;
    let requests = cluster.requests().since(&requests_before).https;
    let (writes, _) = cluster.writes(&releases);
    let applied = metrics.value("upstart_helmrelease_objects_applied_total");
    println!(
        "memory: restart (SIGKILL, then the same flags): /readyz OK after {:.2} s; {count} reconciles after {:.2} s (the first full sync, if none was reconciled twice); reconciles quiet for {} s from {:.2} s ({} reconciles, {} failed)",
        restarted.ready_after.as_secs_f64(),
        sync.reached.duration_since(restarted.started).as_secs_f64(),
        QUIET.as_secs(),
        sync.quiet.duration_since(restarted.started).as_secs_f64(),
        sync.reconciles,
        metrics.total("upstart_reconcile_errors_total") as u64,
    );
    println!(
        "memory: startup cost: {templates} helm template runs, {applied} objects applied, {} HelmRelease writes, {} API requests ({requests})",
        writes - writes_before,
        requests.total(),
    );
    println!(
        "memory: operator RSS after the startup {} (VmRSS), peak {} (VmHWM of the new process), CPU {:.1} s, its helm subprocesses {:.1} s",
        mib(after.rss_kib),
        mib(after.peak_rss_kib),
        after.cpu.as_secs_f64(),
        after.children_cpu.as_secs_f64(),
    );
    cluster.stop();
    Ok(())
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// When the restarted operator's reconcile count reached `count`, and when it last moved
/// before staying still for [`QUIET`].
struct Sync {
    reached: Instant,
    quiet: Instant,
    reconciles: f64,
}

/// Polls the new process's `/metrics` (its counters start at 0) every 50 ms.
async fn first_full_sync(cluster: &Cluster, count: usize) -> BenchResult<Sync> {
    let deadline = Instant::now() + Duration::from_secs(1800);
    let mut reached = None;
    let mut last_change = Instant::now();
    let mut last = 0.0;
    loop {
        let now = Instant::now();
        let reconciles = reconciles(&cluster.metrics().await?);
        if reconciles != last {
            last = reconciles;
            last_change = now;
        }
        if reached.is_none() && reconciles >= count as f64 {
            reached = Some(now);
        }
        if let Some(reached) = reached
            && now.duration_since(last_change) >= QUIET
        {
            return Ok(Sync {
                reached,
                quiet: last_change,
                reconciles,
            });
        }
        if now > deadline {
            let usage = Usage::of(cluster.operator_pid)?;
            return Err(format!(
                "the restarted operator made {reconciles} reconciles of {count} in 30 min (RSS {}):\n{}",
                mib(usage.rss_kib),
                cluster.operator_log_tail()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn reconciles(metrics: &Metrics) -> f64 {
    metrics.value(RECONCILES)
}
