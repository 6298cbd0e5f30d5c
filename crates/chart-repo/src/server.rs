//! The HTTP side of the chart repository: `index.yaml` with conditional GETs, the archives
//! (local first, then the overlay's upstreams), and the publish endpoint (see [`crate::publish`]).

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::overlay::{Overlay, OverlayOptions};
use crate::{ChartRepo, Error};

pub(crate) type Shared = Arc<RwLock<Arc<ChartRepo>>>;

/// What the handlers share: the local snapshot, the upstreams, the last merged index.
#[derive(Debug)]
pub(crate) struct ServerState {
    pub repo: Shared,
    pub overlay: Overlay,
    merged: std::sync::Mutex<Option<Merged>>,
    /// Publishing and deleting one at a time, so that a check and its write see the same files.
    pub publish: tokio::sync::Mutex<()>,
}

/// The served index: its bytes, `ETag` and `Last-Modified`.
#[derive(Debug, Clone)]
pub(crate) struct ServedIndex {
    pub yaml: Arc<String>,
    pub etag: String,
    pub modified: SystemTime,
}

#[derive(Debug)]
struct Merged {
    key: (String, Vec<u64>),
    index: ServedIndex,
}

impl ServerState {
    /// The index as served now: the local one, merged with the upstreams' when there are any.
    pub async fn index(&self) -> Result<ServedIndex, Error> {
        let repo = snapshot(&self.repo);
        if self.overlay.is_empty() {
            return Ok(ServedIndex {
                yaml: Arc::new(repo.index_yaml().to_owned()),
                etag: repo.index_etag().to_owned(),
                modified: repo.last_modified(),
            });
        }
        let views = self.overlay.views().await;
        let key = (
            repo.index_etag().to_owned(),
            views.iter().map(|v| v.generation).collect::<Vec<_>>(),
        );
        if let Some(merged) = self
            .merged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|m| m.key == key)
        {
            return Ok(merged.index.clone());
        }
        let modified = views
            .iter()
            .map(|v| v.modified)
            .chain([repo.last_modified()])
            .max()
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let parts: Vec<&[(String, Vec<serde_yaml_ng::Mapping>)]> =
            views.iter().map(|v| v.entries.as_slice()).collect();
        let yaml = crate::merge_index(repo.charts(), &parts, modified)?;
        let index = ServedIndex {
            etag: format!("\"{}\"", crate::sha256_hex(yaml.as_bytes())),
            yaml: Arc::new(yaml),
            modified,
        };
        *self.merged.lock().unwrap_or_else(|e| e.into_inner()) = Some(Merged {
            key,
            index: index.clone(),
        });
        Ok(index)
    }
}

/// A repository being served. Dropping it stops the server, as [`RunningRepo::shutdown`] does
/// (without waiting for it).
#[derive(Debug)]
pub struct RunningRepo {
    /// The repository URL, e.g. `http://127.0.0.1:40123`, as given to `helm repo add`.
    pub url: String,
    addr: SocketAddr,
    repo: Shared,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningRepo {
    /// The repository URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The snapshot being served.
    pub fn repo(&self) -> Arc<ChartRepo> {
        Arc::clone(&self.repo.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Re-reads the chart directory and serves the new snapshot. On error the old snapshot
    /// keeps being served.
    pub fn reload(&self) -> Result<(), Error> {
        self.handle().reload()
    }

    /// A handle on the served snapshot that can be moved into a task (a watcher of the chart
    /// directory) while this value keeps owning the server.
    pub fn handle(&self) -> RepoHandle {
        RepoHandle {
            repo: Arc::clone(&self.repo),
        }
    }

    /// Stops accepting connections and waits for the server to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// The snapshot a [`RunningRepo`] serves, shared: read it, or reload it from the directory.
#[derive(Clone, Debug)]
pub struct RepoHandle {
    repo: Shared,
}

impl RepoHandle {
    /// The snapshot being served.
    pub fn repo(&self) -> Arc<ChartRepo> {
        snapshot(&self.repo)
    }

    /// Re-reads the chart directory and serves the new snapshot. On error the old snapshot
    /// keeps being served.
    pub fn reload(&self) -> Result<(), Error> {
        let current = self.repo();
        let fresh = Arc::new(
            ChartRepo::from_dir(current.root())?.auto_reload(current.reloads_automatically()),
        );
        *self.repo.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// Reloads when a file under the directory changed since the snapshot was read; says
    /// whether it did.
    pub fn reload_if_stale(&self) -> Result<bool, Error> {
        if !self.repo().is_stale()? {
            return Ok(false);
        }
        self.reload()?;
        Ok(true)
    }
}

impl Drop for RunningRepo {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub(crate) async fn serve(
    repo: ChartRepo,
    addr: SocketAddr,
    overlay: OverlayOptions,
) -> Result<RunningRepo, Error> {
    let max_body = usize::try_from(overlay.limits.max_archive_bytes).unwrap_or(usize::MAX);
    let overlay = Overlay::new(repo.root(), overlay)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    let shared: Shared = Arc::new(RwLock::new(Arc::new(repo)));
    let state = Arc::new(ServerState {
        repo: Arc::clone(&shared),
        overlay,
        merged: std::sync::Mutex::new(None),
        publish: tokio::sync::Mutex::new(()),
    });
    let app = Router::new()
        .route("/index.yaml", get(index))
        .route("/{file}", get(archive))
        .route(
            "/api/charts",
            get(crate::publish::list).post(crate::publish::publish),
        )
        .route(
            "/api/charts/{name}/{version}",
            delete(crate::publish::remove),
        )
        // Over the archive limit (room for a multipart form's headers), so that the publish
        // handler says which limit.
        .layer(axum::extract::DefaultBodyLimit::max(
            max_body.saturating_add(64 << 10),
        ))
        .with_state(state);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "chart repository server stopped");
        }
    });
    tracing::debug!(%addr, "chart repository listening");
    Ok(RunningRepo {
        url: format!("http://{addr}"),
        addr,
        repo: shared,
        stop: Some(stop),
        task: Some(task),
    })
}

pub(crate) fn snapshot(shared: &Shared) -> Arc<ChartRepo> {
    Arc::clone(&shared.read().unwrap_or_else(|e| e.into_inner()))
}

/// With auto-reload on, swaps in a fresh snapshot when the chart files changed. Errors keep
/// the old snapshot and are logged: a chart being edited is often briefly invalid.
pub(crate) async fn refresh(shared: &Shared) {
    let repo = snapshot(shared);
    if !repo.reloads_automatically() {
        return;
    }
    let fresh = tokio::task::spawn_blocking(move || -> Result<Option<ChartRepo>, Error> {
        if !repo.is_stale()? {
            return Ok(None);
        }
        Ok(Some(ChartRepo::from_dir(repo.root())?.auto_reload(true)))
    })
    .await;
    match fresh {
        Ok(Ok(Some(fresh))) => {
            tracing::info!(
                charts = fresh.charts().len(),
                "chart directory changed; reloaded"
            );
            *shared.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        }
        Ok(Ok(None)) => {}
        Ok(Err(error)) => {
            tracing::warn!(%error, "chart directory changed but cannot be served; keeping the previous charts")
        }
        Err(error) => tracing::warn!(%error, "reloading the chart directory failed"),
    }
}

async fn index(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    refresh(&state.repo).await;
    let served = match state.index().await {
        Ok(served) => served,
        Err(error) => {
            tracing::error!(%error, "rendering index.yaml");
            return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response();
        }
    };
    let last_modified = httpdate::fmt_http_date(served.modified);
    let mut response = if not_modified(&headers, &served.etag, served.modified) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/x-yaml")],
            served.yaml.as_str().to_owned(),
        )
            .into_response()
    };
    let h = response.headers_mut();
    insert(h, header::ETAG, &served.etag);
    insert(h, header::LAST_MODIFIED, &last_modified);
    insert(h, header::CACHE_CONTROL, "no-cache");
    response
}

