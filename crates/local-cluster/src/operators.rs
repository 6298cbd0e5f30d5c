//! The operators that run in process inside the local cluster: the one extension point where
//! the Upstart operators plug into `upstart dev` and the e2e tests.
//!
//! # The built-in operators
//!
//! [`OperatorSet::all`] lists every operator of this version, each with the Upstart kind whose
//! `Ready` condition it writes: the HelmRelease operator (`HelmRelease`), the UpstartService
//! operator (`UpstartService`) and the UpstartEnvironment operator (`UpstartEnvironment`). Each
//! entry adapts the cluster's [`OperatorContext`] (client,
//! chart repositories and the cluster-scoped allow-list, helm, a scratch directory, the catalog
//! namespace) into the operator
//! crate's own `controller::Config`, and runs `controller::run` through the shared runtime
//! (`upstart_operator_runtime::run` with `RunOptions::in_process()`: no health server, no
//! leader election), with a shutdown fired by the cluster's [`StopSignal`]:
//!
//! ```text
//! Operator::new("helmrelease", &["HelmRelease"], |ctx: OperatorContext, stop: StopSignal| async move {
//!     let config = controller::Config { helm_path: ctx.helm()?, ..controller::Config::default() };
//!     run_in_process("upstart-helmrelease-operator", ctx, stop, |op, shutdown| {
//!         controller::run(op, config, shutdown)
//!     })
//!     .await
//! })
//! ```
//!
//! This crate depends on the operator crates, so an operator crate must not depend on this one
//! (Cargo refuses cycles): it takes its own configuration, and the closure translates
//! [`OperatorContext`] into it. Both `upstart dev` and the e2e harness get the operators through
//! [`OperatorSet::all`], so there is one list.
//!
//! The `kinds` an operator is registered with are the kinds of the Upstart group
//! (`upstartoperators.upstart.com`) whose `Ready` condition it writes: waiting for readiness
//! ([`crate::wait_ready`]) waits for the `Ready` condition of exactly those kinds, and does not
//! wait for the other Upstart kinds, since nothing would ever report on them.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use upstart_chart_source::RepositoryConfig;
use upstart_operator_runtime::{CommonArgs, RunOptions, Shutdown};
use upstart_release_engine::manifests::ClusterScopedAllowList;

use crate::error::Error;

/// The alias under which the local chart repository is known to the operators.
pub const CHARTS_ALIAS: &str = "upstart-charts";

/// The namespace the HelmRelease operator reads repository credentials Secrets from, as the
/// operators' chart installs it.
pub const CREDENTIALS_NAMESPACE: &str = "upstart-system";

/// How long an operator may take to stop after it was asked to, before it is aborted.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A Helm chart repository the operators may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartRepository {
    /// The alias used in chart references (`ALIAS/NAME`).
    pub alias: String,
    /// The repository URL (`index.yaml` and the archives are under it).
    pub url: String,
}

/// What each operator is started with.
#[derive(Clone)]
pub struct OperatorContext {
    /// A client of the cluster (the in-process control plane).
    pub client: kube::Client,
    /// The chart repositories, the local `upstart-charts` among them when it is served.
    pub chart_repositories: Vec<ChartRepository>,
    /// The HelmRelease operator's repository configuration: these repositories with their
    /// settings, and what [`crate::LocalClusterOptions::repositories`] allows besides.
    pub repositories: RepositoryConfig,
    /// Cluster-scoped kinds a chart may create.
    pub cluster_scoped_allow_list: ClusterScopedAllowList,
    /// The `helm` binary ([`crate::LocalClusterOptions::helm_path`], else
    /// [`crate::locate_helm`]); `None` when none was found.
    pub helm_path: Option<PathBuf>,
    /// A scratch directory of the cluster's own (chart caches), removed when the cluster stops.
    pub work_dir: PathBuf,
    /// The namespace holding the catalog's UpstartService templates (created at start).
    pub catalog_namespace: String,
    /// The environment operator's caps and quota defaults.
    pub environment_limits: upstart_environment_operator::admission::Limits,
}

