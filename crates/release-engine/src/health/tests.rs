use super::*;
use serde_json::json;

fn progressing(message: &str) -> Health {
    Health::Progressing(message.into())
}

fn failed(message: &str) -> Health {
    Health::Failed(message.into())
}

/// A Deployment as the deployment controller leaves it (shapes as in the workload simulator).
fn deployment(replicas: i64, generation: i64, status: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "postgres", "namespace": "pr-1234", "generation": generation},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "pg"}}},
        "status": status,
    })
}

fn deployment_ready_status(n: i64, observed: i64) -> Value {
    json!({
        "observedGeneration": observed,
        "replicas": n, "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
             "message": "Deployment has minimum availability."},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
             "message": "ReplicaSet \"postgres-5d8c7\" has successfully progressed."}
        ]
    })
}

#[test]
fn a_deployment_with_every_replica_updated_ready_and_available_is_healthy() {
    assert_eq!(
        assess(&deployment(3, 2, deployment_ready_status(3, 2))),
        Health::Healthy
    );
}

#[test]
fn a_new_deployment_without_available_replicas_says_how_many_are_available() {
    let status = json!({
        "observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "unavailableReplicas": 1,
        "conditions": [
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
            {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}
        ]
    });
    let health = assess(&deployment(1, 1, status));
    assert_eq!(health, progressing("Deployment/postgres 0/1 available"));
    assert_eq!(
        format!("waiting for postgres: {}", health.message().unwrap()),
        "waiting for postgres: Deployment/postgres 0/1 available"
    );
}

#[test]
fn a_deployment_whose_generation_is_not_yet_observed_is_progressing_even_if_counts_match() {
    let health = assess(&deployment(1, 3, deployment_ready_status(1, 2)));
    assert_eq!(
        health,
        progressing("Deployment/postgres generation 3 not yet observed by its controller")
    );
}

#[test]
fn a_deployment_mid_rollout_reports_updated_replicas() {
    let status = json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1,
                        "readyReplicas": 3, "availableReplicas": 3});
    assert_eq!(
        assess(&deployment(3, 2, status)),
        progressing("Deployment/postgres 1/3 updated")
    );
}

#[test]
fn a_deployment_with_old_replicas_still_terminating_is_progressing() {
    let status = json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3,
                        "readyReplicas": 3, "availableReplicas": 3});
    assert_eq!(
        assess(&deployment(3, 2, status)),
        progressing("Deployment/postgres 1 old replicas pending termination")
    );
}

#[test]
fn a_deployment_with_available_but_unready_replicas_is_progressing() {
    let status = json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
                        "readyReplicas": 1, "availableReplicas": 2});
    assert_eq!(
        assess(&deployment(2, 1, status)),
        progressing("Deployment/postgres 1/2 ready")
    );
}

#[test]
fn a_deployment_past_its_progress_deadline_has_failed() {
    let status = json!({
        "observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "unavailableReplicas": 1,
        "conditions": [
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
             "message": "ReplicaSet \"postgres-5d8c7\" has timed out progressing."}
        ]
    });
    assert_eq!(
        assess(&deployment(1, 1, status)),
        failed("Deployment/postgres exceeded its progress deadline")
    );
}

#[test]
fn a_deployment_without_replicas_defaults_to_one_desired() {
    let mut d = deployment(1, 1, json!({"observedGeneration": 1}));
    d["spec"].as_object_mut().unwrap().remove("replicas");
    assert_eq!(assess(&d), progressing("Deployment/postgres 0/1 updated"));
}

#[test]
fn a_deployment_scaled_to_zero_is_healthy_once_observed() {
    assert_eq!(
        assess(&deployment(0, 4, json!({"observedGeneration": 4}))),
        Health::Healthy
    );
}

#[test]
fn a_deployment_without_status_is_progressing() {
    let mut d = deployment(1, 1, json!({}));
    d.as_object_mut().unwrap().remove("status");
    assert!(matches!(assess(&d), Health::Progressing(_)));
}

