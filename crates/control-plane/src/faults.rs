//! Fault injection: fail, delay or pause chosen requests, drop open watch streams, and keep an
//! ordered log of the requests served, on a test's command; what a crash-at-every-write harness
//! needs to stop an operator exactly at its nth write and to tell afterwards what each operator
//! instance did.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use tokio::sync::{mpsc, watch};

use crate::error::ApiError;
use crate::store::ListResult;

/// The verb of a request, as the apiserver names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }

    /// Whether the verb changes stored state (create, update, patch, delete, deletecollection).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Verb::Create | Verb::Update | Verb::Patch | Verb::Delete | Verb::DeleteCollection
        )
    }
}

/// Where a [`FaultAction::Pause`] holds a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PausePoint {
    /// Before the request is handled: nothing of it is stored until the gate opens (a client
    /// that gives up meanwhile, or is killed, leaves no trace of it).
    BeforeCommit,
    /// After the request was handled and its outcome stored and logged, before the answer goes
    /// back: a client killed meanwhile never learns that its write was done.
    AfterCommit,
}

/// A gate a test controls: paused requests wait at it until it opens. Cheap to clone; clones
/// are the same gate.
#[derive(Clone)]
pub struct Gate {
    open: Arc<watch::Sender<bool>>,
    reached: Arc<watch::Sender<u32>>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new()
    }
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Gate {
            open: Arc::new(watch::channel(false).0),
            reached: Arc::new(watch::channel(0).0),
        }
    }

    /// Lets the requests held at the gate go on, and every later one through.
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    pub fn is_open(&self) -> bool {
        *self.open.borrow()
    }

    /// How many requests have reached the gate so far (held or let through).
    pub fn reached(&self) -> u32 {
        *self.reached.borrow()
    }

    /// Waits until some request has reached the gate (at once if one already has).
    pub async fn wait_reached(&self) {
        let mut reached = self.reached.subscribe();
        // The sender lives as long as `self`: the wait cannot fail.
        let _ = reached.wait_for(|n| *n > 0).await;
    }

    /// Holds the calling request until the gate is open.
    pub(crate) async fn hold(&self) {
        self.reached.send_modify(|n| *n = n.saturating_add(1));
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|open| *open).await;
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("open", &self.is_open())
            .field("reached", &self.reached())
            .finish()
    }
}

/// Gates are equal when they are the same gate.
impl PartialEq for Gate {
    fn eq(&self, other: &Gate) -> bool {
        Arc::ptr_eq(&self.open, &other.open)
    }
}

/// Who sent a request: the tag of [`crate::ControlPlane::client_tagged`], else the name of the
/// ServiceAccount it authenticated as on the HTTPS endpoint (each operator binary of a test can
/// run as an account of its own), else the product of its `User-Agent` (`kubectl`, `helm`, an
/// operator binary), else empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientTag(pub String);

/// The client tag of a request (see [`ClientTag`]).
pub(crate) fn client_tag(req: &Request<Bytes>) -> String {
    if let Some(ClientTag(tag)) = req.extensions().get::<ClientTag>() {
        return tag.clone();
    }
    if let Some(user) = req.extensions().get::<crate::auth::UserInfo>()
        && let Some(account) = user.username.strip_prefix("system:serviceaccount:")
        && let Some((_, name)) = account.split_once(':')
    {
        return name.to_string();
    }
    req.headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split(['/', ' ']).next())
        .unwrap_or("")
        .to_string()
}

/// What a fault does to the requests it hits.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// Answer with this HTTP status (a `Status` object with the matching reason).
    Fail { code: u16, retry_after: Option<u32> },
    /// Handle the request normally after this delay.
    Delay(Duration),
    /// Hold the request at `gate`, before or after it is handled, until the gate opens.
    Pause { gate: Gate, point: PausePoint },
}

