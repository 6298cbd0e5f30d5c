//! Issue 21 target 4, a fleet: `FLEET_BENCH_ENVIRONMENTS` (default 100) copies of the example
//! environment (`examples/environment.yaml`, 6 releases each) created at once, their
//! time-to-ready against two baselines measured in the same run:
//! - (a) one environment alone, created first on the idle cluster (`FLEET_BENCH_SINGLE_RUNS`,
//!   default 3, each deleted and gone before the next; the median is the baseline);
//! - (b) the render-CPU bound of the fleet: the CPU its `helm template` processes used, divided
//!   by the cores. Renders are the fleet's irreducible work, so no scheduling of the operators
//!   can make the p95 much smaller than that bound (target: p95 <= 1.2 x the bound).
//!
//! Runs the local cluster in process with every operator and `charts/` (as the e2e scenarios
//! do). The HelmRelease operator runs in the bench process, so helm is a child of the bench
//! process: the children CPU of `/proc/self/stat` (what `getrusage(RUSAGE_CHILDREN)` reports,
//! for children already waited for) counts every helm process. The operator runs helm through
//! a wrapper script that notes each call, to count the `helm template` runs.
//!
//! Workloads are instant (the simulator's delay 0 and the bugsnag Job's `simulatedDelay` 0s):
//! the bound is CPU only, and a workload delay would add wall time that neither baseline
//! scales with. `FLEET_BENCH_WORKLOAD_DELAY_MS` sets another delay for both.
//!
//! Time-to-ready uses the bench's clock: from just before an environment's create call to
//! the instant the bench's watch sees its `Ready=True` (Kubernetes timestamps have whole
//! seconds). The bench only watches environments, as its watch events cost the in-process
//! operators CPU.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    BenchResult, OperatorMetrics, Watched, delete_and_wait, env_usize, helm_template_time,
    load_average, ms, read_example_environment, secs, start_local_cluster,
};
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt as _};
use serde_json::{Value, json};
use upstart_api::v1alpha1::{HelmRelease, UpstartEnvironment};
use upstart_test_support::process::ProcessUsage;

