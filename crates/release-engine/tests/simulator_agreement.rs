//! Health assessment agrees with the workload simulator (which writes the statuses the real
//! controllers write): not ready before the delay, healthy after it, failed when set to fail.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, Pod, PodSpec, PodTemplateSpec, Service, ServiceSpec,
};
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use upstart_release_engine::health::{Health, assess};
use upstart_workload_simulator::Settings;
use upstart_workload_simulator::status::{self, Observation};

const DELAY_MS: u64 = 1_000;

fn obs(elapsed_ms: u64, fail: bool) -> Observation {
    Observation {
        elapsed: Duration::from_millis(elapsed_ms),
        now: Timestamp::UNIX_EPOCH + Duration::from_millis(elapsed_ms),
        settings: Settings {
            ready_after: Duration::from_millis(DELAY_MS),
            fail,
        },
    }
}

fn json<T: Serialize>(object: &T) -> serde_json::Value {
    serde_json::to_value(object).expect("objects serialise")
}

fn template() -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: None,
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("postgres:16".into()),
                ..Default::default()
            }],
            restart_policy: Some("Never".into()),
            ..Default::default()
        }),
    }
}

fn meta<
    T: k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
>(
    mut object: T,
) -> T {
    let m = object.metadata_mut();
    m.name = Some("postgres".into());
    m.namespace = Some("pr-1234".into());
    m.generation = Some(1);
    object
}

fn deployment() -> Deployment {
    meta(Deployment {
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            template: template(),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[test]
fn a_simulated_deployment_goes_from_unavailable_to_healthy() {
    let mut d = deployment();
    d.status = status::deployment_status(&d, &obs(10, false)).status;
    assert_eq!(
        assess(&json(&d)),
        Health::Progressing("Deployment/postgres 0/1 available".into())
    );
    d.status = status::deployment_status(&d, &obs(DELAY_MS + 1, false)).status;
    assert_eq!(assess(&json(&d)), Health::Healthy);
}

#[test]
fn a_simulated_failing_deployment_fails_on_its_progress_deadline() {
    let mut d = deployment();
    d.status = status::deployment_status(&d, &obs(DELAY_MS + 1, true)).status;
    assert!(matches!(assess(&json(&d)), Health::Failed(m) if m.contains("progress deadline")));
}

#[test]
fn a_simulated_stateful_set_becomes_healthy_after_its_delay() {
    let mut s = meta(StatefulSet {
        spec: Some(StatefulSetSpec {
            replicas: Some(2),
            template: template(),
            service_name: Some("postgres".into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    s.status = status::stateful_set_status(&s, &obs(10, false)).status;
    assert!(matches!(assess(&json(&s)), Health::Progressing(_)));
    s.status = status::stateful_set_status(&s, &obs(DELAY_MS + 1, false)).status;
    assert_eq!(assess(&json(&s)), Health::Healthy);
}

#[test]
fn a_simulated_daemon_set_becomes_healthy_after_its_delay() {
    let mut d = meta(DaemonSet {
        spec: Some(DaemonSetSpec {
            template: template(),
            ..Default::default()
        }),
        ..Default::default()
    });
    d.status = status::daemon_set_status(&d, &obs(10, false)).status;
    assert_eq!(
        assess(&json(&d)),
        Health::Progressing("DaemonSet/postgres 0/1 available".into())
    );
    d.status = status::daemon_set_status(&d, &obs(DELAY_MS + 1, false)).status;
    assert_eq!(assess(&json(&d)), Health::Healthy);
}

fn job() -> Job {
    meta(Job {
        spec: Some(JobSpec {
            template: template(),
            backoff_limit: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[test]
fn a_simulated_job_is_not_yet_done_then_complete() {
    let mut j = job();
    j.status = status::job_status(&j, &obs(10, false)).status;
    assert!(matches!(assess(&json(&j)), Health::Progressing(_)));
    j.status = status::job_status(&j, &obs(DELAY_MS + 1, false)).status;
    assert_eq!(assess(&json(&j)), Health::Healthy);
}

#[test]
fn a_simulated_failing_job_is_failed_not_waiting() {
    let mut j = job();
    j.status = status::job_status(&j, &obs(DELAY_MS + 1, true)).status;
    assert!(
        matches!(assess(&json(&j)), Health::Failed(_)),
        "{:?}",
        assess(&json(&j))
    );
}

#[test]
fn a_simulated_pod_runs_to_success_or_failure() {
    let mut p = meta(Pod {
        spec: template().spec,
        ..Default::default()
    });
    p.status = status::pod_status(&p, &obs(10, false)).status;
    assert!(matches!(assess(&json(&p)), Health::Progressing(_)));
    let mut ok = p.clone();
    ok.status = status::pod_status(&ok, &obs(DELAY_MS + 1, false)).status;
    assert_eq!(assess(&json(&ok)), Health::Healthy);
    p.status = status::pod_status(&p, &obs(DELAY_MS + 1, true)).status;
    assert!(matches!(assess(&json(&p)), Health::Failed(_)));
}

#[test]
fn a_simulated_claim_binds_after_its_delay() {
    let mut c = meta(PersistentVolumeClaim::default());
    c.status = status::pvc_status(&c, &obs(10, false)).status;
    assert!(matches!(assess(&json(&c)), Health::Progressing(_)));
    c.status = status::pvc_status(&c, &obs(DELAY_MS + 1, false)).status;
    assert_eq!(assess(&json(&c)), Health::Healthy);
}

#[test]
fn a_simulated_load_balancer_gets_an_ingress_after_its_delay() {
    let mut s = meta(Service {
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert!(matches!(assess(&json(&s)), Health::Progressing(_)));
    s.status = status::service_status(&s, &obs(DELAY_MS + 1, false)).status;
    assert_eq!(assess(&json(&s)), Health::Healthy);
}
