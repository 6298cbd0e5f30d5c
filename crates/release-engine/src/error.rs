//! The crate's one error type. Messages name objects (`Deployment/web`) and reasons, never a
//! value from the values document or a rendered manifest.

use std::path::PathBuf;

/// Everything that can go wrong while rendering and planning a release.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The helm binary could not be run at all (startup error).
    #[error("helm binary {path} cannot be run: {reason}")]
    HelmUnavailable { path: PathBuf, reason: String },

    /// The helm binary runs but is not Helm v3.19+ or v4.
    #[error(
        "helm binary {path} is {version}; Helm v3.19 or newer (v3 or v4) is required (older releases lack the fixes for chart archive bombs and hostile schemas)"
    )]
    HelmVersionUnsupported { path: PathBuf, version: String },

    /// The chart directory handed to the renderer does not exist.
    #[error("chart directory {path} does not exist")]
    ChartMissing { path: PathBuf },

    /// Starting or talking to the helm process failed.
    #[error("running helm failed: {0}")]
    HelmIo(#[source] std::io::Error),

    /// helm ran out of memory (under the renderer's limit, or killed by the kernel): the
    /// chart or values make it need more than the limit allows.
    #[error(
        "helm ran out of memory rendering the chart (limit {limit_mib} MiB of data per helm process, the operator's --helm-memory-limit): make the chart or its values smaller, or raise the limit"
    )]
    RenderOutOfMemory { limit_mib: u64 },

    /// `helm template` exited non-zero; `stderr` has been scrubbed of values.
    #[error("helm template failed ({status}): {stderr}")]
    HelmFailed { status: String, stderr: String },

    /// `helm template` ran longer than allowed and was killed.
    #[error("helm template did not finish within {seconds}s and was killed")]
    HelmTimeout { seconds: u64 },

    /// `helm template` wrote more than allowed and was killed.
    #[error("helm template output exceeds the limit of {limit} bytes")]
    RenderTooLarge { limit: usize },

    /// Helm wrote something that is not UTF-8.
    #[error("helm template output is not UTF-8")]
    RenderNotUtf8,

    /// The values document could not be serialised for helm.
    #[error("values document cannot be serialised: {0}")]
    Values(String),

    /// The rendered manifest is larger than the configured limit.
    #[error("rendered manifest is {size} bytes, over the limit of {limit}")]
    ManifestTooLarge { size: usize, limit: usize },

    /// The rendered manifest has more documents than the configured limit.
    #[error("rendered manifest has more than {limit} documents")]
    TooManyDocuments { limit: usize },

    /// A rendered document is not valid YAML, or not YAML kubectl would convert.
    #[error("{source_file}: invalid YAML: {detail}")]
    InvalidYaml { source_file: String, detail: String },

    /// The rendered manifest expands (through aliases) past a conversion limit.
    #[error(
        "{source_file}: the rendered manifest expands to more than {limit} {what} (YAML aliases counted each time they are used); the operator refuses it to bound its memory"
    )]
    YamlTooLarge {
        source_file: String,
        what: &'static str,
        limit: usize,
    },

    /// A rendered document is not a Kubernetes object.
    #[error("{object}: {reason}")]
    InvalidObject { object: String, reason: String },

    /// The same object is rendered twice.
    #[error("{object} is rendered more than once")]
    DuplicateObject { object: String },

    /// A namespaced object names a namespace other than the release's.
    #[error(
        "{object} names namespace {namespace:?}; objects of this release must be in namespace {release_namespace:?}"
    )]
    ForeignNamespace {
        object: String,
        namespace: String,
        release_namespace: String,
    },

    /// A cluster-scoped object whose kind is not on the allow-list.
    #[error(
        "{object} is cluster-scoped and {kind} is not on the allow-list of cluster-scoped kinds"
    )]
    ClusterScopedNotAllowed { object: String, kind: String },

    /// Discovery does not know the kind and the render does not define it.
    #[error("{object}: the cluster does not serve {api_version} {kind}")]
    UnknownKind {
        object: String,
        api_version: String,
        kind: String,
    },

    /// A live object belongs to another release: never taken over.
    #[error("{object} already exists and belongs to release {owner}")]
    Conflict { object: String, owner: String },
}

impl upstart_failure::MetricLabel for Error {
    fn metric_label(&self) -> &'static str {
        match self {
            Error::HelmUnavailable { .. } => "helm_unavailable",
            Error::HelmVersionUnsupported { .. } => "helm_version",
            Error::ChartMissing { .. } => "chart_missing",
            Error::HelmIo(_) => "helm_io",
            Error::HelmFailed { .. } => "helm_failed",
            Error::HelmTimeout { .. } => "helm_timeout",
            Error::RenderOutOfMemory { .. } => "render_out_of_memory",
            Error::RenderTooLarge { .. } => "render_too_large",
            Error::RenderNotUtf8 => "render_not_utf8",
            Error::Values(_) => "values",
            Error::ManifestTooLarge { .. } => "manifest_too_large",
            Error::TooManyDocuments { .. } => "too_many_documents",
            Error::InvalidYaml { .. } => "invalid_yaml",
            Error::YamlTooLarge { .. } => "yaml_too_large",
            Error::InvalidObject { .. } => "invalid_object",
            Error::DuplicateObject { .. } => "duplicate_object",
            Error::ForeignNamespace { .. } => "foreign_namespace",
            Error::ClusterScopedNotAllowed { .. } => "cluster_scoped_not_allowed",
            Error::UnknownKind { .. } => "unknown_kind",
            Error::Conflict { .. } => "conflict",
        }
    }
}

impl upstart_failure::Classify for Error {
    /// Only a change of the release (its spec, chart or values) can fix this, so the
    /// operator sets a condition and stops retrying until the spec changes. Everything
    /// else may heal by itself (a CRD installed later, a conflicting object removed, a
    /// transient process failure) and is retried with backoff.
    fn class(&self) -> upstart_failure::Class {
        match self {
            Error::HelmFailed { .. }
            | Error::RenderOutOfMemory { .. }
            | Error::RenderTooLarge { .. }
            | Error::RenderNotUtf8
            | Error::ManifestTooLarge { .. }
            | Error::TooManyDocuments { .. }
            | Error::InvalidYaml { .. }
            | Error::YamlTooLarge { .. }
            | Error::InvalidObject { .. }
            | Error::DuplicateObject { .. }
            | Error::ForeignNamespace { .. }
            | Error::ClusterScopedNotAllowed { .. } => upstart_failure::Class::NeedsSpecChange,
            _ => upstart_failure::Class::Transient,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
