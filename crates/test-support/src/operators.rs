//! The harness the three operators' controller tests share: a local control plane with the
//! Upstart CRDs, the workload simulator making workloads ready, a local HTTP chart repository
//! named `test`, operators run in process, and polling until something holds.
//!
//! Every helper panics on failure: it is test code, and a panic fails the test with its message.

use std::fmt::Debug;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::core::object::HasStatus;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use upstart_chart_repo::{ChartRepo, RunningRepo};
use upstart_chart_source::RepositoryConfig;
use upstart_control_plane::ControlPlane;
use upstart_operator_runtime::{
    CommonArgs, Metrics, OperatorContext, Readiness, RunOptions, Shutdown,
};
use upstart_workload_simulator::{RunningSimulator, Simulator};

/// How often [`eventually`] looks again.
const POLL: Duration = Duration::from_millis(50);

/// Writes `text` to `dir/rel`, creating the folders on the way.
pub fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
    }
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// Sends this test binary's logs to the test output, filtered by `RUST_LOG` (for example
/// `RUST_LOG=upstart_service_operator=debug` shows a controller's logs on failure). Installs
/// once; later calls do nothing.
pub fn test_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Polls `check` every 50 ms until it gives a value, and returns it.
///
/// # Panics
/// When `wait` passes first, naming `what`.
pub async fn eventually<T, F, Fut>(wait: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + wait;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Polls the object `name` of `api` every 50 ms until it exists and `check` holds for it, and
/// returns it.
///
/// # Panics
/// When `wait` passes first, naming `what` and showing the status last seen.
pub async fn object_where<K>(
    api: &Api<K>,
    name: &str,
    wait: Duration,
    what: &str,
    check: impl Fn(&K) -> bool,
) -> K
where
    K: Resource + HasStatus + Clone + DeserializeOwned + Debug,
    K::Status: Debug,
{
    let deadline = Instant::now() + wait;
    loop {
        let object = api
            .get_opt(name)
            .await
            .unwrap_or_else(|e| panic!("reading {name}: {e}"));
        if let Some(object) = &object
            && check(object)
        {
            return object.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{name}: timed out waiting for {what}; last seen: {:#?}",
            object.as_ref().map(|o| o.status())
        );
        tokio::time::sleep(POLL).await;
    }
}

/// A local control plane with the Upstart CRDs installed, the workload simulator running on it,
/// and a chart repository served over HTTP from a temporary folder. Everything stops when it is
/// dropped.
pub struct Cluster {
    /// A client of the control plane.
    pub client: Client,
    repo: RunningRepo,
    dirs: tempfile::TempDir,
    _sim: RunningSimulator,
    control_plane: ControlPlane,
}

impl Cluster {
    /// The control plane's fault injection: a test makes chosen requests fail (or wait) on
    /// purpose, as a real API server would under RBAC, load or outages.
    pub fn faults(&self) -> &upstart_control_plane::Faults {
        self.control_plane.faults()
    }

    /// Starts it all; `charts` writes the repository's chart folders into the folder it is given.
    pub async fn start(charts: impl FnOnce(&Path)) -> Cluster {
        let cp = ControlPlane::start(upstart_control_plane::Options::default());
        let client = cp.client();
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in upstart_api::crd::crds() {
            crds.create(&PostParams::default(), &crd)
                .await
                .unwrap_or_else(|e| panic!("installing CRD {:?}: {e}", crd.metadata.name));
        }
        let sim = Simulator::new(client.clone(), Default::default()).spawn();
        let dirs = tempfile::tempdir().expect("a temporary folder");
        let chart_root = dirs.path().join("charts");
        charts(&chart_root);
        let repo = ChartRepo::from_dir(&chart_root)
            .expect("the test charts load")
            .serve(([127, 0, 0, 1], 0).into())
            .await
            .expect("the chart repository serves");
        Cluster {
            client,
            repo,
            dirs,
            _sim: sim,
            control_plane: cp,
        }
    }

    /// Creates the namespace `name` (a catalog namespace, for example).
    pub async fn create_namespace(&self, name: &str) {
        let namespace: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))
                .expect("a valid Namespace");
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
    }

    /// Enforces RBAC on the control plane from now on and serves it over HTTPS; returns a
    /// client of the admin (`system:masters`) through that endpoint. Unlike [`Cluster::client`]
    /// (in process, never authorized), its requests go through authorization and
    /// impersonation: an operator on it acting as a ServiceAccount gets that account's rights.
    pub async fn enforce_rbac(&self) -> Client {
        self.control_plane
            .enable_rbac()
            .expect("RBAC is enabled on the control plane");
        let endpoint = self
            .control_plane
            .serve_https(([127, 0, 0, 1], 0).into())
            .await
            .expect("the control plane serves HTTPS");
        endpoint
            .client()
            .await
            .expect("a client of the HTTPS endpoint")
    }

    /// The chart repository's URL.
    pub fn repo_url(&self) -> &str {
        self.repo.url()
    }

    /// The temporary folder the charts (and any cache a test puts there) live in.
    pub fn dir(&self) -> &Path {
        self.dirs.path()
    }

    /// The HelmRelease operator's test configuration: repository `test` is the local chart
    /// repository, helm is [`crate::helm`], the chart cache is in [`Cluster::dir`], teardown
    /// waits up to 60 s.
    pub fn helmrelease_config(&self) -> upstart_helmrelease_operator::controller::Config {
        let repositories = RepositoryConfig::from_yaml(&format!(
            "repositories: {{test: {{url: \"{}\"}}}}",
            self.repo_url()
        ))
        .expect("a valid repository configuration");
        upstart_helmrelease_operator::controller::Config {
            helm_path: crate::helm(),
            repositories,
            cache_dir: self.dir().join("cache"),
            teardown_timeout: Duration::from_secs(60),
            ..Default::default()
        }
    }
}

