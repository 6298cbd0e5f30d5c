//! Helm chart sources for the HelmRelease operator (SPEC §2.2): resolve a chart reference and
//! version constraint against the configured repositories and produce a verified, unpacked
//! chart directory from a digest-addressed on-disk cache, ready for `helm template`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), upstart_chart_source::Error> {
//! use upstart_chart_source::{ChartSource, RepositoryConfig};
//! let config = RepositoryConfig::from_yaml("repositories: {upstart-charts: {url: https://charts.example.com}}")?;
//! let source = ChartSource::new(config, Default::default(), "/var/cache/upstart/charts")?;
//! let chart = source.fetch("upstart-charts/postgres", Some("^0.1")).await?;
//! println!("{} {} {} at {}", chart.name, chart.version, chart.digest, chart.path.display());
//! # Ok(()) }
//! ```
//!
//! # Chart references
//! - `ALIAS/NAME`: chart `NAME` from the repository configured as `ALIAS`.
//! - `oci://HOST[:PORT]/PATH/NAME`, `https://HOST/PATH/NAME` (the repository URL plus `/NAME`;
//!   `http://` too): a repository named directly. Accepted when it is the URL of a configured
//!   repository (its settings and credentials then apply) or when `allowUnlisted` is true;
//!   refused otherwise.
//! - `oci://HOST[:PORT]/PATH/NAME:TAG`: the manifest the tag points at. `version` is then
//!   optional and, when set, must be satisfied by the tag's version (a conflict is an
//!   [`Error::InvalidReference`] naming both). A tag that is a version (as `helm push` writes
//!   them, `+` as `_`) must match the chart's `Chart.yaml`; another tag takes the chart as it is.
//! - `oci://HOST[:PORT]/PATH/NAME@sha256:HEX` (or `NAME:TAG@sha256:HEX`): exactly that
//!   manifest, pulled by digest and its content checked against it; `version`, when set, must
//!   be satisfied by the chart it holds.
//! - `file:PATH`: a chart directory or `.tgz` under one of `localRoots` (a relative `PATH` is
//!   looked up in each root in order; `..` and symlinks leaving the roots are refused).
//! - `git+https://HOST/PATH@DIR?ref=REF` (`git+http://`, `git+ssh://[USER@]HOST/PATH`, the
//!   helm-git plugin's form): the chart in directory `DIR` (none: the root) of the commit the
//!   branch or tag `REF` points at (none: the remote's `HEAD`; 40 hex digits: that commit),
//!   read with the git command-line client (see `src/git.rs`). Accepted when the repository
//!   (`git+SCHEME://HOST/PATH`) is configured (its credentials then apply) or `allowUnlisted`
//!   is true. `version` is optional and, when set, must be satisfied by the chart's
//!   `Chart.yaml`. [`ChartSource::resolve_commit`] resolves the ref (reused within the
//!   caller's interval), [`ChartSource::fetch_at`] reads that commit, and
//!   [`FetchedChart::commit`] records it. A ref deleted after the chart was fetched keeps the
//!   chart, with [`Stale::ref_deleted`] set.
//!
//! # Tags that move
//! [`ChartSource::resolve_manifest`] gives the manifest digest an OCI reference and version
//! resolve to now (a `HEAD` of the manifest, reused until older than the caller's interval,
//! the last answer kept while the registry is down), and [`ChartSource::fetch_at`] reads that
//! manifest rather than the tag, so that what is rendered is what was resolved;
//! [`FetchedChart::manifest_digest`] records it. [`ChartSource::image_digest`] does the same
//! for container images (the `imageDigest` expression helper), through the configured OCI
//! repository whose path holds the image.
//!
//! # Versions
//! Exact (`1.2.3`) or a range in Helm's constraint syntax (`^0.1`, `~1.2`, `>=1.2 <2`,
//! `1.2.x`, `1.2 - 1.4`, `^1 || ^2`), evaluated exactly as Helm's Masterminds/semver does (see
//! [`Constraint`]); none means the newest stable (non-prerelease) version. The resolved
//! version and the archive's `sha256:` digest are returned for status.
//!
//! # Dependencies not vendored
//! A chart whose `Chart.yaml` lists dependencies with a `repository` but has no subchart of
//! that name in `charts/` (a chart packaged without `helm dependency build`) gets them as
//! `helm dependency build` would: the versions of its `Chart.lock` when it has one (after
//! helm's check that the lock's digest matches `Chart.yaml`), else the newest version each
//! constraint allows. A dependency's `repository` is an `https://` or `oci://` repository
//! (configured, or unlisted under the `allowUnlisted` rule), `@ALIAS` or `alias:ALIAS` (a
//! configured repository) or `file://PATH` (relative to the chart's directory: inside a local
//! root for a `file:` chart, inside the chart for one from a repository). Each is fetched
//! like a chart (same limits, cache and outage rule), and the chart is copied with their
//! archives added under `charts/` into `CACHE/assembled/sha256/<hex>/`, `<hex>` digesting the
//! chart's and the dependencies' archives ([`FetchedChart::content_digest`]). Conditions,
//! tags, aliases and import-values are left to helm. Dependencies of dependencies are not
//! fetched (helm does not either: a published dependency carries its own `charts/`).
//!
//! # Configuration (YAML, e.g. from a ConfigMap)
//! ```yaml
//! repositories:                      # by alias
//!   upstart-charts:
//!     url: https://charts.example.com  # HTTP repository serving index.yaml
//!     credentialsSecret: charts-auth   # optional: a Secret in the operator's namespace
//!     caBundle: |                      # optional: extra trusted CA certificates (PEM)
//!       -----BEGIN CERTIFICATE-----
//!       ...
//!   registry:
//!     url: oci://registry.example.com/charts
//!     kind: oci                        # optional: http | oci | git, default from the URL scheme
//!     plainHttp: false                 # OCI only: plain HTTP (local registries)
//! allowUnlisted: false               # accept direct oci:// and https:// references to other repositories
//! unlistedPlainHttp: false           # plain HTTP for unlisted OCI registries (development)
//! localRoots: []                     # directories file: charts may come from
//! indexTtl: 5m                       # re-read index.yaml at most this often (conditionally)
//! missingRereadAfter: 10s            # a chart missing from an index this old re-reads it
//! limits:
//!   maxIndexBytes: 67108864          # 64 MiB
//!   maxArchiveBytes: 20971520        # 20 MiB
//!   maxUnpackedBytes: 104857600      # 100 MiB
//!   maxFiles: 10000                  # entries per archive
//!   fetchTimeout: 60s                # per index, manifest or archive fetch
//! ```
//! A credentials Secret may hold `username` + `password` (basic auth), `token` (bearer),
//! `.dockerconfigjson` (OCI; the `auths` entry for the registry host is used), `ca.crt`
//! (PEM), and for `git+ssh://` repositories `ssh-privatekey` and `known_hosts`. The operator reads it and passes [`Credentials::from_secret_data`] under the
//! repository's alias; this crate never talks to Kubernetes. Credentials are sent only to the
//! repository's own origin and never appear in errors or logs.
//!
//! # Cache
//! `CACHE/archives/sha256/<hex>.tgz` holds verified archives and `CACHE/charts/sha256/<hex>/`
//! the chart unpacked from each, written atomically (temporary name, then rename). An HTTP
//! chart whose index digest is cached and an OCI tag whose chart layer digest is cached are not
//! downloaded again; concurrent fetches of one chart download it once. The cache directory
//! belongs to one process. Archives are unpacked only when safe: one top-level directory named
//! like the chart holding its `Chart.yaml`, no absolute paths, `..`, device files, or links
//! leaving the chart, within the size and count limits (what a link leads to counts as often
//! as it is linked, since helm reads it through each link).
//!
//! # Outages (stale-while-error)
//! When a repository cannot be reached (connection refused, timeout, HTTP 5xx, 408 or 429:
//! [`Error::outage_repository`]) and the same reference and version were fetched before by
//! this process, that chart is returned from the cache with [`FetchedChart::stale`] naming the
//! repository and the failure, so an outage does not fail releases that already had their
//! chart. A repository that answers is believed: not found or access denied are errors.

