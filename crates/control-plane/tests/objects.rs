//! Create, update, patch and status semantics, checked against the Kubernetes API documentation
//! ("API Concepts", "Object Names and IDs", "Kubernetes API: resource versions", subresources).

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use common::*;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

#[tokio::test]
async fn generate_name_gets_a_random_five_character_suffix() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let obj: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "job-"}})).unwrap();
    let a = cms.create(&PostParams::default(), &obj).await.unwrap();
    let b = cms.create(&PostParams::default(), &obj).await.unwrap();
    let (a, b) = (a.metadata.name.unwrap(), b.metadata.name.unwrap());
    assert!(a.starts_with("job-") && a.len() == 9, "{a}");
    assert_ne!(a, b);
}

#[tokio::test]
async fn creating_an_object_whose_name_exists_is_refused_with_409_already_exists() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    cms.create(&PostParams::default(), &cm("dup"))
        .await
        .unwrap();
    let err = api_error(
        cms.create(&PostParams::default(), &cm("dup"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "AlreadyExists");
    assert_eq!(err.message, "configmaps \"dup\" already exists");
}

#[tokio::test]
async fn names_that_are_not_dns_subdomains_are_refused_with_422_invalid() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let err = api_error(
        cms.create(&PostParams::default(), &cm("Not_Valid"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert_eq!(err.reason, "Invalid");
    assert!(
        err.message.starts_with("ConfigMap \"Not_Valid\" is invalid: metadata.name: Invalid value: \"Not_Valid\": a lowercase RFC 1123 subdomain"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn update_with_stale_resource_version_is_refused_with_409() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let first = cms.create(&PostParams::default(), &cm("c")).await.unwrap();
    let mut newer = first.clone();
    newer.data = Some([("k".to_string(), "2".to_string())].into());
    cms.replace("c", &PostParams::default(), &newer)
        .await
        .unwrap();
    let mut stale = first;
    stale.data = Some([("k".to_string(), "3".to_string())].into());
    let err = api_error(
        cms.replace("c", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert_eq!(
        err.message,
        "Operation cannot be fulfilled on configmaps \"c\": the object has been modified; please apply your changes to the latest version and try again"
    );
}

#[tokio::test]
async fn updating_a_missing_object_is_refused_with_404() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let err = api_error(
        cms.replace("ghost", &PostParams::default(), &cm("ghost"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 404);
    assert_eq!(err.message, "configmaps \"ghost\" not found");
}

#[tokio::test]
async fn custom_resource_update_without_resource_version_is_invalid() {
    let cp = control_plane();
    let ws = widgets(&cp.client(), "default").await;
    ws.create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let err = api_error(
        ws.replace("w", &PostParams::default(), &widget("w", 2))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message.contains(
            "metadata.resourceVersion: Invalid value: \"0x0\": must be specified for an update"
        ),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn resource_versions_increase_monotonically_across_kinds() {
    let cp = control_plane();
    let client = cp.client();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let ws = widgets(&client, "default").await;
    let a = cms.create(&PostParams::default(), &cm("a")).await.unwrap();
    let w = ws
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let b = cms.create(&PostParams::default(), &cm("b")).await.unwrap();
    let rv =
        |m: &kube::api::ObjectMeta| m.resource_version.clone().unwrap().parse::<u64>().unwrap();
    assert!(rv(&a.metadata) < rv(&w.metadata));
    assert!(rv(&w.metadata) < rv(&b.metadata));
}

#[tokio::test]
async fn generation_changes_only_when_the_spec_changes() {
    let cp = control_plane();
    let ws = widgets(&cp.client(), "default").await;
    ws.create(&PostParams::default(), &widget("g", 1))
        .await
        .unwrap();
    let labelled = ws
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(1));
    let status = ws
        .patch_status(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready"}})),
        )
        .await
        .unwrap();
    assert_eq!(status.metadata.generation, Some(1));
    let spec = ws
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(spec.metadata.generation, Some(2));
}

#[tokio::test]
async fn main_endpoint_ignores_status_for_kinds_with_a_status_subresource() {
    let cp = control_plane();
    let ws = widgets(&cp.client(), "default").await;
    let mut w = widget("s", 1);
    w.data["status"] = json!({"phase": "Set-on-create"});
    let created = ws.create(&PostParams::default(), &w).await.unwrap();
    assert!(
        created.data.get("status").is_none(),
        "status is dropped on create"
    );
    let patched = ws
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "X"}, "spec": {"size": 2}})),
        )
        .await
        .unwrap();
    assert!(patched.data.get("status").is_none());
    assert_eq!(patched.data["spec"]["size"], 2);
}

#[tokio::test]
async fn status_endpoint_ignores_everything_but_status() {
    let cp = control_plane();
    let ws = widgets(&cp.client(), "default").await;
    ws.create(&PostParams::default(), &widget("s", 1))
        .await
        .unwrap();
    let patched = ws
        .patch_status(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready"}, "spec": {"size": 7}, "metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data["status"]["phase"], "Ready");
    assert_eq!(patched.data["spec"]["size"], 1);
    assert!(patched.metadata.labels.is_none());
}

#[tokio::test]
async fn deployment_generation_and_status_follow_the_same_rules() {
    let cp = control_plane();
    let deploys: Api<Deployment> = Api::default_namespaced(cp.client());
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    }))
    .unwrap();
    let created = deploys.create(&PostParams::default(), &d).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let scaled = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.metadata.generation, Some(2));
    let st = deploys
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"readyReplicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(st.metadata.generation, Some(2));
    assert_eq!(st.status.unwrap().ready_replicas, Some(3));
}