/// A rule: which requests it matches, which of them it hits, and what it does.
///
/// ```
/// use upstart_control_plane::{Fault, Verb};
/// // The second update of ConfigMap "app" in namespace "default" fails with 409.
/// let fault = Fault::on(Verb::Update).resource("configmaps").namespace("default").name("app").nth(2).fail(409);
/// # let _ = fault;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    verb: Option<Verb>,
    /// Only writes ([`Verb::is_write`]).
    writes: bool,
    /// Only requests from this client ([`Fault::client`]); a trailing `*` matches a prefix.
    client: Option<String>,
    resource: Option<String>,
    /// Never requests for these resources ([`Fault::not_resource`]).
    not_resources: Vec<String>,
    namespace: Option<String>,
    name: Option<String>,
    /// 1-based index of the first matching request hit.
    nth: u32,
    /// How many consecutive matching requests are hit from the nth on (`u32::MAX`: all).
    times: u32,
    action: FaultAction,
}

impl Fault {
    /// A fault for every request with this verb (narrow it with the builder methods).
    pub fn on(verb: Verb) -> Self {
        Fault {
            verb: Some(verb),
            ..Fault::any()
        }
    }

    /// A fault for every write: create, update, patch, delete and deletecollection (narrow it
    /// with the builder methods).
    ///
    /// ```
    /// use upstart_control_plane::{Fault, Gate, PausePoint};
    /// // The 7th write of any client whose tag starts with "operator" is held once it is stored,
    /// // until the test opens the gate.
    /// let gate = Gate::new();
    /// let fault = Fault::writes().client("operator*").nth(7).pause(gate.clone(), PausePoint::AfterCommit);
    /// # let _ = fault;
    /// ```
    pub fn writes() -> Self {
        Fault {
            writes: true,
            ..Fault::any()
        }
    }

    /// A fault for every request.
    pub fn any() -> Self {
        Fault {
            verb: None,
            writes: false,
            client: None,
            resource: None,
            not_resources: Vec::new(),
            namespace: None,
            name: None,
            nth: 1,
            times: 1,
            action: FaultAction::Fail {
                code: 500,
                retry_after: None,
            },
        }
    }

    /// Only requests for this resource (plural name, e.g. `configmaps`).
    pub fn resource(mut self, plural: &str) -> Self {
        self.resource = Some(plural.to_string());
        self
    }

    /// Never requests for this resource (plural name): `Fault::writes().not_resource("leases")`
    /// counts an operator's writes without its leader election's Lease renewals.
    pub fn not_resource(mut self, plural: &str) -> Self {
        self.not_resources.push(plural.to_string());
        self
    }

    /// Only requests from this client tag ([`crate::ControlPlane::client_tagged`], else the
    /// `User-Agent` product); `operator*` matches every tag starting with `operator`.
    pub fn client(mut self, tag: &str) -> Self {
        self.client = Some(tag.to_string());
        self
    }

    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.to_string());
        self
    }

    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// Hit the nth matching request (1-based; default 1).
    pub fn nth(mut self, n: u32) -> Self {
        self.nth = n.max(1);
        self
    }

    /// Hit this many matching requests, from the nth on (default 1).
    pub fn times(mut self, n: u32) -> Self {
        self.times = n;
        self
    }

    /// Hit every matching request from the nth on.
    pub fn always(mut self) -> Self {
        self.times = u32::MAX;
        self
    }

    /// Answer with this status code (409 Conflict, 500 InternalError, 503, ...).
    pub fn fail(mut self, code: u16) -> Self {
        self.action = FaultAction::Fail {
            code,
            retry_after: None,
        };
        self
    }

    /// Answer 429 TooManyRequests with a `Retry-After` header.
    pub fn too_many_requests(mut self, retry_after: Duration) -> Self {
        let secs = u32::try_from(retry_after.as_secs())
            .unwrap_or(u32::MAX)
            .max(1);
        self.action = FaultAction::Fail {
            code: 429,
            retry_after: Some(secs),
        };
        self
    }

    /// Delay matching requests instead of failing them.
    pub fn delay(mut self, d: Duration) -> Self {
        self.action = FaultAction::Delay(d);
        self
    }

    /// Hold matching requests at `gate`, before or after they are handled, until it opens.
    pub fn pause(mut self, gate: Gate, point: PausePoint) -> Self {
        self.action = FaultAction::Pause { gate, point };
        self
    }

    fn matches(&self, req: &RequestInfo<'_>) -> bool {
        self.verb.is_none_or(|v| v == req.verb)
            && (!self.writes || req.verb.is_write())
            && self
                .client
                .as_deref()
                .is_none_or(|c| tag_matches(c, req.client))
            && self.resource.as_deref().is_none_or(|r| r == req.resource)
            && !self.not_resources.iter().any(|r| r == req.resource)
            && self.namespace.as_deref().is_none_or(|n| n == req.namespace)
            && self.name.as_deref().is_none_or(|n| n == req.name)
    }
}

