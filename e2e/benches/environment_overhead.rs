//! SPEC §9 environment time-to-ready overhead: an UpstartEnvironment must be Ready within 5 %
//! of its critical path when each release's workload takes at least a second to become ready.
//!
//! Runs the local cluster in process with every operator and `charts/` (as the e2e scenarios
//! do), applies the catalog templates of `examples/services/`, then creates environments one
//! at a time, each fresh (the previous one is deleted and gone first):
//! - the example environment (`examples/environment.yaml`), postgres made slowest;
//! - a synthetic chain: one inline service of `ENV_BENCH_CHAIN` (default 5) example-service
//!   releases, each depending on the previous one and reading its output.
//!
//! Kubernetes timestamps have whole seconds, so the bench uses its own clock: the instant
//! before the create call, and the instant its watch sees the environment's `Ready=True`.
//! Every object the operators and the simulator write is watched the same way, which gives
//! the per-release breakdown printed for the median run (where the time goes).
//!
//! The critical path is computed, not written down: each release's known delay is the
//! simulator's delay of its workloads (the global delay or their `ready-after` annotation, read
//! from the objects the release applied; a release without workloads takes none), and
//! `upstart_dag` finds the longest chain of the environment's dependency graph built from its
//! spec and the catalog templates. `ENV_BENCH_RUNS` (default 5) runs per environment.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use common::{
    BenchResult, OperatorFigures, OperatorMetrics, Recorder, WORKLOAD_KINDS, Watched,
    delete_and_wait, env_usize, helm_template_time, load_average, ms, read_example_environment,
    secs, start_local_cluster,
};
use kube::api::PostParams;
use kube::{Api, ResourceExt as _};
use serde_json::{Value, json};
use upstart_api::v1alpha1::{HelmRelease, UpstartEnvironment, UpstartService, UpstartServiceSpec};
use upstart_dag::{DependencyGraph, GraphInput, NodeId, NodeKind, Timing};
use upstart_e2e::TestEnv;
use upstart_workload_simulator::{Options, READY_AFTER, Settings};

