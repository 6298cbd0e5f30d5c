//! Validation and defaulting of built-in kinds, checked against what the Kubernetes 1.33 API
//! server answers: a defaulted object reads back with the server's defaults, and an invalid one
//! is refused with its 422 and the same causes (`Deployment.apps "web" is invalid: ...`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

use common::*;

fn api(client: kube::Client, group: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let version = "v1";
    let mut resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    resource.plural = plural.to_string();
    Api::namespaced_with(client, "default", &resource)
}

async fn create(api: &Api<DynamicObject>, obj: Value) -> Result<Value, kube::core::Status> {
    let obj: DynamicObject = serde_json::from_value(obj).unwrap();
    api.create(&PostParams::default(), &obj)
        .await
        .map(|o| serde_json::to_value(o).unwrap())
        .map_err(api_error)
}

fn deployment(name: &str, containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": containers}}}
    })
}

async fn refused(group: &str, kind: &str, plural: &str, obj: Value) -> kube::core::Status {
    let cp = control_plane();
    let err = create(&api(cp.client(), group, kind, plural), obj)
        .await
        .expect_err("the object is invalid");
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    err
}

#[tokio::test]
async fn a_deployment_without_containers_is_refused_with_a_required_value() {
    let err = refused(
        "apps",
        "Deployment",
        "deployments",
        deployment("web", json!([])),
    )
    .await;
    assert_eq!(
        err.message,
        "Deployment.apps \"web\" is invalid: spec.template.spec.containers: Required value"
    );
    let causes = err.details.unwrap().causes;
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].reason, "FieldValueRequired");
    assert_eq!(causes[0].field, "spec.template.spec.containers");
}

#[tokio::test]
async fn a_container_without_name_or_image_is_refused_naming_both_fields() {
    let err = refused(
        "apps",
        "Deployment",
        "deployments",
        deployment("web", json!([{"command": ["sleep"]}])),
    )
    .await;
    assert_eq!(
        err.message,
        "Deployment.apps \"web\" is invalid: [spec.template.spec.containers[0].name: Required value, spec.template.spec.containers[0].image: Required value]"
    );
}

#[tokio::test]
async fn an_unknown_image_pull_policy_is_refused_listing_the_supported_values() {
    let err = refused(
        "apps",
        "Deployment",
        "deployments",
        deployment(
            "web",
            json!([{"name": "web", "image": "nginx", "imagePullPolicy": "Sometimes"}]),
        ),
    )
    .await;
    assert_eq!(
        err.message,
        "Deployment.apps \"web\" is invalid: spec.template.spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\""
    );
    assert_eq!(
        err.details.unwrap().causes[0].reason,
        "FieldValueNotSupported"
    );
}

#[tokio::test]
async fn a_deployments_pods_must_restart_always() {
    let mut d = deployment("web", json!([{"name": "web", "image": "nginx"}]));
    d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
    let err = refused("apps", "Deployment", "deployments", d).await;
    assert_eq!(
        err.message,
        "Deployment.apps \"web\" is invalid: spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""
    );
}

#[tokio::test]
async fn a_deployment_without_a_selector_is_refused_and_its_labels_are_not_selected() {
    let mut d = deployment("web", json!([{"name": "web", "image": "nginx"}]));
    d["spec"].as_object_mut().unwrap().remove("selector");
    let err = refused("apps", "Deployment", "deployments", d).await;
    assert_eq!(
        err.message,
        "Deployment.apps \"web\" is invalid: [spec.selector: Required value, spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`]"
    );
}

#[tokio::test]
async fn an_unknown_container_port_protocol_is_refused() {
    let err = refused(
        "apps",
        "Deployment",
        "deployments",
        deployment(
            "web",
            json!([{"name": "web", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "HTTP"}]}]),
        ),
    )
    .await;
    assert_eq!(
        err.message,
        "Deployment.apps \"web\" is invalid: spec.template.spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""
    );
}

