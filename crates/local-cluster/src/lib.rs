//! The local development cluster, composed in one place for `upstart dev` and the e2e tests:
//! the in-process control plane (optionally on HTTPS with a kubeconfig), the workload simulator,
//! the local chart repository (`upstart-charts`) and the in-process operators; plus applying
//! manifest files to it and waiting until they are Ready.
//!
//! ```no_run
//! # async fn demo() -> Result<(), upstart_local_cluster::Error> {
//! use std::time::Duration;
//! use upstart_local_cluster::{LocalCluster, LocalClusterOptions, OperatorSet, apply_files, wait_ready};
//!
//! let cluster = LocalCluster::start(LocalClusterOptions {
//!     charts_dir: Some("charts".into()),
//!     operators: OperatorSet::all(),
//!     ..LocalClusterOptions::default()
//! })
//! .await?;
//! let applied = apply_files(cluster.client(), &["crds/x.yaml"], "me", "default").await?;
//! wait_ready(&applied, &cluster.reported_kinds(), Duration::from_secs(60)).await?;
//! cluster.shutdown().await;
//! # Ok(()) }
//! ```

mod apply;
mod error;
mod manifests;
mod operators;
mod ready;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use upstart_chart_repo::{ChartRepo, RunningRepo};
use upstart_control_plane::{ControlPlane, Endpoint};
use upstart_workload_simulator::{RunningSimulator, Simulator};

pub use apply::{Applied, apply_files, apply_manifests};
pub use error::Error;
pub use manifests::{Manifest, apply_order, parse, read_files};
pub use operators::{
    CHARTS_ALIAS, ChartRepository, Operator, OperatorContext, OperatorSet, ReportedKinds,
    StopSignal,
};
pub use ready::{Readiness, Verdict, readiness, verdict, wait_ready};

/// What to start.
#[derive(Debug, Clone, Default)]
pub struct LocalClusterOptions {
    /// Serve the API over HTTPS on this port of 127.0.0.1 (0 picks a free one). `None`: no
    /// endpoint, the cluster is reachable in process only ([`LocalCluster::client`]).
    pub https_port: Option<u16>,
    /// Where to write a kubeconfig for the HTTPS endpoint (parent folders are created).
    /// Requires `https_port`.
    pub kubeconfig_path: Option<PathBuf>,
    /// Directory of charts served as the `upstart-charts` repository (edits are picked up).
    /// `None`, or a directory that does not exist (a warning then): no repository.
    pub charts_dir: Option<PathBuf>,
    /// How long simulated workloads (Deployments, Jobs, …) take to become ready.
    pub workload_delay: Duration,
    /// Make every simulated workload fail instead.
    pub fail_workloads: bool,
    /// The operators to run in process.
    pub operators: OperatorSet,
}

/// A running local cluster. Stop it with [`LocalCluster::shutdown`]; dropping it leaves its
/// tasks to end with the Tokio runtime.
pub struct LocalCluster {
    control_plane: ControlPlane,
    client: kube::Client,
    endpoint: Option<Endpoint>,
    kubeconfig_path: Option<PathBuf>,
    charts: Option<RunningRepo>,
    chart_repositories: Vec<ChartRepository>,
    simulator: RunningSimulator,
    operators: operators::RunningOperators,
    reported_kinds: ReportedKinds,
}

impl std::fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCluster")
            .field("api_url", &self.api_url())
            .field("kubeconfig_path", &self.kubeconfig_path)
            .field("chart_repositories", &self.chart_repositories)
            .finish_non_exhaustive()
    }
}

