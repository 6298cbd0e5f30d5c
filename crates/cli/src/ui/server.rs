//! The web view's HTTP server: the pages, their JSON, and server-sent event streams that push
//! a fresh view on every change the kube watches see (the pages never poll).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Request, State as Extract};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{FutureExt as _, Stream, StreamExt as _};
use k8s_openapi::api::core::v1::Event;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client};
use upstart_api::v1alpha1::{UpstartEnvironment, UpstartService};

use super::assets;
use super::model;
use crate::cluster::Live;
use crate::error::Error;

/// What every handler shares.
#[derive(Clone)]
pub struct State {
    client: Client,
    catalog_namespace: Arc<str>,
    /// Host headers accepted on loopback: its addresses and `localhost` (none: any, when the
    /// user chose to listen on another address, reachable by other names anyway).
    hosts: Option<Arc<[String]>>,
}

impl State {
    /// The state of a server listening on `local`.
    pub fn new(client: Client, catalog_namespace: &str, local: SocketAddr) -> Self {
        let port = local.port();
        let hosts = local.ip().is_loopback().then(|| {
            vec![
                local.to_string(),
                format!("localhost:{port}"),
                format!("127.0.0.1:{port}"),
                format!("[::1]:{port}"),
            ]
            .into()
        });
        State {
            client,
            catalog_namespace: catalog_namespace.into(),
            hosts,
        }
    }
}

/// A burst of watch events (a reconcile writes status, then an Event) becomes one refresh.
const SETTLE: Duration = Duration::from_millis(30);

/// The routes.
pub fn router(state: State) -> axum::Router {
    axum::Router::new()
        .route("/", get(|| async { page(assets::LIST_HTML) }))
        .route(
            "/environments/{name}",
            get(|| async { page(assets::ENVIRONMENT_HTML) }),
        )
        .route("/catalog", get(|| async { page(assets::CATALOG_HTML) }))
        .route("/assets/{file}", get(asset))
        .route("/api/environments", get(list_json))
        .route("/api/environments/{name}", get(environment_json))
        .route("/api/catalog", get(catalog_json))
        .route("/api/stream/environments", get(list_stream))
        .route("/api/stream/environments/{name}", get(environment_stream))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            only_our_host,
        ))
        .with_state(state)
}

