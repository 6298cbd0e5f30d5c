//! APIs the conformance suite found missing, each named after the Kubernetes behaviour it
//! follows: autoscaling/v1, RuntimeClass, APIService and CertificateSigningRequest served;
//! SelfSubjectAccessReview / SelfSubjectReview answered for the local admin; kubectl's
//! columns (`-o wide`, DaemonSet, PVC, Service EXTERNAL-IP); the OpenAPI v3 schemas of
//! built-in kinds that `kubectl explain` reads.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use serde_json::{Value, json};

use common::*;

async fn send(client: &kube::Client, req: http::Request<Vec<u8>>) -> Result<Value, kube::Error> {
    client.request::<Value>(req).await
}

fn get(path: &str, accept: Option<&str>) -> http::Request<Vec<u8>> {
    let mut req = http::Request::get(path);
    if let Some(a) = accept {
        req = req.header(http::header::ACCEPT, a);
    }
    req.body(Vec::new()).unwrap()
}

fn post(path: &str, body: &Value) -> http::Request<Vec<u8>> {
    http::Request::post(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(body).unwrap())
        .unwrap()
}

#[tokio::test]
async fn autoscaling_v1_serves_the_same_horizontal_pod_autoscalers_as_v2() {
    let cp = control_plane();
    let client = cp.client();
    let hpa = json!({
        "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 70}
    });
    let created = send(
        &client,
        post(
            "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers",
            &hpa,
        ),
    )
    .await
    .unwrap();
    assert_eq!(created["apiVersion"], "autoscaling/v1");
    assert_eq!(created["spec"]["targetCPUUtilizationPercentage"], 70);
    let v2 = send(
        &client,
        get(
            "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/web",
            None,
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        v2["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}])
    );
    let group = send(&client, get("/apis/autoscaling", None)).await.unwrap();
    let versions: Vec<&str> = group["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["version"].as_str())
        .collect();
    assert_eq!(versions, ["v2", "v1"], "v2 preferred, v1 served");
}

#[tokio::test]
async fn runtime_classes_api_services_and_certificate_signing_requests_are_served() {
    let cp = control_plane();
    let client = cp.client();
    for (path, body) in [
        (
            "/apis/node.k8s.io/v1/runtimeclasses",
            json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "gvisor"}, "handler": "runsc"}),
        ),
        (
            "/apis/apiregistration.k8s.io/v1/apiservices",
            json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1beta1.metrics.k8s.io"},
                   "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100, "versionPriority": 100}}),
        ),
        (
            "/apis/certificates.k8s.io/v1/certificatesigningrequests",
            json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": "alice"},
                   "spec": {"request": "LS0tLQ==", "signerName": "kubernetes.io/kube-apiserver-client", "usages": ["client auth"]}}),
        ),
    ] {
        let created = send(&client, post(path, &body)).await.unwrap();
        assert_eq!(created["kind"], body["kind"], "{path}");
        let name = body["metadata"]["name"].as_str().unwrap();
        let got = send(&client, get(&format!("{path}/{name}"), None))
            .await
            .unwrap();
        assert_eq!(got["metadata"]["uid"], created["metadata"]["uid"]);
    }
}

/// `kubectl auth can-i`: the apiserver answers a SelfSubjectAccessReview with its decision;
/// this control plane does no authorization, so its admin may do anything. Nothing is stored.
#[tokio::test]
async fn self_subject_access_review_answers_allowed_for_the_local_admin() {
    let cp = control_plane();
    let client = cp.client();
    let review = json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "delete", "resource": "secrets", "namespace": "default"}}
    });
    let out = send(
        &client,
        post(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            &review,
        ),
    )
    .await
    .unwrap();
    assert_eq!(out["status"]["allowed"], true);
    assert_eq!(
        out["spec"], review["spec"],
        "the review is returned with its spec"
    );
    let list = send(
        &client,
        get(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            None,
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(
        api_error(list).code,
        405,
        "reviews are created, never listed"
    );
    let resources = send(&client, get("/apis/authorization.k8s.io/v1", None))
        .await
        .unwrap();
    let ssar = resources["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "selfsubjectaccessreviews")
        .unwrap();
    assert_eq!(ssar["verbs"], json!(["create"]));
}

/// `kubectl auth whoami`: a SelfSubjectReview returns the user the request was authenticated as.
#[tokio::test]
async fn self_subject_review_returns_the_authenticated_user() {
    let cp = control_plane();
    let out = send(
        &cp.client(),
        post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(out["status"]["userInfo"]["username"], "upstart-admin");
    assert!(
        out["status"]["userInfo"]["groups"]
            .as_array()
            .unwrap()
            .contains(&json!("system:masters"))
    );
}

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// The column names of a Table and its first row's cells, by name.
fn columns(table: &Value) -> Vec<(String, i64, Value)> {
    let defs = table["columnDefinitions"].as_array().unwrap();
    let cells = table["rows"][0]["cells"].as_array().unwrap();
    defs.iter()
        .zip(cells)
        .map(|(d, c)| {
            (
                d["name"].as_str().unwrap().to_string(),
                d["priority"].as_i64().unwrap(),
                c.clone(),
            )
        })
        .collect()
}

/// kubectl's service printer: EXTERNAL-IP (`<pending>` for a LoadBalancer without ingress),
/// and with `-o wide` the selector, after Age.
#[tokio::test]
async fn service_table_has_external_ip_and_a_wide_selector_column() {
    let cp = control_plane();
    let client = cp.client();
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]}});
    send(&client, post("/api/v1/namespaces/default/services", &svc))
        .await
        .unwrap();
    let table = send(
        &client,
        get("/api/v1/namespaces/default/services", Some(TABLE)),
    )
    .await
    .unwrap();
    let cols = columns(&table);
    let names: Vec<&str> = cols.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "Name",
            "Type",
            "Cluster-IP",
            "External-IP",
            "Port(s)",
            "Age",
            "Selector"
        ]
    );
    assert_eq!(cols[3].2, "<pending>");
    assert_eq!(cols[6], ("Selector".to_string(), 1, json!("app=web")));
}

