//! The metrics and health endpoints (`/metrics`, `/healthz`, `/readyz`) and the readiness state
//! the operators report to them.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{Stream, StreamExt};
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use crate::{Error, Metrics, Shutdown};

/// Whether the operator is ready to serve: every controller registered here has synced its
/// watch caches. Cheap to clone; clones share the state.
///
/// Each controller [`register`](Readiness::register)s itself before it starts (so `/readyz`
/// never answers ready before a controller has even begun) and flips its [`ReadyFlag`] once its
/// watch caches hold their initial lists, with [`ReadyFlag::watch`] or [`ReadyFlag::track`].
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

    /// Whether the controller has reported ready (its caches have synced).
    pub fn is_ready(&self) -> bool {
        self.readiness
            .lock()
            .controllers
            .get(&self.name)
            .copied()
            .unwrap_or(false)
    }

    /// Drives `controller` (a [`Controller`](crate::Controller)'s run future, set up with
    /// `graceful_shutdown_on(shutdown.wait())`) until it ends, or until `shutdown` fires
    /// before this controller's first sync.
    ///
    /// Nothing can be in flight before the first list is in the store, so such a shutdown
    /// ends the controller at once, whatever the future does (kube-runtime's `Controller`,
    /// used before, waited for that list forever); after the sync the controller's own
    /// graceful shutdown lets in-flight reconciles finish.
    pub async fn run_until_stopped(
        &self,
        controller: impl Future<Output = ()>,
        shutdown: &Shutdown,
    ) {
        let stopped_before_sync = async {
            shutdown.wait().await;
            if self.is_ready() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = controller => {}
            () = stopped_before_sync => tracing::info!(controller = %self.name, "shut down before the first sync"),
        }
    }

    /// Passes a watcher event stream through and reports the controller ready at its first
    /// `InitDone` (the initial list is complete). Place it after `.reflect(writer)`, so that
    /// the store holds the listed objects by the time the flag flips.
    ///
    /// Readiness follows the event stream rather than `Store::wait_until_ready`: in kube-runtime
    /// 5 a store's readiness wakes only the task that polled it last, and the `Controller`
    /// itself waits on its store, so a second waiter may never be woken, or may take the
    /// Controller's wake-up.
    pub fn track<S, K, E>(self, stream: S) -> impl Stream<Item = Result<watcher::Event<K>, E>>
    where
        S: Stream<Item = Result<watcher::Event<K>, E>>,
    {
        stream.inspect(move |event| {
            if matches!(event, Ok(watcher::Event::InitDone)) {
                self.set_ready();
            }
        })
    }

    /// The primary watch of a controller, reporting this flag ready once its initial list is in
    /// the store: a reader and a trigger stream for [`Controller::for_stream`](crate::Controller::for_stream).
    ///
    /// ```no_run
    /// # use k8s_openapi::api::core::v1::ConfigMap;
    /// # use upstart_operator_runtime::Controller;
    /// # fn demo(ctx: upstart_operator_runtime::OperatorContext) {
    /// let ready = ctx.readiness.register("configmaps");
    /// let (store, trigger) = ready.watch(ctx.api::<ConfigMap>(), ctx.watcher_config());
    /// let controller = Controller::for_stream(trigger, store);
    /// # let _ = controller; }
    /// ```
    ///
    /// The watch retries with kube-runtime's default backoff.
    pub fn watch<K>(
        self,
        api: Api<K>,
        config: watcher::Config,
    ) -> (
        Store<K>,
        impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    )
    where
        K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        self.watch_counting(api, config, |_| {})
    }

    /// [`ReadyFlag::watch`], calling `on_change` with the store after every change to it
    /// (an object applied or deleted, the initial list complete): how the phase gauges stay
    /// exact, a deletion included, which no reconcile follows.
    pub fn watch_counting<K>(
        self,
        api: Api<K>,
        config: watcher::Config,
        on_change: impl Fn(&Store<K>) + Send + Sync + 'static,
    ) -> (
        Store<K>,
        impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    )
    where
        K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        self.watch_observing(api, config, move |store, event| {
            // Not for each object of the initial list: once, when it is complete.
            if matches!(
                event,
                watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone
            ) {
                on_change(store);
            }
        })
    }

    /// [`ReadyFlag::watch`], calling `on_event` with the store and each event once the store
    /// holds it: what the event makes of other objects (a release's dependents) is then
    /// computed from a store that already has it, from the one watch of the kind.
    pub fn watch_observing<K>(
        self,
        api: Api<K>,
        config: watcher::Config,
        on_event: impl Fn(&Store<K>, &watcher::Event<K>) + Send + Sync + 'static,
    ) -> (
        Store<K>,
        impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    )
    where
        K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let (store, writer) = reflector::store();
        let reader = store.clone();
        let stream = self
            .track(
                watcher(api, config)
                    .default_backoff()
                    // Nothing reads who wrote what of the operator's own kind: memory kept for
                    // the rest (managedFields are often the larger part of an object).
                    .modify(|object| object.meta_mut().managed_fields = None)
                    .reflect(writer)
                    .inspect(move |event| {
                        if let Ok(event) = event {
                            on_event(&reader, event);
                        }
                    }),
            )
            .applied_objects();
        (store, stream)
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

    #[tokio::test]
    async fn a_shutdown_before_the_first_sync_ends_a_controller_that_waits_for_it() {
        let flag = Readiness::new().register("waiting");
        let shutdown = Shutdown::new();
        shutdown.trigger();
        // A controller that never syncs never ends on its own.
        flag.run_until_stopped(std::future::pending(), &shutdown)
            .await;
    }

    #[tokio::test]
    async fn after_the_first_sync_a_shutdown_leaves_the_controller_to_finish_its_work() {
        let flag = Readiness::new().register("synced");
        flag.set_ready();
        let shutdown = Shutdown::new();
        shutdown.trigger();
        let finished = std::sync::atomic::AtomicBool::new(false);
        let controller = async {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            finished.store(true, std::sync::atomic::Ordering::SeqCst);
        };
        flag.run_until_stopped(controller, &shutdown).await;
        assert!(finished.load(std::sync::atomic::Ordering::SeqCst));
    }

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
    async fn the_flag_turns_ready_once_the_initial_list_is_done() {
        use k8s_openapi::api::core::v1::ConfigMap;

        let readiness = Readiness::new();
        let flag = readiness.register("configmaps");
        let events = futures::stream::iter([
            Ok::<_, std::convert::Infallible>(watcher::Event::<ConfigMap>::Init),
            Ok(watcher::Event::InitApply(ConfigMap::default())),
            Ok(watcher::Event::InitDone),
        ]);
        let mut tracked = Box::pin(flag.track(events));
        tracked.next().await;
        tracked.next().await;
        assert!(!readiness.is_ready(), "not before InitDone");
        tracked.next().await;
        assert!(readiness.is_ready());
    }
}
