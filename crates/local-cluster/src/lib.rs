//! The local development cluster, composed in one place for `upstart dev` and the e2e tests:
//! the in-process control plane (optionally on HTTPS with a kubeconfig) serving the Upstart
//! CRDs with the catalog namespace in place, the workload simulator, the local chart repository
//! (`upstart-charts`) beside any other repositories configured, and the in-process operators;
//! plus applying manifest files to it, waiting until they are Ready, and reading back the
//! resolved wiring ([`report`]).
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
mod chart_watch;
mod error;
pub mod instance;
mod manifests;
mod operators;
mod ready;
pub mod report;
mod tools;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use upstart_chart_repo::{ChartRepo, RunningRepo};
use upstart_chart_source::ChartSource;
use upstart_control_plane::{ControlPlane, Endpoint};
use upstart_workload_simulator::{RunningSimulator, Simulator};

pub use apply::{Applied, apply_files, apply_manifests};
pub use error::Error;
pub use manifests::{Manifest, apply_order, parse, read_files};
pub use operators::{
    CHARTS_ALIAS, CREDENTIALS_NAMESPACE, ChartRepository, Operator, OperatorContext,
    OperatorFailure, OperatorSet, ReportedKinds, StopSignal, run_in_process,
};
pub use ready::{Readiness, Verdict, readiness, verdict, wait_ready};
pub use tools::{HELM_ENV, locate_helm};
// The types of [`LocalClusterOptions`], so that its users need not depend on their crates.
pub use upstart_chart_repo::{OverlayOptions, Upstream};
pub use upstart_chart_source::{Repository, RepositoryConfig};
pub use upstart_environment_operator::admission::Limits as EnvironmentLimits;
pub use upstart_release_engine::manifests::ClusterScopedAllowList;

/// The field manager of what the cluster installs itself (the Upstart CRDs, the catalog
/// namespace).
pub const FIELD_MANAGER: &str = "upstart-local-cluster";

/// What to start.
#[derive(Debug, Clone, Default)]
pub struct LocalClusterOptions {
    /// Serve the API over HTTPS on this port of 127.0.0.1 (0 picks a free one). `None`: no
    /// endpoint, the cluster is reachable in process only ([`LocalCluster::client`]).
    pub https_port: Option<u16>,
    /// Where to write a kubeconfig for the HTTPS endpoint (parent folders are created).
    /// Requires `https_port`.
    pub kubeconfig_path: Option<PathBuf>,
    /// Directory of charts served as the `upstart-charts` repository. A chart added or changed
    /// there is seen by the next release that resolves it (no index cache period), and an
    /// installed release whose chart version changed in place is upgraded to the new content
    /// within a second or so: the directory is watched and such releases get the new archive
    /// digest in their `upstartoperators.upstart.com/chart-digest` annotation.
    /// `None`, or a directory that does not exist (a warning then): no repository. A
    /// repository named `upstart-charts` in [`LocalClusterOptions::repositories`] wins: the
    /// directory is then not served.
    pub charts_dir: Option<PathBuf>,
    /// Upstream repositories behind the charts directory (`upstart dev --upstream NAME=URL`):
    /// the served repository becomes a development overlay (see `upstart_chart_repo::overlay`)
    /// and takes over each upstream's NAME as an alias besides `upstart-charts`. With
    /// upstreams, a missing charts directory is created.
    pub chart_overlay: OverlayOptions,
    /// The HelmRelease operator's repository configuration (the operators' chart's
    /// `repositories.yaml`): other repositories by alias, `allowUnlisted`, `localRoots`,
    /// limits. `upstart-charts` is added for [`LocalClusterOptions::charts_dir`] unless it is
    /// configured here. Its `indexTtl` is replaced by zero: every resolution reads the indexes
    /// again (conditionally, so an unchanged one costs a 304), so that charts edited under the
    /// charts directory are seen at once. Credentials Secrets are read from
    /// [`CREDENTIALS_NAMESPACE`] of the local cluster, created when some repository names one.
    pub repositories: RepositoryConfig,
    /// Cluster-scoped kinds a chart may create (the operator's `--allow-cluster-scoped`).
    pub cluster_scoped_allow_list: ClusterScopedAllowList,
    /// How long simulated workloads (Deployments, Jobs, …) take to become ready.
    pub workload_delay: Duration,
    /// Make every simulated workload fail instead.
    pub fail_workloads: bool,
    /// The operators to run in process.
    pub operators: OperatorSet,
    /// The `helm` binary of the HelmRelease operator. `None`: [`locate_helm`].
    pub helm_path: Option<PathBuf>,
    /// The environment operator's caps and quota defaults (`--max-environments` and the
    /// others); default: none.
    pub environment_limits: EnvironmentLimits,
}

