//! The status of a service, computed from its plan and what its children report: phase,
//! `ready/total`, per-release summaries, exported output names, what is blocking it, `readyAt`
//! and the conditions Ready, DependenciesResolved, Reconciling and Stalled (Valid for catalog
//! templates). Pure: the same old status and observation give the same status, so a no-op
//! reconcile writes nothing (SPEC §1).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use upstart_api::conditions::{ConditionUpdate, READY, RECONCILING, STALLED, VALID, set_condition};
use upstart_api::v1alpha1::{ReleaseSummary, ServicePhase, UpstartServiceStatus};

use crate::constants::{DEPENDENCIES_RESOLVED, reasons};
use crate::plan::{Plan, Problem};

/// What a child HelmRelease reports, as plain data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChildState {
    /// Its phase (`status.phase`), if it has one.
    pub phase: Option<String>,
    /// Ready for its own current generation.
    pub ready: bool,
    /// Its `Ready` condition's message (names and reasons only).
    pub message: Option<String>,
}

/// Everything the status is computed from.
#[derive(Clone, Debug)]
pub struct Observation<'a> {
    /// The service's plan.
    pub plan: &'a Plan,
    /// The children that exist, by release key.
    pub children: BTreeMap<String, ChildState>,
    /// Keys whose child the API server refused, with its message.
    pub apply_failures: BTreeMap<String, String>,
    /// Names of the output keys the service exports now (its releases' external outputs).
    pub exported_outputs: Vec<String>,
}

impl<'a> Observation<'a> {
    /// The plan, with no child yet.
    pub fn new(plan: &'a Plan) -> Self {
        Observation {
            plan,
            children: BTreeMap::new(),
            apply_failures: BTreeMap::new(),
            exported_outputs: Vec::new(),
        }
    }

    fn is_ready(&self, key: &str) -> bool {
        self.plan
            .keys
            .get(key)
            .is_some_and(|k| k.withheld.is_none())
            && !self.apply_failures.contains_key(key)
            && self.children.get(key).is_some_and(|c| c.ready)
    }

    /// Why `key` is not Ready, in one phrase.
    fn why_not_ready(&self, key: &str) -> String {
        if let Some(problem) = self.plan.keys.get(key).and_then(|k| k.withheld.as_ref()) {
            return format!("not created: {}", problem.message());
        }
        if let Some(failure) = self.apply_failures.get(key) {
            return format!("not applied: {failure}");
        }
        match self.children.get(key) {
            None => "not created yet".to_owned(),
            Some(ChildState {
                message: Some(message),
                ..
            }) if !message.is_empty() => message.clone(),
            Some(ChildState {
                phase: Some(phase), ..
            }) => phase.clone(),
            Some(_) => "not reconciled yet".to_owned(),
        }
    }

    /// The key holding the service back, and why: the first release in dependency order that
    /// is not Ready while its sibling dependencies are (else the first one not Ready).
    pub fn blocked_by(&self) -> Option<String> {
        let unready: Vec<&String> = self
            .plan
            .order
            .iter()
            .filter(|k| !self.is_ready(k))
            .collect();
        let blocker = unready
            .iter()
            .find(|key| {
                self.plan.keys[key.as_str()]
                    .siblings
                    .iter()
                    .all(|s| self.is_ready(s))
            })
            .or(unready.first())?;
        Some(format!("{blocker}: {}", self.why_not_ready(blocker)))
    }
}

