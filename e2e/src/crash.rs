//! The crash-at-every-write harness (issue 15): a scenario is run once to count the writes its
//! operators make, then once per write n (or a sample of them) with the operators stopped dead
//! at that write and restarted, and the invariants a crash must not break are checked once
//! everything is quiet again.
//!
//! A crash at write n: the control plane holds the operators' nth write at a [`Gate`] (after it
//! is stored, or before, [`CrashOptions::point`]); the harness then drops the operators'
//! Tokio runtime (every task of theirs ends where it stands, the held request with them: the
//! write is stored but never answered, or never stored), optionally answers the restarted
//! operators' first watch with 410 Gone, starts a new generation of operators on a fresh chart
//! cache, and waits until the scenario is settled and no operator has written for
//! [`CrashOptions::quiet`]. Each generation's client is tagged (`operator-1-helmrelease`,
//! `operator-2-helmrelease`), so the control plane's request log says who wrote what.
//!
//! Other things can happen at write n instead ([`CrashOptions::variant`], [`Variant`]): a
//! graceful stop (the shutdown signal, Leases released, a new generation resumes), a 409, 429
//! or 500 answered to the write, the Leases taken by a standby generation behind the leader's
//! back, a crash while every operator watch is delayed, coalesced and reordered and their
//! lists lag (the control plane's `WatchFault` and `lagging_lists`), or a real SIGKILL of the
//! HelmRelease operator's binary running against the control plane's HTTPS endpoint.
//!
//! The invariants ([`Invariant`]): the scenario settled (everything Ready, each dependent wired
//! to its dependency's current output); no deleted object kept by a finalizer; each hook
//! created once per run; each release's inventory equal to the objects labelled as its own;
//! nothing written outside the release's namespace; nothing of a dependent written before its
//! dependency was Ready; no write once quiet; no output value in a status or an Event.
//!
//! ```no_run
//! # async fn demo() -> Result<(), upstart_e2e::Error> {
//! use upstart_e2e::crash::{CrashOptions, CrashPoints, Scenario, crash_loop};
//! let report = crash_loop(Scenario::Chain, &CrashPoints::Sample(vec![1, 10]), &CrashOptions::default(), |_| {}).await?;
//! println!("{report}");
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use upstart_api::conditions::is_ready_for_generation;
use upstart_api::v1alpha1::HelmRelease;
use upstart_chart_repo::{ChartRepo, RunningRepo};
use upstart_chart_source::RepositoryConfig;
use upstart_control_plane::{
    ControlPlane, Fault, Gate, LoggedRequest, PausePoint, Verb, WatchFault,
};
use upstart_operator_runtime::{CommonArgs, LeaseConfig, RunOptions, Shutdown};
use upstart_release_engine::manifests::{HOOK_ANNOTATION, RELEASE_LABEL};
use upstart_workload_simulator::{RunningSimulator, Simulator};

use crate::error::Error;

/// The namespace every scenario's releases live in.
pub const NAMESPACE: &str = "crash";

/// The environment's service in [`Scenario::EnvironmentTeardown`].
const SERVICE: &str = "svc";

/// The client tag prefix of every operator generation (`operator-<generation>-<operator>`).
const OPERATOR_TAG: &str = "operator-";

/// Where the operators' leader election Leases live, under [`Variant::GracefulStop`] and
/// [`Variant::LeaseStolen`]: outside the scenario's namespace, which a teardown deletes.
const LEASE_NAMESPACE: &str = "crash-leases";

/// How often the harness looks at the request log and the objects while it waits.
const POLL: Duration = Duration::from_millis(100);

