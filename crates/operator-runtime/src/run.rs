//! Putting it together: what an operator is given ([`OperatorContext`]) and the start-up order
//! (logging, client, health server, leader election, work, release, stop) in one place.

use std::future::Future;
use std::net::SocketAddr;

use kube::Api;
use kube::runtime::watcher;

use crate::ControllerConfig;

use crate::{
    CommonArgs, Error, EventRecorder, HealthServer, LeaderElector, LeaseConfig, Metrics, Readiness,
    Shutdown, default_identity, init_logging,
};

/// Where the service account's namespace is mounted in a pod.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Everything an operator's work is given. Cheap to clone.
#[derive(Clone)]
pub struct OperatorContext {
    /// The operator's name (`"helmrelease-operator"`, …): the default event reporter and the
    /// default Lease name.
    pub name: &'static str,
    /// The Kubernetes client.
    pub client: kube::Client,
    /// The metrics registry (served on `/metrics` when a server runs).
    pub metrics: Metrics,
    /// Readiness reported on `/readyz`: register each controller, flip it once synced.
    pub readiness: Readiness,
    /// The common flags.
    pub args: CommonArgs,
    identity: String,
}

impl std::fmt::Debug for OperatorContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorContext")
            .field("name", &self.name)
            .field("identity", &self.identity)
            .field("args", &self.args)
            .finish_non_exhaustive()
    }
}

impl OperatorContext {
    /// A context with fresh metrics and readiness and a fresh [`default_identity`]. This is
    /// all an in-process operator (`upstart dev`, tests) needs besides a shutdown.
    pub fn new(name: &'static str, client: kube::Client, args: CommonArgs) -> Self {
        OperatorContext {
            name,
            client,
            metrics: Metrics::new(),
            readiness: Readiness::new(),
            args,
            identity: default_identity(),
        }
    }

    /// This instance's identity: the event reporting instance and the Lease holder.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// An event recorder reporting as `controller` from this instance (one per controller;
    /// clones share the folding of repeated events).
    pub fn recorder(&self, controller: &str) -> EventRecorder {
        EventRecorder::new(self.client.clone(), controller, Some(self.identity.clone()))
    }

    /// The API of a namespaced kind, limited to `--namespace` when given.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match self.args.namespace.as_deref() {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    /// Watcher settings of the primary resource (the `--label-selector` shard).
    pub fn watcher_config(&self) -> watcher::Config {
        self.args.watcher_config()
    }

    /// Controller settings (`--max-concurrent-reconciles`).
    pub fn controller_config(&self) -> ControllerConfig {
        self.args.controller_config()
    }

    /// The leader election Lease from the flags: `--lease-name` (default: the operator's
    /// name), `--leader-election-namespace` (default: the pod's namespace, else the client's
    /// default namespace), the timings, and this context's identity.
    pub fn lease_config(&self) -> LeaseConfig {
        let namespace = self
            .args
            .leader_election_namespace
            .clone()
            .or_else(pod_namespace)
            .unwrap_or_else(|| self.client.default_namespace().to_string());
        LeaseConfig {
            namespace,
            name: self
                .args
                .lease_name
                .clone()
                .unwrap_or_else(|| self.name.to_string()),
            identity: self.identity.clone(),
            lease_duration: self.args.lease_duration,
            renew_deadline: self.args.renew_deadline,
            retry_period: self.args.retry_period,
        }
    }
}

/// The pod's namespace: `POD_NAMESPACE`, else the mounted service account's.
fn pod_namespace() -> Option<String> {
    std::env::var("POD_NAMESPACE")
        .ok()
        .or_else(|| std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE).ok())
        .map(|ns| ns.trim().to_string())
        .filter(|ns| !ns.is_empty())
}

/// What [`run`] starts around the work.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Serve `/metrics`, `/healthz` and `/readyz` here.
    pub health_addr: Option<SocketAddr>,
    /// Run the work only while holding this Lease.
    pub leader_election: Option<LeaseConfig>,
}

impl RunOptions {
    /// No server, no election: for operators running inside `upstart dev` and tests.
    pub fn in_process() -> Self {
        Self::default()
    }

    /// What the flags ask for: the server on `--metrics-addr`, the election when
    /// `--leader-elect`.
    pub fn from_context(ctx: &OperatorContext) -> Self {
        RunOptions {
            health_addr: Some(ctx.args.metrics_addr),
            leader_election: ctx.args.leader_elect.then(|| ctx.lease_config()),
        }
    }
}