mod archive;
mod cache;
mod config;
mod constraint;
mod dependencies;
mod error;
#[doc(hidden)]
pub mod fuzz_targets;
mod git;
mod http;
mod oci;
mod reference;

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use archive::{ChartMeta, check_archive};
pub use config::{BasicAuth, Credentials, Limits, Repository, RepositoryConfig, RepositoryKind};
pub use constraint::{Constraint, parse_version};
pub use error::{Error, redact_url};
pub use git::{SSH_WRAPPER_ENV, exec_ssh_if_asked};
pub use oci::CHART_LAYER_MEDIA_TYPE;

use crate::cache::{Cache, is_sha256_hex, sha256_hex};
use crate::git::GitRepo;
use crate::http::{HttpRepo, Index, IndexEntry};
use crate::oci::{Failure, ManifestAt, OciRepo};
use crate::reference::{ChartRef, OciPin};

/// A chart ready to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedChart {
    /// The unpacked chart directory (holding `Chart.yaml`) in the cache.
    pub path: PathBuf,
    /// The chart's name.
    pub name: String,
    /// The resolved version (as `Chart.yaml` has it).
    pub version: String,
    /// The archive's digest, `sha256:<hex>`.
    pub digest: String,
    /// For a chart from an OCI registry: the digest (`sha256:<hex>`) of the manifest it was
    /// read from. A tag moved to another manifest changes it.
    pub manifest_digest: Option<String>,
    /// For a chart from a git repository: the commit (40 hex digits) it was read from. A
    /// branch or tag moved to another commit changes it.
    pub commit: Option<String>,
    /// What is rendered: the archive's digest, or when dependencies were fetched into the
    /// chart, a digest of it and of theirs (`sha256:<hex>`). Keys the render cache.
    pub content_digest: String,
    /// The dependencies `Chart.yaml` lists that the chart did not vendor, fetched into its
    /// `charts/` as `helm dependency build` would (see the crate docs).
    pub dependencies: Vec<FetchedDependency>,
    /// Set when the repository could not be read and this is the chart the same reference
    /// resolved to last time (stale-while-error): what failed, naming the repository.
    pub stale: Option<Stale>,
}

/// A dependency fetched into a chart's `charts/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedDependency {
    /// The chart's name (as `Chart.yaml` lists it).
    pub name: String,
    /// The version resolved.
    pub version: String,
    /// Its archive's digest, `sha256:<hex>`.
    pub digest: String,
}

impl FetchedChart {
    fn plain(path: PathBuf, name: String, version: String, hex: &str) -> Self {
        let digest = format!("sha256:{hex}");
        FetchedChart {
            path,
            name,
            version,
            content_digest: digest.clone(),
            digest,
            manifest_digest: None,
            commit: None,
            dependencies: Vec::new(),
            stale: None,
        }
    }
}

/// Why a chart was served from the cache without reading its repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    /// The repository (URL without credentials or query, or the OCI registry and path).
    pub repository: String,
    /// The failure that kept it from being read (never a credential).
    pub error: String,
    /// Whether the repository answered and the git ref is gone (a deleted branch or tag),
    /// rather than the repository being unreachable.
    pub ref_deleted: bool,
}

/// Resolves and fetches charts. Cheap to clone; share one per process.
#[derive(Clone, Debug)]
pub struct ChartSource {
    inner: Arc<Inner>,
}

#[derive(Clone, Debug)]
enum Repo {
    Http(Arc<HttpRepo>),
    Oci(Arc<OciRepo>),
}

#[derive(Debug)]
struct Inner {
    config: RepositoryConfig,
    repos: BTreeMap<String, Repo>,
    /// Direct references to repositories that are not configured, kept so their indexes are
    /// cached like the configured ones'.
    unlisted: Mutex<HashMap<String, Repo>>,
    /// `(archive URL) -> hex` for index entries without a digest, so they are not downloaded
    /// on every fetch (a published chart version is immutable).
    undigested: Mutex<HashMap<String, String>>,
    /// `(reference, requested version) -> chart` last fetched from a repository, served when
    /// the repository is down so an outage does not fail releases that already had it.
    last_good: Mutex<HashMap<(String, Option<String>), FetchedChart>>,
    /// Tags resolved to manifest digests (charts and `imageDigest` images), with when: reused
    /// until older than the caller's interval, and served while the registry is down.
    resolved: Mutex<HashMap<String, (String, std::time::Instant)>>,
    local_roots: Vec<PathBuf>,
    /// Configured git repositories by URL (`git+https://HOST/PATH`), and unlisted ones used
    /// since (when `allowUnlisted`).
    git_repos: BTreeMap<String, Arc<GitRepo>>,
    git_unlisted: Mutex<HashMap<String, Arc<GitRepo>>>,
    /// `(repository, commit, directory) -> (archive hex, chart name)`: a commit's chart is
    /// fetched from git once (also recorded in the cache directory, for the next process).
    git_charts: Mutex<HashMap<String, (String, String)>>,
    cache: Cache,
}

fn config_error(message: impl Into<String>) -> Error {
    Error::Config(message.into())
}

fn valid_alias(alias: &str) -> bool {
    !alias.is_empty()
        && alias
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Splits `oci://HOST[:PORT][/PATH]` into host and path.
fn split_oci_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("oci://")?.trim_end_matches('/');
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if host.is_empty() || path.split('/').any(|s| s == "." || s == "..") {
        return None;
    }
    if !path.is_empty() && path.split('/').any(str::is_empty) {
        return None;
    }
    Some((host.to_owned(), path.to_owned()))
}

