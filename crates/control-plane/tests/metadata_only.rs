//! Metadata-only answers ("API Concepts", alternate representations; the apiserver's content
//! negotiation): `Accept: application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1`,
//! what kube's `Api<PartialObjectMeta<K>>` and metadata watchers send, is answered with
//! `meta.k8s.io/v1` PartialObjectMetadata objects and lists holding the whole metadata and
//! nothing else, for built-in kinds and custom resources, on get, list, watch and writes.
//!
//! The pinned kubectl has no way to ask for metadata only (it carries no metadata client and
//! `get --raw` sets no headers), so these tests have no kubectl oracle.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::{
    Api, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use serde_json::{Value, json};

use common::*;

const METADATA: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const METADATA_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "web"}, "annotations": {"note": "kept"}},
        "data": {"password": "hunter2"},
    }))
    .unwrap()
}

/// Creates `name` with server-side apply, so that it has managedFields.
async fn apply_cm(cms: &Api<ConfigMap>, name: &str) -> ConfigMap {
    cms.patch(
        name,
        &PatchParams::apply("metadata-test"),
        &Patch::Apply(cm(name)),
    )
    .await
    .unwrap()
}

fn assert_partial<K>(o: &PartialObjectMeta<K>) {
    let types = o.types.as_ref().expect("kind and apiVersion");
    assert_eq!(types.kind, "PartialObjectMetadata");
    assert_eq!(types.api_version, "meta.k8s.io/v1");
}

fn get(path: &str, accept: &str) -> http::Request<Vec<u8>> {
    http::Request::get(path)
        .header(http::header::ACCEPT, accept)
        .body(Vec::new())
        .unwrap()
}

#[tokio::test]
async fn a_metadata_get_answers_partial_object_metadata_with_the_whole_metadata() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let metas: Api<PartialObjectMeta<ConfigMap>> = Api::default_namespaced(cp.client());
    // 1. A ConfigMap with labels, annotations, data and managedFields.
    let full = apply_cm(&cms, "a").await;
    // 2. Its metadata alone: all of it.
    let meta = metas.get("a").await.unwrap();
    assert_partial(&meta);
    assert_eq!(meta.metadata, full.metadata);
    assert_eq!(meta.labels()["app"], "web");
    assert_eq!(meta.annotations()["note"], "kept");
    assert_eq!(
        meta.managed_fields()[0].manager.as_deref(),
        Some("metadata-test")
    );
    // 3. Api<ConfigMap>::get_metadata asks the same way.
    assert_eq!(cms.get_metadata("a").await.unwrap().metadata, full.metadata);
    // 4. A missing object is still a 404.
    let missing = metas.get("nope").await.unwrap_err();
    assert_eq!(api_error(missing).code, 404);
}

#[tokio::test]
async fn a_metadata_list_pages_through_partial_object_metadata_with_continue_tokens() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let metas: Api<PartialObjectMeta<ConfigMap>> = Api::default_namespaced(cp.client());
    // 1. Five ConfigMaps.
    for i in 0..5 {
        apply_cm(&cms, &format!("c{i}")).await;
    }
    // 2. Listed by two: a PartialObjectMetadataList with list metadata.
    let first = metas.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.types.kind, "PartialObjectMetadataList");
    assert_eq!(first.types.api_version, "meta.k8s.io/v1");
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    first.items.iter().for_each(assert_partial);
    // 3. The next pages follow the continue tokens, at the first page's resourceVersion.
    let token = first.metadata.continue_.clone().expect("a continue token");
    let second = metas
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    let token = second.metadata.continue_.clone().expect("a continue token");
    let third = metas
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert!(third.metadata.continue_.is_none());
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
    let names: Vec<String> = [first, second, third]
        .iter()
        .flat_map(|page| page.items.iter().map(ResourceExt::name_any))
        .collect();
    assert_eq!(names, ["c0", "c1", "c2", "c3", "c4"]);
    // 4. Selectors apply as to full lists.
    let none = metas
        .list(&ListParams::default().labels("app=db"))
        .await
        .unwrap();
    assert!(none.items.is_empty());
}