#[tokio::test]
async fn a_pod_with_an_unknown_restart_policy_is_refused() {
    let err = refused(
        "",
        "Pod",
        "pods",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"restartPolicy": "Sometimes", "containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .await;
    assert_eq!(
        err.message,
        "Pod \"p\" is invalid: spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
    );
}

#[tokio::test]
async fn a_service_port_without_a_number_is_refused_as_port_zero() {
    let err = refused(
        "",
        "Service",
        "services",
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
               "spec": {"selector": {"app": "web"}, "ports": [{"name": "http"}]}}),
    )
    .await;
    assert_eq!(
        err.message,
        "Service \"s\" is invalid: [spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive, spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive]"
    );
}

#[tokio::test]
async fn a_service_with_two_unnamed_ports_is_refused() {
    let err = refused(
        "",
        "Service",
        "services",
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
               "spec": {"ports": [{"port": 80}, {"port": 443, "protocol": "QUIC"}]}}),
    )
    .await;
    assert_eq!(
        err.message,
        "Service \"s\" is invalid: [spec.ports[0].name: Required value, spec.ports[1].name: Required value, spec.ports[1].protocol: Unsupported value: \"QUIC\": supported values: \"SCTP\", \"TCP\", \"UDP\"]"
    );
}

#[tokio::test]
async fn a_job_without_a_template_is_refused_for_its_containers_and_restart_policy() {
    let err = refused(
        "batch",
        "Job",
        "jobs",
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"}, "spec": {}}),
    )
    .await;
    assert_eq!(
        err.message,
        "Job.batch \"pi\" is invalid: [spec.template.spec.containers: Required value, spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"]"
    );
}

#[tokio::test]
async fn a_job_whose_pods_restart_by_default_is_refused() {
    let err = refused(
        "batch",
        "Job",
        "jobs",
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
               "spec": {"template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}}}),
    )
    .await;
    assert_eq!(
        err.message,
        "Job.batch \"pi\" is invalid: spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
    );
}

#[tokio::test]
async fn a_cron_job_without_a_schedule_is_refused() {
    let err = refused(
        "batch",
        "CronJob",
        "cronjobs",
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
               "spec": {"jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                        "containers": [{"name": "c", "image": "busybox"}]}}}}}}),
    )
    .await;
    assert_eq!(
        err.message,
        "CronJob.batch \"c\" is invalid: spec.schedule: Required value"
    );
}

#[tokio::test]
async fn a_deployment_reads_back_with_the_api_servers_defaults() {
    let cp = control_plane();
    let deployments = api(cp.client(), "apps", "Deployment", "deployments");
    let created = create(
        &deployments,
        deployment(
            "web",
            json!([{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]),
        ),
    )
    .await
    .unwrap();
    let spec = &created["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["schedulerName"], "default-scheduler");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["securityContext"], json!({}));
    let container = &pod["containers"][0];
    assert_eq!(container["imagePullPolicy"], "Always");
    assert_eq!(container["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(container["terminationMessagePolicy"], "File");
    assert_eq!(container["ports"][0]["protocol"], "TCP");
}

#[tokio::test]
async fn a_job_gets_a_selector_of_its_uid_and_labels_its_pods_with_its_name() {
    let cp = control_plane();
    let jobs = api(cp.client(), "batch", "Job", "jobs");
    let created = create(
        &jobs,
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
               "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl:5.34"}]}}}}),
    )
    .await
    .unwrap();
    let uid = created["metadata"]["uid"].as_str().unwrap();
    let spec = &created["spec"];
    assert_eq!(
        spec["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    );
    let labels = json!({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": "pi",
                        "controller-uid": uid, "job-name": "pi"});
    assert_eq!(spec["template"]["metadata"]["labels"], labels);
    assert_eq!(created["metadata"]["labels"], labels);
    assert_eq!(spec["completionMode"], "NonIndexed");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["backoffLimit"], 6);
}

/// The API server defaults every write, so a field an update leaves out is defaulted again
/// rather than removed.
#[tokio::test]
async fn an_update_that_drops_a_defaulted_field_gets_the_default_again() {
    let cp = control_plane();
    let deployments = api(cp.client(), "apps", "Deployment", "deployments");
    create(
        &deployments,
        deployment("web", json!([{"name": "web", "image": "nginx:1.27"}])),
    )
    .await
    .unwrap();
    let patched = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(
                    json!([{"op": "remove", "path": "/spec/revisionHistoryLimit"}]),
                )
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(patched).unwrap()["spec"]["revisionHistoryLimit"],
        10
    );
}
