//! Renders a chart with the real `helm template` (Helm v3.19+ or v4), caching renders by their
//! inputs, bounding the subprocess in time and output, and scrubbing values out of its errors
//! (SPEC §2.3, §2.4, §7).
//!
//! Values reach helm on its stdin (`--values -`): they never touch the disk and never appear on
//! a command line. Helm runs with an empty environment and a private home, so it reads no user
//! configuration and no kubeconfig of its own: it never talks to a repository.
//!
//! A renderer given the cluster ([`Renderer::with_cluster`]) answers `lookup` as `helm upgrade`
//! does, for charts whose templates may call it ([`crate::lookup::chart_may_look_up`]): helm runs
//! with `--dry-run=server` against the loopback endpoint of [`crate::lookup`], which lets it read
//! the release's namespace and nothing else. The values of the Secrets it read are scrubbed from
//! its errors like the values document. Other charts, and every chart of a renderer without
//! the cluster (`upstart validate --render`), render offline, where `lookup` returns an empty map.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::digest::{FieldDigest, json_digest};
use crate::lookup::{ClusterReader, LookupProxy, LookupSession, Read};
use crate::{Error, Result};

/// How the renderer runs helm.
#[derive(Clone, Debug)]
pub struct RendererConfig {
    /// The helm binary.
    pub helm_path: PathBuf,
    /// Longest a render may take; the process is killed after it.
    pub timeout: Duration,
    /// Largest manifest accepted from helm; the process is killed when it writes more.
    pub max_output_bytes: usize,
    /// How much of helm's stderr is kept for an error message.
    pub max_stderr_bytes: usize,
    /// How many renders are kept in memory at most. Only the newest render of each release
    /// (namespace and release name) is kept, so this is a bound on releases, not on history.
    pub cache_entries: usize,
    /// Where helm's private, empty home directory is created (default: the system temp dir;
    /// point it at a writable volume when the root filesystem is read-only).
    pub work_dir: Option<PathBuf>,
    /// Shortest string value of the values document that is scrubbed from helm's errors.
    pub min_scrub_len: usize,
    /// Most helm processes running at once (each is CPU-bound for its duration); further
    /// renders wait their turn. Cache hits never wait.
    pub max_concurrent: usize,
    /// Most memory (bytes of data: heap and private writable mappings, `RLIMIT_DATA`) one
    /// helm process may take; `None` for no limit. Go reserves address space it never uses,
    /// so the data size is limited, not the address space. With `max_concurrent` it bounds
    /// what rendering costs the pod. Linux only; elsewhere helm runs without it.
    pub memory_limit: Option<u64>,
}

/// The default [`RendererConfig::memory_limit`]: 1 GiB per helm process.
pub const DEFAULT_MEMORY_LIMIT: u64 = 1 << 30;

impl RendererConfig {
    pub fn new(helm_path: impl Into<PathBuf>) -> Self {
        RendererConfig {
            helm_path: helm_path.into(),
            timeout: Duration::from_secs(60),
            max_output_bytes: 16 * 1024 * 1024,
            max_stderr_bytes: 64 * 1024,
            cache_entries: 4096,
            work_dir: None,
            min_scrub_len: 4,
            max_concurrent: 4,
            memory_limit: Some(DEFAULT_MEMORY_LIMIT),
        }
    }
}

/// What the cluster serves, from discovery: `.Capabilities` in templates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// `v1.33.2`; empty leaves helm's built-in default.
    pub kube_version: String,
    /// Every served `group/version` (`apps/v1`, `v1`) and `group/version/Kind`
    /// (`apps/v1/Deployment`), for `.Capabilities.APIVersions.Has`.
    pub api_versions: BTreeSet<String>,
}

/// One render. Its `Debug` leaves the values out.
#[derive(Clone)]
pub struct RenderRequest<'a> {
    /// The unpacked chart directory (from the chart cache).
    pub chart_dir: &'a Path,
    /// The chart archive's digest (identifies the chart content for the cache).
    pub chart_digest: &'a str,
    /// `.Release.Name`.
    pub release_name: &'a str,
    /// `.Release.Namespace`.
    pub namespace: &'a str,
    /// The final, substituted values document.
    pub values: &'a Value,
    pub capabilities: &'a Capabilities,
    /// `.Release.IsUpgrade` (else `.Release.IsInstall`).
    pub is_upgrade: bool,
}