/// How long a killed generation's runtime may take to end its tasks.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// The scenarios, in the order they were added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Three HelmReleases `a` ← `b` ← `c`: each runs a pre-install/pre-upgrade Job hook
    /// deleted once it succeeds (a migration) and a post-install ConfigMap hook, publishes a
    /// token in a Secret as its output, and the next one reads it into its Deployment's
    /// environment. Crashed from the first write.
    Chain,
    /// `a` ← `b` of the chain, installed and quiet first; then `a`'s token is rotated (a new
    /// value in its spec) and must reach `b`'s Deployment. Crashed from the first write after
    /// the rotation; each release upgrades once, so its migration runs twice in the run.
    OutputRotation,
    /// An UpstartEnvironment `crash` (namespace `crash`) with one inline service holding `a` ←
    /// `b` of the chain (HelmReleases `svc-a`, `svc-b`), Ready and quiet first; then its ttl is
    /// cut to 1s, so it expires and tears itself down: everything must be gone. Runs the three
    /// operators; crashed from the first write after the ttl edit.
    EnvironmentTeardown,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 3] = [
        Scenario::Chain,
        Scenario::OutputRotation,
        Scenario::EnvironmentTeardown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Chain => "chain",
            Scenario::OutputRotation => "output-rotation",
            Scenario::EnvironmentTeardown => "environment-teardown",
        }
    }

    /// The scenario called `name` ([`Scenario::name`]).
    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The releases, each with the release it depends on.
    fn releases(self) -> &'static [(&'static str, Option<&'static str>)] {
        match self {
            Scenario::Chain => &[("a", None), ("b", Some("a")), ("c", Some("b"))],
            Scenario::OutputRotation | Scenario::EnvironmentTeardown => {
                &[("a", None), ("b", Some("a"))]
            }
        }
    }

    /// The name of the HelmRelease object of release `key` (its `.Release.Name` is `key`).
    fn release_object(self, key: &str) -> String {
        match self {
            Scenario::Chain | Scenario::OutputRotation => key.to_owned(),
            Scenario::EnvironmentTeardown => format!("{SERVICE}-{key}"),
        }
    }

    /// Whether the scenario runs the UpstartService and UpstartEnvironment operators besides
    /// the HelmRelease one.
    fn all_operators(self) -> bool {
        self == Scenario::EnvironmentTeardown
    }

    /// Writes outside the releases' namespace the scenario's operators are expected to make:
    /// the environment, its namespace and the Events about them (in `default`, as for every
    /// cluster-scoped object).
    fn may_write_outside(self, r: &LoggedRequest) -> bool {
        self == Scenario::EnvironmentTeardown
            && (r.resource == "upstartenvironments"
                // A create names its object in the body only: the log cannot tell which.
                || (r.resource == "namespaces"
                    && (r.name == NAMESPACE || r.verb == Some(Verb::Create)))
                || (r.resource == "events" && r.namespace == "default"))
    }

    /// The hooks each release runs, with how many times each is created in a run: (resource
    /// plural, object name, creations).
    fn hooks(self, release: &str) -> Vec<(&'static str, String, usize)> {
        let upgrades = match self {
            Scenario::Chain | Scenario::EnvironmentTeardown => 0,
            Scenario::OutputRotation => 1,
        };
        vec![
            ("jobs", format!("{release}-migrate"), 1 + upgrades),
            ("configmaps", format!("{release}-marker"), 1),
        ]
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What happens to the operators at write n (issue 15's variants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Their Tokio runtime is dropped (every task ends where it stands), then a new
    /// generation starts: a crash of the process.
    Kill,
    /// They get the shutdown signal (operator_runtime's SIGTERM path) with the write held,
    /// then the write is let through: in-flight work finishes, each operator releases its
    /// leader election Lease, and a new generation acquires it and resumes.
    GracefulStop,
    /// The write is answered with this status instead (409 Conflict, 429 TooManyRequests with
    /// `Retry-After: 1`, 500 InternalError); the operators keep running and retry.
    Fail(u16),
    /// Two generations run under leader election, the second standing by; with write n held,
    /// the Leases' holder is rewritten to the second: the first must not write once it has
    /// seen that, and the second takes over.
    LeaseStolen,
    /// A [`Variant::Kill`] while every operator watch is delayed (50 ms), coalesced per object
    /// (200 ms windows) and reordered across objects, and their informers' lists come from a
    /// cache lagging up to 2 s behind.
    LaggingWatches,
    /// The HelmRelease operator runs as its built binary (`upstart-helmrelease-operator` beside
    /// the running test or bench, in cargo's target directory) against the control plane's
    /// HTTPS endpoint, as a ServiceAccount of its own per generation; at write n it gets a real
    /// SIGKILL (the other operators, if any, are killed in process).
    Sigkill,
}

impl Variant {
    /// Every variant.
    pub const ALL: [Variant; 8] = [
        Variant::Kill,
        Variant::GracefulStop,
        Variant::Fail(409),
        Variant::Fail(429),
        Variant::Fail(500),
        Variant::LeaseStolen,
        Variant::LaggingWatches,
        Variant::Sigkill,
    ];

    /// `kill`, `graceful-stop`, `fail-409`, `lease-stolen`, `lagging-watches`.
    pub fn name(self) -> String {
        match self {
            Variant::Kill => "kill".into(),
            Variant::GracefulStop => "graceful-stop".into(),
            Variant::Fail(code) => format!("fail-{code}"),
            Variant::LeaseStolen => "lease-stolen".into(),
            Variant::LaggingWatches => "lagging-watches".into(),
            Variant::Sigkill => "sigkill".into(),
        }
    }

    /// The variant called `name` ([`Variant::name`]); `fail-<code>` for any 4xx or 5xx code.
    pub fn from_name(name: &str) -> Option<Variant> {
        if let Some(code) = name.strip_prefix("fail-") {
            return code
                .parse()
                .ok()
                .filter(|c| (400..600).contains(c))
                .map(Variant::Fail);
        }
        Variant::ALL.into_iter().find(|v| v.name() == name)
    }

    /// Whether the operators run under leader election.
    fn elects(self) -> bool {
        matches!(self, Variant::GracefulStop | Variant::LeaseStolen)
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// How the harness crashes and waits.
#[derive(Debug, Clone)]
pub struct CrashOptions {
    /// What happens at write n.
    pub variant: Variant,
    /// Kill the operators with their nth write stored but unanswered (`AfterCommit`, the
    /// default) or not stored (`BeforeCommit`).
    pub point: PausePoint,
    /// Answer the restarted operators' first watch with 410 Gone, so that watcher lists again
    /// (after the watcher's backoff, about a second).
    pub expire_watches: bool,
    /// How long without an operator write, everything settled, counts as quiet; the same
    /// period is then watched again for writes that should not happen.
    pub quiet: Duration,
    /// How long a run may take to become quiet before it is reported as never settling.
    pub timeout: Duration,
}

impl Default for CrashOptions {
    fn default() -> Self {
        CrashOptions {
            variant: Variant::Kill,
            point: PausePoint::AfterCommit,
            expire_watches: true,
            quiet: Duration::from_millis(1500),
            timeout: Duration::from_secs(45),
        }
    }
}

/// Which writes to crash at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrashPoints {
    /// Every write of the recorded run, 1 to n.
    All,
    /// These writes (1-based; one past the recorded count is simply not reached).
    Sample(Vec<u32>),
    /// This many writes spread evenly over the recorded run, the first and the last included.
    Spread(u32),
}

/// What a crash must not break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Invariant {
    /// Every release Ready for its generation, each dependent wired to its dependency's current
    /// output, within the timeout.
    Settled,
    /// No object with a deletionTimestamp left behind by its finalizers.
    NoFinalizerLeft,
    /// Each hook object created once per run, or once per install and upgrade (counted in the
    /// request log, every generation).
    HookCreatedOnce,
    /// Each release's status inventory equals the objects labelled as its own (hooks aside).
    InventoryMatchesLabels,
    /// No operator write outside the releases' namespace.
    ConfinedToNamespace,
    /// Nothing of a dependent written before its dependency was first Ready.
    DependencyReadyFirst,
    /// No operator write once quiet.
    NoWriteOnceQuiet,
    /// No output value (raw or base64) in a HelmRelease status or an Event.
    OutputsHidden,
    /// An operator ended on its own (an error), which no restart should cause; or a killed
    /// generation wrote after its kill (the harness's crash would not be one), or a stopped
    /// one did not end.
    OperatorRuns,
    /// Every leader election Lease released by a graceful stop.
    LeaseReleased,
    /// No write from an operator after it saw its Lease held by another instance.
    NoWriteAfterLeaseLost,
}

impl Invariant {
    pub fn name(self) -> &'static str {
        match self {
            Invariant::Settled => "settled",
            Invariant::NoFinalizerLeft => "no-finalizer-left",
            Invariant::HookCreatedOnce => "hook-created-once",
            Invariant::InventoryMatchesLabels => "inventory-matches-labels",
            Invariant::ConfinedToNamespace => "confined-to-namespace",
            Invariant::DependencyReadyFirst => "dependency-ready-first",
            Invariant::NoWriteOnceQuiet => "no-write-once-quiet",
            Invariant::OutputsHidden => "outputs-hidden",
            Invariant::OperatorRuns => "operator-runs",
            Invariant::LeaseReleased => "lease-released",
            Invariant::NoWriteAfterLeaseLost => "no-write-after-lease-lost",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One broken invariant: which, and what the harness saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: Invariant,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

/// One run of a scenario.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The write the operators were to be killed at; `None` for the recording run.
    pub crash_at: Option<u32>,
    /// Whether that write was reached (and the operators killed there).
    pub crashed: bool,
    /// The operator writes of the run (both generations) from the first one counted (crashed
    /// at) on, as the request log counts them.
    pub writes: u32,
    pub violations: Vec<Violation>,
    pub elapsed: Duration,
}

/// A crash loop's result: the recorded run, then one run per crash point.
#[derive(Debug, Clone)]
pub struct LoopReport {
    pub scenario: Scenario,
    pub variant: Variant,
    pub recording: RunOutcome,
    pub runs: Vec<RunOutcome>,
}

impl LoopReport {
    /// How many runs were crashed at their write.
    pub fn crashed_at(&self) -> usize {
        self.runs.iter().filter(|r| r.crashed).count()
    }

    /// Every violation, the recording's included, with the write it was crashed at.
    pub fn violations(&self) -> Vec<(Option<u32>, &Violation)> {
        std::iter::once(&self.recording)
            .chain(&self.runs)
            .flat_map(|r| r.violations.iter().map(move |v| (r.crash_at, v)))
            .collect()
    }
}

/// `scenario chain, variant kill: 52 writes recorded; crashed at 52 writes; 0 invariant
/// violations`, then one line per violation.
impl fmt::Display for LoopReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let violations = self.violations();
        writeln!(
            f,
            "scenario {}, variant {}: {} writes recorded; crashed at {} writes; {} invariant violations",
            self.scenario,
            self.variant,
            self.recording.writes,
            self.crashed_at(),
            violations.len()
        )?;
        for (at, v) in violations {
            match at {
                Some(n) => writeln!(f, "  write {n}: {v}")?,
                None => writeln!(f, "  recording: {v}")?,
            }
        }
        Ok(())
    }
}

/// Records one run of `scenario`, then runs it again crashed at each write of `points`,
/// calling `progress` after each run.
pub async fn crash_loop(
    scenario: Scenario,
    points: &CrashPoints,
    options: &CrashOptions,
    mut progress: impl FnMut(&RunOutcome),
) -> Result<LoopReport, Error> {
    let recording = run_once(scenario, None, options).await?;
    progress(&recording);
    let recorded = recording.writes;
    let ns: Vec<u32> = match points {
        CrashPoints::All => (1..=recorded).collect(),
        CrashPoints::Sample(ns) => ns.clone(),
        CrashPoints::Spread(count) => spread(recorded, *count),
    };
    let mut runs = Vec::with_capacity(ns.len());
    for n in ns {
        let outcome = run_once(scenario, Some(n), options).await?;
        progress(&outcome);
        runs.push(outcome);
    }
    Ok(LoopReport {
        scenario,
        variant: options.variant,
        recording,
        runs,
    })
}

/// `count` writes out of `1..=total`, evenly spread, first and last included.
fn spread(total: u32, count: u32) -> Vec<u32> {
    if total == 0 || count == 0 {
        return Vec::new();
    }
    if count >= total {
        return (1..=total).collect();
    }
    let picks: BTreeSet<u32> = (0..count)
        .map(|i| 1 + (u64::from(i) * u64::from(total - 1) / u64::from((count - 1).max(1))) as u32)
        .collect();
    picks.into_iter().collect()
}

/// One run of `scenario` on a fresh cluster: crashed at write `crash_at` of its operators when
/// given, then checked.
pub async fn run_once(
    scenario: Scenario,
    crash_at: Option<u32>,
    options: &CrashOptions,
) -> Result<RunOutcome, Error> {
    let started = Instant::now();
    let rig = Rig::start(scenario, options.variant).await?;
    let result = rig.run(crash_at, options).await;
    rig.stop().await;
    let (crashed, writes, violations) = result?;
    Ok(RunOutcome {
        crash_at,
        crashed,
        writes,
        violations,
        elapsed: started.elapsed(),
    })
}

