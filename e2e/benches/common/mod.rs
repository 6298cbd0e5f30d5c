//! What the e2e benches share: the HelmRelease operator run in process with its metrics at
//! hand, the bench's own watches (a [`Trace`] per object, stamped with the bench's clock), the
//! example environment and the formatting of figures.

#![allow(
    dead_code,
    reason = "each benchmark uses the part of this module it needs"
)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::DeleteParams;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, Resource, ResourceExt as _};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use upstart_api::v1alpha1::{HelmRelease, UpstartEnvironment, UpstartService};
use upstart_e2e::TestEnv;
use upstart_local_cluster::{
    LocalClusterOptions, Operator, OperatorContext, OperatorSet, Readiness, StopSignal, readiness,
    run_in_process,
};
use upstart_release_engine::health;

pub type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// How long a deleted environment may take to be gone with its namespace.
const GONE_TIMEOUT: Duration = Duration::from_secs(90);

/// The simulated workload kinds the example charts render, which [`Watched::Everything`]
/// watches.
pub const WORKLOAD_KINDS: [&str; 4] = ["Deployment", "StatefulSet", "DaemonSet", "Job"];

/// What a [`Recorder`] watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watched {
    /// The three Upstart kinds and the workloads: where the time of one environment goes.
    Everything,
    /// UpstartEnvironments only: every watch event costs the in-process operators CPU, so a
    /// bench that needs environments' time-to-ready only watches them.
    Environments,
}

/// What one object went through, stamped with the bench's clock when its watch event arrived.
#[derive(Debug, Clone)]
pub struct Trace {
    pub kind: &'static str,
    pub namespace: Option<String>,
    pub name: String,
    pub first_seen: Instant,
    pub ready: Option<Instant>,
    /// `status.phase` changes.
    pub phases: Vec<(Instant, String)>,
    /// The latest object seen.
    pub object: Value,
}

/// The local cluster a bench measures: every operator as `operators` run them, workloads ready
/// after `delay`, the example catalog applied, and a recorder of what `watched` names. Refuses a
/// real cluster (`UPSTART_E2E_KUBECONFIG`): the figures are the local cluster's.
pub async fn start_local_cluster(
    delay: Duration,
    operators: OperatorSet,
    watched: Watched,
) -> BenchResult<(TestEnv, Client, Recorder)> {
    let env = TestEnv::start_with(LocalClusterOptions {
        workload_delay: delay,
        operators,
        ..TestEnv::local_options()
    })
    .await?;
    if env.local().is_none() {
        return Err(
            "this benchmark measures the local cluster: unset UPSTART_E2E_KUBECONFIG".into(),
        );
    }
    let client = env.client().clone();
    let recorder = Recorder::start(&client, watched).await?;
    env.apply_catalog(&["examples/services"]).await?;
    Ok((env, client, recorder))
}

