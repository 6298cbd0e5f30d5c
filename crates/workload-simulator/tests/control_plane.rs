//! The simulator against the in-process control plane: objects created through the API get
//! their status after the delay, failing ones fail, and a Job's on-complete objects appear only
//! when it completes.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use upstart_control_plane::ControlPlane;
use upstart_workload_simulator::{Options, RunningSimulator, Simulator};

const WAIT: Duration = Duration::from_secs(10);

fn start(options: Options) -> (ControlPlane, kube::Client, RunningSimulator) {
    let cp = ControlPlane::start(upstart_control_plane::Options::default());
    let client = cp.client();
    let sim = Simulator::new(client.clone(), options).spawn();
    (cp, client, sim)
}

/// Polls `check` until it gives a value, or fails the test after `WAIT`.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn deployment(name: &str, ready_after: &str, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "annotations": {"simulator.upstart.dev/ready-after": ready_after}
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            }
        }
    }))
    .unwrap()
}

fn condition(d: &Deployment, type_: &str) -> Option<(String, String)> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

fn job(name: &str, annotations: serde_json::Value) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}]
                }
            }
        }
    }))
    .unwrap()
}

fn job_condition(j: &Job, type_: &str) -> Option<(String, String)> {
    j.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

#[tokio::test]
async fn deployment_becomes_available_after_the_delay() {
    let (_cp, client, sim) = start(Options::default());
    let api: Api<Deployment> = Api::namespaced(client, "default");
    let created = Instant::now();
    api.create(
        &PostParams::default(),
        &deployment("web", "600ms", "nginx:1"),
    )
    .await
    .unwrap();

    let progressing = eventually("a first status", || async {
        let d = api.get("web").await.unwrap();
        d.status.is_some().then_some(d)
    })
    .await;
    assert_eq!(
        condition(&progressing, "Available"),
        Some(("False".into(), "MinimumReplicasUnavailable".into()))
    );

    let available = eventually("Available=True", || async {
        let d = api.get("web").await.unwrap();
        (condition(&d, "Available").map(|c| c.0) == Some("True".into())).then_some(d)
    })
    .await;
    assert!(created.elapsed() >= Duration::from_millis(600));
    let status = available.status.clone().unwrap();
    assert_eq!(status.observed_generation, available.metadata.generation);
    assert_eq!(status.ready_replicas, Some(2));
    assert_eq!(status.available_replicas, Some(2));
    assert_eq!(
        condition(&available, "Progressing").map(|c| c.1),
        Some("NewReplicaSetAvailable".into())
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn deployment_spec_change_goes_unavailable_then_available_again() {
    let (_cp, client, sim) = start(Options::default());
    let api: Api<Deployment> = Api::namespaced(client, "default");
    api.create(
        &PostParams::default(),
        &deployment("web", "300ms", "nginx:1"),
    )
    .await
    .unwrap();
    eventually("Available=True", || async {
        let d = api.get("web").await.unwrap();
        (d.status.as_ref()?.ready_replicas == Some(2)).then_some(())
    })
    .await;

    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}});
    let patched = api
        .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    let generation = patched.metadata.generation;
    let rolling = eventually("the new generation observed", || async {
        let d = api.get("web").await.unwrap();
        (d.status.as_ref()?.observed_generation == generation).then_some(d)
    })
    .await;
    assert_eq!(rolling.status.as_ref().unwrap().ready_replicas, None);
    assert_eq!(
        condition(&rolling, "Available").map(|c| c.0),
        Some("False".into())
    );
    eventually("Available again", || async {
        let d = api.get("web").await.unwrap();
        (d.status.as_ref()?.ready_replicas == Some(2)).then_some(())
    })
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn failing_job_gets_failed_with_backoff_limit_exceeded() {
    let (_cp, client, sim) = start(Options::default());
    let api: Api<Job> = Api::namespaced(client, "default");
    let annotations = json!({
        "simulator.upstart.dev/ready-after": "100ms",
        "simulator.upstart.dev/fail": "true"
    });
    api.create(&PostParams::default(), &job("migrate", annotations))
        .await
        .unwrap();
    let failed = eventually("Failed", || async {
        let j = api.get("migrate").await.unwrap();
        job_condition(&j, "Failed").map(|_| j)
    })
    .await;
    assert_eq!(
        job_condition(&failed, "Failed"),
        Some(("True".into(), "BackoffLimitExceeded".into()))
    );
    assert_eq!(job_condition(&failed, "Complete"), None);
    assert_eq!(failed.status.unwrap().failed, Some(7));
    sim.shutdown().await;
}

#[tokio::test]
async fn globally_failing_simulator_fails_jobs_without_annotations() {
    let (_cp, client, sim) = start(Options {
        ready_after: Duration::ZERO,
        fail: true,
    });
    let api: Api<Job> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &job("j", json!({})))
        .await
        .unwrap();
    eventually("Failed", || async {
        job_condition(&api.get("j").await.unwrap(), "Failed")
    })
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn job_on_complete_secret_appears_only_after_completion() {
    let (_cp, client, sim) = start(Options::default());
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    let annotations = json!({
        "simulator.upstart.dev/ready-after": "800ms",
        "simulator.upstart.dev/on-complete":
            "- apiVersion: v1\n  kind: Secret\n  metadata: {name: api-key}\n  stringData: {key: generated}\n"
    });
    jobs.create(&PostParams::default(), &job("publish", annotations))
        .await
        .unwrap();

    // Until the Job is Complete, the Secret must not exist.
    eventually("the Job to start", || async {
        let j = jobs.get("publish").await.unwrap();
        j.status.as_ref()?.start_time.clone()
    })
    .await;
    loop {
        let j = jobs.get("publish").await.unwrap();
        let secret = secrets.get_opt("api-key").await.unwrap();
        if job_condition(&j, "Complete").is_some() {
            // Whoever sees Complete finds the Secret.
            let secret = secrets.get("api-key").await.unwrap();
            let data = secret.data.unwrap();
            assert_eq!(data["key"].0, b"generated");
            break;
        }
        assert!(
            secret.is_none(),
            "the Secret appeared before the Job completed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let managers: Vec<_> = secrets
        .get("api-key")
        .await
        .unwrap()
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.contains(&"upstart-simulator".to_owned()),
        "{managers:?}"
    );
    sim.shutdown().await;
}

/// Creates `manifest` through the dynamic API and waits until `done` accepts its status.
async fn create_and_wait(
    client: &kube::Client,
    manifest: serde_json::Value,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let api_version = manifest["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, manifest["kind"].as_str().unwrap());
    let (resource, _): (ApiResource, _) = kube::discovery::pinned_kind(client, &gvk).await.unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let object: DynamicObject = serde_json::from_value(manifest).unwrap();
    let name = object.metadata.name.clone().unwrap();
    api.create(&PostParams::default(), &object).await.unwrap();
    eventually(what, || async {
        let current = serde_json::to_value(api.get(&name).await.unwrap()).unwrap();
        done(&current["status"]).then_some(current["status"].clone())
    })
    .await
}

#[tokio::test]
async fn other_workload_kinds_get_their_ready_status_through_the_api() {
    let (_cp, client, sim) = start(Options::default());
    let template = json!({
        "metadata": {"labels": {"app": "x"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    });
    let selector = json!({"matchLabels": {"app": "x"}});

    let sts = create_and_wait(
        &client,
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
               "spec": {"replicas": 2, "serviceName": "db", "selector": selector, "template": template}}),
        "StatefulSet ready",
        |s| s["readyReplicas"] == 2,
    )
    .await;
    assert_eq!(sts["currentRevision"], sts["updateRevision"]);
    assert_eq!(sts["observedGeneration"], 1);

    let ds = create_and_wait(
        &client,
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
               "spec": {"selector": selector, "template": template}}),
        "DaemonSet ready",
        |s| s["numberReady"] == 1,
    )
    .await;
    assert_eq!(ds["desiredNumberScheduled"], 1);
    assert_eq!(ds["numberAvailable"], 1);

    create_and_wait(
        &client,
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
               "spec": {"replicas": 3, "selector": selector, "template": template}}),
        "ReplicaSet ready",
        |s| s["readyReplicas"] == 3,
    )
    .await;

    let pod = create_and_wait(
        &client,
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        "Pod running",
        |s| s["phase"] == "Running",
    )
    .await;
    let ready = pod["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready["status"], "True");

    create_and_wait(
        &client,
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "once"},
               "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}),
        "Pod succeeded",
        |s| s["phase"] == "Succeeded",
    )
    .await;

    let pvc = create_and_wait(
        &client,
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        "PVC bound",
        |s| s["phase"] == "Bound",
    )
    .await;
    assert_eq!(pvc["capacity"]["storage"], "1Gi");

    let svc = create_and_wait(
        &client,
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"},
               "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}),
        "LoadBalancer ingress",
        |s| s["loadBalancer"]["ingress"][0]["ip"].is_string(),
    )
    .await;
    let ip: std::net::Ipv4Addr = svc["loadBalancer"]["ingress"][0]["ip"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ip.is_loopback());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_simulator_stopped_right_after_it_started_stops_promptly() {
    let (_cp, _client, sim) = start(Options::default());
    let stopped = tokio::time::timeout(Duration::from_secs(5), sim.shutdown()).await;
    assert!(stopped.is_ok(), "shutdown hung");
}
