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

impl Error {
    /// A short, bounded `snake_case` label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube",
            Error::Serialize { .. } => "serialize",
            Error::MissingUid => "missing_uid",
            Error::Finalizer(e) => e.metric_label(),
            Error::Config(_) => "config",
        }
    }

    /// A bounded `PascalCase` reason for Events.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "KubernetesApiError",
            Error::Serialize { .. } => "SerializeFailed",
            Error::MissingUid => "MissingUid",
            Error::Finalizer(_) => "FinalizerFailed",
            Error::Config(_) => "InvalidConfiguration",
        }
    }

    /// What failed, for an Event: the action and the API's status code, never the API's
    /// message (it may quote an applied object, and overrides may hold secret values).
    pub fn summary(&self) -> String {
        match self {
            Error::Kube {
                action,
                source: kube::Error::Api(status),
            } => format!("{action} failed ({} {})", status.code, status.reason),
            Error::Kube { action, .. } => format!("{action} failed"),
            other => other.to_string(),
        }
    }

    /// A write lost a race with another (409): retried at once, not worth an Event.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Kube { source: kube::Error::Api(status), .. } if status.code == 409)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_summary_names_the_action_and_code_but_not_the_api_message() {
        let status =
            kube::core::Status::failure("spec.values.password: hunter2 invalid", "Invalid")
                .with_code(422);
        let error = Error::Kube {
            action: "applying UpstartService web".into(),
            source: kube::Error::Api(Box::new(status)),
        };
        let summary = error.summary();
        assert_eq!(summary, "applying UpstartService web failed (422 Invalid)");
        assert_eq!(error.reason(), "KubernetesApiError");
    }
}