/// A rendered manifest (multi-document YAML, hooks and CRDs included). It holds values (a
/// Secret's data, an env var): its `Debug` shows only the size and key, so it is safe to log.
#[derive(Clone)]
pub struct Rendered {
    pub manifest: String,
    /// The cache key: a digest of every render input.
    pub key: String,
    /// What the render read from the cluster through `lookup` (and helm's own existence
    /// checks): the other inputs of the render, checked again before the cache reuses it.
    reads: Vec<Read>,
}

impl Rendered {
    /// Whether the render read objects of the cluster (a chart calling `lookup`).
    pub fn read_the_cluster(&self) -> bool {
        !self.reads.is_empty()
    }
}

impl std::fmt::Debug for RenderRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderRequest")
            .field("chart_dir", &self.chart_dir)
            .field("chart_digest", &self.chart_digest)
            .field("release_name", &self.release_name)
            .field("namespace", &self.namespace)
            .field("values", &json_digest(self.values))
            .field("capabilities", &self.capabilities)
            .field("is_upgrade", &self.is_upgrade)
            .finish()
    }
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendered")
            .field("manifest_bytes", &self.manifest.len())
            .field("key", &self.key)
            .field("reads", &self.reads)
            .finish()
    }
}

/// Renders charts with helm. Cheap to share (`Arc<Renderer>`); renders run concurrently.
pub struct Renderer {
    config: RendererConfig,
    version: String,
    home: tempfile::TempDir,
    cache: Mutex<Cache>,
    invocations: AtomicU64,
    permits: tokio::sync::Semaphore,
    /// The cluster `lookup` reads, when rendering online.
    lookup: Option<LookupProxy>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("helm", &self.config.helm_path)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Renderer {
    /// A renderer with default limits; fails clearly when the binary is missing or too old.
    pub async fn new(helm_path: impl Into<PathBuf>) -> Result<Self> {
        Self::with_config(RendererConfig::new(helm_path)).await
    }

    /// A renderer; runs `helm version` to check the binary is Helm v3.19+ or v4.
    pub async fn with_config(config: RendererConfig) -> Result<Self> {
        let unavailable = |reason: String| Error::HelmUnavailable {
            path: config.helm_path.clone(),
            reason,
        };
        let home = match &config.work_dir {
            Some(dir) => tempfile::Builder::new()
                .prefix("helm-home-")
                .tempdir_in(dir),
            None => tempfile::Builder::new().prefix("helm-home-").tempdir(),
        }
        .map_err(|e| unavailable(format!("cannot create helm's private home: {e}")))?;
        let mut cmd = helm_command(&config.helm_path, home.path());
        cmd.args(["version", "--template", "{{.Version}}"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = tokio::time::timeout(Duration::from_secs(30), cmd.output())
            .await
            .map_err(|_| unavailable("`helm version` did not answer within 30s".into()))?
            .map_err(|e| unavailable(e.to_string()))?;
        if !output.status.success() {
            return Err(unavailable(format!(
                "`helm version` failed ({})",
                output.status
            )));
        }
        let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if !supported_version(&version) {
            return Err(Error::HelmVersionUnsupported {
                path: config.helm_path.clone(),
                version,
            });
        }
        Ok(Renderer {
            version,
            home,
            cache: Mutex::new(Cache::new(config.cache_entries)),
            invocations: AtomicU64::new(0),
            permits: tokio::sync::Semaphore::new(config.max_concurrent.max(1)),
            lookup: None,
            config,
        })
    }

    /// Renders charts that call `lookup` against the cluster `reader` reads (the operator's
    /// client), each render confined to its release's namespace (see [`crate::lookup`]).
    pub fn with_cluster(mut self, reader: impl ClusterReader) -> Self {
        self.lookup = Some(LookupProxy::new(reader));
        self
    }

    /// The helm version found at startup (`v4.3.1`).
    pub fn helm_version(&self) -> &str {
        &self.version
    }

    /// How many `helm template` processes this renderer has started.
    pub fn invocations(&self) -> u64 {
        self.invocations.load(Ordering::Relaxed)
    }

    /// The cache key of a render: a digest of chart digest, values digest, release name,
    /// namespace, kube version, API versions, install/upgrade and the helm version.
    pub fn cache_key(&self, request: &RenderRequest<'_>) -> String {
        FieldDigest::new()
            .field("helm", &self.version)
            .field("chart", request.chart_digest)
            .field("values", &json_digest(request.values))
            .field("release", request.release_name)
            .field("namespace", request.namespace)
            .field("kubeVersion", &request.capabilities.kube_version)
            .list(
                "apiVersions",
                request.capabilities.api_versions.iter().map(String::as_str),
            )
            .field("upgrade", if request.is_upgrade { "1" } else { "0" })
            .finish()
    }

    /// Renders, or returns the cached render of the same inputs without starting helm. A render
    /// that read the cluster is reused only while every object it read answers the same.
    pub async fn render(&self, request: &RenderRequest<'_>) -> Result<Arc<Rendered>> {
        self.render_as(request, None).await
    }

    /// [`Renderer::render`], with `lookup` (and helm's existence checks) reading the cluster
    /// through `reader` rather than the renderer's own: a release confined to what its
    /// ServiceAccount may read renders with that account's reads.
    #[tracing::instrument(skip_all, fields(release = request.release_name, namespace = request.namespace))]
    pub async fn render_as(
        &self,
        request: &RenderRequest<'_>,
        reader: Option<Arc<dyn ClusterReader>>,
    ) -> Result<Arc<Rendered>> {
        let key = self.cache_key(request);
        if let Some(hit) = self.cached(&key, reader.as_ref()).await {
            tracing::debug!("render cache hit");
            return Ok(hit);
        }
        let (manifest, reads) = {
            // The semaphore is never closed, so acquiring only fails if that invariant breaks.
            let _permit = self
                .permits
                .acquire()
                .await
                .map_err(|e| Error::HelmIo(std::io::Error::other(e)))?;
            // Another task may have rendered the same inputs while this one waited.
            if let Some(hit) = self.cached(&key, reader.as_ref()).await {
                tracing::debug!("render cache hit (rendered by another task meanwhile)");
                return Ok(hit);
            }
            let started = std::time::Instant::now();
            let rendered = self.render_now(request, reader).await?;
            // Every render says how it was served, a fresh one too (names only, no values).
            tracing::debug!(
                milliseconds = started.elapsed().as_millis() as u64,
                "rendered with helm"
            );
            rendered
        };
        let rendered = Arc::new(Rendered {
            manifest,
            key: key.clone(),
            reads,
        });
        let slot = format!("{}/{}", request.namespace, request.release_name);
        self.cache_lock().insert(slot, key, rendered.clone());
        Ok(rendered)
    }

    /// The cached render of `key`, unless what it read from the cluster has changed since.
    async fn cached(
        &self,
        key: &str,
        reader: Option<&Arc<dyn ClusterReader>>,
    ) -> Option<Arc<Rendered>> {
        let hit = self.cache_lock().get(key)?;
        if hit.reads.is_empty() {
            return Some(hit);
        }
        let lookup = self.lookup.as_ref()?;
        if lookup.still_answers(&hit.reads, reader).await {
            Some(hit)
        } else {
            tracing::debug!("what the cached render looked up has changed: rendering again");
            None
        }
    }

    /// Runs helm: against the cluster when the chart may call `lookup` and the renderer has
    /// the cluster, else offline.
    async fn render_now(
        &self,
        request: &RenderRequest<'_>,
        reader: Option<Arc<dyn ClusterReader>>,
    ) -> Result<(String, Vec<Read>)> {
        let Some(lookup) = &self.lookup else {
            return Ok((self.run_template(request, None).await?, Vec::new()));
        };
        if !crate::lookup::chart_may_look_up(request.chart_dir) {
            return Ok((self.run_template(request, None).await?, Vec::new()));
        }
        let session = lookup
            .session(request.namespace, reader)
            .await
            .map_err(Error::HelmIo)?;
        match self.run_template(request, Some(&session)).await {
            Ok(manifest) => Ok((manifest, session.finish())),
            // Helm maps every rendered object to a served kind before it answers: a custom
            // resource whose CRD the same release installs cannot be mapped until the CRD
            // exists. Helm itself refuses such an install; this operator installs the CRD first,
            // so that render is done offline, where `lookup` finds nothing (documented in
            // docs/architecture.md).
            Err(Error::HelmFailed { stderr, .. }) if stderr.contains(UNMAPPED_KIND) => {
                drop(session);
                tracing::info!(
                    "the chart renders kinds the cluster does not serve yet (CRDs of the same release): rendered without lookup"
                );
                Ok((self.run_template(request, None).await?, Vec::new()))
            }
            Err(other) => Err(other),
        }
    }

    fn cache_lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A panic while holding the lock cannot leave the cache inconsistent (every operation
        // is a single map/deque update), so a poisoned lock is still usable.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn run_template(
        &self,
        request: &RenderRequest<'_>,
        session: Option<&LookupSession<'_>>,
    ) -> Result<String> {
        let chart_dir = std::path::absolute(request.chart_dir).map_err(Error::HelmIo)?;
        if !chart_dir.is_dir() {
            return Err(Error::ChartMissing { path: chart_dir });
        }
        let values =
            serde_json::to_vec(request.values).map_err(|e| Error::Values(e.to_string()))?;

        let mut cmd = helm_command(&self.config.helm_path, self.home.path());
        cmd.arg("template")
            .args(["--namespace", request.namespace])
            .arg("--include-crds")
            .arg("--skip-tests")
            // JSON is YAML: the values document goes through stdin, never a file or argv.
            .args(["--values", "-"]);
        // Removed (kubeconfig included) when the render ends, however it ends.
        let _online_home;
        if let Some(session) = session {
            // A home of its own: client-go caches discovery under it for hours, which would
            // hide CRDs installed since; the kubeconfig (0600) points at this render's session.
            let home = tempfile::Builder::new()
                .prefix("render-")
                .tempdir_in(self.home.path())
                .map_err(Error::HelmIo)?;
            let kubeconfig = crate::lookup::write_kubeconfig(
                home.path(),
                session.server_url(),
                request.namespace,
            )
            .map_err(Error::HelmIo)?;
            cmd.env("HOME", home.path())
                .env("KUBECONFIG", kubeconfig)
                // `lookup` reads the cluster only with a server dry run. Helm then also checks
                // that rendered objects exist before an install (`--take-ownership` makes that a
                // read, not a refusal of objects this operator labels its own way) and would
                // fetch the OpenAPI schema, which the endpoint does not serve: the plan is
                // validated by the API server at apply.
                .arg("--dry-run=server")
                .arg("--disable-openapi-validation")
                .arg("--take-ownership");
            _online_home = Some(home);
        } else {
            _online_home = None;
        }
        // With a server dry run, helm 4 takes `.Capabilities` from the cluster's discovery
        // through the endpoint and ignores these; they are passed anyway for a helm that
        // keeps its client-side capabilities in that mode.
        if !request.capabilities.kube_version.is_empty() {
            cmd.args(["--kube-version", &request.capabilities.kube_version]);
        }
        for api_version in &request.capabilities.api_versions {
            cmd.args(["--api-versions", api_version]);
        }
        if request.is_upgrade {
            cmd.arg("--is-upgrade");
        }
        cmd.arg("--")
            .arg(request.release_name)
            .arg(&chart_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(limit) = self.config.memory_limit {
            // Go's collector works harder near this soft limit before the hard one is hit.
            cmd.env("GOMEMLIMIT", (limit / 10 * 9).to_string());
        }

        self.invocations.fetch_add(1, Ordering::Relaxed);
        let mut child = cmd.spawn().map_err(Error::HelmIo)?;
        if let Some(limit) = self.config.memory_limit
            && let Err(e) = limit_memory(&child, limit)
        {
            let _ = child.kill().await;
            return Err(Error::HelmIo(e));
        }
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(Error::HelmIo(std::io::Error::other(
                "helm's standard streams are not available",
            )));
        };
        let max_out = self.config.max_output_bytes;
        let max_err = self.config.max_stderr_bytes;
        let run = async {
            let write = async {
                // Helm may exit before reading everything (a bad flag, a bad chart); its exit
                // status and stderr say why, so a broken pipe here is not the error to report.
                let _ = stdin.write_all(&values).await;
                drop(stdin);
                Ok::<(), Error>(())
            };
            let (out, (err, err_truncated), ()) = tokio::try_join!(
                read_stdout(stdout, max_out),
                read_stderr(stderr, max_err),
                write
            )?;
            let status = child.wait().await.map_err(Error::HelmIo)?;
            Ok::<_, Error>((status, out, err, err_truncated))
        };
        let outcome = tokio::time::timeout(self.config.timeout, run).await;
        let (status, out, err, err_truncated) = match outcome {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                let _ = child.kill().await;
                return Err(e);
            }
            Err(_) => {
                let _ = child.kill().await;
                return Err(Error::HelmTimeout {
                    seconds: self.config.timeout.as_secs(),
                });
            }
        };
        if !status.success() {
            if let Some(limit) = self.config.memory_limit
                && ran_out_of_memory(&status, &err)
            {
                return Err(Error::RenderOutOfMemory {
                    limit_mib: limit >> 20,
                });
            }
            let scrubber = match session.map(LookupSession::secret_values) {
                Some(secrets) if !secrets.is_empty() => {
                    let strings = secrets.into_iter().map(Value::String).collect();
                    let sources = Value::Array(vec![request.values.clone(), Value::Array(strings)]);
                    Scrubber::new(&sources, self.config.min_scrub_len)
                }
                _ => Scrubber::new(request.values, self.config.min_scrub_len),
            };
            let mut text = String::from_utf8_lossy(&err).into_owned();
            if err_truncated {
                // The cut may fall inside a value, which a scrub could then miss: drop the
                // partial last line.
                text.truncate(text.rfind('\n').unwrap_or(0));
                text.push_str("\n[stderr truncated]");
            }
            return Err(Error::HelmFailed {
                status: status.to_string(),
                stderr: shorten(scrubber.scrub(text.trim()), MAX_ERROR_CHARS),
            });
        }
        String::from_utf8(out).map_err(|_| Error::RenderNotUtf8)
    }
}

/// Limits the data size of the helm process just started. helm is still starting up and
/// waits for its values on stdin, written only after this: the render itself runs under the
/// limit (setting it in the child before exec would need `unsafe`, forbidden here).
#[cfg(target_os = "linux")]
fn limit_memory(child: &tokio::process::Child, limit: u64) -> std::io::Result<()> {
    use rustix::process::{Pid, Resource, Rlimit, prlimit};
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw)
        .ok_or_else(|| std::io::Error::other("helm exited before its memory could be limited"))?;
    let wanted = Rlimit {
        current: Some(limit),
        maximum: Some(limit),
    };
    match prlimit(Some(pid), Resource::Data, wanted) {
        // Already exited (a bad flag, say): its exit status tells what happened.
        Ok(_) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(std::io::Error::from(e)),
    }
}

#[cfg(not(target_os = "linux"))]
fn limit_memory(_child: &tokio::process::Child, _limit: u64) -> std::io::Result<()> {
    Ok(())
}

/// Whether a failed helm ran out of memory: the Go runtime says so on stderr when an
/// allocation is refused; the kernel's OOM killer sends SIGKILL (the renderer's own kill at the
/// timeout is reported before this is asked); a refused allocation while the runtime grows its
/// own structures can end in SIGSEGV.
fn ran_out_of_memory(status: &std::process::ExitStatus, stderr: &[u8]) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if matches!(status.signal(), Some(9 | 11)) {
            return true;
        }
    }
    #[cfg(not(unix))]
    let _ = status;
    let text = String::from_utf8_lossy(stderr);
    text.contains("fatal error: out of memory")
        || text.contains("runtime: out of memory")
        || text.contains("cannot allocate memory")
}

