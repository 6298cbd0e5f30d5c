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
    MissingCredentials {
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

impl Error {
    /// A bounded `PascalCase` reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "KubernetesApiError",
            Error::Discovery(_) => "DiscoveryFailed",
            Error::NotNamespaced => "NotNamespaced",
            Error::ChartFetch(_) | Error::MissingCredentials { .. } => "ChartFetchFailed",
            Error::Render(e) => match e {
                upstart_release_engine::Error::Conflict { .. } => "OwnershipConflict",
                upstart_release_engine::Error::ForeignNamespace { .. } => "ForeignNamespace",
                upstart_release_engine::Error::ClusterScopedNotAllowed { .. } => {
                    "ClusterScopedNotAllowed"
                }
                _ => "RenderFailed",
            },
            Error::UnknownKind { .. } => "UnknownKind",
            Error::HookFailed { .. } => "HookFailed",
            Error::HookTimeout { .. } => "HookTimeout",
            Error::NotHealthyForHooks { .. } => "HealthCheckFailed",
            Error::CrdNotEstablished { .. } => "CrdNotEstablished",
            Error::Finalizer(_) => "FinalizerFailed",
            Error::Config(_) => "InvalidConfiguration",
        }
    }

    /// A short, bounded `snake_case` label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube",
            Error::Discovery(_) => "discovery",
            Error::NotNamespaced => "not_namespaced",
            Error::ChartFetch(_) => "chart_fetch",
            Error::MissingCredentials { .. } => "credentials_missing",
            Error::Render(e) => e.metric_label(),
            Error::UnknownKind { .. } => "unknown_kind",
            Error::HookFailed { .. } => "hook_failed",
            Error::HookTimeout { .. } => "hook_timeout",
            Error::NotHealthyForHooks { .. } => "not_healthy_for_hooks",
            Error::CrdNotEstablished { .. } => "crd_not_established",
            Error::Finalizer(e) => e.metric_label(),
            Error::Config(_) => "config",
        }
    }

    /// Only a spec change can fix this: set Stalled and stop retrying.
    pub fn needs_spec_change(&self) -> bool {
        match self {
            Error::ChartFetch(e) => !e.is_transient(),
            Error::Render(e) => e.needs_spec_change(),
            _ => false,
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