impl ChartSource {
    /// Checks the configuration and opens the cache in `cache_dir`. `credentials` are keyed by
    /// repository alias (the operator resolves each repository's `credentialsSecret`).
    pub fn new(
        config: RepositoryConfig,
        credentials: HashMap<String, Credentials>,
        cache_dir: impl Into<PathBuf>,
    ) -> Result<Self, Error> {
        // reqwest is built without a default crypto provider; use ring, as kube does. Another
        // provider installed earlier by the process is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
        for alias in credentials.keys() {
            if !config.repositories.contains_key(alias) {
                return Err(config_error(format!(
                    "credentials given for {alias:?}, which is not a configured repository"
                )));
            }
        }
        let mut repos = BTreeMap::new();
        let mut git_repos = BTreeMap::new();
        for (alias, repository) in &config.repositories {
            if !valid_alias(alias) {
                return Err(config_error(format!(
                    "repository alias {alias:?} must be letters, digits, '-', '_' or '.'"
                )));
            }
            let url = repository.url.trim();
            if url.starts_with("git+") || repository.kind == Some(RepositoryKind::Git) {
                if repository.ca_bundle.is_some() || repository.plain_http {
                    return Err(config_error(format!(
                        "repository {alias:?}: caBundle and plainHttp do not apply to git repositories (git uses the system CA store; write the URL as git+http:// for plain HTTP)"
                    )));
                }
                let repo = GitRepo::new(url, credentials.get(alias), &config.limits).map_err(
                    |e| match e {
                        Error::Config(message) => {
                            config_error(format!("repository {alias:?}: {message}"))
                        }
                        other => other,
                    },
                )?;
                git_repos.insert(repo.display.clone(), Arc::new(repo));
                continue;
            }
            let repo = build_repo(alias, repository, credentials.get(alias), &config)?;
            repos.insert(alias.clone(), repo);
        }
        let mut local_roots = Vec::new();
        for root in &config.local_roots {
            let real = root
                .canonicalize()
                .map_err(|e| config_error(format!("local chart root {}: {e}", root.display())))?;
            local_roots.push(real);
        }
        let cache = Cache::new(cache_dir.into())?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                repos,
                unlisted: Mutex::new(HashMap::new()),
                undigested: Mutex::new(HashMap::new()),
                last_good: Mutex::new(HashMap::new()),
                resolved: Mutex::new(HashMap::new()),
                local_roots,
                git_repos,
                git_unlisted: Mutex::new(HashMap::new()),
                git_charts: Mutex::new(HashMap::new()),
                cache,
            }),
        })
    }

    /// Resolves `chart` (see the crate docs for the forms) and `version` (exact, a range, or
    /// `None` for the newest stable), and returns the unpacked chart from the cache, fetching
    /// it first when needed.
    pub async fn fetch(&self, chart: &str, version: Option<&str>) -> Result<FetchedChart, Error> {
        self.fetch_at(chart, version, None).await
    }

    /// As [`ChartSource::fetch`], reading an OCI chart from the manifest `manifest`
    /// (`sha256:<hex>`, as [`ChartSource::resolve_manifest`] gave it) rather than from where
    /// its tag points now, and a git chart from the commit `manifest` (40 hex digits, as
    /// [`ChartSource::resolve_commit`] gave it) rather than from where its ref points now, so
    /// that what is rendered is what was resolved. Ignored for charts from elsewhere.
    #[tracing::instrument(skip_all, fields(chart = %redact_url(chart), version = ?version))]
    pub async fn fetch_at(
        &self,
        chart: &str,
        version: Option<&str>,
        manifest: Option<&str>,
    ) -> Result<FetchedChart, Error> {
        let requested = version.map(str::trim).filter(|v| !v.is_empty());
        let key = (chart.to_owned(), requested.map(str::to_owned));
        let result = self.fetch_fresh(chart, requested, manifest).await;
        let mut last_good = self
            .inner
            .last_good
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(fetched) => {
                if !chart.starts_with("file:") {
                    last_good.insert(key, fetched.clone());
                }
                Ok(fetched)
            }
            Err(error) => {
                // Only an unreachable repository, or a git ref that is gone: a repository
                // that answers otherwise (not found, denied, a bad archive) is believed, and
                // the release fails as it should.
                let Some((repository, ref_deleted)) = error.keeps_last_chart() else {
                    return Err(error);
                };
                match last_good.get(&key) {
                    // The unpacked chart is in the digest-addressed cache; gone means a
                    // cache wipe, and nothing is left to serve.
                    Some(good) if good.path.join("Chart.yaml").is_file() => {
                        tracing::warn!(
                            chart = %redact_url(chart),
                            repository = %repository,
                            error = %error,
                            "repository unavailable: serving the chart fetched last time"
                        );
                        Ok(FetchedChart {
                            stale: Some(Stale {
                                repository,
                                error: error.to_string(),
                                ref_deleted,
                            }),
                            ..good.clone()
                        })
                    }
                    _ => Err(error),
                }
            }
        }
    }

    async fn fetch_fresh(
        &self,
        chart: &str,
        requested: Option<&str>,
        manifest: Option<&str>,
    ) -> Result<FetchedChart, Error> {
        let constraint = constraint_of(requested)?;
        let wanted = Wanted {
            requested,
            constraint: &constraint,
        };
        let (fetched, origin) = match reference::parse(chart)? {
            ChartRef::Alias { alias, name } => {
                let Some(repo) = self.inner.repos.get(&alias) else {
                    if let Some(git) = self.inner.config.repositories.get(&alias) {
                        return Err(Error::InvalidReference {
                            reference: chart.to_owned(),
                            reason: format!(
                                "{alias:?} is a git repository: name the chart as {}@DIRECTORY?ref=BRANCH",
                                git.url.trim()
                            ),
                        });
                    }
                    return Err(Error::UnknownAlias {
                        reference: chart.to_owned(),
                        alias,
                        known: self.known_aliases(),
                    });
                };
                let fetched = match repo {
                    Repo::Oci(repo) => {
                        let at = OciAt {
                            reference: chart,
                            pin: None,
                            manifest,
                        };
                        self.fetch_oci(repo, &name, &wanted, &at).await?
                    }
                    Repo::Http(_) => self.fetch_from(repo, &name, &wanted).await?,
                };
                (fetched, None)
            }
            ChartRef::Oci {
                registry,
                namespace,
                name,
                pin,
            } => {
                let Repo::Oci(repo) = self.oci_repo(chart, &registry, &namespace)? else {
                    return Err(config_error(
                        "an oci:// reference resolved to an HTTP repository",
                    ));
                };
                let at = OciAt {
                    reference: chart,
                    pin: pin.as_ref(),
                    manifest,
                };
                (self.fetch_oci(&repo, &name, &wanted, &at).await?, None)
            }
            ChartRef::Http { repo_url, name } => {
                let repo = self.http_repo(chart, &repo_url)?;
                (self.fetch_from(&repo, &name, &wanted).await?, None)
            }
            ChartRef::File { path } => self.fetch_local(chart, &path, &wanted).await?,
            ChartRef::Git {
                repo_url,
                dir,
                git_ref,
            } => {
                let repo = self.git_repo(chart, &repo_url)?;
                let commit = match manifest.filter(|m| git::is_commit(m)) {
                    Some(commit) => commit.to_owned(),
                    None => {
                        repo.resolve(git_ref.as_deref(), &self.inner.cache.tmp_dir())
                            .await?
                    }
                };
                (self.fetch_git(&repo, &commit, &dir, &wanted).await?, None)
            }
        };
        self.with_dependencies(fetched, origin.as_deref()).await
    }

    /// The chart with the dependencies `Chart.yaml` lists but `charts/` lacks fetched into a
    /// copy of it (see [`dependencies`]); the chart itself when nothing is missing. `origin`:
    /// the directory of a `file:` chart, which `file://` dependencies are relative to.
    async fn with_dependencies(
        &self,
        chart: FetchedChart,
        origin: Option<&Path>,
    ) -> Result<FetchedChart, Error> {
        let aliases: BTreeMap<String, String> = self
            .inner
            .config
            .repositories
            .iter()
            .map(|(alias, r)| (alias.clone(), r.url.trim().to_owned()))
            .collect();
        let (name, dir) = (chart.name.clone(), chart.path.clone());
        let needed =
            tokio::task::spawn_blocking(move || dependencies::needed(&name, &dir, &aliases))
                .await
                .map_err(|e| Error::cache("dependencies", std::io::Error::other(e)))??;
        if needed.is_empty() {
            return Ok(chart);
        }
        let mut inserted = Vec::new();
        let mut fetched = Vec::new();
        for dependency in &needed {
            let found = self
                .fetch_dependency(&chart, dependency, origin)
                .await
                .map_err(|e| match e {
                    e @ (Error::UnlistedDependencyRepository { .. }
                    | Error::UnknownDependencyAlias { .. }
                    | Error::InvalidDependency { .. }) => e,
                    other => Error::Dependency {
                        chart: chart.name.clone(),
                        dependency: dependency.name.clone(),
                        source: Box::new(other),
                    },
                })?;
            let hex = found.digest.trim_start_matches("sha256:").to_owned();
            let archive = self.inner.cache.archive_path(&hex);
            inserted.push(dependencies::Inserted {
                name: found.name.clone(),
                version: found.version.clone(),
                archive: archive.is_file().then_some(archive),
                dir: found.path.clone(),
            });
            fetched.push(FetchedDependency {
                name: found.name,
                version: found.version,
                digest: found.digest,
            });
        }
        let base_hex = chart.digest.trim_start_matches("sha256:");
        let pairs: Vec<(String, String)> = fetched
            .iter()
            .map(|d| (d.name.clone(), d.digest.clone()))
            .collect();
        let hex = dependencies::assembled_hex(base_hex, &pairs);
        let dest = self.inner.cache.assembled_dir(&hex);
        if !dest.is_dir() {
            let _guard = self.inner.cache.lock(&hex).await;
            if !dest.is_dir() {
                let tmp = self.inner.cache.tmp_dir();
                let (base, dest) = (chart.path.clone(), dest.clone());
                tokio::task::spawn_blocking(move || {
                    dependencies::assemble(&tmp, &base, &inserted, &dest)
                })
                .await
                .map_err(|e| Error::cache("dependencies", std::io::Error::other(e)))??;
            }
        }
        tracing::debug!(chart = %chart.name, dependencies = fetched.len(), "dependencies fetched into the chart");
        Ok(FetchedChart {
            path: dest,
            content_digest: format!("sha256:{hex}"),
            dependencies: fetched,
            ..chart
        })
    }

    /// Fetches one dependency from where its `repository` says, under the rules that apply
    /// to chart references (configured repositories, `allowUnlisted`, limits, the cache).
    async fn fetch_dependency(
        &self,
        chart: &FetchedChart,
        dependency: &dependencies::Needed,
        origin: Option<&Path>,
    ) -> Result<FetchedChart, Error> {
        let name = dependency.name.as_str();
        let repository = dependency.repository.trim_end_matches('/');
        let requested = Some(dependency.version.as_str()).filter(|v| !v.is_empty());
        let constraint = constraint_of(requested)?;
        let wanted = Wanted {
            requested,
            constraint: &constraint,
        };
        let unlisted = |e: Error| match e {
            Error::UnlistedRepository { .. } => Error::UnlistedDependencyRepository {
                chart: chart.name.clone(),
                dependency: name.to_owned(),
                repository: redact_url(repository),
            },
            other => other,
        };
        if repository.starts_with("file://") {
            let (base, roots) = match origin {
                Some(dir) => (dir.to_path_buf(), self.inner.local_roots.clone()),
                None => {
                    let real = chart
                        .path
                        .canonicalize()
                        .map_err(|e| Error::cache(&chart.path, e))?;
                    (real.clone(), vec![real])
                }
            };
            let path =
                dependencies::local_dependency(&chart.name, name, repository, &base, &roots)?;
            let found = self.local_chart(repository, path, &wanted).await?;
            if found.name != name {
                return Err(Error::InvalidDependency {
                    chart: chart.name.clone(),
                    dependency: name.to_owned(),
                    reason: format!("{repository} holds chart {:?}", found.name),
                });
            }
            return Ok(found);
        }
        if let Some(alias) = dependencies::repository_alias(repository) {
            let Some(repo) = self.inner.repos.get(alias) else {
                return Err(Error::UnknownDependencyAlias {
                    chart: chart.name.clone(),
                    dependency: name.to_owned(),
                    alias: alias.to_owned(),
                    known: self.known_aliases(),
                });
            };
            return self.fetch_from(repo, name, &wanted).await;
        }
        if repository.starts_with("oci://") {
            let Some((host, path)) = split_oci_url(repository) else {
                return Err(Error::InvalidDependency {
                    chart: chart.name.clone(),
                    dependency: name.to_owned(),
                    reason: format!("repository {repository:?}: expected oci://HOST[:PORT][/PATH]"),
                });
            };
            let reference = format!("{repository}/{name}");
            let repo = self.oci_repo(&reference, &host, &path).map_err(unlisted)?;
            return self.fetch_from(&repo, name, &wanted).await;
        }
        if repository.starts_with("https://") || repository.starts_with("http://") {
            let reference = format!("{repository}/{name}");
            let repo = self.http_repo(&reference, repository).map_err(unlisted)?;
            return self.fetch_from(&repo, name, &wanted).await;
        }
        Err(Error::InvalidDependency {
            chart: chart.name.clone(),
            dependency: name.to_owned(),
            reason: format!(
                "repository {:?} is none of https://…, oci://…, @ALIAS, alias:ALIAS or file://PATH",
                redact_url(repository)
            ),
        })
    }

    fn known_aliases(&self) -> String {
        if self.inner.repos.is_empty() {
            return "none".into();
        }
        self.inner
            .repos
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The configured repository at `registry/namespace`, or an unlisted one when allowed.
    fn oci_repo(&self, reference: &str, registry: &str, namespace: &str) -> Result<Repo, Error> {
        for (alias, repository) in &self.inner.config.repositories {
            if let Some((host, path)) = split_oci_url(&repository.url)
                && host == registry
                && path == namespace
                && let Some(repo) = self.inner.repos.get(alias)
            {
                return Ok(repo.clone());
            }
        }
        if !self.inner.config.allow_unlisted {
            return Err(Error::UnlistedRepository {
                reference: reference.to_owned(),
            });
        }
        let key = format!("oci://{registry}/{namespace}");
        let mut unlisted = self
            .inner
            .unlisted
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(repo) = unlisted.get(&key) {
            return Ok(repo.clone());
        }
        let repo = Repo::Oci(Arc::new(OciRepo::new(
            registry,
            namespace,
            self.inner.config.unlisted_plain_http,
            None,
            &[],
            &self.inner.config.limits,
        )?));
        unlisted.insert(key, repo.clone());
        Ok(repo)
    }

    /// The configured HTTP repository at `repo_url`, or an unlisted one when allowed.
    fn http_repo(&self, reference: &str, repo_url: &str) -> Result<Repo, Error> {
        let wanted = repo_url.trim_end_matches('/');
        for (alias, repository) in &self.inner.config.repositories {
            if repository.url.trim_end_matches('/') == wanted
                && let Some(repo @ Repo::Http(_)) = self.inner.repos.get(alias)
            {
                return Ok(repo.clone());
            }
        }
        if !self.inner.config.allow_unlisted {
            return Err(Error::UnlistedRepository {
                reference: reference.to_owned(),
            });
        }
        let mut unlisted = self
            .inner
            .unlisted
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(repo) = unlisted.get(wanted) {
            return Ok(repo.clone());
        }
        let config = &self.inner.config;
        let repo = Repo::Http(Arc::new(HttpRepo::new(wanted, None, &[], config)?));
        unlisted.insert(wanted.to_owned(), repo.clone());
        Ok(repo)
    }

    async fn fetch_from(
        &self,
        repo: &Repo,
        name: &str,
        wanted: &Wanted<'_>,
    ) -> Result<FetchedChart, Error> {
        match repo {
            Repo::Http(repo) => self.fetch_http(repo, name, wanted).await,
            Repo::Oci(repo) => {
                let at = OciAt {
                    reference: name,
                    pin: None,
                    manifest: None,
                };
                self.fetch_oci(repo, name, wanted, &at).await
            }
        }
    }

    async fn fetch_http(
        &self,
        repo: &HttpRepo,
        name: &str,
        wanted: &Wanted<'_>,
    ) -> Result<FetchedChart, Error> {
        let entry = match find_entry(&*repo.index().await?, &repo.display, name, wanted) {
            Ok(entry) => entry,
            // Published since the cached index was read, perhaps: a fresher index decides.
            Err(Error::ChartNotFound { .. } | Error::NoMatchingVersion { .. }) => find_entry(
                &*repo.index_for_missing().await?,
                &repo.display,
                name,
                wanted,
            )?,
            Err(other) => return Err(other),
        };
        let expected = match entry
            .digest
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            None => None,
            Some(digest) => {
                let hex = digest
                    .strip_prefix("sha256:")
                    .unwrap_or(digest)
                    .to_ascii_lowercase();
                if !is_sha256_hex(&hex) {
                    return Err(Error::InvalidIndex {
                        repository: repo.display.clone(),
                        reason: format!("chart {name:?} {}: digest is not a sha256", entry.version),
                    });
                }
                Some(hex)
            }
        };
        let memo_key = format!("{}|{name}|{}", repo.display, entry.version);
        let hex = match expected {
            Some(hex) => Some(hex),
            None => self
                .inner
                .undigested
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&memo_key)
                .cloned(),
        };
        if let Some(hex) = &hex {
            if let Some(found) = self.cached(hex, name, &entry.version).await? {
                return Ok(found);
            }
            let _guard = self.inner.cache.lock(hex).await;
            if let Some(found) = self.cached(hex, name, &entry.version).await? {
                return Ok(found);
            }
            if let Some(archive) = self.inner.cache.cached_archive(hex).await? {
                return self.store(hex, archive, name, &entry.version).await;
            }
            let archive = repo.download(name, &entry).await?;
            let actual = sha256_hex(&archive);
            if entry.digest.is_some() && &actual != hex {
                return Err(Error::DigestMismatch {
                    chart: name.to_owned(),
                    version: entry.version.clone(),
                    expected: hex.clone(),
                    actual,
                });
            }
            return self.store(&actual, archive, name, &entry.version).await;
        }
        let _guard = self.inner.cache.lock(&memo_key).await;
        let archive = repo.download(name, &entry).await?;
        let actual = sha256_hex(&archive);
        let fetched = match self.cached(&actual, name, &entry.version).await? {
            Some(found) => found,
            None => self.store(&actual, archive, name, &entry.version).await?,
        };
        self.inner
            .undigested
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(memo_key, actual);
        Ok(fetched)
    }

    /// Which tag (or manifest) of chart `name` in `repo` a reference and `version` name.
    async fn oci_target(
        &self,
        repo: &OciRepo,
        name: &str,
        wanted: &Wanted<'_>,
        at: &OciAt<'_>,
    ) -> Result<OciTarget, Error> {
        let tag_version = |tag: &str| {
            let version = oci::version_for_tag(tag);
            parse_version(&version).is_some().then_some(version)
        };
        match at.pin {
            Some(OciPin::Digest { digest, tag }) => {
                if let Some(tag) = tag {
                    agree(at.reference, tag, wanted)?;
                }
                Ok(OciTarget {
                    tag: tag.clone(),
                    version: tag.as_deref().and_then(tag_version),
                    digest: Some(digest.clone()),
                })
            }
            Some(OciPin::Tag(tag)) => {
                agree(at.reference, tag, wanted)?;
                Ok(OciTarget {
                    tag: Some(tag.clone()),
                    version: tag_version(tag),
                    digest: None,
                })
            }
            None => {
                // An exact version is its own tag: no need to list tags (Helm does the same).
                let version = match (wanted.requested, wanted.constraint.exact()) {
                    (Some(requested), Some(_)) => {
                        requested.trim_start_matches('=').trim().to_owned()
                    }
                    _ => {
                        let tags = repo.tags(name).await.map_err(|f| match f {
                            Failure::NotFound => Error::ChartNotFound {
                                chart: name.to_owned(),
                                repository: repo.display.clone(),
                            },
                            Failure::Other(e) => e,
                        })?;
                        let versions: Vec<String> =
                            tags.iter().map(|t| oci::version_for_tag(t)).collect();
                        let chosen = select_version(name, &repo.display, &versions, wanted)?;
                        versions[chosen].clone()
                    }
                };
                Ok(OciTarget {
                    tag: Some(oci::tag_for_version(&version)),
                    version: Some(version),
                    digest: None,
                })
            }
        }
    }

    /// The chart `name` from `repo`: the manifest `at` names (see [`OciAt`]), its chart layer
    /// from the cache or downloaded and checked against the layer's digest.
    async fn fetch_oci(
        &self,
        repo: &OciRepo,
        name: &str,
        wanted: &Wanted<'_>,
        at: &OciAt<'_>,
    ) -> Result<FetchedChart, Error> {
        let target = match at.manifest {
            // Resolved before: the tag is not read again, and the chart's own version is
            // checked against `version` below.
            Some(digest) => {
                if let Some(OciPin::Tag(tag) | OciPin::Digest { tag: Some(tag), .. }) = at.pin {
                    agree(at.reference, tag, wanted)?;
                }
                OciTarget {
                    tag: None,
                    version: None,
                    digest: Some(digest.to_owned()),
                }
            }
            None => self.oci_target(repo, name, wanted, at).await?,
        };
        let manifest = target.digest.as_deref();
        let place = match (manifest, &target.tag) {
            (Some(digest), _) => ManifestAt::Digest(digest),
            (None, Some(tag)) => ManifestAt::Tag(tag),
            (None, None) => return Err(config_error("an OCI chart with neither tag nor digest")),
        };
        let label = match &place {
            ManifestAt::Digest(digest) => format!("{name}@{digest}"),
            ManifestAt::Tag(tag) => format!("{name}:{tag}"),
        };
        let (layer, manifest_digest) = match repo.chart_layer(name, &place).await {
            Ok(found) => found,
            Err(Failure::Other(e)) => return Err(e),
            Err(Failure::NotFound) => {
                let constraint = match (&place, &target.version) {
                    (ManifestAt::Tag(_), Some(version)) => version.clone(),
                    _ => {
                        return Err(Error::ChartNotFound {
                            chart: label,
                            repository: repo.display.clone(),
                        });
                    }
                };
                // Say what exists, as for a range that matches nothing.
                return Err(match repo.tags(name).await {
                    Ok(tags) => Error::NoMatchingVersion {
                        chart: name.to_owned(),
                        repository: repo.display.clone(),
                        constraint,
                        available: list_versions(tags.iter().map(|t| oci::version_for_tag(t))),
                    },
                    Err(_) => Error::ChartNotFound {
                        chart: name.to_owned(),
                        repository: repo.display.clone(),
                    },
                });
            }
        };
        let Some(hex) = layer
            .digest
            .strip_prefix("sha256:")
            .filter(|h| is_sha256_hex(h))
            .map(str::to_owned)
        else {
            return Err(Error::Registry {
                registry: repo.display.clone(),
                message: format!("chart layer of {label} does not have a sha256 digest"),
                transient: false,
            });
        };
        let fetched = match self
            .cached_oci(&hex, name, target.version.as_deref())
            .await?
        {
            Some(found) => found,
            None => {
                let _guard = self.inner.cache.lock(&hex).await;
                match self
                    .cached_oci(&hex, name, target.version.as_deref())
                    .await?
                {
                    Some(found) => found,
                    None => {
                        let archive = match self.inner.cache.cached_archive(&hex).await? {
                            Some(archive) => archive,
                            None => {
                                let tag = target.tag.as_deref().unwrap_or(manifest_digest.as_str());
                                let archive = repo.pull_layer(name, tag, &layer).await?;
                                let actual = sha256_hex(&archive);
                                if actual != hex {
                                    return Err(Error::DigestMismatch {
                                        chart: name.to_owned(),
                                        version: label,
                                        expected: hex,
                                        actual,
                                    });
                                }
                                tracing::debug!(chart = name, manifest = %manifest_digest, digest = %hex, "chart layer downloaded");
                                archive
                            }
                        };
                        let (path, meta) = self
                            .inner
                            .cache
                            .store(&hex, archive, name, &self.inner.config.limits)
                            .await?;
                        checked_oci(path, meta, &hex, name, target.version.as_deref())?
                    }
                }
            }
        };
        // A digest says nothing of the version: `version`, when set, must agree.
        if target.version.is_none()
            && let Some(requested) = wanted.requested
            && requested != fetched.version
            && !parse_version(&fetched.version).is_some_and(|v| wanted.constraint.matches(&v))
        {
            return Err(Error::InvalidReference {
                reference: redact_url(at.reference),
                reason: format!(
                    "the manifest it names holds version {} of the chart, and `version` asks for {requested:?}; drop `version` (the reference decides) or make them agree",
                    fetched.version
                ),
            });
        }
        Ok(FetchedChart {
            manifest_digest: Some(manifest_digest),
            ..fetched
        })
    }

    /// The cached chart for `hex`, checked against the name and, when the tag is a version,
    /// that version.
    async fn cached_oci(
        &self,
        hex: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<FetchedChart>, Error> {
        match self.inner.cache.cached_chart(hex, name).await? {
            None => Ok(None),
            Some((path, meta)) => checked_oci(path, meta, hex, name, version).map(Some),
        }
    }

    /// The digest of the manifest an OCI chart reference and `version` resolve to now
    /// (`sha256:<hex>`): a tag listing when `version` is a range, then a HEAD of the manifest.
    /// `None` for charts that do not come from an OCI registry. A resolution younger than
    /// `max_age` is reused, and while the registry cannot be reached the last one is served
    /// (with a warning); a reference pinned by digest resolves to it without any request.
    pub async fn resolve_manifest(
        &self,
        chart: &str,
        version: Option<&str>,
        max_age: std::time::Duration,
    ) -> Result<Option<String>, Error> {
        let requested = version.map(str::trim).filter(|v| !v.is_empty());
        let (repo, name, pin) = match reference::parse(chart)? {
            ChartRef::Alias { alias, name } => match self.inner.repos.get(&alias) {
                Some(Repo::Oci(repo)) => (Arc::clone(repo), name, None),
                Some(Repo::Http(_)) => return Ok(None),
                None => {
                    return Err(Error::UnknownAlias {
                        reference: chart.to_owned(),
                        alias,
                        known: self.known_aliases(),
                    });
                }
            },
            ChartRef::Oci {
                registry,
                namespace,
                name,
                pin,
            } => match self.oci_repo(chart, &registry, &namespace)? {
                Repo::Oci(repo) => (repo, name, pin),
                Repo::Http(_) => return Ok(None),
            },
            ChartRef::Http { .. } | ChartRef::File { .. } | ChartRef::Git { .. } => {
                return Ok(None);
            }
        };
        if let Some(OciPin::Digest { digest, .. }) = &pin {
            return Ok(Some(digest.clone()));
        }
        let key = format!("chart\n{chart}\n{}", requested.unwrap_or_default());
        let resolved = self
            .memoized(key, max_age, async {
                let constraint = constraint_of(requested)?;
                let wanted = Wanted {
                    requested,
                    constraint: &constraint,
                };
                let at = OciAt {
                    reference: chart,
                    pin: pin.as_ref(),
                    manifest: None,
                };
                let target = self.oci_target(&repo, &name, &wanted, &at).await?;
                let tag = target.tag.unwrap_or_default();
                repo.manifest_digest(&name, &tag)
                    .await
                    .map_err(|f| match f {
                        Failure::NotFound => Error::ChartNotFound {
                            chart: format!("{name}:{tag}"),
                            repository: repo.display.clone(),
                        },
                        Failure::Other(e) => e,
                    })
            })
            .await?;
        Ok(Some(resolved))
    }

    /// The commit a git chart reference's ref (branch, tag, `HEAD` when none) points at now
    /// (40 hex digits): a `git ls-remote`. `None` for charts that do not come from git. A
    /// resolution younger than `max_age` is reused (releases naming the same repository and
    /// ref share it), and while the repository cannot be reached the last one is served (with a
    /// warning); a ref that is a commit resolves to it without any request.
    pub async fn resolve_commit(
        &self,
        chart: &str,
        max_age: std::time::Duration,
    ) -> Result<Option<String>, Error> {
        let ChartRef::Git {
            repo_url, git_ref, ..
        } = reference::parse(chart)?
        else {
            return Ok(None);
        };
        let repo = self.git_repo(chart, &repo_url)?;
        if let Some(commit) = git_ref.as_deref().filter(|r| git::is_commit(r)) {
            return Ok(Some(commit.to_owned()));
        }
        let key = format!(
            "git\n{}\n{}",
            repo.display,
            git_ref.as_deref().unwrap_or("HEAD")
        );
        let tmp = self.inner.cache.tmp_dir();
        let resolved = self
            .memoized(key, max_age, repo.resolve(git_ref.as_deref(), &tmp))
            .await?;
        Ok(Some(resolved))
    }

    /// The configured git repository at `repo_url` (`git+SCHEME://HOST/PATH`), or an unlisted
    /// one when allowed.
    fn git_repo(&self, reference: &str, repo_url: &str) -> Result<Arc<GitRepo>, Error> {
        if let Some(repo) = self.inner.git_repos.get(repo_url) {
            return Ok(Arc::clone(repo));
        }
        if !self.inner.config.allow_unlisted {
            return Err(Error::UnlistedRepository {
                reference: redact_url(reference),
            });
        }
        let mut unlisted = self
            .inner
            .git_unlisted
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(repo) = unlisted.get(repo_url) {
            return Ok(Arc::clone(repo));
        }
        let repo = Arc::new(GitRepo::new(repo_url, None, &self.inner.config.limits)?);
        unlisted.insert(repo_url.to_owned(), Arc::clone(&repo));
        Ok(repo)
    }

    /// The chart in directory `dir` of `commit`: from the cache when this commit's chart was
    /// read before, else fetched (shallow), unpacked under the archive rules and packaged;
    /// `version`, when set, must be satisfied by its `Chart.yaml`.
    async fn fetch_git(
        &self,
        repo: &GitRepo,
        commit: &str,
        dir: &str,
        wanted: &Wanted<'_>,
    ) -> Result<FetchedChart, Error> {
        let key = format!("{}\n{commit}\n{dir}", repo.display);
        let known = || {
            let remembered = self
                .inner
                .git_charts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .cloned();
            remembered.or_else(|| self.inner.cache.git_chart(&key))
        };
        let mut fetched = None;
        if let Some((hex, name)) = known() {
            fetched = self.cached_any_version(&hex, &name).await?;
        }
        let fetched = match fetched {
            Some(found) => found,
            None => {
                let _guard = self.inner.cache.lock(&key).await;
                let again = match known() {
                    Some((hex, name)) => self.cached_any_version(&hex, &name).await?,
                    None => None,
                };
                match again {
                    Some(found) => found,
                    None => {
                        let tmp = self.inner.cache.tmp_dir();
                        let (name, archive) = repo.chart_archive(commit, dir, &tmp).await?;
                        let hex = sha256_hex(&archive);
                        let found = self.cached_or_stored(&hex, archive, &name).await?;
                        tracing::debug!(repository = %repo.display, commit, dir, digest = %hex, "chart read from git");
                        self.inner.cache.record_git_chart(&key, &hex, &name)?;
                        self.inner
                            .git_charts
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(key.clone(), (hex, name));
                        found
                    }
                }
            }
        };
        if let Some(requested) = wanted.requested
            && requested != fetched.version
            && !parse_version(&fetched.version).is_some_and(|v| wanted.constraint.matches(&v))
        {
            return Err(Error::NoMatchingVersion {
                chart: fetched.name,
                repository: format!("{}@{dir} (commit {commit})", repo.display),
                constraint: requested.to_owned(),
                available: format!(
                    "{} (Chart.yaml at that commit; drop `version` to take it, or push a commit with a matching version)",
                    fetched.version
                ),
            });
        }
        Ok(FetchedChart {
            commit: Some(commit.to_owned()),
            ..fetched
        })
    }

    /// The manifest digest (`sha256:<hex>`) the image `REGISTRY/REPOSITORY:TAG` points at now,
    /// for the `imageDigest` expression helper: a HEAD of the manifest with the credentials,
    /// CA and plain-HTTP setting of the configured OCI repository on that registry whose path
    /// holds the image (`oci://REGISTRY/PATH` with `REPOSITORY` under `PATH`, or the registry
    /// alone), else anonymously when `allowUnlisted` is true; refused otherwise. Reused and
    /// served during outages as [`ChartSource::resolve_manifest`].
    pub async fn image_digest(
        &self,
        registry: &str,
        repository: &str,
        tag: &str,
        max_age: std::time::Duration,
    ) -> Result<String, Error> {
        let image = format!("{registry}/{repository}:{tag}");
        let (repo, name) = self.image_repo(&image, registry, repository)?;
        let key = format!("image\n{image}");
        self.memoized(key, max_age, async {
            repo.manifest_digest(&name, tag).await.map_err(|f| match f {
                Failure::NotFound => Error::ImageNotFound {
                    image: image.clone(),
                },
                Failure::Other(e) => e,
            })
        })
        .await
    }

    /// The repository an image is read through, and its name within it.
    fn image_repo(
        &self,
        image: &str,
        registry: &str,
        repository: &str,
    ) -> Result<(Arc<OciRepo>, String), Error> {
        let mut best: Option<(usize, &str)> = None;
        for (alias, configured) in &self.inner.config.repositories {
            let Some((host, path)) = split_oci_url(&configured.url) else {
                continue;
            };
            let inside = path.is_empty()
                || repository
                    .strip_prefix(path.as_str())
                    .is_some_and(|rest| rest.starts_with('/'));
            if host == registry && inside && best.is_none_or(|(len, _)| path.len() > len) {
                best = Some((path.len(), alias.as_str()));
            }
        }
        if let Some((len, alias)) = best
            && let Some(Repo::Oci(repo)) = self.inner.repos.get(alias)
        {
            let name = if len == 0 {
                repository.to_owned()
            } else {
                repository[len + 1..].to_owned()
            };
            return Ok((Arc::clone(repo), name));
        }
        if !self.inner.config.allow_unlisted {
            return Err(Error::UnlistedImageRegistry {
                image: image.to_owned(),
            });
        }
        match self.oci_repo(image, registry, "")? {
            Repo::Oci(repo) => Ok((repo, repository.to_owned())),
            Repo::Http(_) => Err(config_error(
                "an image registry resolved to an HTTP repository",
            )),
        }
    }

    /// `resolve`'s answer for `key`, reused while younger than `max_age`; when `resolve` fails
    /// because the registry cannot be reached, the last answer, however old.
    async fn memoized(
        &self,
        key: String,
        max_age: std::time::Duration,
        resolve: impl std::future::Future<Output = Result<String, Error>>,
    ) -> Result<String, Error> {
        let last = self
            .inner
            .resolved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some((digest, at)) = &last
            && at.elapsed() < max_age
        {
            return Ok(digest.clone());
        }
        match resolve.await {
            Ok(digest) => {
                self.inner
                    .resolved
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, (digest.clone(), std::time::Instant::now()));
                Ok(digest)
            }
            Err(error) => match (error.outage_repository(), last) {
                (Some(repository), Some((digest, _))) => {
                    tracing::warn!(
                        repository = %repository,
                        error = %error,
                        "registry unavailable: keeping the manifest digest resolved last time"
                    );
                    Ok(digest)
                }
                _ => Err(error),
            },
        }
    }

    /// A `file:` chart, and its directory when it is one (its `file://` dependencies are
    /// relative to it).
    async fn fetch_local(
        &self,
        reference: &str,
        path: &str,
        wanted: &Wanted<'_>,
    ) -> Result<(FetchedChart, Option<PathBuf>), Error> {
        let refused = |reason: &str| Error::LocalChartRefused {
            reference: reference.to_owned(),
            reason: reason.to_owned(),
        };
        if self.inner.local_roots.is_empty() {
            return Err(refused("no local chart roots are configured (localRoots)"));
        }
        let relative = Path::new(path);
        if relative.components().any(|c| c == Component::ParentDir) {
            return Err(refused("`..` is not allowed in local chart paths"));
        }
        let candidates: Vec<PathBuf> = if relative.is_absolute() {
            vec![relative.to_path_buf()]
        } else {
            self.inner
                .local_roots
                .iter()
                .map(|r| r.join(relative))
                .collect()
        };
        let mut found = None;
        for candidate in candidates {
            if let Ok(real) = candidate.canonicalize() {
                if !self
                    .inner
                    .local_roots
                    .iter()
                    .any(|root| real.starts_with(root))
                {
                    return Err(refused(
                        "the path is outside every local chart root (localRoots)",
                    ));
                }
                found = Some(real);
                break;
            }
        }
        let Some(real) = found else {
            return Err(Error::LocalChartNotFound {
                reference: reference.to_owned(),
            });
        };
        let origin = real.is_dir().then(|| real.clone());
        Ok((self.local_chart(reference, real, wanted).await?, origin))
    }

    /// Packages (a directory) or reads (a `.tgz`) the local chart at `real`, which the caller
    /// found allowed, into the cache, and checks its version against `wanted`.
    async fn local_chart(
        &self,
        reference: &str,
        real: PathBuf,
        wanted: &Wanted<'_>,
    ) -> Result<FetchedChart, Error> {
        let limits = self.inner.config.limits.clone();
        let reference_owned = reference.to_owned();
        let (name, archive) =
            tokio::task::spawn_blocking(move || read_local(&reference_owned, &real, &limits))
                .await
                .map_err(|e| Error::cache("local chart", std::io::Error::other(e)))??;
        let hex = sha256_hex(&archive);
        let fetched = match self.cached_any_version(&hex, &name).await? {
            Some(found) => found,
            None => {
                let _guard = self.inner.cache.lock(&hex).await;
                self.cached_or_stored(&hex, archive, &name).await?
            }
        };
        if let Some(requested) = wanted.requested {
            let matches = requested == fetched.version
                || parse_version(&fetched.version).is_some_and(|v| wanted.constraint.matches(&v));
            if !matches {
                return Err(Error::NoMatchingVersion {
                    chart: fetched.name,
                    repository: reference.to_owned(),
                    constraint: requested.to_owned(),
                    available: fetched.version,
                });
            }
        }
        Ok(fetched)
    }

    /// The cached chart of `archive` (digest `hex`), stored first when the cache lacks it; the
    /// caller holds the cache lock that serialises fetches of this chart.
    async fn cached_or_stored(
        &self,
        hex: &str,
        archive: Vec<u8>,
        name: &str,
    ) -> Result<FetchedChart, Error> {
        if let Some(found) = self.cached_any_version(hex, name).await? {
            return Ok(found);
        }
        let (path, meta) = self
            .inner
            .cache
            .store(hex, archive, name, &self.inner.config.limits)
            .await?;
        Ok(FetchedChart::plain(path, meta.name, meta.version, hex))
    }

    async fn cached_any_version(
        &self,
        hex: &str,
        name: &str,
    ) -> Result<Option<FetchedChart>, Error> {
        Ok(self
            .inner
            .cache
            .cached_chart(hex, name)
            .await?
            .filter(|(_, meta)| meta.name == name)
            .map(|(path, meta)| FetchedChart::plain(path, meta.name, meta.version, hex)))
    }

    /// The cached chart for `hex`, checked against the expected name and version.
    async fn cached(
        &self,
        hex: &str,
        name: &str,
        version: &str,
    ) -> Result<Option<FetchedChart>, Error> {
        match self.inner.cache.cached_chart(hex, name).await? {
            None => Ok(None),
            Some((path, meta)) => checked(path, meta, hex, name, version).map(Some),
        }
    }

    async fn store(
        &self,
        hex: &str,
        archive: Vec<u8>,
        name: &str,
        version: &str,
    ) -> Result<FetchedChart, Error> {
        let (path, meta) = self
            .inner
            .cache
            .store(hex, archive, name, &self.inner.config.limits)
            .await?;
        checked(path, meta, hex, name, version)
    }
}

