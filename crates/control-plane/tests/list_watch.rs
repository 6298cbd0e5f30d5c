//! List and watch semantics ("API Concepts": efficient detection of changes, retrieving large
//! results in chunks, resource versions, watch bookmarks, label and field selectors).

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::json;
use upstart_control_plane::{ControlPlane, Options};

use common::*;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
}

async fn next_event(
    stream: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin),
) -> WatchEvent<ConfigMap> {
    tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .expect("an event within 5s")
        .expect("no stream error")
        .expect("stream still open")
}

#[tokio::test]
async fn list_with_limit_returns_pages_linked_by_continue_tokens() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    for i in 0..5 {
        cms.create(&PostParams::default(), &cm(&format!("c{i}"), json!({})))
            .await
            .unwrap();
    }
    let first = cms.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    let token = first.metadata.continue_.clone().expect("continue token");
    let second = cms
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    let third = cms
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(second.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert!(third.metadata.continue_.is_none());
    let names: Vec<String> = first
        .items
        .iter()
        .chain(&second.items)
        .chain(&third.items)
        .map(|c| c.name_any())
        .collect();
    assert_eq!(names, ["c0", "c1", "c2", "c3", "c4"]);
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
}

#[tokio::test]
async fn a_namespaced_list_holds_its_namespace_alone_and_pages_within_it() {
    let cp = control_plane();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(cp.client());
    // Names that sort next to each other, and prefixes of one another.
    for namespace in ["a", "a-b", "ab", "b"] {
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap(),
            )
            .await
            .unwrap();
        let cms: Api<ConfigMap> = Api::namespaced(cp.client(), namespace);
        for i in 0..3 {
            cms.create(
                &PostParams::default(),
                &cm(&format!("{namespace}-{i}"), json!({})),
            )
            .await
            .unwrap();
        }
    }
    for namespace in ["a", "a-b", "ab", "b"] {
        let cms: Api<ConfigMap> = Api::namespaced(cp.client(), namespace);
        let whole: Vec<String> = cms
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|c| c.name_any())
            .collect();
        let expected: Vec<String> = (0..3).map(|i| format!("{namespace}-{i}")).collect();
        assert_eq!(whole, expected, "namespace {namespace}");
        let first = cms.list(&ListParams::default().limit(2)).await.unwrap();
        assert_eq!(first.metadata.remaining_item_count, Some(1));
        let rest = cms
            .list(
                &ListParams::default()
                    .limit(2)
                    .continue_token(first.metadata.continue_.as_deref().unwrap()),
            )
            .await
            .unwrap();
        let paged: Vec<String> = first
            .items
            .iter()
            .chain(&rest.items)
            .map(|c| c.name_any())
            .collect();
        assert_eq!(paged, expected, "namespace {namespace}, in pages");
        assert!(rest.metadata.continue_.is_none());
    }
    let all: Api<ConfigMap> = Api::all(cp.client());
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        12
    );
}

#[tokio::test]
async fn label_selectors_support_equality_and_set_based_requirements() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    cms.create(
        &PostParams::default(),
        &cm("a", json!({"app": "web", "tier": "front"})),
    )
    .await
    .unwrap();
    cms.create(
        &PostParams::default(),
        &cm("b", json!({"app": "web", "tier": "back"})),
    )
    .await
    .unwrap();
    cms.create(&PostParams::default(), &cm("c", json!({"app": "db"})))
        .await
        .unwrap();
    let names = |l: kube::core::ObjectList<ConfigMap>| {
        l.items.iter().map(|c| c.name_any()).collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("app=web"))
                .await
                .unwrap()
        ),
        ["a", "b"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("tier in (back),app"))
                .await
                .unwrap()
        ),
        ["b"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("!tier"))
                .await
                .unwrap()
        ),
        ["c"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("app notin (web)"))
                .await
                .unwrap()
        ),
        ["c"]
    );
}

