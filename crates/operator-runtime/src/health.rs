//! The metrics and health endpoints (`/metrics`, `/healthz`, `/readyz`) and the readiness state
//! the operators report to them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kube::runtime::reflector::Store;
use tokio::task::JoinHandle;

use crate::{Error, Metrics, Shutdown};

/// Whether the operator is ready to serve: every controller registered here has synced its
/// watch caches. Cheap to clone; clones share the state.
///
/// Each controller [`register`](Readiness::register)s itself before it starts (so `/readyz`
/// never answers ready before a controller has even begun) and flips its [`ReadyFlag`] once its
/// reflector stores are ready, for example with [`ReadyFlag::set_ready_when_synced`].
///
/// An instance waiting for the leader election Lease is *standby* and reports ready: it is
/// healthy and must not hold up a rolling update of the Deployment, it simply does no work yet.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    inner: Arc<Mutex<ReadinessState>>,
}

#[derive(Debug, Default)]
struct ReadinessState {
    standby: bool,
    controllers: BTreeMap<String, bool>,
}

/// What `/readyz` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadinessStatus {
    /// Every registered controller has synced.
    Ready,
    /// Waiting for the leader election Lease; counts as ready.
    Standby,
    /// No controller has registered yet.
    NotStarted,
    /// These controllers have not synced their caches yet.
    NotReady(Vec<String>),
}

impl ReadinessStatus {
    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        matches!(self, ReadinessStatus::Ready | ReadinessStatus::Standby)
    }
}

impl Readiness {
    /// No controller registered, not standby: not ready.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, ReadinessState> {
        // The state is a plain map that no panic can leave half-updated.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a controller, not ready yet, and returns the flag it reports with. Registering a
    /// name again resets it to not ready.
    pub fn register(&self, controller: impl Into<String>) -> ReadyFlag {
        let name = controller.into();
        self.lock().controllers.insert(name.clone(), false);
        ReadyFlag {
            readiness: self.clone(),
            name,
        }
    }

    /// Marks this instance as waiting for (`true`) or holding (`false`) the leadership.
    pub fn set_standby(&self, standby: bool) {
        self.lock().standby = standby;
    }

    /// The current status.
    pub fn status(&self) -> ReadinessStatus {
        let state = self.lock();
        if state.standby {
            return ReadinessStatus::Standby;
        }
        if state.controllers.is_empty() {
            return ReadinessStatus::NotStarted;
        }
        let not_ready: Vec<String> = state
            .controllers
            .iter()
            .filter(|(_, ready)| !**ready)
            .map(|(name, _)| name.clone())
            .collect();
        if not_ready.is_empty() {
            ReadinessStatus::Ready
        } else {
            ReadinessStatus::NotReady(not_ready)
        }
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.status().is_ready()
    }
}

/// One controller's entry in the [`Readiness`].
#[derive(Debug, Clone)]
pub struct ReadyFlag {
    readiness: Readiness,
    name: String,
}

impl ReadyFlag {
    /// The controller's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reports the controller ready (its caches have synced).
    pub fn set_ready(&self) {
        self.readiness
            .lock()
            .controllers
            .insert(self.name.clone(), true);
    }

    /// Reports the controller not ready.
    pub fn set_not_ready(&self) {
        self.readiness
            .lock()
            .controllers
            .insert(self.name.clone(), false);
    }

    /// Waits until every store has received its first full list, then reports the controller
    /// ready. Spawn it next to the controller:
    /// `tokio::spawn(flag.set_ready_when_synced(vec![controller.store()]))`. Stores of
    /// different kinds can be awaited one after the other before calling
    /// [`set_ready`](ReadyFlag::set_ready) by hand.
    pub async fn set_ready_when_synced<K>(self, stores: Vec<Store<K>>)
    where
        K: kube::Resource + Clone + 'static,
        K::DynamicType: Eq + std::hash::Hash + Clone,
    {
        for store in stores {
            if store.wait_until_ready().await.is_err() {
                // The writer went away: the controller stopped before its caches synced.
                return;
            }
        }
        self.set_ready();
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    readiness: Readiness,
}

/// The HTTP routes: `/metrics`, `/healthz`, `/readyz`.
pub fn router(metrics: Metrics, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz_handler))
        .with_state(AppState { metrics, readiness })
}

