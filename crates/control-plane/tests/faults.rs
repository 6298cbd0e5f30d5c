//! Fault injection through the public API: failing the nth matching request, 429 with
//! Retry-After, delays, and dropping watch streams.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchParams};
use serde_json::json;
use upstart_control_plane::{Fault, Verb};

use common::*;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

#[tokio::test]
async fn the_nth_matching_request_fails_with_the_chosen_status() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let id = cp.faults().inject(
        Fault::on(Verb::Create)
            .resource("configmaps")
            .nth(2)
            .fail(500),
    );
    cms.create(&PostParams::default(), &cm("a")).await.unwrap();
    let err = api_error(
        cms.create(&PostParams::default(), &cm("b"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 500);
    assert_eq!(err.reason, "InternalError");
    cms.create(&PostParams::default(), &cm("c")).await.unwrap();
    assert_eq!(cp.faults().hits(id), 1);
    assert!(
        cms.get_opt("b").await.unwrap().is_none(),
        "the failed request changed nothing"
    );
}

#[tokio::test]
async fn injected_conflicts_look_like_real_ones() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let c = cms.create(&PostParams::default(), &cm("a")).await.unwrap();
    cp.faults()
        .inject(Fault::on(Verb::Update).name("a").fail(409));
    let err = api_error(
        cms.replace("a", &PostParams::default(), &c)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
}

#[tokio::test]
async fn too_many_requests_carries_retry_after() {
    let cp = control_plane();
    cp.faults()
        .inject(Fault::on(Verb::List).too_many_requests(Duration::from_secs(3)));
    let req = http::Request::get("/api/v1/namespaces/default/configmaps")
        .body(Vec::new())
        .unwrap();
    let resp = cp
        .client()
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers().get("retry-after").unwrap(), "3");
}

#[tokio::test]
async fn delays_hold_matching_requests_back() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    cp.faults().inject(
        Fault::on(Verb::List)
            .delay(Duration::from_millis(300))
            .always(),
    );
    let started = Instant::now();
    cms.list(&ListParams::default()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn closing_watches_ends_open_streams() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let mut s = cms
        .watch(&WatchParams::default().disable_bookmarks(), "0")
        .await
        .unwrap()
        .boxed();
    cp.faults().close_watches();
    let end = tokio::time::timeout(Duration::from_secs(5), s.try_next())
        .await
        .expect("closed promptly");
    assert!(end.unwrap().is_none());
}

#[tokio::test]
async fn cleared_faults_stop_applying() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    cp.faults().inject(Fault::any().fail(503).always());
    assert!(cms.list(&ListParams::default()).await.is_err());
    cp.faults().clear();
    cms.list(&ListParams::default()).await.unwrap();
}

#[tokio::test]
async fn shutdown_ends_open_watches_and_later_ones() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let mut open = cms
        .watch(&WatchParams::default().disable_bookmarks(), "0")
        .await
        .unwrap()
        .boxed();
    cp.shutdown();
    let end = tokio::time::timeout(Duration::from_secs(5), open.try_next())
        .await
        .expect("ended");
    assert!(end.unwrap().is_none());
    let mut later = cms
        .watch(&WatchParams::default().disable_bookmarks(), "0")
        .await
        .unwrap()
        .boxed();
    let end = tokio::time::timeout(Duration::from_secs(5), later.try_next())
        .await
        .expect("ended");
    assert!(end.unwrap().is_none());
    // Requests other than watches still work in process.
    cms.list(&ListParams::default()).await.unwrap();
}