/// The status of a deployed service for `generation`, starting from `old`.
pub fn next_status(
    old: Option<&UpstartServiceStatus>,
    observation: &Observation<'_>,
    generation: Option<i64>,
    now: &Time,
) -> UpstartServiceStatus {
    let old = old.cloned().unwrap_or_default();
    let plan = observation.plan;
    let total = plan.keys.len();
    let ready = plan.keys.keys().filter(|k| observation.is_ready(k)).count();
    let spec_errors: Vec<&Problem> = plan.spec_errors().collect();
    let resolution: Vec<&Problem> = plan.problems.iter().filter(|p| p.is_resolution()).collect();
    let all_ready = ready == total && spec_errors.is_empty();
    let any_failed = observation
        .children
        .values()
        .any(|c| c.phase.as_deref() == Some("Failed"))
        || !observation.apply_failures.is_empty();
    let same_generation = old.observed_generation == generation;
    let was_ready = same_generation
        && matches!(
            old.phase,
            Some(ServicePhase::Ready | ServicePhase::Degraded)
        );

    let phase = if !spec_errors.is_empty() {
        ServicePhase::Failed
    } else if all_ready {
        ServicePhase::Ready
    } else if any_failed {
        ServicePhase::Failed
    } else if was_ready {
        ServicePhase::Degraded
    } else if observation.children.is_empty() {
        ServicePhase::Pending
    } else {
        ServicePhase::Provisioning
    };

    let blocked_by = if all_ready {
        None
    } else {
        observation.blocked_by()
    };
    let progress = blocked_by
        .clone()
        .unwrap_or_else(|| format!("{ready}/{total} releases Ready"));
    let joined = |problems: &[&Problem]| {
        problems
            .iter()
            .map(|p| p.message())
            .collect::<Vec<_>>()
            .join("; ")
    };

    let mut updates = Vec::new();
    updates.push(match resolution.first() {
        None => ConditionUpdate::new(
            DEPENDENCIES_RESOLVED,
            true,
            reasons::RESOLVED,
            "every dependency name resolved",
        ),
        Some(_) => {
            let reason = if resolution
                .iter()
                .any(|p| matches!(p, Problem::AmbiguousDependency { .. }))
            {
                reasons::AMBIGUOUS_DEPENDENCY
            } else {
                reasons::UNKNOWN_DEPENDENCY
            };
            ConditionUpdate::new(DEPENDENCIES_RESOLVED, false, reason, joined(&resolution))
        }
    });
    if let Some(first) = spec_errors.first() {
        let message = joined(&spec_errors);
        updates.push(ConditionUpdate::new(
            READY,
            false,
            first.reason(),
            message.clone(),
        ));
        updates.push(ConditionUpdate::new(
            RECONCILING,
            false,
            first.reason(),
            "waiting for a spec change",
        ));
        updates.push(ConditionUpdate::new(STALLED, true, first.reason(), message));
    } else {
        if all_ready {
            updates.push(ConditionUpdate::new(
                READY,
                true,
                reasons::SUCCEEDED,
                format!("all {total} releases are Ready"),
            ));
            updates.push(ConditionUpdate::new(
                RECONCILING,
                false,
                reasons::SUCCEEDED,
                "",
            ));
        } else {
            let reason = if !observation.apply_failures.is_empty() {
                reasons::APPLY_FAILED
            } else if any_failed {
                reasons::RELEASE_FAILED
            } else if !resolution.is_empty() {
                reasons::UNKNOWN_DEPENDENCY
            } else {
                reasons::PROGRESSING
            };
            updates.push(ConditionUpdate::new(READY, false, reason, progress.clone()));
            updates.push(ConditionUpdate::new(RECONCILING, true, reason, progress));
        }
        updates.push(ConditionUpdate::new(
            STALLED,
            false,
            reasons::RECONCILED,
            "",
        ));
    }
    let mut conditions = old.conditions.clone();
    for update in updates {
        conditions = set_condition(&conditions, update, generation, now);
    }

    let release_statuses = plan
        .keys
        .iter()
        .map(|(key, k)| {
            let child = observation.children.get(key);
            let message = if k.withheld.is_some() || observation.apply_failures.contains_key(key) {
                Some(observation.why_not_ready(key))
            } else {
                child.and_then(|c| c.message.clone())
            };
            (
                key.clone(),
                ReleaseSummary {
                    name: k.child.clone(),
                    phase: Some(
                        child
                            .and_then(|c| c.phase.clone())
                            .unwrap_or_else(|| "Pending".to_owned()),
                    ),
                    message,
                    ready: observation.is_ready(key),
                },
            )
        })
        .collect();

    let ready_at = if phase == ServicePhase::Ready {
        match (&old.ready_at, same_generation) {
            (Some(at), true) => Some(at.clone()),
            _ => Some(now.clone()),
        }
    } else {
        None
    };
    let exported: BTreeSet<String> = observation.exported_outputs.iter().cloned().collect();

    UpstartServiceStatus {
        observed_generation: generation,
        conditions,
        phase: Some(phase),
        releases: Some(format!("{ready}/{total}")),
        ready_releases: Some(count(ready)),
        total_releases: Some(count(total)),
        release_statuses,
        exported_outputs: exported.into_iter().collect(),
        blocked_by,
        ready_at,
    }
}

