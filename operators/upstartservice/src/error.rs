//! The operator's errors: one variant per failure site, each with a bounded metric label.

/// A reconcile failure. Messages name objects and reasons, never values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API refused or failed a request.
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// The UpstartService object has no namespace.
    #[error("UpstartService has no namespace")]
    NotNamespaced,
    /// The UpstartService has no uid yet (it was never stored).
    #[error("UpstartService has no uid")]
    NoUid,
    /// Startup configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
}

impl Error {
    /// A short, bounded `snake_case` label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube",
            Error::NotNamespaced => "not_namespaced",
            Error::NoUid => "no_uid",
            Error::Config(_) => "config",
        }
    }

    pub(crate) fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |source| Error::Kube { action, source }
    }
}

impl upstart_operator_runtime::MetricLabel for Error {
    fn metric_label(&self) -> &'static str {
        Error::metric_label(self)
    }
}
