//! The crate's one error type, split into transient failures (retry with backoff) and
//! failures only a spec or configuration change can fix.
//!
//! No variant ever carries a credential: URLs are stored without user info or query string
//! (see [`redact_url`]), and registry/HTTP client errors are reduced to their kind and status.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while resolving and fetching a chart.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The repository configuration itself is invalid (found by [`crate::ChartSource::new`]).
    #[error("invalid chart repository configuration: {0}")]
    Config(String),

    /// The chart reference cannot be parsed.
    #[error("invalid chart reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },

    /// `ALIAS/NAME` with an alias the configuration does not define.
    #[error(
        "chart reference {reference:?} uses repository alias {alias:?}, which is not configured (configured: {known})"
    )]
    UnknownAlias {
        reference: String,
        alias: String,
        known: String,
    },

    /// A direct `oci://` or `https://` reference to a repository that is not configured.
    #[error(
        "chart reference {reference:?} names a repository that is not configured; unlisted repositories are refused unless the chart repository configuration sets `allowUnlisted: true`"
    )]
    UnlistedRepository { reference: String },

    /// An `imageDigest` image on a registry no configured OCI repository covers.
    #[error(
        "image {image:?} is on a registry path no configured OCI repository covers; add an oci:// repository for its registry (with its credentials) to the chart repository configuration, or set `allowUnlisted: true`"
    )]
    UnlistedImageRegistry { image: String },

    /// An `imageDigest` image whose tag the registry does not have (yet: retried).
    #[error(
        "image {image:?} not found in its registry; check the repository and tag, or push it: the lookup is retried"
    )]
    ImageNotFound { image: String },

    /// A `file:` chart outside every configured local root (or with `..` in its path).
    #[error("local chart {reference:?} is refused: {reason}")]
    LocalChartRefused { reference: String, reason: String },

    /// A `file:` chart that does not exist under the local roots.
    #[error("local chart {reference:?} not found under the configured local chart roots")]
    LocalChartNotFound { reference: String },

    /// The `version` field is not a valid Helm version constraint.
    #[error("invalid version constraint {constraint:?}: {reason}")]
    InvalidConstraint { constraint: String, reason: String },

    /// The repository does not have a chart of that name (yet: retried, see `is_transient`).
    #[error(
        "chart {chart:?} not found in repository {repository}; check the chart name, or publish the chart there: the fetch is retried and reads the repository again"
    )]
    ChartNotFound { chart: String, repository: String },

    /// The chart exists, but no version satisfies the constraint (yet: retried).
    #[error(
        "no version of chart {chart:?} in {repository} matches {constraint:?}; available: {available}; the fetch is retried and reads the repository again"
    )]
    NoMatchingVersion {
        chart: String,
        repository: String,
        constraint: String,
        available: String,
    },

    /// The downloaded archive's sha256 differs from the one the index or manifest announced.
    #[error(
        "chart {chart:?} {version}: archive digest sha256:{actual} does not match the expected sha256:{expected}"
    )]
    DigestMismatch {
        chart: String,
        version: String,
        expected: String,
        actual: String,
    },

    /// The archive contains something that could escape or abuse the cache.
    #[error("unsafe chart archive for {chart:?}: {reason}")]
    UnsafeArchive { chart: String, reason: String },

    /// The archive is not a well-formed chart (layout, Chart.yaml, name or version).
    #[error("invalid chart archive for {chart:?}: {reason}")]
    InvalidArchive { chart: String, reason: String },

    /// A configured limit was exceeded.
    #[error("{what} exceeds the limit of {limit} (setting limits.{setting})")]
    LimitExceeded {
        what: String,
        limit: u64,
        setting: &'static str,
    },

    /// `index.yaml` could not be parsed.
    #[error("invalid index.yaml from {repository}: {reason}")]
    InvalidIndex { repository: String, reason: String },

    /// The server refused our credentials (or asked for some): fix the configured Secret.
    #[error("{url} refused access (HTTP {status}); check the repository's credentials")]
    AccessDenied { url: String, status: u16 },

    /// An HTTP status that is neither success nor an authentication problem.
    #[error("{url} answered HTTP {status}")]
    HttpStatus { url: String, status: u16 },

    /// The server's TLS certificate is not trusted: configure the repository's `caBundle`.
    #[error(
        "the TLS certificate of {url} is not trusted; configure the repository's caBundle (or ca.crt in its credentials Secret)"
    )]
    UntrustedCertificate { url: String },

    /// A connection, TLS or protocol failure talking to a repository.
    #[error("fetching {url}: {kind} error")]
    Network { url: String, kind: &'static str },

    /// A fetch took longer than `limits.fetchTimeout`.
    #[error("fetching {url} timed out after {}", humantime::format_duration(*.timeout))]
    Timeout { url: String, timeout: Duration },

    /// An OCI registry error that is not a plain "not found".
    #[error("OCI registry {registry}: {message}")]
    Registry {
        registry: String,
        message: String,
        transient: bool,
    },

    /// A dependency of the chart (listed in `Chart.yaml`, not vendored) could not be fetched.
    #[error("chart {chart:?}: dependency {dependency:?}: {source}")]
    Dependency {
        chart: String,
        dependency: String,
        source: Box<Error>,
    },

    /// A dependency names a repository that is not configured, and unlisted ones are refused.
    #[error(
        "chart {chart:?} depends on {dependency:?} from {repository}, which is not a configured repository; add it to the chart repository configuration's repositories, set `allowUnlisted: true`, or vendor the dependency in the chart's charts/ directory (helm dependency build before packaging)"
    )]
    UnlistedDependencyRepository {
        chart: String,
        dependency: String,
        repository: String,
    },

    /// A dependency's `@alias` or `alias:NAME` repository is not a configured alias.
    #[error(
        "chart {chart:?} depends on {dependency:?} from repository alias {alias:?}, which is not configured (configured: {known}); configure a repository of that name or vendor the dependency in charts/"
    )]
    UnknownDependencyAlias {
        chart: String,
        dependency: String,
        alias: String,
        known: String,
    },

    /// A dependency entry that cannot be resolved as written (its repository or path).
    #[error("chart {chart:?}: dependency {dependency:?}: {reason}")]
    InvalidDependency {
        chart: String,
        dependency: String,
        reason: String,
    },

    /// `Chart.lock` does not match `Chart.yaml`'s dependencies (helm refuses it too).
    #[error(
        "chart {chart:?}: Chart.lock is out of sync with the dependencies in Chart.yaml (lock digest {lock_digest:?}, the dependencies hash to {dependencies_digest}); run helm dependency update and publish the chart again"
    )]
    ChartLockOutOfSync {
        chart: String,
        lock_digest: String,
        dependencies_digest: String,
    },

    /// A git ref (branch, tag, `HEAD`) the repository does not have, or no longer has: a
    /// release that had the chart keeps it (see [`Error::keeps_last_chart`]).
    #[error(
        "git ref {reference:?} not found in {repository}; check `ref=` in the chart reference, or push the branch or tag: the lookup is retried every interval"
    )]
    GitRefNotFound {
        repository: String,
        reference: String,
    },

    /// git failed talking to a repository or reading a commit (its message scrubbed of URL
    /// user info).
    #[error("git repository {repository}: {message}")]
    Git {
        repository: String,
        message: String,
        transient: bool,
    },

    /// Reading or writing the on-disk cache failed.
    #[error("chart cache {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl upstart_failure::Classify for Error {
    /// Transient when retrying later (with backoff) may succeed without any change of spec or
    /// configuration: network failures, timeouts, 5xx/429 answers, cache I/O, and a chart or
    /// version a repository does not have yet (it may be published a minute later). Anything
    /// else needs the reference, the configuration or the chart to change.
    fn class(&self) -> upstart_failure::Class {
        let transient = match self {
            Error::Dependency { source, .. } => source.class() == upstart_failure::Class::Transient,
            Error::Network { .. }
            | Error::Timeout { .. }
            | Error::Cache { .. }
            | Error::ChartNotFound { .. }
            | Error::ImageNotFound { .. }
            | Error::GitRefNotFound { .. }
            | Error::NoMatchingVersion { .. } => true,
            Error::HttpStatus { status, .. } => is_transient_status(*status),
            Error::Registry { transient, .. } | Error::Git { transient, .. } => *transient,
            Error::Config(_)
            | Error::InvalidReference { .. }
            | Error::UnknownAlias { .. }
            | Error::UnlistedRepository { .. }
            | Error::UnlistedImageRegistry { .. }
            | Error::LocalChartRefused { .. }
            | Error::LocalChartNotFound { .. }
            | Error::InvalidConstraint { .. }
            | Error::DigestMismatch { .. }
            | Error::UnsafeArchive { .. }
            | Error::InvalidArchive { .. }
            | Error::LimitExceeded { .. }
            | Error::InvalidIndex { .. }
            | Error::AccessDenied { .. }
            | Error::UntrustedCertificate { .. }
            | Error::UnlistedDependencyRepository { .. }
            | Error::UnknownDependencyAlias { .. }
            | Error::InvalidDependency { .. }
            | Error::ChartLockOutOfSync { .. } => false,
        };
        if transient {
            upstart_failure::Class::Transient
        } else {
            upstart_failure::Class::NeedsSpecChange
        }
    }
}

