//! The UpstartService operator (SPEC §3): a squad's microservice described once, deployed as
//! one child HelmRelease per release key, each wired to concrete dependencies.
//!
//! The core is pure: [`plan()`] resolves every dependency name against the namespace (a sibling
//! key first, then an UpstartService or a HelmRelease), checks the namespace's graph for cycles
//! and `.Release.Name` conflicts, and says which children to apply; [`children`] builds them;
//! [`status`] computes the service's status from the plan and what the children report;
//! catalog templates are validated by [`upstart_dag::validate_template`] (the rule the
//! environment operator applies before copying one); [`wakeups`] maps a change to the services
//! it concerns. The kube-facing code ([`controller`]) stays thin:
//!
//! 1. read the newest service, the services and HelmReleases of its namespace;
//! 2. plan; apply every child that is not withheld (server-side apply), delete the children
//!    of removed keys (their finalizer waits for their dependents, SPEC §2.8);
//! 3. read the names of the exported outputs;
//! 4. write status with server-side apply on `/status`, only when it changed, with an Event on
//!    every phase change.
//!
//! Services of the catalog namespace are templates: validated, never deployed. There is no
//! finalizer: children are owned, so deleting a service lets the garbage collector delete them,
//! and the HelmRelease finalizer orders their teardown.

pub mod children;
pub mod constants;
pub mod controller;
mod error;
pub mod plan;
pub mod status;
pub mod wakeups;

pub use error::Error;
pub use plan::{KeyPlan, Plan, Problem, plan};
