//! What every HelmRelease benchmark shares: a local control plane served over HTTPS, the
//! workload simulator (instant workloads unless [`ClusterOptions`] give a delay), a local chart
//! repository, and the operator binary started as its own process against them, so that its
//! memory and CPU are its own (and so that it can be killed and started again). The bench
//! process watches the releases in process and notes, per release, when it was first seen Ready
//! and when its first object was first seen applied.
//!
//! Environment: `HR_BENCH_RUST_LOG` (the operator's `RUST_LOG`, default `warn`),
//! `HR_BENCH_MAX_CONCURRENT_RECONCILES` (the operator flag; default the flag's default),
//! `HR_BENCH_KEEP` (keep the temporary directory with the operator log and the helm calls).

#![allow(
    dead_code,
    reason = "each benchmark uses the part of this module it needs"
)]

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use upstart_api::conditions::is_ready_for_generation;
use upstart_api::names::release_label_value;
use upstart_api::v1alpha1::HelmRelease;
use upstart_chart_repo::{ChartRepo, RunningRepo};
use upstart_control_plane::{ControlPlane, Options, RequestCounts};
use upstart_release_engine::manifests::RELEASE_LABEL;
use upstart_workload_simulator::{RunningSimulator, Simulator};

/// The operator binary of this package, built by cargo for the benchmark (release profile).
pub const OPERATOR: &str = env!("CARGO_BIN_EXE_upstart-helmrelease-operator");