fn stateful_set(spec_extra: Value, status: Value) -> Value {
    let mut spec = json!({"replicas": 2, "serviceName": "db"});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), spec_extra.as_object()) {
        spec.extend(extra.clone());
    }
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "generation": 2},
        "spec": spec, "status": status,
    })
}

#[test]
fn a_rolled_out_stateful_set_is_healthy() {
    let status = json!({"observedGeneration": 2, "replicas": 2, "readyReplicas": 2,
        "currentReplicas": 2, "updatedReplicas": 2, "availableReplicas": 2,
        "currentRevision": "db-7f9", "updateRevision": "db-7f9", "collisionCount": 0});
    assert_eq!(assess(&stateful_set(json!({}), status)), Health::Healthy);
}

#[test]
fn a_stateful_set_with_unready_replicas_says_how_many_are_ready() {
    let status = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
        "availableReplicas": 0, "currentRevision": "db-7f9", "updateRevision": "db-7f9"});
    assert_eq!(
        assess(&stateful_set(json!({}), status)),
        progressing("StatefulSet/db 0/2 ready")
    );
}

#[test]
fn a_stateful_set_whose_current_revision_lags_the_update_revision_is_progressing() {
    let status = json!({"observedGeneration": 2, "replicas": 2, "readyReplicas": 2,
        "updatedReplicas": 2, "availableReplicas": 2,
        "currentRevision": "db-old", "updateRevision": "db-new"});
    assert_eq!(
        assess(&stateful_set(json!({}), status)),
        progressing("StatefulSet/db rolling out its update revision")
    );
}

#[test]
fn a_partitioned_stateful_set_only_waits_for_replicas_above_the_partition() {
    let spec =
        json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}});
    let status = json!({"observedGeneration": 2, "replicas": 2, "readyReplicas": 2,
        "updatedReplicas": 1, "availableReplicas": 2,
        "currentRevision": "db-old", "updateRevision": "db-new"});
    assert_eq!(assess(&stateful_set(spec.clone(), status)), Health::Healthy);
    let behind = json!({"observedGeneration": 2, "replicas": 2, "readyReplicas": 2,
        "updatedReplicas": 0, "currentRevision": "db-old", "updateRevision": "db-new"});
    assert_eq!(
        assess(&stateful_set(spec, behind)),
        progressing("StatefulSet/db 0/1 updated")
    );
}

#[test]
fn an_on_delete_stateful_set_only_waits_for_readiness() {
    let spec = json!({"updateStrategy": {"type": "OnDelete"}});
    let status = json!({"observedGeneration": 2, "replicas": 2, "readyReplicas": 2,
        "updatedReplicas": 0, "availableReplicas": 2,
        "currentRevision": "db-old", "updateRevision": "db-new"});
    assert_eq!(assess(&stateful_set(spec, status)), Health::Healthy);
}

#[test]
fn a_stateful_set_whose_generation_is_not_observed_is_progressing() {
    let status =
        json!({"observedGeneration": 1, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2});
    assert!(matches!(
        assess(&stateful_set(json!({}), status)),
        Health::Progressing(m) if m.contains("generation 2")
    ));
}

fn daemon_set(strategy: &str, status: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "generation": 1},
        "spec": {"updateStrategy": {"type": strategy}},
        "status": status,
    })
}

#[test]
fn a_daemon_set_available_on_every_scheduled_node_is_healthy() {
    let status = json!({"observedGeneration": 1, "desiredNumberScheduled": 1,
        "currentNumberScheduled": 1, "numberMisscheduled": 0, "numberReady": 1,
        "updatedNumberScheduled": 1, "numberAvailable": 1});
    assert_eq!(
        assess(&daemon_set("RollingUpdate", status)),
        Health::Healthy
    );
}

#[test]
fn a_daemon_set_without_available_pods_says_how_many_are_available() {
    let status = json!({"observedGeneration": 1, "desiredNumberScheduled": 1,
        "currentNumberScheduled": 1, "numberMisscheduled": 0, "numberReady": 0,
        "updatedNumberScheduled": 1, "numberUnavailable": 1});
    assert_eq!(
        assess(&daemon_set("RollingUpdate", status)),
        progressing("DaemonSet/agent 0/1 available")
    );
}