/// How helm says a rendered object's kind is not served (`ensure CRDs are installed first`).
const UNMAPPED_KIND: &str = "resource mapping not found";

/// The longest helm error kept (after scrubbing), so it fits a condition message.
const MAX_ERROR_CHARS: usize = 4096;

fn shorten(mut text: String, max_chars: usize) -> String {
    if let Some((cut, _)) = text.char_indices().nth(max_chars) {
        text.truncate(cut);
        text.push_str(" [truncated]");
    }
    text
}

/// A helm command with an empty environment and a private home: no user configuration, no
/// kubeconfig (a render against the cluster is given its own), no plugins, no repositories.
fn helm_command(helm: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(helm);
    cmd.env_clear()
        .env("HOME", home)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env("KUBECONFIG", home.join("no-kubeconfig"))
        .env("HELM_DEBUG", "false")
        .current_dir(home);
    cmd
}

/// Helm v3.19 or newer within v3, or any v4. SPEC §2.4 names v3.14; the floor is raised to the
/// first v3 line that has Helm's fixes for decompression bombs in chart archives and JSON schema
/// `$ref` recursion (3.17.3), symlinked Chart.yaml/Chart.lock (3.18.4) and memory exhaustion
/// while parsing YAML and JSON schemas (3.18.5): charts come from tenants.
fn supported_version(version: &str) -> bool {
    let numbers: Vec<u64> = version
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .take(2)
        .map_while(|n| n.parse().ok())
        .collect();
    match numbers.as_slice() {
        [3, minor] => *minor >= 19,
        [4, _] => true,
        _ => false,
    }
}