/// A fresh local cluster for one run: the control plane (request log on), the workload
/// simulator, the scenario's charts served over HTTP, helm, and the harness's own client.
struct Rig {
    scenario: Scenario,
    cp: ControlPlane,
    client: Client,
    simulator: RunningSimulator,
    repo: RunningRepo,
    helm: PathBuf,
    dir: tempfile::TempDir,
    /// Each release's current token: a value only its output Secret should hold.
    tokens: Mutex<BTreeMap<&'static str, String>>,
    /// Every token handed out (current and rotated), none of which may show in a status or an
    /// Event.
    all_tokens: Mutex<Vec<String>>,
    /// Makes each token of the run unique.
    salt: u128,
    /// Set once the environment's ttl was cut: from then on settled means gone.
    expired: std::sync::atomic::AtomicBool,
    /// The resourceVersion at which each release was first seen Ready.
    first_ready: Arc<Mutex<HashMap<String, u64>>>,
    observer: tokio::task::JoinHandle<()>,
    /// Under [`Variant::Sigkill`]: the HTTPS endpoint the operator binary talks to.
    endpoint: Option<upstart_control_plane::Endpoint>,
}

impl Rig {
    async fn start(scenario: Scenario, variant: Variant) -> Result<Rig, Error> {
        let helm = upstart_local_cluster::locate_helm().ok_or_else(|| Error::Unexpected {
            what: "the crash harness".into(),
            message: "helm is needed: set UPSTART_HELM or run scripts/bootstrap-tools".into(),
        })?;
        let cp = ControlPlane::start(upstart_control_plane::Options::default());
        cp.faults().start_request_log();
        let client = cp.client_tagged("harness");
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in upstart_api::crd::crds() {
            crds.create(&PostParams::default(), &crd)
                .await
                .map_err(Error::kube("installing the Upstart CRDs"))?;
        }
        // The environment creates its namespace; the others are given theirs. The catalog
        // namespace exists as the operators' chart makes it.
        let catalog = upstart_api::names::DEFAULT_CATALOG_NAMESPACE;
        let namespaces: &[&str] = match scenario {
            Scenario::EnvironmentTeardown => &[catalog, LEASE_NAMESPACE],
            Scenario::Chain | Scenario::OutputRotation => &[NAMESPACE, LEASE_NAMESPACE],
        };
        for name in namespaces {
            let namespace: Namespace = from_json(json!({"metadata": {"name": name}}))?;
            Api::<Namespace>::all(client.clone())
                .create(&PostParams::default(), &namespace)
                .await
                .map_err(Error::kube(format!("creating namespace {name}")))?;
        }
        let simulator = Simulator::new(cp.client_tagged("simulator"), Default::default()).spawn();
        let dir = tempfile::tempdir().map_err(|e| Error::Unexpected {
            what: "a temporary folder for the charts".into(),
            message: e.to_string(),
        })?;
        let charts = dir.path().join("charts");
        write_charts(scenario, &charts)?;
        let repo = ChartRepo::from_dir(&charts)
            .map_err(|e| unexpected("loading the scenario's charts", e))?
            .serve(([127, 0, 0, 1], 0).into())
            .await
            .map_err(|e| unexpected("serving the scenario's charts", e))?;
        let salt = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let tokens: BTreeMap<&'static str, String> = scenario
            .releases()
            .iter()
            .map(|(name, _)| (*name, format!("tok-{name}-{salt:x}")))
            .collect();
        let all_tokens = tokens.values().cloned().collect();
        let first_ready = Arc::new(Mutex::new(HashMap::new()));
        let observer = tokio::spawn(observe_ready(client.clone(), first_ready.clone()));
        let endpoint = if variant == Variant::Sigkill {
            let endpoint = cp
                .serve_https(([127, 0, 0, 1], 0).into())
                .await
                .map_err(|e| unexpected("serving the control plane over HTTPS", e))?;
            endpoint.enable_service_account_tokens();
            Some(endpoint)
        } else {
            None
        };
        Ok(Rig {
            scenario,
            cp,
            client,
            simulator,
            repo,
            helm,
            dir,
            tokens: Mutex::new(tokens),
            all_tokens: Mutex::new(all_tokens),
            salt,
            expired: std::sync::atomic::AtomicBool::new(false),
            first_ready,
            observer,
            endpoint,
        })
    }

    async fn stop(self) {
        self.observer.abort();
        self.simulator.shutdown().await;
        self.repo.shutdown().await;
        self.cp.shutdown();
        drop(self.dir);
    }

    /// The run itself: (crashed, operator writes, violations).
    async fn run(
        &self,
        crash_at: Option<u32>,
        options: &CrashOptions,
    ) -> Result<(bool, u32, Vec<Violation>), Error> {
        let variant = options.variant;
        if variant == Variant::LaggingWatches {
            let faults = self.cp.faults();
            faults.shape_watches(
                WatchFault::clients(OPERATOR_PATTERN)
                    .delay(Duration::from_millis(50))
                    .coalesce(Duration::from_millis(200))
                    .reorder(),
            );
            faults.lagging_lists(OPERATOR_PATTERN, Duration::from_secs(2));
        }
        let mut generation = Generation::start(self, 1, variant.elects()).await?;
        let mut violations = Vec::new();
        if let Err(detail) = self.prepare(options).await? {
            violations.push(Violation {
                invariant: Invariant::Settled,
                detail,
            });
        }
        // The second generation stands by from the start (it leads once the Leases are its).
        let mut standby = None;
        if variant == Variant::LeaseStolen {
            if let Err(detail) = self.wait_leading(1, options).await {
                violations.push(Violation {
                    invariant: Invariant::Settled,
                    detail,
                });
            }
            standby = Some(Generation::start(self, 2, true).await?);
        }
        // The writes counted and crashed at are the ones after this.
        let mark = self.last_seq();
        let gate = Gate::new();
        let mut injected = None;
        if let Some(n) = crash_at {
            let fault = Fault::writes()
                .client("operator-1-*")
                .not_resource("leases")
                .nth(n);
            let fault = match variant {
                Variant::Fail(429) => fault.too_many_requests(Duration::from_secs(1)),
                Variant::Fail(code) => fault.fail(code),
                _ => fault.pause(gate.clone(), options.point),
            };
            injected = Some(self.cp.faults().inject(fault));
        }
        self.act().await?;
        let mut crashed = false;
        let mut killed_at = None;
        let mut stolen_at = None;
        let mut retired = None;
        if let Some(id) = injected {
            crashed = match variant {
                Variant::Fail(_) => {
                    let faults = self.cp.faults();
                    tokio::select! {
                        () = async { while faults.hits(id) == 0 { tokio::time::sleep(POLL).await } } => true,
                        _ = self.wait_quiet(options) => faults.hits(id) > 0,
                    }
                }
                _ => tokio::select! {
                    () = gate.wait_reached() => true,
                    _ = self.wait_quiet(options) => false,
                },
            };
        }
        if crashed {
            match variant {
                Variant::Kill | Variant::LaggingWatches | Variant::Sigkill => {
                    generation.kill().await;
                    killed_at = Some(self.last_seq());
                    gate.open();
                    self.expire_watches(2, options);
                    generation = Generation::start(self, 2, false).await?;
                }
                Variant::GracefulStop => {
                    generation.expect_end();
                    generation.shutdown.trigger();
                    // The held write goes through: in-flight work finishes, then stops.
                    gate.open();
                    if let Err(detail) = generation.join(KILL_GRACE).await {
                        violations.push(Violation {
                            invariant: Invariant::OperatorRuns,
                            detail,
                        });
                    }
                    generation.kill().await;
                    killed_at = Some(self.last_seq());
                    violations.extend(self.leases_released().await?);
                    self.expire_watches(2, options);
                    generation = Generation::start(self, 2, true).await?;
                }
                Variant::LeaseStolen => {
                    generation.expect_end();
                    self.expire_watches(2, options);
                    stolen_at = Some(self.steal_leases(2).await?);
                    gate.open();
                    if let Some(next) = standby.take() {
                        retired = Some(std::mem::replace(&mut generation, next));
                    }
                }
                Variant::Fail(_) => {}
            }
        }
        let quiet = self.wait_quiet(options).await;
        if let Err(detail) = &quiet {
            violations.push(Violation {
                invariant: Invariant::Settled,
                detail: detail.clone(),
            });
        } else {
            let quiet_from = self.last_seq();
            tokio::time::sleep(options.quiet).await;
            let late: Vec<String> = self
                .operator_writes_since(quiet_from)
                .iter()
                .map(describe)
                .collect();
            if !late.is_empty() {
                violations.push(Violation {
                    invariant: Invariant::NoWriteOnceQuiet,
                    detail: format!("{} writes: {}", late.len(), first_few(&late)),
                });
            }
        }
        if let Some(failure) = generation.failure() {
            violations.push(Violation {
                invariant: Invariant::OperatorRuns,
                detail: failure,
            });
        }
        generation.kill().await;
        if let Some(mut old) = retired {
            old.kill().await;
        }
        if let Some(mut standby) = standby {
            standby.kill().await;
        }
        if let Some(killed_at) = killed_at {
            let after: Vec<String> = self
                .operator_writes_since(killed_at)
                .iter()
                .filter(|r| r.client.starts_with("operator-1-"))
                .map(describe)
                .collect();
            if !after.is_empty() {
                violations.push(Violation {
                    invariant: Invariant::OperatorRuns,
                    detail: format!("killed, generation 1 still wrote: {}", first_few(&after)),
                });
            }
        }
        if let Some(stolen_at) = stolen_at {
            violations.extend(self.writes_after_lease_lost(stolen_at));
        }
        violations.extend(self.check().await?);
        let writes = self.operator_writes_since(mark).len();
        Ok((
            crashed,
            u32::try_from(writes).unwrap_or(u32::MAX),
            violations,
        ))
    }

