//! Deletion: finalizers, propagation policies, ownerReference garbage collection and namespace
//! termination ("Finalizers", "Garbage Collection", "Namespaces" in the Kubernetes docs).

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use serde_json::json;

use common::*;

fn cm(name: &str, extra_meta: serde_json::Value) -> ConfigMap {
    let mut meta = json!({"name": name});
    if let (Some(m), Some(e)) = (meta.as_object_mut(), extra_meta.as_object()) {
        m.extend(e.clone());
    }
    serde_json::from_value(json!({"metadata": meta})).unwrap()
}

fn owned_by(owner: &ConfigMap, block: bool) -> serde_json::Value {
    json!({"ownerReferences": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": owner.name_any(),
        "uid": owner.uid().unwrap(), "blockOwnerDeletion": block
    }]})
}

#[tokio::test]
async fn deleting_an_object_with_a_finalizer_only_sets_deletion_timestamp() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    cms.create(
        &PostParams::default(),
        &cm("f", json!({"finalizers": ["example.com/hold"]})),
    )
    .await
    .unwrap();
    let res = cms.delete("f", &DeleteParams::default()).await.unwrap();
    let pending = res
        .left()
        .expect("the object is returned while finalizers remain");
    assert!(pending.metadata.deletion_timestamp.is_some());
    let still = cms.get("f").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());
    assert_eq!(still.finalizers(), ["example.com/hold"]);
}

#[tokio::test]
async fn removing_the_last_finalizer_deletes_the_object() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    cms.create(
        &PostParams::default(),
        &cm("f", json!({"finalizers": ["example.com/hold"]})),
    )
    .await
    .unwrap();
    cms.delete("f", &DeleteParams::default()).await.unwrap();
    cms.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("f").await.unwrap().is_none());
}

#[tokio::test]
async fn no_new_finalizers_can_be_added_to_an_object_being_deleted() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    cms.create(
        &PostParams::default(),
        &cm("f", json!({"finalizers": ["a.io/x"]})),
    )
    .await
    .unwrap();
    cms.delete("f", &DeleteParams::default()).await.unwrap();
    let err = api_error(
        cms.patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["a.io/x", "b.io/y"]}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .contains("no new finalizers can be added if the object is being deleted")
    );
}

#[tokio::test]
async fn deleting_an_object_without_finalizers_removes_it_and_returns_a_success_status() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    cms.create(&PostParams::default(), &cm("plain", json!({})))
        .await
        .unwrap();
    let status = cms
        .delete("plain", &DeleteParams::default())
        .await
        .unwrap()
        .right()
        .expect("status");
    assert_eq!(
        status.status,
        Some(kube::core::response::StatusSummary::Success)
    );
    let err = api_error(
        cms.delete("plain", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 404);
}

#[tokio::test]
async fn background_deletion_garbage_collects_dependents() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let owner = cms
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    cms.create(
        &PostParams::default(),
        &cm("child", owned_by(&owner, false)),
    )
    .await
    .unwrap();
    let grandchild_owner = cms.get("child").await.unwrap();
    cms.create(
        &PostParams::default(),
        &cm("grandchild", owned_by(&grandchild_owner, false)),
    )
    .await
    .unwrap();
    cms.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    assert!(cms.get_opt("child").await.unwrap().is_none());
    assert!(cms.get_opt("grandchild").await.unwrap().is_none());
}

#[tokio::test]
async fn dependents_with_another_live_owner_are_kept_without_the_dead_reference() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let a = cms
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let b = cms
        .create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    let mut refs = owned_by(&a, false);
    refs["ownerReferences"]
        .as_array_mut()
        .unwrap()
        .push(owned_by(&b, false)["ownerReferences"][0].clone());
    cms.create(&PostParams::default(), &cm("shared", refs))
        .await
        .unwrap();
    cms.delete("a", &DeleteParams::default()).await.unwrap();
    let shared = cms.get("shared").await.unwrap();
    let owners: Vec<String> = shared
        .owner_references()
        .iter()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(owners, ["b"]);
}