#[tokio::test]
async fn a_metadata_watch_from_a_resource_version_sends_partial_object_metadata_and_bookmarks() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let metas: Api<PartialObjectMeta<ConfigMap>> = Api::default_namespaced(cp.client());
    // 1. A watch from the resourceVersion before a create, an update and a delete.
    apply_cm(&cms, "before").await;
    let rv = metas
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    apply_cm(&cms, "w").await;
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}})),
    )
    .await
    .unwrap();
    cms.delete("w", &Default::default()).await.unwrap();
    let params = WatchParams::default().timeout(10);
    let mut stream = metas.watch(&params, &rv).await.unwrap().boxed();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .expect("an event within 5s")
            .expect("no stream error")
            .expect("stream still open")
    };
    // 2. The changes are replayed as PartialObjectMetadata.
    match next().await {
        WatchEvent::Added(o) => {
            assert_partial(&o);
            assert_eq!(o.name_any(), "w");
        }
        other => panic!("expected ADDED, got {other:?}"),
    }
    match next().await {
        WatchEvent::Modified(o) => {
            assert_partial(&o);
            assert_eq!(o.labels()["app"], "db");
        }
        other => panic!("expected MODIFIED, got {other:?}"),
    }
    match next().await {
        WatchEvent::Deleted(o) => assert_partial(&o),
        other => panic!("expected DELETED, got {other:?}"),
    }
    // 3. Bookmarks are PartialObjectMetadata too, at the latest resourceVersion.
    let latest = metas
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    match next().await {
        WatchEvent::Bookmark(b) => {
            assert_eq!(b.types.kind, "PartialObjectMetadata");
            assert_eq!(b.types.api_version, "meta.k8s.io/v1");
            assert_eq!(b.metadata.resource_version, latest);
        }
        other => panic!("expected BOOKMARK, got {other:?}"),
    }
}

/// Runs a metadata watcher over a collection holding "first", then `create` (which makes
/// "second"), and checks what it sees: PartialObjectMetadata all along.
async fn watcher_sees_first_then_second<K>(
    api: Api<PartialObjectMeta<K>>,
    config: watcher::Config,
    create: impl Future<Output = ()>,
) where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Clone + Send,
{
    let mut events = watcher(api, config).boxed();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(5), events.try_next())
            .await
            .expect("an event within 5s")
            .expect("no watcher error")
            .expect("watcher still running")
    };
    let mut initial = Vec::new();
    loop {
        match next().await {
            watcher::Event::Init => {}
            watcher::Event::InitApply(o) => {
                assert_partial(&o);
                initial.push(o.name_any());
            }
            watcher::Event::InitDone => break,
            other => panic!("expected the initial state, got {other:?}"),
        }
    }
    assert_eq!(initial, ["first"]);
    create.await;
    match next().await {
        watcher::Event::Apply(o) => {
            assert_partial(&o);
            assert_eq!(o.name_any(), "second");
        }
        other => panic!("expected an apply, got {other:?}"),
    }
}

#[tokio::test]
async fn a_metadata_watcher_follows_built_in_kinds_and_custom_resources() {
    let cp = control_plane();
    let client = cp.client();
    let configs = || {
        [
            ("list", watcher::Config::default()),
            ("stream", watcher::Config::default().streaming_lists()),
        ]
    };
    // 1. ConfigMaps: after a list then a watch, and after a streaming list (sendInitialEvents
    //    ended by a PartialObjectMetadata bookmark).
    for (how, config) in configs() {
        let ns = format!("cm-{how}");
        create_namespace(&client, &ns).await;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        apply_cm(&cms, "first").await;
        let metas: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(client.clone(), &ns);
        watcher_sees_first_then_second(metas, config, async {
            apply_cm(&cms, "second").await;
        })
        .await;
    }
    // 2. Widgets (a CRD), the same two ways.
    for (how, config) in configs() {
        let ns = format!("wd-{how}");
        create_namespace(&client, &ns).await;
        let ws = widgets(&client, &ns).await;
        ws.create(&PostParams::default(), &widget("first", 1))
            .await
            .unwrap();
        let metas: Api<PartialObjectMeta<DynamicObject>> =
            Api::namespaced_with(client.clone(), &ns, &widget_resource());
        watcher_sees_first_then_second(metas, config, async {
            ws.create(&PostParams::default(), &widget("second", 2))
                .await
                .unwrap();
        })
        .await;
    }
}