/// The request a fault is checked against.
pub(crate) struct RequestInfo<'a> {
    pub verb: Verb,
    pub client: &'a str,
    pub resource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

struct Rule {
    id: u64,
    fault: Fault,
    seen: u32,
    hits: u32,
}

/// Identifies an injected fault, to remove it or ask how often it fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultId(u64);

/// The fault injector of a control plane (cheap to clone; clones share the rules).
#[derive(Clone)]
pub struct Faults {
    rules: Arc<Mutex<(u64, Vec<Rule>)>>,
    close_watches: Arc<watch::Sender<u64>>,
    log: Arc<RequestLog>,
    watches: Arc<Mutex<Vec<WatchFault>>>,
    lagging: Arc<Mutex<LaggingLists>>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            rules: Arc::default(),
            close_watches: Arc::new(watch::channel(0).0),
            log: Arc::default(),
            watches: Arc::default(),
            lagging: Arc::default(),
        }
    }
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults").finish_non_exhaustive()
    }
}

/// What to do with one request.
#[derive(Default)]
pub(crate) struct Decision {
    pub delay: Option<Duration>,
    pub fail: Option<ApiError>,
    pub pause_before: Vec<Gate>,
    pub pause_after: Vec<Gate>,
}

impl Faults {
    /// Adds a rule; it applies to requests from now on.
    pub fn inject(&self, fault: Fault) -> FaultId {
        let mut g = self
            .rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.0 += 1;
        let id = g.0;
        g.1.push(Rule {
            id,
            fault,
            seen: 0,
            hits: 0,
        });
        FaultId(id)
    }

    /// How many requests the fault has hit so far.
    pub fn hits(&self, id: FaultId) -> u32 {
        let g = self
            .rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.1.iter().find(|r| r.id == id.0).map_or(0, |r| r.hits)
    }

    pub fn remove(&self, id: FaultId) {
        let mut g = self
            .rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.1.retain(|r| r.id != id.0);
    }

    /// Removes every rule, watch fault and lagging cache.
    pub fn clear(&self) {
        let mut g = self
            .rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.1.clear();
        lock(&self.watches).clear();
        *lock(&self.lagging) = LaggingLists::default();
    }

    /// Shapes the events of the watches opened from now on by the clients `fault` names
    /// (delayed, coalesced, reordered across objects; see [`WatchFault`]).
    pub fn shape_watches(&self, fault: WatchFault) {
        lock(&self.watches).push(fault);
    }

    /// Answers the lists that may be served from a cache (`resourceVersion=0`, as informers
    /// start with) of the clients `client` names (a trailing `*` matches a prefix) from a
    /// snapshot up to `lag` old: a past state with its own resourceVersion, from which the
    /// watch that follows replays what changed since (the apiserver's watch cache does the
    /// same when it lags). A quorum read (no resourceVersion) is always fresh.
    pub fn lagging_lists(&self, client: &str, lag: Duration) {
        let mut lagging = lock(&self.lagging);
        lagging.clients.push((client.to_string(), lag));
    }

