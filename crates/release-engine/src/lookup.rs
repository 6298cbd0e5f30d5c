//! Helm's `lookup` answered from the cluster, as `helm upgrade` answers it, but read-only and
//! confined to the release's namespace: a loopback HTTP endpoint that `helm template
//! --dry-run=server` talks to as if it were the API server, forwarding what it allows through
//! the operator's own client.
//!
//! Each render gets a session: a random token, which is the first segment of the server URL in
//! the render's private kubeconfig (client-go sends no bearer token over plain HTTP, so the
//! token travels in the path), and the namespace it may read. The endpoint serves only GETs of
//! discovery (`/version`, `/api`, `/apis` and their group/version documents) and of objects and
//! lists under `/api/v1/namespaces/<NS>/...` and `/apis/<g>/<v>/namespaces/<NS>/...` for that
//! namespace. Everything else (another namespace, a cluster-wide list, a cluster-scoped object,
//! OpenAPI, any write, watch or query) is answered `404 Not Found`, which `lookup` turns into an
//! empty result: a chart never learns whether the object exists elsewhere. Query strings are
//! never forwarded, so no watch, selector or large list option reaches the API server.
//!
//! What a render read (each object or list, with a digest of its answer) is kept with the
//! render, so a cached render is reused only while every object it looked up still answers the
//! same (see [`LookupProxy::still_answers`]). Bodies (Secret data among them) are held in memory
//! only for the forwarding and the digest; they are never logged.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use serde_json::Value;

use crate::digest::{bytes_digest, json_digest};

/// Largest answer forwarded from the API server (a list of a namespace's Secrets, say).
pub const MAX_READ_BYTES: usize = 32 * 1024 * 1024;
/// Longest one forwarded read may take.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// An answer of the API server, as forwarded to helm.
#[derive(Clone)]
pub struct ReadResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl std::fmt::Debug for ReadResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The body may be a Secret.
        f.debug_struct("ReadResponse")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// A read of the API server.
pub type ReadFuture<'a> = Pin<Box<dyn Future<Output = Result<ReadResponse, String>> + Send + 'a>>;

/// Reads from the API server: the operator's client ([`kube::Client`]), or a fake in tests.
pub trait ClusterReader: Send + Sync + 'static {
    /// GETs `path` (an absolute API path, no query) with the `Accept` header given. Every HTTP
    /// status is an answer; `Err` is for a read that got none (transport, size limit).
    fn get<'a>(&'a self, path: &'a str, accept: Option<&'a str>) -> ReadFuture<'a>;
}

/// A reader shared with its owner (a test keeping a handle on its fake cluster).
impl<T: ClusterReader> ClusterReader for Arc<T> {
    fn get<'a>(&'a self, path: &'a str, accept: Option<&'a str>) -> ReadFuture<'a> {
        T::get(self, path, accept)
    }
}

impl ClusterReader for kube::Client {
    fn get<'a>(&'a self, path: &'a str, accept: Option<&'a str>) -> ReadFuture<'a> {
        Box::pin(async move {
            let mut request = http::Request::get(path);
            if let Some(accept) = accept {
                request = request.header(http::header::ACCEPT, accept);
            }
            let request = request
                .body(kube::client::Body::empty())
                .map_err(|e| format!("building the request: {e}"))?;
            let response = tokio::time::timeout(READ_TIMEOUT, self.send(request))
                .await
                .map_err(|_| format!("no answer within {}s", READ_TIMEOUT.as_secs()))?
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = Limited::new(response.into_body(), MAX_READ_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading the answer (at most {MAX_READ_BYTES} bytes): {e}"))?
                .to_bytes();
            Ok(ReadResponse {
                status,
                content_type,
                body,
            })
        })
    }
}

/// What a request path of a render may reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Discovery: the server version, API groups and the resources of a group version.
    Discovery,
    /// An object or a list of the render's namespace.
    Namespaced,
    /// Anything else: answered 404.
    Refused,
}

