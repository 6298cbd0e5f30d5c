//! An in-process Kubernetes API server for tests, benchmarks and `upstart dev` (SPEC §10).
//!
//! It keeps objects in memory with the apiserver semantics controllers depend on, so that
//! operators can be tested against real API behaviour without a cluster. Two ways in:
//! [`ControlPlane::client`] gives a `kube::Client` that talks to it without sockets, and
//! [`ControlPlane::serve_https`] serves it on loopback with a generated CA, authenticating a
//! bearer token or a client certificate from that CA, with a kubeconfig for `kubectl`
//! ([`Endpoint::kubeconfig_yaml`], [`Endpoint::write_kubeconfig`],
//! [`Endpoint::kubeconfig_yaml_with_client_certificate`]).
//! [`ControlPlane::faults`] injects failures, delays, pauses at a gate and dropped watches, and
//! keeps an ordered request log by client ([`ControlPlane::client_tagged`]);
//! [`ControlPlane::request_counts`] tells how many requests were served, by way in and verb.
//!
//! ```no_run
//! # async fn demo() -> Result<(), upstart_control_plane::Error> {
//! use upstart_control_plane::{ControlPlane, Fault, Options, Verb};
//! let cp = ControlPlane::start(Options::default());
//! let client = cp.client();
//! cp.faults().inject(Fault::on(Verb::Update).resource("configmaps").nth(2).fail(409));
//! let endpoint = cp.serve_https("127.0.0.1:0".parse().expect("address")).await?;
//! endpoint.write_kubeconfig(std::path::Path::new("kubeconfig"))?;
//! # let _ = client; Ok(()) }
//! ```
//!
//! # What it implements
//!
//! - Discovery: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/{group}[/{version}]` for core/v1,
//!   apps/v1, batch/v1, networking.k8s.io/v1, rbac.authorization.k8s.io/v1, policy/v1,
//!   coordination.k8s.io/v1, events.k8s.io/v1, apiextensions.k8s.io/v1, autoscaling/v2 and v1
//!   (stored as v2), storage.k8s.io/v1, scheduling.k8s.io/v1, node.k8s.io/v1,
//!   apiregistration.k8s.io/v1, certificates.k8s.io/v1, the access and self-subject reviews
//!   (create only; answered by RBAC when enforced, else every access allowed), and CRDs as
//!   soon as they are created (status and scale subresources, printer columns,
//!   Established/NamesAccepted conditions; a CRD without a structural schema is refused with
//!   422). Aggregated discovery is answered with the legacy documents, which clients fall
//!   back to; `/openapi/v3` describes the resources (the built-in kinds' k8s-openapi
//!   schemas for `kubectl explain`, CRD schemas) so kubectl validates on the server.
//! - Reads: get; list with label selectors (equality and set based), field selectors
//!   (`metadata.name`, `metadata.namespace`, the documented per-kind fields and CRD
//!   `selectableFields`), `limit`/`continue`; Table output for `kubectl get` (with the
//!   `-o wide` columns); metadata only (`PartialObjectMetadata[List]`, what kube's
//!   `Api<PartialObjectMeta<K>>` asks) on every verb and in watch events. The answer's shape is
//!   negotiated from `Accept` as the apiserver does (first acceptable media type wins; none is
//!   a 406).
//! - Watch: from a resourceVersion (replayed from a bounded history; older versions get a 410
//!   `Expired` ERROR event), from now with the current state as ADDED events, bookmarks,
//!   `sendInitialEvents`, `timeoutSeconds`, selector transitions seen as ADDED/DELETED.
//! - Bodies in JSON, YAML or, for built-in kinds, protobuf (one generic decoder, see
//!   `protobuf.rs`).
//! - Writes: create (`generateName`, uid, timestamps, generation), update (409 on a stale
//!   resourceVersion), merge / JSON / strategic merge patch (415 for custom resources),
//!   server-side apply with managedFields, conflicts and `force`; status and scale
//!   subresources; `dryRun=All`; `fieldValidation` for custom resources; schema validation,
//!   pruning and defaulting of custom resources; unknown fields of built-in kinds dropped
//!   (warning) or refused (`Strict`) using their k8s-openapi types; built-in kinds defaulted
//!   (`SetDefaults_*`) and validated (required fields, enums, pod template rules) with the API
//!   server's 422 causes, walking their schemas; name, label and
//!   ownerReference validation; immutable fields of workloads (selectors, Job template,
//!   StatefulSet spec) and of immutable ConfigMaps/Secrets.
//! - Deletion: finalizers and `deletionTimestamp`, propagation (Background, Foreground with
//!   `blockOwnerDeletion`, Orphan), ownerReference garbage collection, deletecollection,
//!   namespace termination (content removed, creation refused with 403), CRD deletion removing
//!   its custom resources.
//! - core/v1 Events served from the events.k8s.io/v1 storage (converted both ways), so
//!   `kubectl get events` shows what kube-runtime's recorder publishes.
//!
//! # What it knowingly does not do
//!
//! - Protobuf, YAML or CBOR answers (always JSON), `/openapi/v2`, HTTP/2, authorization modes
//!   other than RBAC (and RBAC only once [`ControlPlane::enable_rbac`] is called; the
//!   aggregation controller's rules are computed when asked, not written into the
//!   aggregated ClusterRole), admission webhooks, aggregated APIs, conversion webhooks (all
//!   served versions of a CRD share storage, as with conversion strategy `None`).
//! - Validation of built-in kinds beyond required fields, enums and the rules of
//!   `builtin/validation.rs` (formats, ranges, uniqueness, other cross-field rules); what
//!   admission plugins add to Pods (service account, token volume, tolerations, priority).
//! - Consistent snapshots for paginated lists (later pages read the current state); a
//!   resourceVersion on get/list is ignored (answers are always the latest state).
//! - Pod graceful deletion (pods are deleted like any object), `pods/log`, `exec`, `proxy`,
//!   `attach`, `port-forward`, `eviction`, `binding` and `ephemeralcontainers` subresources.
//! - Controllers of a real cluster other than garbage collection, namespace termination and
//!   CRD establishment: see the workload simulator for Deployments, Jobs and Pods.

