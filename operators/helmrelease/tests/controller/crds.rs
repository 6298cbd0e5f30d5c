//! CRDs as Helm treats them: those of a chart's `crds/` directory are created first and never
//! updated, pruned or deleted; an object the operator may not delete (a CRD under a chart's
//! RBAC) never holds a release's teardown.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use upstart_control_plane::{Fault, Verb};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_of_the_crds_directory_is_created_first_and_never_updated_pruned_or_deleted() {
    let h = Harness::start().await;
    h.create(
        "gadgets",
        json!({"chart": "test/gadgets", "version": "0.1.0"}),
    )
    .await;
    let release = h.ready("gadgets").await;
    let inventory = release.status.unwrap().inventory;
    assert!(
        inventory
            .iter()
            .all(|e| e.kind != "CustomResourceDefinition"),
        "a crds/ CRD is not in the inventory: {inventory:?}"
    );
    assert!(inventory.iter().any(|e| e.kind == "Gadget"));

    // Edited by hand (as another release of the chart, or a human, may): never put back.
    let crds: Api<CustomResourceDefinition> = Api::all(h.client.clone());
    crds.patch(
        "gadgets.example.com",
        &PatchParams::default(),
        &Patch::Merge(json!({
            "metadata": {"labels": {"edited": "by-hand"}},
            "spec": {"names": {"singular": "thingamajig"}},
        })),
    )
    .await
    .unwrap();
    h.releases()
        .patch(
            "gadgets",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"values": {"size": 2}}})),
        )
        .await
        .unwrap();
    eventually("the upgrade", || async {
        let release = h.releases().get("gadgets").await.ok()?;
        let generation = release.metadata.generation;
        let status = release.status?;
        is_ready_for_generation(&status.conditions, generation).then_some(())
    })
    .await;
    let crd = crds.get("gadgets.example.com").await.unwrap();
    assert_eq!(
        crd.spec.names.singular.as_deref(),
        Some("thingamajig"),
        "an upgrade leaves a crds/ CRD as it is, even the fields the chart sets"
    );

    h.delete("gadgets").await;
    assert!(
        crds.get_opt("gadgets.example.com").await.unwrap().is_some(),
        "uninstalling never deletes a crds/ CRD (nor, with it, everyone's custom resources)"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_the_operator_may_not_delete_never_holds_the_teardown() {
    let h = Harness::start().await;
    h.create(
        "widgets",
        json!({"chart": "test/widgets", "version": "0.1.0"}),
    )
    .await;
    h.ready("widgets").await;
    // The operator chart's RBAC lets the operator create CRDs, not delete them.
    h.cluster.faults().inject(
        Fault::on(Verb::Delete)
            .resource("customresourcedefinitions")
            .always()
            .fail(403),
    );
    // Gone despite the 403.
    h.delete("widgets").await;
    event_with_reason(
        &h.client,
        "DeleteForbidden",
        "CustomResourceDefinition/widgets.example.com",
    )
    .await;
    let crds: Api<CustomResourceDefinition> = Api::all(h.client.clone());
    assert!(crds.get_opt("widgets.example.com").await.unwrap().is_some());
    h.stop().await;
}
