//! The operator's errors: one variant per failure site. A failure's metric label comes from its
//! variant (or, for an API request, from the step that made it) and its Event reason is a
//! constant of [`crate::constants::reasons`].

use upstart_failure::MetricLabel;

use crate::constants::reasons;

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
    /// An object to apply could not be serialized.
    #[error("serializing {what}: {source}")]
    Serialize {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// The environment has no uid yet (it was never stored by the API server).
    #[error("UpstartEnvironment has no uid")]
    MissingUid,
    /// Adding or removing the finalizer failed.
    #[error(transparent)]
    Finalizer(#[from] upstart_operator_runtime::FinalizerError),
    /// Startup configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
}

/// The step of a reconcile that made a Kubernetes API request (its metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum ApiStep {
    /// Reading the newest copy of the environment.
    ReadEnvironment,
    /// Listing the services and releases of the environment's namespace.
    ListMembers,
    /// Reading the catalog templates.
    ReadCatalog,
    /// Reading the environment's namespace.
    ReadNamespace,
    /// Creating the environment's namespace.
    CreateNamespace,
    /// Server-side applying a service or an environment release.
    ApplyChild,
    /// Deleting a service or an environment release (teardown, removal from the spec).
    DeleteChild,
    /// Applying the ServiceAccount the environment's releases act as, or its RoleBinding.
    ApplyReleaseAccess,
    /// Marking the environment's HelmReleases asleep or awake (`spec.sleep`).
    MarkAsleep,
    /// Applying the namespace's ResourceQuota or LimitRange.
    ApplyQuota,
    /// Deleting the namespace at teardown.
    DeleteNamespace,
    /// Deleting the environment when its ttl passed.
    Expire,
    /// Writing the environment's status.
    WriteStatus,
}

impl Error {
    /// A short, bounded `snake_case` label for metrics (see [`MetricLabel`]).
    pub fn metric_label(&self) -> &'static str {
        MetricLabel::metric_label(self)
    }

    /// A bounded `PascalCase` reason for Events.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { .. } => reasons::KUBERNETES_API_ERROR,
            Error::Serialize { .. } => reasons::SERIALIZE_FAILED,
            Error::MissingUid => reasons::MISSING_UID,
            Error::Finalizer(_) => reasons::FINALIZER_FAILED,
            Error::Config(_) => reasons::INVALID_CONFIGURATION,
        }
    }

    /// What failed, for an Event: the action and the API's status code, never the API's
    /// message (it may quote an applied object, and overrides may hold secret values).
    pub fn summary(&self) -> String {
        match self {
            Error::Kube {
                action,
                source: kube::Error::Api(status),
                ..
            } => format!("{action} failed ({} {})", status.code, status.reason),
            Error::Kube { action, .. } => format!("{action} failed"),
            other => other.to_string(),
        }
    }

    /// A write lost a race with another (409): retried at once, not worth an Event.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Kube { source: kube::Error::Api(status), .. } if status.code == 409)
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
            Error::Finalizer(error) => error.metric_label(),
            other => other.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_summary_names_the_action_and_code_but_not_the_api_message() {
        let status =
            kube::core::Status::failure("spec.values.password: hunter2 invalid", "Invalid")
                .with_code(422);
        let error = Error::Kube {
            step: ApiStep::ApplyChild,
            action: "applying UpstartService web".into(),
            source: kube::Error::Api(Box::new(status)),
        };
        let summary = error.summary();
        assert_eq!(summary, "applying UpstartService web failed (422 Invalid)");
        assert_eq!(error.reason(), "KubernetesApiError");
    }
}
