//! Fault injection through the public API: failing the nth matching request, 429 with
//! Retry-After, delays, dropping watch streams, pausing the nth write of a client at a gate
//! before or after it is stored, and the ordered request log by client.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchParams};
use serde_json::json;
use upstart_control_plane::{Fault, Gate, PausePoint, Verb};

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

/// The nth write of one client is held after it is stored: the object exists while the client
/// still waits for its answer; opening the gate answers it.
#[tokio::test]
async fn a_write_paused_after_commit_is_stored_before_it_is_answered() {
    let cp = control_plane();
    let operator: Api<ConfigMap> = Api::default_namespaced(cp.client_tagged("operator-1"));
    let observer: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let gate = Gate::new();
    cp.faults().inject(
        Fault::writes()
            .client("operator*")
            .nth(2)
            .pause(gate.clone(), PausePoint::AfterCommit),
    );
    // Reads and other clients' writes do not count.
    operator.list(&ListParams::default()).await.unwrap();
    observer
        .create(&PostParams::default(), &cm("other"))
        .await
        .unwrap();
    operator
        .create(&PostParams::default(), &cm("first"))
        .await
        .unwrap();
    assert_eq!(gate.reached(), 0);
    let held = tokio::spawn(async move {
        operator
            .create(&PostParams::default(), &cm("second"))
            .await
            .map(|c| c.metadata.name)
    });
    tokio::time::timeout(Duration::from_secs(5), gate.wait_reached())
        .await
        .expect("the second write reaches the gate");
    assert!(
        observer.get_opt("second").await.unwrap().is_some(),
        "stored before the answer"
    );
    assert!(!held.is_finished(), "the writer still waits for its answer");
    gate.open();
    let name = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("answered once the gate opens")
        .unwrap()
        .unwrap();
    assert_eq!(name.as_deref(), Some("second"));
}

/// Held before it is stored, a write leaves nothing behind when its client dies meanwhile, as
/// an operator killed at that write would.
#[tokio::test]
async fn a_write_paused_before_commit_is_lost_with_its_client() {
    let cp = control_plane();
    let operator: Api<ConfigMap> = Api::default_namespaced(cp.client_tagged("operator-1"));
    let observer: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let gate = Gate::new();
    cp.faults().inject(
        Fault::writes()
            .client("operator-1")
            .pause(gate.clone(), PausePoint::BeforeCommit),
    );
    let held = tokio::spawn(async move {
        operator
            .create(&PostParams::default(), &cm("never"))
            .await
            .map(drop)
    });
    tokio::time::timeout(Duration::from_secs(5), gate.wait_reached())
        .await
        .expect("the write reaches the gate");
    assert!(observer.get_opt("never").await.unwrap().is_none());
    held.abort();
    assert!(held.await.unwrap_err().is_cancelled());
    gate.open();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        observer.get_opt("never").await.unwrap().is_none(),
        "a write dropped before it was stored is never stored"
    );
}