/// How an OCI chart is named: the reference (for messages), its tag or digest, and the
/// manifest the caller resolved its tag to before (read instead of the tag when set).
struct OciAt<'a> {
    reference: &'a str,
    pin: Option<&'a OciPin>,
    manifest: Option<&'a str>,
}

/// The tag (or digest) of an OCI chart to read, and the version it must hold when the tag is
/// a version (as `helm push` tags charts).
struct OciTarget {
    tag: Option<String>,
    version: Option<String>,
    digest: Option<String>,
}

/// A tag in the reference and a `version` must agree: the tag's version satisfies it.
fn agree(reference: &str, tag: &str, wanted: &Wanted<'_>) -> Result<(), Error> {
    let Some(requested) = wanted.requested else {
        return Ok(());
    };
    let version = oci::version_for_tag(tag);
    if requested.trim_start_matches('=').trim() == version
        || parse_version(&version).is_some_and(|v| wanted.constraint.matches(&v))
    {
        return Ok(());
    }
    Err(Error::InvalidReference {
        reference: redact_url(reference),
        reason: format!(
            "the reference names tag {tag:?}, and `version` asks for {requested:?}, which that tag does not satisfy; drop `version` (the tag decides) or make them agree"
        ),
    })
}

/// An unpacked OCI chart checked against its name and, when known, its version.
fn checked_oci(
    path: PathBuf,
    meta: archive::ChartMeta,
    hex: &str,
    name: &str,
    version: Option<&str>,
) -> Result<FetchedChart, Error> {
    match version {
        Some(version) => checked(path, meta, hex, name, version),
        None if meta.name != name => Err(Error::InvalidArchive {
            chart: name.to_owned(),
            reason: format!("Chart.yaml names the chart {:?}", meta.name),
        }),
        None => Ok(FetchedChart::plain(path, meta.name, meta.version, hex)),
    }
}