async fn read_stdout(mut stream: impl AsyncRead + Unpin, limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).await.map_err(Error::HelmIo)?;
        if n == 0 {
            return Ok(out);
        }
        if out.len() + n > limit {
            return Err(Error::RenderTooLarge { limit });
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Reads all of stderr (so helm never blocks on it) and keeps the first `limit` bytes.
async fn read_stderr(mut stream: impl AsyncRead + Unpin, limit: usize) -> Result<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    let mut truncated = false;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).await.map_err(Error::HelmIo)?;
        if n == 0 {
            return Ok((out, truncated));
        }
        let room = limit.saturating_sub(out.len());
        if n > room {
            truncated = true;
        }
        out.extend_from_slice(&buf[..n.min(room)]);
    }
}

/// Removes the values document's strings from text (helm errors often quote them). It holds
/// the values it removes, so it has no `Debug`.
#[derive(Clone)]
pub struct Scrubber {
    /// Longest first, so a value containing another is replaced whole.
    needles: Vec<String>,
}

/// What a scrubbed value is replaced with.
pub const REDACTED: &str = "[redacted]";

impl Scrubber {
    /// Every string in `values` at least `min_len` characters long, with its base64 forms and
    /// its escaped (JSON / Go `%q`) form.
    pub fn new(values: &Value, min_len: usize) -> Self {
        let mut strings = BTreeSet::new();
        collect_strings(values, min_len.max(1), &mut strings);
        let mut needles = BTreeSet::new();
        for s in strings {
            let b64 = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
            needles.insert(b64.trim_end_matches('=').to_owned());
            needles.insert(b64);
            needles.insert(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s.as_bytes()));
            if let Ok(quoted) = serde_json::to_string(&s) {
                let escaped = &quoted[1..quoted.len() - 1];
                if escaped != s {
                    needles.insert(escaped.to_owned());
                }
            }
            needles.insert(s);
        }
        let mut needles: Vec<String> = needles.into_iter().collect();
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        Scrubber { needles }
    }

    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), REDACTED);
            }
        }
        out
    }
}

