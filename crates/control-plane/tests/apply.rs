//! Server-side apply ("Server-Side Apply" in the Kubernetes docs): field managers, managedFields,
//! conflicts and `force`, apply creating objects, and schema validation of custom resources.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use common::*;

fn cm_config(data: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": data})
}

#[tokio::test]
async fn apply_creates_a_missing_object_and_records_the_manager() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let out = cms
        .patch(
            "cfg",
            &PatchParams::apply("tool-a"),
            &Patch::Apply(cm_config(json!({"a": "1"}))),
        )
        .await
        .unwrap();
    let mf = out.metadata.managed_fields.unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some("tool-a"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
}

#[tokio::test]
async fn applying_the_same_configuration_again_changes_nothing() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let pp = PatchParams::apply("tool-a");
    let first = cms
        .patch("cfg", &pp, &Patch::Apply(cm_config(json!({"a": "1"}))))
        .await
        .unwrap();
    let second = cms
        .patch("cfg", &pp, &Patch::Apply(cm_config(json!({"a": "1"}))))
        .await
        .unwrap();
    assert_eq!(
        first.metadata.resource_version,
        second.metadata.resource_version
    );
}

#[tokio::test]
async fn applying_a_field_owned_by_another_manager_is_a_409_conflict() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    cms.patch(
        "cfg",
        &PatchParams::apply("tool-a"),
        &Patch::Apply(cm_config(json!({"a": "1"}))),
    )
    .await
    .unwrap();
    let err = api_error(
        cms.patch(
            "cfg",
            &PatchParams::apply("tool-b"),
            &Patch::Apply(cm_config(json!({"a": "2"}))),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"tool-a\": .data.a"
    );
    let causes = err.details.unwrap().causes;
    assert_eq!(causes[0].reason, "FieldManagerConflict");
    assert_eq!(causes[0].field, ".data.a");
}

#[tokio::test]
async fn forced_apply_takes_ownership_of_conflicting_fields() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    cms.patch(
        "cfg",
        &PatchParams::apply("tool-a"),
        &Patch::Apply(cm_config(json!({"a": "1"}))),
    )
    .await
    .unwrap();
    let out = cms
        .patch(
            "cfg",
            &PatchParams::apply("tool-b").force(),
            &Patch::Apply(cm_config(json!({"a": "2"}))),
        )
        .await
        .unwrap();
    assert_eq!(out.data.unwrap()["a"], "2");
    let managers: Vec<String> = out
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(managers.contains(&"tool-b".to_string()));
}

#[tokio::test]
async fn fields_a_manager_stops_applying_are_removed() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let pp = PatchParams::apply("tool-a");
    cms.patch(
        "cfg",
        &pp,
        &Patch::Apply(cm_config(json!({"a": "1", "b": "2"}))),
    )
    .await
    .unwrap();
    let out = cms
        .patch("cfg", &pp, &Patch::Apply(cm_config(json!({"a": "1"}))))
        .await
        .unwrap();
    assert_eq!(out.data.unwrap().len(), 1);
}

#[tokio::test]
async fn apply_without_a_field_manager_is_invalid() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let res = cms
        .patch(
            "cfg",
            &PatchParams::default(),
            &Patch::Apply(cm_config(json!({}))),
        )
        .await;
    // kube-rs refuses client-side; the raw request gets the apiserver's 422.
    assert!(res.is_err());
    let req = http::Request::patch("/api/v1/namespaces/default/configmaps/cfg")
        .header(http::header::CONTENT_TYPE, "application/apply-patch+yaml")
        .body(serde_json::to_vec(&cm_config(json!({}))).unwrap())
        .unwrap();
    let err = api_error(
        cp.client()
            .request::<serde_json::Value>(req)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
}

