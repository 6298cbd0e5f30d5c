//! An in-process Kubernetes API server for tests, benchmarks and `upstart dev` (SPEC §10).
//!
//! It keeps objects in memory with the apiserver's semantics that controllers depend on:
//! discovery, get/list/watch with selectors, pagination and bookmarks, create/update/patch
//! (merge, JSON, strategic merge, server-side apply), resourceVersion conflicts, generation,
//! status subresources, finalizers, ownerReference garbage collection, namespace termination and
//! CustomResourceDefinitions served as soon as they are created.
//!
//! Two ways in: [`ControlPlane::client`] gives a `kube::Client` that talks to it without sockets,
//! and [`ControlPlane::serve_https`] serves it on loopback with a generated CA and a bearer
//! token, with a kubeconfig for `kubectl`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), upstart_control_plane::Error> {
//! use upstart_control_plane::{ControlPlane, Options};
//! let cp = ControlPlane::start(Options::default());
//! let client = cp.client();
//! let endpoint = cp.serve_https("127.0.0.1:0".parse().expect("address")).await?;
//! endpoint.write_kubeconfig(std::path::Path::new("kubeconfig"))?;
//! # let _ = client; Ok(()) }
//! ```

mod api;
mod builtin;
mod error;
mod faults;
mod https;
mod meta;
mod openapi;
mod patching;
mod registry;
mod selectors;
mod store;
mod table;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;

pub use error::{ApiError, Error};
pub use faults::{Fault, FaultAction, FaultId, Faults, Verb};
pub use https::Endpoint;

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
            async move { Ok::<_, Infallible>(serve(shared, req).await) }
        });
        kube::Client::new(service, self.options.default_namespace.clone())
    }

    /// Serves the API over HTTPS on `addr` (use port 0 for a free port).
    pub async fn serve_https(&self, addr: SocketAddr) -> Result<Endpoint, Error> {
        https::serve(self.shared.clone(), addr, &self.options.default_namespace).await
    }

    /// Fault injection for this control plane.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
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
async fn serve<B>(shared: Arc<Shared>, req: Request<B>) -> Response<ResponseBody>
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
    api::handle(shared, Request::from_parts(parts, bytes)).await
}
