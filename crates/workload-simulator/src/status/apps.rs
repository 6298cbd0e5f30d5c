//! Status of the `apps/v1` workloads: Deployments, ReplicaSets, StatefulSets and DaemonSets.

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetStatus, Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet,
    ReplicaSetStatus, StatefulSet, StatefulSetStatus,
};

use super::{Observation, Outcome, nonzero, settle, template_hash};

/// The deployment controller's condition types and reasons.
mod reason {
    pub const AVAILABLE: &str = "Available";
    pub const PROGRESSING: &str = "Progressing";
    pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
    pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
    pub const NEW_REPLICA_SET_AVAILABLE: &str = "NewReplicaSetAvailable";
    pub const REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
    pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
}

/// The status a Deployment's controller writes: counts, `Available` and `Progressing`.
pub fn deployment_status(d: &Deployment, obs: &Observation) -> Outcome<DeploymentStatus> {
    let spec = d.spec.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1);
    let generation = d.metadata.generation;
    let name = d.metadata.name.as_deref().unwrap_or_default();
    let rs = format!("{name}-{}", template_hash(&spec.template));
    let old = d.status.as_ref();
    let already_ready = old.is_some_and(|s| {
        s.observed_generation == generation
            && s.available_replicas.unwrap_or(0) == desired
            && s.updated_replicas.unwrap_or(0) == desired
            && s.ready_replicas.unwrap_or(0) == desired
    });
    let ready = desired == 0 || obs.ready() || (already_ready && !obs.settings.fail);
    let cond = |type_: &str, status: &str, reason: &str, message: String| DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: Some(obs.time()),
        last_update_time: Some(obs.time()),
    };
    let (counts, conditions, requeue) = if ready {
        (
            (desired, desired),
            vec![
                cond(
                    reason::AVAILABLE,
                    "True",
                    reason::MINIMUM_REPLICAS_AVAILABLE,
                    "Deployment has minimum availability.".into(),
                ),
                cond(
                    reason::PROGRESSING,
                    "True",
                    reason::NEW_REPLICA_SET_AVAILABLE,
                    format!("ReplicaSet \"{rs}\" has successfully progressed."),
                ),
            ],
            None,
        )
    } else {
        let progressing = if obs.failed() {
            cond(
                reason::PROGRESSING,
                "False",
                reason::PROGRESS_DEADLINE_EXCEEDED,
                format!("ReplicaSet \"{rs}\" has timed out progressing."),
            )
        } else {
            cond(
                reason::PROGRESSING,
                "True",
                reason::REPLICA_SET_UPDATED,
                format!("ReplicaSet \"{rs}\" is progressing."),
            )
        };
        (
            (0, desired),
            vec![
                cond(
                    reason::AVAILABLE,
                    "False",
                    reason::MINIMUM_REPLICAS_UNAVAILABLE,
                    "Deployment does not have minimum availability.".into(),
                ),
                progressing,
            ],
            obs.requeue(),
        )
    };
    let (ready_count, unavailable) = (counts.0, counts.1 - counts.0);
    let status = DeploymentStatus {
        observed_generation: generation,
        replicas: nonzero(desired),
        updated_replicas: nonzero(desired),
        ready_replicas: nonzero(ready_count),
        available_replicas: nonzero(ready_count),
        unavailable_replicas: nonzero(unavailable),
        conditions: Some(settle(old.and_then(|s| s.conditions.as_ref()), conditions)),
        ..Default::default()
    };
    Outcome::write(status, requeue)
}

/// The status a ReplicaSet's controller writes: ready and available replicas.
pub fn replica_set_status(rs: &ReplicaSet, obs: &Observation) -> Outcome<ReplicaSetStatus> {
    let desired = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let generation = rs.metadata.generation;
    let already_ready = rs.status.as_ref().is_some_and(|s| {
        s.observed_generation == generation && s.ready_replicas.unwrap_or(0) == desired
    });
    let ready = desired == 0 || obs.ready() || (already_ready && !obs.settings.fail);
    let ready_count = if ready { desired } else { 0 };
    let status = ReplicaSetStatus {
        observed_generation: generation,
        replicas: desired,
        fully_labeled_replicas: nonzero(desired),
        ready_replicas: nonzero(ready_count),
        available_replicas: nonzero(ready_count),
        ..Default::default()
    };
    Outcome::write(status, if ready { None } else { obs.requeue() })
}

