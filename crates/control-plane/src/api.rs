//! The HTTP layer: routes Kubernetes API requests to the store and renders answers (JSON
//! objects, `Status` errors, Tables, watch streams). Shared by the in-process client and HTTPS.

use std::borrow::Borrow;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::error::{ApiError, ApiResult};
use crate::faults::{Faults, Gate, LoggedRequest, RequestInfo, Verb, client_tag};
use crate::meta;
use crate::openapi;
use crate::patching::PatchKind;
use crate::registry::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::shape::{self, Shape};
use crate::store::{
    DeleteOpts, DeleteOutcome, EventType, FieldValidation, ListQuery, Propagation, Store,
    WriteOpts, WriteResult, filter_event,
};
use crate::table;

/// The body of every response: a full JSON document or a stream of watch events.
pub type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

/// Settings the HTTP layer needs.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub git_version: String,
    pub bookmark_interval: Duration,
}

/// State shared by every request.
pub struct Shared {
    pub store: Mutex<Store>,
    pub settings: ApiSettings,
    pub faults: Faults,
    pub requests: crate::requests::RequestCounter,
    pub rbac: crate::rbac::Rbac,
    pub shutdown: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into()).boxed_unsync()
}

fn json_response(code: u16, v: &Value) -> Response<ResponseBody> {
    let mut r = Response::new(full(serde_json::to_vec(v).unwrap_or_default()));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub fn error_response(e: &ApiError) -> Response<ResponseBody> {
    let mut r = json_response(e.code, &e.to_status());
    if let Some(secs) = e.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn with_warnings(mut r: Response<ResponseBody>, warnings: &[String]) -> Response<ResponseBody> {
    for w in warnings {
        let text = format!("299 - {:?}", w);
        if let Ok(v) = HeaderValue::from_str(&text) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
    r
}

/// The media type of Kubernetes protobuf bodies.
const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// A parsed resource path.
#[derive(Debug)]
struct ResourcePath {
    group: String,
    version: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    sub: Option<String>,
}

enum Route {
    Version,
    Health,
    CoreVersions,
    Groups,
    Group(String),
    ResourceList(String, String),
    OpenApiV2,
    OpenApiV3Root,
    OpenApiV3(String, String),
    Resource(ResourcePath),
    NotFound,
    /// Refused before routing: impersonation or authorization failed.
    Refused(ApiError),
}

fn parse_route(path: &str) -> Route {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["healthz"] | ["livez"] | ["readyz"] => Route::Health,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["apis", g] => Route::Group(g.to_string()),
        ["api", v] => Route::ResourceList(String::new(), v.to_string()),
        ["apis", g, v] => Route::ResourceList(g.to_string(), v.to_string()),
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiV3Root,
        ["openapi", "v3", "api", v] => Route::OpenApiV3(String::new(), v.to_string()),
        ["openapi", "v3", "apis", g, v] => Route::OpenApiV3(g.to_string(), v.to_string()),
        ["api", v, rest @ ..] => resource_path("", v, rest),
        ["apis", g, v, rest @ ..] => resource_path(g, v, rest),
        _ => Route::NotFound,
    }
}

fn resource_path(group: &str, version: &str, rest: &[&str]) -> Route {
    let mk = |ns: Option<&str>, plural: &str, name: Option<&&str>, sub: Option<&&str>| {
        Route::Resource(ResourcePath {
            group: group.to_string(),
            version: version.to_string(),
            namespace: ns.map(str::to_string),
            plural: plural.to_string(),
            name: name.map(|s| s.to_string()),
            sub: sub.map(|s| s.to_string()),
        })
    };
    match rest {
        // `/api/v1/namespaces/{ns}/{resource}...` unless it is the namespace's own subresource.
        ["namespaces", ns, plural, tail @ ..]
            if !(group.is_empty()
                && tail.is_empty()
                && matches!(*plural, "status" | "finalize")) =>
        {
            if tail.len() > 2 {
                return Route::NotFound;
            }
            mk(Some(ns), plural, tail.first(), tail.get(1))
        }
        [plural, tail @ ..] if tail.len() <= 2 => mk(None, plural, tail.first(), tail.get(1)),
        _ => Route::NotFound,
    }
}

struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Self {
        Query(
            form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    /// A boolean parameter (`watch`, `force`, `orphanDependents`, ...): `None` when absent.
    fn bool(&self, k: &str) -> Option<bool> {
        self.get(k).map(query_bool)
    }
    /// A boolean parameter, false when absent.
    fn flag(&self, k: &str) -> bool {
        self.bool(k).unwrap_or(false)
    }
}

/// A boolean query parameter as the apiserver's parameter codec reads it
/// (`runtime.Convert_Slice_string_To_bool` in apimachinery): `0` and `false` in any case are
/// false, anything else is true, so `True` (what Python clients up to 36.x send) and the empty
/// value are true.
fn query_bool(value: &str) -> bool {
    !(value == "0" || value.eq_ignore_ascii_case("false"))
}

fn header_str(req: &Request<Bytes>, name: header::HeaderName) -> &str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Handles one API request.
pub async fn handle(
    shared: Arc<Shared>,
    way: crate::WayIn,
    mut req: Request<Bytes>,
) -> Response<ResponseBody> {
    let path = req.uri().path().to_string();
    let query = Query::parse(req.uri().query());
    let route = parse_route(&path);
    let verb = match &route {
        Route::Resource(rp) => verb_of(req.method(), rp.name.is_some(), query.flag("watch")).ok(),
        _ => None,
    };
    shared.requests.record(way, verb);
    // What the request log keeps of the request, read before the route is consumed.
    let logged = shared
        .faults
        .logging()
        .then(|| logged_request(&req, &route, verb));
    let mut pause_after = Vec::new();
    // With RBAC on: impersonation and authorization.
    let route = match crate::rbac::authorize(&shared, &mut req) {
        Ok(()) => route,
        Err(e) => Route::Refused(e),
    };
    let response = match route {
        Route::Refused(e) => error_response(&e),
        Route::Version => json_response(200, &version_info(&shared.settings.git_version)),
        Route::Health => {
            let mut r = Response::new(full("ok"));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            r
        }
        Route::CoreVersions => json_response(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        ),
        Route::Groups => json_response(200, &group_list(&shared.lock())),
        Route::Group(g) => {
            let list = group_list(&shared.lock());
            match list["groups"]
                .as_array()
                .and_then(|a| a.iter().find(|x| x["name"] == g))
            {
                Some(group) => {
                    let mut group = group.clone();
                    group["kind"] = json!("APIGroup");
                    group["apiVersion"] = json!("v1");
                    json_response(200, &group)
                }
                None => error_response(&ApiError::page_not_found()),
            }
        }
        Route::ResourceList(g, v) => match shared.lock().registry.resource_list(&g, &v) {
            Some(list) => json_response(200, &list),
            None => error_response(&ApiError::page_not_found()),
        },
        Route::OpenApiV2 => error_response(&ApiError::page_not_found()),
        Route::OpenApiV3Root => json_response(200, &openapi::root(&shared.lock().registry)),
        Route::OpenApiV3(g, v) => match openapi::group_version(&shared.lock().registry, &g, &v) {
            Some(doc) => json_response(200, &doc),
            None => error_response(&ApiError::page_not_found()),
        },
        Route::Resource(rp) => {
            match resource_request(&shared, &req, &query, rp, &mut pause_after).await {
                Ok(r) => r,
                Err(e) => error_response(&e),
            }
        }
        Route::NotFound => error_response(&ApiError::page_not_found()),
    };
    if let Some(mut entry) = logged {
        entry.status = response.status().as_u16();
        entry.resource_version = shared.lock().current_rv();
        shared.faults.log_request(entry);
    }
    // Stored and logged: a client killed while held here never learns that its write was done.
    for gate in pause_after {
        gate.hold().await;
    }
    response
}

/// The request log's entry for `req` (its status and resourceVersion are set once handled).
fn logged_request(req: &Request<Bytes>, route: &Route, verb: Option<Verb>) -> LoggedRequest {
    let (resource, subresource, namespace, name) = match route {
        Route::Resource(rp) => (
            rp.plural.clone(),
            rp.sub.clone().unwrap_or_default(),
            rp.namespace.clone().unwrap_or_default(),
            rp.name.clone().unwrap_or_default(),
        ),
        _ => Default::default(),
    };
    LoggedRequest {
        seq: 0,
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        verb,
        resource,
        subresource,
        namespace,
        name,
        client: client_tag(req),
        status: 0,
        resource_version: 0,
    }
}

fn version_info(git_version: &str) -> Value {
    let v = git_version.trim_start_matches('v');
    let mut parts = v.split('.');
    let major = parts.next().unwrap_or("1");
    let minor = parts.next().unwrap_or("33");
    json!({
        "major": major,
        "minor": minor,
        "emulationMajor": major,
        "emulationMinor": minor,
        "gitVersion": format!("v{v}"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn group_list(store: &Store) -> Value {
    let groups: Vec<Value> = store
        .registry
        .groups()
        .into_iter()
        .map(|(g, versions)| {
            let vs: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            json!({"name": g, "versions": vs, "preferredVersion": vs[0].clone()})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// Sets the `apiVersion` a client asked for (all versions share storage, conversion `None`).
fn present(obj: &Value, t: &ResourceType, version: &str) -> Value {
    if let Some(c) = t.converter() {
        return c.outgoing(obj);
    }
    if t.group == "autoscaling" && version == "v1" {
        return crate::convert::hpa_v2_to_v1(obj);
    }
    let mut o = obj.clone();
    o["apiVersion"] = json!(t.api_version(version));
    o
}

fn verb_of(method: &Method, has_name: bool, watch: bool) -> ApiResult<Verb> {
    Ok(match (method.as_str(), has_name) {
        ("GET", true) => Verb::Get,
        ("GET", false) if watch => Verb::Watch,
        ("GET", false) => Verb::List,
        ("POST", false) => Verb::Create,
        ("PUT", true) => Verb::Update,
        ("PATCH", true) => Verb::Patch,
        ("DELETE", true) => Verb::Delete,
        ("DELETE", false) => Verb::DeleteCollection,
        (m, _) => {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({m})"
            )));
        }
    })
}

fn list_query(q: &Query, t: &ResourceType, namespace: Option<&str>) -> ApiResult<ListQuery> {
    Ok(ListQuery {
        namespace: namespace.map(str::to_string),
        labels: LabelSelector::parse(q.get("labelSelector").unwrap_or(""))?,
        fields: FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), &t.field_selectors)?,
        limit: q
            .get("limit")
            .and_then(|l| l.parse().ok())
            .filter(|l| *l > 0),
        continue_token: q
            .get("continue")
            .filter(|c| !c.is_empty())
            .map(str::to_string),
        conversion: t.converter(),
    })
}

fn write_opts(q: &Query, req: &Request<Bytes>) -> ApiResult<WriteOpts> {
    let dry_run = match q.get("dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!("dryRun: Unsupported value: {other:?}: supported values: \"All\""),
            ));
        }
    };
    let field_validation = match q.get("fieldValidation") {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}"
            )));
        }
    };
    let field_manager = match q.get("fieldManager") {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => {
            // The apiserver defaults the manager to the user agent's product name.
            let ua = header_str(req, header::USER_AGENT);
            ua.split('/')
                .next()
                .unwrap_or("")
                .chars()
                .take(128)
                .collect()
        }
    };
    Ok(WriteOpts {
        dry_run,
        field_manager,
        field_validation,
        applied: false,
    })
}