/// `ValidatePatchOptions` runs before the manager is defaulted from the user agent, so an
/// apply from a client that names itself (the Python client's `OpenAPI-Generator/...`) but
/// sets no `fieldManager` gets the apiserver's 422, not an apply under its product name.
#[tokio::test]
async fn apply_requires_a_field_manager_even_when_the_user_agent_names_the_client() {
    let cp = control_plane();
    let req = http::Request::patch("/api/v1/namespaces/default/configmaps/cfg")
        .header(http::header::CONTENT_TYPE, "application/apply-patch+yaml")
        .header(http::header::USER_AGENT, "OpenAPI-Generator/37.0.3/python")
        .body(serde_json::to_vec(&cm_config(json!({"a": "1"}))).unwrap())
        .unwrap();
    let err = api_error(
        cp.client()
            .request::<serde_json::Value>(req)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert_eq!(err.reason, "Invalid");
    assert_eq!(
        err.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    assert!(
        cms.get_opt("cfg").await.unwrap().is_none(),
        "nothing applied"
    );
}

/// Boolean query parameters are read as the apiserver's parameter codec reads them: anything
/// but `0`/`false` (any case) is true, so `force=True` (Python clients up to 36.x) forces.
#[tokio::test]
async fn force_true_in_any_case_takes_over_conflicting_fields() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    cms.patch(
        "cfg",
        &PatchParams::apply("tool-a"),
        &Patch::Apply(cm_config(json!({"a": "1"}))),
    )
    .await
    .unwrap();
    for (manager, force, value) in [("tool-b", "True", "2"), ("tool-c", "TRUE", "3")] {
        let req = http::Request::patch(format!(
            "/api/v1/namespaces/default/configmaps/cfg?fieldManager={manager}&force={force}"
        ))
        .header(http::header::CONTENT_TYPE, "application/apply-patch+yaml")
        .body(serde_json::to_vec(&cm_config(json!({"a": value}))).unwrap())
        .unwrap();
        let out: ConfigMap = cp.client().request(req).await.unwrap();
        assert_eq!(out.data.unwrap()["a"], value, "force={force}");
    }
    // `False` is false: the conflict is reported.
    let req = http::Request::patch(
        "/api/v1/namespaces/default/configmaps/cfg?fieldManager=tool-d&force=False",
    )
    .header(http::header::CONTENT_TYPE, "application/apply-patch+yaml")
    .body(serde_json::to_vec(&cm_config(json!({"a": "4"}))).unwrap())
    .unwrap();
    let err = api_error(
        cp.client()
            .request::<serde_json::Value>(req)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
}

#[tokio::test]
async fn non_apply_writes_are_recorded_as_update_operations() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "u"}, "data": {"a": "1"}})).unwrap();
    let pp = PostParams {
        field_manager: Some("writer".into()),
        ..Default::default()
    };
    let out = cms.create(&pp, &cm).await.unwrap();
    let mf = out.metadata.managed_fields.unwrap();
    assert_eq!(mf[0].manager.as_deref(), Some("writer"));
    assert_eq!(mf[0].operation.as_deref(), Some("Update"));
}

#[tokio::test]
async fn status_apply_through_the_subresource_is_recorded_with_subresource_status() {
    let cp = control_plane();
    let ws = widgets(&cp.client(), "default").await;
    ws.create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let status = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "status": {"phase": "Ready"}});
    let out = ws
        .patch_status(
            "w",
            &PatchParams::apply("ctrl").force(),
            &Patch::Apply(status),
        )
        .await
        .unwrap();
    assert_eq!(out.data["status"]["phase"], "Ready");
    let mf = out.metadata.managed_fields.unwrap();
    let ctrl = mf
        .iter()
        .find(|m| m.manager.as_deref() == Some("ctrl"))
        .unwrap();
    assert_eq!(ctrl.subresource.as_deref(), Some("status"));
}

#[tokio::test]
async fn custom_resources_violating_the_schema_are_422_with_the_apiserver_message() {
    let cp = control_plane();
    let ws = widgets(&cp.client(), "default").await;
    let err = api_error(
        ws.create(&PostParams::default(), &widget("neg", -1))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        "Widget.example.com \"neg\" is invalid: spec.size: Invalid value: -1: spec.size in body should be greater than or equal to 0"
    );
}

#[tokio::test]
async fn schema_defaults_are_applied_on_create() {
    let cp = control_plane();
    let ws = widgets(&cp.client(), "default").await;
    let out = ws
        .create(&PostParams::default(), &widget("d", 1))
        .await
        .unwrap();
    assert_eq!(out.data["spec"]["colour"], "blue");
}