impl upstart_failure::MetricLabel for Error {
    fn metric_label(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::InvalidReference { .. } => "invalid_reference",
            Error::UnknownAlias { .. } => "unknown_alias",
            Error::UnlistedRepository { .. } => "unlisted_repository",
            Error::UnlistedImageRegistry { .. } => "unlisted_image_registry",
            Error::ImageNotFound { .. } => "image_not_found",
            Error::LocalChartRefused { .. } => "local_chart_refused",
            Error::LocalChartNotFound { .. } => "local_chart_not_found",
            Error::InvalidConstraint { .. } => "invalid_constraint",
            Error::ChartNotFound { .. } => "chart_not_found",
            Error::NoMatchingVersion { .. } => "no_matching_version",
            Error::DigestMismatch { .. } => "digest_mismatch",
            Error::UnsafeArchive { .. } => "unsafe_archive",
            Error::InvalidArchive { .. } => "invalid_archive",
            Error::LimitExceeded { .. } => "limit_exceeded",
            Error::InvalidIndex { .. } => "invalid_index",
            Error::AccessDenied { .. } => "access_denied",
            Error::HttpStatus { .. } => "http_status",
            Error::UntrustedCertificate { .. } => "untrusted_certificate",
            Error::Network { .. } => "network",
            Error::Timeout { .. } => "timeout",
            Error::Registry { .. } => "registry",
            Error::Cache { .. } => "cache",
            Error::Dependency { .. } => "dependency",
            Error::UnlistedDependencyRepository { .. } => "unlisted_dependency_repository",
            Error::UnknownDependencyAlias { .. } => "unknown_dependency_alias",
            Error::InvalidDependency { .. } => "invalid_dependency",
            Error::ChartLockOutOfSync { .. } => "chart_lock_out_of_sync",
            Error::GitRefNotFound { .. } => "git_ref_not_found",
            Error::Git { .. } => "git",
        }
    }
}