#[tokio::test]
async fn daemonset_pvc_and_deployment_tables_have_kubectls_columns() {
    let cp = control_plane();
    let client = cp.client();
    let template = json!({"metadata": {"labels": {"app": "a"}},
        "spec": {"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "c", "image": "busybox:1"}]}});
    let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "a"},
        "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": template}});
    send(
        &client,
        post("/apis/apps/v1/namespaces/default/daemonsets", &ds),
    )
    .await
    .unwrap();
    let table = send(
        &client,
        get("/apis/apps/v1/namespaces/default/daemonsets", Some(TABLE)),
    )
    .await
    .unwrap();
    let cols = columns(&table);
    let names: Vec<&str> = cols.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "Name",
            "Desired",
            "Current",
            "Ready",
            "Up-to-date",
            "Available",
            "Node Selector",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(cols[6].2, "disk=ssd");
    assert_eq!(cols[9].2, "busybox:1");
    assert_eq!(cols[10].2, "app=a");

    let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                 "resources": {"requests": {"storage": "1Gi"}}}});
    send(
        &client,
        post("/api/v1/namespaces/default/persistentvolumeclaims", &pvc),
    )
    .await
    .unwrap();
    let table = send(
        &client,
        get(
            "/api/v1/namespaces/default/persistentvolumeclaims",
            Some(TABLE),
        ),
    )
    .await
    .unwrap();
    let cols = columns(&table);
    let names: Vec<&str> = cols.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "Name",
            "Status",
            "Volume",
            "Capacity",
            "Access Modes",
            "StorageClass",
            "VolumeAttributesClass",
            "Age",
            "VolumeMode"
        ]
    );
    assert_eq!(cols[4].2, "RWO");
    assert_eq!(cols[5].2, "standard");
}

/// `kubectl explain` reads the schema of a kind from the OpenAPI v3 document of its group
/// version: the built-in kinds carry their full schema, tagged with their GVK.
#[tokio::test]
async fn openapi_v3_describes_built_in_kinds_for_kubectl_explain() {
    let cp = control_plane();
    let doc = send(&cp.client(), get("/openapi/v3/apis/apps/v1", None))
        .await
        .unwrap();
    let schemas = &doc["components"]["schemas"];
    let deployment = &schemas["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        deployment["x-kubernetes-group-version-kind"],
        json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
    );
    let spec_ref = deployment["properties"]["spec"]["$ref"]
        .as_str()
        .or_else(|| deployment["properties"]["spec"]["allOf"][0]["$ref"].as_str())
        .unwrap();
    assert_eq!(
        spec_ref,
        "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"
    );
    assert_eq!(
        schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["replicas"]["type"],
        "integer"
    );
    assert!(schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"].is_object());
}

/// A ServiceAccount's token is a different user: `kubectl auth whoami` names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_subject_review_names_the_service_account_a_token_belongs_to() {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    use kube::api::{Api, PostParams};

    let cp = control_plane();
    let endpoint = cp
        .serve_https("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    endpoint.enable_service_account_tokens();
    let accounts: Api<ServiceAccount> = Api::namespaced(cp.client(), "default");
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "robot"}})).unwrap(),
        )
        .await
        .unwrap();
    let admin = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::from_yaml(&endpoint.kubeconfig_yaml()).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let issued = Api::<ServiceAccount>::namespaced(admin, "default")
        .create_token_request(
            "robot",
            &PostParams::default(),
            &TokenRequest {
                spec: TokenRequestSpec::default(),
                ..TokenRequest::default()
            },
        )
        .await
        .unwrap();
    let token = issued.status.unwrap().token;
    let kubeconfig = endpoint.kubeconfig_yaml().replace(endpoint.token(), &token);
    let robot = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::from_yaml(&kubeconfig).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let out = send(
        &robot,
        post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        out["status"]["userInfo"]["username"],
        "system:serviceaccount:default:robot"
    );
}
