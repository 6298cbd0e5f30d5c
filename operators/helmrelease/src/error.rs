//! The operator's errors: one variant per failure site, each with a bounded metric label.

/// A reconcile failure. Messages name objects and reasons, never values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API refused or failed a request.
    #[error("{action}: {source}")]
    Kube {
        action: &'static str,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// A short, bounded label for metrics and condition reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube",
        }
    }
}