#[test]
fn a_rolling_daemon_set_waits_for_updated_pods_but_on_delete_does_not() {
    let status = json!({"observedGeneration": 1, "desiredNumberScheduled": 3,
        "currentNumberScheduled": 3, "numberReady": 3, "updatedNumberScheduled": 1,
        "numberAvailable": 3});
    assert_eq!(
        assess(&daemon_set("RollingUpdate", status.clone())),
        progressing("DaemonSet/agent 1/3 updated")
    );
    assert_eq!(assess(&daemon_set("OnDelete", status)), Health::Healthy);
}

#[test]
fn a_daemon_set_not_yet_observed_is_progressing() {
    let status = json!({"desiredNumberScheduled": 0, "currentNumberScheduled": 0,
        "numberMisscheduled": 0, "numberReady": 0});
    assert!(matches!(
        assess(&daemon_set("RollingUpdate", status)),
        Health::Progressing(_)
    ));
}

fn job(conditions: Value, status_extra: Value) -> Value {
    let mut status = json!({"conditions": conditions});
    if let (Some(s), Some(extra)) = (status.as_object_mut(), status_extra.as_object()) {
        s.extend(extra.clone());
    }
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "migrate", "generation": 1},
        "spec": {"completions": 1, "backoffLimit": 0, "template": {}},
        "status": status,
    })
}

#[test]
fn a_complete_job_is_healthy() {
    let conditions = json!([
        {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"},
        {"type": "Complete", "status": "True", "reason": "CompletionsReached"}
    ]);
    assert_eq!(
        assess(&job(conditions, json!({"succeeded": 1}))),
        Health::Healthy
    );
}

#[test]
fn a_running_job_is_not_yet_done_rather_than_failed() {
    let health = assess(&job(json!([]), json!({"active": 1, "ready": 0})));
    assert_eq!(health, progressing("Job/migrate 0/1 completed"));
}

#[test]
fn a_job_that_met_its_success_criteria_waits_for_complete() {
    let conditions =
        json!([{"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"}]);
    assert!(matches!(
        assess(&job(conditions, json!({"succeeded": 1}))),
        Health::Progressing(_)
    ));
}

#[test]
fn a_failed_job_is_unhealthy_with_its_reason() {
    let conditions = json!([
        {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
         "message": "Job has reached the specified backoff limit"}
    ]);
    assert_eq!(
        assess(&job(conditions, json!({"failed": 1}))),
        failed("Job/migrate failed: BackoffLimitExceeded")
    );
}

#[test]
fn a_job_marked_as_failure_target_has_already_failed() {
    let conditions =
        json!([{"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"}]);
    assert_eq!(
        assess(&job(conditions, json!({}))),
        failed("Job/migrate failed: DeadlineExceeded")
    );
}

#[test]
fn a_suspended_job_is_progressing() {
    let conditions = json!([{"type": "Suspended", "status": "True", "reason": "JobSuspended"}]);
    assert_eq!(
        assess(&job(conditions, json!({}))),
        progressing("Job/migrate is suspended")
    );
}

fn pod(status: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0"}, "spec": {}, "status": status})
}

#[test]
fn a_ready_pod_is_healthy() {
    let status = json!({"phase": "Running", "conditions": [
        {"type": "PodReadyToStartContainers", "status": "True"},
        {"type": "Initialized", "status": "True"},
        {"type": "Ready", "status": "True"},
        {"type": "ContainersReady", "status": "True"},
        {"type": "PodScheduled", "status": "True"}]});
    assert_eq!(assess(&pod(status)), Health::Healthy);
}

#[test]
fn a_succeeded_pod_is_healthy_though_not_ready() {
    let status = json!({"phase": "Succeeded", "conditions": [
        {"type": "Ready", "status": "False", "reason": "PodCompleted"}]});
    assert_eq!(assess(&pod(status)), Health::Healthy);
}

#[test]
fn a_failed_pod_is_unhealthy() {
    assert_eq!(
        assess(&pod(json!({"phase": "Failed", "reason": "Evicted"}))),
        failed("Pod/web-0 failed: Evicted")
    );
    assert_eq!(
        assess(&pod(json!({"phase": "Failed"}))),
        failed("Pod/web-0 failed: Failed")
    );
}

#[test]
fn a_crash_looping_pod_is_progressing_with_the_waiting_reason() {
    let status = json!({"phase": "Running",
        "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
        "containerStatuses": [{"name": "app", "ready": false, "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}}}]});
    assert_eq!(
        assess(&pod(status)),
        progressing("Pod/web-0 not ready: CrashLoopBackOff")
    );
    assert_eq!(
        assess(&pod(json!({"phase": "Pending"}))),
        progressing("Pod/web-0 not ready")
    );
}

fn pvc(phase: Option<&str>) -> Value {
    let mut o = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}, "status": {}});
    if let Some(phase) = phase {
        o["status"]["phase"] = json!(phase);
    }
    o
}

#[test]
fn a_bound_claim_is_healthy_and_a_pending_one_is_progressing() {
    assert_eq!(assess(&pvc(Some("Bound"))), Health::Healthy);
    assert_eq!(
        assess(&pvc(Some("Pending"))),
        progressing("PersistentVolumeClaim/data Pending")
    );
    assert_eq!(
        assess(&pvc(None)),
        progressing("PersistentVolumeClaim/data Pending")
    );
}

#[test]
fn a_lost_claim_has_failed() {
    assert_eq!(
        assess(&pvc(Some("Lost"))),
        failed("PersistentVolumeClaim/data lost its volume")
    );
}

fn service(type_: &str, status: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"type": type_, "ports": [{"port": 80}]}, "status": status})
}

