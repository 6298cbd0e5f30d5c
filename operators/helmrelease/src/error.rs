//! The operator's errors: one variant per failure site. A failure's metric label comes from its
//! variant (or, for an API request, from the step that made it), its condition reason is a
//! constant of [`crate::constants::reasons`], and its class (retry, wait, change the spec) is
//! the shared one of `upstart_failure`.

use upstart_failure::{Class, Classify, MetricLabel};

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
    /// Discovery of the served APIs failed.
    #[error("discovering the cluster's APIs: {0}")]
    Discovery(#[source] kube::Error),
    /// The release object has no namespace.
    #[error("HelmRelease has no namespace")]
    NotNamespaced,
    /// The chart could not be fetched.
    #[error("fetching the chart: {0}")]
    ChartFetch(#[source] upstart_chart_source::Error),
    /// A repository's credentials Secret does not exist (yet); read again at the next attempt.
    #[error(
        "the credentials Secret {namespace}/{secret} of repository {repository} does not exist: \
         create it in {namespace}, the operator's namespace (keys `username` and `password`, \
         `token`, `.dockerconfigjson` or `ca.crt`); it is read again at the next attempt, \
         without a restart"
    )]
    CredentialsMissing {
        repository: String,
        namespace: String,
        secret: String,
    },
    /// Rendering or planning the manifests failed.
    #[error("{0}")]
    Render(#[source] upstart_release_engine::Error),
    /// A rendered object's kind is not served by the cluster (yet).
    #[error("{api_version} {kind} is not served by the cluster")]
    UnknownKind { api_version: String, kind: String },
    /// A hook ended in failure (SPEC §2.5: the release fails and is retried with backoff).
    #[error("hook {object} ({event}) failed")]
    HookFailed { event: &'static str, object: String },
    /// A hook did not end within the release's timeout.
    #[error("hook {object} ({event}) did not finish within {seconds}s")]
    HookTimeout {
        event: &'static str,
        object: String,
        seconds: u64,
    },
    /// With `wait`, the release's objects did not become healthy within its timeout, so its
    /// post-install/post-upgrade hooks never started (as `helm install --wait` fails).
    #[error(
        "{event} hooks did not start: the release was not healthy within {seconds}s ({message})"
    )]
    NotHealthyForHooks {
        event: &'static str,
        message: String,
        seconds: u64,
    },
    /// An applied CRD did not become Established.
    #[error("{object} is not Established: {message}")]
    CrdNotEstablished { object: String, message: String },
    /// Adding or removing the finalizer failed.
    #[error(transparent)]
    Finalizer(#[from] upstart_operator_runtime::FinalizerError),
    /// Startup configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
}

/// The step of a reconcile that made a Kubernetes API request, so a failed request is labelled
/// by what it was for (`read_release`, `apply_object`, …), not as one undifferentiated "kube".
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum ApiStep {
    /// Reading the newest copy of the release itself.
    ReadRelease,
    /// Writing the release's status.
    WriteStatus,
    /// Reading a repository's credentials Secret.
    ReadCredentials,
    /// Reading a dependency (a HelmRelease or an UpstartService).
    ReadDependency,
    /// Reading a dependent that holds a deletion back.
    ReadDependent,
    /// Reading an output Secret or ConfigMap.
    ReadOutputs,
    /// Reading a `valuesFrom` Secret or ConfigMap.
    ReadValuesFrom,
    /// Reading the release's namespace or its environment.
    ReadEnvironment,
    /// Reading a live object of the inventory.
    ReadObject,
    /// Server-side applying a rendered object.
    ApplyObject,
    /// Reading or marking a hook object.
    Hook,
    /// Deleting an object (prune, teardown, hook delete policy).
    DeleteObject,
}