impl fmt::Debug for OperatorContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperatorContext")
            .field("chart_repositories", &self.chart_repositories)
            .field("repositories", &self.repositories)
            .field("cluster_scoped_allow_list", &self.cluster_scoped_allow_list)
            .field("helm_path", &self.helm_path)
            .field("work_dir", &self.work_dir)
            .field("catalog_namespace", &self.catalog_namespace)
            .finish_non_exhaustive()
    }
}

impl OperatorContext {
    /// The `helm` binary, or [`Error::HelmNotFound`].
    pub fn helm(&self) -> Result<PathBuf, Error> {
        self.helm_path.clone().ok_or(Error::HelmNotFound)
    }

    /// The HelmRelease operator's repository configuration
    /// ([`OperatorContext::repositories`]): the index is read again at every resolution.
    pub fn repository_config(&self) -> RepositoryConfig {
        self.repositories.clone()
    }
}

/// Runs an operator's work (`controller::run`) the way its binary does, minus what only a pod
/// needs: through `upstart_operator_runtime::run` with `RunOptions::in_process()` (no health
/// server, no leader election), a fresh runtime context named `name` on the cluster's client,
/// and a shutdown fired by `stop`.
pub async fn run_in_process<F, Fut, E>(
    name: &'static str,
    ctx: OperatorContext,
    stop: StopSignal,
    work: F,
) -> Result<(), Error>
where
    F: FnOnce(upstart_operator_runtime::OperatorContext, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let args = CommonArgs {
        catalog_namespace: ctx.catalog_namespace.clone(),
        ..CommonArgs::default()
    };
    let op = upstart_operator_runtime::OperatorContext::new(name, ctx.client, args);
    let shutdown = Shutdown::new();
    let trigger = shutdown.clone();
    let relay = tokio::spawn(async move {
        stop.requested().await;
        trigger.trigger();
    });
    // In-flight work finishes after the stop (each operator's controller ends at once when
    // stopped before its first sync); the cluster aborts whatever outlives its stop grace.
    let result = upstart_operator_runtime::run(op, RunOptions::in_process(), shutdown, work).await;
    relay.abort();
    result.map_err(|source| Error::Operator {
        name,
        source: Box::new(source),
    })
}

/// The HelmRelease operator (`upstart-helmrelease-operator`), reporting on `HelmRelease`: the
/// cluster's repository configuration and cluster-scoped allow-list, helm, and a chart cache
/// in the cluster's scratch directory.
fn helmrelease() -> Operator {
    use upstart_helmrelease_operator::controller;
    Operator::new(
        "helmrelease",
        &["HelmRelease"],
        |ctx: OperatorContext, stop: StopSignal| async move {
            let config = controller::Config {
                helm_path: ctx.helm()?,
                repositories: ctx.repository_config(),
                // The repositories' credentials Secrets, where the operators' chart keeps them;
                // read when a release needs them, so they may be created while `upstart dev`
                // runs.
                credentials_namespace: Some(CREDENTIALS_NAMESPACE.to_owned()),
                cache_dir: ctx.work_dir.join("helmrelease-charts"),
                cluster_scoped_allow_list: ctx.cluster_scoped_allow_list.clone(),
                ..controller::Config::default()
            };
            run_in_process("upstart-helmrelease-operator", ctx, stop, |op, shutdown| {
                controller::run(op, config, shutdown)
            })
            .await
        },
    )
}

/// Tells a running operator that the cluster is shutting down. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StopSignal(watch::Receiver<bool>);

impl StopSignal {
    /// Resolves once a stop was requested (at once if it already was).
    pub async fn requested(mut self) {
        // An error means the sender is gone, which also means "stop".
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Whether a stop was requested.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }
}

