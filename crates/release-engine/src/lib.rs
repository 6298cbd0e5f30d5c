//! The pure and near-pure building blocks of the HelmRelease operator (SPEC §2.3-§2.6, §7).
//!
//! - [`render`]: `helm template` as a subprocess, with a render cache, limits and scrubbed errors.
//! - [`manifests`]: rendered YAML to an install plan: hooks, install order, namespaces, labels,
//!   inventory, prune set and ownership conflicts.
//! - [`health`]: whether a live object is healthy, still progressing or failed.
//! - [`catalog`]: what the cluster serves (from discovery), for both of the above.
//! - [`digest`]: stable `sha256:` digests of JSON documents and of render inputs.
//!
//! Nothing here talks to the Kubernetes API: the operator observes the cluster and hands the
//! facts in (discovery results, live objects), which keeps every rule testable without a cluster.

pub mod catalog;
pub mod digest;
mod error;
pub mod health;
pub mod manifests;
pub mod render;

pub use error::{Error, Result};