/// Builds the Kubernetes client: from `--kubeconfig` when given, else `KUBECONFIG`, else the
/// in-cluster configuration, else `~/.kube/config`.
pub async fn client_from_args(args: &CommonArgs) -> Result<kube::Client, Error> {
    // kube is built with rustls on ring; make ring the process default so that no other
    // dependency's provider choice can make TLS set-up ambiguous.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig =
                kube::config::Kubeconfig::read_from(path).map_err(|source| Error::Kubeconfig {
                    path: path.clone(),
                    source,
                })?;
            kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &kube::config::KubeConfigOptions::default(),
            )
            .await
            .map_err(|source| Error::Kubeconfig {
                path: path.clone(),
                source,
            })?
        }
        // controller-runtime's order: `KUBECONFIG`, then in-cluster, then `~/.kube/config`
        // (kube's `infer` alone would prefer a stray `~/.kube/config` inside a pod).
        None => match std::env::var_os("KUBECONFIG") {
            None => match kube::Config::incluster() {
                Ok(config) => config,
                Err(_) => kube::Config::infer().await.map_err(Error::InferConfig)?,
            },
            Some(_) => kube::Config::infer().await.map_err(Error::InferConfig)?,
        },
    };
    client_with_retry_after(config)
}

/// The client for `config`, with kube's default retries (up to 15, each waiting any
/// `Retry-After` the server asks for, however long) replaced by [`retry_after`]'s: a 429 is
/// retried once, after its `Retry-After` capped at [`retry_after::MAX_WAIT`]. Anything else is
/// the reconciler's to retry, with its own backoff.
fn client_with_retry_after(mut config: kube::Config) -> Result<kube::Client, Error> {
    config.default_retry = false;
    let client = kube::client::ClientBuilder::try_from(config)
        .map_err(Error::Client)?
        // Retry needs a service it can clone; kube's stack is boxed, so it is shared.
        .with_layer(&tower::buffer::BufferLayer::new(1024))
        .with_layer(&tower::retry::RetryLayer::new(
            retry_after::OnceAfter::default(),
        ))
        .build();
    Ok(client)
}

/// Honouring `Retry-After` on 429 (API Priority and Fairness, or a proxy shedding load).
pub mod retry_after {
    use std::time::Duration;

    use http::{HeaderMap, Request, Response, StatusCode};
    use kube::client::Body;
    use tower::BoxError;

    /// The longest `Retry-After` waited for; a longer one is cut to this, and a second 429 is
    /// returned to the caller (whose backoff takes over) rather than holding a reconcile.
    pub const MAX_WAIT: Duration = Duration::from_secs(5);
    /// The wait when a 429 has no (or no readable) `Retry-After`.
    pub const DEFAULT_WAIT: Duration = Duration::from_secs(1);

    /// The retry policy: one retry of a 429, after its `Retry-After` (bounded). tower clones
    /// the policy for each request, so `spent` is per request.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct OnceAfter {
        spent: bool,
    }

    /// How long a 429 asks to wait: `Retry-After` in seconds (the form the API server
    /// sends), bounded by [`MAX_WAIT`]; [`DEFAULT_WAIT`] when absent or not a number.
    pub fn wait_for(headers: &HeaderMap) -> Duration {
        headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(DEFAULT_WAIT, Duration::from_secs)
            .min(MAX_WAIT)
    }

    impl<B> tower::retry::Policy<Request<Body>, Response<B>, BoxError> for OnceAfter {
        type Future = tokio::time::Sleep;

        fn retry(
            &mut self,
            _request: &mut Request<Body>,
            result: &mut Result<Response<B>, BoxError>,
        ) -> Option<Self::Future> {
            match result {
                Ok(response)
                    if !self.spent && response.status() == StatusCode::TOO_MANY_REQUESTS =>
                {
                    let wait = wait_for(response.headers());
                    tracing::debug!(
                        ?wait,
                        "429 Too Many Requests: retrying once after Retry-After"
                    );
                    // One retry only: the next answer is the caller's, whatever it is.
                    self.spent = true;
                    Some(tokio::time::sleep(wait))
                }
                _ => None,
            }
        }

        fn clone_request(&mut self, request: &Request<Body>) -> Option<Request<Body>> {
            if self.spent {
                return None;
            }
            // Only a body held in memory can be sent twice (kube's requests are).
            let body = request.body().try_clone()?;
            let mut copy = Request::new(body);
            *copy.method_mut() = request.method().clone();
            *copy.uri_mut() = request.uri().clone();
            *copy.version_mut() = request.version();
            *copy.headers_mut() = request.headers().clone();
            *copy.extensions_mut() = request.extensions().clone();
            Some(copy)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn headers(retry_after: Option<&str>) -> HeaderMap {
            let mut headers = HeaderMap::new();
            if let Some(value) = retry_after {
                headers.insert(
                    http::header::RETRY_AFTER,
                    value.parse().expect("a header value"),
                );
            }
            headers
        }

        #[test]
        fn retry_after_seconds_are_waited_up_to_the_cap() {
            assert_eq!(wait_for(&headers(Some("2"))), Duration::from_secs(2));
            assert_eq!(wait_for(&headers(Some("3600"))), MAX_WAIT);
            assert_eq!(wait_for(&headers(None)), DEFAULT_WAIT);
            assert_eq!(
                wait_for(&headers(Some("Wed, 21 Oct 2026 07:28:00 GMT"))),
                DEFAULT_WAIT
            );
        }
    }
}