type RunFn = Arc<
    dyn Fn(OperatorContext, StopSignal) -> BoxFuture<'static, Result<(), String>> + Send + Sync,
>;

/// One operator that can run in process: its name, the Upstart kinds whose `Ready` condition it
/// writes, and its work.
#[derive(Clone)]
pub struct Operator {
    name: &'static str,
    kinds: Vec<String>,
    run: RunFn,
}

impl fmt::Debug for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Operator")
            .field("name", &self.name)
            .field("kinds", &self.kinds)
            .finish_non_exhaustive()
    }
}

impl Operator {
    /// An operator called `name` that reports `Ready` on the Upstart `kinds` (`"HelmRelease"`,
    /// …) and whose work is `run`. `run` should return soon after its [`StopSignal`] fires; it
    /// is aborted otherwise. An error it returns is logged.
    pub fn new<F, Fut, E>(name: &'static str, kinds: &[&str], run: F) -> Self
    where
        F: Fn(OperatorContext, StopSignal) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display + 'static,
    {
        let run: RunFn = Arc::new(move |ctx, stop| {
            let work = run(ctx, stop);
            Box::pin(async move { work.await.map_err(|e| e.to_string()) })
        });
        Operator {
            name,
            kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
            run,
        }
    }

    /// The operator's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The Upstart kinds whose `Ready` condition it writes.
    pub fn kinds(&self) -> &[String] {
        &self.kinds
    }
}

/// The UpstartService operator (`upstart-service-operator`), reporting on `UpstartService`:
/// creates each service's HelmReleases; services of the catalog namespace are templates.
fn upstart_service() -> Operator {
    use upstart_service_operator::controller;
    Operator::new(
        "upstartservice",
        &["UpstartService"],
        |ctx: OperatorContext, stop: StopSignal| async move {
            #[allow(
                clippy::needless_update,
                reason = "settings the operator adds later keep their defaults"
            )]
            let config = controller::Config {
                catalog_namespace: ctx.catalog_namespace.clone(),
                ..controller::Config::default()
            };
            run_in_process("upstart-service-operator", ctx, stop, |op, shutdown| {
                controller::run(op, config, shutdown)
            })
            .await
        },
    )
}

/// The UpstartEnvironment operator (`upstart-environment-operator`), reporting on
/// `UpstartEnvironment`: a namespace per environment with its services from the catalog.
fn upstart_environment() -> Operator {
    use upstart_environment_operator::controller;
    Operator::new(
        "upstartenvironment",
        &["UpstartEnvironment"],
        |ctx: OperatorContext, stop: StopSignal| async move {
            let config = controller::Config {
                catalog_namespace: ctx.catalog_namespace.clone(),
                limits: ctx.environment_limits.clone(),
                ..controller::Config::default()
            };
            run_in_process("upstart-environment-operator", ctx, stop, |op, shutdown| {
                controller::run(op, config, shutdown)
            })
            .await
        },
    )
}

/// Which operators the local cluster runs.
#[derive(Debug, Clone, Default)]
pub struct OperatorSet {
    operators: Vec<Operator>,
}

impl OperatorSet {
    /// Every operator built into this version: the one list `upstart dev` and the e2e tests
    /// share (see the module documentation).
    pub fn all() -> Self {
        OperatorSet::none()
            .with(helmrelease())
            .with(upstart_service())
            .with(upstart_environment())
    }

    /// No operator: custom resources are stored and served, and nothing reconciles them.
    pub fn none() -> Self {
        OperatorSet::default()
    }

    /// This set plus `operator` (tests use it to run an operator of their own).
    #[must_use]
    pub fn with(mut self, operator: Operator) -> Self {
        self.operators.push(operator);
        self
    }

    /// The operators, in start order.
    pub fn operators(&self) -> &[Operator] {
        &self.operators
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.operators.is_empty()
    }

