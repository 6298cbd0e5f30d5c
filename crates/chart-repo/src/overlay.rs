//! The development overlay (as Paxos' ChartProxy): the local charts first, then upstream
//! repositories for every chart and version the directory does not have.
//!
//! - The served `index.yaml` merges the local charts and each upstream's index
//!   ([`crate::merge_index`]): a local version wins, then the upstreams in the order given.
//! - An upstream's index is read again at most every [`OverlayOptions::refresh`] (conditionally,
//!   with its `ETag`) and kept in the cache as `CACHE/NAME/index.yaml` beside the upstream's
//!   URL (`CACHE/NAME/url`).
//! - An upstream archive is fetched on its first request, its sha256 checked against the digest
//!   of the upstream's index, and kept as `CACHE/NAME/CHART-VERSION.tgz`; later requests are
//!   served from the cache, also while the upstream is down.
//! - While an upstream cannot be read, its last index is used, listing only the versions whose
//!   archive is in the cache, so that whatever resolves can be installed. An upstream found in
//!   the cache but not given (a directory unpacked from a pack on a machine without network) is
//!   served that way too, and never contacted.
//!
//! The cache defaults to `DIR/.upstart-cache`, so that `upstart charts pack` carries it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_yaml_ng::{Mapping, Value};
use tokio::sync::Mutex;
use upstart_chart_source::Limits;

use crate::Error;

/// The cache directory's name under the chart directory, by default.
pub const CACHE_DIR_NAME: &str = ".upstart-cache";

/// An upstream repository: `NAME=URL` on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The repository's name: the cache's subdirectory, and in `upstart dev` the alias the
    /// overlay takes over.
    pub name: String,
    /// The HTTP(S) URL of the repository (where its `index.yaml` is).
    pub url: String,
}

impl std::str::FromStr for Upstream {
    type Err = Error;

    fn from_str(given: &str) -> Result<Self, Error> {
        let Some((name, url)) = given.split_once('=') else {
            return Err(Error::InvalidUpstream {
                given: upstart_chart_source::redact_url(given),
                message: "expected NAME=URL, e.g. upstart-charts=https://charts.example.com/stable"
                    .to_owned(),
            });
        };
        let invalid = |message: &str| Error::InvalidUpstream {
            given: format!("{name}={}", upstart_chart_source::redact_url(url)),
            message: message.to_owned(),
        };
        let valid_name = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid_name {
            return Err(invalid(
                "the name may hold only letters, digits, '-', '_' and '.', and not start with '.'",
            ));
        }
        let parsed = reqwest::Url::parse(url).map_err(|e| invalid(&format!("the URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(invalid(
                "the URL must be http(s)://HOST/PATH of a Helm repository (OCI registries cannot be upstreams)",
            ));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid(
                "the URL carries credentials; upstreams that need credentials are not supported",
            ));
        }
        Ok(Upstream {
            name: name.to_owned(),
            url: url.trim_end_matches('/').to_owned(),
        })
    }
}

/// How the overlay reaches its upstreams.
#[derive(Debug, Clone)]
pub struct OverlayOptions {
    /// Upstream repositories, in order of precedence.
    pub upstreams: Vec<Upstream>,
    /// Where upstream indexes and archives are kept. `None`: `DIR/.upstart-cache`.
    pub cache_dir: Option<PathBuf>,
    /// How long an upstream's index is used before it is read again.
    pub refresh: Duration,
    /// Sizes and times: the largest upstream index and archive accepted and pushed archive,
    /// the fetch timeout.
    pub limits: Limits,
}

impl Default for OverlayOptions {
    fn default() -> Self {
        Self {
            upstreams: Vec::new(),
            cache_dir: None,
            refresh: Duration::from_secs(30),
            limits: Limits::default(),
        }
    }
}

/// One upstream's index as served: entries by chart name and where each archive comes from.
#[derive(Debug)]
pub(crate) struct View {
    pub entries: Vec<(String, Vec<Mapping>)>,
    files: HashMap<String, FileRef>,
    etag: Option<String>,
    /// Whether the last read of the upstream succeeded.
    online: bool,
    pub generation: u64,
    pub modified: SystemTime,
}

