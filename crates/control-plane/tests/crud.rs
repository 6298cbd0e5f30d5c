//! Basic CRUD and watch through `kube::Api`, for built-in and custom resources.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::json;

use common::*;

fn config_map(name: &str, data: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": data}))
        .expect("valid ConfigMap")
}

#[tokio::test]
async fn configmap_create_get_list_update_patch_delete_round_trip() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::namespaced(cp.client(), "default");
    let created = cms
        .create(
            &PostParams::default(),
            &config_map("app", json!({"a": "1"})),
        )
        .await
        .unwrap();
    let uid = created.metadata.uid.clone().expect("uid set");
    assert!(created.metadata.creation_timestamp.is_some());
    assert!(created.metadata.resource_version.is_some());

    let got = cms.get("app").await.unwrap();
    assert_eq!(got.metadata.uid.as_deref(), Some(uid.as_str()));

    let list = cms.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);

    let mut updated = got.clone();
    updated.data = Some([("a".to_string(), "2".to_string())].into());
    let updated = cms
        .replace("app", &PostParams::default(), &updated)
        .await
        .unwrap();
    assert_ne!(
        updated.metadata.resource_version,
        got.metadata.resource_version
    );

    let patched = cms
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"b": "3"}})),
        )
        .await
        .unwrap();
    let data = patched.data.unwrap();
    assert_eq!(data["a"], "2");
    assert_eq!(data["b"], "3");

    cms.delete("app", &DeleteParams::default()).await.unwrap();
    assert!(cms.get_opt("app").await.unwrap().is_none());
}

#[tokio::test]
async fn watch_from_a_list_resource_version_sees_later_changes_in_order() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::namespaced(cp.client(), "default");
    let list = cms.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut stream = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &config_map("w", json!({})))
        .await
        .unwrap();
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "y"}})),
    )
    .await
    .unwrap();
    cms.delete("w", &DeleteParams::default()).await.unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        match stream.try_next().await.unwrap().expect("stream open") {
            WatchEvent::Added(_) => kinds.push("ADDED"),
            WatchEvent::Modified(_) => kinds.push("MODIFIED"),
            WatchEvent::Deleted(_) => kinds.push("DELETED"),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"]);
}

#[tokio::test]
async fn custom_resources_are_served_once_their_crd_is_created() {
    let cp = control_plane();
    let client = cp.client();
    let ws = widgets(&client, "default").await;
    let created = ws
        .create(&PostParams::default(), &widget("w1", 3))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let got = ws.get("w1").await.unwrap();
    assert_eq!(got.data["spec"]["size"], 3);
    let patched = ws
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.generation, Some(2));
    assert_eq!(
        ws.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
}

#[tokio::test]
async fn kube_runtime_event_recorder_publishes_and_updates_a_series() {
    use k8s_openapi::api::events::v1::Event as K8sEvent;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let cp = control_plane();
    let client = cp.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let target = cms
        .create(&PostParams::default(), &config_map("subject", json!({})))
        .await
        .unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "test-ctrl".into(),
            instance: None,
        },
    );
    let reference = kube::Resource::object_ref(&target, &());
    let ev = Event {
        type_: EventType::Normal,
        reason: "Synced".into(),
        note: Some("synced".into()),
        action: "Sync".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();
    let events: Api<K8sEvent> = Api::namespaced(client, "default");
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].reason.as_deref(), Some("Synced"));

    // core/v1 Events are the same objects, converted, as in the apiserver.
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(cp.client(), "default");
    let selected = core
        .list(&ListParams::default().fields("involvedObject.name=subject"))
        .await
        .unwrap();
    assert_eq!(selected.items.len(), 1);
    assert_eq!(selected.items[0].message.as_deref(), Some("synced"));
    assert_eq!(
        selected.items[0].involved_object.kind.as_deref(),
        Some("ConfigMap")
    );
}

#[tokio::test]
async fn core_events_written_through_v1_are_served_by_events_k8s_io() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event as K8sEvent;
    let cp = control_plane();
    let core: Api<CoreEvent> = Api::namespaced(cp.client(), "default");
    let ev: CoreEvent = serde_json::from_value(json!({
        "metadata": {"name": "e1"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "Pulled", "message": "image pulled", "type": "Normal", "count": 1
    }))
    .unwrap();
    core.create(&PostParams::default(), &ev).await.unwrap();
    core.patch(
        "e1",
        &PatchParams::default(),
        &Patch::Merge(json!({"count": 2})),
    )
    .await
    .unwrap();
    let events: Api<K8sEvent> = Api::namespaced(cp.client(), "default");
    let stored = events.get("e1").await.unwrap();
    assert_eq!(stored.note.as_deref(), Some("image pulled"));
    assert_eq!(stored.regarding.unwrap().name.as_deref(), Some("p"));
    assert_eq!(stored.deprecated_count, Some(2));
}