/// A running local cluster. Stop it with [`LocalCluster::shutdown`]; dropping it leaves its
/// tasks to end with the Tokio runtime.
pub struct LocalCluster {
    control_plane: ControlPlane,
    client: kube::Client,
    endpoint: Option<Endpoint>,
    kubeconfig_path: Option<PathBuf>,
    charts: Option<RunningRepo>,
    /// Wakes the releases of charts changed in the charts directory (see [`chart_watch`]).
    chart_watch: Option<tokio::task::JoinHandle<()>>,
    chart_repositories: Vec<ChartRepository>,
    simulator: RunningSimulator,
    operators: operators::RunningOperators,
    reported_kinds: ReportedKinds,
    catalog_namespace: String,
    /// The instance record next to the kubeconfig, removed at shutdown.
    claim: Option<instance::Claim>,
    // Last: removed once everything that may write into it has stopped.
    work_dir: tempfile::TempDir,
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
    /// asked), the workload simulator, the Upstart CRDs and the catalog namespace (as the
    /// operators' chart installs them on a real cluster), the chart repository, the operators.
    pub async fn start(options: LocalClusterOptions) -> Result<LocalCluster, Error> {
        if let (None, Some(path)) = (options.https_port, &options.kubeconfig_path) {
            return Err(Error::KubeconfigWithoutHttps { path: path.clone() });
        }
        let work_dir = tempfile::Builder::new()
            .prefix("upstart-local-cluster-")
            .tempdir()
            .map_err(Error::WorkDir)?;
        // A configuration the operator would refuse fails here, before anything starts, rather
        // than as an operator failure once the cluster runs.
        check_repositories(&options.repositories, work_dir.path())?;
        check_overlay_names(&options.repositories, &options.chart_overlay)?;
        let catalog_namespace = upstart_operator_runtime::CommonArgs::default().catalog_namespace;
        // Claimed before anything binds or writes: a kubeconfig of a live instance is never
        // overwritten, whatever the port.
        let mut claim = match &options.kubeconfig_path {
            Some(path) => Some(claim_kubeconfig(path, options.https_port)?),
            None => None,
        };
        let control_plane = ControlPlane::start(upstart_control_plane::Options::default());
        let endpoint = match options.https_port {
            Some(port) => {
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                let endpoint = control_plane.serve_https(addr).await.map_err(|source| {
                    match (&source, &options.kubeconfig_path) {
                        (upstart_control_plane::Error::Io(io), Some(kubeconfig))
                            if io.kind() == std::io::ErrorKind::AddrInUse =>
                        {
                            port_in_use(kubeconfig, port)
                        }
                        _ => Error::ControlPlane {
                            addr,
                            source: Box::new(source),
                        },
                    }
                })?;
                tracing::info!(url = %endpoint.url, "control plane serving");
                Some(endpoint)
            }
            None => None,
        };
        if let (Some(endpoint), Some(path)) = (&endpoint, &options.kubeconfig_path) {
            if let Some(claim) = &mut claim {
                claim.set_port(endpoint.addr.port())?;
            }
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

        install_upstart_basics(&client, &catalog_namespace, &options.repositories).await?;

        let charts = match &options.charts_dir {
            Some(_) if options.repositories.repositories.contains_key(CHARTS_ALIAS) => {
                tracing::info!(
                    alias = CHARTS_ALIAS,
                    "the charts directory is not served: the repository configuration names \
                     {CHARTS_ALIAS} itself"
                );
                None
            }
            Some(dir) => serve_charts(dir, &options.chart_overlay).await?,
            None => None,
        };
        let chart_watch = charts
            .as_ref()
            .map(|repo| chart_watch::spawn(client.clone(), repo.handle()));
        let repositories = repository_config(
            options.repositories.clone(),
            charts.as_ref(),
            &options.chart_overlay.upstreams,
        );
        let chart_repositories: Vec<ChartRepository> = repositories
            .repositories
            .iter()
            .map(|(alias, repo)| ChartRepository {
                alias: alias.clone(),
                url: repo.url.clone(),
            })
            .collect();

        let helm_path = options.helm_path.clone().or_else(locate_helm);
        let operators = options.operators.start(&OperatorContext {
            client: client.clone(),
            chart_repositories: chart_repositories.clone(),
            repositories,
            cluster_scoped_allow_list: options.cluster_scoped_allow_list.clone(),
            helm_path,
            work_dir: work_dir.path().to_path_buf(),
            catalog_namespace: catalog_namespace.clone(),
            environment_limits: options.environment_limits.clone(),
        });
        Ok(LocalCluster {
            control_plane,
            client,
            endpoint,
            kubeconfig_path: options.kubeconfig_path,
            charts,
            chart_watch,
            chart_repositories,
            simulator,
            operators,
            reported_kinds: options.operators.reported_kinds(),
            catalog_namespace,
            claim,
            work_dir,
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

    /// The chart repositories the operators were given, by alias (the local `upstart-charts`
    /// among them when served).
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

    /// The namespace of the catalog's UpstartService templates (`upstart-catalog`), created at
    /// start.
    pub fn catalog_namespace(&self) -> &str {
        &self.catalog_namespace
    }

    /// Resolves with the first in-process operator that stopped with an error; never resolves
    /// while they all run.
    pub fn operator_failure(&self) -> impl std::future::Future<Output = OperatorFailure> + Send {
        self.operators.failure()
    }

    /// [`wait_ready`] with this cluster's [`LocalCluster::reported_kinds`], ending early with
    /// [`Error::OperatorFailed`] when an operator stops with an error meanwhile (its kinds
    /// would never become Ready).
    pub async fn wait_ready(&self, applied: &[Applied], timeout: Duration) -> Result<(), Error> {
        let reported = self.reported_kinds();
        tokio::select! {
            result = wait_ready(applied, &reported, timeout) => result,
            failure = self.operator_failure() => Err(Error::OperatorFailed {
                operator: failure.operator,
                message: failure.message,
            }),
        }
    }

    /// Stops everything, in order: the operators, the simulator, the chart repository, the
    /// control plane (open watches end and the HTTPS listener stops), and removes the scratch
    /// directory.
    pub async fn shutdown(self) {
        if let Some(watch) = &self.chart_watch {
            watch.abort();
        }
        self.operators.shutdown().await;
        self.simulator.shutdown().await;
        if let Some(repo) = self.charts {
            repo.shutdown().await;
        }
        self.control_plane.shutdown();
        drop(self.claim);
        if let Err(error) = self.work_dir.close() {
            tracing::warn!(%error, "removing the cluster's scratch directory");
        }
    }
}

/// Installs the Upstart CRDs (waiting until they are served), the catalog namespace, and the
/// namespace of the repositories' credentials Secrets when some repository names one.
async fn install_upstart_basics(
    client: &kube::Client,
    catalog_namespace: &str,
    repositories: &RepositoryConfig,
) -> Result<(), Error> {
    let mut manifests = Vec::new();
    for crd in upstart_api::crd::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let mut object = serde_json::to_value(&crd).map_err(|e| Error::InvalidManifest {
            source_name: format!("the built-in CRD {name}"),
            message: e.to_string(),
        })?;
        object["apiVersion"] = "apiextensions.k8s.io/v1".into();
        object["kind"] = "CustomResourceDefinition".into();
        manifests.push(Manifest {
            source: format!("built-in CRD {name}"),
            object,
        });
    }
    manifests.push(Manifest {
        source: "the catalog namespace".to_owned(),
        object: serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": catalog_namespace},
        }),
    });
    let secrets: Vec<String> = repositories
        .repositories
        .iter()
        .filter_map(|(alias, repo)| {
            let secret = repo.credentials_secret.as_ref()?;
            Some(format!("{secret} (repository {alias})"))
        })
        .collect();
    if !secrets.is_empty() {
        // Where the operators' chart keeps them on a real cluster: a platform team's
        // configuration works as is once the Secrets are created here.
        tracing::info!(
            namespace = CREDENTIALS_NAMESPACE,
            secrets = %secrets.join(", "),
            "repository credentials are read from these Secrets once they exist (kubectl -n \
             {CREDENTIALS_NAMESPACE} create secret generic NAME --from-literal=username=... \
             --from-literal=password=...)"
        );
        manifests.push(Manifest {
            source: "the repository credentials namespace".to_owned(),
            object: serde_json::json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": CREDENTIALS_NAMESPACE},
            }),
        });
    }
    apply_manifests(client, manifests, FIELD_MANAGER, "default").await?;
    Ok(())
}