async fn create_namespace(client: &kube::Client, name: &str) {
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn raw_metadata_answers_name_their_meta_kinds_and_carry_no_secret_data() {
    let cp = control_plane();
    let client = cp.client();
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    // "c2VjcmV0LXZhbHVl" is base64 for "secret-value".
    let secret = |name: &str| -> Secret {
        serde_json::from_value(json!({
            "metadata": {"name": name}, "type": "Opaque",
            "data": {"token": "c2VjcmV0LXZhbHVl"},
        }))
        .unwrap()
    };
    // 1. A Secret, and the resourceVersion before a second one.
    secrets
        .create(&PostParams::default(), &secret("s1"))
        .await
        .unwrap();
    let rv = secrets
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    secrets
        .create(&PostParams::default(), &secret("s2"))
        .await
        .unwrap();
    let no_data = |text: &str| {
        assert!(!text.contains("c2VjcmV0LXZhbHVl"), "{text}");
        assert!(!text.contains("\"data\""), "{text}");
        assert!(!text.contains("\"type\":\"Opaque\""), "{text}");
    };
    // 2. get: one PartialObjectMetadata.
    let text = client
        .request_text(get("/api/v1/namespaces/default/secrets/s1", METADATA))
        .await
        .unwrap();
    no_data(&text);
    let o: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(o["kind"], "PartialObjectMetadata");
    assert_eq!(o["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(o["metadata"]["name"], "s1");
    assert!(o["metadata"]["uid"].is_string());
    // 3. list: a PartialObjectMetadataList of PartialObjectMetadata.
    let text = client
        .request_text(get("/api/v1/namespaces/default/secrets", METADATA_LIST))
        .await
        .unwrap();
    no_data(&text);
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["apiVersion"], "meta.k8s.io/v1");
    assert!(list["metadata"]["resourceVersion"].is_string());
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for item in items {
        assert_eq!(item["kind"], "PartialObjectMetadata");
        assert_eq!(item["apiVersion"], "meta.k8s.io/v1");
    }
    // 4. watch from the first resourceVersion: an ADDED event and a bookmark, both
    //    PartialObjectMetadata (the watch ends after a second).
    let path = format!(
        "/api/v1/namespaces/default/secrets?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=1"
    );
    let text = client.request_text(get(&path, METADATA)).await.unwrap();
    no_data(&text);
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "s2");
    let bookmark = events
        .iter()
        .find(|e| e["type"] == "BOOKMARK")
        .expect("a bookmark within a second");
    for e in [&events[0], bookmark] {
        assert_eq!(e["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(e["object"]["apiVersion"], "meta.k8s.io/v1");
    }
    // 5. The same header on a custom resource.
    let ws = widgets(&client, "default").await;
    ws.create(&PostParams::default(), &widget("w1", 7))
        .await
        .unwrap();
    let text = client
        .request_text(get(
            "/apis/example.com/v1/namespaces/default/widgets/w1",
            METADATA,
        ))
        .await
        .unwrap();
    let o: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(o["kind"], "PartialObjectMetadata");
    assert_eq!(o.get("spec"), None);
    assert_eq!(o["metadata"]["name"], "w1");
}

#[tokio::test]
async fn a_transform_the_server_cannot_give_is_not_acceptable_unless_a_fallback_follows() {
    let cp = control_plane();
    let client = cp.client();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    apply_cm(&cms, "a").await;
    let path = "/api/v1/namespaces/default/configmaps/a";
    // 1. An unknown `as=` kind alone: 406 NotAcceptable, listing what is served.
    let e = client
        .request::<Value>(get(path, "application/json;as=Pod;g=meta.k8s.io;v=v1"))
        .await
        .unwrap_err();
    let status = api_error(e);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (406, "NotAcceptable")
    );
    assert_eq!(
        status.message,
        "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
    );
    // 2. Followed by plain JSON: the object itself.
    let o = client
        .request::<Value>(get(
            path,
            "application/json;as=Pod;g=meta.k8s.io;v=v1, application/json",
        ))
        .await
        .unwrap();
    assert_eq!(o["kind"], "ConfigMap");
    assert_eq!(o["data"]["password"], "hunter2");
    // 3. A list asked of one object, and one object's metadata asked of a list: 406.
    let e = client
        .request::<Value>(get(path, METADATA_LIST))
        .await
        .unwrap_err();
    assert_eq!(api_error(e).code, 406);
    let e = client
        .request::<Value>(get("/api/v1/namespaces/default/configmaps", METADATA))
        .await
        .unwrap_err();
    let status = api_error(e);
    assert_eq!(status.code, 406);
    assert!(
        status
            .message
            .starts_with("you requested PartialObjectMetadata, but the requested object is a list"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn a_metadata_patch_answers_with_the_patched_metadata() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let metas: Api<PartialObjectMeta<ConfigMap>> = Api::default_namespaced(cp.client());
    apply_cm(&cms, "a").await;
    // 1. A finalizer added through the metadata API.
    let patched = metas
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/keep"]}})),
        )
        .await
        .unwrap();
    assert_partial(&patched);
    assert_eq!(patched.finalizers(), ["example.com/keep"]);
    // 2. The data is untouched.
    let full = cms.get("a").await.unwrap();
    assert_eq!(full.data.unwrap()["password"], "hunter2");
}