/// Where `path` (no query, no token) may go for a render into `namespace`.
pub fn route(path: &str, namespace: &str) -> Route {
    let Some(rest) = path.strip_prefix('/') else {
        return Route::Refused;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    if !segments.iter().all(|s| plain_segment(s)) {
        return Route::Refused;
    }
    let in_namespace = |ns: &str, tail: &[&str]| {
        if ns == namespace && matches!(tail.len(), 1 | 2) {
            Route::Namespaced
        } else {
            Route::Refused
        }
    };
    match segments.as_slice() {
        ["version"] | ["api"] | ["apis"] | ["api", _] | ["apis", _] | ["apis", _, _] => {
            Route::Discovery
        }
        ["api", _, "namespaces", ns, tail @ ..] => in_namespace(ns, tail),
        ["apis", _, _, "namespaces", ns, tail @ ..] => in_namespace(ns, tail),
        _ => Route::Refused,
    }
}

/// A path segment that means itself: no dot segments, no escapes, nothing a server could
/// read as something else.
fn plain_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'))
}

/// One object or list a render read, and a digest of its answer.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Read {
    path: String,
    digest: String,
}

impl std::fmt::Debug for Read {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Read").field("path", &self.path).finish()
    }
}

/// A digest of what a read answered, blind to bookkeeping that changes on writes that change
/// nothing a template can use (resourceVersion, managedFields, a list's own metadata).
fn answer_digest(status: u16, body: &[u8]) -> String {
    let content = match serde_json::from_slice::<Value>(body) {
        Ok(mut value) => {
            if let Some(items) = value.get_mut("items").and_then(Value::as_array_mut) {
                items.iter_mut().for_each(strip_bookkeeping);
                if let Some(map) = value.as_object_mut() {
                    map.remove("metadata");
                }
            } else {
                strip_bookkeeping(&mut value);
            }
            json_digest(&value)
        }
        Err(_) => bytes_digest(body),
    };
    format!("{status}:{content}")
}

fn strip_bookkeeping(object: &mut Value) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("resourceVersion");
        metadata.remove("managedFields");
    }
}

struct Session {
    namespace: String,
    /// Whom this render reads as, when not the proxy's own reader (a release acting as its
    /// ServiceAccount).
    reader: Option<Arc<dyn ClusterReader>>,
    reads: Vec<Read>,
    /// The values of the Secrets read (encoded and decoded), scrubbed from helm's errors: a
    /// template may `fail` with a looked-up value in its message.
    secret_values: Vec<String>,
}

type Sessions = Arc<Mutex<HashMap<String, Session>>>;

fn lock(sessions: &Sessions) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
    // Each update is a single map operation: a panic elsewhere cannot leave it half done.
    sessions
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The endpoint, started on first use and stopped when dropped.
pub struct LookupProxy {
    reader: Arc<dyn ClusterReader>,
    sessions: Sessions,
    server: tokio::sync::OnceCell<Server>,
}

struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for LookupProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupProxy")
            .field("addr", &self.server.get().map(|s| s.addr))
            .finish_non_exhaustive()
    }
}

impl LookupProxy {
    pub fn new(reader: impl ClusterReader) -> Self {
        LookupProxy {
            reader: Arc::new(reader),
            sessions: Sessions::default(),
            server: tokio::sync::OnceCell::new(),
        }
    }

    /// A session for one render into `namespace`, reading with `reader` (else the proxy's
    /// own); it ends when the guard is dropped.
    pub async fn session(
        &self,
        namespace: &str,
        reader: Option<Arc<dyn ClusterReader>>,
    ) -> std::io::Result<LookupSession<'_>> {
        let server = self
            .server
            .get_or_try_init(|| serve(self.reader.clone(), self.sessions.clone()))
            .await?;
        let token = random_token();
        lock(&self.sessions).insert(
            token.clone(),
            Session {
                namespace: namespace.to_owned(),
                reader,
                reads: Vec::new(),
                secret_values: Vec::new(),
            },
        );
        Ok(LookupSession {
            sessions: &self.sessions,
            server_url: format!("http://{}/{token}", server.addr),
            token,
        })
    }

    /// Whether every read of a render still answers the same to `reader` (else the proxy's
    /// own), so its result still holds.
    pub(crate) async fn still_answers(
        &self,
        reads: &[Read],
        reader: Option<&Arc<dyn ClusterReader>>,
    ) -> bool {
        let reader = reader.unwrap_or(&self.reader);
        for read in reads {
            match reader.get(&read.path, Some(JSON)).await {
                Ok(answer) if answer_digest(answer.status, &answer.body) == read.digest => {}
                _ => return false,
            }
        }
        true
    }
}

