//! `OutputReads` reads an output Secret or ConfigMap from the API once per version, against the
//! versions its metadata-only watches hold, and never answers with a version older than the
//! watch's.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use upstart_api::v1alpha1::OutputSource;
use upstart_control_plane::{ControlPlane, Options};
use upstart_operator_runtime::Cache;
use upstart_operator_runtime::outputs::OutputReads;

const NS: &str = "default";

/// Output reads over metadata caches fed by their watches (polled in the background).
fn reads(client: &Client) -> OutputReads {
    let (secrets, secret_events) = Cache::watch(
        Api::<PartialObjectMeta<Secret>>::all(client.clone()),
        watcher::Config::default(),
    );
    let (config_maps, config_map_events) = Cache::watch(
        Api::<PartialObjectMeta<ConfigMap>>::all(client.clone()),
        watcher::Config::default(),
    );
    tokio::spawn(secret_events.for_each(|_| async {}));
    tokio::spawn(config_map_events.for_each(|_| async {}));
    OutputReads::new(secrets, config_maps)
}

fn sources() -> Vec<OutputSource> {
    serde_json::from_value(serde_json::json!([
        {"configMapRef": {"name": "settings"}},
        {"secretRef": {"name": "credentials"}}
    ]))
    .unwrap()
}

fn config_map(message: &str) -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("settings".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("message".into(), message.into())])),
        ..Default::default()
    }
}

/// The message of the ConfigMap `OutputReads` returns.
async fn message(reads: &OutputReads, client: &Client) -> Option<String> {
    let objects = reads.read(client, NS, &sources()).await.unwrap();
    objects
        .config_maps
        .get("settings")
        .and_then(|c| c.data.as_ref()?.get("message").cloned())
}

/// GET requests the control plane answered so far.
fn gets(cp: &ControlPlane) -> u64 {
    cp.request_counts().in_process.get
}

/// Waits until a read is answered from memory alone (the metadata watch holds the versions
/// memory holds).
async fn answered_from_memory(cp: &ControlPlane, reads: &OutputReads, client: &Client) {
    for _ in 0..500 {
        let before = gets(cp);
        let _ = message(reads, client).await;
        if gets(cp) == before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("reads never came from memory");
}

#[tokio::test]
async fn an_output_is_read_once_per_version_and_read_again_when_it_changes() {
    let cp = ControlPlane::start(Options::default());
    let client = cp.client();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    config_maps
        .create(&PostParams::default(), &config_map("first"))
        .await
        .unwrap();
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "credentials"},
        "stringData": {"password": "hunter2"}
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let reads = reads(&client);

    // 1. Read at their versions, then answered from memory: no request at all.
    assert_eq!(message(&reads, &client).await.as_deref(), Some("first"));
    answered_from_memory(&cp, &reads, &client).await;
    let before = gets(&cp);
    for _ in 0..10 {
        assert_eq!(message(&reads, &client).await.as_deref(), Some("first"));
    }
    assert_eq!(gets(&cp), before, "read again although nothing changed");

    // 2. Changed: once the watch has the new version, the next read returns it.
    config_maps
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"message": "second"}})),
        )
        .await
        .unwrap();
    let mut seen = None;
    for _ in 0..500 {
        seen = message(&reads, &client).await;
        if seen.as_deref() == Some("second") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen.as_deref(), Some("second"));

    // 3. Deleted: absent, and forgotten.
    config_maps
        .delete("settings", &Default::default())
        .await
        .unwrap();
    let mut gone = false;
    for _ in 0..500 {
        if message(&reads, &client).await.is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(gone, "a deleted output is still returned");
    assert_eq!(reads.held(), 1, "only the Secret is held");
}

#[tokio::test]
async fn an_output_is_absent_until_the_watch_sees_it_and_absence_costs_no_request() {
    let cp = ControlPlane::start(Options::default());
    let client = cp.client();
    let reads = reads(&client);
    // Nothing yet: absent, and once the watch's first list is in, absence costs no request.
    assert_eq!(message(&reads, &client).await, None);
    answered_from_memory(&cp, &reads, &client).await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    config_maps
        .create(&PostParams::default(), &config_map("fresh"))
        .await
        .unwrap();
    let mut seen = None;
    for _ in 0..500 {
        seen = message(&reads, &client).await;
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen.as_deref(), Some("fresh"));
}
