//! YAML the way Kubernetes reads it, through the operator: a chart's `defaultMode: 0755` is
//! applied as 493 and `enableServiceLinks: no` as false (as `helm install` sends them, YAML 1.1),
//! so the StatefulSet decodes and becomes Ready; a `valuesFrom` document whose aliases expand
//! past the limit is refused with the limit named, quickly and without quoting it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use upstart_api::conditions::is_ready_for_generation;
use upstart_api::v1alpha1::HelmRelease;
use upstart_helmrelease_operator::controller::parse_values_document;
use upstart_test_support::operators::{Cluster, RunningOperator, object_where, write};

const WAIT: Duration = Duration::from_secs(60);
const NS: &str = "default";

/// Bitnami redis' pattern: an octal file mode and a YAML 1.1 boolean written as literals.
fn charts(root: &Path) {
    write(
        root,
        "octal/Chart.yaml",
        "apiVersion: v2\nname: octal\nversion: 0.1.0\n",
    );
    write(
        root,
        "octal/templates/statefulset.yaml",
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ .Release.Name }}
  annotations:
    simulator.upstart.dev/ready-after: 100ms
spec:
  serviceName: {{ .Release.Name }}
  replicas: 1
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      enableServiceLinks: no
      containers:
        - name: redis
          image: redis:7
      volumes:
        - name: scripts
          configMap:
            name: {{ .Release.Name }}-scripts
            defaultMode: 0755
"#,
    );
}

/// 2000 items replayed by 1000 aliases: 2 M nodes from about 14 KB.
fn quadratic_aliases() -> String {
    format!(
        "a: &a [{}]\nb: [{}]\n",
        vec!["lol"; 2000].join(","),
        vec!["*a"; 1000].join(",")
    )
}

fn release(name: &str, values_from: serde_json::Value) -> HelmRelease {
    serde_json::from_value(json!({
        "apiVersion": "upstartoperators.upstart.com/v1alpha1",
        "kind": "HelmRelease",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"chart": "test/octal", "version": "0.1.0", "valuesFrom": values_from}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_with_an_octal_mode_is_applied_as_kubectl_would_and_becomes_ready() {
    let cluster = Cluster::start(charts).await;
    let client = cluster.client.clone();
    let operator = RunningOperator::helmrelease(client.clone(), cluster.helmrelease_config());
    let api: Api<HelmRelease> = Api::namespaced(client.clone(), NS);

    api.create(&PostParams::default(), &release("redis", json!([])))
        .await
        .unwrap();
    object_where(&api, "redis", WAIT, "Ready", |r| {
        r.status
            .as_ref()
            .is_some_and(|s| is_ready_for_generation(&s.conditions, r.metadata.generation))
    })
    .await;
    // The typed read fails if the API server stored "0755" or "no".
    let live = Api::<StatefulSet>::namespaced(client.clone(), NS)
        .get("redis")
        .await
        .unwrap();
    let pod = live.spec.unwrap().template.spec.unwrap();
    let volume = &pod.volumes.unwrap()[0];
    assert_eq!(volume.config_map.as_ref().unwrap().default_mode, Some(493));
    assert_eq!(pod.enable_service_links, Some(false));
    operator.stop(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_values_from_document_expanding_past_the_limit_is_refused_naming_it() {
    let cluster = Cluster::start(charts).await;
    let client = cluster.client.clone();
    let operator = RunningOperator::helmrelease(client.clone(), cluster.helmrelease_config());
    let api: Api<HelmRelease> = Api::namespaced(client.clone(), NS);

    let values = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("bomb-values".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "values.yaml".to_owned(),
            quadratic_aliases(),
        )])),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &values)
        .await
        .unwrap();
    api.create(
        &PostParams::default(),
        &release(
            "bomb",
            json!([{"configMapRef": {"name": "bomb-values", "key": "values.yaml"}}]),
        ),
    )
    .await
    .unwrap();
    let refused = object_where(&api, "bomb", WAIT, "a condition naming the limit", |r| {
        r.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.message.contains("more than 1000000 nodes"))
        })
    })
    .await;
    let condition = refused
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.message.contains("more than 1000000 nodes"))
        .unwrap();
    assert_eq!(condition.reason, "InvalidValuesDocument", "{condition:?}");
    assert!(
        condition.message.contains("ConfigMap/bomb-values"),
        "{condition:?}"
    );
    assert!(!condition.message.contains("lol"), "{condition:?}");
    operator.stop(Duration::from_secs(10)).await;
}

#[test]
fn values_documents_are_read_as_helm_reads_them_and_bounded() {
    let value = parse_values_document(b"mode: 0755\nenabled: yes\nname: \"0755\"\n").unwrap();
    assert_eq!(value, json!({"mode": 493, "enabled": true, "name": "0755"}));

    let started = Instant::now();
    let error = parse_values_document(quadratic_aliases().as_bytes()).expect_err("bounded");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(error.contains("more than 1000000 nodes"), "{error}");
    // Nine levels of ten aliases (a billion scalars) in under 1 KiB.
    let mut laughs = String::from("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..=9 {
        let items = vec![format!("*l{}", level - 1); 10].join(", ");
        laughs.push_str(&format!("l{level}: &l{level} [{items}]\n"));
    }
    let error = parse_values_document(laughs.as_bytes()).expect_err("bounded");
    assert!(error.contains("more than 1000000 nodes"), "{error}");
    assert!(!error.contains("lol"), "{error}");

    let error = parse_values_document(b"a: 1\n---\nb: 2\n").expect_err("two documents");
    assert!(error.contains("more than one YAML document"), "{error}");
}