    /// A cached list for `key` when `client`'s lists lag and one is young enough, else
    /// `fresh()` (cached for the next ones when it is whole, not a page).
    pub(crate) fn lagging_list(
        &self,
        client: &str,
        resource_version: Option<&str>,
        key: &str,
        fresh: impl FnOnce() -> Result<ListResult, ApiError>,
    ) -> Result<ListResult, ApiError> {
        let lag = lock(&self.lagging)
            .clients
            .iter()
            .find(|(pattern, _)| tag_matches(pattern, client))
            .map(|(_, lag)| *lag);
        let Some(lag) = lag.filter(|_| resource_version == Some("0")) else {
            return fresh();
        };
        let key = format!("{client} {key}");
        if let Some((at, cached)) = lock(&self.lagging).cache.get(&key)
            && at.elapsed() < lag
        {
            return Ok(cached.clone());
        }
        let result = fresh()?;
        if result.continue_token.is_none() {
            lock(&self.lagging)
                .cache
                .insert(key, (std::time::Instant::now(), result.clone()));
        }
        Ok(result)
    }

    /// Where a watch of `client` sends its lines: straight to `tx`, or through a shaper task
    /// when a [`WatchFault`] names the client.
    pub(crate) fn watch_sink(&self, client: &str, tx: mpsc::Sender<Bytes>) -> WatchSink {
        let fault = lock(&self.watches)
            .iter()
            .find(|f| f.client.as_deref().is_none_or(|c| tag_matches(c, client)))
            .cloned();
        match fault {
            None => WatchSink::Direct(tx),
            Some(fault) => {
                let (shaped, rx) = mpsc::unbounded_channel();
                let closed = tx.clone();
                tokio::spawn(shape(fault, rx, tx));
                WatchSink::Shaped { shaped, closed }
            }
        }
    }

    /// Ends every open watch stream (clients see the stream close and re-watch).
    pub fn close_watches(&self) {
        self.close_watches.send_modify(|n| *n += 1);
    }

    pub(crate) fn watch_closer(&self) -> watch::Receiver<u64> {
        self.close_watches.subscribe()
    }

    /// Starts logging every request served from now on, in order (see [`LoggedRequest`]); off
    /// until then, so that a long-running control plane (`upstart dev`) keeps nothing. The log
    /// keeps the latest [`REQUEST_LOG_CAPACITY`] requests.
    pub fn start_request_log(&self) {
        self.log.enabled.store(true, Ordering::Relaxed);
    }

    /// The requests logged so far, oldest first.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.log.lock().entries.iter().cloned().collect()
    }

    /// The requests logged after the one numbered `seq` ([`LoggedRequest::seq`]), oldest first.
    pub fn request_log_since(&self, seq: u64) -> Vec<LoggedRequest> {
        self.log
            .lock()
            .entries
            .iter()
            .filter(|r| r.seq > seq)
            .cloned()
            .collect()
    }

    pub(crate) fn logging(&self) -> bool {
        self.log.enabled.load(Ordering::Relaxed)
    }

    /// Appends a handled request to the log (numbered here, so that numbers follow the order in
    /// which outcomes were stored).
    pub(crate) fn log_request(&self, mut entry: LoggedRequest) {
        let mut log = self.log.lock();
        log.next += 1;
        entry.seq = log.next;
        if log.entries.len() >= REQUEST_LOG_CAPACITY {
            log.entries.pop_front();
        }
        log.entries.push_back(entry);
    }

    pub(crate) fn decide(&self, req: &RequestInfo<'_>) -> Decision {
        let mut g = self
            .rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut d = Decision::default();
        for rule in g.1.iter_mut() {
            if !rule.fault.matches(req) {
                continue;
            }
            rule.seen += 1;
            let from = rule.fault.nth;
            let hit =
                rule.seen >= from && u64::from(rule.seen - from) < u64::from(rule.fault.times);
            if !hit {
                continue;
            }
            rule.hits += 1;
            match &rule.fault.action {
                FaultAction::Delay(t) => d.delay = Some(d.delay.unwrap_or_default() + *t),
                FaultAction::Pause { gate, point } => match point {
                    PausePoint::BeforeCommit => d.pause_before.push(gate.clone()),
                    PausePoint::AfterCommit => d.pause_after.push(gate.clone()),
                },
                FaultAction::Fail { code, retry_after } => {
                    if d.fail.is_none() {
                        d.fail = Some(injected_error(*code, *retry_after, req));
                    }
                }
            }
        }
        d
    }
}