/// An operator's work running in process ([`RunOptions::in_process`]: no server, no election).
pub struct RunningOperator {
    /// The operator's metrics registry.
    pub metrics: Metrics,
    /// The operator's readiness (its caches synced).
    pub readiness: Readiness,
    stop: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl RunningOperator {
    /// Runs `work` as the operator `name` (its metrics' and events' name) on `client`.
    pub fn spawn<F, Fut, E>(name: &'static str, client: Client, work: F) -> RunningOperator
    where
        F: FnOnce(OperatorContext, Shutdown) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let op = OperatorContext::new(name, client, CommonArgs::default());
        let metrics = op.metrics.clone();
        let readiness = op.readiness.clone();
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            if let Err(e) =
                upstart_operator_runtime::run(op, RunOptions::in_process(), shutdown, work).await
            {
                panic!("operator {name} failed: {e}");
            }
        });
        RunningOperator {
            metrics,
            readiness,
            stop,
            task,
        }
    }

    /// The HelmRelease operator with `config`.
    pub fn helmrelease(
        client: Client,
        config: upstart_helmrelease_operator::controller::Config,
    ) -> RunningOperator {
        RunningOperator::spawn("helmrelease-operator", client, move |op, shutdown| {
            upstart_helmrelease_operator::controller::run(op, config, shutdown)
        })
    }

    /// Asks the operator to stop, as on SIGTERM, without waiting ([`RunningOperator::join`]).
    pub fn trigger_stop(&self) {
        self.stop.trigger();
    }

    /// Waits for the operator to end.
    ///
    /// # Panics
    /// When it does not end within `timeout`, or ended with an error or a panic.
    pub async fn join(self, timeout: Duration) {
        tokio::time::timeout(timeout, self.task)
            .await
            .expect("controller stops on shutdown")
            .expect("the operator's task ends without a panic");
    }

    /// Stops the operator gracefully, as on SIGTERM, and waits up to `timeout` for it to end.
    pub async fn stop(self, timeout: Duration) {
        self.trigger_stop();
        self.join(timeout).await;
    }

    /// Aborts the operator where it stands, as a crash would: no graceful shutdown.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}
