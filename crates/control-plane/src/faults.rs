//! Fault injection: fail or delay chosen requests, and drop open watch streams, on a test's
//! command.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::error::ApiError;

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
}

/// What a fault does to the requests it hits.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// Answer with this HTTP status (a `Status` object with the matching reason).
    Fail { code: u16, retry_after: Option<u32> },
    /// Handle the request normally after this delay.
    Delay(Duration),
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
    resource: Option<String>,
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

    /// A fault for every request.
    pub fn any() -> Self {
        Fault {
            verb: None,
            resource: None,
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

    fn matches(&self, req: &RequestInfo<'_>) -> bool {
        self.verb.is_none_or(|v| v == req.verb)
            && self.resource.as_deref().is_none_or(|r| r == req.resource)
            && self.namespace.as_deref().is_none_or(|n| n == req.namespace)
            && self.name.as_deref().is_none_or(|n| n == req.name)
    }
}

/// The request a fault is checked against.
pub(crate) struct RequestInfo<'a> {
    pub verb: Verb,
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
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            rules: Arc::default(),
            close_watches: Arc::new(watch::channel(0).0),
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

    /// Removes every rule.
    pub fn clear(&self) {
        let mut g = self
            .rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.1.clear();
    }

    /// Ends every open watch stream (clients see the stream close and re-watch).
    pub fn close_watches(&self) {
        self.close_watches.send_modify(|n| *n += 1);
    }

    pub(crate) fn watch_closer(&self) -> watch::Receiver<u64> {
        self.close_watches.subscribe()
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