/// Refuses requests for another host name (DNS rebinding: a web page that makes its own name
/// resolve to 127.0.0.1 would otherwise read the cluster with the user's credentials).
async fn only_our_host(Extract(state): Extract<State>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if let Some(hosts) = &state.hosts
        && !hosts.iter().any(|h| h == host)
    {
        return (StatusCode::MISDIRECTED_REQUEST, "unknown host").into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn page(html: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    match assets::asset(&file) {
        Some((content_type, body)) => {
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// A failure as JSON: `{"error": "..."}` with 404 for what does not exist.
fn failure(error: &Error) -> Response {
    let status = match error {
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_GATEWAY,
    };
    let text = crate::error_text::user_text(error);
    (status, Json(serde_json::json!({ "error": text }))).into_response()
}

async fn list(client: &Client) -> Result<Vec<model::EnvironmentRow>, Error> {
    let environments = crate::cluster::list_environments(client).await?;
    let mut rows: Vec<_> = environments.iter().map(model::environment_row).collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}

async fn environment(
    client: &Client,
    name: &str,
    catalog: &str,
) -> Result<model::EnvironmentView, Error> {
    let live = Live::read_environment_with_catalog(client, name, catalog).await?;
    // Events are a courtesy: a user who may not list them still gets the graph.
    let events = Api::<Event>::namespaced(client.clone(), &live.namespace)
        .list(&ListParams::default())
        .await
        .map(|list| list.items)
        .unwrap_or_default();
    Ok(model::environment_view(
        &live,
        &events,
        jiff::Timestamp::now(),
    ))
}

async fn list_json(Extract(state): Extract<State>) -> Response {
    match list(&state.client).await {
        Ok(rows) => Json(rows).into_response(),
        Err(error) => failure(&error),
    }
}

async fn environment_json(Extract(state): Extract<State>, Path(name): Path<String>) -> Response {
    match environment(&state.client, &name, &state.catalog_namespace).await {
        Ok(view) => Json(view).into_response(),
        Err(error) => failure(&error),
    }
}

async fn catalog_json(Extract(state): Extract<State>) -> Response {
    let templates =
        Api::<UpstartService>::namespaced(state.client.clone(), &state.catalog_namespace)
            .list(&ListParams::default())
            .await;
    let environments = Api::<UpstartEnvironment>::all(state.client.clone())
        .list(&ListParams::default())
        .await;
    match (templates, environments) {
        (Ok(templates), Ok(environments)) => {
            Json(model::catalog(&templates.items, &environments.items)).into_response()
        }
        (Err(source), _) => failure(&Error::Kube {
            what: format!("listing UpstartServices in {}", state.catalog_namespace),
            source,
        }),
        (_, Err(source)) => failure(&Error::Kube {
            what: "listing UpstartEnvironments".to_owned(),
            source,
        }),
    }
}

type Changes = futures::stream::BoxStream<'static, ()>;

/// Sends `read()` as a `view` event now and after every change, when it differs from what was
/// sent last; a failed read is sent as an `problem` event and retried at the next change.
fn stream<F, Fut, T>(
    changes: Changes,
    read: F,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, Error>> + Send,
    T: serde::Serialize,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<SseEvent>(4);
    tokio::spawn(async move {
        let mut changes = changes;
        let mut last = String::new();
        loop {
            let event = match read().await {
                Ok(view) => match serde_json::to_string(&view) {
                    Ok(json) if json == last => None,
                    Ok(json) => {
                        last.clone_from(&json);
                        Some(SseEvent::default().event("view").data(json))
                    }
                    Err(error) => {
                        Some(SseEvent::default().event("problem").data(error.to_string()))
                    }
                },
                Err(error) => Some(
                    SseEvent::default()
                        .event("problem")
                        .data(crate::error_text::user_text(&error)),
                ),
            };
            if let Some(event) = event
                && tx.send(event).await.is_err()
            {
                // The page went away.
                return;
            }
            tokio::select! {
                change = changes.next() => if change.is_none() { return },
                () = tx.closed() => return,
            }
            tokio::time::sleep(SETTLE).await;
            // Whatever else arrived meanwhile is covered by the read that follows.
            while let Some(Some(())) = changes.next().now_or_never() {}
        }
    });
    let events = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

async fn list_stream(
    Extract(state): Extract<State>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let changes = watcher(
        Api::<UpstartEnvironment>::all(state.client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .map(|_| ())
    .boxed();
    let client = state.client.clone();
    stream(changes, move || {
        let client = client.clone();
        async move { list(&client).await }
    })
}

async fn environment_stream(
    Extract(state): Extract<State>,
    Path(name): Path<String>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    // The namespace as the environment says now (its name until it reports one).
    let namespace = Api::<UpstartEnvironment>::all(state.client.clone())
        .get_opt(&name)
        .await
        .ok()
        .flatten()
        .map_or_else(
            || name.clone(),
            |e| crate::cluster::environment_namespace(&e),
        );
    let events = watcher(
        Api::<Event>::namespaced(state.client.clone(), &namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    // A user who may not watch Events still gets the graph, without a refresh per retry.
    .filter_map(|event| async move { event.ok().map(|_| ()) })
    .boxed();
    let changes = futures::stream::select(
        crate::status::change_stream(&state.client, Some(&name), &namespace),
        events,
    )
    .boxed();
    let client = state.client.clone();
    let catalog = state.catalog_namespace.clone();
    stream(changes, move || {
        let client = client.clone();
        let name = name.clone();
        let catalog = catalog.clone();
        async move { environment(&client, &name, &catalog).await }
    })
}