/// Checks `repositories` as the HelmRelease operator will at its start (aliases, URLs, local
/// roots), with a throw-away cache under `work_dir`.
fn check_repositories(repositories: &RepositoryConfig, work_dir: &Path) -> Result<(), Error> {
    ChartSource::new(
        repositories.clone(),
        Default::default(),
        work_dir.join("repository-check"),
    )
    .map(drop)
    .map_err(|e| Error::RepositoryConfig {
        message: e.to_string(),
    })
}

/// The HelmRelease operator's repository configuration: `configured`, plus `upstart-charts`
/// for the served charts directory, with no index cache period (see
/// [`LocalClusterOptions::repositories`]).
fn repository_config(
    mut configured: RepositoryConfig,
    charts: Option<&RunningRepo>,
    upstreams: &[Upstream],
) -> RepositoryConfig {
    if let Some(repo) = charts {
        let aliases =
            std::iter::once(CHARTS_ALIAS).chain(upstreams.iter().map(|u| u.name.as_str()));
        for alias in aliases {
            configured.repositories.insert(
                alias.to_owned(),
                Repository {
                    url: repo.url.clone(),
                    kind: None,
                    plain_http: false,
                    credentials_secret: None,
                    ca_bundle: None,
                },
            );
        }
    }
    configured.index_ttl = Duration::ZERO;
    configured
}