#[test]
fn a_load_balancer_service_is_healthy_once_it_has_an_ingress() {
    let with = json!({"loadBalancer": {"ingress": [{"ip": "127.0.0.10", "ipMode": "VIP"}]}});
    assert_eq!(assess(&service("LoadBalancer", with)), Health::Healthy);
    assert_eq!(
        assess(&service("LoadBalancer", json!({"loadBalancer": {}}))),
        progressing("Service/web has no load balancer ingress yet")
    );
    assert!(matches!(
        assess(&service(
            "LoadBalancer",
            json!({"loadBalancer": {"ingress": []}})
        )),
        Health::Progressing(_)
    ));
}

#[test]
fn other_services_are_healthy_because_they_exist() {
    assert_eq!(
        assess(&service("ClusterIP", json!({"loadBalancer": {}}))),
        Health::Healthy
    );
}

fn custom(generation: i64, conditions: Value) -> Value {
    json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "tls", "generation": generation},
        "status": {"conditions": conditions}})
}

#[test]
fn an_object_with_a_true_ready_condition_is_healthy() {
    let c =
        json!([{"type": "Ready", "status": "True", "reason": "Ready", "observedGeneration": 2}]);
    assert_eq!(assess(&custom(2, c)), Health::Healthy);
}

#[test]
fn an_object_with_a_false_ready_condition_is_progressing_with_its_reason_not_its_message() {
    let c = json!([{"type": "Ready", "status": "False", "reason": "Issuing",
        "message": "secret value s3cr3t in message", "observedGeneration": 2}]);
    let health = assess(&custom(2, c));
    assert_eq!(health, progressing("Certificate/tls not ready: Issuing"));
}

#[test]
fn a_ready_condition_for_an_older_generation_does_not_count() {
    let c = json!([{"type": "Ready", "status": "True", "observedGeneration": 1}]);
    assert_eq!(
        assess(&custom(2, c)),
        progressing("Certificate/tls generation 2 not yet observed by its controller")
    );
    let mut o = custom(2, json!([{"type": "Ready", "status": "True"}]));
    o["status"]["observedGeneration"] = json!(1);
    assert!(matches!(assess(&o), Health::Progressing(_)));
}

#[test]
fn a_stalled_object_has_failed() {
    let c = json!([{"type": "Ready", "status": "False", "reason": "Reconciling"},
                   {"type": "Stalled", "status": "True", "reason": "InvalidSpec"}]);
    assert_eq!(
        assess(&custom(1, c)),
        failed("Certificate/tls stalled: InvalidSpec")
    );
}

