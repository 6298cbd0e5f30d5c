//! The harness itself: namespaces, waiting, reading objects back, and the clean-up it does on
//! a "real" cluster (here the local control plane served over HTTPS with a kubeconfig, which
//! the harness cannot tell from a real one).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use upstart_api::v1alpha1::{HelmRelease, UpstartEnvironment, UpstartService};
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
    env.apply_catalog(&["examples/services/another-upstart-service.yaml"])
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
    let template = Api::<UpstartService>::namespaced(client.clone(), "upstart-catalog")
        .get_opt("another-upstart-service")
        .await
        .unwrap();
    assert!(template.is_none(), "catalog templates applied are deleted");
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

#[tokio::test]
async fn catalog_templates_go_to_the_catalog_namespace_and_other_objects_to_the_test_namespace() {
    let env = TestEnv::start().await.unwrap();
    assert_eq!(env.catalog_namespace(), "upstart-catalog");
    let templates = env.apply_catalog(&["examples/services"]).await.unwrap();
    let described: Vec<String> = templates.iter().map(|a| a.describe()).collect();
    assert_eq!(
        described,
        [
            "UpstartService upstart-catalog/another-upstart-service",
            "UpstartService upstart-catalog/example-service"
        ]
    );
    let template: Option<UpstartService> = env
        .get_in("upstart-catalog", "example-service")
        .await
        .unwrap();
    assert!(template.is_some());
    let own: Vec<UpstartService> = env.list_in(env.namespace()).await.unwrap();
    assert!(own.is_empty(), "{own:?}");
    env.finish().await.unwrap();
}

#[tokio::test]
async fn the_example_helmrelease_is_installed_from_the_served_charts_with_its_timings() {
    let env = TestEnv::start().await.unwrap();
    env.step("apply the example HelmRelease");
    env.apply_file("examples/launch-darkly.yaml").await.unwrap();
    env.step("the operator reports it Ready");
    let name = "launch-darkly";
    let release = env
        .wait_object_ready(
            "upstartoperators.upstart.com/v1alpha1",
            "HelmRelease",
            None,
            name,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(release.metadata.namespace.as_deref(), Some(env.namespace()));
    env.step("its status timings are in order");
    let times = env.release_times(None, name).await.unwrap();
    assert_eq!(times.release, format!("{}/{name}", env.namespace()));
    let (created, ready) = (times.created_at.unwrap(), times.ready_at.unwrap());
    assert!(created <= ready, "{times:?}");
    let typed: HelmRelease = env.get(name).await.unwrap().unwrap();
    assert!(
        typed
            .status
            .unwrap()
            .outputs
            .contains(&"LD_SDK_KEY_PRICING".to_owned())
    );
    env.finish().await.unwrap();
}

#[tokio::test]
async fn workloads_take_the_delay_asked_for_to_become_available() {
    const DELAY: Duration = Duration::from_millis(1500);
    let env = TestEnv::start_with_workload_delay(DELAY).await.unwrap();
    let started = std::time::Instant::now();
    env.apply_yaml(
        "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: example}]}
",
    )
    .await
    .unwrap();
    env.wait_for("web to be available", Duration::from_secs(20), || async {
        let deployment: Deployment = env.get("web").await?.expect("applied");
        let available = deployment
            .status
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        Ok(if available >= 1 {
            Check::Done(())
        } else {
            Check::Waiting(format!("{available} available"))
        })
    })
    .await
    .unwrap();
    if !env.is_real_cluster() {
        // A real cluster's workloads take what they take.
        assert!(started.elapsed() >= DELAY, "{:?}", started.elapsed());
    }
    env.finish().await.unwrap();
}

#[tokio::test]
async fn deployment_env_in_reads_a_deployment_of_another_namespace() {
    let env = TestEnv::start().await.unwrap();
    env.apply_yaml(
        "
apiVersion: v1
kind: Namespace
metadata: {name: elsewhere}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: elsewhere}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: example, env: [{name: A, value: '1'}]}]}
",
    )
    .await
    .unwrap();
    let app = env
        .deployment_env_in("elsewhere", "web", None)
        .await
        .unwrap();
    assert_eq!(app.value("A"), Some("1"));
    assert!(
        env.deployment_env("web", None).await.is_err(),
        "not in the test namespace"
    );
    env.finish().await.unwrap();
}

#[tokio::test]
async fn on_a_real_cluster_a_catalog_template_the_harness_did_not_make_is_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = pretend_real_cluster(tmp.path()).await;
    // A template the platform team installed.
    upstart_e2e::upstart_local_cluster::apply_files(
        cluster.client(),
        &[TestEnv::workspace_path(
            "examples/services/example-service.yaml",
        )],
        "platform-team",
        "upstart-catalog",
    )
    .await
    .unwrap();
    let env = TestEnv::connect(tmp.path().join("kubeconfig"))
        .await
        .unwrap();
    let err = env
        .apply_catalog(&["examples/services/example-service.yaml"])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("was not made by the e2e harness"),
        "{err}"
    );
    // A template of its own is applied, labelled, and deleted at the end.
    env.apply_catalog(&["examples/services/another-upstart-service.yaml"])
        .await
        .unwrap();
    env.finish().await.unwrap();
    let templates = Api::<UpstartService>::namespaced(cluster.client().clone(), "upstart-catalog");
    assert!(
        templates
            .get_opt("example-service")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        templates
            .get_opt("another-upstart-service")
            .await
            .unwrap()
            .is_none()
    );
    cluster.shutdown().await;
}
