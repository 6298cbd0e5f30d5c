//! The operators that run in process inside the local cluster: the one extension point where
//! the Upstart operators plug into `upstart dev` and the e2e tests.
//!
//! # Adding an operator
//!
//! This version contains no operator yet, so [`OperatorSet::all`] is empty. When an operator
//! lands (HelmRelease, UpstartService, UpstartEnvironment), it gets one entry in
//! [`OperatorSet::all`]:
//!
//! ```text
//! set.push(Operator::new(
//!     "helmrelease",
//!     &["HelmRelease"],
//!     |ctx: OperatorContext, stop: StopSignal| async move {
//!         // Adapt the context to the operator's own configuration (its chart repositories,
//!         // a shutdown trigger fired by `stop.requested()`), then run its work until stopped.
//!         helmrelease_operator::run_in_process(ctx.client, repositories(&ctx), stop).await
//!     },
//! ));
//! ```
//!
//! This crate then depends on the operator crate, so an operator crate must not depend on
//! this one (Cargo refuses cycles): it takes its own configuration, and the closure above
//! translates [`OperatorContext`] into it. Both `upstart dev` and the e2e harness get the
//! operator through [`OperatorSet::all`], so there is one list.
//!
//! The `kinds` an operator is registered with are the kinds of the Upstart group
//! (`upstartoperators.upstart.com`) whose `Ready` condition it writes: waiting for readiness
//! ([`crate::wait_ready`]) waits for the `Ready` condition of exactly those kinds, and does not
//! wait for the other Upstart kinds, since nothing would ever report on them.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The alias under which the local chart repository is known to the operators.
pub const CHARTS_ALIAS: &str = "upstart-charts";

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
}

impl fmt::Debug for OperatorContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperatorContext")
            .field("chart_repositories", &self.chart_repositories)
            .finish_non_exhaustive()
    }
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

/// Which operators the local cluster runs.
#[derive(Debug, Clone, Default)]
pub struct OperatorSet {
    operators: Vec<Operator>,
}

impl OperatorSet {
    /// Every operator built into this version: the one list `upstart dev` and the e2e tests
    /// share. Empty until the first operator lands (see the module documentation).
    pub fn all() -> Self {
        OperatorSet::none()
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
        let mut tasks = Vec::with_capacity(self.operators.len());
        for operator in &self.operators {
            let name = operator.name;
            let work = (operator.run)(ctx.clone(), StopSignal(receiver.clone()));
            tracing::info!(operator = name, kinds = ?operator.kinds, "operator starting");
            tasks.push((
                name,
                tokio::spawn(async move {
                    match work.await {
                        Ok(()) => tracing::info!(operator = name, "operator stopped"),
                        Err(error) => tracing::error!(operator = name, %error, "operator failed"),
                    }
                }),
            ));
        }
        if tasks.is_empty() {
            tracing::warn!(
                "no operators are running: applied custom resources are stored and served, but \
                 nothing reconciles them"
            );
        }
        RunningOperators { stop, tasks }
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

/// The operators that were started.
pub(crate) struct RunningOperators {
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl RunningOperators {
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