#[tokio::test]
async fn a_no_op_update_keeps_the_resource_version() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let created = cms
        .create(&PostParams::default(), &cm("same"))
        .await
        .unwrap();
    let again = cms
        .replace("same", &PostParams::default(), &created)
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        created.metadata.resource_version
    );
}

#[tokio::test]
async fn dry_run_create_validates_and_returns_the_object_but_stores_nothing() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let returned = cms.create(&pp, &cm("dry")).await.unwrap();
    assert_eq!(returned.metadata.name.as_deref(), Some("dry"));
    assert!(cms.get_opt("dry").await.unwrap().is_none());
    let err = api_error(cms.create(&pp, &cm("Bad_Name")).await.unwrap_err());
    assert_eq!(err.code, 422);
}

#[tokio::test]
async fn json_patch_applies_operations_in_order() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    cms.create(&PostParams::default(), &cm("jp")).await.unwrap();
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "add", "path": "/data/extra", "value": "1"},
        {"op": "remove", "path": "/data/k"}
    ]))
    .unwrap();
    let out = cms
        .patch("jp", &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .unwrap();
    let data = out.data.unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data["extra"], "1");
}

#[tokio::test]
async fn strategic_merge_patch_of_a_custom_resource_is_unsupported_media_type() {
    let cp = control_plane();
    let ws = widgets(&cp.client(), "default").await;
    ws.create(&PostParams::default(), &widget("smp", 1))
        .await
        .unwrap();
    let err = api_error(
        ws.patch(
            "smp",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 415);
}

#[tokio::test]
async fn objects_cannot_be_created_in_a_missing_namespace() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::namespaced(cp.client(), "nowhere");
    let err = api_error(
        cms.create(&PostParams::default(), &cm("x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 404);
    assert_eq!(err.message, "namespaces \"nowhere\" not found");
}

#[tokio::test]
async fn secret_string_data_is_stored_base64_encoded_in_data() {
    use k8s_openapi::api::core::v1::Secret;
    let cp = control_plane();
    let secrets: Api<Secret> = Api::default_namespaced(cp.client());
    let s: Secret = serde_json::from_value(
        json!({"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}),
    )
    .unwrap();
    let out = secrets.create(&PostParams::default(), &s).await.unwrap();
    assert!(out.string_data.is_none());
    assert_eq!(out.data.unwrap()["password"].0, b"hunter2");
    assert_eq!(out.type_.as_deref(), Some("Opaque"));
}

#[tokio::test]
async fn data_of_an_immutable_configmap_cannot_change() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let c: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "frozen"}, "data": {"a": "1"}, "immutable": true}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &c).await.unwrap();
    let err = api_error(
        cms.patch(
            "frozen",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": "2"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .contains("field is immutable when `immutable` is set"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn invalid_label_values_are_refused_with_422() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let c: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "l", "labels": {"app": "-bad-"}}}))
            .unwrap();
    let err = api_error(cms.create(&PostParams::default(), &c).await.unwrap_err());
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .contains("metadata.labels: Invalid value: \"-bad-\""),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn services_get_a_cluster_ip_that_is_kept_across_updates() {
    use k8s_openapi::api::core::v1::Service;
    let cp = control_plane();
    let svcs: Api<Service> = Api::default_namespaced(cp.client());
    let s: Service = serde_json::from_value(
        json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}),
    )
    .unwrap();
    let created = svcs.create(&PostParams::default(), &s).await.unwrap();
    let spec = created.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    let ip = spec.cluster_ip.expect("allocated");
    let patched = svcs
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.unwrap().cluster_ip, Some(ip));
}

#[tokio::test]
async fn the_scale_subresource_reads_and_writes_spec_replicas() {
    use k8s_openapi::api::autoscaling::v1::Scale;
    let cp = control_plane();
    let deploys: Api<Deployment> = Api::default_namespaced(cp.client());
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    }))
    .unwrap();
    deploys.create(&PostParams::default(), &d).await.unwrap();
    let scale: Scale = deploys.get_scale("web").await.unwrap();
    assert_eq!(
        scale.spec.unwrap().replicas,
        Some(1),
        "replicas default to 1"
    );
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=web"));
    let scaled = deploys
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(4));
    let after = deploys.get("web").await.unwrap();
    assert_eq!(after.spec.unwrap().replicas, Some(4));
    assert_eq!(after.metadata.generation, Some(2));
}