#[tokio::test]
async fn orphan_deletion_removes_the_owner_reference_from_dependents() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let owner = cms
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("child", owned_by(&owner, true)))
        .await
        .unwrap();
    cms.delete("owner", &DeleteParams::orphan()).await.unwrap();
    assert!(cms.get_opt("owner").await.unwrap().is_none());
    let child = cms.get("child").await.unwrap();
    assert!(child.owner_references().is_empty());
}

/// `orphanDependents` is a boolean query parameter: anything but `0`/`false` (any case) is
/// true, so `orphanDependents=True` (Python clients up to 36.x) orphans.
#[tokio::test]
async fn orphan_dependents_true_in_any_case_keeps_the_dependents() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    for (i, value) in ["True", "TRUE", "1"].into_iter().enumerate() {
        let owner = cms
            .create(
                &PostParams::default(),
                &cm(&format!("owner-{i}"), json!({})),
            )
            .await
            .unwrap();
        cms.create(
            &PostParams::default(),
            &cm(&format!("child-{i}"), owned_by(&owner, false)),
        )
        .await
        .unwrap();
        let req = http::Request::delete(format!(
            "/api/v1/namespaces/default/configmaps/owner-{i}?orphanDependents={value}"
        ))
        .body(Vec::new())
        .unwrap();
        cp.client().request::<serde_json::Value>(req).await.unwrap();
        assert!(cms.get_opt(&format!("owner-{i}")).await.unwrap().is_none());
        let child = cms.get(&format!("child-{i}")).await.unwrap();
        assert!(
            child.owner_references().is_empty(),
            "orphanDependents={value} keeps the dependent, without the reference"
        );
    }
    // `False` is false: the dependent is collected.
    let owner = cms
        .create(&PostParams::default(), &cm("owner-f", json!({})))
        .await
        .unwrap();
    cms.create(
        &PostParams::default(),
        &cm("child-f", owned_by(&owner, false)),
    )
    .await
    .unwrap();
    let req = http::Request::delete(
        "/api/v1/namespaces/default/configmaps/owner-f?orphanDependents=False",
    )
    .body(Vec::new())
    .unwrap();
    cp.client().request::<serde_json::Value>(req).await.unwrap();
    assert!(cms.get_opt("child-f").await.unwrap().is_none());
}

#[tokio::test]
async fn foreground_deletion_keeps_the_owner_until_blocking_dependents_are_gone() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let owner = cms
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    let mut child_meta = owned_by(&owner, true);
    child_meta["finalizers"] = json!(["example.com/slow"]);
    cms.create(&PostParams::default(), &cm("child", child_meta))
        .await
        .unwrap();
    cms.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    let waiting = cms.get("owner").await.unwrap();
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert!(
        waiting
            .finalizers()
            .contains(&"foregroundDeletion".to_string())
    );
    let child = cms.get("child").await.unwrap();
    assert!(
        child.metadata.deletion_timestamp.is_some(),
        "the dependent is being deleted"
    );
    cms.patch(
        "child",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("child").await.unwrap().is_none());
    assert!(cms.get_opt("owner").await.unwrap().is_none());
}

#[tokio::test]
async fn foreground_deletion_does_not_wait_for_non_blocking_dependents() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let owner = cms
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    let mut child_meta = owned_by(&owner, false);
    child_meta["finalizers"] = json!(["example.com/slow"]);
    cms.create(&PostParams::default(), &cm("child", child_meta))
        .await
        .unwrap();
    cms.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    assert!(cms.get_opt("owner").await.unwrap().is_none());
    assert!(
        cms.get("child")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
}

