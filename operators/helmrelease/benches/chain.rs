//! SPEC §9 chains, the operator in its own process.
//!
//! 1. Instant workloads: a chain of releases, each depending on the one before, Ready in
//!    <= 5 s in total for 20.
//! 2. Per-hop overhead (issue 21): a chain whose workloads each take a delay to become ready,
//!    each release consuming the previous one's output, all created at once, against its
//!    critical path (length x delay: target within 2.5 %, <= 12 ms per hop) and against what a
//!    user would script on the same control plane: sequential `helm install --wait` of the same
//!    chart, each reading the previous release's output with kubectl.
//!
//! Environment: `HR_BENCH_CHAIN_RUNS` (default 3) runs of each part, one after another;
//! `HR_BENCH_CHAIN_LENGTH` (default 20) releases per chain; `HR_BENCH_WORKLOAD_DELAY_MS`
//! (default 500) for the second part (0 skips it).

mod common;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use upstart_api::names::release_label_value;

use common::{
    BenchResult, Cluster, ClusterOptions, HopPhases, Release, chain, env_usize, lock_seen, ms,
    ms_opt, percentile, print_load, settings_config_map,
};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> BenchResult<()> {
    let runs = env_usize("HR_BENCH_CHAIN_RUNS", 3).max(1);
    let length = env_usize("HR_BENCH_CHAIN_LENGTH", 20).max(1);
    let delay = Duration::from_millis(env_usize("HR_BENCH_WORKLOAD_DELAY_MS", 500) as u64);
    print_load();
    instant_chains(runs, length).await?;
    if !delay.is_zero() {
        per_hop(runs, length, delay).await?;
    }
    Ok(())
}