    /// Answers the first watch of generation `number`'s operators with 410 Gone, when asked.
    fn expire_watches(&self, number: u32, options: &CrashOptions) {
        if options.expire_watches {
            self.cp.faults().inject(
                Fault::on(Verb::Watch)
                    .client(&format!("{OPERATOR_TAG}{number}-*"))
                    .fail(410),
            );
        }
    }

    /// The operators of the scenario (their names in client tags and Leases).
    fn operators(&self) -> &'static [&'static str] {
        if self.scenario.all_operators() {
            &["helmrelease", "upstartservice", "upstartenvironment"]
        } else {
            &["helmrelease"]
        }
    }

    fn leases(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), LEASE_NAMESPACE)
    }

    /// Waits until generation `number` holds every operator's Lease.
    async fn wait_leading(&self, number: u32, options: &CrashOptions) -> Result<(), String> {
        let deadline = Instant::now() + options.timeout;
        loop {
            let mut missing = Vec::new();
            for name in self.operators() {
                let holder = self
                    .leases()
                    .get_opt(&lease_name(name))
                    .await
                    .map_err(|e| format!("reading Lease {}: {e}", lease_name(name)))?
                    .and_then(|l| l.spec?.holder_identity);
                if holder.as_deref() != Some(lease_identity(number, name).as_str()) {
                    missing.push(lease_name(name));
                }
            }
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "generation {number} did not hold the Leases {missing:?} within {:?}",
                    options.timeout
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Violations for every Lease still held after a graceful stop.
    async fn leases_released(&self) -> Result<Vec<Violation>, Error> {
        let mut violations = Vec::new();
        for name in self.operators() {
            let lease = self
                .leases()
                .get_opt(&lease_name(name))
                .await
                .map_err(Error::kube("reading a leader election Lease"))?;
            let holder = lease
                .and_then(|l| l.spec?.holder_identity)
                .filter(|h| !h.is_empty());
            if let Some(holder) = holder {
                violations.push(Violation {
                    invariant: Invariant::LeaseReleased,
                    detail: format!(
                        "Lease {} still held by {holder} after a graceful stop",
                        lease_name(name)
                    ),
                });
            }
        }
        Ok(violations)
    }

    /// Rewrites every operator's Lease to generation `number` behind the leader's back (a
    /// fresh renewTime, as if the other instance had taken it); returns the log position then.
    async fn steal_leases(&self, number: u32) -> Result<u64, Error> {
        for name in self.operators() {
            let api = self.leases();
            let mut lease = api
                .get(&lease_name(name))
                .await
                .map_err(Error::kube("reading a leader election Lease"))?;
            let spec = lease.spec.get_or_insert_with(Default::default);
            spec.holder_identity = Some(lease_identity(number, name));
            spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                k8s_openapi::jiff::Timestamp::now(),
            ));
            api.replace(&lease_name(name), &PostParams::default(), &lease)
                .await
                .map_err(Error::kube(
                    "rewriting the holder of a leader election Lease",
                ))?;
        }
        Ok(self.last_seq())
    }

    /// Writes of generation 1 after it saw its Lease held by another instance: its first read
    /// of its Lease after `stolen_at` is when it could know (a lease-based leader cannot know
    /// sooner; a renewal refused with a conflict does not say who holds it, and the leader reads
    /// again at once; writes before that are the renew period's, as with client-go).
    fn writes_after_lease_lost(&self, stolen_at: u64) -> Vec<Violation> {
        let log = self.cp.faults().request_log_since(stolen_at);
        let mut violations = Vec::new();
        for name in self.operators() {
            let tag = lease_identity(1, name);
            let seen = log
                .iter()
                .find(|r| r.client == tag && r.resource == "leases" && r.verb == Some(Verb::Get))
                .map(|r| r.seq);
            let late: Vec<String> = log
                .iter()
                .filter(|r| {
                    r.client == tag && is_operator_write(r) && seen.is_none_or(|seen| r.seq > seen)
                })
                .map(describe)
                .collect();
            if !late.is_empty() && seen.is_some() {
                violations.push(Violation {
                    invariant: Invariant::NoWriteAfterLeaseLost,
                    detail: format!(
                        "{tag} wrote after it saw its Lease taken: {}",
                        first_few(&late)
                    ),
                });
            } else if seen.is_none() {
                violations.push(Violation {
                    invariant: Invariant::NoWriteAfterLeaseLost,
                    detail: format!(
                        "{tag} never looked at its Lease after it was taken (wrote {} times)",
                        late.len()
                    ),
                });
            }
        }
        violations
    }

    /// What the scenario does before the writes counted and crashed at: `Err` with what was
    /// seen when it does not settle.
    async fn prepare(&self, options: &CrashOptions) -> Result<Result<(), String>, Error> {
        match self.scenario {
            Scenario::Chain => Ok(Ok(())),
            Scenario::OutputRotation => {
                self.apply_releases().await?;
                Ok(self
                    .wait_quiet(options)
                    .await
                    .map_err(|seen| format!("before the rotation: {seen}")))
            }
            Scenario::EnvironmentTeardown => {
                self.apply_environment().await?;
                Ok(self
                    .wait_quiet(options)
                    .await
                    .map_err(|seen| format!("before the ttl was cut: {seen}")))
            }
        }
    }

    /// What the scenario does with its writes counted (and crashed at).
    async fn act(&self) -> Result<(), Error> {
        match self.scenario {
            Scenario::Chain => self.apply_releases().await,
            Scenario::OutputRotation => {
                let rotated = format!("tok-a-rotated-{:x}", self.salt);
                lock(&self.all_tokens).push(rotated.clone());
                lock(&self.tokens).insert("a", rotated.clone());
                self.releases()
                    .patch(
                        "a",
                        &PatchParams::default(),
                        &Patch::Merge(json!({"spec": {"values": {"token": rotated}}})),
                    )
                    .await
                    .map_err(Error::kube("rotating the token of HelmRelease a"))?;
                Ok(())
            }
            Scenario::EnvironmentTeardown => {
                self.expired
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                // Older than a second already: it expires at once.
                Api::<upstart_api::v1alpha1::UpstartEnvironment>::all(self.client.clone())
                    .patch(
                        NAMESPACE,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"spec": {"ttl": "1s"}})),
                    )
                    .await
                    .map_err(Error::kube("cutting the ttl of UpstartEnvironment crash"))?;
                Ok(())
            }
        }
    }

    /// The release specs of the scenario (key, spec): each with its token and its dependency's
    /// output.
    fn release_specs(&self) -> Vec<(&'static str, Value)> {
        self.scenario
            .releases()
            .iter()
            .map(|(name, dependency)| {
                let mut spec = json!({
                    "chart": "test/tier",
                    "version": "0.1.0",
                    "values": {"token": self.token(name)},
                    "outputsFrom": [{"secretRef": {"name": format!("{name}-out")}}],
                });
                if let Some(dependency) = dependency {
                    spec["dependencies"] = json!([{"name": dependency}]);
                    spec["values"]["upstream"] = json!(format!("<< {dependency}.outputs.TOKEN >>"));
                }
                (*name, spec)
            })
            .collect()
    }

    /// Applies the UpstartEnvironment `crash`: a ttl of an hour, one inline service with the
    /// scenario's releases.
    async fn apply_environment(&self) -> Result<(), Error> {
        let releases: serde_json::Map<String, Value> = self
            .release_specs()
            .into_iter()
            .map(|(key, spec)| (key.to_owned(), spec))
            .collect();
        let environment: upstart_api::v1alpha1::UpstartEnvironment = from_json(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "UpstartEnvironment",
            "metadata": {"name": NAMESPACE},
            "spec": {
                "ttl": "1h",
                "services": [{"name": SERVICE, "spec": {"helmReleases": releases}}],
            },
        }))?;
        Api::<upstart_api::v1alpha1::UpstartEnvironment>::all(self.client.clone())
            .patch(
                NAMESPACE,
                &PatchParams::apply("crash-harness"),
                &Patch::Apply(&environment),
            )
            .await
            .map_err(Error::kube("applying UpstartEnvironment crash"))?;
        Ok(())
    }

    /// Applies the scenario's HelmReleases, each with its token and its dependency's output.
    async fn apply_releases(&self) -> Result<(), Error> {
        let api = self.releases();
        for (name, spec) in self.release_specs() {
            let release: HelmRelease = from_json(json!({
                "apiVersion": "upstartoperators.upstart.com/v1alpha1",
                "kind": "HelmRelease",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": spec,
            }))?;
            api.patch(
                name,
                &PatchParams::apply("crash-harness"),
                &Patch::Apply(&release),
            )
            .await
            .map_err(Error::kube(format!("applying HelmRelease {name}")))?;
        }
        Ok(())
    }

    /// Waits until the scenario is settled and no operator wrote for `options.quiet`; the
    /// error says what was last seen when `options.timeout` passes first.
    async fn wait_quiet(&self, options: &CrashOptions) -> Result<(), String> {
        let deadline = Instant::now() + options.timeout;
        let mut writes = usize::MAX;
        let mut since = Instant::now();
        loop {
            let now_writes = self.operator_writes_since(0).len();
            if now_writes != writes {
                writes = now_writes;
                since = Instant::now();
            }
            let settled = self.settled().await;
            if settled.is_ok() && since.elapsed() >= options.quiet {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let recent: Vec<String> = self
                    .operator_writes_since(0)
                    .iter()
                    .rev()
                    .take(5)
                    .map(describe)
                    .collect();
                return Err(format!(
                    "not quiet within {:?}: {}; last writes (newest first): {}",
                    options.timeout,
                    settled.err().unwrap_or_else(|| "settled".into()),
                    first_few(&recent)
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether everything is Ready and wired; the error says what is not.
    async fn settled(&self) -> Result<(), String> {
        if self.expired.load(std::sync::atomic::Ordering::Relaxed) {
            return self.gone().await;
        }
        if self.scenario == Scenario::EnvironmentTeardown {
            let environment =
                Api::<upstart_api::v1alpha1::UpstartEnvironment>::all(self.client.clone())
                    .get_opt(NAMESPACE)
                    .await
                    .map_err(|e| format!("reading UpstartEnvironment {NAMESPACE}: {e}"))?
                    .ok_or_else(|| format!("UpstartEnvironment {NAMESPACE} does not exist"))?;
            let ready = environment.status.as_ref().is_some_and(|s| {
                is_ready_for_generation(&s.conditions, environment.metadata.generation)
            });
            if !ready {
                return Err(format!("UpstartEnvironment {NAMESPACE} is not Ready"));
            }
        }
        let api = self.releases();
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), NAMESPACE);
        for (key, dependency) in self.scenario.releases() {
            let name = self.scenario.release_object(key);
            let name = name.as_str();
            let release = api
                .get_opt(name)
                .await
                .map_err(|e| format!("reading HelmRelease {name}: {e}"))?
                .ok_or_else(|| format!("HelmRelease {name} does not exist"))?;
            let ready = release.status.as_ref().is_some_and(|s| {
                is_ready_for_generation(&s.conditions, release.metadata.generation)
            });
            if !ready {
                let condition = release
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                    .map_or("no Ready condition".to_owned(), |c| {
                        format!("Ready={} {}: {}", c.status, c.reason, c.message)
                    });
                return Err(format!("HelmRelease {name} is not Ready ({condition})"));
            }
            if let Some(dependency) = dependency {
                let deployment = deployments
                    .get_opt(key)
                    .await
                    .map_err(|e| format!("reading Deployment {key}: {e}"))?
                    .ok_or_else(|| format!("Deployment {key} does not exist"))?;
                if upstream(&deployment) != Some(self.token(dependency)) {
                    return Err(format!(
                        "Deployment {key} does not hold the current output of {dependency}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether the environment, its namespace, its services and its releases are gone.
    async fn gone(&self) -> Result<(), String> {
        let environment =
            Api::<upstart_api::v1alpha1::UpstartEnvironment>::all(self.client.clone())
                .get_opt(NAMESPACE)
                .await
                .map_err(|e| format!("reading UpstartEnvironment {NAMESPACE}: {e}"))?;
        if let Some(environment) = environment {
            return Err(format!(
                "UpstartEnvironment {NAMESPACE} still exists (finalizers {:?})",
                environment.finalizers()
            ));
        }
        let namespace = Api::<Namespace>::all(self.client.clone())
            .get_opt(NAMESPACE)
            .await
            .map_err(|e| format!("reading namespace {NAMESPACE}: {e}"))?;
        if namespace.is_some() {
            return Err(format!("namespace {NAMESPACE} still exists"));
        }
        let releases = Api::<HelmRelease>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("listing HelmReleases: {e}"))?;
        if let Some(release) = releases.items.first() {
            return Err(format!(
                "HelmRelease {}/{} still exists (finalizers {:?})",
                release.namespace().unwrap_or_default(),
                release.name_any(),
                release.finalizers()
            ));
        }
        Ok(())
    }

    /// Every invariant but settling and quiet, on the final state and the request log.
    async fn check(&self) -> Result<Vec<Violation>, Error> {
        let log = self.cp.faults().request_log();
        let operator_writes: Vec<&LoggedRequest> =
            log.iter().filter(|r| is_operator_write(r)).collect();
        let first_ready = lock(&self.first_ready).clone();
        let mut violations = log_violations(self.scenario, &operator_writes, &first_ready);
        let mut add = |invariant, detail: String| violations.push(Violation { invariant, detail });

        // No finalizer keeps a deleted object.
        for (kind, stuck) in self.deleted_but_present().await? {
            add(
                Invariant::NoFinalizerLeft,
                format!("{kind} {stuck} is deleted but kept by its finalizers"),
            );
        }

        // Inventory equals the labelled objects.
        let api = self.releases();
        let releases = api
            .list(&ListParams::default())
            .await
            .map_err(Error::kube("listing the HelmReleases"))?;
        for key in self.scenario.releases().iter().map(|(key, _)| key) {
            // A release gone (torn down) has an empty inventory: nothing may keep its label.
            let name = self.scenario.release_object(key);
            let release = releases.items.iter().find(|r| r.name_any() == name);
            let inventory: BTreeSet<String> = release
                .and_then(|r| r.status.as_ref())
                .into_iter()
                .flat_map(|s| &s.inventory)
                .map(|e| {
                    format!(
                        "{}/{}/{}",
                        e.kind,
                        e.namespace.as_deref().unwrap_or(""),
                        e.name
                    )
                })
                .collect();
            let labelled = self
                .labelled_objects(&upstart_api::names::release_label_value(NAMESPACE, &name))
                .await?;
            if inventory != labelled {
                add(
                    Invariant::InventoryMatchesLabels,
                    format!(
                        "release {name}: inventory {:?}, labelled objects {:?}",
                        inventory, labelled
                    ),
                );
            }
        }

        // No output value in a status or an Event.
        let secrets: Vec<String> = lock(&self.all_tokens)
            .iter()
            .flat_map(|t| {
                use base64::Engine as _;
                [
                    t.clone(),
                    base64::engine::general_purpose::STANDARD.encode(t.as_bytes()),
                ]
            })
            .collect();
        for release in &releases.items {
            let status = serde_json::to_string(&release.status).unwrap_or_default();
            if secrets.iter().any(|s| status.contains(s.as_str())) {
                add(
                    Invariant::OutputsHidden,
                    format!(
                        "the status of HelmRelease {} holds an output value",
                        release.name_any()
                    ),
                );
            }
        }
        for (kind, objects) in [
            (
                "UpstartService",
                list_json::<upstart_api::v1alpha1::UpstartService>(&self.client).await?,
            ),
            (
                "UpstartEnvironment",
                list_json::<upstart_api::v1alpha1::UpstartEnvironment>(&self.client).await?,
            ),
        ] {
            for (name, text) in objects {
                if secrets.iter().any(|s| text.contains(s.as_str())) {
                    add(
                        Invariant::OutputsHidden,
                        format!("the status of {kind} {name} holds an output value"),
                    );
                }
            }
        }
        let events: Api<Event> = Api::all(self.client.clone());
        for event in events
            .list(&ListParams::default())
            .await
            .map_err(Error::kube("listing the Events"))?
        {
            let text = serde_json::to_string(&event).unwrap_or_default();
            if secrets.iter().any(|s| text.contains(s.as_str())) {
                add(
                    Invariant::OutputsHidden,
                    format!(
                        "Event {} ({}) holds an output value",
                        event.name_any(),
                        event.reason.as_deref().unwrap_or("")
                    ),
                );
            }
        }
        Ok(violations)
    }

    /// Objects of the scenario's kinds with a deletionTimestamp: (kind, namespace/name).
    async fn deleted_but_present(&self) -> Result<Vec<(&'static str, String)>, Error> {
        let mut stuck = Vec::new();
        stuck.extend(deleted::<HelmRelease>(&self.client, "HelmRelease").await?);
        stuck.extend(deleted::<ConfigMap>(&self.client, "ConfigMap").await?);
        stuck.extend(deleted::<Secret>(&self.client, "Secret").await?);
        stuck.extend(deleted::<Deployment>(&self.client, "Deployment").await?);
        stuck.extend(deleted::<Job>(&self.client, "Job").await?);
        stuck.extend(deleted::<Pod>(&self.client, "Pod").await?);
        stuck.extend(deleted::<Namespace>(&self.client, "Namespace").await?);
        Ok(stuck)
    }

    /// The objects of the scenario's kinds labelled as the release's own, hooks aside:
    /// `Kind/namespace/name`.
    async fn labelled_objects(&self, label_value: &str) -> Result<BTreeSet<String>, Error> {
        let selector = format!("{RELEASE_LABEL}={label_value}");
        let mut found = BTreeSet::new();
        found.extend(labelled::<ConfigMap>(&self.client, "ConfigMap", &selector).await?);
        found.extend(labelled::<Secret>(&self.client, "Secret", &selector).await?);
        found.extend(labelled::<Deployment>(&self.client, "Deployment", &selector).await?);
        found.extend(labelled::<Job>(&self.client, "Job", &selector).await?);
        Ok(found)
    }

    fn token(&self, release: &str) -> String {
        lock(&self.tokens).get(release).cloned().unwrap_or_default()
    }

    fn releases(&self) -> Api<HelmRelease> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    fn last_seq(&self) -> u64 {
        self.cp.faults().request_log().last().map_or(0, |r| r.seq)
    }

    fn operator_writes_since(&self, seq: u64) -> Vec<LoggedRequest> {
        self.cp
            .faults()
            .request_log_since(seq)
            .into_iter()
            .filter(is_operator_write)
            .collect()
    }
}

/// One generation of operators: their own Tokio runtime, so that killing them ends every task
/// they started, as a crash of their process would.
struct Generation {
    runtime: Option<tokio::runtime::Runtime>,
    failure: Arc<Mutex<Option<String>>>,
    /// Under leader election, each operator runs only while holding its Lease.
    elect: bool,
    /// What operator_runtime's SIGTERM handler triggers.
    shutdown: Shutdown,
    /// Set when the generation is to end (a graceful stop, a Lease taken): its operators'
    /// ends are then no failure.
    ending: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Under [`Variant::Sigkill`]: the HelmRelease operator's process.
    binary: Option<std::process::Child>,
}

impl Generation {
    async fn start(rig: &Rig, number: u32, elect: bool) -> Result<Generation, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("operator-{number}"))
            .enable_all()
            .build()
            .map_err(|e| unexpected("starting the operators' runtime", e))?;
        let mut generation = Generation {
            runtime: Some(runtime),
            failure: Arc::new(Mutex::new(None)),
            elect,
            shutdown: Shutdown::new(),
            ending: Arc::default(),
            tasks: Vec::new(),
            binary: None,
        };
        let repositories = RepositoryConfig::from_yaml(&format!(
            "repositories: {{test: {{url: \"{}\"}}}}",
            rig.repo.url()
        ))
        .map_err(|e| unexpected("the harness's repository configuration", e))?;
        let config = upstart_helmrelease_operator::controller::Config {
            helm_path: rig.helm.clone(),
            repositories,
            // A restarted pod starts with an empty cache.
            cache_dir: rig.dir.path().join(format!("cache-{number}")),
            teardown_timeout: Duration::from_secs(60),
            ..Default::default()
        };
        if let Some(endpoint) = &rig.endpoint {
            generation.binary = Some(start_binary(rig, endpoint, number).await?);
        } else {
            generation.spawn(rig, number, "helmrelease", move |op, shutdown| {
                upstart_helmrelease_operator::controller::run(op, config, shutdown)
            });
        }
        if rig.scenario.all_operators() {
            let catalog_namespace = upstart_api::names::DEFAULT_CATALOG_NAMESPACE.to_owned();
            #[allow(
                clippy::needless_update,
                reason = "settings the operator adds later keep their defaults"
            )]
            let service = upstart_service_operator::controller::Config {
                catalog_namespace: catalog_namespace.clone(),
                ..Default::default()
            };
            generation.spawn(rig, number, "upstartservice", move |op, shutdown| {
                upstart_service_operator::controller::run(op, service, shutdown)
            });
            let environment = upstart_environment_operator::controller::Config {
                catalog_namespace,
                teardown_timeout: Duration::from_secs(60),
                ..Default::default()
            };
            generation.spawn(rig, number, "upstartenvironment", move |op, shutdown| {
                upstart_environment_operator::controller::run(op, environment, shutdown)
            });
        }
        Ok(generation)
    }

    /// Runs one operator (`name`) of generation `number` on its runtime, on a client tagged
    /// `operator-<number>-<name>`; an end of its own is recorded as the generation's failure.
    fn spawn<F, Fut, E>(&mut self, rig: &Rig, number: u32, name: &'static str, work: F)
    where
        F: FnOnce(upstart_operator_runtime::OperatorContext, Shutdown) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
    {
        let Some(runtime) = &self.runtime else {
            return;
        };
        // The client's buffer task runs on the runtime it is created in: the operators' own.
        let client = {
            let _entered = runtime.enter();
            rig.cp
                .client_tagged(&format!("{OPERATOR_TAG}{number}-{name}"))
        };
        let op =
            upstart_operator_runtime::OperatorContext::new(name, client, CommonArgs::default());
        let failed = self.failure.clone();
        let ending = self.ending.clone();
        let options = RunOptions {
            leader_election: self.elect.then(|| lease_config(number, name)),
            ..RunOptions::in_process()
        };
        let shutdown = self.shutdown.clone();
        let task = runtime.spawn(async move {
            let result = upstart_operator_runtime::run(op, options, shutdown, work).await;
            if ending.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            let message = match result {
                Ok(()) => format!("the {name} operator stopped on its own"),
                Err(e) => format!("the {name} operator failed: {e}"),
            };
            lock(&failed).get_or_insert(message);
        });
        self.tasks.push(task);
    }

    /// From now on the generation is expected to end.
    fn expect_end(&self) {
        self.ending
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Waits up to `timeout` for every operator of the generation to end by itself.
    async fn join(&mut self, timeout: Duration) -> Result<(), String> {
        let tasks = std::mem::take(&mut self.tasks);
        tokio::time::timeout(timeout, futures::future::join_all(tasks))
            .await
            .map(drop)
            .map_err(|_| format!("the operators did not stop within {timeout:?} of the signal"))
    }

    /// Why an operator of this generation ended, if one did.
    fn failure(&mut self) -> Option<String> {
        if let Some(child) = &mut self.binary
            && let Ok(Some(status)) = child.try_wait()
        {
            return Some(format!("the helmrelease operator binary exited: {status}"));
        }
        self.failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Ends every task of the generation where it stands and waits until they are gone; its
    /// operator binary gets SIGKILL.
    async fn kill(&mut self) {
        if let Some(mut child) = self.binary.take() {
            // std's kill is SIGKILL on Unix.
            let _ = child.kill();
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        }
        if let Some(runtime) = self.runtime.take() {
            let _ = tokio::task::spawn_blocking(move || runtime.shutdown_timeout(KILL_GRACE)).await;
        }
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        if let Some(child) = &mut self.binary {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Starts the HelmRelease operator binary of generation `number` on `endpoint`, as the
/// ServiceAccount `operator-<number>-helmrelease` (its client tag in the request log), with the
/// harness's repository, helm and a fresh chart cache; its output goes to a log file beside
/// them.
async fn start_binary(
    rig: &Rig,
    endpoint: &upstart_control_plane::Endpoint,
    number: u32,
) -> Result<std::process::Child, Error> {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("upstart-helmrelease-operator")))
        .filter(|path| path.is_file())
        .ok_or_else(|| Error::Unexpected {
            what: "the sigkill variant".into(),
            message: "upstart-helmrelease-operator is not in cargo's target directory beside \
                      this program: build it first (cargo build -p upstart-helmrelease-operator, \
                      with the same profile)"
                .into(),
        })?;
    let account = lease_identity(number, "helmrelease");
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(rig.client.clone(), LEASE_NAMESPACE);
    accounts
        .create(
            &PostParams::default(),
            &from_json(json!({"metadata": {"name": account}}))?,
        )
        .await
        .map_err(Error::kube("creating the operator binary's ServiceAccount"))?;
    // TokenRequest is served where tokens are used: on the HTTPS endpoint.
    let admin = endpoint
        .client()
        .await
        .map_err(|e| unexpected("a client of the HTTPS endpoint", e))?;
    let token =
        Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(admin, LEASE_NAMESPACE)
            .create_token_request(
                &account,
                &PostParams::default(),
                &from_json(json!({"spec": {"expirationSeconds": 3600}}))?,
            )
            .await
            .map_err(Error::kube("requesting the operator binary's token"))?
            .status
            .map(|s| s.token)
            .ok_or_else(|| unexpected("requesting the operator binary's token", "no status"))?;
    let dir = rig.dir.path();
    let kubeconfig = dir.join(format!("kubeconfig-{number}"));
    let repositories = dir.join("repositories.yaml");
    let write = |path: &Path, text: String| {
        std::fs::write(path, text)
            .map_err(|e| unexpected(&format!("writing {}", path.display()), e))
    };
    write(
        &kubeconfig,
        endpoint.kubeconfig_yaml().replace(endpoint.token(), &token),
    )?;
    write(
        &repositories,
        format!("repositories: {{test: {{url: \"{}\"}}}}\n", rig.repo.url()),
    )?;
    let log = std::fs::File::create(dir.join(format!("helmrelease-operator-{number}.log")))
        .map_err(|e| unexpected("creating the operator binary's log", e))?;
    let err = log
        .try_clone()
        .map_err(|e| unexpected("creating the operator binary's log", e))?;
    std::process::Command::new(&binary)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("UPSTART_KUBECONFIG", &kubeconfig)
        .env("UPSTART_METRICS_ADDR", "127.0.0.1:0")
        .env("UPSTART_HELM_PATH", &rig.helm)
        .env("UPSTART_REPOSITORY_CONFIG", &repositories)
        .env("UPSTART_CACHE_DIR", dir.join(format!("cache-{number}")))
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .map_err(|e| unexpected(&format!("starting {}", binary.display()), e))
}

/// Records the resourceVersion at which each HelmRelease is first seen Ready (watch events come
/// in resourceVersion order).
async fn observe_ready(client: Client, first_ready: Arc<Mutex<HashMap<String, u64>>>) {
    let api: Api<HelmRelease> = Api::namespaced(client, NAMESPACE);
    let mut events = watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = events.next().await {
        let objects = match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => vec![o],
            _ => continue,
        };
        for release in objects {
            let ready = release.status.as_ref().is_some_and(|s| {
                is_ready_for_generation(&s.conditions, release.metadata.generation)
            });
            let rv = release
                .resource_version()
                .and_then(|rv| rv.parse::<u64>().ok());
            if let (true, Some(rv)) = (ready, rv) {
                first_ready
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entry(release.name_any())
                    .or_insert(rv);
            }
        }
    }
}

/// The invariants read from the request log alone: hooks created once, confinement to the
/// namespace, dependencies Ready first. `operator_writes` in log order; `first_ready`: the
/// resourceVersion at which each release was first seen Ready.
fn log_violations(
    scenario: Scenario,
    operator_writes: &[&LoggedRequest],
    first_ready: &HashMap<String, u64>,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut add = |invariant, detail: String| violations.push(Violation { invariant, detail });
    for (name, _) in scenario.releases() {
        for (resource, hook, expected) in scenario.hooks(name) {
            let creates = operator_writes
                .iter()
                // The operator creates by server-side apply, answered 201 when it creates (a
                // POST would not name the object in its path).
                .filter(|r| {
                    r.status == 201
                        && r.resource == resource
                        && r.namespace == NAMESPACE
                        && r.name == hook
                })
                .count();
            if creates != expected {
                add(
                    Invariant::HookCreatedOnce,
                    format!(
                        "{resource}/{hook} of release {name} was created {creates} times, \
                         expected {expected}"
                    ),
                );
            }
        }
    }
    for r in operator_writes
        .iter()
        .filter(|r| r.namespace != NAMESPACE && !scenario.may_write_outside(r))
    {
        add(Invariant::ConfinedToNamespace, describe(r));
    }
    for (name, dependency) in scenario.releases() {
        let Some(dependency) = dependency else {
            continue;
        };
        let prefix = format!("{name}-");
        let first = operator_writes.iter().find(|r| {
            r.status < 400
                && r.namespace == NAMESPACE
                && !matches!(r.resource.as_str(), "helmreleases" | "events")
                && (r.name == *name || r.name.starts_with(&prefix))
        });
        let Some(first) = first else {
            continue;
        };
        match first_ready.get(&scenario.release_object(dependency)) {
            // The write's own resourceVersion is at most the one logged with it, and is not the
            // Ready one: logged at or before Ready means written before it.
            Some(ready) if first.resource_version > *ready => {}
            Some(ready) => add(
                Invariant::DependencyReadyFirst,
                format!(
                    "{} (resourceVersion <= {}) before {dependency} was Ready (resourceVersion \
                     {ready})",
                    describe(first),
                    first.resource_version
                ),
            ),
            None => add(
                Invariant::DependencyReadyFirst,
                format!(
                    "{} while {dependency} was never seen Ready",
                    describe(first)
                ),
            ),
        }
    }
    violations
}

/// A write of an operator, its leader election's Lease renewals aside (periodic by design).
fn is_operator_write(r: &LoggedRequest) -> bool {
    r.client.starts_with(OPERATOR_TAG)
        && r.verb.is_some_and(Verb::is_write)
        && r.resource != "leases"
}

/// Every operator generation's client tags.
const OPERATOR_PATTERN: &str = "operator-*";

/// The leader election Lease of operator `name` in the harness.
fn lease_name(name: &str) -> String {
    format!("crash-{name}")
}

/// The Lease identity of operator `name` of generation `number`: its client tag.
fn lease_identity(number: u32, name: &str) -> String {
    format!("{OPERATOR_TAG}{number}-{name}")
}

/// Short Lease timings, so that a released Lease is taken in a fraction of a second and a
/// taken one is noticed as quickly.
fn lease_config(number: u32, name: &str) -> LeaseConfig {
    LeaseConfig {
        namespace: LEASE_NAMESPACE.to_owned(),
        name: lease_name(name),
        identity: lease_identity(number, name),
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(200),
    }
}

/// `operator-1-helmrelease patch configmaps crash/a-marker -> 201`.
fn describe(r: &LoggedRequest) -> String {
    let verb = r.verb.map_or("?", Verb::as_str);
    let sub = if r.subresource.is_empty() {
        String::new()
    } else {
        format!("/{}", r.subresource)
    };
    format!(
        "{} {verb} {}{sub} {}/{} -> {}",
        r.client, r.resource, r.namespace, r.name, r.status
    )
}

fn first_few(items: &[String]) -> String {
    let shown: Vec<&str> = items.iter().take(5).map(String::as_str).collect();
    let more = items.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{}; and {more} more", shown.join("; "))
    } else {
        shown.join("; ")
    }
}

fn upstream(deployment: &Deployment) -> Option<String> {
    deployment
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == "UPSTREAM")?
        .value
        .clone()
}

async fn deleted<K>(
    client: &Client,
    kind: &'static str,
) -> Result<Vec<(&'static str, String)>, Error>
where
    K: Resource + Clone + DeserializeOwned + fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::all(client.clone());
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(Error::kube(format!("listing {kind}s")))?;
    Ok(list
        .items
        .iter()
        .filter(|o| o.meta().deletion_timestamp.is_some())
        .map(|o| {
            (
                kind,
                format!(
                    "{}/{} (finalizers {:?})",
                    o.meta().namespace.as_deref().unwrap_or(""),
                    o.name_any(),
                    o.finalizers()
                ),
            )
        })
        .collect())
}

async fn labelled<K>(client: &Client, kind: &str, selector: &str) -> Result<Vec<String>, Error>
where
    K: Resource + Clone + DeserializeOwned + fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::all(client.clone());
    let list = api
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(Error::kube(format!("listing {kind}s labelled {selector}")))?;
    Ok(list
        .items
        .iter()
        .filter(|o| {
            o.meta()
                .annotations
                .as_ref()
                .is_none_or(|a| !a.contains_key(HOOK_ANNOTATION))
        })
        .map(|o| {
            format!(
                "{kind}/{}/{}",
                o.meta().namespace.as_deref().unwrap_or(""),
                o.name_any()
            )
        })
        .collect())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Each object of kind `K` in every namespace: its name and its status as JSON text.
async fn list_json<K>(client: &Client) -> Result<Vec<(String, String)>, Error>
where
    K: Resource + Clone + DeserializeOwned + fmt::Debug + serde::Serialize,
    K::DynamicType: Default,
{
    let list = Api::<K>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(Error::kube("listing the Upstart objects"))?;
    Ok(list
        .items
        .iter()
        .map(|o| {
            let status = serde_json::to_value(o)
                .ok()
                .and_then(|v| v.get("status").map(Value::to_string))
                .unwrap_or_default();
            (o.name_any(), status)
        })
        .collect())
}

fn from_json<T: DeserializeOwned>(value: Value) -> Result<T, Error> {
    serde_json::from_value(value).map_err(|e| unexpected("building an object of the scenario", e))
}

fn unexpected(what: &str, e: impl fmt::Display) -> Error {
    Error::Unexpected {
        what: what.to_owned(),
        message: e.to_string(),
    }
}

/// The charts of `scenario`, written under `root`.
fn write_charts(scenario: Scenario, root: &Path) -> Result<(), Error> {
    let files: &[(&str, &str)] = match scenario {
        Scenario::Chain | Scenario::OutputRotation | Scenario::EnvironmentTeardown => &[
            (
                "tier/Chart.yaml",
                "apiVersion: v2\nname: tier\nversion: 0.1.0\n",
            ),
            ("tier/templates/hooks.yaml", TIER_HOOKS),
            ("tier/templates/objects.yaml", TIER_OBJECTS),
        ],
    };
    for (rel, text) in files {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| unexpected(&format!("creating {}", parent.display()), e))?;
        }
        std::fs::write(&path, text)
            .map_err(|e| unexpected(&format!("writing {}", path.display()), e))?;
    }
    Ok(())
}

/// A migration Job run before install and upgrade and deleted once it succeeds (so that only
/// the request log can tell whether it ran twice), and a marker ConfigMap after install.
const TIER_HOOKS: &str = r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-migrate
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-delete-policy: hook-succeeded
    simulator.upstart.dev/ready-after: 100ms
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: example/migrate:1
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-marker
  annotations:
    helm.sh/hook: post-install
data:
  done: "yes"
"#;

/// The release's output Secret (its token) and a Deployment holding its dependency's token.
const TIER_OBJECTS: &str = r#"apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-out
data:
  TOKEN: {{ .Values.token | b64enc | quote }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  annotations:
    simulator.upstart.dev/ready-after: 100ms
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
          env:
            - name: UPSTREAM
              value: {{ .Values.upstream | default "" | quote }}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn write(resource: &str, namespace: &str, name: &str, status: u16, rv: u64) -> LoggedRequest {
        LoggedRequest {
            seq: 0,
            method: "PATCH".into(),
            path: String::new(),
            verb: Some(Verb::Patch),
            resource: resource.into(),
            subresource: String::new(),
            namespace: namespace.into(),
            name: name.into(),
            client: "operator-1-helmrelease".into(),
            status,
            resource_version: rv,
        }
    }

    /// A clean run of the rotation: each migration created twice, markers once, b's objects
    /// written after a was Ready.
    fn clean_rotation() -> Vec<LoggedRequest> {
        let mut log = Vec::new();
        for (release, rv) in [("a", 10), ("b", 30)] {
            log.push(write(
                "jobs",
                NAMESPACE,
                &format!("{release}-migrate"),
                201,
                rv,
            ));
            log.push(write(
                "configmaps",
                NAMESPACE,
                &format!("{release}-marker"),
                201,
                rv + 1,
            ));
            log.push(write(
                "secrets",
                NAMESPACE,
                &format!("{release}-out"),
                201,
                rv + 2,
            ));
        }
        for release in ["a", "b"] {
            log.push(write(
                "jobs",
                NAMESPACE,
                &format!("{release}-migrate"),
                201,
                50,
            ));
        }
        log
    }

    fn check(log: &[LoggedRequest], first_ready: &[(&str, u64)]) -> Vec<Invariant> {
        let writes: Vec<&LoggedRequest> = log.iter().collect();
        let ready = first_ready
            .iter()
            .map(|(name, rv)| ((*name).to_owned(), *rv))
            .collect();
        log_violations(Scenario::OutputRotation, &writes, &ready)
            .into_iter()
            .map(|v| v.invariant)
            .collect()
    }

    #[test]
    fn a_clean_log_breaks_nothing() {
        assert_eq!(check(&clean_rotation(), &[("a", 20)]), []);
    }

    #[test]
    fn a_hook_created_again_is_seen() {
        let mut log = clean_rotation();
        log.push(write("configmaps", NAMESPACE, "b-marker", 201, 60));
        assert_eq!(check(&log, &[("a", 20)]), [Invariant::HookCreatedOnce]);
        // An update of an existing hook (200) is no creation.
        let mut log = clean_rotation();
        log.push(write("configmaps", NAMESPACE, "b-marker", 200, 60));
        assert_eq!(check(&log, &[("a", 20)]), []);
    }

    #[test]
    fn a_write_in_another_namespace_is_seen() {
        let mut log = clean_rotation();
        log.push(write("configmaps", "kube-public", "b-settings", 201, 60));
        assert_eq!(check(&log, &[("a", 20)]), [Invariant::ConfinedToNamespace]);
    }

    #[test]
    fn a_dependent_written_before_its_dependency_was_ready_is_seen() {
        // b's migration logged at 30, a Ready at 30 or later: b was written first.
        assert_eq!(
            check(&clean_rotation(), &[("a", 30)]),
            [Invariant::DependencyReadyFirst]
        );
        assert_eq!(
            check(&clean_rotation(), &[]),
            [Invariant::DependencyReadyFirst]
        );
    }

    #[test]
    fn spread_picks_first_and_last_evenly() {
        assert_eq!(spread(10, 3), [1, 5, 10]);
        assert_eq!(spread(3, 5), [1, 2, 3]);
        assert_eq!(spread(7, 1), [1]);
        assert!(spread(0, 3).is_empty());
    }
}
