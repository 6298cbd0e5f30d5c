//! The pure and near-pure building blocks of the HelmRelease operator (SPEC §2.3-§2.6, §7).
//!
//! - [`render`]: `helm template` as a subprocess, with a render cache, limits and scrubbed errors.
//! - [`manifests`]: rendered YAML to an install plan: hooks, install order, namespaces, labels,
//!   inventory, prune set and ownership conflicts.
//! - [`health`]: whether a live object is healthy, still progressing or failed.
//! - [`catalog`]: what the cluster serves (from discovery), for both of the above.
//! - [`digest`]: stable `sha256:` digests of JSON documents and of render inputs.
//! - [`yaml`]: YAML to JSON as kubectl converts it (YAML 1.1 scalars), with bounded expansion.
//! - [`lookup`]: the read-only, namespace-confined endpoint through which a render's `lookup`
//!   reads the cluster.
//!
//! Apart from [`lookup`] (reads only, through the client the operator hands in), nothing here
//! talks to the Kubernetes API: the operator observes the cluster and hands the facts in
//! (discovery results, live objects), which keeps every rule testable without a cluster.
//!
//! The operator's flow, in outline:
//!
//! ```no_run
//! use std::path::Path;
//! use upstart_release_engine::catalog::ApiCatalog;
//! use upstart_release_engine::health::{self, Health};
//! use upstart_release_engine::manifests::{self, ClusterScopedAllowList, HookEvent, Limits, ReleaseScope};
//! use upstart_release_engine::render::{RenderRequest, Renderer};
//!
//! # async fn run() -> Result<(), upstart_release_engine::Error> {
//! // At startup: a missing or too old helm is a clear error here.
//! let renderer = Renderer::new("/usr/local/bin/helm").await?;
//! // From discovery (refreshed when CRDs change).
//! let mut catalog = ApiCatalog::new("v1.33.2");
//! catalog.add("apps/v1", "Deployment", true);
//! let capabilities = catalog.capabilities();
//!
//! // Per reconcile: render (cached on unchanged inputs), then plan.
//! let values = serde_json::json!({"dbName": "my_service"});
//! let rendered = renderer
//!     .render(&RenderRequest {
//!         chart_dir: Path::new("/var/cache/charts/sha256-abc/postgres"),
//!         chart_digest: "sha256:abc",
//!         release_name: "postgres",
//!         namespace: "pr-1234",
//!         values: &values,
//!         capabilities: &capabilities,
//!         is_upgrade: false,
//!     })
//!     .await?;
//! let allow = ClusterScopedAllowList::default();
//! let is_namespaced = |api_version: &str, kind: &str| catalog.is_namespaced(api_version, kind);
//! let scope = ReleaseScope {
//!     namespace: "pr-1234",
//!     name: "example-postgres",
//!     cluster_scoped_allow_list: &allow,
//!     is_namespaced: &is_namespaced,
//! };
//! let plan = manifests::plan(&rendered.manifest, &scope, &Limits::default())?;
//! let (pre, _post) = HookEvent::around_apply(false);
//! for hook in plan.hooks_for(pre) {
//!     // apply hook.object.object, wait for manifests::hook_outcome(&live) ...
//! #   let _ = hook;
//! }
//! for object in &plan.resources {
//!     // manifests::check_conflict(&object.entry, live_labels, &scope.release_label_value())?;
//!     // server-side apply object.object with field manager `upstart-helmrelease` ...
//! #   let _ = object;
//! }
//! // After the apply: prune, then wait for health.
//! let old_inventory = Vec::new();
//! let _prune = manifests::prune_set(&old_inventory, &plan.inventory());
//! let live = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
//!     "metadata": {"name": "postgres"}});
//! if let Health::Progressing(why) = health::assess(&live) {
//!     println!("waiting for postgres: {why}");
//! }
//! # Ok(())
//! # }
//! ```

pub mod catalog;
pub mod digest;
mod error;
#[doc(hidden)]
pub mod fuzz_targets;
pub mod health;
pub mod job;
pub mod lookup;
pub mod manifests;
pub mod render;
pub mod yaml;

pub use error::{Error, Result};