#[derive(Debug, Clone)]
struct FileRef {
    url: String,
    digest: Option<String>,
}

#[derive(Debug)]
struct UpstreamState {
    name: String,
    /// `None`: known from the cache only, never contacted.
    url: Option<reqwest::Url>,
    display_url: String,
    dir: PathBuf,
    view: Mutex<Option<(Instant, Arc<View>)>>,
}

/// The upstreams of a served repository and their cache.
#[derive(Debug)]
pub(crate) struct Overlay {
    upstreams: Vec<UpstreamState>,
    client: reqwest::Client,
    refresh: Duration,
    pub limits: Limits,
    generation: AtomicU64,
}

impl Overlay {
    /// Prepares the cache for `options.upstreams` and finds the upstreams kept in it.
    pub fn new(root: &Path, options: OverlayOptions) -> Result<Self, Error> {
        let cache = options
            .cache_dir
            .clone()
            .unwrap_or_else(|| root.join(CACHE_DIR_NAME));
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Write { path, source }
        };
        let mut upstreams = Vec::new();
        for upstream in &options.upstreams {
            if upstreams
                .iter()
                .any(|u: &UpstreamState| u.name == upstream.name)
            {
                return Err(Error::InvalidUpstream {
                    given: format!("{}={}", upstream.name, upstream.url),
                    message: format!("the name {} is given twice", upstream.name),
                });
            }
            let dir = cache.join(&upstream.name);
            std::fs::create_dir_all(&dir).map_err(write_err(&dir))?;
            let url_file = dir.join("url");
            std::fs::write(&url_file, format!("{}\n", upstream.url))
                .map_err(write_err(&url_file))?;
            let url = reqwest::Url::parse(&format!("{}/", upstream.url)).map_err(|e| {
                Error::InvalidUpstream {
                    given: upstream.url.clone(),
                    message: e.to_string(),
                }
            })?;
            upstreams.push(UpstreamState {
                name: upstream.name.clone(),
                url: Some(url),
                display_url: upstream.url.clone(),
                dir,
                view: Mutex::new(None),
            });
        }
        if let Ok(entries) = std::fs::read_dir(&cache) {
            let mut cached: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.join("index.yaml").is_file())
                .collect();
            cached.sort();
            for dir in cached {
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if upstreams.iter().any(|u| u.name == name) {
                    continue;
                }
                let display_url = std::fs::read_to_string(dir.join("url"))
                    .map(|u| u.trim().to_owned())
                    .unwrap_or_default();
                tracing::info!(upstream = %name, url = %display_url, "serving the charts kept in the cache of this upstream, without contacting it");
                upstreams.push(UpstreamState {
                    name,
                    url: None,
                    display_url,
                    dir,
                    view: Mutex::new(None),
                });
            }
        }
        // Connections are plain HTTP or rustls with ring, as the chart sources make them.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(options.limits.fetch_timeout)
            .timeout(options.limits.fetch_timeout)
            .user_agent(concat!("upstart-chart-repo/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Upstream {
                name: "(all)".into(),
                url: String::new(),
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Self {
            upstreams,
            client,
            refresh: options.refresh,
            limits: options.limits,
            generation: AtomicU64::new(1),
        })
    }

    /// Whether there is any upstream (given or cached) to merge.
    pub fn is_empty(&self) -> bool {
        self.upstreams.is_empty()
    }

    /// Every upstream's current view, each read again when older than the refresh period.
    pub async fn views(&self) -> Vec<Arc<View>> {
        let mut views = Vec::with_capacity(self.upstreams.len());
        for upstream in &self.upstreams {
            views.push(self.view(upstream).await);
        }
        views
    }

    async fn view(&self, upstream: &UpstreamState) -> Arc<View> {
        let mut guard = upstream.view.lock().await;
        if let Some((read_at, view)) = guard.as_ref()
            && (upstream.url.is_none() || read_at.elapsed() < self.refresh)
        {
            return Arc::clone(view);
        }
        let previous = guard.as_ref().map(|(_, v)| Arc::clone(v));
        let view = Arc::new(self.read_view(upstream, previous).await);
        *guard = Some((Instant::now(), Arc::clone(&view)));
        view
    }

    /// Reads the upstream's index (conditionally on the last `ETag`); on failure, the index
    /// kept in the cache, limited to the archives kept there.
    async fn read_view(&self, upstream: &UpstreamState, previous: Option<Arc<View>>) -> View {
        if let Some(base) = &upstream.url {
            match self.fetch_index(upstream, base, previous.as_deref()).await {
                Ok(None) => {
                    if let Some(previous) = previous.filter(|p| p.online) {
                        return View {
                            entries: previous.entries.clone(),
                            files: previous.files.clone(),
                            etag: previous.etag.clone(),
                            online: true,
                            generation: previous.generation,
                            modified: previous.modified,
                        };
                    }
                }
                Ok(Some(view)) => return view,
                Err(error) => {
                    tracing::warn!(%error, "upstream not readable: serving the charts kept in its cache")
                }
            }
        }
        let index_path = upstream.dir.join("index.yaml");
        let bytes = std::fs::read(&index_path).unwrap_or_default();
        let modified = std::fs::metadata(&index_path)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut view = self.parse_view(upstream, &bytes, None, false, modified);
        view.entries.retain_mut(|(name, versions)| {
            versions.retain(|entry| {
                entry_version(entry)
                    .is_some_and(|v| upstream.dir.join(format!("{name}-{v}.tgz")).is_file())
            });
            !versions.is_empty()
        });
        view
    }

    /// `Ok(None)` when the upstream answered 304 Not Modified.
    async fn fetch_index(
        &self,
        upstream: &UpstreamState,
        base: &reqwest::Url,
        previous: Option<&View>,
    ) -> Result<Option<View>, Error> {
        let fail = |message: String| Error::Upstream {
            name: upstream.name.clone(),
            url: upstream.display_url.clone(),
            message,
        };
        let url = base
            .join("index.yaml")
            .map_err(|e| fail(format!("index URL: {e}")))?;
        let mut request = self.client.get(url);
        if let Some(etag) = previous
            .filter(|p| p.online)
            .and_then(|p| p.etag.as_deref())
        {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let response = request
            .send()
            .await
            .map_err(|e| fail(format!("reading index.yaml: {}", error_chain(&e))))?;
        if response.status() == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(fail(format!("index.yaml answered {}", response.status())));
        }
        let etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = read_limited(response, self.limits.max_index_bytes, "index.yaml")
            .await
            .map_err(fail)?;
        let view = self.parse_view(upstream, &bytes, etag, true, SystemTime::now());
        let index_path = upstream.dir.join("index.yaml");
        write_atomically(&index_path, &bytes)?;
        Ok(Some(view))
    }

    fn parse_view(
        &self,
        upstream: &UpstreamState,
        bytes: &[u8],
        etag: Option<String>,
        online: bool,
        modified: SystemTime,
    ) -> View {
        let base = upstream.url.clone();
        let mut entries = Vec::new();
        let mut files = HashMap::new();
        let index: Value = serde_yaml_ng::from_slice(bytes).unwrap_or(Value::Null);
        if let Some(by_name) = index.get("entries").and_then(Value::as_mapping) {
            for (name, versions) in by_name {
                let (Some(name), Some(versions)) = (name.as_str(), versions.as_sequence()) else {
                    continue;
                };
                let mut kept = Vec::new();
                for entry in versions.iter().filter_map(Value::as_mapping) {
                    let Some(version) = entry_version(entry) else {
                        continue;
                    };
                    let url = entry
                        .get("urls")
                        .and_then(Value::as_sequence)
                        .and_then(|u| u.first())
                        .and_then(Value::as_str)
                        .and_then(|u| match &base {
                            Some(base) => base.join(u).ok().map(|u| u.to_string()),
                            None => Some(u.to_owned()),
                        });
                    let Some(url) = url else { continue };
                    let digest = entry
                        .get("digest")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    files.insert(format!("{name}-{version}.tgz"), FileRef { url, digest });
                    kept.push(entry.clone());
                }
                if !kept.is_empty() {
                    entries.push((name.to_owned(), kept));
                }
            }
        } else if !bytes.is_empty() {
            tracing::warn!(upstream = %upstream.name, "the upstream's index.yaml has no entries mapping; nothing served from it");
        }
        View {
            entries,
            files,
            etag,
            online,
            generation: self.generation.fetch_add(1, Ordering::Relaxed),
            modified,
        }
    }

    /// The archive `file` (`NAME-VERSION.tgz`) of the first upstream listing it: from the
    /// cache, else fetched, checked against the index's digest and kept. `Ok(None)` when no
    /// upstream lists it.
    pub async fn archive(&self, file: &str) -> Result<Option<Vec<u8>>, Error> {
        for upstream in &self.upstreams {
            let view = self.view(upstream).await;
            let Some(found) = view.files.get(file) else {
                continue;
            };
            let cached = upstream.dir.join(file);
            if let Ok(bytes) = std::fs::read(&cached) {
                if found
                    .digest
                    .as_deref()
                    .is_none_or(|d| d == crate::sha256_hex(&bytes))
                {
                    return Ok(Some(bytes));
                }
                tracing::warn!(file, upstream = %upstream.name, "the cached archive does not match the index's digest; fetching it again");
            }
            let fail = |message: String| Error::Upstream {
                name: upstream.name.clone(),
                url: upstream.display_url.clone(),
                message,
            };
            if upstream.url.is_none() {
                return Err(fail(format!(
                    "{file} is not in the cache and this upstream is only known from the cache"
                )));
            }
            let response = self
                .client
                .get(&found.url)
                .send()
                .await
                .map_err(|e| fail(format!("fetching {file}: {}", error_chain(&e))))?;
            if !response.status().is_success() {
                return Err(fail(format!("{file} answered {}", response.status())));
            }
            let bytes = read_limited(response, self.limits.max_archive_bytes, file)
                .await
                .map_err(fail)?;
            let actual = crate::sha256_hex(&bytes);
            if let Some(expected) = &found.digest
                && *expected != actual
            {
                return Err(fail(format!(
                    "{file} has sha256 {actual}, but the upstream's index says {expected}; not served"
                )));
            }
            write_atomically(&cached, &bytes)?;
            tracing::info!(file, upstream = %upstream.name, "upstream archive fetched and kept in the cache");
            return Ok(Some(bytes));
        }
        Ok(None)
    }
}

