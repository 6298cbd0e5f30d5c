//! `helm.sh/resource-policy: keep` (Helm parity): an object carrying it is left in place when a
//! new render drops it (prune) and when its release is deleted, as `helm upgrade` and
//! `helm uninstall` leave it; the release lists it in `status.kept` and says so in an Event.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use upstart_api::conditions::is_ready_for_generation;
use upstart_api::v1alpha1::HelmRelease;
use upstart_test_support::operators::{Cluster, RunningOperator, eventually, object_where, write};

const WAIT: Duration = Duration::from_secs(60);
const NS: &str = "default";

/// A chart whose `keepData` value adds a ConfigMap marked keep, and a plain one always.
fn charts(root: &Path) {
    write(
        root,
        "keeper/Chart.yaml",
        "apiVersion: v2\nname: keeper\nversion: 0.1.0\n",
    );
    write(
        root,
        "keeper/templates/objects.yaml",
        r#"{{- if .Values.keepData }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-data
  annotations:
    helm.sh/resource-policy: " Keep "
data:
  precious: "yes"
---
{{- end }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  plain: "yes"
"#,
    );
}

fn release(keep_data: bool) -> HelmRelease {
    serde_json::from_value(json!({
        "apiVersion": "upstartoperators.upstart.com/v1alpha1",
        "kind": "HelmRelease",
        "metadata": {"name": "store", "namespace": NS},
        "spec": {"chart": "test/keeper", "version": "0.1.0", "values": {"keepData": keep_data}}
    }))
    .unwrap()
}

async fn ready_for_generation(api: &Api<HelmRelease>, generation: i64) -> HelmRelease {
    object_where(api, "store", WAIT, "Ready", |r| {
        r.metadata.generation == Some(generation)
            && r.status
                .as_ref()
                .is_some_and(|s| is_ready_for_generation(&s.conditions, r.metadata.generation))
    })
    .await
}

async fn exists(client: &Client, name: &str) -> bool {
    Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get_opt(name)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_marked_keep_survive_prune_and_deletion_and_are_reported() {
    let cluster = Cluster::start(charts).await;
    let client = cluster.client.clone();
    let operator = RunningOperator::helmrelease(client.clone(), cluster.helmrelease_config());
    let api: Api<HelmRelease> = Api::namespaced(client.clone(), NS);

    // 1. Installed with the kept ConfigMap.
    api.create(&PostParams::default(), &release(true))
        .await
        .unwrap();
    ready_for_generation(&api, 1).await;
    assert!(exists(&client, "store-data").await);

    // 2. A render without it: the prune leaves it in place and status lists it as kept.
    api.patch(
        "store",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"values": {"keepData": false}}})),
    )
    .await
    .unwrap();
    let pruned = ready_for_generation(&api, 2).await;
    let status = pruned.status.unwrap();
    assert!(exists(&client, "store-data").await, "kept at prune");
    assert!(
        !status.inventory.iter().any(|e| e.name == "store-data"),
        "no longer part of the release: {:?}",
        status.inventory
    );
    assert!(
        status.kept.iter().any(|e| e.name == "store-data"),
        "{:?}",
        status.kept
    );

    // 3. Taken back by a render that has it again, then the release is deleted: the plain
    //    object goes, the kept one stays.
    api.patch(
        "store",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"values": {"keepData": true}}})),
    )
    .await
    .unwrap();
    let back = ready_for_generation(&api, 3).await;
    assert!(back.status.unwrap().kept.is_empty(), "back in the release");
    api.delete("store", &DeleteParams::default()).await.unwrap();
    eventually(WAIT, "the release gone", || async {
        api.get_opt("store").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(!exists(&client, "store-settings").await, "deleted");
    assert!(exists(&client, "store-data").await, "kept at deletion");

    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), NS);
    eventually(
        WAIT,
        "a ResourceKept Event naming the kept object",
        || async {
            events
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .any(|e| {
                    e.reason.as_deref() == Some("ResourceKept")
                        && e.note.as_deref().is_some_and(|n| n.contains("store-data"))
                })
                .then_some(())
        },
    )
    .await;
    operator.stop(Duration::from_secs(10)).await;
}