/// The status of a catalog template: validated, never deployed. `problems` are the validation
/// messages (empty: valid). Ready follows Valid, so waiting for Ready works on templates too.
pub fn template_status(
    old: Option<&UpstartServiceStatus>,
    problems: &[String],
    releases: usize,
    generation: Option<i64>,
    now: &Time,
) -> UpstartServiceStatus {
    let old = old.cloned().unwrap_or_default();
    let valid = problems.is_empty();
    let (reason, message) = if valid {
        (
            reasons::TEMPLATE_VALID,
            format!("valid template of {releases} releases; templates are never deployed"),
        )
    } else {
        (reasons::TEMPLATE_INVALID, problems.join("; "))
    };
    let mut conditions = old.conditions.clone();
    for update in [
        ConditionUpdate::new(VALID, valid, reason, message.clone()),
        ConditionUpdate::new(READY, valid, reason, message.clone()),
        ConditionUpdate::new(RECONCILING, false, reasons::TEMPLATE, ""),
        ConditionUpdate::new(
            STALLED,
            !valid,
            reason,
            if valid { String::new() } else { message },
        ),
    ] {
        conditions = set_condition(&conditions, update, generation, now);
    }
    UpstartServiceStatus {
        observed_generation: generation,
        conditions,
        // A phase of its own, so that `kubectl get` shows a broken template without reading
        // conditions.
        phase: Some(if valid {
            ServicePhase::Template
        } else {
            ServicePhase::Invalid
        }),
        ..UpstartServiceStatus::default()
    }
}