#[tokio::test]
async fn field_selectors_on_metadata_name_and_namespace_are_supported() {
    let cp = control_plane();
    let client = cp.client();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    let one = cms
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
    let all: Api<ConfigMap> = Api::all(client);
    let by_ns = all
        .list(&ListParams::default().fields("metadata.namespace!=default"))
        .await
        .unwrap();
    assert!(by_ns.items.is_empty());
    let err = api_error(
        cms.list(&ListParams::default().fields("data.x=1"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);
    assert_eq!(err.message, "field label not supported: data.x");
}

#[tokio::test]
async fn watch_without_resource_version_starts_with_the_current_objects_as_added() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    cms.create(&PostParams::default(), &cm("existing", json!({})))
        .await
        .unwrap();
    let mut s = cms
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    match next_event(&mut s).await {
        WatchEvent::Added(o) => assert_eq!(o.name_any(), "existing"),
        other => panic!("unexpected {other:?}"),
    }
}

/// `watch` is a boolean query parameter: anything but `0`/`false` (any case) is true, so
/// `watch=True` (what Python clients up to 36.x send) streams events instead of listing.
#[tokio::test]
async fn watch_true_in_any_case_streams_events() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    for (i, value) in ["True", "TRUE", ""].into_iter().enumerate() {
        let rv = cms
            .list(&ListParams::default())
            .await
            .unwrap()
            .metadata
            .resource_version
            .unwrap();
        let req = http::Request::get(format!(
            "/api/v1/namespaces/default/configmaps?watch={value}&resourceVersion={rv}&allowWatchBookmarks=False"
        ))
        .body(Vec::new())
        .unwrap();
        let mut s = cp
            .client()
            .request_events::<ConfigMap>(req)
            .await
            .unwrap()
            .boxed();
        let name = format!("watched-{i}");
        cms.create(&PostParams::default(), &cm(&name, json!({})))
            .await
            .unwrap();
        match next_event(&mut s).await {
            WatchEvent::Added(o) => assert_eq!(o.name_any(), name, "watch={value}"),
            other => panic!("watch={value}: expected ADDED, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn watch_with_a_label_selector_sees_objects_leaving_it_as_deleted() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let c = cms
        .create(&PostParams::default(), &cm("m", json!({"app": "x"})))
        .await
        .unwrap();
    let rv = c.resource_version().unwrap();
    let mut s = cms
        .watch(&WatchParams::default().labels("app=x"), &rv)
        .await
        .unwrap()
        .boxed();
    cms.patch(
        "m",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "y"}}})),
    )
    .await
    .unwrap();
    assert!(matches!(next_event(&mut s).await, WatchEvent::Deleted(_)));
    cms.patch(
        "m",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "x"}}})),
    )
    .await
    .unwrap();
    assert!(matches!(next_event(&mut s).await, WatchEvent::Added(_)));
}