/// Issue 21: p95 time-to-ready of the fleet <= 1.2 x the render-CPU bound.
const TARGET_RATIO: f64 = 1.2;
const SINGLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the bench looks at what its watch has seen.
const POLL: Duration = Duration::from_millis(20);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> BenchResult<()> {
    let size = env_usize("FLEET_BENCH_ENVIRONMENTS", 100).max(1);
    let single_runs = env_usize("FLEET_BENCH_SINGLE_RUNS", 3).max(1);
    let delay = Duration::from_millis(env_usize("FLEET_BENCH_WORKLOAD_DELAY_MS", 0) as u64);
    let fleet_timeout = Duration::from_secs(env_usize("FLEET_BENCH_TIMEOUT_SECS", 900) as u64);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let started = Instant::now();
    println!(
        "fleet bench: local cluster in process (all operators, charts/ as upstart-charts), workloads \
         {}; {cores} cores (available_parallelism), shared machine: load average {} at start",
        if delay.is_zero() {
            "instant (simulator delay 0, bugsnag's Job 0s)".to_owned()
        } else {
            format!("ready after {} (bugsnag's Job too)", ms(delay))
        },
        load_average()
    );
    if let Some(render) = helm_template_time().await {
        println!(
            "  reference: one `helm template` of charts/example-service takes {} here (median of 3, \
             wall clock, idle operators)",
            ms(render)
        );
    }

    // Read before anything is measured: getconf is a child process too.
    upstart_test_support::process::clock_ticks();
    let helm = upstart_local_cluster::locate_helm().ok_or("helm not found (UPSTART_HELM)")?;
    let counter = HelmCounter::new(&helm)?;
    let operator_metrics = OperatorMetrics::default();
    let (env, client, recorder) = start_local_cluster(
        delay,
        operator_metrics.operators_with_helm(Some(counter.wrapper.clone())),
        Watched::Environments,
    )
    .await?;
    let template = read_example_environment()?;
    let environments: Api<UpstartEnvironment> = Api::all(client.clone());

    // (a) One environment alone, on the idle cluster; the first run also fetches the charts.
    let mut singles = Vec::new();
    for run in 1..=single_runs {
        let environment = copy(&template, &format!("single-{run}"), delay)?;
        let before = Usage::now(&counter)?;
        let t0 = Instant::now();
        let created = environments
            .create(&PostParams::default(), &environment)
            .await?;
        let uid = created.uid().ok_or("the created environment has no uid")?;
        let ready = loop {
            if let Some(at) = recorder.by_uid(&uid).and_then(|t| t.ready) {
                break at.saturating_duration_since(t0);
            }
            if t0.elapsed() > SINGLE_TIMEOUT {
                return Err(format!(
                    "{}: not Ready after {} s",
                    created.name_any(),
                    SINGLE_TIMEOUT.as_secs()
                )
                .into());
            }
            tokio::time::sleep(POLL).await;
        };
        let used = Usage::now(&counter)?.since(&before);
        println!(
            "  single environment run {run}: Ready in {}; {} `helm template` runs, helm CPU {}",
            secs(ready),
            used.templates,
            ms(used.children_cpu)
        );
        delete_and_wait(&client, &environment).await?;
        singles.push(ready);
    }
    let mut sorted_singles = singles.clone();
    sorted_singles.sort();
    let single = sorted_singles[sorted_singles.len() / 2];
    println!(
        "baseline (a), one environment alone: Ready in {} (median of {} runs: {})",
        secs(single),
        singles.len(),
        singles
            .iter()
            .map(|s| secs(*s))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // The fleet, every create call started at once.
    let fleet: Vec<UpstartEnvironment> = (1..=size)
        .map(|i| copy(&template, &format!("fleet-{i:03}"), delay))
        .collect::<BenchResult<_>>()?;
    let fleet_load = load_average();
    let before = Usage::now(&counter)?;
    let metrics_before = operator_metrics.snapshot();
    let t0 = Instant::now();
    let creates = fleet.iter().map(|environment| {
        let environments = environments.clone();
        async move {
            let called = Instant::now();
            let created = environments
                .create(&PostParams::default(), environment)
                .await?;
            let uid = created.uid().ok_or("a created environment has no uid")?;
            BenchResult::Ok((uid, called, Instant::now()))
        }
    });
    let created = futures::future::try_join_all(creates).await?;
    let creates_done = created
        .iter()
        .map(|(_, _, returned)| returned.saturating_duration_since(t0))
        .max()
        .unwrap_or_default();
    let mut ready: Vec<Option<Instant>> = vec![None; created.len()];
    loop {
        for (slot, (uid, _, _)) in ready.iter_mut().zip(&created) {
            if slot.is_none() {
                *slot = recorder.by_uid(uid).and_then(|t| t.ready);
            }
        }
        let waiting = ready.iter().filter(|r| r.is_none()).count();
        if waiting == 0 {
            break;
        }
        if t0.elapsed() > fleet_timeout {
            let phases: Vec<String> = created
                .iter()
                .zip(&ready)
                .filter(|(_, r)| r.is_none())
                .take(5)
                .map(|((uid, _, _), _)| {
                    recorder.by_uid(uid).map_or_else(
                        || format!("{uid} never seen"),
                        |t| {
                            let phase = t.phases.last().map_or("-", |(_, p)| p.as_str());
                            format!("{} {phase}", t.name)
                        },
                    )
                })
                .collect();
            return Err(format!(
                "{waiting} of {size} environments not Ready after {} s (some: {})",
                fleet_timeout.as_secs(),
                phases.join(", ")
            )
            .into());
        }
        tokio::time::sleep(POLL).await;
    }
    let used = Usage::now(&counter)?.since(&before);
    let operator = operator_metrics.snapshot().since(&metrics_before);

    let all_ready = ready
        .iter()
        .flatten()
        .map(|at| at.saturating_duration_since(t0))
        .max()
        .unwrap_or_default();
    let mut times: Vec<Duration> = created
        .iter()
        .zip(&ready)
        .filter_map(|((_, called, _), at)| Some(at.as_ref()?.saturating_duration_since(*called)))
        .collect();
    times.sort();
    let releases = fleet_releases(&client, &fleet).await?;
    let bound = used.children_cpu / cores as u32;
    let ratios = |d: Duration| {
        format!(
            "{:.2} x single, {:.2} x bound",
            ratio(d, single),
            ratio(d, bound)
        )
    };
    let p95 = percentile(&times, 95);
    let verdict = if ratio(p95, bound) <= TARGET_RATIO {
        "met"
    } else {
        "MISSED"
    };
    println!(
        "fleet: {size} environments, {releases} releases, created at once (the create calls returned \
         within {}); load average {fleet_load} at its start",
        ms(creates_done)
    );
    println!("  all Ready in {} = {}", secs(all_ready), ratios(all_ready));
    println!(
        "  time-to-ready p50 {} ({}), p95 {} ({}; target p95 <= {TARGET_RATIO} x bound: {verdict}), max {} ({})",
        secs(percentile(&times, 50)),
        ratios(percentile(&times, 50)),
        secs(p95),
        ratios(p95),
        secs(times.last().copied().unwrap_or_default()),
        ratios(times.last().copied().unwrap_or_default()),
    );
    println!(
        "  baseline (b), render-CPU bound: helm CPU {} over {} `helm template` runs (mean {} CPU each) / {cores} cores = {}",
        secs(used.children_cpu),
        used.templates,
        ms(used.children_cpu / used.templates.max(1) as u32),
        secs(bound)
    );
    println!(
        "  the bench process meanwhile (operators, control plane, simulator, the bench's watch): CPU {}; \
         with helm's, {} over {cores} cores = {} (all Ready = {:.2} x that)",
        secs(used.own_cpu),
        secs(used.own_cpu + used.children_cpu),
        secs((used.own_cpu + used.children_cpu) / cores as u32),
        ratio(all_ready, (used.own_cpu + used.children_cpu) / cores as u32)
    );
    println!(
        "  the HelmRelease operator meanwhile: {operator} (its renders count render cache hits)"
    );

    recorder.stop();
    env.finish().await?;
    println!(
        "bench took {:.0} s; load average {} at the end",
        started.elapsed().as_secs_f64(),
        load_average()
    );
    Ok(())
}

/// The example environment named `<its name>-<suffix>` in a namespace of the same name, its
/// workloads (bugsnag's Job included) ready after `delay`.
fn copy(template: &Value, suffix: &str, delay: Duration) -> BenchResult<UpstartEnvironment> {
    let mut value = template.clone();
    let name = format!(
        "{}-{suffix}",
        value["metadata"]["name"].as_str().unwrap_or("environment")
    );
    value["metadata"]["name"] = json!(name);
    value["spec"]["namespace"] = json!(name);
    let services = value["spec"]["services"]
        .as_array_mut()
        .ok_or("the example environment has no services")?;
    let example = services
        .iter_mut()
        .find(|s| s["name"] == "example-service")
        .ok_or("the example environment has no example-service")?;
    example["overrides"]["bugsnag"] =
        json!({"values": {"simulatedDelay": format!("{}ms", delay.as_millis())}});
    Ok(serde_json::from_value(value)?)
}

/// How many HelmReleases the fleet's namespaces hold.
async fn fleet_releases(client: &kube::Client, fleet: &[UpstartEnvironment]) -> BenchResult<usize> {
    let namespaces: std::collections::HashSet<String> = fleet
        .iter()
        .filter_map(|e| e.spec.namespace.clone())
        .collect();
    let releases = Api::<HelmRelease>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    Ok(releases
        .items
        .iter()
        .filter(|r| r.namespace().is_some_and(|ns| namespaces.contains(&ns)))
        .count())
}

/// Nearest-rank percentile of sorted durations.
fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

/// A helm that notes each call's first argument in a log, then runs the real helm (`exec`:
/// the same process, so its CPU is the helm process's, plus the shell's start).
struct HelmCounter {
    /// Removed with the bench.
    _dir: tempfile::TempDir,
    wrapper: PathBuf,
    log: PathBuf,
}

impl HelmCounter {
    fn new(helm: &Path) -> BenchResult<HelmCounter> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::Builder::new().prefix("fleet-helm-").tempdir()?;
        let wrapper = dir.path().join("helm");
        let log = dir.path().join("calls");
        std::fs::write(&log, "")?;
        // The renderer clears helm's environment (PATH included): absolute paths only, and
        // printf is a shell builtin. Appends of one short line do not interleave.
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$1\" >> {}\nexec {} \"$@\"\n",
                shell_quote(&log),
                shell_quote(helm)
            ),
        )?;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
        Ok(HelmCounter {
            _dir: dir,
            wrapper,
            log,
        })
    }

    /// `helm template` calls so far.
    fn templates(&self) -> BenchResult<usize> {
        Ok(std::fs::read_to_string(&self.log)?
            .lines()
            .filter(|l| *l == "template")
            .count())
    }
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// CPU of the bench process and of its children, and the helm templates run, at one instant.
#[derive(Debug, Clone, Copy)]
struct Usage {
    own_cpu: Duration,
    /// User + system CPU of the children already waited for (`cutime` + `cstime`).
    children_cpu: Duration,
    templates: usize,
}

impl Usage {
    fn now(counter: &HelmCounter) -> BenchResult<Usage> {
        let this = ProcessUsage::of_self()?;
        Ok(Usage {
            own_cpu: this.cpu,
            children_cpu: this.children_cpu,
            templates: counter.templates()?,
        })
    }

    fn since(&self, before: &Usage) -> Usage {
        Usage {
            own_cpu: self.own_cpu.saturating_sub(before.own_cpu),
            children_cpu: self.children_cpu.saturating_sub(before.children_cpu),
            templates: self.templates.saturating_sub(before.templates),
        }
    }
}