mod api;
mod auth;
mod builtin;
mod convert;
mod error;
mod faults;
#[doc(hidden)]
pub mod fuzz_targets;
mod https;
mod meta;
mod openapi;
mod patching;
mod protobuf;
mod rbac;
mod registry;
mod requests;
mod selectors;
mod shape;
mod store;
mod table;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;

pub use auth::UserInfo;
pub use error::{ApiError, Error};
pub use faults::{
    Fault, FaultAction, FaultId, Faults, Gate, LoggedRequest, PausePoint, REQUEST_LOG_CAPACITY,
    Verb, WatchFault,
};
pub use https::Endpoint;
pub use requests::{RequestCounts, VerbCounts, WayIn};

use api::{ApiSettings, ResponseBody, Shared};

/// Settings of a control plane.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Kubernetes version reported by `/version` (matches k8s-openapi's `v1_33` feature).
    pub kubernetes_version: String,
    /// How many change events are kept for watches resuming from a resourceVersion; a watch from
    /// an older version gets `410 Gone` (`Expired`), as after etcd compaction.
    pub watch_history: usize,
    /// How often watches that asked for bookmarks get one.
    pub bookmark_interval: Duration,
    /// The namespace of the in-process client.
    pub default_namespace: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            kubernetes_version: "1.33.1".to_string(),
            watch_history: 10_000,
            bookmark_interval: Duration::from_secs(5),
            default_namespace: "default".to_string(),
        }
    }
}

/// A running control plane. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct ControlPlane {
    shared: Arc<Shared>,
    options: Arc<Options>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// Starts an empty control plane (namespaces `default`, `kube-system`, `kube-public` and
    /// `kube-node-lease` exist). Must be called inside a Tokio runtime when watches are used.
    pub fn start(options: Options) -> Self {
        let store = store::Store::new(options.watch_history);
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            settings: ApiSettings {
                git_version: options.kubernetes_version.clone(),
                bookmark_interval: options.bookmark_interval,
            },
            faults: Faults::default(),
            requests: requests::RequestCounter::default(),
            rbac: rbac::Rbac::default(),
            shutdown: tokio::sync::watch::channel(false).0,
        });
        ControlPlane {
            shared,
            options: Arc::new(options),
        }
    }

    /// A `kube::Client` talking to this control plane in process (no sockets, no TLS).
    pub fn client(&self) -> kube::Client {
        let shared = self.shared.clone();
        let service = tower::service_fn(move |req: Request<kube::client::Body>| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(serve(shared, WayIn::InProcess, req).await) }
        });
        kube::Client::new(service, self.options.default_namespace.clone())
    }

    /// A client like [`ControlPlane::client`] whose requests carry `tag`: faults can target it
    /// ([`Fault::client`]) and the request log names it ([`LoggedRequest::client`]), so that
    /// each operator instance of a test is told apart.
    pub fn client_tagged(&self, tag: &str) -> kube::Client {
        let shared = self.shared.clone();
        let tag = faults::ClientTag(tag.to_string());
        let service = tower::service_fn(move |mut req: Request<kube::client::Body>| {
            let shared = shared.clone();
            req.extensions_mut().insert(tag.clone());
            async move { Ok::<_, Infallible>(serve(shared, WayIn::InProcess, req).await) }
        });
        kube::Client::new(service, self.options.default_namespace.clone())
    }

    /// Serves the API over HTTPS on `addr` (use port 0 for a free port).
    pub async fn serve_https(&self, addr: SocketAddr) -> Result<Endpoint, Error> {
        https::serve(self.shared.clone(), addr, &self.options.default_namespace).await
    }

    /// Enforces RBAC from now on for the users of the HTTPS endpoint (ServiceAccount tokens,
    /// impersonation), as kube-apiserver's RBAC authorizer does, and creates the bootstrap
    /// roles clients rely on (see the `rbac` module). The admin (its token and client
    /// certificate are in `system:masters`) and the in-process clients are allowed everything,
    /// as `system:masters` is on a real cluster. Off by default.
    pub fn enable_rbac(&self) -> Result<(), ApiError> {
        rbac::enable(&self.shared)
    }

    /// Fault injection for this control plane.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// The requests served so far, by the way they came in and by verb.
    pub fn request_counts(&self) -> RequestCounts {
        self.shared.requests.snapshot()
    }

    /// The latest resourceVersion handed out.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().current_rv()
    }

    /// Ends open watches and stops the HTTPS listeners. Requests still work in process.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }
}

/// Collects a request body of any type and hands the request to the API layer.
async fn serve<B>(shared: Arc<Shared>, way: WayIn, req: Request<B>) -> Response<ResponseBody>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let (parts, body) = req.into_parts();
    let bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return api::error_response(&ApiError::bad_request(format!(
                "reading the request body failed: {e}"
            )));
        }
    };
    api::handle(shared, way, Request::from_parts(parts, bytes)).await
}