impl Error {
    /// The repository when this failure means it could not be reached or answered with a
    /// server error (connection, timeout, 5xx, 408, 429): an outage, during which a chart
    /// fetched before may be served instead (see [`crate::Stale`]). `None` for answers to
    /// believe (not found, access denied, a bad index or archive) and local failures.
    pub fn outage_repository(&self) -> Option<String> {
        let url = match self {
            Error::HttpStatus { url, status } if is_transient_status(*status) => url,
            Error::Network { url, .. } | Error::Timeout { url, .. } => url,
            Error::Registry {
                registry,
                transient: true,
                ..
            }
            | Error::Git {
                repository: registry,
                transient: true,
                ..
            } => return Some(registry.clone()),
            Error::Dependency { source, .. } => return source.outage_repository(),
            _ => return None,
        };
        let repository = url.strip_suffix("/index.yaml").unwrap_or(url);
        Some(repository.to_owned())
    }

    /// Where a release that had its chart keeps it (with [`crate::Stale`] saying why): an
    /// outage ([`Error::outage_repository`]), or a git ref that was deleted (the branch of a
    /// merged pull request, say): the repository, and whether it is the ref that is gone.
    pub fn keeps_last_chart(&self) -> Option<(String, bool)> {
        match self {
            Error::GitRefNotFound { repository, .. } => Some((repository.clone(), true)),
            Error::Dependency { source, .. } => source.keeps_last_chart(),
            other => other.outage_repository().map(|r| (r, false)),
        }
    }