/// Claims `kubeconfig` for this process; refused while a live instance holds it, with the
/// port's message when that instance also holds the port asked for.
fn claim_kubeconfig(kubeconfig: &Path, port: Option<u16>) -> Result<instance::Claim, Error> {
    instance::Claim::take(kubeconfig).map_err(|error| match error {
        Error::KubeconfigInUse { holder, .. }
            if port.is_some_and(|p| p != 0 && holder.port == Some(p)) =>
        {
            Error::PortInUseByInstance {
                port: port.unwrap_or_default(),
                holder,
            }
        }
        other => other,
    })
}

/// Why `port` cannot be bound: the live instance recorded next to `kubeconfig` holding it, if
/// any.
fn port_in_use(kubeconfig: &Path, port: u16) -> Error {
    match instance::holder_of_port(kubeconfig, port) {
        Some(holder) => Error::PortInUseByInstance {
            port,
            holder: Box::new(holder),
        },
        None => {
            let absolute = std::path::absolute(kubeconfig).unwrap_or_else(|_| kubeconfig.into());
            Error::PortInUse {
                port,
                dir: absolute.parent().map(Path::to_path_buf).unwrap_or_default(),
            }
        }
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

/// An upstream of the overlay takes over its name as an alias: the repository configuration
/// may not name it too.
fn check_overlay_names(
    repositories: &RepositoryConfig,
    overlay: &OverlayOptions,
) -> Result<(), Error> {
    match overlay
        .upstreams
        .iter()
        .find(|u| u.name != CHARTS_ALIAS && repositories.repositories.contains_key(&u.name))
    {
        Some(upstream) => Err(Error::RepositoryConfig {
            message: format!(
                "the upstream {} of the charts directory takes over the alias {}, which the \
                 repository configuration names too: drop one of them",
                upstream.name, upstream.name
            ),
        }),
        None => Ok(()),
    }
}

async fn serve_charts(dir: &Path, overlay: &OverlayOptions) -> Result<Option<RunningRepo>, Error> {
    let fail = |source| Error::ChartRepo {
        path: dir.to_path_buf(),
        source,
    };
    if !overlay.upstreams.is_empty() && !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|source| {
            fail(upstart_chart_repo::Error::Write {
                path: dir.to_path_buf(),
                source,
            })
        })?;
    }
    if !dir.is_dir() {
        tracing::warn!(
            dir = %dir.display(),
            "no chart directory: the {CHARTS_ALIAS} repository is not served"
        );
        return Ok(None);
    }
    let repo = ChartRepo::from_dir(dir).map_err(fail)?.auto_reload(true);
    let count = repo.charts().len();
    let running = repo
        .serve_overlay(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), overlay.clone())
        .await
        .map_err(fail)?;
    let upstreams: Vec<String> = overlay
        .upstreams
        .iter()
        .map(|u| format!("{}={}", u.name, u.url))
        .collect();
    tracing::info!(alias = CHARTS_ALIAS, url = %running.url, charts = count, upstreams = %upstreams.join(","), "chart repository serving");
    Ok(Some(running))
}