fn entry_version(entry: &Mapping) -> Option<&str> {
    entry
        .get("version")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty() && !v.contains('/'))
}

/// The error with its causes (reqwest's own text says only "error sending request").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn read_limited(
    mut response: reqwest::Response,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>, String> {
    let too_big = || format!("{what} is larger than the limit of {limit} bytes");
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading {what}: {}", error_chain(&e)))?
    {
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > limit {
            return Err(too_big());
        }
    }
    Ok(bytes)
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let write_err = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(write_err)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(write_err)?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(write_err)?;
    tmp.persist(path).map_err(|e| write_err(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;

    #[test]
    fn upstream_is_parsed_from_name_equals_url() {
        let up: Upstream = "upstart-charts=https://charts.example.com/stable/"
            .parse()
            .unwrap();
        assert_eq!(up.name, "upstart-charts");
        assert_eq!(up.url, "https://charts.example.com/stable");
    }

    #[test]
    fn upstream_without_a_name_a_scheme_or_with_credentials_is_refused() {
        for (given, says) in [
            ("https://charts.example.com", "expected NAME=URL"),
            ("=https://charts.example.com", "the name may hold"),
            ("x=oci://ghcr.io/a", "OCI registries cannot be upstreams"),
            (
                "x=https://me:secret@charts.example.com",
                "carries credentials",
            ),
        ] {
            let error = given.parse::<Upstream>().unwrap_err().to_string();
            assert!(error.contains(says), "{given}: {error}");
            assert!(!error.contains("secret"), "{error}");
        }
    }
}
