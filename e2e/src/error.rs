//! The e2e harness's error type.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can make a scenario fail through the harness.
#[derive(thiserror::Error)]
pub enum Error {
    /// Starting the local cluster, reading or applying files, or waiting for Ready.
    #[error(transparent)]
    Cluster(#[from] upstart_local_cluster::Error),
    #[error("reading the kubeconfig {path} (from UPSTART_E2E_KUBECONFIG): {message}")]
    Kubeconfig { path: PathBuf, message: String },
    #[error("{action}: {source}")]
    Kube {
        action: String,
        source: Box<kube::Error>,
    },
    #[error("{api_version} {kind} is not served: {source}")]
    UnknownKind {
        api_version: String,
        kind: String,
        source: Box<kube::Error>,
    },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{what}: unexpected answer: {message}")]
    Unexpected { what: String, message: String },
    #[error(
        "step {step}: timed out after {} waiting for {description}; observed:{}",
        humantime_like(*timeout),
        observed_lines(observed)
    )]
    WaitTimeout {
        step: String,
        description: String,
        timeout: Duration,
        /// What the condition reported, each distinct observation once, oldest first.
        observed: Vec<String>,
    },
}

// A test returning `Result<(), Error>` prints the error with `Debug`; the message is what a
// reader needs, so `Debug` shows it rather than the structure.
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

fn humantime_like(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn observed_lines(observed: &[String]) -> String {
    if observed.is_empty() {
        return " nothing".to_owned();
    }
    observed.iter().map(|o| format!("\n  - {o}")).collect()
}

impl Error {
    pub(crate) fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |source| Error::Kube {
            action,
            source: Box::new(source),
        }
    }
}
