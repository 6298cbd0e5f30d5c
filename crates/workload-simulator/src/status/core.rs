//! Status of the core/v1 objects: Pods, PersistentVolumeClaims and LoadBalancer Services.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, LoadBalancerIngress, LoadBalancerStatus, PersistentVolumeClaim,
    PersistentVolumeClaimStatus, Pod, PodCondition, PodStatus, Service, ServiceStatus,
};

use super::{Observation, Outcome, settle};

/// Pod phases and condition reasons as kubelet reports them.
mod reason {
    pub const PENDING: &str = "Pending";
    pub const RUNNING: &str = "Running";
    pub const SUCCEEDED: &str = "Succeeded";
    pub const FAILED: &str = "Failed";
    pub const CONTAINERS_NOT_READY: &str = "ContainersNotReady";
    pub const POD_COMPLETED: &str = "PodCompleted";
    pub const CONTAINER_CREATING: &str = "ContainerCreating";
    pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";
}

/// What a Pod's containers are doing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Running,
    Crashing,
    Succeeded,
    Failed,
}

/// The status kubelet writes. Pods with `restartPolicy: Always` (the default) run and become
/// Ready; `Never`/`OnFailure` Pods run to completion and end `Succeeded`. Failing Pods end
/// `Failed` (exit code 1) or, when they would be restarted, crash-loop without becoming Ready.
/// A Pod that has finished is left alone.
pub fn pod_status(pod: &Pod, obs: &Observation) -> Outcome<PodStatus> {
    let old = pod.status.as_ref();
    if matches!(
        old.and_then(|s| s.phase.as_deref()),
        Some(reason::SUCCEEDED | reason::FAILED)
    ) {
        return Outcome::leave();
    }
    let spec = pod.spec.clone().unwrap_or_default();
    let restarts = spec.restart_policy.as_deref().unwrap_or("Always") == "Always";
    let phase = match (obs.ready(), obs.failed(), restarts) {
        (true, _, true) => Phase::Running,
        (true, _, false) => Phase::Succeeded,
        (_, true, true) => Phase::Crashing,
        (_, true, false) => Phase::Failed,
        _ => Phase::Starting,
    };
    let start_time = old
        .and_then(|s| s.start_time.clone())
        .unwrap_or_else(|| obs.time());
    let started_at = old
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.running.as_ref())
        .and_then(|r| r.started_at.clone())
        .unwrap_or_else(|| start_time.clone());
    let state = match phase {
        Phase::Starting => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason::CONTAINER_CREATING.into()),
                message: None,
            }),
            ..Default::default()
        },
        Phase::Running => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(started_at.clone()),
            }),
            ..Default::default()
        },
        Phase::Crashing => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason::CRASH_LOOP_BACK_OFF.into()),
                message: Some("back-off restarting failed container".into()),
            }),
            ..Default::default()
        },
        Phase::Succeeded | Phase::Failed => {
            let ok = phase == Phase::Succeeded;
            ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: if ok { 0 } else { 1 },
                    reason: Some(if ok { "Completed" } else { "Error" }.into()),
                    started_at: Some(started_at.clone()),
                    finished_at: Some(obs.time()),
                    ..Default::default()
                }),
                ..Default::default()
            }
        }
    };
    let containers_ready = phase == Phase::Running;
    let container_statuses = spec
        .containers
        .iter()
        .map(|c| ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: String::new(),
            ready: containers_ready,
            started: Some(matches!(phase, Phase::Running)),
            restart_count: i32::from(phase == Phase::Crashing),
            state: Some(state.clone()),
            ..Default::default()
        })
        .collect();
    let not_ready_reason = match phase {
        Phase::Succeeded | Phase::Failed => reason::POD_COMPLETED,
        _ => reason::CONTAINERS_NOT_READY,
    };
    let cond = |type_: &str, ok: bool| PodCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: (!ok).then(|| not_ready_reason.into()),
        message: None,
        last_probe_time: None,
        last_transition_time: Some(obs.time()),
        observed_generation: None,
    };
    let conditions = vec![
        cond("PodReadyToStartContainers", phase != Phase::Starting),
        cond("Initialized", true),
        cond("Ready", containers_ready),
        cond("ContainersReady", containers_ready),
        cond("PodScheduled", true),
    ];
    let phase_name = match phase {
        Phase::Starting => reason::PENDING,
        Phase::Running | Phase::Crashing => reason::RUNNING,
        Phase::Succeeded => reason::SUCCEEDED,
        Phase::Failed => reason::FAILED,
    };
    let status = PodStatus {
        phase: Some(phase_name.into()),
        conditions: Some(settle(old.and_then(|s| s.conditions.as_ref()), conditions)),
        container_statuses: Some(container_statuses),
        host_ip: Some("127.0.0.1".into()),
        start_time: Some(start_time),
        qos_class: Some("BestEffort".into()),
        ..Default::default()
    };
    Outcome::write(status, obs.requeue())
}

