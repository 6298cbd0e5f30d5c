//! Scenarios: the example UpstartEnvironment (`examples/environment.yaml`, with the catalog
//! templates of `examples/services/`) runs unchanged. It becomes Ready with its image-tag
//! override in the Deployment and the slowest chain named as its critical path; at its ttl it
//! deletes itself, dependents first; deleted while still provisioning, it goes away cleanly.
//!
//! The environment is cluster-scoped and named `my-environment-name` (the example services
//! depend on its `my-environment-name-launch-darkly` release by that name): on a real cluster,
//! run these scenarios one at a time (`--test-threads=1`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client, ResourceExt};
use upstart_api::v1alpha1::{
    EnvironmentPhase, HelmRelease, UpstartEnvironment, UpstartEnvironmentStatus, UpstartService,
};
use upstart_e2e::{Check, Error, TestEnv};

/// A real cluster pulls images; the local one is quick.
const TIMEOUT: Duration = Duration::from_secs(600);
const NAME: &str = "my-environment-name";
/// The simulator's annotation; the example charts pass `podAnnotations` to their pod template.
const READY_AFTER: &str = "simulator.upstart.dev/ready-after";

/// `examples/environment.yaml`, changed by `edit`.
fn environment_yaml(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let path = TestEnv::workspace_path("examples/environment.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut value: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
    edit(&mut value);
    // JSON is YAML.
    serde_json::to_string(&value).unwrap()
}

async fn environment(env: &TestEnv) -> Result<Option<UpstartEnvironment>, Error> {
    env.get_cluster_scoped::<UpstartEnvironment>(NAME).await
}

async fn wait_phase(
    env: &TestEnv,
    phase: EnvironmentPhase,
) -> Result<UpstartEnvironmentStatus, Error> {
    env.wait_for(
        &format!("the environment to be {phase:?}"),
        TIMEOUT,
        || async {
            let status = environment(env).await?.and_then(|e| e.status);
            Ok(match status {
                Some(status) if status.phase == Some(phase) => Check::Done(status),
                other => Check::Waiting(format!(
                    "{:?} {}",
                    other.as_ref().and_then(|s| s.phase),
                    other
                        .as_ref()
                        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                        .map(|c| c.message.clone())
                        .unwrap_or_default()
                )),
            })
        },
    )
    .await
}

async fn wait_gone(env: &TestEnv) -> Result<(), Error> {
    env.wait_for(
        "the environment and its namespace to be gone",
        TIMEOUT,
        || async {
            let environment = environment(env).await?;
            let namespace = env.get_cluster_scoped::<Namespace>(NAME).await?;
            Ok(match (environment, namespace) {
                (None, None) => Check::Done(()),
                (e, n) => Check::Waiting(format!(
                    "environment {}, namespace {}",
                    if e.is_some() { "present" } else { "gone" },
                    if n.is_some() { "present" } else { "gone" }
                )),
            })
        },
    )
    .await
}

/// Records, in order, when each service and release of the environment's namespace is first
/// seen deleted (a deletionTimestamp, or gone), by polling: what any client of a real cluster
/// can see.
fn record_deletions(client: Client) -> Arc<Mutex<Vec<String>>> {
    let order = Arc::new(Mutex::new(Vec::<String>::new()));
    let into = order.clone();
    tokio::spawn(async move {
        let services: Api<UpstartService> = Api::namespaced(client.clone(), NAME);
        let releases: Api<HelmRelease> = Api::namespaced(client, NAME);
        let mut live: BTreeMap<String, bool> = BTreeMap::new();
        loop {
            let mut now: BTreeMap<String, bool> = BTreeMap::new();
            if let Ok(list) = services.list(&ListParams::default()).await {
                for s in list {
                    let deleting = s.metadata.deletion_timestamp.is_some();
                    now.insert(format!("UpstartService/{}", s.name_any()), deleting);
                }
            }
            if let Ok(list) = releases.list(&ListParams::default()).await {
                for r in list {
                    let deleting = r.metadata.deletion_timestamp.is_some();
                    now.insert(format!("HelmRelease/{}", r.name_any()), deleting);
                }
            }
            {
                let mut order = into.lock().unwrap();
                for (id, deleting) in &now {
                    if *deleting && !order.contains(id) {
                        order.push(id.clone());
                    }
                }
                for id in live.keys() {
                    if !now.contains_key(id) && !order.contains(id) {
                        order.push(id.clone());
                    }
                }
            }
            live = now;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    order
}

fn position(order: &[String], id: &str) -> usize {
    order
        .iter()
        .position(|o| o == id)
        .unwrap_or_else(|| panic!("{id} was never seen deleted; seen: {order:?}"))
}

#[tokio::test]
async fn example_environment_becomes_ready_with_its_override_and_its_critical_path() {
    // Every workload takes at least a second (SPEC §9 measures the overhead that way); the
    // postgres StatefulSet takes longest, so the chain through it decides time-to-ready.
    let env = TestEnv::start_with_workload_delay(Duration::from_secs(1))
        .await
        .unwrap();
    env.step("apply the catalog templates and the example environment, postgres made slow");
    env.apply_catalog(&["examples/services"]).await.unwrap();
    let yaml = environment_yaml(|e| {
        e["spec"]["services"][0]["overrides"]["postgres"] =
            serde_json::json!({"values": {"podAnnotations": {READY_AFTER: "6s"}}});
    });
    env.apply_yaml(&yaml).await.unwrap();

    env.step("the environment becomes Ready");
    let status = wait_phase(&env, EnvironmentPhase::Ready).await.unwrap();
    assert_eq!(status.namespace.as_deref(), Some(NAME));
    assert_eq!(status.services.as_deref(), Some("2/2"));
    assert_eq!(status.ready_releases, status.total_releases);
    assert_eq!(status.total_releases, Some(6), "{status:?}");
    let created = environment(&env).await.unwrap().unwrap();
    let created = created.metadata.creation_timestamp.unwrap().0;
    assert_eq!(
        status.expires_at.map(|t| t.0),
        Some(created.checked_add(Duration::from_secs(72 * 3600)).unwrap()),
        "ttl 72h"
    );

    env.step("the image-tag override is in the example service's Deployment");
    let deployment: Deployment = env.get_in(NAME, "example-service").await.unwrap().unwrap();
    let image = deployment.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap();
    assert!(image.ends_with(":pr-1234"), "{image}");

    env.step("the critical path is the slow postgres, then the example service");
    let path: Vec<&str> = status
        .critical_path
        .iter()
        .map(|s| s.release.as_str())
        .collect();
    assert_eq!(
        path[path.len() - 2..],
        [
            "example-service-postgres",
            "example-service-example-service"
        ],
        "{:?}",
        status.critical_path
    );
    let time_to_ready = status.time_to_ready_seconds.unwrap();
    let installing: f64 = status.critical_path.iter().map(|s| s.install_seconds).sum();
    let along: f64 = status
        .critical_path
        .iter()
        .map(|s| s.wait_seconds + s.install_seconds)
        .sum();
    eprintln!(
        "e2e: time to ready {time_to_ready:.3}s; critical path {along:.0}s \
         (installing {installing:.0}s, whole seconds); overhead over the path {:.1}%: {:?}",
        (time_to_ready - along) / along * 100.0,
        status.critical_path
    );
    env.finish().await.unwrap();
}

#[tokio::test]
async fn expired_environment_is_torn_down_dependents_first() {
    let env = TestEnv::start().await.unwrap();
    env.step("apply the catalog templates and the example environment with a short ttl");
    env.apply_catalog(&["examples/services"]).await.unwrap();
    let deletions = record_deletions(env.client().clone());
    let yaml = environment_yaml(|e| e["spec"]["ttl"] = serde_json::json!("30s"));
    env.apply_yaml(&yaml).await.unwrap();
    wait_phase(&env, EnvironmentPhase::Ready).await.unwrap();

    env.step("at its expiry the environment deletes itself and everything in it");
    wait_gone(&env).await.unwrap();
    let order = deletions.lock().unwrap().clone();
    eprintln!("e2e: deletion order {order:?}");
    let service = position(&order, "UpstartService/example-service");
    let release = position(&order, "HelmRelease/example-service-example-service");
    let other = position(&order, "UpstartService/another-upstart-service");
    let other_release = position(&order, "HelmRelease/another-upstart-service-web");
    let launch_darkly = position(&order, "HelmRelease/my-environment-name-launch-darkly");
    assert!(service < other && service < launch_darkly, "{order:?}");
    assert!(
        release < other_release && release < launch_darkly,
        "{order:?}"
    );
    env.finish().await.unwrap();
}

#[tokio::test]
async fn environment_deleted_while_provisioning_goes_away_cleanly() {
    let env = TestEnv::start_with_workload_delay(Duration::from_secs(5))
        .await
        .unwrap();
    env.step("apply the catalog templates and the example environment");
    env.apply_catalog(&["examples/services"]).await.unwrap();
    env.apply_yaml(&environment_yaml(|_| {})).await.unwrap();
    env.wait_for("a release to be installing", TIMEOUT, || async {
        let releases: Vec<HelmRelease> = env.list_in(NAME).await?;
        Ok(
            match releases
                .iter()
                .find(|r| r.status.as_ref().is_some_and(|s| !s.inventory.is_empty()))
            {
                Some(r) => Check::Done(r.name_any()),
                None => Check::Waiting(format!("{} releases", releases.len())),
            },
        )
    })
    .await
    .unwrap();
    let status = environment(&env).await.unwrap().unwrap().status.unwrap();
    assert_eq!(status.phase, Some(EnvironmentPhase::Provisioning));

    env.step("delete it: the teardown finishes");
    Api::<UpstartEnvironment>::all(env.client().clone())
        .delete(NAME, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&env).await.unwrap();
    env.finish().await.unwrap();
}