async fn archive(
    State(state): State<Arc<ServerState>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let repo = snapshot(&state.repo);
    let Some(chart) = repo.charts().iter().find(|c| c.file_name() == file) else {
        return upstream_archive(&state, &file).await;
    };
    let etag = format!("\"{}\"", chart.digest);
    let mut response = if not_modified(&headers, &etag, chart.modified) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/gzip")],
            chart.archive.clone(),
        )
            .into_response()
    };
    insert(response.headers_mut(), header::ETAG, &etag);
    response
}

/// An archive the directory does not have: from the upstreams (or their cache).
async fn upstream_archive(state: &ServerState, file: &str) -> Response {
    match state.overlay.archive(file).await {
        Ok(Some(bytes)) => {
            let etag = format!("\"{}\"", crate::sha256_hex(&bytes));
            let mut response =
                ([(header::CONTENT_TYPE, "application/gzip")], bytes).into_response();
            insert(response.headers_mut(), header::ETAG, &etag);
            response
        }
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => {
            tracing::warn!(%error, "upstream archive not served");
            (StatusCode::BAD_GATEWAY, format!("{error}\n")).into_response()
        }
    }
}

fn insert(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// Whether a conditional GET can be answered with 304. As RFC 9110 says, `If-None-Match`
/// wins over `If-Modified-Since` when both are sent.
pub(crate) fn not_modified(headers: &HeaderMap, etag: &str, modified: SystemTime) -> bool {
    if let Some(value) = headers.get(header::IF_NONE_MATCH) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        return value.split(',').map(str::trim).any(|candidate| {
            candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
        });
    }
    if let Some(since) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        // HTTP dates have whole seconds: compare at that precision.
        return whole_seconds(modified) <= since;
    }
    false
}

fn whole_seconds(time: SystemTime) -> SystemTime {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const T: Duration = Duration::from_millis(1_700_000_000_500);

    #[test]
    fn matching_etag_is_not_modified() {
        let h = headers(&[(header::IF_NONE_MATCH, "\"x\", \"abc\"")]);
        assert!(not_modified(&h, "\"abc\"", SystemTime::UNIX_EPOCH + T));
    }

    #[test]
    fn other_etag_is_modified_even_with_a_later_if_modified_since() {
        let h = headers(&[
            (header::IF_NONE_MATCH, "\"old\""),
            (header::IF_MODIFIED_SINCE, "Sun, 01 Jan 2040 00:00:00 GMT"),
        ]);
        assert!(!not_modified(&h, "\"abc\"", SystemTime::UNIX_EPOCH + T));
    }

    #[test]
    fn if_modified_since_at_the_same_second_is_not_modified() {
        let modified = SystemTime::UNIX_EPOCH + T;
        let h = headers(&[(
            header::IF_MODIFIED_SINCE,
            &httpdate::fmt_http_date(modified),
        )]);
        assert!(not_modified(&h, "\"abc\"", modified));
    }

    #[test]
    fn if_modified_since_before_the_change_is_modified() {
        let modified = SystemTime::UNIX_EPOCH + T;
        let earlier = modified - Duration::from_secs(2);
        let h = headers(&[(header::IF_MODIFIED_SINCE, &httpdate::fmt_http_date(earlier))]);
        assert!(!not_modified(&h, "\"abc\"", modified));
    }

    #[test]
    fn unconditional_request_is_modified() {
        assert!(!not_modified(
            &HeaderMap::new(),
            "\"abc\"",
            SystemTime::UNIX_EPOCH
        ));
    }
}