/// A length-delimited protobuf field (field numbers and lengths below 128).
fn pb(num: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![num << 3 | 2, u8::try_from(bytes.len()).unwrap()];
    out.extend_from_slice(bytes);
    out
}

fn protobuf_post(path: &str, body: Vec<u8>) -> http::Request<Vec<u8>> {
    http::Request::post(path)
        .header(
            http::header::CONTENT_TYPE,
            "application/vnd.kubernetes.protobuf",
        )
        .body(body)
        .unwrap()
}

/// client-go's typed clients (kubectl's `create deployment|job|role|...`) send protobuf; the
/// apiserver reads it for every built-in kind.
#[tokio::test]
async fn protobuf_bodies_of_built_in_kinds_are_decoded_like_json() {
    let cp = control_plane();
    let labels = pb(11, &[pb(1, b"app"), pb(2, b"web")].concat());
    let container = [pb(1, b"nginx"), pb(2, b"nginx:1")].concat();
    let template = [pb(1, &labels), pb(2, &pb(2, &container))].concat();
    let spec = [
        vec![1 << 3, 2], // replicas: 2
        pb(2, &pb(1, &[pb(1, b"app"), pb(2, b"web")].concat())),
        pb(3, &template),
    ]
    .concat();
    let raw = [pb(1, &pb(1, b"web")), pb(2, &spec)].concat();
    let body = [
        b"k8s\0".to_vec(),
        pb(1, &[pb(1, b"apps/v1"), pb(2, b"Deployment")].concat()),
        pb(2, &raw),
    ]
    .concat();
    let created: serde_json::Value = cp
        .client()
        .request(protobuf_post(
            "/apis/apps/v1/namespaces/default/deployments",
            body,
        ))
        .await
        .unwrap();
    assert_eq!(created["spec"]["replicas"], 2);
    assert_eq!(
        created["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1"
    );
    let deployments: Api<Deployment> = Api::default_namespaced(cp.client());
    let got = deployments.get("web").await.unwrap();
    assert_eq!(
        got.spec.unwrap().selector.match_labels.unwrap()["app"],
        "web"
    );
}

#[tokio::test]
async fn protobuf_bodies_of_custom_resources_are_refused_with_415() {
    let cp = control_plane();
    common::widgets(&cp.client(), "default").await;
    let body = [
        b"k8s\0".to_vec(),
        pb(1, &[pb(1, b"example.com/v1"), pb(2, b"Widget")].concat()),
        pb(2, &pb(1, &pb(1, b"w"))),
    ]
    .concat();
    let err = api_error(
        cp.client()
            .request::<serde_json::Value>(protobuf_post(
                "/apis/example.com/v1/namespaces/default/widgets",
                body,
            ))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 415);
    assert!(
        err.message.contains("custom resource Widget"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn a_malformed_protobuf_body_is_a_bad_request_naming_the_kind() {
    let cp = control_plane();
    // A field claiming 100 bytes where there are 2.
    let body = [b"k8s\0".to_vec(), vec![2 << 3 | 2, 100, 0, 0]].concat();
    let err = api_error(
        cp.client()
            .request::<serde_json::Value>(protobuf_post(
                "/apis/apps/v1/namespaces/default/deployments",
                body,
            ))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400, "{}", err.message);
    assert!(err.message.contains("Deployment"), "{}", err.message);
}

#[tokio::test]
async fn creating_an_object_that_carries_a_resource_version_is_refused() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let mut c = cm("rv");
    c.metadata.resource_version = Some("42".into());
    let err = api_error(cms.create(&PostParams::default(), &c).await.unwrap_err());
    assert_eq!(err.code, 500);
    assert!(
        err.message
            .contains("resourceVersion should not be set on objects to be created")
    );
}

#[tokio::test]
async fn dry_run_update_and_patch_return_the_result_without_storing_it() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let created = cms.create(&PostParams::default(), &cm("d")).await.unwrap();
    let pp = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let out = cms
        .patch("d", &pp, &Patch::Merge(json!({"data": {"k": "changed"}})))
        .await
        .unwrap();
    assert_eq!(out.data.unwrap()["k"], "changed");
    let mut changed = created.clone();
    changed.data = Some([("k".to_string(), "replaced".to_string())].into());
    let post = PostParams {
        dry_run: true,
        ..Default::default()
    };
    cms.replace("d", &post, &changed).await.unwrap();
    let stored = cms.get("d").await.unwrap();
    assert_eq!(stored.data.unwrap()["k"], "v");
    assert_eq!(
        stored.metadata.resource_version,
        created.metadata.resource_version
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_read_modify_write_loops_never_lose_an_update() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let c: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "counter"}, "data": {"n": "0"}}))
            .unwrap();
    cms.create(&PostParams::default(), &c).await.unwrap();
    let writers = (0..8).map(|_| {
        let cms = cms.clone();
        tokio::spawn(async move {
            let mut conflicts = 0;
            for _ in 0..25 {
                loop {
                    let mut cur = cms.get("counter").await.unwrap();
                    let n: u32 = cur.data.as_ref().unwrap()["n"].parse().unwrap();
                    cur.data = Some([("n".to_string(), (n + 1).to_string())].into());
                    match cms.replace("counter", &PostParams::default(), &cur).await {
                        Ok(_) => break,
                        Err(kube::Error::Api(s)) if s.code == 409 => conflicts += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            conflicts
        })
    });
    let conflicts: u32 = futures::future::join_all(writers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .sum();
    let n = cms.get("counter").await.unwrap().data.unwrap()["n"].clone();
    assert_eq!(n, "200");
    let _ = conflicts;
}

#[tokio::test]
async fn a_job_template_cannot_change_after_creation() {
    use k8s_openapi::api::batch::v1::Job;
    let cp = control_plane();
    let jobs: Api<Job> = Api::default_namespaced(cp.client());
    let j: Job = serde_json::from_value(json!({
        "metadata": {"name": "migrate"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "app:1"}]}}}
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &j).await.unwrap();
    let err = api_error(
        jobs.patch(
            "migrate",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "m", "image": "app:2"}]}}}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .starts_with("Job.batch \"migrate\" is invalid: spec.template: Invalid value:"),
        "{}",
        err.message
    );
    assert!(
        err.message.ends_with("field is immutable"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn json_patch_test_for_null_passes_on_a_missing_path_and_fails_on_a_mismatch() {
    let cp = control_plane();
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    cms.create(&PostParams::default(), &cm("t")).await.unwrap();
    let add: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["a.io/x"]}
    ]))
    .unwrap();
    let out = cms
        .patch(
            "t",
            &PatchParams::default(),
            &Patch::Json::<()>(add.clone()),
        )
        .await
        .unwrap();
    assert_eq!(out.metadata.finalizers, Some(vec!["a.io/x".to_string()]));
    let err = api_error(
        cms.patch("t", &PatchParams::default(), &Patch::Json::<()>(add))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
}