/// A fault aimed at one client leaves the others alone: operator instances are told apart.
#[tokio::test]
async fn faults_aimed_at_a_client_hit_only_that_client() {
    let cp = control_plane();
    let first: Api<ConfigMap> = Api::default_namespaced(cp.client_tagged("operator-1"));
    let second: Api<ConfigMap> = Api::default_namespaced(cp.client_tagged("operator-2"));
    let id = cp
        .faults()
        .inject(Fault::writes().client("operator-2").fail(500).always());
    first
        .create(&PostParams::default(), &cm("a"))
        .await
        .unwrap();
    let err = api_error(
        second
            .create(&PostParams::default(), &cm("b"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 500);
    second.list(&ListParams::default()).await.unwrap();
    assert_eq!(cp.faults().hits(id), 1, "reads are not writes");
}

/// The log lists requests in order with method, path (no query), client, status and the
/// resourceVersion after each; nothing is logged before it is started.
#[tokio::test]
async fn the_request_log_lists_requests_in_order_by_client() {
    let cp = control_plane();
    let operator: Api<ConfigMap> = Api::default_namespaced(cp.client_tagged("operator-1"));
    let observer: Api<ConfigMap> = Api::default_namespaced(cp.client());
    operator
        .create(&PostParams::default(), &cm("before"))
        .await
        .unwrap();
    cp.faults().start_request_log();
    operator
        .create(&PostParams::default(), &cm("a"))
        .await
        .unwrap();
    let err = observer
        .create(&PostParams::default(), &cm("a"))
        .await
        .unwrap_err();
    assert_eq!(api_error(err).code, 409);
    operator
        .list(&ListParams::default().labels("x=y"))
        .await
        .unwrap();
    let log = cp.faults().request_log();
    let seen: Vec<(u64, &str, &str, &str, u16)> = log
        .iter()
        .map(|r| {
            (
                r.seq,
                r.method.as_str(),
                r.path.as_str(),
                r.client.as_str(),
                r.status,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                1,
                "POST",
                "/api/v1/namespaces/default/configmaps",
                "operator-1",
                201
            ),
            (2, "POST", "/api/v1/namespaces/default/configmaps", "", 409),
            (
                3,
                "GET",
                "/api/v1/namespaces/default/configmaps",
                "operator-1",
                200
            ),
        ]
    );
    assert_eq!(log[0].verb, Some(Verb::Create));
    assert_eq!(
        (log[0].resource.as_str(), log[0].namespace.as_str()),
        ("configmaps", "default")
    );
    assert_eq!(log[2].verb, Some(Verb::List));
    assert!(log[0].resource_version > 0);
    assert_eq!(
        log[0].resource_version, log[1].resource_version,
        "a refused write stores nothing"
    );
    assert_eq!(cp.faults().request_log_since(2).len(), 1);
}

/// An injected 410 reads as the apiserver's `Expired`, which makes watchers list again.
#[tokio::test]
async fn an_injected_410_is_expired() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client_tagged("operator-1"));
    cp.faults()
        .inject(Fault::on(Verb::Watch).client("operator-1").fail(410));
    let err = match cms
        .watch(&WatchParams::default().disable_bookmarks(), "0")
        .await
    {
        Ok(_) => panic!("the watch should have been refused"),
        Err(e) => api_error(e),
    };
    assert_eq!((err.code, err.reason.as_str()), (410, "Expired"));
}

#[tokio::test]
async fn shaped_watches_coalesce_each_object_and_keep_its_order_across_a_reordered_window() {
    let cp = control_plane();
    cp.faults().shape_watches(
        upstart_control_plane::WatchFault::clients("slow")
            .delay(Duration::from_millis(20))
            .coalesce(Duration::from_secs(1))
            .reorder(),
    );
    let writer: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let slow: Api<ConfigMap> = Api::default_namespaced(cp.client_tagged("slow"));
    let list = slow.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut events = slow
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    // a: created then changed twice; b: created; all within one window.
    writer
        .create(&PostParams::default(), &cm("a"))
        .await
        .unwrap();
    writer
        .create(&PostParams::default(), &cm("b"))
        .await
        .unwrap();
    for n in ["1", "2"] {
        let patch = json!({"data": {"n": n}});
        writer
            .patch(
                "a",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match events.try_next().await.unwrap().unwrap() {
            kube::api::WatchEvent::Added(o) | kube::api::WatchEvent::Modified(o) => seen.push((
                o.metadata.name.unwrap(),
                o.data.and_then(|d| d.get("n").cloned()),
            )),
            other => panic!("unexpected event {other:?}"),
        }
    }
    // One event per object, newest state only, b's (the later object) first.
    assert_eq!(
        seen,
        [
            ("b".to_owned(), None),
            ("a".to_owned(), Some("2".to_owned()))
        ]
    );
    // Unshaped clients see every event.
    let plain = writer.list(&ListParams::default()).await.unwrap();
    assert_eq!(plain.items.len(), 2);
}

#[tokio::test]
async fn lagging_lists_serve_a_past_snapshot_to_cache_reads_only() {
    let cp = control_plane();
    cp.faults()
        .lagging_lists("informer", Duration::from_secs(60));
    let writer: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let informer: Api<ConfigMap> = Api::default_namespaced(cp.client_tagged("informer"));
    writer
        .create(&PostParams::default(), &cm("a"))
        .await
        .unwrap();
    let cached = ListParams::default().match_any();
    let first = informer.list(&cached).await.unwrap();
    writer
        .create(&PostParams::default(), &cm("b"))
        .await
        .unwrap();
    let stale = informer.list(&cached).await.unwrap();
    assert_eq!(stale.items.len(), 1, "served from the snapshot");
    assert_eq!(
        stale.metadata.resource_version,
        first.metadata.resource_version
    );
    // The watch from the snapshot's resourceVersion replays what changed since.
    let mut events = informer
        .watch(
            &WatchParams::default(),
            stale.metadata.resource_version.as_deref().unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    match events.try_next().await.unwrap().unwrap() {
        kube::api::WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("b")),
        other => panic!("unexpected event {other:?}"),
    }
    // A quorum read is never stale.
    let fresh = informer.list(&ListParams::default()).await.unwrap();
    assert_eq!(fresh.items.len(), 2);
}
