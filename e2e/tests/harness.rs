//! The harness itself: namespaces, waiting, reading objects back, and the clean-up it does on
//! a "real" cluster (here the local control plane served over HTTPS with a kubeconfig, which
//! the harness cannot tell from a real one).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use upstart_api::v1alpha1::UpstartEnvironment;
use upstart_e2e::upstart_local_cluster::{LocalCluster, LocalClusterOptions};
use upstart_e2e::{Check, Error, NAMESPACE_LABEL, TestEnv};

#[tokio::test]
async fn each_environment_gets_a_labelled_namespace_of_its_own_named_after_the_test() {
    let first = TestEnv::start().await.unwrap();
    let second = TestEnv::start().await.unwrap();
    assert_ne!(first.namespace(), second.namespace());
    assert!(
        first
            .namespace()
            .starts_with("e2e-each-environment-gets-a-labelled"),
        "{}",
        first.namespace()
    );
    assert!(first.namespace().len() <= 63);
    let ns = Api::<Namespace>::all(first.client().clone())
        .get(first.namespace())
        .await
        .unwrap();
    assert_eq!(
        ns.metadata
            .labels
            .unwrap()
            .get(NAMESPACE_LABEL)
            .map(String::as_str),
        Some("true")
    );
    first.finish().await.unwrap();
    second.finish().await.unwrap();
}

#[tokio::test]
async fn wait_for_times_out_naming_the_step_and_listing_what_was_observed() {
    let env = TestEnv::start().await.unwrap();
    env.step("wait for something that never happens");
    let mut attempts = 0;
    let err = env
        .wait_for("the impossible", Duration::from_millis(700), || {
            attempts += 1;
            // Two distinct observations, the second one repeated: each is listed once.
            let seen = if attempts == 1 {
                "first look"
            } else {
                "still nothing"
            };
            async move { Ok::<Check<()>, Error>(Check::Waiting(seen.to_owned())) }
        })
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(
            "step 1 (wait for something that never happens): timed out after 0.7s waiting for \
             the impossible; observed:\n  - after 0.0s: first look\n  - after 0."
        ),
        "{message}"
    );
    assert!(message.ends_with("s: still nothing"), "{message}");
    assert!(attempts > 2);
    env.finish().await.unwrap();
}

#[tokio::test]
async fn wait_for_returns_the_value_once_the_condition_holds() {
    let env = TestEnv::start().await.unwrap();
    env.apply_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\n")
        .await
        .unwrap();
    let value = env
        .wait_for("the ConfigMap", Duration::from_secs(5), || async {
            Ok(match env.get::<ConfigMap>("c").await? {
                Some(cm) => Check::Done(cm.data.unwrap_or_default()["k"].clone()),
                None => Check::Waiting("not found".into()),
            })
        })
        .await
        .unwrap();
    assert_eq!(value, "v");
    env.finish().await.unwrap();
}

#[tokio::test]
async fn deployment_env_reads_the_named_container_of_the_pod_template() {
    let env = TestEnv::start().await.unwrap();
    env.apply_yaml(
        "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: sidecar
        image: busybox
      - name: app
        image: example
        env:
        - {name: DATABASE_URL, value: 'postgres://db:5432/x'}
        - name: API_KEY
          valueFrom: {secretKeyRef: {name: keys, key: api}}
",
    )
    .await
    .unwrap();
    let app = env.deployment_env("web", Some("app")).await.unwrap();
    assert_eq!(app.names(), ["DATABASE_URL", "API_KEY"]);
    assert_eq!(app.value("DATABASE_URL"), Some("postgres://db:5432/x"));
    assert_eq!(app.value("API_KEY"), None);
    let first = env.deployment_env("web", None).await.unwrap();
    assert_eq!(first.container, "sidecar");
    let missing = env.deployment_env("web", Some("nope")).await.unwrap_err();
    assert!(
        missing.to_string().contains("container nope of Deployment"),
        "{missing}"
    );
    env.finish().await.unwrap();
}

/// A local cluster served over HTTPS, with a kubeconfig the harness treats as a real cluster.
async fn pretend_real_cluster(dir: &std::path::Path) -> LocalCluster {
    LocalCluster::start(LocalClusterOptions {
        https_port: Some(0),
        kubeconfig_path: Some(dir.join("kubeconfig")),
        ..LocalClusterOptions::default()
    })
    .await
    .unwrap()
}

async fn apply_test_objects(env: &TestEnv) {
    env.apply_file("crds/upstartenvironments.upstartoperators.upstart.com.yaml")
        .await
        .unwrap();
    env.apply_file("examples/environment.yaml").await.unwrap();
    env.apply_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
        .await
        .unwrap();
}

/// Whether the namespace is gone or on its way (a real cluster takes a while to remove one).
async fn namespace_deleted(client: &kube::Client, name: &str) -> bool {
    match Api::<Namespace>::all(client.clone())
        .get_opt(name)
        .await
        .unwrap()
    {
        None => true,
        Some(ns) => ns.metadata.deletion_timestamp.is_some(),
    }
}

async fn assert_cleaned_up(cluster: &LocalCluster, namespace: &str) {
    let client = cluster.client();
    assert!(namespace_deleted(client, namespace).await);
    let environment = Api::<UpstartEnvironment>::all(client.clone())
        .get_opt("my-environment-name")
        .await
        .unwrap();
    assert!(environment.is_none(), "cluster-scoped objects are deleted");
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get_opt("upstartenvironments.upstartoperators.upstart.com")
        .await
        .unwrap();
    assert!(crd.is_some(), "CRDs are shared, never deleted");
}

#[tokio::test]
async fn on_a_real_cluster_finish_deletes_the_namespace_and_the_cluster_scoped_objects() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = pretend_real_cluster(tmp.path()).await;
    let env = TestEnv::connect(tmp.path().join("kubeconfig"))
        .await
        .unwrap();
    assert!(env.is_real_cluster());
    assert!(env.local().is_none());
    apply_test_objects(&env).await;
    let namespace = env.namespace().to_owned();
    let stored = Api::<ConfigMap>::namespaced(cluster.client().clone(), &namespace)
        .get_opt("c")
        .await
        .unwrap();
    assert!(stored.is_some(), "applied through the HTTPS endpoint");
    env.finish().await.unwrap();
    assert_cleaned_up(&cluster, &namespace).await;
    cluster.shutdown().await;
}

// Multi-threaded: the clean-up on drop blocks this thread while it talks to the HTTPS
// endpoint, which is served by this same runtime (on a real cluster it is not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_real_cluster_a_scenario_that_fails_before_finish_is_still_cleaned_up() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = pretend_real_cluster(tmp.path()).await;
    let env = TestEnv::connect(tmp.path().join("kubeconfig"))
        .await
        .unwrap();
    apply_test_objects(&env).await;
    let namespace = env.namespace().to_owned();
    drop(env);
    assert_cleaned_up(&cluster, &namespace).await;
    cluster.shutdown().await;
}