async fn resource_request(
    shared: &Arc<Shared>,
    req: &Request<Bytes>,
    q: &Query,
    rp: ResourcePath,
    pause_after: &mut Vec<Gate>,
) -> ApiResult<Response<ResponseBody>> {
    let t = {
        let store = shared.lock();
        store
            .registry
            .lookup(&rp.group, &rp.version, &rp.plural)
            .cloned()
    }
    .ok_or_else(ApiError::page_not_found)?;
    if rp.namespace.is_some() && !t.namespaced {
        return Err(ApiError::page_not_found());
    }
    if let Some(sub) = &rp.sub {
        let known = sub == "status" && t.has_status
            || (sub == "scale" && t.scale.is_some())
            || (sub == "finalize" && t.group.is_empty() && t.plural == "namespaces");
        if !known {
            return Err(ApiError::page_not_found());
        }
    }
    let watch = q.flag("watch");
    let verb = verb_of(req.method(), rp.name.is_some(), watch)?;
    if t.namespaced && rp.namespace.is_none() {
        // Only list and watch exist across namespaces.
        match verb {
            Verb::List | Verb::Watch => {}
            Verb::Create | Verb::DeleteCollection => {
                return Err(ApiError::method_not_allowed(format!(
                    "the server does not allow this method on the requested resource ({})",
                    verb.as_str()
                )));
            }
            _ => return Err(ApiError::page_not_found()),
        }
    }
    let ns = rp.namespace.clone().unwrap_or_default();
    let name = rp.name.clone().unwrap_or_default();
    let client = client_tag(req);
    let decision = shared.faults.decide(&RequestInfo {
        verb,
        client: &client,
        resource: &t.plural,
        namespace: &ns,
        name: &name,
    });
    if let Some(d) = decision.delay {
        tokio::time::sleep(d).await;
    }
    if let Some(e) = decision.fail {
        return Err(e);
    }
    for gate in &decision.pause_before {
        gate.hold().await;
    }
    *pause_after = decision.pause_after;
    let version = rp.version.as_str();
    // Negotiated before anything is read, as the apiserver's handlers do. Scales and reviews
    // are answered as themselves whatever their shape.
    let shape = Shape::negotiate(header_str(req, header::ACCEPT), &t, include_object(q))?;
    if rp.sub.as_deref() == Some("scale") {
        return scale_request(shared, req, q, &t, verb, &ns, &name);
    }
    let decoded;
    let req = if matches!(verb, Verb::Create | Verb::Update)
        && header_str(req, header::CONTENT_TYPE).starts_with(PROTOBUF)
    {
        let json = protobuf_body(req.body(), &t, version)?;
        let mut r = Request::new(Bytes::from(serde_json::to_vec(&json).unwrap_or_default()));
        *r.method_mut() = req.method().clone();
        *r.uri_mut() = req.uri().clone();
        *r.headers_mut() = req.headers().clone();
        // Who sent it (auth::UserInfo) and the client tag travel in the extensions.
        *r.extensions_mut() = req.extensions().clone();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        decoded = r;
        &decoded
    } else {
        req
    };
    // With RBAC on, writing a role or a binding is checked against what the writer holds.
    crate::rbac::check_rbac_write(shared, req)?;
    if t.review {
        return review(shared, &t, verb, version, req);
    }
    match verb {
        Verb::Get => {
            let obj = shared.lock().get(&t, &ns, &name)?;
            let answer = shape.object(&t, version, present(&obj, &t, version))?;
            Ok(json_response(200, &answer))
        }
        Verb::List => {
            let lq = list_query(q, &t, rp.namespace.as_deref())?;
            // A list an informer may take from a cache can be a lagging one (faults).
            let list_key = format!("{} {}", t.plural, req.uri().query().unwrap_or(""));
            let result =
                shared
                    .faults
                    .lagging_list(&client, q.get("resourceVersion"), &list_key, || {
                        shared.lock().list(&t, &lq)
                    })?;
            let rv = result.resource_version.to_string();
            let mut metadata = json!({"resourceVersion": rv});
            if let Some(c) = &result.continue_token {
                metadata["continue"] = json!(c);
            }
            if let Some(r) = result.remaining {
                metadata["remainingItemCount"] = json!(r);
            }
            list_response(&t, version, shape, &metadata, &result.items)
        }
        Verb::Watch => start_watch(
            shared,
            &t,
            version,
            q,
            rp.namespace.as_deref(),
            shape,
            &client,
        ),
        Verb::Create => {
            let opts = write_opts(q, req)?;
            let body = parse_body(req.body())?;
            let result = shared.lock().create(&t, &ns, body, &opts)?;
            write_response(&t, version, shape, result, 201)
        }
        Verb::Update => {
            let opts = write_opts(q, req)?;
            let body = parse_body(req.body())?;
            let sub = rp.sub.as_deref();
            let result = if sub == Some("finalize") {
                shared.lock().finalize_namespace(&t, &name, body, &opts)?
            } else {
                shared.lock().update(&t, &ns, &name, body, sub, &opts)?
            };
            write_response(&t, version, shape, result, 200)
        }
        Verb::Patch => {
            let mut opts = write_opts(q, req)?;
            let ct = header_str(req, header::CONTENT_TYPE);
            let kind = PatchKind::from_content_type(ct)
                .ok_or_else(|| ApiError::unsupported_media_type(ct))?;
            if kind == PatchKind::Apply && q.get("fieldManager").is_none_or(str::is_empty) {
                // The apiserver validates PatchOptions before defaulting the manager from the
                // user agent, so an apply must name its manager (ValidatePatchOptions).
                opts.field_manager.clear();
            }
            let force = q.flag("force");
            let result = shared.lock().patch(
                &t,
                &ns,
                &name,
                kind,
                req.body(),
                rp.sub.as_deref(),
                force,
                &opts,
            )?;
            let code = if result.created { 201 } else { 200 };
            write_response(&t, version, shape, result, code)
        }
        Verb::Delete => {
            let opts = delete_opts(q, req)?;
            match shared.lock().delete(&t, &ns, &name, &opts)? {
                DeleteOutcome::Pending(obj) => Ok(json_response(
                    200,
                    &shape.object(&t, version, present(&obj, &t, version))?,
                )),
                // Some built-in kinds answer with the deleted object instead of a Status.
                DeleteOutcome::Gone(obj)
                    if t.builtin
                        && matches!(
                            t.plural.as_str(),
                            "pods" | "serviceaccounts" | "storageclasses"
                        ) =>
                {
                    Ok(json_response(
                        200,
                        &shape.object(&t, version, present(&obj, &t, version))?,
                    ))
                }
                DeleteOutcome::Gone(obj) => {
                    let mut details =
                        json!({"name": name, "kind": t.plural, "uid": meta::uid(&obj)});
                    if !t.group.is_empty() {
                        details["group"] = json!(t.group);
                    }
                    Ok(json_response(
                        200,
                        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
                    ))
                }
            }
        }
        Verb::DeleteCollection => {
            let opts = delete_opts(q, req)?;
            let lq = list_query(q, &t, rp.namespace.as_deref())?;
            let (items, rv) = {
                let mut store = shared.lock();
                let items = store.delete_collection(&t, &lq, &opts)?;
                (items, store.current_rv())
            };
            let metadata = json!({"resourceVersion": rv.to_string()});
            list_response(&t, version, shape, &metadata, &items)
        }
    }
}