    pub(crate) fn cache(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Cache {
            path: path.into(),
            source,
        }
    }

    /// Classifies a `reqwest` error without its message (which may echo the URL with a query).
    pub(crate) fn from_reqwest(url: &str, error: &reqwest::Error) -> Self {
        if let Some(status) = error.status() {
            return Error::from_status(url, status.as_u16());
        }
        if is_certificate_error(error) {
            return Error::UntrustedCertificate {
                url: redact_url(url),
            };
        }
        let kind = if error.is_timeout() {
            "timeout"
        } else if error.is_connect() {
            "connection"
        } else if error.is_body() || error.is_decode() {
            "response body"
        } else if error.is_redirect() {
            "redirect"
        } else if error.is_request() {
            "request"
        } else {
            "transport"
        };
        Error::Network {
            url: redact_url(url),
            kind,
        }
    }

    pub(crate) fn from_status(url: &str, status: u16) -> Self {
        let url = redact_url(url);
        if status == 401 || status == 403 {
            Error::AccessDenied { url, status }
        } else {
            Error::HttpStatus { url, status }
        }
    }
}

/// Whether a rustls certificate verification failure is somewhere in the error's chain. `io::Error`
/// hides its payload from `source()`, so each level is also looked into through `get_ref`.
fn is_certificate_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            );
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && is_certificate_error(inner)
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// 5xx, 408 (request timeout) and 429 (too many requests) are worth retrying.
fn is_transient_status(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

/// A URL as it may appear in errors and logs: no user info, query or fragment (signed archive
/// URLs carry tokens in the query).
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => {
            // Not a URL we can parse: keep only what precedes any query or user info.
            let cut = url.split(['?', '#']).next().unwrap_or_default();
            match cut.rsplit_once('@') {
                Some((_, host)) => host.to_owned(),
                None => cut.to_owned(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use upstart_failure::{Classify, MetricLabel};

    #[test]
    fn redacted_urls_lose_user_info_and_query() {
        assert_eq!(
            redact_url("https://user:secret@charts.example.com/a.tgz?sig=abc#x"),
            "https://charts.example.com/a.tgz"
        );
        assert_eq!(redact_url("not a url?token=1"), "not a url");
    }

    #[test]
    fn server_errors_are_transient_and_client_errors_are_not() {
        assert!(Error::from_status("http://h/x", 503).is_transient());
        assert!(Error::from_status("http://h/x", 429).is_transient());
        assert!(!Error::from_status("http://h/x", 404).is_transient());
        let denied = Error::from_status("http://h/x", 401);
        assert!(!denied.is_transient());
        assert_eq!(denied.metric_label(), "access_denied");
    }
}
