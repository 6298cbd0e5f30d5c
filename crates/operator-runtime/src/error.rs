//! The one error type of the operator runtime, with a bounded label for metrics.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong in the operator runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig named by `--kubeconfig` could not be read or used.
    #[error("loading kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file given on the command line.
        path: PathBuf,
        /// Why it could not be used.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// Neither an in-cluster configuration nor a default kubeconfig was found.
    #[error("inferring the Kubernetes client configuration: {0}")]
    InferConfig(#[source] kube::config::InferConfigError),
    /// The Kubernetes client could not be built from its configuration.
    #[error("building the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// The metrics/health address could not be bound.
    #[error("binding the metrics and health address {addr}: {source}")]
    Bind {
        /// The address of `--metrics-addr`.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The metrics/health server stopped with an error.
    #[error("serving metrics and health: {0}")]
    Serve(#[source] std::io::Error),
    /// The metrics/health server task panicked or was cancelled.
    #[error("the metrics and health server task ended abnormally")]
    ServerTask,
    /// A metric could not be created or registered (for example a duplicate name).
    #[error("registering a metric: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The metrics could not be encoded in the Prometheus text format.
    #[error("encoding the metrics: {0}")]
    MetricsEncoding(String),
    /// The log subscriber could not be installed.
    #[error("installing the log subscriber: {0}")]
    Logging(String),
    /// The leader election timings are inconsistent.
    #[error("invalid leader election settings: {0}")]
    InvalidLeaseConfig(String),
    /// Reading or writing the leader election Lease failed.
    #[error("lease {namespace}/{name}: {source}")]
    Lease {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The Lease could not be renewed within the renew deadline, or another instance took it:
    /// this instance stopped its work and must not act as the leader any more.
    #[error(
        "lost the leadership of lease {namespace}/{name} (not renewed within {renew_deadline:?})"
    )]
    LeadershipLost {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// The renew deadline that passed.
        renew_deadline: Duration,
    },
    /// A Kubernetes Event could not be published.
    #[error("publishing an event: {0}")]
    Event(#[source] kube::Error),
    /// The operator's own work failed.
    #[error("operator {name}: {source}")]
    Operator {
        /// The operator's name.
        name: &'static str,
        /// The operator's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl upstart_failure::MetricLabel for Error {
    fn metric_label(&self) -> &'static str {
        match self {
            Error::Kubeconfig { .. } => "kubeconfig",
            Error::InferConfig(_) => "infer_config",
            Error::Client(_) => "client",
            Error::Bind { .. } => "bind",
            Error::Serve(_) => "serve",
            Error::ServerTask => "server_task",
            Error::Metrics(_) => "metrics",
            Error::MetricsEncoding(_) => "metrics_encoding",
            Error::Logging(_) => "logging",
            Error::InvalidLeaseConfig(_) => "invalid_lease_config",
            Error::Lease { .. } => "lease",
            Error::LeadershipLost { .. } => "leadership_lost",
            Error::Event(_) => "event",
            Error::Operator { .. } => "operator",
        }
    }
}

impl Error {
    /// This error's bounded metric label (see [`upstart_failure::MetricLabel`]).
    pub fn metric_label(&self) -> &'static str {
        upstart_failure::MetricLabel::metric_label(self)
    }
}