/// Every simulated workload's delay unless its annotation says otherwise (SPEC §9: >= 1 s).
const WORKLOAD_DELAY: Duration = Duration::from_secs(1);
/// The example's postgres, slowest, so that the chain through it decides time-to-ready.
const POSTGRES_DELAY: &str = "6s";
const CHAIN: &str = "bench-chain";
const TARGET_PERCENT: f64 = 5.0;
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The simulated kinds the bench does not watch (it watches the three Upstart kinds and
/// [`WORKLOAD_KINDS`]): a release applying one is refused (its delay would be unknown).
const UNWATCHED_SIMULATED_KINDS: [&str; 3] = ["Pod", "PersistentVolumeClaim", "ReplicaSet"];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> BenchResult<()> {
    let runs = env_usize("ENV_BENCH_RUNS", 5).max(1);
    let chain_length = env_usize("ENV_BENCH_CHAIN", 5).max(2);
    let started = Instant::now();
    println!(
        "environment overhead bench: local cluster in process (all operators, charts/ as upstart-charts), \
         workload delay {} s unless annotated; shared 2-core machine, load average {} at start",
        WORKLOAD_DELAY.as_secs(),
        load_average()
    );
    if let Some(render) = helm_template_time().await {
        println!(
            "  reference: one `helm template` of charts/example-service takes {} here (median of 3; \
             every release renders once before its first apply)",
            ms(render)
        );
    }

    let operator_metrics = OperatorMetrics::default();
    let (env, client, recorder) = start_local_cluster(
        WORKLOAD_DELAY,
        operator_metrics.operators(),
        Watched::Everything,
    )
    .await?;

    let scenarios = [
        Scenario {
            title: "example environment".to_owned(),
            about: format!(
                "examples/environment.yaml with postgres ready-after {POSTGRES_DELAY}; bugsnag's Job \
                 takes its chart's 3 s, launch-darkly has no workload"
            ),
            shape: Shape::Example,
        },
        Scenario {
            title: format!("chain of {chain_length}"),
            about: format!(
                "one inline service of {chain_length} example-service releases, each depending on \
                 the previous one and reading its url output"
            ),
            shape: Shape::Chain(chain_length),
        },
    ];
    let mut summaries = Vec::new();
    for scenario in &scenarios {
        let mut results = Vec::new();
        for run in 1..=runs {
            let environment = scenario.shape.environment(run)?;
            let before = operator_metrics.snapshot();
            let mut result = run_once(&env, &recorder, scenario, &environment).await?;
            result.operator = operator_metrics.snapshot().since(&before);
            println!("  {} run {run}: {}", scenario.title, result.one_line());
            delete_and_wait(&client, &environment).await?;
            results.push(result);
        }
        let summary = summarize(scenario, &results);
        println!("{summary}");
        summaries.push(summary);
    }
    recorder.stop();
    env.finish().await?;
    println!(
        "bench took {:.0} s; load average {} at the end",
        started.elapsed().as_secs_f64(),
        load_average()
    );
    Ok(())
}

/// An environment to measure.
struct Scenario {
    title: String,
    about: String,
    shape: Shape,
}

/// The environments a scenario creates. Each run's environment gets a namespace of its own:
/// a new environment is a new namespace, which no render cached by the operator from an
/// earlier run can serve (the namespace is part of every release's render input).
enum Shape {
    Example,
    Chain(usize),
}

impl Shape {
    fn environment(&self, run: usize) -> BenchResult<UpstartEnvironment> {
        match self {
            Shape::Example => example_environment(run),
            Shape::Chain(length) => chain_environment(*length, run),
        }
    }
}

/// The example, unchanged but for postgres's delay and the namespace (its name stays, so the
/// release names the figures print are the example's).
fn example_environment(run: usize) -> BenchResult<UpstartEnvironment> {
    let mut value = read_example_environment()?;
    let name = value["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    value["spec"]["namespace"] = json!(format!("{name}-{run}"));
    value["spec"]["services"][0]["overrides"]["postgres"] =
        json!({"values": {"podAnnotations": {READY_AFTER: POSTGRES_DELAY}}});
    Ok(serde_json::from_value(value)?)
}

fn chain_environment(length: usize, run: usize) -> BenchResult<UpstartEnvironment> {
    let mut releases = serde_json::Map::new();
    for i in 1..=length {
        let mut release = json!({
            "chart": "upstart-charts/example-service",
            "version": "^0.1",
            "values": {"outputs": {"configMapName": format!("link{i}-outputs")}},
            "outputsFrom": [{"configMapRef": {"name": format!("link{i}-outputs")}, "keys": ["url"]}],
        });
        if i > 1 {
            let previous = format!("link{}", i - 1);
            release["dependencies"] = json!([{"name": previous}]);
            release["values"]["global"] =
                json!({"env": {"UPSTREAM_URL": format!("<< {previous}.outputs.url >>")}});
        }
        releases.insert(format!("link{i}"), release);
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "upstartoperators.upstart.com/v1alpha1",
        "kind": "UpstartEnvironment",
        "metadata": {"name": format!("{CHAIN}-{run}")},
        "spec": {"services": [{"name": "chain", "spec": {"helmReleases": releases}}]},
    }))?)
}

/// One release of the measured critical chain, times after the create call.
#[derive(Debug, Clone)]
struct Step {
    release: String,
    /// The simulator's delay of its workloads.
    delay: Duration,
    /// Its HelmRelease first seen.
    seen: Duration,
    /// Its last dependency Ready (a release or a service), if it has any.
    released: Option<(Duration, String)>,
    /// Its phase first seen `Installing`.
    installing: Option<Duration>,
    /// Its first workload first seen: the apply.
    applied: Option<Duration>,
    /// Its last workload ready (the simulator's status write).
    workloads_ready: Option<Duration>,
    /// Its HelmRelease `Ready=True` first seen.
    ready: Duration,
}

/// One environment, created and watched until Ready.
#[derive(Debug, Clone)]
struct RunResult {
    /// Create call -> `Ready=True` seen.
    ready: Duration,
    /// How long the create call itself took.
    create_call: Duration,
    /// The longest chain by known delays: release names and the total.
    theoretical: (Vec<(String, Duration)>, Duration),
    /// The chain that actually decided time-to-ready (`upstart_dag::critical_path` over the
    /// bench's own timings).
    chain: Vec<Step>,
    /// What the environment operator wrote in status.
    status_time_to_ready: Option<f64>,
    status_path: String,
    /// What the HelmRelease operator measured meanwhile.
    operator: OperatorFigures,
}

