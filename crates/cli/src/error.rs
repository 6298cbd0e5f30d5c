//! The CLI's error type.

/// Everything that can make an `upstart` command fail (a failed validation is not an error:
/// it is the command's answer, with its own exit code).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Starting the local cluster, reading or applying files, or waiting for them.
    #[error(transparent)]
    Cluster(#[from] upstart_local_cluster::Error),
    #[error("interrupted before every applied object was Ready")]
    Interrupted,
    #[error("installing the signal handler: {0}")]
    Signal(std::io::Error),
    /// The arguments do not make sense together.
    #[error("{0}")]
    Usage(String),
    /// A kubeconfig given with --kubeconfig that cannot be read or used.
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// No kubeconfig found (KUBECONFIG, ~/.kube/config, in-cluster).
    #[error("no cluster configuration: {0}")]
    InferConfig(#[source] kube::config::InferConfigError),
    /// A request to the cluster failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// An object asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The web view (`upstart ui`) could not listen.
    #[error("web view: {what}: {source}")]
    Ui {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `upstart charts`: serving, packing or unpacking a chart directory.
    #[error(transparent)]
    Charts(#[from] upstart_chart_repo::Error),
    /// `status --watch --timeout` ran out.
    #[error("not Ready after {0}")]
    Timeout(String),
}
