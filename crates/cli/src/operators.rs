//! The one place where `upstart dev` starts the Upstart operators.
//!
//! This build contains no operator yet. Each operator, when it lands, adds one line to
//! [`start`] that spawns it with the [`OperatorContext`] (a client of the local control plane
//! and the chart repositories it may use) and pushes its handle.

use tokio::task::JoinHandle;

/// The alias under which the local chart repository is known to the operators.
pub const CHARTS_ALIAS: &str = "upstart-charts";

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
#[expect(dead_code, reason = "read by the operators once they plug in")]
pub struct OperatorContext {
    /// A client of the local control plane.
    pub client: kube::Client,
    /// The chart repositories, the local `upstart-charts` among them when it is served.
    pub chart_repositories: Vec<ChartRepository>,
}

/// The operators that were started.
pub struct RunningOperators {
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

/// Starts every operator built into this binary.
pub fn start(ctx: &OperatorContext) -> RunningOperators {
    let tasks: Vec<(&'static str, JoinHandle<()>)> = Vec::new();
    // Operators plug in here, one line each, e.g.
    // tasks.push(("helmrelease", tokio::spawn(helmrelease_operator::run(ctx.clone()))));
    let _ = ctx;
    if tasks.is_empty() {
        tracing::warn!(
            "no operators are built into this version of upstart yet: applied custom resources \
             are stored and served, but nothing reconciles them"
        );
    }
    RunningOperators { tasks }
}

impl RunningOperators {
    /// Stops every operator.
    pub async fn shutdown(self) {
        for (name, task) in self.tasks {
            task.abort();
            let _ = task.await;
            tracing::debug!(operator = name, "stopped");
        }
    }
}