/// The status a StatefulSet's controller writes, with `currentRevision` moving to
/// `updateRevision` once every replica is ready.
pub fn stateful_set_status(sts: &StatefulSet, obs: &Observation) -> Outcome<StatefulSetStatus> {
    let spec = sts.spec.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1);
    let generation = sts.metadata.generation;
    let name = sts.metadata.name.as_deref().unwrap_or_default();
    let update_revision = format!("{name}-{}", template_hash(&spec.template));
    let old = sts.status.as_ref();
    let already_ready = old.is_some_and(|s| {
        s.observed_generation == generation
            && s.ready_replicas.unwrap_or(0) == desired
            && s.current_revision.as_deref() == Some(update_revision.as_str())
    });
    let ready = desired == 0 || obs.ready() || (already_ready && !obs.settings.fail);
    let status = if ready {
        StatefulSetStatus {
            observed_generation: generation,
            replicas: desired,
            ready_replicas: nonzero(desired),
            current_replicas: nonzero(desired),
            updated_replicas: nonzero(desired),
            available_replicas: Some(desired),
            current_revision: Some(update_revision.clone()),
            update_revision: Some(update_revision),
            collision_count: Some(0),
            ..Default::default()
        }
    } else {
        // Mid-rollout the replicas still count against the old revision until they are
        // replaced; a new StatefulSet starts with both revisions equal.
        let current_revision = old
            .and_then(|s| s.current_revision.clone())
            .unwrap_or_else(|| update_revision.clone());
        let current_replicas = if current_revision == update_revision {
            nonzero(desired)
        } else {
            None
        };
        StatefulSetStatus {
            observed_generation: generation,
            replicas: desired,
            ready_replicas: None,
            current_replicas,
            updated_replicas: nonzero(desired),
            available_replicas: Some(0),
            current_revision: Some(current_revision),
            update_revision: Some(update_revision),
            collision_count: Some(0),
            ..Default::default()
        }
    };
    Outcome::write(status, if ready { None } else { obs.requeue() })
}

