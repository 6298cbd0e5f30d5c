//! Discovery ("Discovering the Kubernetes API": `/api`, `/apis`, resource lists) and server-side
//! printing (Table output for `kubectl get`), for built-in groups and CRDs added at run time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::discovery::{Discovery, Scope};
use serde_json::{Value, json};

use common::*;

async fn get_json(client: &kube::Client, path: &str, accept: Option<&str>) -> Value {
    let mut req = http::Request::get(path);
    if let Some(a) = accept {
        req = req.header(http::header::ACCEPT, a);
    }
    client
        .request::<Value>(req.body(Vec::new()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn version_reports_the_configured_kubernetes_version() {
    let cp = control_plane();
    let v = cp.client().apiserver_version().await.unwrap();
    assert_eq!(v.major, "1");
    assert_eq!(v.minor, "33");
    assert!(v.git_version.starts_with("v1.33."));
}

#[tokio::test]
async fn core_v1_lists_resources_with_kinds_short_names_scope_verbs_and_subresources() {
    let cp = control_plane();
    let list = get_json(&cp.client(), "/api/v1", None).await;
    assert_eq!(list["kind"], "APIResourceList");
    let res = list["resources"].as_array().unwrap();
    let find = |n: &str| {
        res.iter()
            .find(|r| r["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("{n} missing"))
    };
    let cm = find("configmaps");
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["namespaced"], true);
    assert_eq!(cm["shortNames"], json!(["cm"]));
    assert!(cm["verbs"].as_array().unwrap().contains(&json!("watch")));
    let ns = find("namespaces");
    assert_eq!(ns["namespaced"], false);
    assert_eq!(
        find("pods/status")["verbs"],
        json!(["get", "patch", "update"])
    );
}

#[tokio::test]
async fn the_groups_typical_charts_use_are_discoverable() {
    let cp = control_plane();
    let discovery = Discovery::new(cp.client()).run().await.unwrap();
    for (group, kind, plural, namespaced) in [
        ("apps", "Deployment", "deployments", true),
        ("batch", "CronJob", "cronjobs", true),
        ("networking.k8s.io", "Ingress", "ingresses", true),
        (
            "rbac.authorization.k8s.io",
            "ClusterRole",
            "clusterroles",
            false,
        ),
        (
            "policy",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
        ),
        ("coordination.k8s.io", "Lease", "leases", true),
        ("events.k8s.io", "Event", "events", true),
        (
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
        ),
        (
            "autoscaling",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
        ),
    ] {
        let g = discovery
            .get(group)
            .unwrap_or_else(|| panic!("group {group}"));
        let (ar, caps) = g
            .recommended_resources()
            .into_iter()
            .find(|(ar, _)| ar.kind == kind)
            .unwrap_or_else(|| panic!("{kind} in {group}"));
        assert_eq!(ar.plural, plural);
        assert_eq!(caps.scope == Scope::Namespaced, namespaced, "{kind}");
    }
}

#[tokio::test]
async fn a_created_crd_is_established_and_served_with_its_status_subresource() {
    let cp = control_plane();
    let client = cp.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds
        .create(&PostParams::default(), &widget_crd())
        .await
        .unwrap();
    let conditions = crd.status.unwrap().conditions.unwrap();
    for ty in ["NamesAccepted", "Established"] {
        let c = conditions
            .iter()
            .find(|c| c.type_ == ty)
            .unwrap_or_else(|| panic!("{ty}"));
        assert_eq!(c.status, "True");
    }
    let list = get_json(&client, "/apis/example.com/v1", None).await;
    let names: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["widgets", "widgets/status"]);
    let groups = get_json(&client, "/apis", None).await;
    assert!(
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "example.com")
    );
}

#[tokio::test]
async fn a_crd_whose_name_is_not_plural_dot_group_is_invalid() {
    let cp = control_plane();
    let crds: Api<CustomResourceDefinition> = Api::all(cp.client());
    let mut crd = widget_crd();
    crd.metadata.name = Some("wrong.example.com".into());
    let err = api_error(crds.create(&PostParams::default(), &crd).await.unwrap_err());
    assert_eq!(err.code, 422);
}

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

#[tokio::test]
async fn table_output_uses_the_crd_printer_columns() {
    let cp = control_plane();
    let client = cp.client();
    let ws = widgets(&client, "default").await;
    ws.create(&PostParams::default(), &widget("w1", 7))
        .await
        .unwrap();
    let table = get_json(
        &client,
        "/apis/example.com/v1/namespaces/default/widgets",
        Some(TABLE),
    )
    .await;
    assert_eq!(table["kind"], "Table");
    let cols: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["Name", "Size", "Phase"]);
    assert_eq!(table["rows"][0]["cells"], json!(["w1", 7, null]));
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

#[tokio::test]
async fn table_output_for_built_in_kinds_ends_with_age() {
    let cp = control_plane();
    let table = get_json(&cp.client(), "/api/v1/namespaces", Some(TABLE)).await;
    let cols: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["Name", "Status", "Age"]);
    assert!(
        table["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["cells"][0] == "default")
    );
}

#[tokio::test]
async fn unknown_resources_are_404_not_found() {
    let cp = control_plane();
    let err = cp
        .client()
        .request::<Value>(
            http::Request::get("/apis/example.com/v1/namespaces/default/gadgets")
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(err).code, 404);
}

#[tokio::test]
async fn a_crd_with_a_non_structural_schema_is_invalid() {
    let cp = control_plane();
    let crds: Api<CustomResourceDefinition> = Api::all(cp.client());
    let mut crd = serde_json::to_value(widget_crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] =
        json!({"properties": {"size": {"type": "integer"}}});
    let crd: CustomResourceDefinition = serde_json::from_value(crd).unwrap();
    let err = api_error(crds.create(&PostParams::default(), &crd).await.unwrap_err());
    assert_eq!(err.code, 422);
    assert!(
        err.message.starts_with("CustomResourceDefinition.apiextensions.k8s.io \"widgets.example.com\" is invalid: spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn namespaced_resources_are_only_listed_across_namespaces() {
    let cp = control_plane();
    let client = cp.client();
    let list = get_json(&client, "/api/v1/configmaps", None).await;
    assert_eq!(list["kind"], "ConfigMapList");
    let post = http::Request::post("/api/v1/configmaps")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(br#"{"metadata":{"name":"x","namespace":"default"}}"#.to_vec())
        .unwrap();
    assert_eq!(
        api_error(client.request::<Value>(post).await.unwrap_err()).code,
        405
    );
    let get = http::Request::get("/api/v1/configmaps/x")
        .body(Vec::new())
        .unwrap();
    assert_eq!(
        api_error(client.request::<Value>(get).await.unwrap_err()).code,
        404
    );
}

#[tokio::test]
async fn table_output_for_pods_shows_ready_status_and_restarts() {
    use k8s_openapi::api::core::v1::Pod;
    let cp = control_plane();
    let client = cp.client();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let p: Pod = serde_json::from_value(
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}),
    )
    .unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    let table = get_json(&client, "/api/v1/namespaces/default/pods", Some(TABLE)).await;
    let cols: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    // The apiserver's pod printer; the last four are `-o wide` columns (priority 1).
    assert_eq!(
        cols,
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    assert_eq!(table["columnDefinitions"][5]["priority"], 1);
    assert_eq!(table["rows"][0]["cells"][1], "0/1");
    assert_eq!(table["rows"][0]["cells"][2], "Pending");
}
