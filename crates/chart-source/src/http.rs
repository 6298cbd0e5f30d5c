//! HTTP chart repositories: `index.yaml` read at most once per TTL (conditionally, with ETag /
//! If-Modified-Since), and archive downloads with size limits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{self, HeaderValue};
use serde::Deserialize;
use tokio::sync::Mutex as AsyncMutex;

use crate::error::redact_url;
use crate::{Credentials, Error, Limits, RepositoryConfig};

/// The part of `index.yaml` this crate uses.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Index {
    #[serde(default)]
    pub entries: HashMap<String, Vec<IndexEntry>>,
}

/// One chart version in `index.yaml`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct IndexEntry {
    pub version: String,
    #[serde(default)]
    pub urls: Vec<String>,
    #[serde(default)]
    pub digest: Option<String>,
}

#[derive(Debug)]
struct CachedIndex {
    index: Arc<Index>,
    read_at: Instant,
    etag: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
}

/// How requests to the repository's own origin are authorised.
#[derive(Clone)]
enum Auth {
    Basic(String, String),
    Bearer(String),
}

/// One HTTP chart repository.
pub(crate) struct HttpRepo {
    /// The repository URL for messages (no credentials, no query).
    pub display: String,
    base: reqwest::Url,
    client: reqwest::Client,
    auth: Option<Auth>,
    index_ttl: Duration,
    missing_reread_after: Duration,
    limits: Limits,
    index: AsyncMutex<Option<CachedIndex>>,
}

impl std::fmt::Debug for HttpRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRepo")
            .field("url", &self.display)
            .finish_non_exhaustive()
    }
}

/// The certificates of a PEM bundle; an error when it holds none or is not PEM.
pub(crate) fn parse_ca_bundle(pem: &str) -> Result<Vec<reqwest::Certificate>, Error> {
    let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
        .map_err(|_| Error::Config("a CA bundle is not valid PEM".into()))?;
    if certificates.is_empty() {
        return Err(Error::Config("a CA bundle holds no certificate".into()));
    }
    Ok(certificates)
}

/// Builds a reqwest client trusting the system roots plus `ca_bundles` (PEM).
pub(crate) fn client(ca_bundles: &[&str], limits: &Limits) -> Result<reqwest::Client, Error> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(limits.fetch_timeout)
        .user_agent(concat!("upstart-chart-source/", env!("CARGO_PKG_VERSION")));
    for pem in ca_bundles {
        builder = builder.tls_certs_merge(parse_ca_bundle(pem)?);
    }
    builder
        .build()
        .map_err(|_| Error::Config("cannot build the HTTP client (TLS setup failed)".into()))
}