/// The status of a service being deleted in the foreground: its children are going (each
/// after its dependents, SPEC §2.8) and it waits for them.
pub fn deleting_status(
    old: Option<&UpstartServiceStatus>,
    generation: Option<i64>,
    now: &Time,
) -> UpstartServiceStatus {
    let mut status = old.cloned().unwrap_or_default();
    let message = "deleting: its releases are torn down, dependents first";
    let mut conditions = std::mem::take(&mut status.conditions);
    for update in [
        ConditionUpdate::new(READY, false, reasons::DELETING, message),
        ConditionUpdate::new(RECONCILING, true, reasons::DELETING, message),
        ConditionUpdate::new(STALLED, false, reasons::DELETING, ""),
    ] {
        conditions = set_condition(&conditions, update, generation, now);
    }
    status.conditions = conditions;
    status.observed_generation = generation;
    status.phase = Some(ServicePhase::Deleting);
    status.ready_at = None;
    status
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;
    use upstart_api::conditions::{find, is_ready_for_generation};
    use upstart_api::v1alpha1::UpstartService;

    use super::*;
    use crate::plan::plan;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("valid timestamp"))
    }

    fn service(releases: serde_json::Value) -> UpstartService {
        serde_json::from_value(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "UpstartService",
            "metadata": {"name": "svc", "namespace": "pr-1", "uid": "u", "generation": 1},
            "spec": {"helmReleases": releases}
        }))
        .expect("valid UpstartService")
    }

    fn three() -> UpstartService {
        service(json!({
            "postgres": {"chart": "c/postgres"},
            "redis": {"chart": "c/redis"},
            "app": {"chart": "c/app", "dependencies": [{"name": "postgres"}, {"name": "redis"}]}
        }))
    }

    fn ready_child() -> ChildState {
        ChildState {
            phase: Some("Ready".into()),
            ready: true,
            message: Some("applied and healthy".into()),
        }
    }

    fn condition(status: &UpstartServiceStatus, type_: &str) -> (String, String, String) {
        let c = find(&status.conditions, type_).expect("condition present");
        (c.status.clone(), c.reason.clone(), c.message.clone())
    }

    #[test]
    fn all_children_ready_makes_the_service_ready_with_counts_and_ready_at() {
        let svc = three();
        let plan = plan(&svc, &[], &[]);
        let observation = Observation {
            plan: &plan,
            children: ["postgres", "redis", "app"]
                .into_iter()
                .map(|k| (k.to_owned(), ready_child()))
                .collect(),
            apply_failures: BTreeMap::new(),
            exported_outputs: vec!["url".into(), "API_KEY".into()],
        };
        let status = next_status(None, &observation, Some(1), &at(10));
        assert_eq!(status.phase, Some(ServicePhase::Ready));
        assert_eq!(status.releases.as_deref(), Some("3/3"));
        assert_eq!(
            (status.ready_releases, status.total_releases),
            (Some(3), Some(3))
        );
        assert_eq!(status.ready_at, Some(at(10)));
        assert_eq!(status.blocked_by, None);
        assert_eq!(status.exported_outputs, ["API_KEY", "url"]);
        assert!(is_ready_for_generation(&status.conditions, Some(1)));
        assert_eq!(condition(&status, DEPENDENCIES_RESOLVED).0, "True");
        assert_eq!(condition(&status, STALLED).0, "False");
        assert_eq!(condition(&status, RECONCILING).0, "False");
        assert_eq!(status.release_statuses["app"].name, "svc-app");
        assert!(status.release_statuses["app"].ready);

        let again = next_status(Some(&status), &observation, Some(1), &at(20));
        assert_eq!(status, again, "a no-op reconcile changes nothing");
    }

    #[test]
    fn blocked_by_names_the_first_unready_release_whose_dependencies_are_ready() {
        let svc = three();
        let plan = plan(&svc, &[], &[]);
        let mut children: BTreeMap<String, ChildState> = BTreeMap::new();
        children.insert("postgres".into(), ready_child());
        children.insert(
            "redis".into(),
            ChildState {
                phase: Some("Installing".into()),
                ready: false,
                message: Some("Deployment/redis 0/1 available".into()),
            },
        );
        children.insert(
            "app".into(),
            ChildState {
                phase: Some("WaitingForDependencies".into()),
                ready: false,
                message: Some("waiting for redis: Installing".into()),
            },
        );
        let observation = Observation {
            plan: &plan,
            children,
            ..Observation::new(&plan)
        };
        let status = next_status(None, &observation, Some(1), &at(10));
        assert_eq!(status.phase, Some(ServicePhase::Provisioning));
        assert_eq!(
            status.blocked_by.as_deref(),
            Some("redis: Deployment/redis 0/1 available")
        );
        assert_eq!(status.releases.as_deref(), Some("1/3"));
        assert_eq!(status.ready_at, None);
        let (ready, reason, message) = condition(&status, READY);
        assert_eq!(
            (ready.as_str(), reason.as_str()),
            ("False", reasons::PROGRESSING)
        );
        assert!(message.contains("redis"));
        assert_eq!(condition(&status, RECONCILING).0, "True");
        assert_eq!(
            status.release_statuses["redis"].phase.as_deref(),
            Some("Installing")
        );
    }

    #[test]
    fn nothing_created_yet_is_pending() {
        let svc = three();
        let plan = plan(&svc, &[], &[]);
        let observation = Observation {
            plan: &plan,
            ..Observation::new(&plan)
        };
        let status = next_status(None, &observation, Some(1), &at(10));
        assert_eq!(status.phase, Some(ServicePhase::Pending));
        assert_eq!(status.releases.as_deref(), Some("0/3"));
        assert_eq!(
            status.release_statuses["app"].phase.as_deref(),
            Some("Pending")
        );
        assert!(status.blocked_by.is_some());
    }

    #[test]
    fn unknown_dependency_is_reported_in_dependencies_resolved_and_ready() {
        let svc = service(json!({"app": {"chart": "c/app", "dependencies": [{"name": "later"}]}}));
        let plan = plan(&svc, &[], &[]);
        let mut children = BTreeMap::new();
        children.insert(
            "app".to_owned(),
            ChildState {
                phase: Some("WaitingForDependencies".into()),
                ready: false,
                message: Some("waiting for later: does not exist".into()),
            },
        );
        let observation = Observation {
            plan: &plan,
            children,
            ..Observation::new(&plan)
        };
        let status = next_status(None, &observation, Some(1), &at(10));
        let (resolved, reason, message) = condition(&status, DEPENDENCIES_RESOLVED);
        assert_eq!(resolved, "False");
        assert_eq!(reason, reasons::UNKNOWN_DEPENDENCY);
        assert!(
            message.contains("release app") && message.contains("later"),
            "{message}"
        );
        let (ready, reason, _) = condition(&status, READY);
        assert_eq!(
            (ready.as_str(), reason.as_str()),
            ("False", reasons::UNKNOWN_DEPENDENCY)
        );
        assert_eq!(
            condition(&status, STALLED).0,
            "False",
            "a wait, not a stall"
        );
        assert_eq!(status.phase, Some(ServicePhase::Provisioning));
    }

    #[test]
    fn cycle_stalls_the_service_naming_the_path() {
        let svc = service(json!({
            "a": {"chart": "c/a", "dependencies": [{"name": "b"}]},
            "b": {"chart": "c/b", "dependencies": [{"name": "a"}]}
        }));
        let plan = plan(&svc, &[], &[]);
        let observation = Observation {
            plan: &plan,
            ..Observation::new(&plan)
        };
        let status = next_status(None, &observation, Some(1), &at(10));
        assert_eq!(status.phase, Some(ServicePhase::Failed));
        let (ready, reason, message) = condition(&status, READY);
        assert_eq!(ready, "False");
        assert_eq!(reason, reasons::DEPENDENCY_CYCLE);
        assert!(
            message.contains("svc/a -> svc/b -> svc/a")
                || message.contains("svc/b -> svc/a -> svc/b"),
            "{message}"
        );
        assert_eq!(condition(&status, STALLED).0, "True");
        assert_eq!(condition(&status, RECONCILING).0, "False");
        assert!(
            status.release_statuses["a"]
                .message
                .as_deref()
                .is_some_and(|m| m.contains("dependency cycle"))
        );
    }

    #[test]
    fn failed_child_fails_the_service_and_its_message_is_surfaced() {
        let svc = service(json!({"db": {"chart": "c/postgres"}}));
        let plan = plan(&svc, &[], &[]);
        let mut children = BTreeMap::new();
        children.insert(
            "db".to_owned(),
            ChildState {
                phase: Some("Failed".into()),
                ready: false,
                message: Some("Secret/postgres belongs to release other-postgres".into()),
            },
        );
        let observation = Observation {
            plan: &plan,
            children,
            ..Observation::new(&plan)
        };
        let status = next_status(None, &observation, Some(1), &at(10));
        assert_eq!(status.phase, Some(ServicePhase::Failed));
        let (_, reason, message) = condition(&status, READY);
        assert_eq!(reason, reasons::RELEASE_FAILED);
        assert_eq!(
            message,
            "db: Secret/postgres belongs to release other-postgres"
        );
    }

    #[test]
    fn ready_service_losing_a_release_is_degraded_and_loses_ready_at() {
        let svc = service(json!({"db": {"chart": "c/postgres"}}));
        let plan = plan(&svc, &[], &[]);
        let mut children = BTreeMap::from([("db".to_owned(), ready_child())]);
        let ready = next_status(
            None,
            &Observation {
                plan: &plan,
                children: children.clone(),
                ..Observation::new(&plan)
            },
            Some(1),
            &at(10),
        );
        children.insert(
            "db".into(),
            ChildState {
                phase: Some("Upgrading".into()),
                ready: false,
                message: Some("Deployment/db 0/1 available".into()),
            },
        );
        let degraded = next_status(
            Some(&ready),
            &Observation {
                plan: &plan,
                children: children.clone(),
                ..Observation::new(&plan)
            },
            Some(1),
            &at(20),
        );
        assert_eq!(degraded.phase, Some(ServicePhase::Degraded));
        assert_eq!(degraded.ready_at, None);
        let ready_time = |s: &UpstartServiceStatus| {
            find(&s.conditions, READY).map(|c| c.last_transition_time.clone())
        };
        assert_eq!(ready_time(&degraded), Some(at(20)));

        // A new generation is provisioned afresh, not degraded.
        let next = next_status(
            Some(&ready),
            &Observation {
                plan: &plan,
                children,
                ..Observation::new(&plan)
            },
            Some(2),
            &at(30),
        );
        assert_eq!(next.phase, Some(ServicePhase::Provisioning));
    }

    #[test]
    fn ready_at_is_kept_while_ready_and_restarts_with_a_new_generation() {
        let svc = service(json!({"db": {"chart": "c/postgres"}}));
        let plan = plan(&svc, &[], &[]);
        let observation = Observation {
            plan: &plan,
            children: BTreeMap::from([("db".to_owned(), ready_child())]),
            ..Observation::new(&plan)
        };
        let first = next_status(None, &observation, Some(1), &at(10));
        let later = next_status(Some(&first), &observation, Some(1), &at(50));
        assert_eq!(later.ready_at, Some(at(10)));
        let new_generation = next_status(Some(&first), &observation, Some(2), &at(60));
        assert_eq!(new_generation.ready_at, Some(at(60)));
    }

    #[test]
    fn refused_child_is_reported_as_an_apply_failure() {
        let svc = service(json!({"db": {"chart": "c/postgres"}}));
        let plan = plan(&svc, &[], &[]);
        let observation = Observation {
            plan: &plan,
            apply_failures: BTreeMap::from([(
                "db".to_owned(),
                "spec.releaseName: too long".to_owned(),
            )]),
            ..Observation::new(&plan)
        };
        let status = next_status(None, &observation, Some(1), &at(10));
        assert_eq!(status.phase, Some(ServicePhase::Failed));
        let (_, reason, message) = condition(&status, READY);
        assert_eq!(reason, reasons::APPLY_FAILED);
        assert!(message.contains("db: not applied"), "{message}");
    }

    #[test]
    fn service_deleted_in_the_foreground_is_deleting_and_not_ready() {
        let svc = service(json!({"db": {"chart": "c/postgres"}}));
        let plan = plan(&svc, &[], &[]);
        let observation = Observation {
            plan: &plan,
            children: BTreeMap::from([("db".to_owned(), ready_child())]),
            ..Observation::new(&plan)
        };
        let ready = next_status(None, &observation, Some(1), &at(10));
        let deleting = deleting_status(Some(&ready), Some(1), &at(20));
        assert_eq!(deleting.phase, Some(ServicePhase::Deleting));
        assert_eq!(condition(&deleting, READY).0, "False");
        assert_eq!(deleting.ready_at, None);
        assert_eq!(deleting, deleting_status(Some(&deleting), Some(1), &at(30)));
    }

    #[test]
    fn template_status_follows_validity_and_is_stable() {
        let valid = template_status(None, &[], 4, Some(1), &at(10));
        assert_eq!(valid.phase, Some(ServicePhase::Template));
        assert_eq!(condition(&valid, VALID).0, "True");
        assert_eq!(condition(&valid, READY).0, "True");
        assert_eq!(
            valid,
            template_status(Some(&valid), &[], 4, Some(1), &at(20))
        );
        let invalid = template_status(
            Some(&valid),
            &["release app: unknown name pg".to_owned()],
            4,
            Some(2),
            &at(30),
        );
        let (status, reason, message) = condition(&invalid, VALID);
        assert_eq!(status, "False");
        assert_eq!(reason, reasons::TEMPLATE_INVALID);
        assert!(message.contains("release app"));
        assert_eq!(condition(&invalid, STALLED).0, "True");
        assert_eq!(invalid.phase, Some(ServicePhase::Invalid));
        let fixed = template_status(Some(&invalid), &[], 4, Some(3), &at(40));
        assert_eq!(fixed.phase, Some(ServicePhase::Template));
    }
}