const JSON: &str = "application/json";

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One render's access: its server URL (the token in it) and, once done, what it read.
pub struct LookupSession<'a> {
    sessions: &'a Sessions,
    token: String,
    server_url: String,
}

impl std::fmt::Debug for LookupSession<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL carries the token.
        f.debug_struct("LookupSession").finish_non_exhaustive()
    }
}

impl LookupSession<'_> {
    /// The server URL for helm's kubeconfig.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The values of the Secrets the render read so far, to scrub from its errors.
    pub(crate) fn secret_values(&self) -> Vec<String> {
        lock(self.sessions)
            .get(&self.token)
            .map(|s| s.secret_values.clone())
            .unwrap_or_default()
    }

    /// Ends the session; what it read.
    pub(crate) fn finish(self) -> Vec<Read> {
        lock(self.sessions)
            .remove(&self.token)
            .map(|s| s.reads)
            .unwrap_or_default()
    }
}

impl Drop for LookupSession<'_> {
    fn drop(&mut self) {
        lock(self.sessions).remove(&self.token);
    }
}

/// Writes helm's kubeconfig for `server_url` into `dir` (created private), readable by the
/// owner only; it is removed with `dir`.
pub fn write_kubeconfig(dir: &Path, server_url: &str, namespace: &str) -> std::io::Result<PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let quote = |s: &str| Value::String(s.to_owned()).to_string();
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: release\n  cluster:\n    server: {}\nusers:\n- name: release\n  user: {{}}\ncontexts:\n- name: release\n  context:\n    cluster: release\n    user: release\n    namespace: {}\ncurrent-context: release\n",
        quote(server_url),
        quote(namespace)
    );
    let path = dir.join("kubeconfig");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(text.as_bytes())?;
    Ok(path)
}

/// Whether a chart's templates may call `lookup`: a template (of the chart or of an unpacked
/// subchart) names it, or a subchart is still packed (its templates are not read here). Only
/// such charts are rendered against the cluster; the others render offline as before.
pub fn chart_may_look_up(chart_dir: &Path) -> bool {
    /// `in_templates`: whether `dir` is inside a `templates` directory of the chart.
    fn walk(dir: &Path, in_templates: bool, depth: usize) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            // Helm reports an unreadable chart better than a guess here would.
            return false;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                let templates = in_templates || entry.file_name() == "templates";
                if depth < 16 && walk(&path, templates, depth + 1) {
                    return true;
                }
            } else if kind.is_file() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.ends_with(".tgz") || name.ends_with(".tar.gz") {
                    return true;
                }
                if in_templates && std::fs::read(&path).is_ok_and(|text| contains(&text, b"lookup"))
                {
                    return true;
                }
            }
        }
        false
    }
    walk(chart_dir, false, 0)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn serve(reader: Arc<dyn ClusterReader>, sessions: Sessions) -> std::io::Result<Server> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, say: the render waiting on it times out with
                    // an error of its own; pausing keeps this loop from spinning meanwhile.
                    tracing::debug!(%error, "the lookup endpoint could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let reader = reader.clone();
            let sessions = sessions.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let reader = reader.clone();
                    let sessions = sessions.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            answer(reader.as_ref(), &sessions, request).await,
                        )
                    }
                });
                // A connection helm drops midway is its business; the render reports it.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Server { addr, task })
}