impl HttpRepo {
    pub(crate) fn new(
        url: &str,
        credentials: Option<&Credentials>,
        ca_bundles: &[&str],
        config: &RepositoryConfig,
    ) -> Result<Self, Error> {
        let limits = &config.limits;
        let trimmed = url.trim_end_matches('/');
        let base = reqwest::Url::parse(&format!("{trimmed}/"))
            .map_err(|e| Error::Config(format!("repository URL {:?}: {e}", redact_url(url))))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(Error::Config(format!(
                "repository URL {:?} must be http(s)://HOST/…",
                redact_url(url)
            )));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(Error::Config(format!(
                "repository URL {:?} carries credentials; use credentialsSecret instead",
                redact_url(url)
            )));
        }
        let auth = credentials.and_then(|c| {
            c.basic
                .as_ref()
                .map(|b| Auth::Basic(b.username.clone(), b.password.clone()))
                .or_else(|| c.bearer_token.clone().map(Auth::Bearer))
        });
        Ok(Self {
            display: trimmed.to_owned(),
            base,
            client: client(ca_bundles, limits)?,
            auth,
            index_ttl: config.index_ttl,
            missing_reread_after: config.missing_reread_after,
            limits: limits.clone(),
            index: AsyncMutex::new(None),
        })
    }

    /// Credentials go only to the repository's own origin (as Helm does without
    /// `--pass-credentials`): an index may point archives at another host.
    fn authorize(
        &self,
        request: reqwest::RequestBuilder,
        url: &reqwest::Url,
    ) -> reqwest::RequestBuilder {
        if url.origin() != self.base.origin() {
            return request;
        }
        match &self.auth {
            Some(Auth::Basic(user, password)) => request.basic_auth(user, Some(password)),
            Some(Auth::Bearer(token)) => request.bearer_auth(token),
            None => request,
        }
    }

    /// The repository's index, read again only when older than the TTL, and then
    /// conditionally: a `304 Not Modified` keeps the cached one.
    pub(crate) async fn index(&self) -> Result<Arc<Index>, Error> {
        self.index_younger_than(self.index_ttl).await
    }

    /// The index once a chart or version was missing from it: read again (conditionally) when
    /// older than `missingRereadAfter`, so a chart published after the last read is found
    /// without waiting for the TTL, while a release asking for a chart that does not exist
    /// costs the repository at most one request per that period.
    pub(crate) async fn index_for_missing(&self) -> Result<Arc<Index>, Error> {
        self.index_younger_than(self.index_ttl.min(self.missing_reread_after))
            .await
    }

    async fn index_younger_than(&self, max_age: Duration) -> Result<Arc<Index>, Error> {
        // Held across the fetch, so concurrent callers share one request.
        let mut cached = self.index.lock().await;
        if let Some(c) = cached.as_ref()
            && c.read_at.elapsed() < max_age
        {
            return Ok(Arc::clone(&c.index));
        }
        let url = self
            .base
            .join("index.yaml")
            .map_err(|e| Error::Config(format!("repository URL {}: {e}", self.display)))?;
        let mut request = self.authorize(self.client.get(url.clone()), &url);
        if let Some(c) = cached.as_ref() {
            if let Some(etag) = &c.etag {
                request = request.header(header::IF_NONE_MATCH, etag.clone());
            }
            if let Some(modified) = &c.last_modified {
                request = request.header(header::IF_MODIFIED_SINCE, modified.clone());
            }
        }
        let timeout = self.limits.fetch_timeout;
        let fetched = timed(url.as_str(), timeout, async {
            let response = request
                .send()
                .await
                .map_err(|e| Error::from_reqwest(url.as_str(), &e))?;
            if response.status() == reqwest::StatusCode::NOT_MODIFIED {
                return Ok(None);
            }
            if !response.status().is_success() {
                return Err(Error::from_status(url.as_str(), response.status().as_u16()));
            }
            let etag = response.headers().get(header::ETAG).cloned();
            let last_modified = response.headers().get(header::LAST_MODIFIED).cloned();
            let body = read_limited(
                response,
                url.as_str(),
                self.limits.max_index_bytes,
                "maxIndexBytes",
                &format!("index.yaml of {}", self.display),
            )
            .await?;
            Ok(Some((body, etag, last_modified)))
        })
        .await?;
        match fetched {
            None => {
                let Some(c) = cached.as_mut() else {
                    return Err(Error::InvalidIndex {
                        repository: self.display.clone(),
                        reason: "304 Not Modified to an unconditional request".into(),
                    });
                };
                tracing::debug!(repository = %self.display, "index.yaml not modified");
                c.read_at = Instant::now();
                Ok(Arc::clone(&c.index))
            }
            Some((body, etag, last_modified)) => {
                let repository = self.display.clone();
                let index = tokio::task::spawn_blocking(move || {
                    serde_yaml_ng::from_slice::<Index>(&body).map_err(|e| Error::InvalidIndex {
                        repository,
                        reason: e.to_string(),
                    })
                })
                .await
                .map_err(|e| Error::cache("index", std::io::Error::other(e)))??;
                tracing::debug!(repository = %self.display, charts = index.entries.len(), "index.yaml read");
                let index = Arc::new(index);
                *cached = Some(CachedIndex {
                    index: Arc::clone(&index),
                    read_at: Instant::now(),
                    etag,
                    last_modified,
                });
                Ok(index)
            }
        }
    }

    /// Downloads the archive of `entry` from its first URL (relative to the repository URL
    /// or absolute).
    pub(crate) async fn download(&self, chart: &str, entry: &IndexEntry) -> Result<Vec<u8>, Error> {
        let Some(first) = entry.urls.first() else {
            return Err(Error::InvalidIndex {
                repository: self.display.clone(),
                reason: format!("chart {chart:?} {} has no urls", entry.version),
            });
        };
        let url = self.base.join(first).map_err(|e| Error::InvalidIndex {
            repository: self.display.clone(),
            reason: format!("chart {chart:?} {}: bad url: {e}", entry.version),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::InvalidIndex {
                repository: self.display.clone(),
                reason: format!("chart {chart:?} {}: url is not http(s)", entry.version),
            });
        }
        let request = self.authorize(self.client.get(url.clone()), &url);
        timed(url.as_str(), self.limits.fetch_timeout, async {
            let response = request
                .send()
                .await
                .map_err(|e| Error::from_reqwest(url.as_str(), &e))?;
            if !response.status().is_success() {
                return Err(Error::from_status(url.as_str(), response.status().as_u16()));
            }
            read_limited(
                response,
                url.as_str(),
                self.limits.max_archive_bytes,
                "maxArchiveBytes",
                &format!("chart archive {}", redact_url(url.as_str())),
            )
            .await
        })
        .await
    }
}

/// Runs `work` with the fetch time limit.
pub(crate) async fn timed<T>(
    url: &str,
    timeout: Duration,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| Error::Timeout {
            url: redact_url(url),
            timeout,
        })?
}

/// Reads a response body, failing as soon as it grows past `limit`.
async fn read_limited(
    mut response: reqwest::Response,
    url: &str,
    limit: u64,
    setting: &'static str,
    what: &str,
) -> Result<Vec<u8>, Error> {
    let too_big = || Error::LimitExceeded {
        what: what.to_owned(),
        limit,
        setting,
    };
    if response.content_length().is_some_and(|len| len > limit) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Error::from_reqwest(url, &e))?
    {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;

    #[test]
    fn unquoted_numeric_versions_keep_their_text() {
        let index: Index = serde_yaml_ng::from_str(
            "apiVersion: v1\nentries:\n  a:\n  - version: 1.10\n    urls: [a.tgz]\n    created: 2024-01-01T00:00:00Z\n    maintainers: [{name: x}]\n",
        )
        .unwrap();
        assert_eq!(index.entries["a"][0].version, "1.10");
        assert!(index.entries["a"][0].digest.is_none());
    }
}