fn collect_strings(value: &Value, min_len: usize, out: &mut BTreeSet<String>) {
    match value {
        Value::String(s) if s.chars().count() >= min_len => {
            out.insert(s.clone());
            // Multi-line values are often echoed line by line.
            for line in s.lines() {
                if line.chars().count() >= min_len {
                    out.insert(line.to_owned());
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, min_len, out)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, min_len, out)),
        _ => {}
    }
}

/// A small LRU of renders.
struct Cache {
    capacity: usize,
    map: HashMap<String, Arc<Rendered>>,
    order: VecDeque<String>,
    /// The key of each release's newest render: a new render of a release replaces its
    /// older one, so a steady state of N releases needs N entries, whatever their history.
    slots: HashMap<String, String>,
}

impl Cache {
    fn new(capacity: usize) -> Self {
        Cache {
            capacity,
            map: HashMap::new(),
            order: VecDeque::new(),
            slots: HashMap::new(),
        }
    }

    fn get(&mut self, key: &str) -> Option<Arc<Rendered>> {
        let hit = self.map.get(key)?.clone();
        if let Some(pos) = self.order.iter().position(|k| k == key) {
            let k = self.order.remove(pos);
            self.order.extend(k);
        }
        Some(hit)
    }

    fn insert(&mut self, slot: String, key: String, rendered: Arc<Rendered>) {
        if self.capacity == 0 {
            return;
        }
        if let Some(previous) = self.slots.insert(slot, key.clone())
            && previous != key
        {
            self.remove(&previous);
        }
        if self.map.insert(key.clone(), rendered).is_none() {
            self.order.push_back(key);
        }
        while self.map.len() > self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
    }