/// Answers one request of helm.
async fn answer<B>(
    reader: &dyn ClusterReader,
    sessions: &Sessions,
    request: http::Request<B>,
) -> http::Response<Full<Bytes>> {
    if request.method() != http::Method::GET {
        return status(405, "MethodNotAllowed", "rendering reads only");
    }
    let path = request.uri().path();
    let (token, rest) = match path.strip_prefix('/').and_then(|p| p.split_once('/')) {
        Some((token, rest)) => (token, format!("/{rest}")),
        None => return status(401, "Unauthorized", "unknown render session"),
    };
    let Some((namespace, own_reader)) = lock(sessions)
        .get(token)
        .map(|s| (s.namespace.clone(), s.reader.clone()))
    else {
        return status(401, "Unauthorized", "unknown render session");
    };
    let reader = own_reader.as_deref().unwrap_or(reader);
    let route = route(&rest, &namespace);
    if route == Route::Refused {
        tracing::debug!(path = %rest, "a render asked for something outside its namespace: answered not found");
        return status(
            404,
            "NotFound",
            "not readable while rendering: a chart reads only its release's namespace",
        );
    }
    let accept = request
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let answer = match reader.get(&rest, accept).await {
        Ok(answer) => answer,
        Err(reason) => {
            tracing::debug!(path = %rest, %reason, "a read for a render failed");
            return status(
                502,
                "InternalError",
                "the operator could not read the cluster",
            );
        }
    };
    if route == Route::Namespaced {
        let digest = answer_digest(answer.status, &answer.body);
        let secret_values = secret_values(&answer.body);
        if let Some(session) = lock(sessions).get_mut(token) {
            session.reads.push(Read { path: rest, digest });
            session.secret_values.extend(secret_values);
        }
    }
    let mut response = http::Response::builder().status(answer.status);
    if let Some(content_type) = &answer.content_type {
        response = response.header(http::header::CONTENT_TYPE, content_type);
    }
    response
        .body(Full::new(answer.body))
        .unwrap_or_else(|_| status(502, "InternalError", "unusable answer from the cluster"))
}

/// The `data` and `stringData` values of a Secret or of the Secrets of a list, as sent
/// (base64) and decoded.
fn secret_values(body: &[u8]) -> Vec<String> {
    use base64::Engine as _;
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let objects: Vec<&Value> = match value.get("items").and_then(Value::as_array) {
        Some(items) => items.iter().collect(),
        None => vec![&value],
    };
    let mut out = Vec::new();
    for object in objects {
        if object.get("kind").and_then(Value::as_str) != Some("Secret")
            && value.get("kind").and_then(Value::as_str) != Some("SecretList")
        {
            continue;
        }
        for field in ["data", "stringData"] {
            let Some(data) = object.get(field).and_then(Value::as_object) else {
                continue;
            };
            for text in data.values().filter_map(Value::as_str) {
                if field == "data"
                    && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(text)
                {
                    out.push(String::from_utf8_lossy(&decoded).into_owned());
                }
                out.push(text.to_owned());
            }
        }
    }
    out
}