#[tokio::test]
async fn unknown_fields_are_pruned_with_a_warning_or_refused_in_strict_mode() {
    let cp = control_plane();
    let ws = widgets(&cp.client(), "default").await;
    let mut w = widget("u", 1);
    w.data["spec"]["bogus"] = json!(true);
    let out = ws.create(&PostParams::default(), &w).await.unwrap();
    assert!(out.data["spec"].get("bogus").is_none(), "pruned");
    let mut w2 = widget("u2", 1);
    w2.data["spec"]["bogus"] = json!(true);
    let req = http::Request::post(
        "/apis/example.com/v1/namespaces/default/widgets?fieldValidation=Strict",
    )
    .header(http::header::CONTENT_TYPE, "application/json")
    .body(serde_json::to_vec(&w2).unwrap())
    .unwrap();
    let err = api_error(
        cp.client()
            .request::<serde_json::Value>(req)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);
    assert_eq!(
        err.message,
        "strict decoding error: unknown field \"spec.bogus\""
    );
}

fn deployment(containers: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}}}
    })
}

#[tokio::test]
async fn apply_merges_containers_by_name_between_managers() {
    use k8s_openapi::api::apps::v1::Deployment;
    let cp = control_plane();
    let deploys: Api<Deployment> = Api::default_namespaced(cp.client());
    deploys
        .patch(
            "web",
            &PatchParams::apply("a"),
            &Patch::Apply(deployment(json!([{"name": "app", "image": "app:1"}]))),
        )
        .await
        .unwrap();
    let out = deploys
        .patch(
            "web",
            &PatchParams::apply("b"),
            &Patch::Apply(deployment(json!([{"name": "sidecar", "image": "proxy:1"}]))),
        )
        .await
        .unwrap();
    let names: Vec<String> = out
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(names, ["app", "sidecar"]);
}

#[tokio::test]
async fn strategic_merge_patch_merges_containers_by_name() {
    use k8s_openapi::api::apps::v1::Deployment;
    let cp = control_plane();
    let deploys: Api<Deployment> = Api::default_namespaced(cp.client());
    let d: Deployment = serde_json::from_value(deployment(json!([
        {"name": "app", "image": "app:1"}, {"name": "sidecar", "image": "proxy:1"}
    ])))
    .unwrap();
    deploys.create(&PostParams::default(), &d).await.unwrap();
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "proxy:2"}]}}}});
    let out = deploys
        .patch("web", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    let containers = out.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0].image.as_deref(), Some("app:1"));
    assert_eq!(containers[1].image.as_deref(), Some("proxy:2"));
}

/// A CRD as two tools write it: `maximum: 100.0` (a float, as kube-rs serialises a schema's
/// bounds) and `maximum: 100` (as Go re-encodes the same float, what helm sends).
fn crd_with_maximum(maximum: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "size": {"type": "integer", "minimum": 0.0, "maximum": maximum}
                    }}
                }}}
            }]
        }
    })
}

#[tokio::test]
async fn a_float_with_an_integral_value_is_the_same_integer_to_another_manager() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let cp = control_plane();
    let crds: Api<CustomResourceDefinition> = Api::all(cp.client());
    let first = crds
        .patch(
            "widgets.example.com",
            &PatchParams::apply("kube-rs-tool"),
            &Patch::Apply(crd_with_maximum(json!(100.0))),
        )
        .await
        .unwrap();
    let raw: Api<kube::api::DynamicObject> = Api::all_with(
        cp.client(),
        &kube::api::ApiResource::erase::<CustomResourceDefinition>(&()),
    );
    let raw = raw.get("widgets.example.com").await.unwrap().data;
    let stored = &raw["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["size"];
    assert_eq!(
        stored["maximum"].to_string(),
        "100",
        "stored as the apiserver re-encodes it"
    );
    assert_eq!(stored["minimum"].to_string(), "0");
    let second = crds
        .patch(
            "widgets.example.com",
            &PatchParams::apply("helm"),
            &Patch::Apply(crd_with_maximum(json!(100))),
        )
        .await
        .expect("the same value from another manager is no conflict");
    assert_eq!(
        first.metadata.generation, second.metadata.generation,
        "and no change of the spec (the second manager only joins managedFields)"
    );
}