impl LocalCluster {
    /// Starts, in this order: the control plane (and its HTTPS endpoint and kubeconfig when
    /// asked), the workload simulator, the chart repository, the operators.
    pub async fn start(options: LocalClusterOptions) -> Result<LocalCluster, Error> {
        if let (None, Some(path)) = (options.https_port, &options.kubeconfig_path) {
            return Err(Error::KubeconfigWithoutHttps { path: path.clone() });
        }
        let control_plane = ControlPlane::start(upstart_control_plane::Options::default());
        let endpoint = match options.https_port {
            Some(port) => {
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                let endpoint = control_plane.serve_https(addr).await.map_err(|source| {
                    Error::ControlPlane {
                        addr,
                        source: Box::new(source),
                    }
                })?;
                tracing::info!(url = %endpoint.url, "control plane serving");
                Some(endpoint)
            }
            None => None,
        };
        if let (Some(endpoint), Some(path)) = (&endpoint, &options.kubeconfig_path) {
            write_kubeconfig(endpoint, path)?;
            tracing::info!(kubeconfig = %path.display(), "kubeconfig written");
        }

        let client = control_plane.client();
        let simulator = Simulator::new(
            client.clone(),
            upstart_workload_simulator::Options {
                ready_after: options.workload_delay,
                fail: options.fail_workloads,
            },
        )
        .spawn();

        let charts = match &options.charts_dir {
            Some(dir) => serve_charts(dir).await?,
            None => None,
        };
        let chart_repositories: Vec<ChartRepository> = charts
            .iter()
            .map(|repo| ChartRepository {
                alias: CHARTS_ALIAS.to_owned(),
                url: repo.url.clone(),
            })
            .collect();

        let operators = options.operators.start(&OperatorContext {
            client: client.clone(),
            chart_repositories: chart_repositories.clone(),
        });
        Ok(LocalCluster {
            control_plane,
            client,
            endpoint,
            kubeconfig_path: options.kubeconfig_path,
            charts,
            chart_repositories,
            simulator,
            operators,
            reported_kinds: options.operators.reported_kinds(),
        })
    }

    /// A client talking to the control plane in process.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The kubeconfig written, if any.
    pub fn kubeconfig_path(&self) -> Option<&Path> {
        self.kubeconfig_path.as_deref()
    }

    /// The HTTPS URL of the API (`https://127.0.0.1:PORT`), if it is served.
    pub fn api_url(&self) -> Option<&str> {
        self.endpoint.as_ref().map(|e| e.url.as_str())
    }

    /// The HTTPS endpoint (CA, token, kubeconfig text), if the API is served.
    pub fn endpoint(&self) -> Option<&Endpoint> {
        self.endpoint.as_ref()
    }

    /// The chart repositories the operators were given (the local `upstart-charts` when served).
    pub fn chart_repositories(&self) -> &[ChartRepository] {
        &self.chart_repositories
    }

    /// The control plane itself, for fault injection in tests.
    pub fn control_plane(&self) -> &ControlPlane {
        &self.control_plane
    }

    /// The Upstart kinds whose `Ready` condition an in-process operator writes (for
    /// [`wait_ready`]).
    pub fn reported_kinds(&self) -> ReportedKinds {
        self.reported_kinds.clone()
    }

    /// Stops everything, in order: the operators, the simulator, the chart repository, the
    /// control plane (open watches end and the HTTPS listener stops).
    pub async fn shutdown(self) {
        self.operators.shutdown().await;
        self.simulator.shutdown().await;
        if let Some(repo) = self.charts {
            repo.shutdown().await;
        }
        self.control_plane.shutdown();
    }
}

fn write_kubeconfig(endpoint: &Endpoint, path: &Path) -> Result<(), Error> {
    let fail = |message: String| Error::Kubeconfig {
        path: path.to_path_buf(),
        message,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    }
    endpoint
        .write_kubeconfig(path)
        .map_err(|e| fail(e.to_string()))
}

async fn serve_charts(dir: &Path) -> Result<Option<RunningRepo>, Error> {
    if !dir.is_dir() {
        tracing::warn!(
            dir = %dir.display(),
            "no chart directory: the {CHARTS_ALIAS} repository is not served"
        );
        return Ok(None);
    }
    let fail = |source| Error::ChartRepo {
        path: dir.to_path_buf(),
        source,
    };
    let repo = ChartRepo::from_dir(dir).map_err(fail)?.auto_reload(true);
    let count = repo.charts().len();
    let running = repo
        .serve(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .map_err(fail)?;
    tracing::info!(alias = CHARTS_ALIAS, url = %running.url, charts = count, "chart repository serving");
    Ok(Some(running))
}