    /// The Upstart kinds some operator of this set reports `Ready` on.
    pub fn reported_kinds(&self) -> ReportedKinds {
        ReportedKinds::Kinds(
            self.operators
                .iter()
                .flat_map(|o| o.kinds.iter().cloned())
                .collect(),
        )
    }

    /// Starts every operator as a task of the current Tokio runtime.
    pub(crate) fn start(&self, ctx: &OperatorContext) -> RunningOperators {
        let (stop, receiver) = watch::channel(false);
        let (failed, failures) = watch::channel(None);
        let failed = Arc::new(failed);
        let mut tasks = Vec::with_capacity(self.operators.len());
        for operator in &self.operators {
            let name = operator.name;
            let work = (operator.run)(ctx.clone(), StopSignal(receiver.clone()));
            tracing::info!(operator = name, kinds = ?operator.kinds, "operator starting");
            let failed = failed.clone();
            let stop_requested = StopSignal(receiver.clone());
            tasks.push((
                name,
                tokio::spawn(async move {
                    let message = match work.await {
                        Ok(()) if stop_requested.is_requested() => {
                            tracing::info!(operator = name, "operator stopped");
                            return;
                        }
                        // Nothing reconciles its kinds any more: as bad as an error.
                        Ok(()) => "stopped before it was asked to".to_owned(),
                        Err(message) => message,
                    };
                    tracing::error!(operator = name, error = %message, "operator failed");
                    // The first failure is the one worth reporting.
                    failed.send_if_modified(|first| {
                        first
                            .is_none()
                            .then(|| {
                                *first = Some(OperatorFailure {
                                    operator: name,
                                    message,
                                });
                            })
                            .is_some()
                    });
                }),
            ));
        }
        if tasks.is_empty() {
            tracing::warn!(
                "no operators are running: applied custom resources are stored and served, but \
                 nothing reconciles them"
            );
        }
        RunningOperators {
            stop,
            tasks,
            failures,
        }
    }
}

/// The Upstart kinds whose `Ready` condition is written by someone: readiness waits for those
/// and not for the others (see [`crate::wait_ready`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportedKinds {
    /// Every Upstart kind: the operators run elsewhere (a real cluster where they are
    /// installed).
    All,
    /// Only these kinds (those of the in-process operators).
    Kinds(BTreeSet<String>),
}

impl ReportedKinds {
    /// No Upstart kind is reported on.
    pub fn none() -> Self {
        ReportedKinds::Kinds(BTreeSet::new())
    }

    /// Whether an operator reports `Ready` on the Upstart kind `kind`.
    pub fn covers(&self, kind: &str) -> bool {
        match self {
            ReportedKinds::All => true,
            ReportedKinds::Kinds(kinds) => kinds.contains(kind),
        }
    }
}

/// An in-process operator that ended with an error (it does not come back: the cluster keeps
/// running without it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorFailure {
    /// The operator's name.
    pub operator: &'static str,
    /// Its error.
    pub message: String,
}

/// The operators that were started.
pub(crate) struct RunningOperators {
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    failures: watch::Receiver<Option<OperatorFailure>>,
}

impl RunningOperators {
    /// Resolves with the first operator failure (at once if one already happened); never
    /// resolves while every operator runs.
    pub(crate) fn failure(&self) -> impl Future<Output = OperatorFailure> + Send + 'static {
        let mut failures = self.failures.clone();
        async move {
            // An error means every operator task ended without failing: nothing to report.
            let first = failures
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|failure| failure.clone());
            match first {
                Some(failure) => failure,
                None => std::future::pending().await,
            }
        }
    }

    /// Asks every operator to stop, waits up to [`STOP_GRACE`] for each, and aborts the rest.
    pub(crate) async fn shutdown(self) {
        self.stop.send_replace(true);
        for (name, mut task) in self.tasks {
            if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
                tracing::warn!(operator = name, grace = ?STOP_GRACE, "operator did not stop in time: aborted");
                task.abort();
                let _ = task.await;
            }
        }
    }
}