impl RunResult {
    fn overhead(&self) -> Duration {
        self.ready.saturating_sub(self.theoretical.1)
    }

    fn percent(&self) -> f64 {
        percent(self.ready, self.theoretical.1)
    }

    fn one_line(&self) -> String {
        format!(
            "Ready in {} = critical path {} + {} ({:+.1} %: {}); HelmRelease operator meanwhile: {}; environment status: timeToReadySeconds {}, critical path {}",
            secs(self.ready),
            secs(self.theoretical.1),
            ms(self.overhead()),
            self.percent(),
            Breakdown::of(self).compact(),
            self.operator,
            self.status_time_to_ready
                .map(|s| format!("{s:.0}"))
                .unwrap_or_else(|| "-".into()),
            self.status_path
        )
    }
}

fn percent(ready: Duration, path: Duration) -> f64 {
    (ready.as_secs_f64() - path.as_secs_f64()) / path.as_secs_f64() * 100.0
}

async fn run_once(
    env: &TestEnv,
    recorder: &Recorder,
    scenario: &Scenario,
    environment: &UpstartEnvironment,
) -> BenchResult<RunResult> {
    let client = env.client().clone();
    let environments: Api<UpstartEnvironment> = Api::all(client.clone());
    let t0 = Instant::now();
    let created = environments
        .create(&PostParams::default(), environment)
        .await?;
    let create_call = t0.elapsed();
    let uid = created.uid().ok_or("the created environment has no uid")?;
    let ready_at = loop {
        if let Some(at) = recorder.by_uid(&uid).and_then(|t| t.ready) {
            break at;
        }
        if t0.elapsed() > READY_TIMEOUT {
            let phase = recorder
                .by_uid(&uid)
                .and_then(|t| t.phases.last().map(|p| p.1.clone()));
            return Err(format!(
                "{}: not Ready after {} s (phase {phase:?})",
                scenario.title,
                READY_TIMEOUT.as_secs()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let ready = ready_at.saturating_duration_since(t0);

    let environment = environments.get(&created.name_any()).await?;
    let status = environment.status.clone().unwrap_or_default();
    let namespace = status
        .namespace
        .clone()
        .or_else(|| environment.spec.namespace.clone())
        .unwrap_or_else(|| environment.name_any());
    let graph = environment_graph(env, &environment).await?;
    let releases: Vec<HelmRelease> = env.list_in(&namespace).await?;
    for release in &releases {
        if !graph.contains(&NodeId::release(release.name_any())) {
            return Err(format!(
                "HelmRelease {} is not in the graph of the spec",
                release.name_any()
            )
            .into());
        }
    }
    let after = |at: Instant| at.saturating_duration_since(t0);
    let mut delays: HashMap<NodeId, Duration> = HashMap::new();
    let mut timings: HashMap<NodeId, Timing> = HashMap::new();
    let mut workload_times: HashMap<NodeId, (Option<Duration>, Option<Duration>)> = HashMap::new();
    for release in &releases {
        let name = release.name_any();
        let node = NodeId::release(&name);
        let mut delay = Duration::ZERO;
        let (mut applied, mut workloads_ready): (Option<Duration>, Option<Duration>) = (None, None);
        for entry in release.status.iter().flat_map(|s| s.inventory.iter()) {
            if UNWATCHED_SIMULATED_KINDS.contains(&entry.kind.as_str()) {
                return Err(format!(
                    "{name} applies a {}: its simulated delay is not measured by this bench",
                    entry.kind
                )
                .into());
            }
            if !WORKLOAD_KINDS.contains(&entry.kind.as_str()) {
                continue;
            }
            let object_namespace = entry.namespace.as_deref().unwrap_or(&namespace);
            let trace = recorder
                .find(&entry.kind, Some(object_namespace), &entry.name, t0)
                .ok_or_else(|| format!("{name}: {} {} was never seen", entry.kind, entry.name))?;
            delay = delay.max(workload_delay(&trace.object));
            let seen = after(trace.first_seen);
            applied = Some(applied.map_or(seen, |a| a.min(seen)));
            let ready = trace
                .ready
                .map(after)
                .ok_or_else(|| format!("{name}: {} {} never seen ready", entry.kind, entry.name))?;
            workloads_ready = Some(workloads_ready.map_or(ready, |r| r.max(ready)));
        }
        let trace = recorder
            .find("HelmRelease", Some(&namespace), &name, t0)
            .ok_or_else(|| format!("HelmRelease {name} was never seen"))?;
        let release_ready = trace
            .ready
            .map(after)
            .ok_or_else(|| format!("HelmRelease {name} never seen Ready"))?;
        timings.insert(
            node.clone(),
            Timing {
                created: after(trace.first_seen),
                started: applied.unwrap_or(release_ready),
                ready: release_ready,
            },
        );
        delays.insert(node.clone(), delay);
        workload_times.insert(node, (applied, workloads_ready));
    }

    let (path, total) = graph.longest_path(&delays);
    let theoretical = (
        path.iter()
            .map(|n| (n.name.clone(), delays.get(n).copied().unwrap_or_default()))
            .collect(),
        total,
    );
    let mut chain = Vec::new();
    for step in graph.critical_path(&timings) {
        let trace = recorder
            .find("HelmRelease", Some(&namespace), &step.node.name, t0)
            .ok_or("a release of the chain was never seen")?;
        let mut released: Option<(Duration, String)> = None;
        for dependency in graph.depends_on(&step.node) {
            let kind = match dependency.kind {
                NodeKind::HelmRelease => "HelmRelease",
                NodeKind::UpstartService => "UpstartService",
            };
            let at = recorder
                .find(kind, Some(&namespace), &dependency.name, t0)
                .and_then(|t| t.ready)
                .map(after)
                .ok_or_else(|| format!("{dependency} never seen Ready"))?;
            if released.as_ref().is_none_or(|(r, _)| at > *r) {
                released = Some((at, dependency.to_string()));
            }
        }
        let (applied, workloads_ready) =
            workload_times.get(&step.node).copied().unwrap_or_default();
        chain.push(Step {
            release: step.node.name.clone(),
            delay: delays.get(&step.node).copied().unwrap_or_default(),
            seen: after(trace.first_seen),
            released,
            installing: trace
                .phases
                .iter()
                .find(|(_, p)| p == "Installing")
                .map(|(at, _)| after(*at)),
            applied,
            workloads_ready,
            ready: timings.get(&step.node).map(|t| t.ready).unwrap_or_default(),
        });
    }
    let status_path = status
        .critical_path
        .iter()
        .map(|s| {
            format!(
                "{} (wait {:.0} s, install {:.0} s)",
                s.release, s.wait_seconds, s.install_seconds
            )
        })
        .collect::<Vec<_>>()
        .join(" -> ");
    Ok(RunResult {
        ready,
        create_call,
        theoretical,
        chain,
        status_time_to_ready: status.time_to_ready_seconds,
        status_path,
        operator: OperatorFigures::default(),
    })
}

/// The dependency graph of an environment, from its spec and its services' templates.
async fn environment_graph(
    env: &TestEnv,
    environment: &UpstartEnvironment,
) -> BenchResult<DependencyGraph> {
    let mut input = GraphInput::new();
    input.add_environment(&environment.name_any(), &environment.spec.helm_releases);
    let catalog: Api<UpstartService> =
        Api::namespaced(env.client().clone(), &env.catalog_namespace());
    for service in &environment.spec.services {
        if !upstart_dag::switches::keeps_service(&environment.spec, service) {
            continue;
        }
        let spec: UpstartServiceSpec = match (&service.spec, &service.template) {
            (Some(spec), _) => spec.clone(),
            (None, Some(template)) => catalog.get(&template.name).await?.spec,
            (None, None) => {
                return Err(format!("service {} has no spec nor template", service.name).into());
            }
        };
        input.add_service(&service.name, &spec);
    }
    let graph = DependencyGraph::build(&input);
    if let Some(problem) = graph.problems().first() {
        return Err(format!("the environment's graph: {problem}").into());
    }
    Ok(graph)
}

/// The simulator's delay for a workload: its own annotation, else its pod template's, else the
/// global delay (the simulator's own resolution).
fn workload_delay(object: &Value) -> Duration {
    let annotations = |v: &Value| -> Option<BTreeMap<String, String>> {
        v.as_object().map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
    };
    let own = annotations(&object["metadata"]["annotations"]);
    let template = annotations(&object["spec"]["template"]["metadata"]["annotations"]);
    let options = Options {
        ready_after: WORKLOAD_DELAY,
        ..Options::default()
    };
    Settings::resolve(&options, &[own.as_ref(), template.as_ref()])
        .0
        .ready_after
}

/// Where the time of one run went, along its measured critical chain: the segments telescope
/// from the create call to the environment's `Ready`, so they add up to the total.
#[derive(Debug, Default)]
struct Breakdown {
    /// One line per segment, for the detailed print.
    lines: Vec<String>,
    /// Create call -> the chain's first release seen (environment and service operators).
    children: Duration,
    /// Start (dependencies Ready, or seen) -> first workload applied, summed over the chain.
    handoffs: Duration,
    /// A dependency service's `Ready` after its release's, summed.
    services: Duration,
    /// Workloads ready later than their delay after the apply, summed.
    simulator: Duration,
    /// Workloads ready -> release `Ready`, summed; and releases without workloads, start -> Ready.
    release_status: Duration,
    /// Last release `Ready` -> environment `Ready`.
    environment_status: Duration,
    /// The chain's own delays minus the computed critical path (non-zero when the chain that
    /// decided is not the longest by delays).
    other_chain: Duration,
}

impl Breakdown {
    fn of(run: &RunResult) -> Breakdown {
        let mut b = Breakdown::default();
        b.lines.push(format!(
            "the create call returned after {} (counted in the children below)",
            ms(run.create_call)
        ));
        let mut previous_ready = Duration::ZERO;
        let mut chain_delays = Duration::ZERO;
        for (i, step) in run.chain.iter().enumerate() {
            chain_delays += step.delay;
            let start = match &step.released {
                Some((at, by)) => {
                    let gap = at.saturating_sub(previous_ready);
                    if i > 0 && !gap.is_zero() {
                        b.lines
                            .push(format!("{by} Ready {} after the previous release", ms(gap)));
                        b.services += gap;
                    }
                    *at
                }
                None => {
                    b.lines.push(format!(
                        "create call -> {} seen: {} (environment and service operators create the children)",
                        step.release,
                        ms(step.seen)
                    ));
                    b.children += step.seen;
                    step.seen
                }
            };
            let mut line = format!("{} (delay {}):", step.release, secs_short(step.delay));
            if let Some(installing) = step.installing {
                let _ = write!(
                    line,
                    " phase Installing seen {} after its start;",
                    signed_ms(installing, start)
                );
            }
            match (step.applied, step.workloads_ready) {
                (Some(applied), Some(workloads_ready)) => {
                    let handoff = applied.saturating_sub(start);
                    let simulated = workloads_ready.saturating_sub(applied);
                    let lag = simulated.saturating_sub(step.delay);
                    let to_ready = step.ready.saturating_sub(workloads_ready);
                    let _ = write!(
                        line,
                        " {} -> first workload applied {}, workloads ready {} later (delay + {} simulator), release Ready {} after",
                        if step.released.is_some() {
                            "dependencies Ready"
                        } else {
                            "seen"
                        },
                        ms(handoff),
                        ms(simulated),
                        ms(lag),
                        ms(to_ready)
                    );
                    b.handoffs += handoff;
                    b.simulator += lag;
                    b.release_status += to_ready;
                }
                _ => {
                    let took = step.ready.saturating_sub(start);
                    let _ = write!(line, " no workload; Ready {} after its start", ms(took));
                    b.release_status += took;
                }
            }
            b.lines.push(line);
            previous_ready = step.ready;
        }
        b.environment_status = run.ready.saturating_sub(previous_ready);
        b.lines.push(format!(
            "last release Ready -> environment Ready: {} (service and environment status)",
            ms(b.environment_status)
        ));
        b.other_chain = chain_delays.saturating_sub(run.theoretical.1);
        b
    }

    fn total(&self) -> Duration {
        self.children
            + self.handoffs
            + self.services
            + self.simulator
            + self.release_status
            + self.environment_status
            + self.other_chain
    }

    fn compact(&self) -> String {
        let mut out = format!(
            "children {}, hand-offs {}, simulator {}, release status {}, environment status {}",
            ms(self.children),
            ms(self.handoffs),
            ms(self.simulator),
            ms(self.release_status),
            ms(self.environment_status)
        );
        if !self.services.is_zero() {
            let _ = write!(out, ", services {}", ms(self.services));
        }
        if !self.other_chain.is_zero() {
            let _ = write!(
                out,
                ", a slower chain than computed {}",
                ms(self.other_chain)
            );
        }
        out
    }
}

/// The figure, the runs' spread, and where the time went in the median and the slowest run.
fn summarize(scenario: &Scenario, results: &[RunResult]) -> String {
    let mut sorted: Vec<&RunResult> = results.iter().collect();
    sorted.sort_by_key(|r| r.ready);
    let median = sorted[sorted.len() / 2];
    let worst = sorted[sorted.len() - 1];
    let (path, total) = &median.theoretical;
    let path_text = path
        .iter()
        .map(|(release, delay)| format!("{release} {}", secs_short(*delay)))
        .collect::<Vec<_>>()
        .join(" -> ");
    let same_path = results.iter().all(|r| r.theoretical == median.theoretical);
    let verdict = if worst.percent() <= TARGET_PERCENT {
        "met"
    } else if median.percent() <= TARGET_PERCENT {
        "met by the median, missed by the slowest run"
    } else {
        "MISSED"
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "environment overhead: {} Ready in {} median (max {}), critical path {} ({path_text}) = {:.1} % overhead median, {:.1} % max (target <= {TARGET_PERCENT:.0} %: {verdict}), median of {} runs",
        scenario.title,
        secs(median.ready),
        secs(worst.ready),
        secs(*total),
        median.percent(),
        worst.percent(),
        results.len()
    );
    let _ = writeln!(
        out,
        "  {}; critical path: upstart_dag's longest path over the workloads' simulator delays{}",
        scenario.about,
        if same_path {
            ""
        } else {
            " (it differed between runs: see each run's line)"
        }
    );
    let mut shown = vec![("median", median)];
    if !std::ptr::eq(median, worst) {
        shown.push(("slowest", worst));
    }
    for (which, run) in shown {
        let breakdown = Breakdown::of(run);
        let number = results
            .iter()
            .position(|r| std::ptr::eq(r, run))
            .map_or(0, |i| i + 1);
        let _ = writeln!(
            out,
            "  where the time went in the {which} run (run {number}; bench clock, in-process watches):"
        );
        for line in &breakdown.lines {
            let _ = writeln!(out, "    {line}");
        }
        let _ = writeln!(
            out,
            "    sum of the segments outside the delays: {} = the overhead {}",
            ms(breakdown.total()),
            ms(run.overhead())
        );
        let released: Vec<Duration> = run
            .chain
            .iter()
            .filter_map(|step| {
                let (at, _) = step.released.as_ref()?;
                Some(step.applied?.saturating_sub(*at))
            })
            .collect();
        if !released.is_empty() {
            let mean = released.iter().sum::<Duration>() / released.len() as u32;
            let _ = writeln!(
                out,
                "    hand-offs after a dependency: mean {} over {}; the HelmRelease operator this run: {}",
                ms(mean),
                released.len(),
                run.operator
            );
            let _ = writeln!(
                out,
                "      (its hand-off histogram stops before the render, so a hand-off is about: wake-up and decision (its hand-off mean) + render (its render mean; renders of releases starting together contend for the 2 cores) + apply until the first workload is seen)"
            );
        }
    }
    out.truncate(out.trim_end().len());
    out
}

fn secs_short(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// `at - start` in milliseconds, with its sign.
fn signed_ms(at: Duration, start: Duration) -> String {
    if at >= start {
        format!("+{} ms", (at - start).as_millis())
    } else {
        format!("-{} ms", (start - at).as_millis())
    }
}