/// Runs `work` with `ctx` until it ends, with what `options` asks for around it:
///
/// 1. the health server, if any, starts (`/healthz` answers from now on);
/// 2. with leader election, the instance is standby (ready) until it holds the Lease, then
///    `work` starts; without, `work` starts at once;
/// 3. `work` receives a [`Shutdown`] that fires when `shutdown` does or, under leader
///    election, when the leadership is lost; it should stop taking work and return;
/// 4. the Lease is released, then the health server stops.
///
/// Under leader election, the gauge `upstart_leader` (1 while leading) is added to the
/// context's metrics.
///
/// Returns `Ok(())` when the work ended well (or `shutdown` fired before the leadership was
/// won), the work's error as [`Error::Operator`], or [`Error::LeadershipLost`].
pub async fn run<F, Fut, E>(
    ctx: OperatorContext,
    options: RunOptions,
    shutdown: Shutdown,
    work: F,
) -> Result<(), Error>
where
    F: FnOnce(OperatorContext, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let name = ctx.name;
    let operator_error = |e: E| Error::Operator {
        name,
        source: e.into(),
    };
    let elector = match options.leader_election {
        Some(config) => Some(LeaderElector::new(ctx.client.clone(), config)?),
        None => None,
    };
    let readiness = ctx.readiness.clone();
    let leader_gauge = match &elector {
        Some(_) => Some(ctx.metrics.register(prometheus::IntGauge::new(
            "upstart_leader",
            "1 while this instance holds the leader election Lease, 0 otherwise.",
        )?)?),
        None => None,
    };
    let server = match options.health_addr {
        Some(addr) => {
            Some(HealthServer::start(addr, ctx.metrics.clone(), readiness.clone()).await?)
        }
        None => None,
    };
    let result = match elector {
        Some(elector) => {
            readiness.set_standby(true);
            let outcome = elector
                .run_while_leader(shutdown, |token| {
                    readiness.set_standby(false);
                    if let Some(gauge) = &leader_gauge {
                        gauge.set(1);
                    }
                    work(ctx, token.shutdown().clone())
                })
                .await;
            if let Some(gauge) = &leader_gauge {
                gauge.set(0);
            }
            match outcome {
                Ok(None) => Ok(()),
                Ok(Some(result)) => result.map_err(operator_error),
                Err(e) => Err(e),
            }
        }
        None => work(ctx, shutdown).await.map_err(operator_error),
    };
    if let Some(server) = server
        && let Err(e) = server.shutdown().await
    {
        tracing::warn!(error = %e, "the metrics and health server ended with an error");
    }
    result
}

/// The whole life of an operator process: installs logging (`--log-format`, `RUST_LOG`),
/// builds the client, then [`run`]s `work` with the health server on `--metrics-addr`,
/// leader election when `--leader-elect`, and a shutdown on SIGTERM / Ctrl-C.
pub async fn run_operator<F, Fut, E>(
    args: CommonArgs,
    name: &'static str,
    work: F,
) -> Result<(), Error>
where
    F: FnOnce(OperatorContext, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    init_logging(args.log_format())?;
    let client = client_from_args(&args).await?;
    let ctx = OperatorContext::new(name, client, args);
    let options = RunOptions::from_context(&ctx);
    tracing::info!(
        operator = name,
        identity = ctx.identity(),
        namespace = ctx.args.namespace.as_deref().unwrap_or("*"),
        label_selector = ctx.args.label_selector.as_deref().unwrap_or(""),
        leader_elect = ctx.args.leader_elect,
        "starting"
    );
    let result = run(ctx, options, Shutdown::on_signal(), work).await;
    match &result {
        Ok(()) => tracing::info!(operator = name, "stopped"),
        Err(e) => tracing::error!(operator = name, error = %e, "stopped with an error"),
    }
    result
}