/// The version constraint a caller asked for: none is any stable version, as with Helm; one
/// that does not parse is an error naming it.
fn constraint_of(requested: Option<&str>) -> Result<Constraint, Error> {
    match requested {
        Some(text) => Constraint::parse(text).map_err(|e| Error::InvalidConstraint {
            constraint: text.to_owned(),
            reason: e.0,
        }),
        None => Ok(Constraint::any_stable()),
    }
}

/// What the caller asked for.
struct Wanted<'a> {
    requested: Option<&'a str>,
    constraint: &'a Constraint,
}

fn checked(
    path: PathBuf,
    meta: archive::ChartMeta,
    hex: &str,
    name: &str,
    version: &str,
) -> Result<FetchedChart, Error> {
    if meta.name != name {
        return Err(Error::InvalidArchive {
            chart: name.to_owned(),
            reason: format!("Chart.yaml names the chart {:?}", meta.name),
        });
    }
    let same = meta.version == version
        || matches!((parse_version(&meta.version), parse_version(version)), (Some(a), Some(b)) if a == b);
    if !same {
        return Err(Error::InvalidArchive {
            chart: name.to_owned(),
            reason: format!(
                "Chart.yaml says version {:?}, the repository says {version:?}",
                meta.version
            ),
        });
    }
    Ok(FetchedChart::plain(path, meta.name, meta.version, hex))
}