impl Error {
    /// A bounded `PascalCase` reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { .. } => reasons::KUBERNETES_API_ERROR,
            Error::Discovery(_) => reasons::DISCOVERY_FAILED,
            Error::NotNamespaced => reasons::NOT_NAMESPACED,
            Error::ChartFetch(_) | Error::CredentialsMissing { .. } => reasons::CHART_FETCH_FAILED,
            Error::Render(e) => match e {
                upstart_release_engine::Error::Conflict { .. } => reasons::OWNERSHIP_CONFLICT,
                upstart_release_engine::Error::ForeignNamespace { .. } => {
                    reasons::FOREIGN_NAMESPACE
                }
                upstart_release_engine::Error::ClusterScopedNotAllowed { .. } => {
                    reasons::CLUSTER_SCOPED_NOT_ALLOWED
                }
                _ => reasons::RENDER_FAILED,
            },
            Error::UnknownKind { .. } => reasons::UNKNOWN_KIND,
            Error::HookFailed { .. } => reasons::HOOK_FAILED,
            Error::HookTimeout { .. } => reasons::HOOK_TIMEOUT,
            Error::NotHealthyForHooks { .. } => reasons::HEALTH_CHECK_FAILED,
            Error::CrdNotEstablished { .. } => reasons::CRD_NOT_ESTABLISHED,
            Error::Finalizer(_) => reasons::FINALIZER_FAILED,
            Error::Config(_) => reasons::INVALID_CONFIGURATION,
        }
    }

    /// A bounded `snake_case` label for metrics (see [`MetricLabel`]).
    pub fn metric_label(&self) -> &'static str {
        MetricLabel::metric_label(self)
    }

    /// Only a spec change can fix this: set Stalled and stop retrying (see [`Classify`]).
    pub fn needs_spec_change(&self) -> bool {
        Classify::needs_spec_change(self)
    }

    /// The API server refused the request as forbidden (403): the operator's RBAC does not
    /// allow it.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Error::Kube { source: kube::Error::Api(status), .. } if status.code == 403)
    }

    /// The API server's reason for a refused request (`Forbidden`, `NotFound`), never its
    /// message (which may quote an object).
    pub fn api_status(&self) -> Option<&str> {
        match self {
            Error::Kube {
                source: kube::Error::Api(status),
                ..
            } => Some(status.reason.as_str()),
            _ => None,
        }
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
    /// The variant's name, in `snake_case`; an API failure is labelled by its step, and a
    /// render or finalizer failure by the finer label of its own error.
    fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { step, .. } => step.into(),
            Error::Render(error) => error.metric_label(),
            Error::Finalizer(error) => error.metric_label(),
            other => other.into(),
        }
    }
}

impl Classify for Error {
    /// A chart that cannot be fetched or rendered for what the spec says needs the spec to
    /// change; everything else here may heal by itself and is retried with backoff.
    fn class(&self) -> Class {
        match self {
            Error::ChartFetch(error) => error.class(),
            Error::Render(error) => error.class(),
            _ => Class::Transient,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_failure_is_labelled_by_its_step_and_other_failures_by_their_variant() {
        let status = kube::core::Status::failure("boom", "InternalError").with_code(500);
        let error = Error::kube(ApiStep::ApplyObject, "applying Deployment/web")(kube::Error::Api(
            Box::new(status),
        ));
        assert_eq!(error.metric_label(), "apply_object");
        assert_eq!(error.reason(), reasons::KUBERNETES_API_ERROR);
        assert!(error.to_string().starts_with("applying Deployment/web: "));
        let missing = Error::CredentialsMissing {
            repository: "charts".into(),
            namespace: "upstart-system".into(),
            secret: "charts-auth".into(),
        };
        assert_eq!(missing.metric_label(), "credentials_missing");
        assert_eq!(Error::NotNamespaced.metric_label(), "not_namespaced");
        assert_eq!(
            Error::HookTimeout {
                event: "pre-install",
                object: "Job/migrate".into(),
                seconds: 5
            }
            .metric_label(),
            "hook_timeout"
        );
    }

    #[test]
    fn only_chart_and_render_failures_can_need_a_spec_change() {
        let render = Error::Render(upstart_release_engine::Error::ForeignNamespace {
            object: "ConfigMap/x".into(),
            namespace: "other".into(),
            release_namespace: "pr-1".into(),
        });
        assert!(render.needs_spec_change());
        assert_eq!(render.reason(), reasons::FOREIGN_NAMESPACE);
        assert!(Error::NotNamespaced.is_transient());
    }
}