/// `/scale` of deployments, statefulsets, replicasets and CRDs declaring it.
fn scale_request(
    shared: &Arc<Shared>,
    req: &Request<Bytes>,
    q: &Query,
    t: &ResourceType,
    verb: Verb,
    ns: &str,
    name: &str,
) -> ApiResult<Response<ResponseBody>> {
    match verb {
        Verb::Get => Ok(json_response(200, &shared.lock().get_scale(t, ns, name)?)),
        Verb::Update => {
            let opts = write_opts(q, req)?;
            let body = parse_body(req.body())?;
            Ok(json_response(
                200,
                &shared.lock().set_scale(t, ns, name, &body, &opts)?,
            ))
        }
        Verb::Patch => {
            let opts = write_opts(q, req)?;
            let ct = header_str(req, header::CONTENT_TYPE);
            let kind = PatchKind::from_content_type(ct)
                .filter(|k| *k != PatchKind::Apply)
                .ok_or_else(|| ApiError::unsupported_media_type(ct))?;
            let mut store = shared.lock();
            let current = store.get_scale(t, ns, name)?;
            let mut patched = crate::patching::apply_patch(kind, &current, req.body(), t)?;
            if !patched["metadata"].is_object() {
                return Err(ApiError::bad_request("the patched Scale is not an object"));
            }
            // The patch acts on the Scale as read; its resourceVersion is not a precondition.
            patched["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
            Ok(json_response(
                200,
                &store.set_scale(t, ns, name, &patched, &opts)?,
            ))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({})",
            verb.as_str()
        ))),
    }
}

