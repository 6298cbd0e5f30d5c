//! The runtime the three Upstart operators share (SPEC §6): common flags, logging, metrics,
//! the `/metrics` `/healthz` `/readyz` server, leader election on a Lease, graceful shutdown,
//! Kubernetes Events, status writes ([`apply_status`]), failure backoff, and the plumbing every
//! operator writes objects with: [`objects`] (apply, delete-if-present, up-to-date) and the
//! [`finalizer`] deletion shape.
//!
//! Each operator is a thin binary: it flattens [`CommonArgs`] into its CLI and hands its work
//! to [`run_operator`], which sets things up in order (logging, client, health server, leader
//! election, work, Lease release, server stop). Inside `upstart dev` and in tests the same
//! work runs through [`run`] with [`RunOptions::in_process`] (no server, no election) and an
//! in-process client.
//!
//! # An operator
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use clap::Parser;
//! use futures::StreamExt;
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::runtime::reflector::ObjectRef;
//! use kube::Resource;
//! use upstart_operator_runtime::{
//!     run_operator, Action, CommonArgs, Controller, ControllerMetrics, EventRecorder, FailureBackoff, MetricLabel,
//!     OperatorContext, Shutdown,
//! };
//!
//! const CONTROLLER: &str = "example";
//!
//! #[derive(Debug, thiserror::Error)]
//! enum Error {
//!     #[error("applying failed")]
//!     Apply,
//! }
//!
//! // One bounded label per variant: the `reason` of upstart_reconcile_errors_total.
//! impl MetricLabel for Error {
//!     fn metric_label(&self) -> &'static str {
//!         match self {
//!             Error::Apply => "apply",
//!         }
//!     }
//! }
//!
//! struct Context {
//!     metrics: ControllerMetrics,
//!     recorder: EventRecorder,
//!     backoff: FailureBackoff<ObjectRef<ConfigMap>>,
//! }
//!
//! async fn reconcile(obj: Arc<ConfigMap>, ctx: Arc<Context>) -> Result<Action, Error> {
//!     let _timer = ctx.metrics.count_and_measure();
//!     // observe -> decide -> act -> write status …
//!     // Names and reasons only in events, never a secret value.
//!     ctx.recorder.normal(&obj.object_ref(&()), "Reconciled", "Reconcile", None).await;
//!     ctx.backoff.on_success(&ObjectRef::from_obj(&*obj));
//!     Ok(Action::requeue(Duration::from_secs(300)))
//! }
//!
//! fn error_policy(obj: Arc<ConfigMap>, error: &Error, ctx: Arc<Context>) -> Action {
//!     ctx.metrics.set_failure(error);
//!     Action::requeue(ctx.backoff.on_failure(ObjectRef::from_obj(&*obj)))
//! }
//!
//! /// The operator's work: the same function runs in the binary and inside `upstart dev`.
//! async fn operate(ctx: OperatorContext, shutdown: Shutdown) -> Result<(), Error> {
//!     // Register before starting, so /readyz never reports ready before the caches synced.
//!     let ready = ctx.readiness.register(CONTROLLER);
//!     // The primary watch (--namespace, --label-selector shard), flipping `ready` once listed.
//!     let (store, trigger) = ready.watch(ctx.api::<ConfigMap>(), ctx.watcher_config());
//!     let controller = Controller::for_stream(trigger, store)
//!         .with_config(ctx.controller_config())
//!         // Stop taking work on SIGTERM or lost leadership; in-flight reconciles finish.
//!         .graceful_shutdown_on(shutdown.wait());
//!     let context = Arc::new(Context {
//!         metrics: ctx.metrics.controller(CONTROLLER),
//!         recorder: ctx.recorder(CONTROLLER),
//!         backoff: FailureBackoff::default(),
//!     });
//!     controller
//!         .run(reconcile, error_policy, context)
//!         .for_each(|_| async {})
//!         .await;
//!     Ok(()) // run_operator releases the Lease after this returns
//! }
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     common: CommonArgs,
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), upstart_operator_runtime::Error> {
//!     let cli = Cli::parse();
//!     run_operator(cli.common, "example-operator", operate).await
//! }
//! ```
//!
//! In process (`upstart dev`, tests), with a client of the local control plane:
//!
//! ```no_run
//! # use upstart_operator_runtime::{run, CommonArgs, OperatorContext, RunOptions, Shutdown};
//! # async fn operate(_: OperatorContext, _: Shutdown) -> Result<(), std::io::Error> { Ok(()) }
//! # async fn demo(client: kube::Client) -> Result<(), upstart_operator_runtime::Error> {
//! let ctx = OperatorContext::new("example-operator", client, CommonArgs::default());
//! let shutdown = Shutdown::new(); // trigger() it to stop the operator gracefully
//! run(ctx, RunOptions::in_process(), shutdown, operate).await
//! # }
//! ```
//!
//! # Leader election
//!
//! With `--leader-elect`, [`run`] holds a `coordination.k8s.io/v1` Lease through
//! [`LeaderElector::run_while_leader`] (see the [`leader`] module for the rules). If the
//! leadership is lost, the work's [`Shutdown`] fires and [`run`] returns
//! [`Error::LeadershipLost`]: the binary should exit non-zero and be restarted by Kubernetes,
//! so that it rejoins as a fresh standby with empty caches.

mod args;
mod backoff;
mod cache;
mod controller;
mod error;
mod events;
pub mod finalizer;
mod gate;
mod health;
pub mod leader;
mod logging;
mod metrics;
pub mod objects;
pub mod outputs;
mod run;
mod shutdown;
mod status;

pub use args::CommonArgs;
pub use backoff::{BackoffPolicy, FailureBackoff, apply_jitter, backoff_delay};
pub use cache::{Cache, Cached, summarise_managed_fields};
pub use controller::{Action, Controller, ControllerConfig, ControllerError, RunResult};
pub use error::Error;
pub use events::EventRecorder;
pub use finalizer::{Cleanup, FinalizerError, finalizer};
pub use gate::{GatePermit, Priority, WorkGate};
pub use health::{HealthServer, Readiness, ReadinessStatus, ReadyFlag, router};
pub use leader::{LeaderElector, LeadershipToken, LeaseConfig, default_identity};
pub use logging::{LogFormat, env_filter, init_logging, subscriber};
pub use metrics::{
    ControllerMetrics, Metrics, PhaseGauge, RECONCILE_DURATION_BUCKETS, ReconcileMeasurer,
};
pub use run::{OperatorContext, RunOptions, client_from_args, run, run_operator};
pub use shutdown::{Shutdown, shutdown_signal};
pub use status::{PhaseSummary, StatusWrite, apply_status};

/// The shared failure vocabulary (every operator's error implements both).
pub use upstart_failure::{Class, Classify, MetricLabel};

/// Event severities, re-exported for [`EventRecorder::publish`].
pub use kube::runtime::events::EventType;
