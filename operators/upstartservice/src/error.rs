//! The operator's errors: one variant per failure site. A failure's metric label comes from its
//! variant, or, for an API request, from the step that made it.

use upstart_failure::MetricLabel;

/// A reconcile failure. Messages name objects and reasons, never values.
#[derive(Debug, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Error {
    /// The Kubernetes API refused or failed a request made by `step`.
    #[error("{action}: {source}")]
    Kube {
        step: ApiStep,
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

/// The step of a reconcile that made a Kubernetes API request (its metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum ApiStep {
    /// Reading the newest copy of the service.
    ReadService,
    /// Listing the services and releases of the namespace (the graph), while the watch caches
    /// do not hold their first list yet.
    ListNamespace,
    /// Server-side applying a child HelmRelease.
    ApplyChild,
    /// Deleting a child HelmRelease.
    DeleteChild,
    /// Reading an exported output Secret or ConfigMap.
    ReadOutputs,
    /// Writing the service's status.
    WriteStatus,
}

impl Error {
    /// A short, bounded `snake_case` label for metrics (see [`MetricLabel`]).
    pub fn metric_label(&self) -> &'static str {
        MetricLabel::metric_label(self)
    }

    /// Maps a failed API request of `step` into an error saying what it was doing.
    pub(crate) fn kube(
        step: ApiStep,
        action: impl Into<String>,
    ) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |source| Error::Kube {
            step,
            action,
            source,
        }
    }
}

impl MetricLabel for Error {
    /// The variant's name in `snake_case`; an API failure is labelled by its step.
    fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { step, .. } => step.into(),
            other => other.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_failure_is_labelled_by_its_step_and_other_failures_by_their_variant() {
        let status = kube::core::Status::failure("boom", "InternalError").with_code(500);
        let error = Error::kube(ApiStep::ApplyChild, "applying HelmRelease web-db")(
            kube::Error::Api(Box::new(status)),
        );
        assert_eq!(error.metric_label(), "apply_child");
        assert_eq!(Error::NotNamespaced.metric_label(), "not_namespaced");
        assert_eq!(Error::NoUid.metric_label(), "no_uid");
    }
}