/// A list answer in the negotiated shape.
fn list_response<B: Borrow<Value>>(
    t: &ResourceType,
    version: &str,
    shape: Shape,
    metadata: &Value,
    items: &[B],
) -> ApiResult<Response<ResponseBody>> {
    let api_version = t.api_version(version);
    // A stored object is served as it is (no copy) unless the client asked another version.
    let served = |item: &Value, write: &mut dyn FnMut(&Value) -> serde_json::Result<()>| {
        if item["apiVersion"].as_str() == Some(api_version.as_str()) {
            write(item)
        } else {
            write(&present(item, t, version))
        }
    };
    match shape {
        Shape::Object => list_body(&t.list_kind, &api_version, metadata, items, |out, item| {
            served(item, &mut |o| serde_json::to_writer(&mut *out, o))
        }),
        Shape::MetadataList(meta_version) => list_body(
            "PartialObjectMetadataList",
            meta_version,
            metadata,
            items,
            |out, item| {
                served(item, &mut |o| {
                    out.extend_from_slice(b"{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":");
                    serde_json::to_writer(&mut *out, meta_version)?;
                    out.extend_from_slice(b",\"metadata\":");
                    serde_json::to_writer(&mut *out, &o["metadata"])?;
                    out.push(b'}');
                    Ok(())
                })
            },
        ),
        Shape::Table(include) => {
            let items: Vec<Value> = items
                .iter()
                .map(|o| present(o.borrow(), t, version))
                .collect();
            let table = table::table(
                t,
                version,
                &items,
                metadata["resourceVersion"].as_str().unwrap_or(""),
                metadata["continue"].as_str(),
                include,
            );
            Ok(json_response(200, &table))
        }
        Shape::Metadata(_) => Err(shape::metadata_asked_of_a_list(t)),
    }
}

/// A list's JSON, written item by item by `write_item`.
fn list_body<B: Borrow<Value>>(
    kind: &str,
    api_version: &str,
    metadata: &Value,
    items: &[B],
    mut write_item: impl FnMut(&mut Vec<u8>, &Value) -> serde_json::Result<()>,
) -> ApiResult<Response<ResponseBody>> {
    let mut out = Vec::with_capacity(256 + items.len() * 512);
    out.extend_from_slice(b"{\"kind\":");
    serde_json::to_writer(&mut out, kind)
        .and_then(|()| {
            out.extend_from_slice(b",\"apiVersion\":");
            serde_json::to_writer(&mut out, api_version)
        })
        .and_then(|()| {
            out.extend_from_slice(b",\"metadata\":");
            serde_json::to_writer(&mut out, metadata)
        })
        .map_err(|e| ApiError::internal(e.to_string()))?;
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_item(&mut out, item.borrow()).map_err(|e| ApiError::internal(e.to_string()))?;
    }
    out.extend_from_slice(b"]}");
    let mut r = Response::new(full(out));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

fn include_object(q: &Query) -> table::Include {
    match q.get("includeObject") {
        Some("Object") => table::Include::Object,
        Some("None") => table::Include::None,
        _ => table::Include::Metadata,
    }
}

fn parse_body(body: &Bytes) -> ApiResult<Value> {
    if body.is_empty() {
        return Err(ApiError::bad_request("the body of the request was empty"));
    }
    // JSON is YAML: kubectl and kube-rs send JSON, hand-written requests may send YAML.
    serde_json::from_slice(body)
        .or_else(|_| serde_yaml_ng::from_slice(body))
        .map(crate::meta::with_integral_floats_as_integers)
        .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))
}