/// Watches (every namespace) the Upstart kinds and the workloads, or only the environments,
/// keeping a [`Trace`] per uid.
#[derive(Clone)]
pub struct Recorder {
    traces: Arc<Mutex<HashMap<String, Trace>>>,
    watches: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Recorder {
    /// Starts the watches and returns once each has listed what exists.
    pub async fn start(client: &Client, watched: Watched) -> BenchResult<Recorder> {
        let recorder = Recorder {
            traces: Arc::default(),
            watches: Arc::default(),
        };
        let listed = Arc::new(AtomicUsize::new(0));
        recorder.watch::<UpstartEnvironment>(client, "UpstartEnvironment", &listed);
        let mut watchers = 1;
        if watched == Watched::Everything {
            recorder.watch::<UpstartService>(client, "UpstartService", &listed);
            recorder.watch::<HelmRelease>(client, "HelmRelease", &listed);
            recorder.watch::<Deployment>(client, "Deployment", &listed);
            recorder.watch::<StatefulSet>(client, "StatefulSet", &listed);
            recorder.watch::<DaemonSet>(client, "DaemonSet", &listed);
            recorder.watch::<Job>(client, "Job", &listed);
            watchers += 6;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while listed.load(Ordering::SeqCst) < watchers {
            if Instant::now() > deadline {
                return Err("the bench's watches did not start within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(recorder)
    }

    fn watch<K>(&self, client: &Client, kind: &'static str, listed: &Arc<AtomicUsize>)
    where
        K: Resource
            + Clone
            + DeserializeOwned
            + Serialize
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::all(client.clone());
        let traces = self.traces.clone();
        let listed = listed.clone();
        let watch = tokio::spawn(async move {
            let mut counted = false;
            let mut events =
                std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
            while let Some(event) = events.next().await {
                let at = Instant::now();
                match event {
                    Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                        if let Ok(value) = serde_json::to_value(&object)
                            && let Ok(mut traces) = traces.lock()
                        {
                            observe(&mut traces, kind, value, at);
                        }
                    }
                    Ok(watcher::Event::InitDone) if !counted => {
                        counted = true;
                        listed.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(error) => eprintln!("bench: watching {kind}: {error}"),
                }
            }
        });
        if let Ok(mut watches) = self.watches.lock() {
            watches.push(watch);
        }
    }

    /// Ends the watches (before the cluster stops, so they do not report its going away).
    pub fn stop(&self) {
        if let Ok(mut watches) = self.watches.lock() {
            for watch in watches.drain(..) {
                watch.abort();
            }
        }
    }

    /// The latest trace of that object first seen at or after `since`.
    pub fn find(
        &self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        since: Instant,
    ) -> Option<Trace> {
        let traces = self.traces.lock().ok()?;
        traces
            .values()
            .filter(|t| t.kind == kind && t.namespace.as_deref() == namespace && t.name == name)
            .filter(|t| t.first_seen >= since)
            .max_by_key(|t| t.first_seen)
            .cloned()
    }

    pub fn by_uid(&self, uid: &str) -> Option<Trace> {
        self.traces.lock().ok()?.get(uid).cloned()
    }
}

fn observe(traces: &mut HashMap<String, Trace>, kind: &'static str, object: Value, at: Instant) {
    let Some(uid) = object["metadata"]["uid"].as_str().map(str::to_owned) else {
        return;
    };
    let trace = traces.entry(uid).or_insert_with(|| Trace {
        kind,
        namespace: object["metadata"]["namespace"].as_str().map(str::to_owned),
        name: object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        first_seen: at,
        ready: None,
        phases: Vec::new(),
        object: Value::Null,
    });
    let ready = if WORKLOAD_KINDS.contains(&kind) {
        health::assess(&object).is_healthy()
    } else {
        matches!(readiness(&object), Readiness::Ready)
    };
    if ready && trace.ready.is_none() {
        trace.ready = Some(at);
    }
    if let Some(phase) = object["status"]["phase"].as_str()
        && trace.phases.last().map(|(_, p)| p.as_str()) != Some(phase)
    {
        trace.phases.push((at, phase.to_owned()));
    }
    trace.object = object;
}

/// The HelmRelease operator's metrics registry, kept from its start: the local cluster runs it
/// in process, so its render and chart fetch histograms can be read without a server.
#[derive(Clone, Default)]
pub struct OperatorMetrics {
    slot: Arc<Mutex<Option<upstart_operator_runtime::Metrics>>>,
}

impl OperatorMetrics {
    /// `OperatorSet::all()` with its HelmRelease operator swapped for the same controller and
    /// configuration (as upstart-local-cluster's entry builds it) that hands over its metrics.
    pub fn operators(&self) -> OperatorSet {
        self.operators_with_helm(None)
    }

    /// [`OperatorMetrics::operators`], its HelmRelease operator running `helm` (a wrapper that
    /// counts its calls, say) instead of the helm the cluster found.
    pub fn operators_with_helm(&self, helm: Option<PathBuf>) -> OperatorSet {
        let slot = self.slot.clone();
        let helmrelease = Operator::new(
            "helmrelease",
            &["HelmRelease"],
            move |ctx: OperatorContext, stop: StopSignal| {
                let slot = slot.clone();
                let helm = helm.clone();
                async move {
                    use upstart_helmrelease_operator::controller;
                    let config = controller::Config {
                        helm_path: match helm {
                            Some(helm) => helm,
                            None => ctx.helm()?,
                        },
                        repositories: ctx.repository_config(),
                        cache_dir: ctx.work_dir.join("helmrelease-charts"),
                        ..controller::Config::default()
                    };
                    run_in_process(
                        "upstart-helmrelease-operator",
                        ctx,
                        stop,
                        move |op, shutdown| {
                            if let Ok(mut slot) = slot.lock() {
                                *slot = Some(op.metrics.clone());
                            }
                            controller::run(op, config, shutdown)
                        },
                    )
                    .await
                }
            },
        );
        OperatorSet::all()
            .operators()
            .iter()
            .filter(|o| o.name() != "helmrelease")
            .fold(OperatorSet::none().with(helmrelease), |set, o| {
                set.with(o.clone())
            })
    }

    pub fn snapshot(&self) -> OperatorFigures {
        let text = self
            .slot
            .lock()
            .ok()
            .and_then(|m| m.as_ref().and_then(|m| m.encode().ok()))
            .unwrap_or_default();
        OperatorFigures {
            render: histogram(&text, "upstart_helmrelease_render_duration_seconds"),
            fetch: histogram(&text, "upstart_helmrelease_chart_fetch_duration_seconds"),
            handoff: histogram(&text, "upstart_dependency_handoff_seconds"),
        }
    }
}

/// Sum (seconds) and count of a histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SumCount {
    pub sum: f64,
    pub count: f64,
}

impl SumCount {
    pub fn mean(&self) -> Option<Duration> {
        (self.count > 0.0).then(|| Duration::from_secs_f64(self.sum / self.count))
    }
}

/// Some of the HelmRelease operator's histograms.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OperatorFigures {
    pub render: SumCount,
    pub fetch: SumCount,
    pub handoff: SumCount,
}

impl OperatorFigures {
    pub fn since(&self, before: &OperatorFigures) -> OperatorFigures {
        let minus = |a: SumCount, b: SumCount| SumCount {
            sum: a.sum - b.sum,
            count: a.count - b.count,
        };
        OperatorFigures {
            render: minus(self.render, before.render),
            fetch: minus(self.fetch, before.fetch),
            handoff: minus(self.handoff, before.handoff),
        }
    }
}

impl std::fmt::Display for OperatorFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mean = |s: SumCount| s.mean().map_or_else(|| "-".to_owned(), ms);
        write!(
            f,
            "{} renders (mean {}), {} chart fetches (mean {}), {} hand-offs timed (mean {})",
            self.render.count,
            mean(self.render),
            self.fetch.count,
            mean(self.fetch),
            self.handoff.count,
            mean(self.handoff)
        )
    }
}

/// The `_sum` and `_count` of a histogram in Prometheus text (every label set added up).
fn histogram(text: &str, name: &str) -> SumCount {
    let value = |suffix: &str| -> f64 {
        let metric = format!("{name}{suffix}");
        text.lines()
            .filter(|l| {
                l.strip_prefix(&metric)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    };
    SumCount {
        sum: value("_sum"),
        count: value("_count"),
    }
}

/// How long `helm template` of an example chart takes on this machine (median of 3), for
/// reading the hand-offs: every release renders once before it applies.
pub async fn helm_template_time() -> Option<Duration> {
    let helm = upstart_local_cluster::locate_helm()?;
    let chart = TestEnv::workspace_path("charts/example-service");
    let mut times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let output = tokio::process::Command::new(&helm)
            .arg("template")
            .arg("bench")
            .arg(&chart)
            .output()
            .await
            .ok()?;
        if !output.status.success() {
            return None;
        }
        times.push(started.elapsed());
    }
    times.sort();
    times.get(1).copied()
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

pub fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// `examples/environment.yaml`, as JSON for a bench to adjust before creating it.
pub fn read_example_environment() -> BenchResult<Value> {
    let path = TestEnv::workspace_path("examples/environment.yaml");
    Ok(serde_yaml_ng::from_str(&std::fs::read_to_string(path)?)?)
}

/// Deletes an environment and waits until it and its namespace are gone.
pub async fn delete_and_wait(client: &Client, environment: &UpstartEnvironment) -> BenchResult<()> {
    let name = environment.name_any();
    let namespace = environment
        .spec
        .namespace
        .clone()
        .unwrap_or_else(|| name.clone());
    let environments: Api<UpstartEnvironment> = Api::all(client.clone());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    environments.delete(&name, &DeleteParams::default()).await?;
    let deadline = Instant::now() + GONE_TIMEOUT;
    loop {
        let environment = environments.get_opt(&name).await?;
        let namespace = namespaces.get_opt(&namespace).await?;
        if environment.is_none() && namespace.is_none() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "environment {name} not gone after {} s",
                GONE_TIMEOUT.as_secs()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