#[tokio::test]
async fn watch_from_a_compacted_resource_version_reports_410_expired() {
    let cp = ControlPlane::start(Options {
        watch_history: 3,
        ..Options::default()
    });
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let first = cms
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    for i in 0..5 {
        cms.create(&PostParams::default(), &cm(&format!("x{i}"), json!({})))
            .await
            .unwrap();
    }
    let mut s = cms
        .watch(&WatchParams::default(), &first.resource_version().unwrap())
        .await
        .unwrap()
        .boxed();
    match next_event(&mut s).await {
        WatchEvent::Error(e) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
        }
        other => panic!("expected a 410 error event, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_bookmarks_are_sent_when_allowed() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut s = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match next_event(&mut s).await {
        WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, rv),
        other => panic!("expected a bookmark, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_with_send_initial_events_ends_the_initial_state_with_an_annotated_bookmark() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    cms.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let mut s = cms
        .watch(&WatchParams::streaming_lists(), "")
        .await
        .unwrap()
        .boxed();
    assert!(matches!(next_event(&mut s).await, WatchEvent::Added(_)));
    match next_event(&mut s).await {
        WatchEvent::Bookmark(b) => {
            assert_eq!(
                b.metadata
                    .annotations
                    .get("k8s.io/initial-events-end")
                    .map(String::as_str),
                Some("true")
            )
        }
        other => panic!("expected the initial-events-end bookmark, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_ends_after_timeout_seconds() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let mut s = cms
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap()
        .boxed();
    let started = std::time::Instant::now();
    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = s.try_next().await.unwrap() {
            assert!(
                matches!(ev, WatchEvent::Bookmark(_)),
                "only bookmarks on an idle watch"
            );
        }
    })
    .await;
    assert!(drained.is_ok(), "the stream ends within 5s");
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn kube_runtime_watcher_follows_changes_across_a_dropped_stream() {
    use kube::runtime::{WatchStreamExt, watcher};
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let mut applied = watcher(cms.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    cms.create(&PostParams::default(), &cm("one", json!({})))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), applied.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.name_any(), "one");
    cp.faults().close_watches();
    cms.create(&PostParams::default(), &cm("two", json!({})))
        .await
        .unwrap();
    let second = loop {
        let o = tokio::time::timeout(Duration::from_secs(5), applied.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if o.name_any() == "two" {
            break o;
        }
    };
    assert_eq!(second.name_any(), "two");
    cms.delete("two", &DeleteParams::default()).await.unwrap();
}

#[tokio::test]
async fn a_continue_token_older_than_the_retained_history_is_410_expired() {
    let cp = ControlPlane::start(Options {
        watch_history: 3,
        ..Options::default()
    });
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    for i in 0..3 {
        cms.create(&PostParams::default(), &cm(&format!("c{i}"), json!({})))
            .await
            .unwrap();
    }
    let first = cms.list(&ListParams::default().limit(1)).await.unwrap();
    for i in 0..5 {
        cms.create(&PostParams::default(), &cm(&format!("x{i}"), json!({})))
            .await
            .unwrap();
    }
    let token = first.metadata.continue_.unwrap();
    let err = api_error(
        cms.list(&ListParams::default().limit(1).continue_token(&token))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 410);
    assert_eq!(err.reason, "Expired");
}

#[tokio::test]
async fn watches_on_custom_resources_end_when_their_crd_is_deleted() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let cp = control_plane();
    let client = cp.client();
    let ws = widgets(&client, "default").await;
    let mut s = ws
        .watch(&WatchParams::default().disable_bookmarks(), "0")
        .await
        .unwrap()
        .boxed();
    Api::<CustomResourceDefinition>::all(client)
        .delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), s.try_next())
        .await
        .expect("ends promptly");
    assert!(end.unwrap().is_none());
}

#[tokio::test]
async fn resuming_from_a_bookmark_misses_no_event() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut s = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &cm("before", json!({})))
        .await
        .unwrap();
    let bookmark_rv = loop {
        if let WatchEvent::Bookmark(b) = next_event(&mut s).await {
            break b.metadata.resource_version;
        }
    };
    drop(s);
    cms.create(&PostParams::default(), &cm("after", json!({})))
        .await
        .unwrap();
    let mut resumed = cms
        .watch(&WatchParams::default().disable_bookmarks(), &bookmark_rv)
        .await
        .unwrap()
        .boxed();
    match next_event(&mut resumed).await {
        WatchEvent::Added(o) => assert_eq!(o.name_any(), "after"),
        other => panic!("expected ADDED after, got {other:?}"),
    }
}

#[tokio::test]
async fn crd_selectable_fields_can_be_used_in_field_selectors() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let cp = control_plane();
    let client = cp.client();
    let mut crd = serde_json::to_value(widget_crd()).unwrap();
    crd["spec"]["versions"][0]["selectableFields"] = json!([{"jsonPath": ".spec.colour"}]);
    let crd: CustomResourceDefinition = serde_json::from_value(crd).unwrap();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
    let ws: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client, "default", &widget_resource());
    let mut red = widget("red", 1);
    red.data["spec"]["colour"] = json!("red");
    ws.create(&PostParams::default(), &red).await.unwrap();
    ws.create(&PostParams::default(), &widget("blue", 1))
        .await
        .unwrap();
    let reds = ws
        .list(&ListParams::default().fields("spec.colour=red"))
        .await
        .unwrap();
    let names: Vec<String> = reds.items.iter().map(|o| o.name_any()).collect();
    assert_eq!(names, ["red"]);
    let err = api_error(
        ws.list(&ListParams::default().fields("spec.size=1"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);
}