/// The status the volume binder writes: `Bound` after the delay, with the requested storage as
/// capacity; a failing claim stays `Pending`. A Bound claim is left alone.
pub fn pvc_status(
    pvc: &PersistentVolumeClaim,
    obs: &Observation,
) -> Outcome<PersistentVolumeClaimStatus> {
    let old = pvc.status.as_ref();
    if old.and_then(|s| s.phase.as_deref()) == Some("Bound") {
        return Outcome::leave();
    }
    let spec = pvc.spec.clone().unwrap_or_default();
    let status = if obs.ready() {
        PersistentVolumeClaimStatus {
            phase: Some("Bound".into()),
            access_modes: spec.access_modes,
            capacity: spec
                .resources
                .and_then(|r| r.requests)
                .map(|r| r.into_iter().filter(|(k, _)| k == "storage").collect()),
            ..Default::default()
        }
    } else {
        PersistentVolumeClaimStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        }
    };
    Outcome::write(status, obs.requeue())
}

/// The status a cloud load balancer controller writes for `type: LoadBalancer` Services: an
/// ingress IP in `127.0.0.0/8` derived from the Service's namespace and name. Other Services,
/// failing ones and those that already have an ingress are left alone.
pub fn service_status(svc: &Service, obs: &Observation) -> Outcome<ServiceStatus> {
    let is_lb = svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
    let has_ingress = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .is_some_and(|i| !i.is_empty());
    if !is_lb || has_ingress || obs.settings.fail {
        return Outcome::leave();
    }
    if !obs.ready() {
        return Outcome {
            status: None,
            requeue_after: obs.requeue(),
        };
    }
    let key = format!(
        "{}/{}",
        svc.metadata.namespace.as_deref().unwrap_or_default(),
        svc.metadata.name.as_deref().unwrap_or_default()
    );
    let h = super::template_hash(&key);
    let byte = |i: usize| u8::from_str_radix(&h[i..i + 2], 16).unwrap_or(1);
    let ip = format!("127.{}.{}.{}", byte(0), byte(2), byte(4).clamp(1, 254));
    let status = ServiceStatus {
        load_balancer: Some(LoadBalancerStatus {
            ingress: Some(vec![LoadBalancerIngress {
                ip: Some(ip),
                ip_mode: Some("VIP".into()),
                ..Default::default()
            }]),
        }),
        conditions: None,
    };
    Outcome::write(status, None)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::obs;
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, PersistentVolumeClaimSpec, PodSpec, ServiceSpec, VolumeResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn pod(restart_policy: Option<&str>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                restart_policy: restart_policy.map(Into::into),
                containers: vec![Container {
                    name: "app".into(),
                    image: Some("nginx".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn ready(s: &PodStatus) -> &str {
        &s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap()
            .status
    }

    #[test]
    fn pod_is_pending_before_the_delay() {
        let out = pod_status(&pod(None), &obs(0, 100, false));
        let s = out.status.unwrap();
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(ready(&s), "False");
        assert_eq!(
            out.requeue_after,
            Some(std::time::Duration::from_millis(100))
        );
    }

    #[test]
    fn pod_runs_and_is_ready_after_the_delay() {
        let s = pod_status(&pod(None), &obs(100, 100, false))
            .status
            .unwrap();
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(ready(&s), "True");
        let c = &s.container_statuses.as_ref().unwrap()[0];
        assert!(c.ready);
        assert!(c.state.as_ref().unwrap().running.is_some());
    }

    #[test]
    fn run_once_pod_succeeds_after_the_delay_and_is_then_left_alone() {
        for policy in ["Never", "OnFailure"] {
            let mut p = pod(Some(policy));
            let s = pod_status(&p, &obs(100, 100, false)).status.unwrap();
            assert_eq!(s.phase.as_deref(), Some("Succeeded"), "{policy}");
            let terminated = s.container_statuses.as_ref().unwrap()[0]
                .state
                .as_ref()
                .unwrap()
                .terminated
                .clone()
                .unwrap();
            assert_eq!(terminated.exit_code, 0);
            p.status = Some(s);
            assert_eq!(pod_status(&p, &obs(500, 100, true)), Outcome::leave());
        }
    }

    #[test]
    fn failing_run_once_pod_fails_with_exit_code_one() {
        let s = pod_status(&pod(Some("Never")), &obs(100, 100, true))
            .status
            .unwrap();
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        let state = s.container_statuses.as_ref().unwrap()[0]
            .state
            .clone()
            .unwrap();
        assert_eq!(state.terminated.unwrap().exit_code, 1);
    }

    #[test]
    fn failing_restarting_pod_crash_loops_without_becoming_ready() {
        let s = pod_status(&pod(None), &obs(100, 100, true)).status.unwrap();
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(ready(&s), "False");
        let c = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            c.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );
    }

    #[test]
    fn recomputing_a_running_pod_gives_the_same_status() {
        let mut p = pod(None);
        p.status = pod_status(&p, &obs(100, 100, false)).status;
        assert_eq!(pod_status(&p, &obs(900, 100, false)).status, p.status);
    }

    fn pvc() -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some([("storage".to_owned(), Quantity("1Gi".into()))].into()),
                    limits: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn claim_is_bound_with_the_requested_capacity_after_the_delay() {
        let before = pvc_status(&pvc(), &obs(0, 10, false)).status.unwrap();
        assert_eq!(before.phase.as_deref(), Some("Pending"));
        let after = pvc_status(&pvc(), &obs(10, 10, false)).status.unwrap();
        assert_eq!(after.phase.as_deref(), Some("Bound"));
        assert_eq!(after.capacity.unwrap()["storage"], Quantity("1Gi".into()));
        assert_eq!(after.access_modes.unwrap(), ["ReadWriteOnce"]);
    }

    #[test]
    fn failing_claim_stays_pending_and_bound_claim_is_left_alone() {
        let failing = pvc_status(&pvc(), &obs(99, 10, true)).status.unwrap();
        assert_eq!(failing.phase.as_deref(), Some("Pending"));
        let mut bound = pvc();
        bound.status = pvc_status(&bound, &obs(10, 10, false)).status;
        assert_eq!(pvc_status(&bound, &obs(10, 10, true)), Outcome::leave());
    }

    fn service(type_: &str, name: &str) -> Service {
        let mut s = Service::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some("ns".into());
        s.spec = Some(ServiceSpec {
            type_: Some(type_.into()),
            ..Default::default()
        });
        s
    }

    fn ip(status: &ServiceStatus) -> String {
        status
            .load_balancer
            .as_ref()
            .unwrap()
            .ingress
            .as_ref()
            .unwrap()[0]
            .ip
            .clone()
            .unwrap()
    }

    #[test]
    fn load_balancer_gets_a_loopback_ingress_after_the_delay() {
        let svc = service("LoadBalancer", "web");
        let before = service_status(&svc, &obs(0, 10, false));
        assert_eq!(before.status, None);
        assert_eq!(
            before.requeue_after,
            Some(std::time::Duration::from_millis(10))
        );
        let after = service_status(&svc, &obs(10, 10, false)).status.unwrap();
        let address: std::net::Ipv4Addr = ip(&after).parse().unwrap();
        assert!(address.is_loopback());
        let again = service_status(&svc, &obs(10, 10, false)).status.unwrap();
        assert_eq!(ip(&again), ip(&after), "the address is stable");
        let other = service_status(&service("LoadBalancer", "api"), &obs(10, 10, false));
        assert_ne!(ip(&other.status.unwrap()), ip(&after));
    }

    #[test]
    fn cluster_ip_failing_and_provisioned_services_are_left_alone() {
        assert_eq!(
            service_status(&service("ClusterIP", "a"), &obs(10, 10, false)),
            Outcome::leave()
        );
        assert_eq!(
            service_status(&service("LoadBalancer", "a"), &obs(10, 10, true)),
            Outcome::leave()
        );
        let mut done = service("LoadBalancer", "a");
        done.status = service_status(&done, &obs(10, 10, false)).status;
        assert_eq!(service_status(&done, &obs(10, 10, false)), Outcome::leave());
    }
}