/// Reads a local chart: a directory is packaged (deterministically, honouring `.helmignore`,
/// by the same code as the local chart repository), a `.tgz` is read as is.
fn read_local(reference: &str, path: &Path, limits: &Limits) -> Result<(String, Vec<u8>), Error> {
    if path.is_dir() {
        let packaged =
            upstart_chart_package::package_chart(path).map_err(|e| Error::InvalidArchive {
                chart: reference.to_owned(),
                reason: e.to_string(),
            })?;
        return Ok((packaged.name, packaged.archive));
    }
    let size = path.metadata().map_err(|e| Error::cache(path, e))?.len();
    if size > limits.max_archive_bytes {
        return Err(Error::LimitExceeded {
            what: format!("chart archive {reference:?} ({size} bytes)"),
            limit: limits.max_archive_bytes,
            setting: "maxArchiveBytes",
        });
    }
    let archive = std::fs::read(path).map_err(|e| Error::cache(path, e))?;
    let name = archive::top_level_name(&archive).ok_or_else(|| Error::InvalidArchive {
        chart: reference.to_owned(),
        reason: "not a chart archive (no top-level directory named like a chart)".into(),
    })?;
    Ok((name, archive))
}

fn build_repo(
    alias: &str,
    repository: &Repository,
    credentials: Option<&Credentials>,
    config: &RepositoryConfig,
) -> Result<Repo, Error> {
    let url = repository.url.trim();
    let inferred = if url.starts_with("oci://") {
        RepositoryKind::Oci
    } else if url.starts_with("https://") || url.starts_with("http://") {
        RepositoryKind::Http
    } else {
        return Err(config_error(format!(
            "repository {alias:?}: url must start with oci://, https:// or http://"
        )));
    };
    if repository.kind.is_some_and(|k| k != inferred) {
        return Err(config_error(format!(
            "repository {alias:?}: kind does not match the url scheme"
        )));
    }
    let mut ca_bundles: Vec<&str> = Vec::new();
    if let Some(pem) = &repository.ca_bundle {
        ca_bundles.push(pem);
    }
    if let Some(pem) = credentials.and_then(|c| c.ca_bundle.as_deref()) {
        ca_bundles.push(pem);
    }
    let in_repo = |e: Error| match e {
        Error::Config(message) => config_error(format!("repository {alias:?}: {message}")),
        other => other,
    };
    match inferred {
        RepositoryKind::Git => Err(config_error(format!(
            "repository {alias:?}: a git repository's url starts with git+https://, git+http:// or git+ssh://"
        ))),
        RepositoryKind::Oci => {
            let Some((host, path)) = split_oci_url(url) else {
                return Err(config_error(format!(
                    "repository {alias:?}: expected oci://HOST[:PORT][/PATH]"
                )));
            };
            let repo = OciRepo::new(
                &host,
                &path,
                repository.plain_http,
                credentials,
                &ca_bundles,
                &config.limits,
            )
            .map_err(in_repo)?;
            Ok(Repo::Oci(Arc::new(repo)))
        }
        RepositoryKind::Http => {
            if repository.plain_http {
                return Err(config_error(format!(
                    "repository {alias:?}: plainHttp applies to oci:// repositories; use an http:// url"
                )));
            }
            let repo = HttpRepo::new(url, credentials, &ca_bundles, config).map_err(in_repo)?;
            Ok(Repo::Http(Arc::new(repo)))
        }
    }
}

