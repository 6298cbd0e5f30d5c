//! Helpers shared by the integration tests: tiny charts, hand-built archives, a counting
//! HTTP chart repository.

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use upstart_chart_source::{ChartSource, Credentials, RepositoryConfig};

pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

pub fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Writes chart `name` at `version` into `root/dir_name/`.
pub fn chart_dir(root: &Path, dir_name: &str, name: &str, version: &str) -> PathBuf {
    let dir = root.join(dir_name);
    write(
        &dir,
        "Chart.yaml",
        &format!("apiVersion: v2\nname: {name}\nversion: {version}\ndescription: test chart\n"),
    );
    write(&dir, "values.yaml", "greeting: hello\n");
    write(
        &dir,
        "templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n",
    );
    dir
}

/// A packaged chart (archive bytes and hex sha256), made by the local chart repository code.
pub fn packaged(name: &str, version: &str) -> upstart_chart_package::PackagedChart {
    let tmp = tempfile::tempdir().unwrap();
    let dir = chart_dir(tmp.path(), name, name, version);
    upstart_chart_package::package_chart(&dir).unwrap()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One entry of a hand-built archive. Paths and link targets are written into the header
/// verbatim, so hostile names (`..`, absolute paths) survive.
pub enum Entry<'a> {
    File(&'a str, Vec<u8>),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    CharDevice(&'a str),
}