pub type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A `usize` from the environment (to shrink a benchmark for a quick run), else `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The benchmark chart: a ConfigMap (applied first, so its creation marks the start of the
/// apply) and a Deployment the simulator makes ready at once.
fn write_chart(root: &Path) -> BenchResult<()> {
    let chart = root.join("bench");
    std::fs::create_dir_all(chart.join("templates"))?;
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: bench\nversion: 0.1.0\n",
    )?;
    std::fs::write(
        chart.join("templates/configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-settings\ndata:\n  message: {{ .Values.message | default \"none\" | quote }}\n",
    )?;
    std::fs::write(
        chart.join("templates/deployment.yaml"),
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: 1
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      containers:
        - name: app
          image: example/app:1
"#,
    )?;
    Ok(())
}

/// A helm wrapper that logs each subcommand before running the real helm: the count of
/// `template` lines is the count of render subprocesses the operator started.
fn write_helm_wrapper(dir: &Path, log: &Path) -> BenchResult<PathBuf> {
    let helm = upstart_test_support::helm();
    let wrapper = dir.join("helm");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$1\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            helm.display()
        ),
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
    Ok(wrapper)
}

/// When each release (by its release label value `namespace.name`) was first seen Ready for
/// its generation, and when its first object was first seen.
#[derive(Default)]
pub struct Seen {
    pub ready: HashMap<String, Instant>,
    pub first_object: HashMap<String, Instant>,
    /// When its Deployment was first seen (created), and first seen Available (the simulator's
    /// status write after the workload delay): the workload part of a hop.
    pub workload_created: HashMap<String, Instant>,
    pub workload_available: HashMap<String, Instant>,
    /// HelmRelease watch events (each a write of the release: spec, finalizer or status).
    pub writes: HashMap<String, usize>,
    /// The longest `Ready` condition message seen (what a waiting release says).
    pub longest_message: String,
}

/// What a benchmark may change in the [`Cluster`] it starts.
#[derive(Clone, Debug, Default)]
pub struct ClusterOptions {
    /// How long each simulated workload takes to become ready (the simulator's
    /// `ready_after`, for every workload, the ones `helm install` creates included).
    pub workload_delay: Duration,
}

/// A restart of the operator process.
pub struct Restarted {
    /// When the new process was started.
    pub started: Instant,
    /// From its start to its `/readyz` first answering 200 (polled every 10 ms).
    pub ready_after: Duration,
}

pub struct Cluster {
    pub cp: ControlPlane,
    pub client: Client,
    pub seen: Arc<Mutex<Seen>>,
    pub metrics_url: String,
    pub operator_pid: u32,
    operator: Child,
    /// The operator's arguments, for a restart with the same flags.
    operator_args: Vec<OsString>,
    kubeconfig: PathBuf,
    charts: PathBuf,
    helm_log: PathBuf,
    operator_log: PathBuf,
    _sim: RunningSimulator,
    _repo: RunningRepo,
    watchers: Vec<tokio::task::JoinHandle<()>>,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts everything with instant workloads and waits until the operator reports ready
    /// and the bench's watches have their initial state.
    pub async fn start() -> BenchResult<Cluster> {
        Cluster::start_with(ClusterOptions::default()).await
    }

    /// As [`Cluster::start`], with these options.
    pub async fn start_with(options: ClusterOptions) -> BenchResult<Cluster> {
        // reqwest (for /metrics) is built without a TLS provider of its own.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cp = ControlPlane::start(Options::default());
        let client = cp.client();
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in upstart_api::crd::crds() {
            crds.create(&PostParams::default(), &crd).await?;
        }
        let simulator = upstart_workload_simulator::Options {
            ready_after: options.workload_delay,
            ..Default::default()
        };
        let sim = Simulator::new(client.clone(), simulator).spawn();
        let dir = tempfile::tempdir()?;
        let charts = dir.path().join("charts");
        write_chart(&charts)?;
        let repo = ChartRepo::from_dir(&charts)?
            .serve("127.0.0.1:0".parse()?)
            .await?;
        let repositories = dir.path().join("repositories.yaml");
        std::fs::write(
            &repositories,
            format!("repositories:\n  bench:\n    url: \"{}\"\n", repo.url()),
        )?;
        let endpoint = cp.serve_https("127.0.0.1:0".parse()?).await?;
        let kubeconfig = dir.path().join("kubeconfig");
        endpoint.write_kubeconfig(&kubeconfig)?;
        let helm_log = dir.path().join("helm-calls.log");
        let helm = write_helm_wrapper(dir.path(), &helm_log)?;
        let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let operator_log = dir.path().join("operator.log");
        let mut operator_args: Vec<OsString> = vec![
            "--kubeconfig".into(),
            kubeconfig.clone().into(),
            format!("--metrics-addr=127.0.0.1:{metrics_port}").into(),
            "--log-format=json".into(),
            "--leader-elect=false".into(),
            "--helm-path".into(),
            helm.into(),
            "--repository-config".into(),
            repositories.into(),
            "--cache-dir".into(),
            dir.path().join("cache").into(),
        ];
        if let Ok(n) = std::env::var("HR_BENCH_MAX_CONCURRENT_RECONCILES") {
            operator_args.push(format!("--max-concurrent-reconciles={n}").into());
        }
        let operator = spawn_operator(&operator_args, &operator_log)?;
        let mut cluster = Cluster {
            cp,
            client,
            seen: Arc::default(),
            metrics_url: format!("http://127.0.0.1:{metrics_port}"),
            operator_pid: operator.id(),
            operator,
            operator_args,
            kubeconfig,
            charts,
            helm_log,
            operator_log,
            _sim: sim,
            _repo: repo,
            watchers: Vec::new(),
            dir,
        };
        cluster.watch().await?;
        cluster.wait_operator_ready().await?;
        Ok(cluster)
    }

    async fn wait_operator_ready(&mut self) -> BenchResult<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("{}/readyz", self.metrics_url);
        loop {
            if let Some(status) = self.operator.try_wait()? {
                return Err(format!(
                    "the operator exited ({status}) before it was ready:\n{}",
                    self.operator_log_tail()
                )
                .into());
            }
            if let Ok(response) = reqwest::get(&url).await
                && response.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the operator was not ready within 60 s:\n{}",
                    self.operator_log_tail()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Kills the operator (SIGKILL, as a crashed or evicted pod) and starts it again with the
    /// same flags (its log continues in the same file); returns once its `/readyz` says 200.
    pub async fn restart_operator(&mut self) -> BenchResult<Restarted> {
        self.operator.kill()?;
        self.operator.wait()?;
        let started = Instant::now();
        self.operator = spawn_operator(&self.operator_args, &self.operator_log)?;
        self.operator_pid = self.operator.id();
        self.wait_operator_ready().await?;
        Ok(Restarted {
            started,
            ready_after: started.elapsed(),
        })
    }

    /// The kubeconfig of the control plane's HTTPS endpoint (what the operator uses).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The directory of the benchmark chart (`bench`), as served by the chart repository.
    pub fn chart_dir(&self) -> PathBuf {
        self.charts.join("bench")
    }

    /// The bench's temporary directory (removed by [`Cluster::stop`] unless `HR_BENCH_KEEP`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Watches HelmReleases, released ConfigMaps and Deployments in process, noting first-seen
    /// instants.
    async fn watch(&mut self) -> BenchResult<()> {
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(3);
        let released = || watcher::Config::default().labels(RELEASE_LABEL);
        self.note_each(
            Api::<HelmRelease>::all(self.client.clone()),
            watcher::Config::default(),
            &ready_tx,
            |hr, now, seen| {
                let key = release_label_value(&hr.namespace().unwrap_or_default(), &hr.name_any());
                let message = hr
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                    .map(|c| c.message.clone())
                    .unwrap_or_default();
                *seen.writes.entry(key.clone()).or_default() += 1;
                if message.len() > seen.longest_message.len() {
                    seen.longest_message = message;
                }
                let ready = hr.status.as_ref().is_some_and(|s| {
                    is_ready_for_generation(&s.conditions, hr.metadata.generation)
                });
                if ready {
                    seen.ready.entry(key).or_insert(now);
                }
            },
        );
        self.note_each(
            Api::<ConfigMap>::all(self.client.clone()),
            released(),
            &ready_tx,
            |cm, now, seen| {
                if let Some(release) = cm.labels().get(RELEASE_LABEL) {
                    seen.first_object.entry(release.clone()).or_insert(now);
                }
            },
        );
        self.note_each(
            Api::<Deployment>::all(self.client.clone()),
            released(),
            &ready_tx,
            |d, now, seen| {
                let Some(release) = d.labels().get(RELEASE_LABEL) else {
                    return;
                };
                let available = d.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .flatten()
                        .any(|c| c.type_ == "Available" && c.status == "True")
                });
                seen.workload_created.entry(release.clone()).or_insert(now);
                if available {
                    seen.workload_available
                        .entry(release.clone())
                        .or_insert(now);
                }
            },
        );
        for _ in 0..3 {
            ready_rx.recv().await.ok_or("a bench watch ended early")?;
        }
        Ok(())
    }

    /// Watches `api` in the background, calling `note` with each object applied (and the
    /// instant it was seen); `ready` gets one message when the first list is complete.
    fn note_each<K>(
        &mut self,
        api: Api<K>,
        config: watcher::Config,
        ready: &tokio::sync::mpsc::Sender<()>,
        note: impl Fn(&K, Instant, &mut Seen) + Send + 'static,
    ) where
        K: kube::Resource
            + Clone
            + k8s_openapi::serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + 'static,
        K::DynamicType: Default,
    {
        let seen = self.seen.clone();
        let ready = ready.clone();
        self.watchers.push(tokio::spawn(async move {
            let mut events = std::pin::pin!(watcher(api, config));
            while let Ok(Some(event)) = events.try_next().await {
                let now = Instant::now();
                match event {
                    watcher::Event::InitDone => {
                        let _ = ready.send(()).await;
                    }
                    watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                        note(&object, now, &mut lock(&seen));
                    }
                    _ => {}
                }
            }
        }));
    }

    pub async fn create_namespace(&self, name: &str) -> BenchResult<()> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        namespaces
            .create(&PostParams::default(), &namespace)
            .await?;
        Ok(())
    }

    /// Creates the releases, up to 32 at a time, in the order given.
    pub async fn create_releases(&self, releases: &[Release]) -> BenchResult<()> {
        let results: Vec<BenchResult<()>> = stream::iter(releases.iter().map(|release| {
            let client = self.client.clone();
            async move {
                let api: Api<HelmRelease> = Api::namespaced(client, &release.namespace);
                api.create(&PostParams::default(), &release.object()?)
                    .await?;
                Ok(())
            }
        }))
        .buffered(32)
        .collect()
        .await;
        results.into_iter().collect()
    }

    /// Waits until every release is seen Ready; the instant the last one was.
    pub async fn wait_ready(
        &self,
        releases: &[Release],
        timeout: Duration,
    ) -> BenchResult<Instant> {
        let deadline = Instant::now() + timeout;
        let keys: Vec<String> = releases.iter().map(Release::key).collect();
        loop {
            {
                let seen = lock(&self.seen);
                let times: Vec<Instant> = keys
                    .iter()
                    .filter_map(|k| seen.ready.get(k).copied())
                    .collect();
                if times.len() == keys.len() {
                    return times.into_iter().max().ok_or_else(|| "no releases".into());
                }
                if Instant::now() > deadline {
                    let missing: Vec<&String> = keys
                        .iter()
                        .filter(|k| !seen.ready.contains_key(*k))
                        .take(5)
                        .collect();
                    return Err(format!(
                        "{} of {} releases not Ready within {timeout:?} (e.g. {missing:?}); operator log:\n{}",
                        keys.len() - times.len(),
                        keys.len(),
                        self.operator_log_tail()
                    )
                    .into());
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Hand-off latencies: for each release with dependencies, from the last of them seen
    /// Ready to its own first object seen applied.
    pub fn handoffs(&self, releases: &[Release]) -> Vec<Duration> {
        self.handoff_details(releases)
            .into_iter()
            .map(|h| h.applied.saturating_duration_since(h.dependencies_ready))
            .collect()
    }

    /// Each hand-off with its release and instants, longest first.
    pub fn handoff_details(&self, releases: &[Release]) -> Vec<Handoff> {
        let seen = lock(&self.seen);
        let mut handoffs: Vec<Handoff> = releases
            .iter()
            .filter(|r| !r.dependencies.is_empty())
            .filter_map(|r| {
                let dependencies_ready = dependencies_ready(&seen, r)?;
                Some(Handoff {
                    release: r.key(),
                    dependencies_ready,
                    applied: *seen.first_object.get(&r.key())?,
                })
            })
            .collect();
        handoffs.sort_by_key(|h| {
            std::cmp::Reverse(h.applied.saturating_duration_since(h.dependencies_ready))
        });
        handoffs
    }

    /// HelmRelease writes seen for these releases, and the longest Ready message seen so far.
    pub fn writes(&self, releases: &[Release]) -> (usize, String) {
        let seen = lock(&self.seen);
        let writes = releases
            .iter()
            .filter_map(|r| seen.writes.get(&r.key()))
            .sum();
        (writes, seen.longest_message.clone())
    }

    /// The operator's `/metrics`, parsed.
    pub async fn metrics(&self) -> BenchResult<Metrics> {
        let text = reqwest::get(format!("{}/metrics", self.metrics_url))
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(Metrics::parse(&text))
    }

    /// How many `helm template` subprocesses the operator has started.
    pub fn helm_templates(&self) -> usize {
        std::fs::read_to_string(&self.helm_log)
            .map(|log| log.lines().filter(|l| *l == "template").count())
            .unwrap_or(0)
    }

    pub fn requests(&self) -> RequestCounts {
        self.cp.request_counts()
    }

    /// The operator process's memory and CPU so far.
    pub fn operator_usage(&self) -> BenchResult<Usage> {
        Ok(Usage::of(self.operator_pid)?)
    }

    pub fn operator_log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.operator_log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stops the operator (SIGKILL: nothing of it is measured after this) and the watches.
    pub fn stop(mut self) {
        let _ = self.operator.kill();
        let _ = self.operator.wait();
        for watcher in &self.watchers {
            watcher.abort();
        }
        if std::env::var_os("HR_BENCH_KEEP").is_some() {
            self.dir.disable_cleanup(true);
            let kept = self.dir.path();
            println!(
                "kept the bench directory (operator log, helm calls): {}",
                kept.display()
            );
        }
    }
}

/// Starts the operator binary with `args`, its output appended to `log`.
fn spawn_operator(args: &[OsString], log: &Path) -> BenchResult<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    Ok(Command::new(OPERATOR)
        .args(args)
        .env(
            "RUST_LOG",
            std::env::var("HR_BENCH_RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.operator.kill();
    }
}

/// The first-seen instants noted so far.
pub fn lock_seen(cluster: &Cluster) -> std::sync::MutexGuard<'_, Seen> {
    lock(&cluster.seen)
}

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where one hop's time went, from the bench's watches: the dependency seen Ready -> its first
/// object seen -> its Deployment seen -> the
/// Deployment seen Available -> the release seen Ready.
#[derive(Clone, Copy, Debug)]
pub struct HopPhases {
    /// Dependency Ready -> first object (the hand-off: wake-up, outputs, render, first apply).
    pub handoff: Duration,
    /// First object -> Deployment created (the rest of the apply).
    pub apply: Duration,
    /// Deployment created -> Available, beyond the workload delay (the simulator's part).
    pub workload_beyond_delay: Duration,
    /// Deployment Available -> release Ready (health seen, status written).
    pub ready: Duration,
}

impl Cluster {
    /// The phases of each release's hop, for the releases with dependencies, in the order
    /// given. `None` for a release not seen through every phase.
    pub fn hop_phases(&self, releases: &[Release], delay: Duration) -> Vec<Option<HopPhases>> {
        let seen = lock(&self.seen);
        releases
            .iter()
            .filter(|r| !r.dependencies.is_empty())
            .map(|r| {
                let began = dependencies_ready(&seen, r)?;
                let key = r.key();
                let first_object = *seen.first_object.get(&key)?;
                let created = *seen.workload_created.get(&key)?;
                let available = *seen.workload_available.get(&key)?;
                let ready = *seen.ready.get(&key)?;
                Some(HopPhases {
                    handoff: first_object.saturating_duration_since(began),
                    apply: created.saturating_duration_since(first_object),
                    workload_beyond_delay: available
                        .saturating_duration_since(created)
                        .saturating_sub(delay),
                    ready: ready.saturating_duration_since(available),
                })
            })
            .collect()
    }
}

/// When the last of `release`'s dependencies was seen Ready, once all were.
fn dependencies_ready(seen: &Seen, release: &Release) -> Option<Instant> {
    release
        .dependencies
        .iter()
        .map(|d| {
            seen.ready
                .get(&release_label_value(&release.namespace, d))
                .copied()
        })
        .collect::<Option<Vec<Instant>>>()?
        .into_iter()
        .max()
}

/// One hand-off: when the last dependency of `release` was seen Ready, when its first object
/// was seen applied.
pub struct Handoff {
    pub release: String,
    pub dependencies_ready: Instant,
    pub applied: Instant,
}

/// One HelmRelease of the `bench` chart.
#[derive(Clone, Debug)]
pub struct Release {
    pub namespace: String,
    pub name: String,
    pub dependencies: Vec<String>,
    pub interval: Option<String>,
    /// Publishes its ConfigMap as outputs, and its message is made of its first dependency's
    /// (`from DEP: << DEP.outputs.message >>`): each hand-off carries a value.
    pub wired: bool,
}

impl Release {
    pub fn new(namespace: &str, name: &str, dependencies: &[String]) -> Release {
        Release {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            dependencies: dependencies.to_vec(),
            interval: None,
            wired: false,
        }
    }

    pub fn key(&self) -> String {
        release_label_value(&self.namespace, &self.name)
    }

    fn object(&self) -> BenchResult<HelmRelease> {
        let dependencies: Vec<serde_json::Value> = self
            .dependencies
            .iter()
            .map(|d| json!({"name": d}))
            .collect();
        let mut spec = json!({
            "chart": "bench/bench",
            "version": "0.1.0",
            "dependencies": dependencies,
            "values": {"message": format!("release {}", self.name)},
        });
        if let Some(interval) = &self.interval {
            spec["interval"] = json!(interval);
        }
        if self.wired {
            spec["outputsFrom"] =
                json!([{"configMapRef": {"name": settings_config_map(&self.name)}}]);
            if let Some(dependency) = self.dependencies.first() {
                spec["values"]["message"] = json!(format!(
                    "from {dependency}: << {dependency}.outputs.message >>"
                ));
            }
        }
        Ok(serde_json::from_value(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "HelmRelease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        }))?)
    }
}

/// The ConfigMap the bench chart creates for a release (`RELEASE-settings`, key `message`).
pub fn settings_config_map(release: &str) -> String {
    format!("{release}-settings")
}

/// A chain `prefix-00 <- prefix-01 <- ...`: each release depends on the one before. Listed
/// last first, so that every dependent exists before its dependency can become Ready.
pub fn chain(namespace: &str, prefix: &str, length: usize) -> Vec<Release> {
    let name = |i: usize| format!("{prefix}-{i:02}");
    (0..length)
        .rev()
        .map(|i| {
            let dependencies = if i == 0 { vec![] } else { vec![name(i - 1)] };
            Release::new(namespace, &name(i), &dependencies)
        })
        .collect()
}

/// Memory and CPU of a process, from `/proc`.
pub use upstart_test_support::process::ProcessUsage as Usage;

/// Prometheus text exposition, as `name{labels}` -> value.
pub struct Metrics {
    samples: BTreeMap<String, f64>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let (key, value) = l.rsplit_once(' ')?;
                Some((key.to_owned(), value.parse().ok()?))
            })
            .collect();
        Metrics { samples }
    }

    /// A sample by its full key (`name` or `name{label="value"}`); 0 when absent.
    pub fn value(&self, key: &str) -> f64 {
        self.samples.get(key).copied().unwrap_or(0.0)
    }

    /// A histogram's cumulative buckets (upper bound, count), `+Inf` last. `labels` are the
    /// histogram's own labels as exposed (`controller="helmrelease"`), or empty.
    pub fn buckets(&self, name: &str, labels: &str) -> Vec<(f64, f64)> {
        let prefix = if labels.is_empty() {
            format!("{name}_bucket{{le=\"")
        } else {
            format!("{name}_bucket{{{labels},le=\"")
        };
        let mut buckets: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter_map(|(k, v)| {
                let le = k.strip_prefix(&prefix)?.strip_suffix("\"}")?;
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((bound, *v))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        buckets
    }

    /// A histogram without labels.
    pub fn histogram(&self, name: &str) -> Histogram {
        self.labelled_histogram(name, "")
    }

    /// A histogram with these labels (`controller="helmrelease"`).
    pub fn labelled_histogram(&self, name: &str, labels: &str) -> Histogram {
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        Histogram {
            buckets: self.buckets(name, labels),
            sum: self.value(&format!("{name}_sum{braces}")),
            count: self.value(&format!("{name}_count{braces}")),
        }
    }

    /// The sum of every sample of a metric family (all label values).
    pub fn total(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|(k, _)| k.as_str() == name || k.starts_with(&format!("{name}{{")))
            .map(|(_, v)| v)
            .sum()
    }
}

/// A histogram snapshot; subtract an earlier one to look at an interval.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

impl Histogram {
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|(le, n)| {
                    let before = earlier
                        .buckets
                        .iter()
                        .find(|(l, _)| l == le)
                        .map_or(0.0, |(_, n)| *n);
                    (*le, n - before)
                })
                .collect(),
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
        }
    }

    pub fn mean(&self) -> Option<Duration> {
        (self.count > 0.0).then(|| Duration::from_secs_f64(self.sum / self.count))
    }

    /// The q-quantile by linear interpolation within its bucket, as Prometheus'
    /// `histogram_quantile` does (so only as fine as the buckets).
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = q * self.count;
        let mut lower = 0.0;
        let mut below = 0.0;
        for (le, cumulative) in &self.buckets {
            if *cumulative >= rank {
                if le.is_infinite() {
                    return Some(Duration::from_secs_f64(lower));
                }
                let in_bucket = cumulative - below;
                let fraction = if in_bucket > 0.0 {
                    (rank - below) / in_bucket
                } else {
                    1.0
                };
                return Some(Duration::from_secs_f64(lower + (le - lower) * fraction));
            }
            lower = *le;
            below = *cumulative;
        }
        None
    }
}

/// The q-quantile of measured durations (nearest rank).
pub fn percentile(values: &[Duration], q: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

pub fn ms_opt(d: Option<Duration>) -> String {
    d.map_or_else(|| "n/a".to_owned(), ms)
}

/// The cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Loaded machine note printed by every bench.
pub fn print_load() {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = cores();
    println!(
        "machine: {cores} cores, load average {} (shared with other work: figures are pessimistic)",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}