/// The index entry of `name` in the version `wanted` asks for.
fn find_entry(
    index: &Index,
    repository: &str,
    name: &str,
    wanted: &Wanted<'_>,
) -> Result<IndexEntry, Error> {
    let Some(entries) = index.entries.get(name) else {
        return Err(Error::ChartNotFound {
            chart: name.to_owned(),
            repository: repository.to_owned(),
        });
    };
    let versions: Vec<String> = entries.iter().map(|e| e.version.clone()).collect();
    let chosen = select_version(name, repository, &versions, wanted)?;
    Ok(entries[chosen].clone())
}

/// Picks the version to use: an exact string match first (as Helm does), else the highest
/// version satisfying the constraint.
fn select_version(
    chart: &str,
    repository: &str,
    versions: &[String],
    wanted: &Wanted<'_>,
) -> Result<usize, Error> {
    if let Some(requested) = wanted.requested
        && let Some(i) = versions.iter().position(|v| v == requested)
    {
        return Ok(i);
    }
    let best = versions
        .iter()
        .enumerate()
        .filter_map(|(i, text)| parse_version(text).map(|v| (i, v)))
        .filter(|(_, v)| wanted.constraint.matches(v))
        .max_by(|(_, a), (_, b)| a.cmp_precedence(b));
    match best {
        Some((i, _)) => Ok(i),
        None => Err(Error::NoMatchingVersion {
            chart: chart.to_owned(),
            repository: repository.to_owned(),
            constraint: wanted
                .requested
                .map_or_else(|| "newest stable".to_owned(), str::to_owned),
            available: list_versions(versions.iter().cloned()),
        }),
    }
}