/// How many requests the log keeps (the oldest go first); about 200 MB at most.
pub const REQUEST_LOG_CAPACITY: usize = 1_000_000;

/// One request served, as the request log keeps it. Bodies are not kept (they may hold
/// secrets); the query string is left out of `path` for the same reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// 1-based, in the order the outcomes were stored; a gap at the start means older entries
    /// were dropped ([`REQUEST_LOG_CAPACITY`]).
    pub seq: u64,
    pub method: String,
    pub path: String,
    /// `None` for requests without one (discovery, `/version`, unknown paths).
    pub verb: Option<Verb>,
    /// The resource's plural name (`configmaps`), empty for requests without one.
    pub resource: String,
    /// `status`, `scale`, `finalize`, or empty.
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// Who sent it (see [`crate::ControlPlane::client_tagged`]).
    pub client: String,
    /// The HTTP status answered (a watch: its start).
    pub status: u16,
    /// The control plane's latest resourceVersion once the request was handled: orders the
    /// request against watch events and stored objects.
    pub resource_version: u64,
}

#[derive(Default)]
struct RequestLog {
    enabled: AtomicBool,
    state: Mutex<LogState>,
}

#[derive(Default)]
struct LogState {
    next: u64,
    entries: VecDeque<LoggedRequest>,
}

impl RequestLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn injected_error(code: u16, retry_after: Option<u32>, req: &RequestInfo<'_>) -> ApiError {
    let (reason, message) = match code {
        409 => (
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                req.resource, req.name
            ),
        ),
        429 => (
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later"
                .to_string(),
        ),
        500 => (
            "InternalError",
            "Internal error occurred: injected fault".to_string(),
        ),
        503 => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request".to_string(),
        ),
        404 => (
            "NotFound",
            format!("{} \"{}\" not found", req.resource, req.name),
        ),
        403 => ("Forbidden", "forbidden: injected fault".to_string()),
        410 => (
            "Expired",
            "too old resource version: injected fault".to_string(),
        ),
        _ => (
            "InternalError",
            format!("injected fault with status {code}"),
        ),
    };
    let mut e = ApiError::new(code, reason, message)
        .with_details(serde_json::json!({"name": req.name, "kind": req.resource}));
    if let Some(secs) = retry_after {
        e.retry_after = Some(secs);
        e.details = Some(
            serde_json::json!({"name": req.name, "kind": req.resource, "retryAfterSeconds": secs}),
        );
    }
    e
}

/// Whether the client tag `client` matches `pattern` (a trailing `*` matches a prefix).
fn tag_matches(pattern: &str, client: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => client.starts_with(prefix),
        None => pattern == client,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The lagging list caches ([`Faults::lagging_lists`]).
#[derive(Default)]
struct LaggingLists {
    clients: Vec<(String, Duration)>,
    /// Per client and query: when it was taken, and the list.
    cache: std::collections::HashMap<String, (std::time::Instant, ListResult)>,
}

/// How the watch events sent to some clients are shaped, within the watch contract (each
/// object's events in order, every object's newest state delivered before a bookmark or the
/// end of the stream): what an API server under load, or a cache between it and its clients,
/// does.
///
/// ```
/// use std::time::Duration;
/// use upstart_control_plane::WatchFault;
/// // Operators' watch events leave 50 ms late, coalesced per object over 200 ms windows,
/// // each window's objects in reverse order.
/// let fault = WatchFault::clients("operator*")
///     .delay(Duration::from_millis(50))
///     .coalesce(Duration::from_millis(200))
///     .reorder();
/// # let _ = fault;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchFault {
    client: Option<String>,
    delay: Duration,
    window: Duration,
    reorder: bool,
}

impl WatchFault {
    /// Shapes the watches of every client.
    pub fn all() -> Self {
        WatchFault {
            client: None,
            delay: Duration::ZERO,
            window: Duration::ZERO,
            reorder: false,
        }
    }