fn write_response(
    t: &ResourceType,
    version: &str,
    shape: Shape,
    result: WriteResult,
    code: u16,
) -> ApiResult<Response<ResponseBody>> {
    let answer = shape.object(t, version, present(&result.object, t, version))?;
    Ok(with_warnings(
        json_response(code, &answer),
        &result.warnings,
    ))
}

/// A review resource's answer to `create`: the review with its status. Access reviews are
/// answered by RBAC when it is enforced, else allowed; a SelfSubjectReview names the
/// authenticated user. Nothing is stored.
fn review(
    shared: &Shared,
    t: &ResourceType,
    verb: Verb,
    version: &str,
    req: &Request<Bytes>,
) -> ApiResult<Response<ResponseBody>> {
    if verb != Verb::Create {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!(
                "{} only accept create: they are answered, not stored",
                t.plural
            ),
        ));
    }
    let mut obj = parse_body(req.body())?;
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    obj["apiVersion"] = json!(t.api_version(version));
    obj["kind"] = json!(t.kind);
    obj["status"] = match t.kind.as_str() {
        "SelfSubjectReview" => {
            // The HTTPS endpoint authenticated the request; in process it is the admin's.
            let user = req
                .extensions()
                .get::<crate::auth::UserInfo>()
                .cloned()
                .unwrap_or_else(crate::auth::UserInfo::admin);
            let mut info = json!({"username": user.username, "groups": user.groups});
            if !user.uid.is_empty() {
                info["uid"] = json!(user.uid);
            }
            json!({ "userInfo": info })
        }
        kind => {
            let user = req
                .extensions()
                .get::<crate::auth::UserInfo>()
                .cloned()
                .unwrap_or_else(crate::auth::UserInfo::admin);
            crate::rbac::review_status(shared, kind, &obj, &user, req.uri().path())?
        }
    };
    Ok(json_response(201, &obj))
}

