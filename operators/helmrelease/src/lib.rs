//! The HelmRelease operator (SPEC §2): installs a Helm chart in a namespace once its
//! dependencies are Ready, with their outputs substituted into its values.
//!
//! The core is pure: [`decide()`] turns what a reconcile observed into the one next step, and
//! [`status`] turns that decision into the status to write; [`wakeups`] maps a change of a
//! release, service, Secret, ConfigMap or applied workload to the releases it concerns. The
//! kube-facing code ([`controller`]) stays thin:
//!
//! 1. read the newest object (never a possibly stale cache entry);
//! 2. observe: dependencies (Ready for their generation, their outputs), `valuesFrom` +
//!    `values` + expressions, the live inventory and its health, its own outputs;
//! 3. decide; act on `Apply`/`Reapply`: fetch the chart, render, pre hooks, server-side apply
//!    in plan order, post hooks, prune. A pass never waits: a hook still running or a CRD not
//!    yet Established ends it with status saying so, and the watch on that object starts the
//!    next pass. Hook objects carry the digest of their run, so a pass after a restart carries
//!    on and never runs a completed hook twice;
//! 4. write status with server-side apply on `/status`, only when it changed, with an Event on
//!    every phase change.
//!
//! Deletion runs through the finalizer: a release whose dependents remain (releases depending
//! on it or on the UpstartService owning it) waits for them (up to the teardown timeout), then
//! pre-delete hooks, the inventory in reverse order, post-delete hooks, in passes like an apply.
//!
//! `service.*` in expressions is the UpstartService owning the release; `environment.*` the
//! UpstartEnvironment named by the namespace's environment label ([`roots`]).

pub mod constants;
pub mod controller;
pub mod decide;
mod error;
pub mod metrics;
pub mod roots;
pub mod schedule;
pub mod status;
pub mod wakeups;

pub use decide::{
    Apply, Decision, DependencyObservation, DependencyState, Observation, Reapply, SpecProblem,
    ValuesState, alias_problems, decide,
};
pub use error::Error;