/// Versions newest first, at most 20 of them, for error messages.
fn list_versions(versions: impl Iterator<Item = String>) -> String {
    let mut parsed: Vec<(Option<semver::Version>, String)> =
        versions.map(|v| (parse_version(&v), v)).collect();
    parsed.sort_by(|(a, _), (b, _)| match (a, b) {
        (Some(a), Some(b)) => b.cmp_precedence(a),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    if parsed.is_empty() {
        return "none".into();
    }
    let total = parsed.len();
    let mut shown: Vec<String> = parsed.into_iter().take(20).map(|(_, v)| v).collect();
    if total > 20 {
        shown.push(format!("and {} more", total - 20));
    }
    shown.join(", ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;
    use upstart_failure::Classify;

    fn pick(versions: &[&str], requested: Option<&str>) -> Result<String, Error> {
        let versions: Vec<String> = versions.iter().map(|v| (*v).to_owned()).collect();
        let constraint =
            requested.map_or_else(Constraint::any_stable, |r| Constraint::parse(r).unwrap());
        let wanted = Wanted {
            requested,
            constraint: &constraint,
        };
        select_version("c", "repo", &versions, &wanted).map(|i| versions[i].clone())
    }

    #[test]
    fn no_version_picks_the_newest_stable() {
        assert_eq!(
            pick(&["0.1.0", "0.10.0", "0.2.0", "1.0.0-rc.1"], None).unwrap(),
            "0.10.0"
        );
    }

    #[test]
    fn ranges_pick_the_highest_match() {
        let versions = ["0.1.0", "0.1.3", "0.2.0", "1.0.0", "1.2.5", "2.0.0"];
        assert_eq!(pick(&versions, Some("^0.1")).unwrap(), "0.1.3");
        assert_eq!(pick(&versions, Some(">=1.2 <2")).unwrap(), "1.2.5");
        assert_eq!(pick(&versions, Some("1.2.5")).unwrap(), "1.2.5");
        assert_eq!(pick(&versions, Some("~0.2")).unwrap(), "0.2.0");
    }

    #[test]
    fn an_exact_string_wins_even_when_not_semver() {
        assert_eq!(pick(&["latest", "1.0.0"], Some("1.0.0")).unwrap(), "1.0.0");
        assert_eq!(pick(&["v2", "1.0.0"], Some("v2")).unwrap(), "v2");
    }

    #[test]
    fn no_match_lists_the_available_versions_newest_first() {
        let error = pick(&["0.1.0", "0.2.0", "junk"], Some("^3")).unwrap_err();
        assert!(
            error.is_transient(),
            "a matching version may be published later"
        );
        let text = error.to_string();
        assert!(text.contains("available: 0.2.0, 0.1.0, junk"), "{text}");
    }

    #[test]
    fn an_image_is_read_through_the_configured_repository_with_the_longest_path_holding_it() {
        let config = RepositoryConfig::from_yaml(
            "repositories: {host: {url: \"oci://reg.example.com\"}, team: {url: \"oci://reg.example.com/team\"}, other: {url: \"oci://other.example.com/team\"}}",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let source = ChartSource::new(config, HashMap::new(), dir.path()).unwrap();
        let (repo, name) = source
            .image_repo("i", "reg.example.com", "team/api")
            .unwrap();
        assert_eq!(
            (repo.display.as_str(), name.as_str()),
            ("oci://reg.example.com/team", "api")
        );
        let (repo, name) = source
            .image_repo("i", "reg.example.com", "teams/api")
            .unwrap();
        assert_eq!(
            (repo.display.as_str(), name.as_str()),
            ("oci://reg.example.com", "teams/api")
        );
        let error = source
            .image_repo("other.example.com/api:1", "other.example.com", "api")
            .unwrap_err();
        assert!(
            matches!(error, Error::UnlistedImageRegistry { .. }),
            "{error}"
        );
    }

    #[test]
    fn oci_urls_split_into_host_and_path() {
        assert_eq!(
            split_oci_url("oci://127.0.0.1:5000/charts/"),
            Some(("127.0.0.1:5000".into(), "charts".into()))
        );
        assert_eq!(
            split_oci_url("oci://host"),
            Some(("host".into(), String::new()))
        );
        assert_eq!(split_oci_url("oci://host/../x"), None);
        assert_eq!(split_oci_url("https://host"), None);
    }
}