    fn remove(&mut self, key: &str) {
        if self.map.remove(key).is_some()
            && let Some(pos) = self.order.iter().position(|k| k == key)
        {
            self.order.remove(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn helm_3_19_and_later_and_helm_4_are_supported() {
        assert!(supported_version("v3.19.0"));
        assert!(supported_version("v3.20.1"));
        assert!(supported_version("v4.3.1"));
        assert!(supported_version("v4.0.0-rc.1"));
    }

    #[test]
    fn helm_without_the_archive_and_schema_fixes_and_other_majors_are_refused() {
        assert!(!supported_version("v3.13.3"));
        assert!(!supported_version("v3.14.0"));
        assert!(!supported_version("v3.18.4"));
        assert!(!supported_version("v2.17.0"));
        assert!(!supported_version("v5.0.0"));
        assert!(!supported_version("garbage"));
        assert!(!supported_version(""));
    }

    #[test]
    fn scrubbing_replaces_values_and_their_base64() {
        let values = json!({"db": {"password": "s3cr3t-pa55"}, "list": ["tokenvalue"], "n": 12345});
        let s = Scrubber::new(&values, 4);
        let b64 = base64::engine::general_purpose::STANDARD.encode("s3cr3t-pa55");
        let text = format!("error: s3cr3t-pa55 and {b64} and tokenvalue and 12345");
        let out = s.scrub(&text);
        assert!(!out.contains("s3cr3t-pa55"));
        assert!(!out.contains(&b64));
        assert!(!out.contains("tokenvalue"));
        assert_eq!(out.matches(REDACTED).count(), 3);
    }

    #[test]
    fn scrubbing_leaves_short_strings_alone() {
        let s = Scrubber::new(&json!({"a": "on", "b": "abc"}), 4);
        assert_eq!(s.scrub("on abc"), "on abc");
    }

    #[test]
    fn scrubbing_catches_escaped_and_line_by_line_echoes() {
        let s = Scrubber::new(&json!({"cert": "line-one\nline-two \"q\""}), 4);
        let out = s.scrub(r#"bad: "line-one\nline-two \"q\"" or line-one"#);
        assert!(!out.contains("line-one"), "{out}");
        assert!(!out.contains("line-two"), "{out}");
    }

    #[test]
    fn long_errors_are_shortened_on_a_character_boundary() {
        assert_eq!(shorten("ééé".into(), 2), "éé [truncated]");
        assert_eq!(shorten("short".into(), 10), "short");
    }

    #[test]
    fn debug_output_of_requests_and_renders_shows_no_values() {
        let values = json!({"password": "hunter2-secret"});
        let caps = Capabilities::default();
        let req = RenderRequest {
            chart_dir: Path::new("/charts/app"),
            chart_digest: "sha256:00",
            release_name: "web",
            namespace: "ns",
            values: &values,
            capabilities: &caps,
            is_upgrade: false,
        };
        assert!(!format!("{req:?}").contains("hunter2"));
        let rendered = Rendered {
            manifest: "data: {password: hunter2-secret}".into(),
            key: "k".into(),
            reads: Vec::new(),
        };
        assert!(!format!("{rendered:?}").contains("hunter2"));
    }

    #[test]
    fn the_cache_evicts_the_least_recently_used_render() {
        let r = |k: &str| {
            Arc::new(Rendered {
                manifest: String::new(),
                key: k.into(),
                reads: Vec::new(),
            })
        };
        let mut c = Cache::new(2);
        c.insert("ns/a".into(), "a".into(), r("a"));
        c.insert("ns/b".into(), "b".into(), r("b"));
        assert!(c.get("a").is_some());
        c.insert("ns/c".into(), "c".into(), r("c"));
        assert!(c.get("a").is_some());
        assert!(c.get("b").is_none());
        assert!(c.get("c").is_some());
    }

    #[test]
    fn the_cache_keeps_only_the_newest_render_of_each_release() {
        let r = |k: &str| {
            Arc::new(Rendered {
                manifest: String::new(),
                key: k.into(),
                reads: Vec::new(),
            })
        };
        let mut c = Cache::new(10);
        c.insert("ns/app".into(), "v1".into(), r("v1"));
        c.insert("ns/db".into(), "db".into(), r("db"));
        c.insert("ns/app".into(), "v2".into(), r("v2"));
        assert!(c.get("v1").is_none(), "the older render of app is gone");
        assert!(c.get("v2").is_some());
        assert!(c.get("db").is_some());
        assert_eq!(c.map.len(), 2);
        assert_eq!(c.order.len(), 2);
        // The same render again keeps it.
        c.insert("ns/app".into(), "v2".into(), r("v2"));
        assert!(c.get("v2").is_some());
        assert_eq!(c.map.len(), 2);
    }
}