async fn metrics_handler(State(state): State<AppState>) -> Response {
    match state.metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "encoding metrics failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding metrics failed\n",
            )
                .into_response()
        }
    }
}

async fn readyz_handler(State(state): State<AppState>) -> Response {
    match state.readiness.status() {
        ReadinessStatus::Ready => (StatusCode::OK, "ok\n".to_string()).into_response(),
        ReadinessStatus::Standby => (
            StatusCode::OK,
            "ok: standby, waiting for leadership\n".to_string(),
        )
            .into_response(),
        ReadinessStatus::NotStarted => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no controller started yet\n".to_string(),
        )
            .into_response(),
        ReadinessStatus::NotReady(names) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: caches not synced: {}\n", names.join(", ")),
        )
            .into_response(),
    }
}

/// A running metrics and health server.
#[derive(Debug)]
pub struct HealthServer {
    local_addr: SocketAddr,
    stop: Shutdown,
    task: JoinHandle<std::io::Result<()>>,
}

impl HealthServer {
    /// Binds `addr` (port 0 picks a free port) and serves [`router`] until
    /// [`shutdown`](HealthServer::shutdown). It is deliberately not tied to the process's
    /// shutdown signal: `/healthz` and `/metrics` keep answering while the controllers drain.
    pub async fn start(
        addr: SocketAddr,
        metrics: Metrics,
        readiness: Readiness,
    ) -> Result<Self, Error> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        let stop = Shutdown::new();
        let app = router(metrics, readiness);
        let task = tokio::spawn(
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.wait())
                .into_future(),
        );
        tracing::info!(address = %local_addr, "serving /metrics, /healthz and /readyz");
        Ok(HealthServer {
            local_addr,
            stop,
            task,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops serving (open requests are finished) and waits for the server to end.
    pub async fn shutdown(self) -> Result<(), Error> {
        self.stop.trigger();
        match self.task.await {
            Ok(result) => result.map_err(Error::Serve),
            Err(_) => Err(Error::ServerTask),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_waits_for_every_registered_controller() {
        let readiness = Readiness::new();
        assert_eq!(readiness.status(), ReadinessStatus::NotStarted);
        let a = readiness.register("a");
        let b = readiness.register("b");
        assert_eq!(
            readiness.status(),
            ReadinessStatus::NotReady(vec!["a".into(), "b".into()])
        );
        a.set_ready();
        assert_eq!(
            readiness.status(),
            ReadinessStatus::NotReady(vec!["b".into()])
        );
        b.set_ready();
        assert!(readiness.is_ready());
        b.set_not_ready();
        assert!(!readiness.is_ready());
    }

    #[test]
    fn a_standby_instance_counts_as_ready() {
        let readiness = Readiness::new();
        readiness.register("a");
        readiness.set_standby(true);
        assert_eq!(readiness.status(), ReadinessStatus::Standby);
        assert!(readiness.is_ready());
        readiness.set_standby(false);
        assert!(!readiness.is_ready());
    }

    #[tokio::test]
    async fn the_flag_turns_ready_once_the_store_has_its_first_list() {
        use k8s_openapi::api::core::v1::ConfigMap;
        use kube::runtime::watcher;

        let readiness = Readiness::new();
        let flag = readiness.register("configmaps");
        let (store, mut writer) = kube::runtime::reflector::store::<ConfigMap>();
        let task = tokio::spawn(flag.set_ready_when_synced(vec![store]));
        tokio::task::yield_now().await;
        assert!(!readiness.is_ready());
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        task.await.expect("task");
        assert!(readiness.is_ready());
    }
}