#[test]
fn an_unknown_ready_condition_is_progressing() {
    let c = json!([{"type": "Ready", "status": "Unknown"}]);
    assert_eq!(
        assess(&custom(1, c)),
        progressing("Certificate/tls not ready: Unknown")
    );
}

#[test]
fn anything_else_is_healthy_because_it_exists() {
    let cm =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
    assert_eq!(assess(&cm), Health::Healthy);
}

#[test]
fn a_deployment_in_another_group_is_judged_by_its_conditions_only() {
    let o =
        json!({"apiVersion": "example.com/v1", "kind": "Deployment", "metadata": {"name": "x"}});
    assert_eq!(assess(&o), Health::Healthy);
}

#[test]
fn an_object_being_deleted_is_progressing() {
    let mut o = deployment(1, 1, deployment_ready_status(1, 1));
    o["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    assert_eq!(
        assess(&o),
        progressing("Deployment/postgres is being deleted")
    );
}

#[test]
fn a_missing_inventory_object_is_progressing() {
    let entry = InventoryEntry {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: Some("ns".into()),
        name: "web".into(),
    };
    assert_eq!(
        Health::missing(&entry),
        progressing("Deployment/web does not exist")
    );
}

#[test]
fn combined_health_reports_the_first_failure_else_the_first_progressing_object() {
    let all = vec![
        Health::Healthy,
        progressing("a"),
        failed("b"),
        progressing("c"),
    ];
    assert_eq!(combine(all), failed("b"));
    assert_eq!(
        combine(vec![Health::Healthy, progressing("a"), progressing("c")]),
        progressing("a")
    );
    assert_eq!(
        combine(vec![Health::Healthy, Health::Healthy]),
        Health::Healthy
    );
    assert_eq!(combine(Vec::new()), Health::Healthy);
}

#[test]
fn typed_objects_can_be_assessed_through_json() {
    use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus};
    let mut d = Deployment::default();
    d.metadata.name = Some("web".into());
    d.metadata.generation = Some(1);
    d.spec = Some(DeploymentSpec {
        replicas: Some(2),
        ..Default::default()
    });
    d.status = Some(DeploymentStatus {
        observed_generation: Some(1),
        replicas: Some(2),
        updated_replicas: Some(2),
        ready_replicas: Some(2),
        available_replicas: Some(1),
        ..Default::default()
    });
    let value = serde_json::to_value(&d).unwrap();
    assert_eq!(assess(&value), progressing("Deployment/web 1/2 available"));
}

fn crd(conditions: Value) -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com", "generation": 1},
        "status": {"conditions": conditions}})
}

#[test]
fn a_crd_is_healthy_once_established_so_its_instances_can_be_applied() {
    let established = json!([
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted"}]);
    assert_eq!(assess(&crd(established)), Health::Healthy);
    let pending = json!([{"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
        {"type": "Established", "status": "False", "reason": "Installing"}]);
    assert_eq!(
        assess(&crd(pending)),
        progressing("CustomResourceDefinition/widgets.example.com not yet established")
    );
    assert!(matches!(assess(&crd(json!([]))), Health::Progressing(_)));
}

#[test]
fn a_crd_whose_names_clash_has_failed() {
    let clash = json!([{"type": "NamesAccepted", "status": "False", "reason": "ListKindConflict"},
        {"type": "Established", "status": "False", "reason": "NotAccepted"}]);
    assert_eq!(
        assess(&crd(clash)),
        failed("CustomResourceDefinition/widgets.example.com names not accepted: ListKindConflict")
    );
}

#[test]
fn a_failed_job_of_a_namespace_says_where_its_logs_are() {
    let conditions =
        json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]);
    let mut live = job(conditions, json!({"failed": 1}));
    live["metadata"]["namespace"] = "pr-1".into();
    assert_eq!(
        assess(&live),
        failed("Job/migrate failed: BackoffLimitExceeded (logs: kubectl logs -n pr-1 job/migrate)")
    );
}