    /// Shapes the watches of the clients whose tag matches (a trailing `*` matches a prefix).
    pub fn clients(tag: &str) -> Self {
        WatchFault {
            client: Some(tag.to_string()),
            ..WatchFault::all()
        }
    }

    /// Each event leaves this long after it happened.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Events are held for windows this long: of one object's events in a window only the
    /// newest is sent (the intermediate states are skipped, as a watch cache that fell behind
    /// and an informer's coalescing queue do).
    pub fn coalesce(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Each window's objects go out newest first (one event per object per window, so each
    /// object's order is kept).
    pub fn reorder(mut self) -> Self {
        self.reorder = true;
        self
    }
}

/// Where a watch's lines go ([`Faults::watch_sink`]).
pub(crate) enum WatchSink {
    Direct(mpsc::Sender<Bytes>),
    Shaped {
        /// (object key, line, when it happened); no key: a bookmark, which flushes first.
        shaped: mpsc::UnboundedSender<(Option<String>, Bytes, tokio::time::Instant)>,
        closed: mpsc::Sender<Bytes>,
    },
}

impl WatchSink {
    /// Sends one line: an object's event (`key`: its namespace/name) or, without a key, a
    /// bookmark. `Err` once the client is gone.
    pub(crate) async fn send(&self, key: Option<String>, line: Bytes) -> Result<(), ()> {
        match self {
            WatchSink::Direct(tx) => tx.send(line).await.map_err(drop),
            WatchSink::Shaped { shaped, .. } => shaped
                .send((key, line, tokio::time::Instant::now()))
                .map_err(drop),
        }
    }

    /// Resolves when the client is gone.
    pub(crate) async fn closed(&self) {
        match self {
            WatchSink::Direct(tx) => tx.closed().await,
            WatchSink::Shaped { closed, .. } => closed.closed().await,
        }
    }
}

/// The shaper of one watch: delays, coalesces per object within a window, reorders a window's
/// objects; a bookmark or the end of the stream flushes what is held first, so that no
/// resourceVersion the client resumes from skips an event it was not sent.
async fn shape(
    fault: WatchFault,
    mut rx: mpsc::UnboundedReceiver<(Option<String>, Bytes, tokio::time::Instant)>,
    tx: mpsc::Sender<Bytes>,
) {
    let mut held: Vec<(String, Bytes)> = Vec::new();
    let mut window_end: Option<tokio::time::Instant> = None;
    loop {
        let next = match window_end {
            Some(end) => tokio::select! {
                next = rx.recv() => next.map(Some),
                () = tokio::time::sleep_until(end) => Some(None),
            },
            None => rx.recv().await.map(Some),
        };
        match next {
            // The stream ended: what is held goes out, then the stream ends.
            None => {
                let _ = flush(&mut held, fault.reorder, &tx).await;
                return;
            }
            // The window closed.
            Some(None) => {
                window_end = None;
                if flush(&mut held, fault.reorder, &tx).await.is_err() {
                    return;
                }
            }
            Some(Some((key, line, at))) => {
                tokio::time::sleep_until(at + fault.delay).await;
                match key {
                    None => {
                        window_end = None;
                        if flush(&mut held, fault.reorder, &tx).await.is_err()
                            || tx.send(line).await.is_err()
                        {
                            return;
                        }
                    }
                    Some(key) => {
                        match held.iter_mut().find(|(k, _)| *k == key) {
                            Some(slot) => slot.1 = line,
                            None => held.push((key, line)),
                        }
                        if fault.window.is_zero() {
                            if flush(&mut held, fault.reorder, &tx).await.is_err() {
                                return;
                            }
                        } else if window_end.is_none() {
                            window_end = Some(tokio::time::Instant::now() + fault.window);
                        }
                    }
                }
            }
        }
    }
}

async fn flush(
    held: &mut Vec<(String, Bytes)>,
    reorder: bool,
    tx: &mpsc::Sender<Bytes>,
) -> Result<(), ()> {
    if reorder {
        held.reverse();
    }
    for (_, line) in held.drain(..) {
        tx.send(line).await.map_err(drop)?;
    }
    Ok(())
}
