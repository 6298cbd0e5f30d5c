//! A local HTTP Helm chart repository serving the charts found under a directory.
//!
//! Every subdirectory of the root that holds a `Chart.yaml` is one chart. Each chart is packaged
//! as `NAME-VERSION.tgz` (a deterministic gzip-compressed tar of the chart directory under a
//! top-level `NAME/` folder, honouring the chart's `.helmignore`, by `upstart-chart-package`,
//! the code the chart sources use for `file:` charts), and an `index.yaml` in the format Helm
//! and ChartMuseum use lists them all. The repository is served over HTTP:
//!
//! - `GET /index.yaml` with `ETag` and `Last-Modified`, answering `If-None-Match` and
//!   `If-Modified-Since` with `304 Not Modified`, because clients (Helm, the HelmRelease
//!   operator) re-read the index often;
//! - `GET /NAME-VERSION.tgz` for each archive, with its sha256 digest as `ETag`.
//!
//! Packaged charts (`NAME-VERSION.tgz`) directly under the root are served too, after the
//! checks the chart sources apply to every archive they fetch: that is where the publish
//! endpoint (`POST /api/charts`, ChartMuseum's API) stores pushed charts. With upstream
//! repositories ([`OverlayOptions`]) the repository is a development overlay: see [`overlay`].
//! [`pack`] and [`unpack`] carry a chart directory with its cache to another machine.
//!
//! ```no_run
//! # async fn demo() -> Result<(), upstart_chart_repo::Error> {
//! let repo = upstart_chart_repo::ChartRepo::from_dir("charts")?;
//! let running = repo.serve("127.0.0.1:0".parse().expect("valid address")).await?;
//! println!("helm repo add upstart-charts {}", running.url());
//! running.reload()?; // pick up edited charts
//! running.shutdown().await;
//! # Ok(()) }
//! ```

mod index;
pub mod overlay;
mod pack;
mod publish;
mod server;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use index::{merge_index, render_index};
pub use overlay::{CACHE_DIR_NAME, OverlayOptions, Upstream};
pub use pack::{PackSummary, pack, unpack};
pub use server::{RepoHandle, RunningRepo};
use upstart_chart_package::{PackagedChart, package_chart};