fn raw_header(path: &str, kind: tar::EntryType, size: u64, link: Option<&str>) -> tar::Header {
    let mut header = tar::Header::new_old();
    {
        let old = header.as_old_mut();
        assert!(path.len() < old.name.len(), "test paths must be short");
        old.name.fill(0);
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        if let Some(link) = link {
            old.linkname.fill(0);
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
    }
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    header
}

/// A `.tgz` holding `entries`, in order.
pub fn tgz(entries: &[Entry<'_>]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(gz);
    for entry in entries {
        match entry {
            Entry::File(path, data) => {
                let header = raw_header(path, tar::EntryType::Regular, data.len() as u64, None);
                builder.append(&header, data.as_slice()).unwrap();
            }
            Entry::Dir(path) => {
                let header = raw_header(path, tar::EntryType::Directory, 0, None);
                builder.append(&header, std::io::empty()).unwrap();
            }
            Entry::Symlink(path, target) => {
                let header = raw_header(path, tar::EntryType::Symlink, 0, Some(target));
                builder.append(&header, std::io::empty()).unwrap();
            }
            Entry::HardLink(path, target) => {
                let header = raw_header(path, tar::EntryType::Link, 0, Some(target));
                builder.append(&header, std::io::empty()).unwrap();
            }
            Entry::CharDevice(path) => {
                let header = raw_header(path, tar::EntryType::Char, 0, None);
                builder.append(&header, std::io::empty()).unwrap();
            }
        }
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// `Chart.yaml` text for `name` at `version`.
pub fn chart_yaml(name: &str, version: &str) -> Vec<u8> {
    format!("apiVersion: v2\nname: {name}\nversion: {version}\n").into_bytes()
}

/// A chart source with its own cache directory.
pub struct Source {
    pub source: ChartSource,
    pub cache: tempfile::TempDir,
}

pub fn source(config: RepositoryConfig) -> Source {
    source_with(config, HashMap::new())
}

pub fn source_with(config: RepositoryConfig, credentials: HashMap<String, Credentials>) -> Source {
    let cache = tempfile::tempdir().unwrap();
    let source = ChartSource::new(config, credentials, cache.path().join("cache")).unwrap();
    Source { source, cache }
}

pub fn config(yaml: &str) -> RepositoryConfig {
    RepositoryConfig::from_yaml(yaml).unwrap()
}

/// Request counters of a [`FakeRepo`].
#[derive(Debug, Default)]
pub struct Counts {
    pub index_full: AtomicUsize,
    pub index_not_modified: AtomicUsize,
    pub archives: AtomicUsize,
}

impl Counts {
    pub fn get(&self) -> (usize, usize, usize) {
        (
            self.index_full.load(Ordering::SeqCst),
            self.index_not_modified.load(Ordering::SeqCst),
            self.archives.load(Ordering::SeqCst),
        )
    }
}

#[derive(Debug, Default)]
pub struct FakeState {
    /// (name, version, archive file name, digest to announce (None: omit))
    pub entries: Vec<(String, String, String, Option<String>)>,
    pub archives: HashMap<String, Vec<u8>>,
    /// `Authorization` header value required, if any.
    pub required_authorization: Option<String>,
    /// Status to answer every request with, if any.
    pub fail_with: Option<u16>,
    /// Delay before answering the index.
    pub delay: Duration,
    /// `Authorization` headers seen on archive requests.
    pub seen_authorization: Vec<Option<String>>,
}

impl FakeState {
    pub fn add(
        &mut self,
        chart: &upstart_chart_package::PackagedChart,
        announce_digest: Option<String>,
    ) {
        let file = chart.file_name();
        self.entries.push((
            chart.name.clone(),
            chart.version.clone(),
            file.clone(),
            announce_digest,
        ));
        self.archives.insert(file, chart.archive.clone());
    }

    fn index(&self) -> String {
        let mut text = String::from("apiVersion: v1\nentries:\n");
        let mut names: Vec<&String> = self.entries.iter().map(|e| &e.0).collect();
        names.sort();
        names.dedup();
        for name in names {
            text.push_str(&format!("  {name}:\n"));
            for (_, version, file, digest) in self.entries.iter().filter(|e| &e.0 == name) {
                text.push_str(&format!(
                    "  - name: {name}\n    version: \"{version}\"\n    urls: [{file}]\n"
                ));
                if let Some(digest) = digest {
                    text.push_str(&format!("    digest: {digest}\n"));
                }
            }
        }
        text
    }
}

/// A hand-rolled HTTP chart repository that counts what it serves and answers conditional
/// index requests by ETag.
pub struct FakeRepo {
    pub url: String,
    pub counts: Arc<Counts>,
    pub state: Arc<Mutex<FakeState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeRepo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Shared = (Arc<Mutex<FakeState>>, Arc<Counts>);

impl FakeRepo {
    pub async fn start(state: FakeState) -> Self {
        let state = Arc::new(Mutex::new(state));
        let counts = Arc::new(Counts::default());
        let app = Router::new()
            .route("/index.yaml", get(index))
            .route("/{file}", get(archive))
            .with_state((Arc::clone(&state), Arc::clone(&counts)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url: format!("http://{addr}"),
            counts,
            state,
            task,
        }
    }
}

fn refuse(state: &FakeState, headers: &HeaderMap) -> Option<Response> {
    if let Some(status) = state.fail_with {
        return Some(StatusCode::from_u16(status).unwrap().into_response());
    }
    if let Some(required) = &state.required_authorization {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if given != Some(required.as_str()) {
            return Some(StatusCode::UNAUTHORIZED.into_response());
        }
    }
    None
}

async fn index(State((state, counts)): State<Shared>, headers: HeaderMap) -> Response {
    let delay = state.lock().unwrap().delay;
    tokio::time::sleep(delay).await;
    let state = state.lock().unwrap();
    if let Some(response) = refuse(&state, &headers) {
        return response;
    }
    let text = state.index();
    let etag = format!("\"{}\"", sha256_hex(text.as_bytes()));
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag);
    if matches {
        counts.index_not_modified.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    counts.index_full.fetch_add(1, Ordering::SeqCst);
    ([(header::ETAG, etag)], text).into_response()
}

async fn archive(
    State((state, counts)): State<Shared>,
    UrlPath(file): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let mut state = state.lock().unwrap();
    let seen = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    state.seen_authorization.push(seen);
    if let Some(response) = refuse(&state, &headers) {
        return response;
    }
    counts.archives.fetch_add(1, Ordering::SeqCst);
    match state.archives.get(&file) {
        Some(bytes) => bytes.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