#[tokio::test]
async fn namespace_deletion_removes_its_contents_then_the_namespace() {
    let cp = control_plane();
    let client = cp.client();
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    let created = nss.create(&PostParams::default(), &ns).await.unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    cms.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    cms.create(
        &PostParams::default(),
        &cm("held", json!({"finalizers": ["example.com/hold"]})),
    )
    .await
    .unwrap();
    nss.delete("team", &DeleteParams::default()).await.unwrap();

    let terminating = nss.get("team").await.unwrap();
    assert_eq!(
        terminating.status.unwrap().phase.as_deref(),
        Some("Terminating")
    );
    assert!(cms.get_opt("a").await.unwrap().is_none());
    let err = api_error(
        cms.create(&PostParams::default(), &cm("late", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 403);
    assert_eq!(err.reason, "Forbidden");
    assert!(
        err.message.contains(
            "unable to create new content in namespace team because it is being terminated"
        )
    );

    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(nss.get_opt("team").await.unwrap().is_none());
}

/// kube-controller-manager's serviceaccounts-controller gives every namespace a ServiceAccount
/// `default` ("Service Accounts": "every namespace has a default service account"); it goes
/// with the namespace.
#[tokio::test]
async fn every_namespace_has_a_default_service_account_removed_with_the_namespace() {
    let cp = control_plane();
    let client = cp.client();
    let default_sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    assert!(default_sas.get_opt("default").await.unwrap().is_some());
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    nss.create(&PostParams::default(), &ns).await.unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "team");
    let names: Vec<String> = sas
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(names, ["default"]);

    nss.delete("team", &DeleteParams::default()).await.unwrap();
    assert!(nss.get_opt("team").await.unwrap().is_none());
    let all: Api<ServiceAccount> = Api::all(client);
    let left: Vec<String> = all
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|sa| sa.namespace())
        .filter(|ns| ns == "team")
        .collect();
    assert!(left.is_empty(), "the namespace's ServiceAccount is gone");
}

#[tokio::test]
async fn delete_collection_deletes_only_matching_objects() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    cms.create(
        &PostParams::default(),
        &cm("a", json!({"labels": {"app": "x"}})),
    )
    .await
    .unwrap();
    cms.create(
        &PostParams::default(),
        &cm("b", json!({"labels": {"app": "x"}})),
    )
    .await
    .unwrap();
    cms.create(
        &PostParams::default(),
        &cm("c", json!({"labels": {"app": "y"}})),
    )
    .await
    .unwrap();
    cms.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("app=x"),
    )
    .await
    .unwrap();
    let left: Vec<String> = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    assert_eq!(left, ["c"]);
}

#[tokio::test]
async fn delete_with_a_wrong_uid_precondition_is_a_conflict() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    cms.create(&PostParams::default(), &cm("p", json!({})))
        .await
        .unwrap();
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let err = api_error(cms.delete("p", &dp).await.unwrap_err());
    assert_eq!(err.code, 409);
    assert!(cms.get_opt("p").await.unwrap().is_some());
}

#[tokio::test]
async fn deleting_a_crd_deletes_its_custom_resources_and_stops_serving_them() {
    let cp = control_plane();
    let client = cp.client();
    let ws = widgets(&client, "default").await;
    ws.create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    assert!(crds.get_opt("widgets.example.com").await.unwrap().is_none());
    let err = api_error(ws.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(err.code, 404);
    let _ = PropagationPolicy::Background;
}

#[tokio::test]
async fn dry_run_delete_keeps_the_object() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    cms.create(&PostParams::default(), &cm("keep", json!({})))
        .await
        .unwrap();
    let dp = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    cms.delete("keep", &dp).await.unwrap();
    assert!(cms.get_opt("keep").await.unwrap().is_some());
}

#[tokio::test]
async fn the_default_namespace_may_not_be_deleted() {
    let cp = control_plane();
    let nss: Api<Namespace> = Api::all(cp.client());
    let err = api_error(
        nss.delete("default", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        "namespaces \"default\" is forbidden: this namespace may not be deleted"
    );
}

#[tokio::test]
async fn deleting_a_pod_answers_with_the_deleted_pod() {
    use k8s_openapi::api::core::v1::Pod;
    let cp = control_plane();
    let pods: Api<Pod> = Api::default_namespaced(cp.client());
    let p: Pod = serde_json::from_value(
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}),
    )
    .unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    let res = pods.delete("p", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        res.left().expect("the pod").metadata.name.as_deref(),
        Some("p")
    );
}