/// Everything that can go wrong while reading, packaging or serving charts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A chart directory that cannot be packaged (its `Chart.yaml`, `.helmignore` or files).
    #[error(transparent)]
    Chart(#[from] upstart_chart_package::Error),
    #[error("chart {name} version {version} is defined twice: {first} and {second}")]
    DuplicateChart {
        name: String,
        version: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("serialising index.yaml: {0}")]
    Index(#[from] serde_yaml_ng::Error),
    /// A packaged chart under the root that fails the archive checks.
    #[error("{path}: {source}; remove the file or replace it with a chart made by `helm package`")]
    PackagedArchive {
        path: PathBuf,
        source: Box<upstart_chart_source::Error>,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An upstream repository that cannot be read, or that served something else than its
    /// index promised.
    #[error("upstream repository {name} ({url}): {message}")]
    Upstream {
        name: String,
        url: String,
        message: String,
    },
    #[error("invalid --upstream {given:?}: {message}")]
    InvalidUpstream { given: String, message: String },
    #[error("{path}: {message}")]
    Pack { path: PathBuf, message: String },
    #[error("binding {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// A snapshot of the charts under a directory, packaged and indexed.
#[derive(Debug, Clone)]
pub struct ChartRepo {
    root: PathBuf,
    charts: Vec<PackagedChart>,
    index_yaml: String,
    index_etag: String,
    last_modified: SystemTime,
    fingerprint: u64,
    auto_reload: bool,
}

impl ChartRepo {
    /// Reads and packages every chart directly under `root` (subdirectories holding a
    /// `Chart.yaml`). A missing root is an error; an empty one gives an empty repository.
    pub fn from_dir(root: impl AsRef<Path>) -> Result<Self, Error> {
        let root = root.as_ref().to_path_buf();
        // Taken before reading, so a change made while packaging is seen by the next check.
        let fingerprint = tree_fingerprint(&root)?;
        let mut dirs = Vec::new();
        let mut packaged = Vec::new();
        let entries = std::fs::read_dir(&root).map_err(|source| Error::Read {
            path: root.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| Error::Read {
                path: root.clone(),
                source,
            })?;
            let path = entry.path();
            if path.is_dir() && path.join("Chart.yaml").is_file() {
                dirs.push(path);
            } else if path.is_file() && path.extension().is_some_and(|e| e == "tgz") {
                packaged.push(path);
            }
        }
        dirs.sort();
        packaged.sort();
        let mut charts: Vec<PackagedChart> = Vec::with_capacity(dirs.len());
        let from_dirs = dirs
            .iter()
            .map(|dir| package_chart(dir).map_err(Error::from));
        let from_archives = packaged.iter().map(|path| read_packaged(path));
        for chart in from_dirs.chain(from_archives) {
            let chart: PackagedChart = chart?;
            if let Some(other) = charts
                .iter()
                .find(|c| c.name == chart.name && c.version == chart.version)
            {
                return Err(Error::DuplicateChart {
                    name: chart.name,
                    version: chart.version,
                    first: other.dir.clone(),
                    second: chart.dir,
                });
            }
            charts.push(chart);
        }
        let last_modified = charts
            .iter()
            .map(|c| c.modified)
            .max()
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let index_yaml = render_index(&charts, last_modified)?;
        let index_etag = format!("\"{}\"", sha256_hex(index_yaml.as_bytes()));
        Ok(Self {
            root,
            charts,
            index_yaml,
            index_etag,
            last_modified,
            fingerprint,
            auto_reload: false,
        })
    }

    /// When on, every request for `index.yaml` first checks whether any file under the root
    /// changed (by path and content) and, if so, serves a fresh snapshot: for
    /// `upstart dev`, where charts are edited while the repository is served.
    pub fn auto_reload(mut self, on: bool) -> Self {
        self.auto_reload = on;
        self
    }

    /// Whether the files under the root differ from those this snapshot was read from.
    pub fn is_stale(&self) -> Result<bool, Error> {
        Ok(tree_fingerprint(&self.root)? != self.fingerprint)
    }

    /// The directory the charts were read from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The packaged charts, in directory order.
    pub fn charts(&self) -> &[PackagedChart] {
        &self.charts
    }

    /// The repository's `index.yaml`.
    pub fn index_yaml(&self) -> &str {
        &self.index_yaml
    }

    /// The `ETag` served with `index.yaml` (a quoted sha256 of its bytes).
    pub fn index_etag(&self) -> &str {
        &self.index_etag
    }

    /// The `Last-Modified` time of `index.yaml`: the newest file time of any chart.
    pub fn last_modified(&self) -> SystemTime {
        self.last_modified
    }

    pub(crate) fn reloads_automatically(&self) -> bool {
        self.auto_reload
    }

    /// Starts serving the repository over HTTP on `addr` (use port 0 for any free port).
    pub async fn serve(self, addr: std::net::SocketAddr) -> Result<RunningRepo, Error> {
        server::serve(self, addr, OverlayOptions::default()).await
    }

    /// Starts serving the repository as a development overlay of `overlay`'s upstreams (see
    /// [`overlay`]); with no upstream, as [`ChartRepo::serve`] plus the charts kept in the
    /// cache by an earlier overlay (a directory unpacked from a pack).
    pub async fn serve_overlay(
        self,
        addr: std::net::SocketAddr,
        overlay: OverlayOptions,
    ) -> Result<RunningRepo, Error> {
        server::serve(self, addr, overlay).await
    }
}

/// Reads a packaged chart (`NAME-VERSION.tgz`) under the root, checked as the chart sources
/// check fetched archives; its `Chart.yaml` becomes the index entry.
pub(crate) fn read_packaged(path: &Path) -> Result<PackagedChart, Error> {
    let archive = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
    packaged_from_bytes(archive, path, modified)
}

/// A checked [`PackagedChart`] from archive bytes that claim to live at `path`.
pub(crate) fn packaged_from_bytes(
    archive: Vec<u8>,
    path: &Path,
    modified: SystemTime,
) -> Result<PackagedChart, Error> {
    let refused = |source| Error::PackagedArchive {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    let limits = upstart_chart_source::Limits::default();
    let meta = upstart_chart_source::check_archive(&archive, &limits).map_err(refused)?;
    let metadata = chart_yaml_of(&archive, &meta.name).ok_or_else(|| {
        refused(upstart_chart_source::Error::InvalidArchive {
            chart: meta.name.clone(),
            reason: "Chart.yaml is not a YAML mapping".into(),
        })
    })?;
    Ok(PackagedChart {
        digest: sha256_hex(&archive),
        name: meta.name,
        version: meta.version,
        dir: path.to_path_buf(),
        archive,
        modified,
        metadata,
    })
}

/// `NAME/Chart.yaml` of a checked archive, as a mapping.
fn chart_yaml_of(archive: &[u8], name: &str) -> Option<serde_yaml_ng::Mapping> {
    use std::io::Read as _;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    let wanted = format!("{name}/Chart.yaml");
    for entry in tar.entries().ok()? {
        let mut entry = entry.ok()?;
        let path = entry.path().ok()?.to_string_lossy().into_owned();
        if path.trim_start_matches("./") == wanted {
            let mut text = String::new();
            entry.read_to_string(&mut text).ok()?;
            return serde_yaml_ng::from_str(&text).ok();
        }
    }
    None
}

/// Hex sha256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// The entries of `dir`, sorted by name (what the index, the fingerprint and a pack read in a
/// stable order).
pub(crate) fn sorted_entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>, Error> {
    let read_err = |source| Error::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .collect::<Result<_, _>>()
        .map_err(read_err)?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

/// A hash of every path and file content under `root`, in a stable order. Contents rather
/// than modification times, because two edits within the file system's timestamp granularity
/// would otherwise look the same; chart directories are small enough to read.
fn tree_fingerprint(root: &Path) -> Result<u64, Error> {
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash as _, Hasher as _};
    fn walk(dir: &Path, hasher: &mut DefaultHasher) -> Result<(), Error> {
        for entry in sorted_entries(dir)? {
            let path = entry.path();
            // The overlay's cache changes as upstream archives are fetched: not a chart edit.
            if entry.file_name() == CACHE_DIR_NAME {
                continue;
            }
            entry.file_name().hash(hasher);
            let file_type = entry.file_type().map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            if file_type.is_dir() {
                walk(&path, hasher)?;
            } else if path.is_file() {
                // Follows links to files, as packaging does.
                let bytes = std::fs::read(&path).map_err(|source| Error::Read {
                    path: path.clone(),
                    source,
                })?;
                bytes.hash(hasher);
            }
        }
        Ok(())
    }
    let mut hasher = DefaultHasher::new();
    walk(root, &mut hasher)?;
    Ok(hasher.finish())
}