/// The JSON form of a protobuf create/update body. Custom resources have no protobuf form (the
/// apiserver answers 415 too); a body that is not a well-formed message of its kind is a 400.
fn protobuf_body(body: &[u8], t: &ResourceType, version: &str) -> ApiResult<Value> {
    let unsupported = |what: &str| {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml ({what} has no protobuf form)"
            ),
        )
    };
    if !t.builtin {
        return Err(unsupported(&format!("the custom resource {}", t.kind)));
    }
    let (mut obj, zeros) = crate::protobuf::decode_object_and_zeros(
        body, &t.group, version, &t.kind,
    )
    .map_err(|e| match e {
        crate::protobuf::DecodeError::UnknownKind(kind) => unsupported(&kind),
        crate::protobuf::DecodeError::Malformed(why) => ApiError::bad_request(format!(
            "error decoding the protobuf body of a {}: {why}",
            t.kind
        )),
    })?;
    crate::builtin::keep_set_zeros(t, &mut obj, zeros);
    Ok(obj)
}

fn delete_opts(q: &Query, req: &Request<Bytes>) -> ApiResult<DeleteOpts> {
    let body = req.body();
    let b: Value = if body.is_empty() {
        json!({})
    } else if header_str(req, header::CONTENT_TYPE).starts_with(PROTOBUF) {
        crate::protobuf::decode_delete_options(body).ok_or_else(|| {
            ApiError::bad_request(
                "error decoding DeleteOptions: the protobuf body is not a k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions in a runtime.Unknown envelope",
            )
        })?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    let policy = q
        .get("propagationPolicy")
        .map(str::to_string)
        .or_else(|| b["propagationPolicy"].as_str().map(str::to_string));
    let mut propagation = match policy.as_deref() {
        None | Some("") => None,
        Some("Background") => Some(Propagation::Background),
        Some("Foreground") => Some(Propagation::Foreground),
        Some("Orphan") => Some(Propagation::Orphan),
        Some(other) => {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!(
                    "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                ),
            ));
        }
    };
    let orphan = q
        .bool("orphanDependents")
        .or(b["orphanDependents"].as_bool());
    if propagation.is_none() && orphan.is_some() {
        propagation = Some(if orphan == Some(true) {
            Propagation::Orphan
        } else {
            Propagation::Background
        });
    }
    let dry_run = q.get("dryRun") == Some("All")
        || b["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    Ok(DeleteOpts {
        dry_run,
        propagation,
        precondition_uid: b["preconditions"]["uid"].as_str().map(str::to_string),
        precondition_rv: b["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
    })
}