#[tokio::test]
async fn unknown_fields_of_built_in_kinds_are_dropped_with_a_warning_or_refused_when_strict() {
    let cp = control_plane();
    let body = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "typo"},
        "spec": {"replicas": 1, "replica": 2, "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    });
    let req = |strict: bool| {
        let q = if strict {
            "?fieldValidation=Strict"
        } else {
            ""
        };
        http::Request::post(format!("/apis/apps/v1/namespaces/default/deployments{q}"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap()
    };
    let err = api_error(
        cp.client()
            .request::<serde_json::Value>(req(true))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);
    assert_eq!(
        err.message,
        "strict decoding error: unknown field \"spec.replica\""
    );
    let resp = cp
        .client()
        .send(req(false).map(kube::client::Body::from))
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let warning = resp
        .headers()
        .get("warning")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(warning, "299 - \"unknown field \\\"spec.replica\\\"\"");
    let stored = Api::<Deployment>::default_namespaced(cp.client())
        .get("typo")
        .await
        .unwrap();
    assert_eq!(stored.spec.unwrap().replicas, Some(1));
}

#[tokio::test]
async fn bodies_whose_metadata_does_not_decode_are_bad_requests() {
    let cp = control_plane();
    let req = http::Request::post("/api/v1/namespaces/default/configmaps")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(br#"{"metadata":{"name":"x","labels":"app=web"}}"#.to_vec())
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
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: metadata.labels must be a map of strings"
    );
}
