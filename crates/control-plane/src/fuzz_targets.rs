//! The fuzzing entry point of request decoding (fuzz/fuzz_targets/api_request.rs), also replayed
//! over the committed corpus by e2e/tests/fuzz_corpus.rs: any sequence of requests (paths, query
//! parameters and selectors, JSON/YAML/protobuf bodies, patches of every kind) is answered, with
//! a client error rather than a server error, in a bounded time, by a fresh control plane.
//!
//! An input is one or more requests separated by a line `%%`; each is a request line
//! (`METHOD /path?query`), header lines (`Name: value`), an empty line and the body (raw bytes,
//! so protobuf fits). Watches are skipped: they are open-ended by design.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::BodyExt;

use crate::api::{Shared, handle};
use crate::{ControlPlane, Options, WayIn};

/// How long one request may take before it counts as a hang.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// Most requests of one input (more add nothing a fuzzer needs).
const MAX_REQUESTS: usize = 16;

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
}

/// Runs the requests of `data` in order against a fresh control plane.
pub fn api_request(data: &[u8]) {
    let requests: Vec<Request<Bytes>> = split(data)
        .take(MAX_REQUESTS)
        .filter_map(parse_request)
        .collect();
    if requests.is_empty() {
        return;
    }
    RUNTIME.with(|runtime| {
        runtime.block_on(async {
            let cp = ControlPlane::start(Options::default());
            for request in requests {
                answer(cp.shared.clone(), request).await;
            }
            cp.shutdown();
        })
    });
}

async fn answer(shared: Arc<Shared>, request: Request<Bytes>) {
    let what = format!("{} {}", request.method(), request.uri());
    let response =
        tokio::time::timeout(REQUEST_DEADLINE, handle(shared, WayIn::InProcess, request))
            .await
            .unwrap_or_else(|_| panic!("{what} got no answer within {REQUEST_DEADLINE:?}"));
    let status = response.status();
    let body = tokio::time::timeout(REQUEST_DEADLINE, response.into_body().collect())
        .await
        .unwrap_or_else(|_| panic!("the body of {what} did not end within {REQUEST_DEADLINE:?}"))
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    assert!(
        !status.is_server_error() || EXPECTED_SERVER_ERRORS.iter().any(|e| text.contains(e)),
        "{what} was answered {status}: {text}"
    );
}

/// The server errors the apiserver itself gives on client input (and this one copies).
const EXPECTED_SERVER_ERRORS: [&str; 1] = [
    // etcd storage's answer to a create carrying a resourceVersion.
    "resourceVersion should not be set on objects to be created",
];

fn split(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let current = rest?;
        match find(current, b"\n%%\n") {
            Some(at) => {
                rest = Some(&current[at + 4..]);
                Some(&current[..at])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_request(raw: &[u8]) -> Option<Request<Bytes>> {
    let (head, body) = match find(raw, b"\n\n") {
        Some(at) => (&raw[..at], &raw[at + 2..]),
        None => (raw, &[][..]),
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.lines();
    let (method, target) = lines.next()?.trim().split_once(' ')?;
    let method = Method::from_bytes(method.as_bytes()).ok()?;
    let target = target.trim();
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let watched = form_urlencoded::parse(query.as_bytes())
        .any(|(k, v)| k == "watch" && !(v == "0" || v.eq_ignore_ascii_case("false")));
    if watched {
        return None;
    }
    let mut builder = Request::builder().method(method).uri(target);
    for line in lines {
        let (name, value) = line.split_once(':')?;
        builder = builder.header(name.trim(), value.trim());
    }
    builder.body(Bytes::copy_from_slice(body)).ok()
}
