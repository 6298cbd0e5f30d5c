//! The HelmRelease operator (SPEC §2): installs a Helm chart in a namespace once its
//! dependencies are Ready, with their outputs substituted into its values.
//!
//! The core is pure: [`decide`] turns what a reconcile observed into the one next step, and
//! [`status`] turns that decision into the status to write. The kube-facing code stays thin.

pub mod constants;
pub mod controller;
pub mod decide;
mod error;
pub mod metrics;
pub mod status;
pub mod wakeups;

pub use decide::{
    Decision, DependencyObservation, DependencyState, Observation, ValuesState, decide,
};
pub use error::Error;
