//! The UpstartEnvironment operator (SPEC §4): an isolated, expiring namespace holding every
//! service an engineer asked for, plus environment-wide releases.
//!
//! The core is pure: [`children`] builds the namespace, the UpstartServices (catalog template
//! or inline spec, overrides deep-merged) and the environment-wide HelmReleases, with the
//! services the [`closure`] adds for dependencies and the template copies [`templates`]
//! chooses (an invalid revision is never copied; `pinned` keeps the copy it has); [`status`]
//! turns an observation into phase, counts, conditions, time-to-ready and critical path;
//! [`endpoints`] says where each service can be reached;
//! [`expiry`] says when the environment deletes itself; [`teardown`] says which objects go
//! next so that dependents always go first; [`wakeups`] maps a change to the environments it
//! concerns. The kube-facing code ([`controller`]) stays thin:
//!
//! 1. read the newest environment;
//! 2. namespace: create it (labelled, owned) or refuse one that is not the environment's;
//! 3. read the catalog templates, build the children, server-side apply them, tear down
//!    services and releases no longer wanted (dependents first);
//! 4. observe the services and releases, write status (only when it changed, an Event on
//!    every phase change), requeue exactly at `expiresAt`;
//! 5. at `expiresAt`: delete the environment (Event `Expired`, counter).
//!
//! Deletion runs through the finalizer: services and environment releases level by level in
//! reverse dependency order, waiting for each level to be gone, then the namespace; bounded by
//! the teardown timeout, after which it proceeds and says so in an Event.
//!
//! [`sleep`] says whether the environment sleeps now and until when (cron schedule, time
//! zone, manual switch); [`sleeping`] marks its HelmReleases asleep, and the HelmRelease
//! operator applies their Deployments and StatefulSets with zero replicas. [`admission`]
//! decides whether an environment may start under the operator's caps, and the ResourceQuota
//! and LimitRange its namespace gets.
//!
//! With `--release-cluster-role`, [`tenancy`] gives each environment namespace the
//! ServiceAccount its releases act as, bound to that ClusterRole there.

pub mod admission;
pub mod chart_repositories;
pub mod children;
pub mod closure;
pub mod constants;
pub mod controller;
pub mod endpoints;
mod error;
pub mod expiry;
pub mod metrics;
pub mod sleep;
pub mod sleeping;
pub mod status;
pub mod teardown;
pub mod templates;
pub mod tenancy;
pub mod wakeups;

pub use error::Error;
