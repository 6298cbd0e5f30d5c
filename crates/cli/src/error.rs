//! The CLI's error type.

/// Everything that can make an `upstart` command fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Starting the local cluster, reading or applying files, or waiting for them.
    #[error(transparent)]
    Cluster(#[from] upstart_local_cluster::Error),
    #[error("interrupted before every applied object was Ready")]
    Interrupted,
    #[error("installing the signal handler: {0}")]
    Signal(std::io::Error),
}