/// The status a DaemonSet's controller writes on a one-node cluster.
pub fn daemon_set_status(ds: &DaemonSet, obs: &Observation) -> Outcome<DaemonSetStatus> {
    const NODES: i32 = 1;
    let generation = ds.metadata.generation;
    let already_ready = ds
        .status
        .as_ref()
        .is_some_and(|s| s.observed_generation == generation && s.number_ready == NODES);
    let ready = obs.ready() || (already_ready && !obs.settings.fail);
    let ready_count = if ready { NODES } else { 0 };
    let status = DaemonSetStatus {
        observed_generation: generation,
        desired_number_scheduled: NODES,
        current_number_scheduled: NODES,
        number_misscheduled: 0,
        number_ready: ready_count,
        updated_number_scheduled: Some(NODES),
        number_available: nonzero(ready_count),
        number_unavailable: nonzero(NODES - ready_count),
        ..Default::default()
    };
    Outcome::write(status, if ready { None } else { obs.requeue() })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::obs;
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DaemonSetSpec, DeploymentSpec, ReplicaSetSpec, StatefulSetSpec,
    };
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    fn deployment(replicas: Option<i32>, generation: i64, image: &str) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.name = Some("web".into());
        d.metadata.generation = Some(generation);
        d.spec = Some(DeploymentSpec {
            replicas,
            template: template(image),
            ..Default::default()
        });
        d
    }

    fn condition<'a>(s: &'a DeploymentStatus, type_: &str) -> &'a DeploymentCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap()
    }

    #[test]
    fn deployment_is_progressing_but_unavailable_before_the_delay() {
        let out = deployment_status(&deployment(Some(3), 1, "a"), &obs(500, 2000, false));
        let s = out.status.unwrap();
        assert_eq!(s.observed_generation, Some(1));
        assert_eq!((s.replicas, s.updated_replicas), (Some(3), Some(3)));
        assert_eq!((s.ready_replicas, s.available_replicas), (None, None));
        assert_eq!(s.unavailable_replicas, Some(3));
        let available = condition(&s, "Available");
        assert_eq!(available.status, "False");
        assert_eq!(
            available.reason.as_deref(),
            Some("MinimumReplicasUnavailable")
        );
        assert_eq!(
            condition(&s, "Progressing").reason.as_deref(),
            Some("ReplicaSetUpdated")
        );
        assert_eq!(
            out.requeue_after,
            Some(std::time::Duration::from_millis(1500))
        );
    }

    #[test]
    fn deployment_becomes_available_after_the_delay() {
        let out = deployment_status(&deployment(Some(3), 1, "a"), &obs(2000, 2000, false));
        let s = out.status.unwrap();
        assert_eq!(s.ready_replicas, Some(3));
        assert_eq!(s.available_replicas, Some(3));
        assert_eq!(s.updated_replicas, Some(3));
        assert_eq!(s.unavailable_replicas, None);
        let available = condition(&s, "Available");
        assert_eq!(available.status, "True");
        assert_eq!(
            available.reason.as_deref(),
            Some("MinimumReplicasAvailable")
        );
        let progressing = condition(&s, "Progressing");
        assert_eq!(
            progressing.reason.as_deref(),
            Some("NewReplicaSetAvailable")
        );
        assert!(
            progressing
                .message
                .as_deref()
                .unwrap()
                .starts_with("ReplicaSet \"web-")
        );
        assert_eq!(out.requeue_after, None);
    }

    #[test]
    fn deployment_replicas_default_to_one() {
        let s = deployment_status(&deployment(None, 1, "a"), &obs(0, 0, false))
            .status
            .unwrap();
        assert_eq!(s.ready_replicas, Some(1));
    }

    #[test]
    fn deployment_scaled_to_zero_is_available_at_once() {
        let s = deployment_status(&deployment(Some(0), 1, "a"), &obs(0, 5000, false))
            .status
            .unwrap();
        assert_eq!(condition(&s, "Available").status, "True");
        assert_eq!(s.replicas, None);
    }

    #[test]
    fn failing_deployment_exceeds_its_progress_deadline_after_the_delay() {
        let before = deployment_status(&deployment(Some(1), 1, "a"), &obs(100, 1000, true));
        assert_eq!(
            condition(before.status.as_ref().unwrap(), "Progressing").status,
            "True"
        );
        let after = deployment_status(&deployment(Some(1), 1, "a"), &obs(1000, 1000, true));
        let s = after.status.unwrap();
        let progressing = condition(&s, "Progressing");
        assert_eq!(progressing.status, "False");
        assert_eq!(
            progressing.reason.as_deref(),
            Some("ProgressDeadlineExceeded")
        );
        assert_eq!(condition(&s, "Available").status, "False");
        assert_eq!(s.ready_replicas, None);
        assert_eq!(after.requeue_after, None);
    }

    #[test]
    fn deployment_spec_change_goes_back_to_unavailable_then_available() {
        let mut d = deployment(Some(2), 1, "a");
        d.status = deployment_status(&d, &obs(1000, 1000, false)).status;
        // New generation, first seen just now.
        let mut changed = deployment(Some(2), 2, "b");
        changed.status = d.status.clone();
        let s = deployment_status(&changed, &obs(0, 1000, false))
            .status
            .unwrap();
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(s.ready_replicas, None);
        assert_eq!(condition(&s, "Available").status, "False");
        changed.status = Some(s);
        let s = deployment_status(&changed, &obs(1000, 1000, false))
            .status
            .unwrap();
        assert_eq!(s.ready_replicas, Some(2));
        assert_eq!(condition(&s, "Available").status, "True");
    }

    #[test]
    fn ready_deployment_stays_ready_for_its_generation_after_a_restart() {
        let mut d = deployment(Some(1), 1, "a");
        d.status = deployment_status(&d, &obs(1000, 1000, false)).status;
        let again = deployment_status(&d, &obs(0, 1000, false));
        assert_eq!(again.status, d.status, "recomputing gives the same status");
        assert_eq!(again.requeue_after, None);
    }

    #[test]
    fn recomputing_an_unchanged_deployment_gives_the_same_status() {
        let mut d = deployment(Some(1), 1, "a");
        d.status = deployment_status(&d, &obs(100, 1000, false)).status;
        let later = deployment_status(&d, &obs(200, 1000, false));
        assert_eq!(later.status, d.status);
    }

    #[test]
    fn replica_set_becomes_ready_after_the_delay() {
        let mut rs = ReplicaSet::default();
        rs.metadata.generation = Some(4);
        rs.spec = Some(ReplicaSetSpec {
            replicas: Some(2),
            ..Default::default()
        });
        let before = replica_set_status(&rs, &obs(0, 10, false)).status.unwrap();
        assert_eq!((before.replicas, before.ready_replicas), (2, None));
        let after = replica_set_status(&rs, &obs(10, 10, false)).status.unwrap();
        assert_eq!(after.ready_replicas, Some(2));
        assert_eq!(after.available_replicas, Some(2));
        assert_eq!(after.observed_generation, Some(4));
        let failed = replica_set_status(&rs, &obs(10, 10, true)).status.unwrap();
        assert_eq!(failed.ready_replicas, None);
    }

    fn stateful_set(generation: i64, image: &str) -> StatefulSet {
        let mut sts = StatefulSet::default();
        sts.metadata.name = Some("db".into());
        sts.metadata.generation = Some(generation);
        sts.spec = Some(StatefulSetSpec {
            replicas: Some(3),
            template: template(image),
            ..Default::default()
        });
        sts
    }

    #[test]
    fn stateful_set_becomes_ready_with_current_revision_equal_to_update_revision() {
        let sts = stateful_set(1, "a");
        let before = stateful_set_status(&sts, &obs(0, 100, false))
            .status
            .unwrap();
        assert_eq!(before.ready_replicas, None);
        assert_eq!(before.available_replicas, Some(0));
        assert_eq!(before.current_revision, before.update_revision);
        let after = stateful_set_status(&sts, &obs(100, 100, false))
            .status
            .unwrap();
        assert_eq!(after.ready_replicas, Some(3));
        assert_eq!(after.current_replicas, Some(3));
        assert_eq!(after.updated_replicas, Some(3));
        assert_eq!(after.available_replicas, Some(3));
        assert_eq!(after.observed_generation, Some(1));
        assert!(after.update_revision.as_deref().unwrap().starts_with("db-"));
    }

    #[test]
    fn stateful_set_rollout_keeps_the_old_current_revision_until_ready() {
        let mut sts = stateful_set(1, "a");
        sts.status = stateful_set_status(&sts, &obs(100, 100, false)).status;
        let old_revision = sts.status.as_ref().unwrap().current_revision.clone();
        let mut changed = stateful_set(2, "b");
        changed.status = sts.status.clone();
        let rolling = stateful_set_status(&changed, &obs(0, 100, false))
            .status
            .unwrap();
        assert_eq!(rolling.current_revision, old_revision);
        assert_ne!(rolling.update_revision, old_revision);
        assert_eq!(rolling.current_replicas, None);
        changed.status = Some(rolling);
        let done = stateful_set_status(&changed, &obs(100, 100, false))
            .status
            .unwrap();
        assert_eq!(done.current_revision, done.update_revision);
        assert_eq!(done.ready_replicas, Some(3));
    }

    #[test]
    fn failing_stateful_set_never_gets_ready() {
        let s = stateful_set_status(&stateful_set(1, "a"), &obs(1000, 100, true))
            .status
            .unwrap();
        assert_eq!(s.ready_replicas, None);
    }

    #[test]
    fn daemon_set_schedules_one_pod_and_becomes_ready_after_the_delay() {
        let mut ds = DaemonSet::default();
        ds.metadata.generation = Some(2);
        ds.spec = Some(DaemonSetSpec::default());
        let before = daemon_set_status(&ds, &obs(0, 50, false)).status.unwrap();
        assert_eq!(before.desired_number_scheduled, 1);
        assert_eq!(before.number_ready, 0);
        assert_eq!(before.number_unavailable, Some(1));
        let after = daemon_set_status(&ds, &obs(50, 50, false)).status.unwrap();
        assert_eq!(after.number_ready, 1);
        assert_eq!(after.number_available, Some(1));
        assert_eq!(after.updated_number_scheduled, Some(1));
        assert_eq!(after.number_unavailable, None);
        assert_eq!(after.observed_generation, Some(2));
        let failed = daemon_set_status(&ds, &obs(50, 50, true)).status.unwrap();
        assert_eq!(failed.number_ready, 0);
    }
}