/// SPEC §9: chains with instant workloads, one after another.
async fn instant_chains(runs: usize, length: usize) -> BenchResult<()> {
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

/// Issue 21, target 1: the operator's chain against its critical path and against the
/// sequential helm script, alternating in each run so that both see the same load.
async fn per_hop(runs: usize, length: usize, delay: Duration) -> BenchResult<()> {
    let cluster = Cluster::start_with(ClusterOptions {
        workload_delay: delay,
    })
    .await?;
    let critical = delay * length as u32;
    let mut operator_walls = Vec::new();
    let mut script_walls = Vec::new();
    let mut ratios = Vec::new();
    let mut installs = Vec::new();
    let mut phases = Vec::new();
    // Creation call -> the head of the chain's first object: what the chain pays once.
    let mut starts = Vec::new();
    // The create calls alone (in process, all at once), part of that.
    let mut creates = Vec::new();
    for run in 0..runs {
        let namespace = format!("hop-{run}");
        cluster.create_namespace(&namespace).await?;
        let releases: Vec<Release> = chain(&namespace, "link", length)
            .into_iter()
            .map(|r| Release { wired: true, ..r })
            .collect();
        let started = Instant::now();
        cluster.create_releases(&releases).await?;
        creates.push(started.elapsed());
        let last = cluster
            .wait_ready(&releases, Duration::from_secs(300))
            .await?;
        let operator = last.duration_since(started);
        let handoffs = cluster.handoffs(&releases);
        phases.extend(cluster.hop_phases(&releases, delay));
        if let Some(first) = lock_seen(&cluster)
            .first_object
            .get(&release_label_value(&namespace, "link-00"))
        {
            starts.push(first.saturating_duration_since(started));
        }
        check_last_output(&cluster, &namespace, length).await?;

        let namespace = format!("script-{run}");
        cluster.create_namespace(&namespace).await?;
        let script = helm_script(&cluster, &namespace, length, delay).await?;
        println!(
            "per-hop run {}: operator {length} releases Ready in {} (critical path {}: {}; hand-off p50 {}, p95 {}); helm script {} ({}); operator / script {:.2}",
            run + 1,
            ms(operator),
            ms(critical),
            overhead(operator, critical, length),
            ms(percentile(&handoffs, 0.5)),
            ms(percentile(&handoffs, 0.95)),
            ms(script.wall),
            overhead(script.wall, critical, length),
            operator.as_secs_f64() / script.wall.as_secs_f64(),
        );
        operator_walls.push(operator);
        script_walls.push(script.wall);
        ratios.push(operator.as_secs_f64() / script.wall.as_secs_f64());
        installs.extend(script.installs);
    }
    let operator = percentile(&operator_walls, 0.5);
    let script = percentile(&script_walls, 0.5);
    ratios.sort_by(f64::total_cmp);
    println!(
        "chain per hop: {length} releases, workloads ready after {}, each consuming the previous output, created at once: Ready in {} (median of {runs} runs; best {}, worst {}) against a critical path of {}: {} (target <= 2.5 %, <= 12 ms per hop)",
        ms(delay),
        ms(operator),
        ms(percentile(&operator_walls, 0.0)),
        ms(percentile(&operator_walls, 1.0)),
        ms(critical),
        overhead(operator, critical, length),
    );
    println!(
        "chain per hop baseline: {length} sequential `helm install --wait` of the same chart (local chart directory), each reading the previous output with kubectl: {} (median of {runs}; best {}, worst {}): {}; operator / script {:.2} (median of the per-run ratios)",
        ms(script),
        ms(percentile(&script_walls, 0.0)),
        ms(percentile(&script_walls, 1.0)),
        overhead(script, critical, length),
        ratios[ratios.len() / 2],
    );
    print_hop_phases(&phases, &starts, &creates, length);
    println!(
        "  helm --wait check: every Deployment was Available when its `helm install --wait` returned; installs took {} to {} (median {}) for a workload delay of {}",
        ms(percentile(&installs, 0.0)),
        ms(percentile(&installs, 1.0)),
        ms(percentile(&installs, 0.5)),
        ms(delay),
    );
    cluster.stop();
    Ok(())
}

/// Where a hop's time beyond the workload delay went (medians over every hop of every run).
fn print_hop_phases(
    phases: &[Option<HopPhases>],
    starts: &[Duration],
    creates: &[Duration],
    length: usize,
) {
    let seen: Vec<HopPhases> = phases.iter().flatten().copied().collect();
    let median = |phase: fn(&HopPhases) -> Duration| {
        let values: Vec<Duration> = seen.iter().map(phase).collect();
        format!("{:.1} ms", percentile(&values, 0.5).as_secs_f64() * 1000.0)
    };
    println!(
        "  per hop, beyond the workload delay (medians of {} hops of {}): dependency Ready -> first object {}; -> Deployment created {}; -> Available beyond the delay {}; -> release Ready {}",
        seen.len(),
        phases.len(),
        median(|p| p.handoff),
        median(|p| p.apply),
        median(|p| p.workload_beyond_delay),
        median(|p| p.ready),
    );
    println!(
        "  once per chain: creation of the {} releases (one call each, the head last) -> the head's first object {} (median; the create calls returned after {})",
        length,
        ms(percentile(starts, 0.5)),
        ms(percentile(creates, 0.5)),
    );
}

/// `+X % (Y ms per hop)` of `wall` over the critical path.
fn overhead(wall: Duration, critical: Duration, length: usize) -> String {
    let over = wall.as_secs_f64() - critical.as_secs_f64();
    format!(
        "{:+.1} % ({:+.1} ms per hop)",
        over / critical.as_secs_f64() * 100.0,
        over * 1000.0 / length as f64
    )
}

/// Fails unless the last release's value went through every hop (so the chain measured is
/// one of outputs, not only of Ready conditions).
async fn check_last_output(cluster: &Cluster, namespace: &str, length: usize) -> BenchResult<()> {
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(cluster.client.clone(), namespace);
    let last = format!("link-{:02}", length - 1);
    let message = config_maps
        .get(&settings_config_map(&last))
        .await?
        .data
        .and_then(|d| d.get("message").cloned())
        .unwrap_or_default();
    let hops = message.matches("from link-").count();
    if hops + 1 != length || !message.ends_with("release link-00") {
        return Err(format!(
            "{}: the last release's message did not go through the chain: {message:?}",
            release_label_value(namespace, &last)
        )
        .into());
    }
    Ok(())
}

/// One run of the sequential script.
struct ScriptRun {
    wall: Duration,
    /// How long each `helm install --wait` took.
    installs: Vec<Duration>,
}

/// What a user would script: for each link in order, read the previous release's message
/// with kubectl, then `helm install --wait` the bench chart with a message made of it. Fails
/// when a Deployment is not Available once its install returned (helm did not wait).
async fn helm_script(
    cluster: &Cluster,
    namespace: &str,
    length: usize,
    delay: Duration,
) -> BenchResult<ScriptRun> {
    let helm_home = cluster.dir().join("helm-home");
    let kubeconfig = cluster.kubeconfig().to_owned();
    let chart = cluster.chart_dir();
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), namespace);
    let mut installs = Vec::new();
    let started = Instant::now();
    for i in 0..length {
        let name = format!("link-{i:02}");
        let message = if i == 0 {
            format!("release {name}")
        } else {
            let previous = format!("link-{:02}", i - 1);
            let value = run(
                tokio::process::Command::new(upstart_test_support::kubectl())
                    .arg("--kubeconfig")
                    .arg(&kubeconfig)
                    .args(["--namespace", namespace, "get", "configmap"])
                    .arg(settings_config_map(&previous))
                    .arg("--output=jsonpath={.data.message}"),
            )
            .await?;
            format!("from {previous}: {value}")
        };
        let install = Instant::now();
        run(tokio::process::Command::new(upstart_test_support::helm())
            .env("HELM_CACHE_HOME", helm_home.join("cache"))
            .env("HELM_CONFIG_HOME", helm_home.join("config"))
            .env("HELM_DATA_HOME", helm_home.join("data"))
            .arg("install")
            .arg(&name)
            .arg(&chart)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--namespace", namespace, "--wait", "--timeout=120s"])
            .arg("--set")
            .arg(format!("message={message}")))
        .await?;
        let took = install.elapsed();
        installs.push(took);
        let available = deployments
            .get(&name)
            .await?
            .status
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        if available < 1 || took < delay {
            return Err(format!(
                "helm install --wait of {namespace}/{name} returned after {} with {available} available replicas: it did not wait for the simulated workload ({})",
                ms(took),
                ms(delay)
            )
            .into());
        }
    }
    Ok(ScriptRun {
        wall: started.elapsed(),
        installs,
    })
}

/// Runs a command to its end; its stdout, or an error with its stderr.
async fn run(command: &mut tokio::process::Command) -> BenchResult<String> {
    let output = command.stdin(std::process::Stdio::null()).output().await?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(output.stdout)?)
}