/// `namespace/name` of an object: what a watch fault coalesces by.
fn object_key(object: &Value) -> String {
    format!(
        "{}/{}",
        object["metadata"]["namespace"].as_str().unwrap_or(""),
        meta::name(object)
    )
}

fn watch_line(ty: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": ty, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn start_watch(
    shared: &Arc<Shared>,
    t: &Arc<ResourceType>,
    version: &str,
    q: &Query,
    namespace: Option<&str>,
    shape: Shape,
    client: &str,
) -> ApiResult<Response<ResponseBody>> {
    let lq = list_query(q, t, namespace)?;
    let rv_param = q.get("resourceVersion").filter(|v| !v.is_empty());
    let send_initial = q.flag("sendInitialEvents");
    let bookmarks = q.flag("allowWatchBookmarks");
    let since = match rv_param {
        None | Some("0") => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v:?}")))?,
        ),
    };
    let since = if send_initial { None } else { since };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let (tx, rx_body) = mpsc::channel::<Bytes>(256);
    let start = shared.lock().watch(t, &lq, since);
    let start = match start {
        Ok(s) => s,
        Err(e) if e.code == 410 => {
            // The apiserver opens the stream and reports expiry as an ERROR event.
            let line = watch_line("ERROR", &e.to_status());
            return Ok(stream_response(futures::stream::once(async move { line })));
        }
        Err(e) => return Err(e),
    };
    // Events may be delayed, coalesced or reordered on their way (faults).
    let tx = shared.faults.watch_sink(client, tx);
    let mut closer = shared.faults.watch_closer();
    closer.mark_unchanged();
    let mut shutdown = shared.shutdown.subscribe();
    // After shutdown a watch opens and ends at once (`changed` would wait for a new change).
    let already_shut_down = *shutdown.borrow_and_update();
    let interval = shared.settings.bookmark_interval;
    let t = t.clone();
    let version = version.to_string();
    let watched = t.storage_key();
    let crd_name = (!t.builtin).then(|| format!("{}.{}", t.plural, t.group));
    let events = shape.of_watch_events();
    let initial_end = send_initial && bookmarks;
    tokio::spawn(async move {
        // Every event's object, bookmarks included, in the version asked and then the shape.
        let event = |ty: &str, served: Value| {
            // `of_watch_events` leaves no shape that refuses an object.
            let object = events
                .object(&t, &version, served)
                .unwrap_or_else(|e| e.to_status());
            watch_line(ty, &object)
        };
        let render = |ty: EventType, obj: &Value| event(ty.as_str(), present(obj, &t, &version));
        let mut last_rv = start.rv;
        let bookmark = |rv: u64, initial_end: bool| {
            let mut b = json!({
                "kind": t.kind,
                "apiVersion": t.api_version(&version),
                "metadata": {"resourceVersion": rv.to_string()},
            });
            if initial_end {
                b["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            event("BOOKMARK", b)
        };
        if already_shut_down {
            return;
        }
        for (ty, obj) in &start.initial {
            if tx
                .send(Some(object_key(obj)), render(*ty, obj))
                .await
                .is_err()
            {
                return;
            }
        }
        if initial_end && tx.send(None, bookmark(last_rv, true)).await.is_err() {
            return;
        }
        let mut rx = start.rx;
        let deadline = timeout.map(|d| tokio::time::Instant::now() + d);
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            let sleep_until = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => futures::future::pending::<()>().await,
                }
            };
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        last_rv = ev.rv;
                        if ev.resource != watched {
                            // Watches on custom resources end when their CRD is deleted.
                            let crd_gone = ev.kind == EventType::Deleted
                                && ev.resource.group == "apiextensions.k8s.io"
                                && crd_name.as_deref() == Some(meta::name(&ev.object));
                            if crd_gone {
                                return;
                            }
                            continue;
                        }
                        if let Some(ty) = filter_event(&ev, &lq)
                            && tx.send(Some(object_key(&ev.object)), render(ty, &ev.object)).await.is_err()
                        {
                            return;
                        }
                    }
                    // A watcher too slow for the history buffer is closed; it re-watches.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick(), if bookmarks => {
                    if tx.send(None, bookmark(last_rv, false)).await.is_err() {
                        return;
                    }
                }
                _ = sleep_until => return,
                _ = closer.changed() => return,
                _ = shutdown.changed() => return,
                () = tx.closed() => return,
            }
        }
    });
    let stream =
        futures::stream::unfold(
            rx_body,
            |mut rx| async move { rx.recv().await.map(|b| (b, rx)) },
        );
    Ok(stream_response(stream))
}

fn stream_response(
    stream: impl futures::Stream<Item = Bytes> + Send + 'static,
) -> Response<ResponseBody> {
    use futures::StreamExt as _;
    let body = StreamBody::new(stream.map(|b| Ok::<_, Infallible>(Frame::data(b))));
    let mut r = Response::new(BodyExt::boxed_unsync(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    r
}