/// A Kubernetes `Status` answer.
fn status(code: u16, reason: &str, message: &str) -> http::Response<Full<Bytes>> {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "reason": reason,
        "message": message,
        "code": code,
    });
    let mut response = http::Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() =
        http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(JSON),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_is_served() {
        for path in [
            "/version",
            "/api",
            "/apis",
            "/api/v1",
            "/apis/apps",
            "/apis/apps/v1",
        ] {
            assert_eq!(route(path, "team"), Route::Discovery, "{path}");
        }
    }

    #[test]
    fn objects_and_lists_of_the_render_namespace_are_served() {
        for path in [
            "/api/v1/namespaces/team/secrets",
            "/api/v1/namespaces/team/secrets/db-auth",
            "/apis/apps/v1/namespaces/team/deployments/web",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/team/roles/system:reader",
        ] {
            assert_eq!(route(path, "team"), Route::Namespaced, "{path}");
        }
    }

    #[test]
    fn other_namespaces_cluster_wide_reads_and_tricks_are_refused() {
        for path in [
            // Another namespace, its objects and lists.
            "/api/v1/namespaces/other/secrets/db-auth",
            "/api/v1/namespaces/other/secrets",
            "/apis/apps/v1/namespaces/other/deployments",
            // Cluster-wide lists and cluster-scoped objects, the namespace object included.
            "/api/v1/secrets",
            "/apis/apps/v1/deployments",
            "/api/v1/namespaces",
            "/api/v1/namespaces/team",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
            // Subresources, escapes, dot segments, empty segments, OpenAPI.
            "/api/v1/namespaces/team/pods/web/log",
            "/api/v1/namespaces/team/secrets/..",
            "/api/v1/namespaces/team/../other/secrets",
            "/api/v1/namespaces/team/secrets/a%2Fb",
            "/api/v1/namespaces/team//secrets",
            "/api/v1/namespaces/team/secrets/",
            "/openapi/v2",
            "/openapi/v3",
            "/healthz",
            "",
            "/",
            "version",
        ] {
            assert_eq!(route(path, "team"), Route::Refused, "{path}");
        }
    }

    #[test]
    fn answer_digests_ignore_bookkeeping_and_see_content() {
        let secret = |rv: &str, password: &str| {
            serde_json::json!({"kind": "Secret", "metadata": {"name": "a", "resourceVersion": rv,
                "managedFields": [{"manager": rv}]}, "data": {"password": password}})
            .to_string()
        };
        assert_eq!(
            answer_digest(200, secret("1", "eA==").as_bytes()),
            answer_digest(200, secret("2", "eA==").as_bytes())
        );
        assert_ne!(
            answer_digest(200, secret("1", "eA==").as_bytes()),
            answer_digest(200, secret("1", "eQ==").as_bytes())
        );
        assert_ne!(answer_digest(200, b"{}"), answer_digest(404, b"{}"));
        let list = |rv: &str| {
            serde_json::json!({"kind": "SecretList", "metadata": {"resourceVersion": rv},
                "items": [{"metadata": {"name": "a", "resourceVersion": rv}}]})
            .to_string()
        };
        assert_eq!(
            answer_digest(200, list("7").as_bytes()),
            answer_digest(200, list("9").as_bytes())
        );
    }

    #[test]
    fn secret_values_are_collected_encoded_and_decoded_from_secrets_and_lists_only() {
        let secret = serde_json::json!({"kind": "Secret", "data": {"p": "aHVudGVyMg=="}});
        assert_eq!(
            secret_values(secret.to_string().as_bytes()),
            ["hunter2", "aHVudGVyMg=="]
        );
        let list = serde_json::json!({"kind": "SecretList", "items": [
            {"data": {"a": "b25l"}}, {"data": {"b": "dHdv"}}]});
        assert_eq!(
            secret_values(list.to_string().as_bytes()),
            ["one", "b25l", "two", "dHdv"]
        );
        let config_map = serde_json::json!({"kind": "ConfigMap", "data": {"a": "b25l"}});
        assert!(secret_values(config_map.to_string().as_bytes()).is_empty());
        assert!(secret_values(b"not json").is_empty());
    }

    #[test]
    fn the_kubeconfig_is_private_and_names_the_session_url() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = write_kubeconfig(dir.path(), "http://127.0.0.1:1/abc", "team").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("server: \"http://127.0.0.1:1/abc\""),
            "{text}"
        );
        assert!(text.contains("namespace: \"team\""), "{text}");
    }

    #[test]
    fn charts_naming_lookup_in_templates_or_with_packed_subcharts_may_look_up() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("templates")).unwrap();
        std::fs::write(root.join("Chart.yaml"), "name: lookup\n").unwrap();
        std::fs::write(root.join("values.yaml"), "lookup: true\n").unwrap();
        std::fs::write(root.join("templates/cm.yaml"), "kind: ConfigMap\n").unwrap();
        assert!(
            !chart_may_look_up(root),
            "names outside templates do not count"
        );
        let nested = root.join("templates/cache/app");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(nested.join("values.yaml"), "lookup: true\n").unwrap();
        assert!(
            !chart_may_look_up(&nested),
            "a chart kept under a directory named templates is read from its own root"
        );
        std::fs::remove_dir_all(root.join("templates/cache")).unwrap();
        std::fs::create_dir_all(root.join("charts/common/templates")).unwrap();
        std::fs::write(
            root.join("charts/common/templates/_secrets.tpl"),
            "{{ (lookup \"v1\" \"Secret\" .ns .name).data }}",
        )
        .unwrap();
        assert!(chart_may_look_up(root));
        std::fs::remove_dir_all(root.join("charts/common")).unwrap();
        std::fs::write(root.join("charts/common-2.0.0.tgz"), b"\x1f\x8b").unwrap();
        assert!(chart_may_look_up(root));
    }

    /// Answers from a fixed table; records what was asked.
    struct Table {
        answers: HashMap<&'static str, &'static str>,
        asked: Mutex<Vec<String>>,
    }

    impl ClusterReader for Table {
        fn get<'a>(&'a self, path: &'a str, _accept: Option<&'a str>) -> ReadFuture<'a> {
            Box::pin(async move {
                self.asked.lock().unwrap().push(path.to_owned());
                Ok(match self.answers.get(path) {
                    Some(body) => ReadResponse {
                        status: 200,
                        content_type: Some(JSON.into()),
                        body: Bytes::from_static(body.as_bytes()),
                    },
                    None => ReadResponse {
                        status: 404,
                        content_type: Some(JSON.into()),
                        body: Bytes::from_static(b"{\"kind\":\"Status\",\"code\":404}"),
                    },
                })
            })
        }
    }

    async fn body_of(response: http::Response<Full<Bytes>>) -> (u16, String) {
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn the_endpoint_forwards_what_the_session_may_read_and_records_objects() {
        let table = Table {
            answers: HashMap::from([
                (
                    "/api/v1/namespaces/team/secrets/db",
                    "{\"data\":{\"p\":\"eA==\"}}",
                ),
                (
                    "/api/v1/namespaces/other/secrets/db",
                    "{\"data\":{\"p\":\"c2VjcmV0\"}}",
                ),
                ("/version", "{\"gitVersion\":\"v1.33.0\"}"),
            ]),
            asked: Mutex::new(Vec::new()),
        };
        let sessions = Sessions::default();
        lock(&sessions).insert(
            "tok".into(),
            Session {
                namespace: "team".into(),
                reader: None,
                reads: Vec::new(),
                secret_values: Vec::new(),
            },
        );
        let get = |uri: &str| http::Request::get(uri).body(()).unwrap();

        let (code, body) = body_of(answer(&table, &sessions, get("/tok/version")).await).await;
        assert_eq!((code, body.as_str()), (200, "{\"gitVersion\":\"v1.33.0\"}"));
        let (code, body) = body_of(
            answer(
                &table,
                &sessions,
                get("/tok/api/v1/namespaces/team/secrets/db"),
            )
            .await,
        )
        .await;
        assert_eq!(code, 200);
        assert!(body.contains("eA=="));
        let (code, body) = body_of(
            answer(
                &table,
                &sessions,
                get("/tok/api/v1/namespaces/other/secrets/db"),
            )
            .await,
        )
        .await;
        assert_eq!(code, 404);
        assert!(!body.contains("c2VjcmV0"));
        // No session, a wrong token, a write: nothing is read.
        let (code, _) =
            body_of(answer(&table, &sessions, get("/api/v1/namespaces/team/secrets/db")).await)
                .await;
        assert_eq!(code, 401);
        let (code, _) = body_of(
            answer(
                &table,
                &sessions,
                get("/nope/api/v1/namespaces/team/secrets/db"),
            )
            .await,
        )
        .await;
        assert_eq!(code, 401);
        let post = http::Request::post("/tok/api/v1/namespaces/team/secrets")
            .body(())
            .unwrap();
        let (code, _) = body_of(answer(&table, &sessions, post).await).await;
        assert_eq!(code, 405);
        // A query string is not forwarded (no watch reaches the API server).
        let (code, _) = body_of(
            answer(
                &table,
                &sessions,
                get("/tok/api/v1/namespaces/team/secrets/db?watch=true"),
            )
            .await,
        )
        .await;
        assert_eq!(code, 200);

        assert_eq!(
            *table.asked.lock().unwrap(),
            [
                "/version",
                "/api/v1/namespaces/team/secrets/db",
                "/api/v1/namespaces/team/secrets/db"
            ]
        );
        let reads = lock(&sessions).get("tok").unwrap().reads.clone();
        assert_eq!(reads.len(), 2, "discovery is not recorded: {reads:?}");
        assert_eq!(reads[0].path, "/api/v1/namespaces/team/secrets/db");
    }

    #[tokio::test]
    async fn a_served_session_ends_with_its_guard_and_revalidates_its_reads() {
        let proxy = LookupProxy::new(Table {
            answers: HashMap::from([("/api/v1/namespaces/team/secrets/db", "{\"a\":1}")]),
            asked: Mutex::new(Vec::new()),
        });
        let session = proxy.session("team", None).await.unwrap();
        assert!(session.server_url().starts_with("http://127.0.0.1:"));
        assert_eq!(lock(&proxy.sessions).len(), 1);
        let reads = vec![
            Read {
                path: "/api/v1/namespaces/team/secrets/db".into(),
                digest: answer_digest(200, b"{\"a\":1}"),
            },
            Read {
                path: "/api/v1/namespaces/team/secrets/gone".into(),
                digest: answer_digest(404, b"{\"kind\":\"Status\",\"code\":404}"),
            },
        ];
        assert!(proxy.still_answers(&reads, None).await);
        let changed = vec![Read {
            path: "/api/v1/namespaces/team/secrets/db".into(),
            digest: answer_digest(200, b"{\"a\":2}"),
        }];
        assert!(!proxy.still_answers(&changed, None).await);
        drop(session);
        assert!(lock(&proxy.sessions).is_empty());
    }

    #[tokio::test]
    async fn a_session_with_a_reader_of_its_own_reads_and_revalidates_with_it_only() {
        let proxy_table = Arc::new(Table {
            answers: HashMap::from([("/api/v1/namespaces/team/secrets/db", "{\"a\":1}")]),
            asked: Mutex::new(Vec::new()),
        });
        // The release's account may not read the Secret: it gets the 404 of its own reader.
        let own = Arc::new(Table {
            answers: HashMap::new(),
            asked: Mutex::new(Vec::new()),
        });
        let proxy = LookupProxy::new(proxy_table.clone());
        let sessions = Sessions::default();
        let reader: Arc<dyn ClusterReader> = own.clone();
        lock(&sessions).insert(
            "tok".into(),
            Session {
                namespace: "team".into(),
                reader: Some(reader.clone()),
                reads: Vec::new(),
                secret_values: Vec::new(),
            },
        );
        let get = http::Request::get("/tok/api/v1/namespaces/team/secrets/db")
            .body(())
            .unwrap();
        let (code, _) = body_of(answer(proxy_table.as_ref(), &sessions, get).await).await;
        assert_eq!(code, 404);
        let reads = lock(&sessions).get("tok").unwrap().reads.clone();
        assert!(proxy.still_answers(&reads, Some(&reader)).await);
        assert!(!proxy.still_answers(&reads, None).await);
        assert_eq!(
            *own.asked.lock().unwrap(),
            [
                "/api/v1/namespaces/team/secrets/db",
                "/api/v1/namespaces/team/secrets/db"
            ]
        );
        assert_eq!(
            *proxy_table.asked.lock().unwrap(),
            ["/api/v1/namespaces/team/secrets/db"],
            "the proxy's own reader is asked only without the session's"
        );
    }
}
