//! The status a decision leads to: phase, conditions (Ready, DependenciesReady, Reconciling,
//! Stalled) and timings. Pure: the same old status and decision give the same status, so a
//! no-op reconcile writes nothing (SPEC §1).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use upstart_api::conditions::{
    ConditionUpdate, DEPENDENCIES_READY, READY, RECONCILING, REPOSITORY_REACHABLE, STALLED, find,
    set_condition,
};
use upstart_api::v1alpha1::{HelmReleasePhase, HelmReleaseStatus, ReleaseTimings};

use crate::constants::reasons;
use crate::decide::{Apply, Decision};

/// The phase a decision puts the release in. `old` tells an install from an upgrade while the
/// release waits for health.
pub fn phase(decision: &Decision, old: Option<HelmReleasePhase>) -> HelmReleasePhase {
    match decision {
        Decision::Suspended => HelmReleasePhase::Suspended,
        Decision::Pending => HelmReleasePhase::Pending,
        Decision::WaitForDependencies { .. } | Decision::WaitForOutputs { .. } => {
            HelmReleasePhase::WaitingForDependencies
        }
        Decision::SpecError { .. } | Decision::Failed { .. } => HelmReleasePhase::Failed,
        Decision::Apply(Apply { upgrade, .. }) => {
            if *upgrade {
                HelmReleasePhase::Upgrading
            } else {
                HelmReleasePhase::Installing
            }
        }
        Decision::WaitHealthy { .. } | Decision::WaitForPublishedOutputs { .. } => match old {
            Some(HelmReleasePhase::Installing) => HelmReleasePhase::Installing,
            _ => HelmReleasePhase::Upgrading,
        },
        Decision::Ready | Decision::Reapply(_) => HelmReleasePhase::Ready,
    }
}

/// The status after `decision` for `generation`, starting from `old`. Fields the decision does
/// not speak about (inventory, digests, version) are kept: the caller sets them after an apply.
pub fn next_status(
    old: Option<&HelmReleaseStatus>,
    decision: &Decision,
    generation: Option<i64>,
    now: &Time,
) -> HelmReleaseStatus {
    let mut status = old.cloned().unwrap_or_default();
    let new_generation = status.observed_generation != generation;
    status.phase = Some(phase(decision, status.phase));
    status.observed_generation = generation;

    let mut conditions = std::mem::take(&mut status.conditions);
    for update in condition_updates(decision) {
        conditions = set_condition(&conditions, update, generation, now);
    }
    status.conditions = conditions;

    let mut timings = status.timings.take().unwrap_or_default();
    if new_generation {
        // Timings describe this generation: a spec change starts the clock again.
        timings = ReleaseTimings {
            created_at: timings.created_at,
            ..ReleaseTimings::default()
        };
    }
    timings.created_at.get_or_insert_with(|| now.clone());
    if matches!(decision, Decision::Apply(_)) {
        timings.started_at.get_or_insert_with(|| now.clone());
    }
    if matches!(decision, Decision::Ready | Decision::Reapply(_)) {
        timings.ready_at.get_or_insert_with(|| now.clone());
    }
    status.timings = Some(timings);
    status
}

/// The status while an apply waits within its run (a hook still running, a CRD not yet
/// Established): the phase of `decision`, Ready and Reconciling saying what it waits for.
pub fn applying_status(
    old: Option<&HelmReleaseStatus>,
    decision: &Decision,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) -> HelmReleaseStatus {
    let mut status = next_status(old, decision, generation, now);
    let mut conditions = std::mem::take(&mut status.conditions);
    for update in [
        ConditionUpdate::new(READY, false, reasons::APPLYING, message),
        ConditionUpdate::new(RECONCILING, true, reasons::APPLYING, message),
    ] {
        conditions = set_condition(&conditions, update, generation, now);
    }
    status.conditions = conditions;
    status
}

/// The status after a transient failure (fetch, render, apply, hook): Ready=False naming the
/// failure. The same failure again gives the same status: a counter here would change status
/// on every retry and wake the release at once, defeating the backoff (which is kept in
/// memory by the runtime instead). `message` must hold no value.
pub fn failure_status(
    old: Option<&HelmReleaseStatus>,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) -> HelmReleaseStatus {
    let mut status = old.cloned().unwrap_or_default();
    status.phase = Some(HelmReleasePhase::Failed);
    status.observed_generation = generation;
    let mut conditions = std::mem::take(&mut status.conditions);
    for update in [
        ConditionUpdate::new(READY, false, reason, message),
        ConditionUpdate::new(RECONCILING, true, reason, "retrying with backoff"),
        ConditionUpdate::new(STALLED, false, reason, ""),
    ] {
        conditions = set_condition(&conditions, update, generation, now);
    }
    status.conditions = conditions;
    status
}

/// `status` after a chart fetch: `outage` when the chart was served from the cache because its
/// repository could not be read, or its git ref no longer exists (reason GitRefNotFound). The
/// outage is its own condition, RepositoryReachable=False, and leaves Ready alone: a release
/// that was Ready stays so, and nothing depending on it follows it down. Once the repository
/// answers the condition turns True; a release that never saw an outage gets no condition at
/// all (no status change).
pub fn with_repository_reachability(
    mut status: HelmReleaseStatus,
    outage: Option<&upstart_chart_source::Stale>,
    generation: Option<i64>,
    now: &Time,
) -> HelmReleaseStatus {
    let update = match outage {
        Some(stale) if stale.ref_deleted => ConditionUpdate::new(
            REPOSITORY_REACHABLE,
            false,
            reasons::GIT_REF_NOT_FOUND,
            format!(
                "{}; the chart fetched before is kept until the ref is back or the release names another",
                stale.error
            ),
        ),
        Some(upstart_chart_source::Stale {
            repository, error, ..
        }) => ConditionUpdate::new(
            REPOSITORY_REACHABLE,
            false,
            reasons::REPOSITORY_UNAVAILABLE,
            format!(
                "chart repository {repository} is unavailable ({error}); the chart fetched before is used until it answers"
            ),
        ),
        None if find(&status.conditions, REPOSITORY_REACHABLE).is_some() => ConditionUpdate::new(
            REPOSITORY_REACHABLE,
            true,
            reasons::REPOSITORY_REACHABLE,
            "the chart repository answered",
        ),
        None => return status,
    };
    status.conditions = set_condition(&status.conditions, update, generation, now);
    status
}

/// The status of a deleted release waiting for its teardown (dependents first).
pub fn deleting_status(
    old: Option<&HelmReleaseStatus>,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) -> HelmReleaseStatus {
    let mut status = old.cloned().unwrap_or_default();
    status.phase = Some(HelmReleasePhase::Deleting);
    status.observed_generation = generation;
    let mut conditions = std::mem::take(&mut status.conditions);
    for update in [
        ConditionUpdate::new(READY, false, reasons::DELETING, message),
        ConditionUpdate::new(RECONCILING, true, reasons::DELETING, message),
        ConditionUpdate::new(STALLED, false, reasons::DELETING, ""),
    ] {
        conditions = set_condition(&conditions, update, generation, now);
    }
    status.conditions = conditions;
    status
}

fn condition_updates(decision: &Decision) -> Vec<ConditionUpdate<'_>> {
    let ready = |reason, message: &str| ConditionUpdate::new(READY, false, reason, message);
    let reconciling =
        |status, reason, message: &str| ConditionUpdate::new(RECONCILING, status, reason, message);
    let not_stalled = ConditionUpdate::new(STALLED, false, reasons::RECONCILED, "");
    let dependencies_ready = ConditionUpdate::new(
        DEPENDENCIES_READY,
        true,
        reasons::DEPENDENCIES_READY,
        "every dependency is Ready",
    );
    match decision {
        Decision::Suspended => vec![
            ready(reasons::SUSPENDED, "reconciliation is suspended"),
            reconciling(false, reasons::SUSPENDED, "reconciliation is suspended"),
            not_stalled,
        ],
        Decision::Pending => vec![
            ready(reasons::PROGRESSING, "evaluating values"),
            reconciling(true, reasons::PROGRESSING, "evaluating values"),
            not_stalled,
        ],
        Decision::WaitForDependencies { message } => vec![
            ConditionUpdate::new(
                DEPENDENCIES_READY,
                false,
                reasons::DEPENDENCIES_NOT_READY,
                message.as_str(),
            ),
            ready(reasons::DEPENDENCIES_NOT_READY, message),
            reconciling(true, reasons::DEPENDENCIES_NOT_READY, message),
            not_stalled,
        ],
        Decision::SpecError { reason, message } => {
            let mut updates = vec![
                ready(reason, message),
                reconciling(false, reason, "waiting for a spec change"),
                ConditionUpdate::new(STALLED, true, reason, message.as_str()),
            ];
            if reason == upstart_dag::reasons::AMBIGUOUS_DEPENDENCY {
                updates.push(ConditionUpdate::new(
                    DEPENDENCIES_READY,
                    false,
                    reason,
                    message.as_str(),
                ));
            }
            updates
        }
        Decision::WaitForOutputs { reason, message } => vec![
            ConditionUpdate::new(
                DEPENDENCIES_READY,
                false,
                reasons::MISSING_OUTPUTS,
                message.as_str(),
            ),
            ready(reason, message),
            reconciling(true, reason, message),
            not_stalled,
        ],
        Decision::Apply(_) => vec![
            dependencies_ready,
            ready(reasons::APPLYING, "applied; waiting for workloads"),
            reconciling(true, reasons::APPLYING, "applied; waiting for workloads"),
            not_stalled,
        ],
        Decision::WaitHealthy { message } => vec![
            dependencies_ready,
            ready(reasons::PROGRESSING, message),
            reconciling(true, reasons::PROGRESSING, message),
            not_stalled,
        ],
        Decision::Failed { message } => vec![
            dependencies_ready,
            ready(reasons::HEALTH_CHECK_FAILED, message),
            reconciling(false, reasons::HEALTH_CHECK_FAILED, message),
            not_stalled,
        ],
        Decision::WaitForPublishedOutputs { message } => vec![
            dependencies_ready,
            ready(reasons::OUTPUTS_NOT_PUBLISHED, message),
            reconciling(true, reasons::OUTPUTS_NOT_PUBLISHED, message),
            not_stalled,
        ],
        Decision::Ready | Decision::Reapply(_) => vec![
            dependencies_ready,
            ConditionUpdate::new(READY, true, reasons::SUCCEEDED, "applied and healthy"),
            reconciling(false, reasons::SUCCEEDED, "applied and healthy"),
            not_stalled,
        ],
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;
    use upstart_api::conditions::is_ready_for_generation;

    use super::*;
    use crate::decide::Reapply;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("valid timestamp"))
    }

    fn status_of(condition: &HelmReleaseStatus, type_: &str) -> String {
        find(&condition.conditions, type_)
            .map(|c| c.status.clone())
            .unwrap_or_default()
    }

    #[test]
    fn ready_decision_sets_every_condition_and_the_ready_phase() {
        let status = next_status(None, &Decision::Ready, Some(3), &at(10));
        assert_eq!(status.phase, Some(HelmReleasePhase::Ready));
        assert_eq!(status.observed_generation, Some(3));
        assert!(is_ready_for_generation(&status.conditions, Some(3)));
        assert_eq!(status_of(&status, DEPENDENCIES_READY), "True");
        assert_eq!(status_of(&status, RECONCILING), "False");
        assert_eq!(status_of(&status, STALLED), "False");
        assert_eq!(status.timings.and_then(|t| t.ready_at), Some(at(10)));
    }

    #[test]
    fn apply_waiting_for_a_hook_says_so_in_the_install_phase() {
        let decision = Decision::Apply(Apply {
            upgrade: false,
            drift: vec![],
        });
        let message = "waiting for hook Job/migrate (pre-install)";
        let status = applying_status(None, &decision, message, Some(1), &at(10));
        assert_eq!(status.phase, Some(HelmReleasePhase::Installing));
        let ready = find(&status.conditions, READY).expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.message.as_str()),
            ("False", message)
        );
        assert_eq!(status_of(&status, RECONCILING), "True");
        let again = applying_status(Some(&status), &decision, message, Some(1), &at(20));
        assert_eq!(again, status, "the same wait writes nothing");
    }

    #[test]
    fn repeating_a_decision_changes_nothing_in_status() {
        for decision in every_decision() {
            let first = next_status(None, &decision, Some(1), &at(10));
            let second = next_status(Some(&first), &decision, Some(1), &at(20));
            assert_eq!(first, second, "{decision:?}");
        }
    }

    #[test]
    fn ready_is_always_present() {
        for decision in every_decision() {
            let status = next_status(None, &decision, Some(1), &at(10));
            assert!(find(&status.conditions, READY).is_some(), "{decision:?}");
        }
    }

    #[test]
    fn transition_time_moves_only_when_ready_flips() {
        let waiting = Decision::WaitHealthy {
            message: "Deployment/app 0/1 available".into(),
        };
        let first = next_status(None, &waiting, Some(1), &at(10));
        let other_wait = Decision::WaitHealthy {
            message: "Deployment/app 0/2 available".into(),
        };
        let second = next_status(Some(&first), &other_wait, Some(1), &at(20));
        let ready_time = |s: &HelmReleaseStatus| {
            find(&s.conditions, READY).map(|c| c.last_transition_time.clone())
        };
        assert_eq!(ready_time(&second), Some(at(10)));
        let ready = next_status(Some(&second), &Decision::Ready, Some(1), &at(30));
        assert_eq!(ready_time(&ready), Some(at(30)));
    }

    #[test]
    fn waiting_for_dependencies_names_them_in_two_conditions() {
        let decision = Decision::WaitForDependencies {
            message: "waiting for postgres: does not exist".into(),
        };
        let status = next_status(None, &decision, Some(1), &at(10));
        assert_eq!(status.phase, Some(HelmReleasePhase::WaitingForDependencies));
        for type_ in [READY, DEPENDENCIES_READY] {
            let condition = find(&status.conditions, type_).expect("condition present");
            assert_eq!(condition.status, "False");
            assert_eq!(condition.reason, reasons::DEPENDENCIES_NOT_READY);
            assert!(condition.message.contains("postgres"));
        }
        assert_eq!(status_of(&status, RECONCILING), "True");
    }

    #[test]
    fn spec_error_stalls_the_release_and_stops_reconciling() {
        let decision = Decision::SpecError {
            reason: "ExpressionSyntax".into(),
            message: "spec.values.url: unexpected end".into(),
        };
        let status = next_status(None, &decision, Some(1), &at(10));
        assert_eq!(status.phase, Some(HelmReleasePhase::Failed));
        assert_eq!(status_of(&status, STALLED), "True");
        assert_eq!(status_of(&status, RECONCILING), "False");
        assert_eq!(
            find(&status.conditions, READY).map(|c| c.reason.as_str()),
            Some("ExpressionSyntax")
        );
    }

    #[test]
    fn ambiguous_dependency_also_marks_dependencies_not_ready() {
        let decision = Decision::SpecError {
            reason: "AmbiguousDependency".into(),
            message: "dependency db names both".into(),
        };
        let status = next_status(None, &decision, Some(1), &at(10));
        assert_eq!(status_of(&status, DEPENDENCIES_READY), "False");
    }

    #[test]
    fn apply_is_installing_first_and_upgrading_after() {
        let install = Decision::Apply(Apply {
            upgrade: false,
            drift: vec![],
        });
        let status = next_status(None, &install, Some(1), &at(10));
        assert_eq!(status.phase, Some(HelmReleasePhase::Installing));
        assert_eq!(
            status.timings.as_ref().and_then(|t| t.started_at.clone()),
            Some(at(10))
        );
        let waiting = Decision::WaitHealthy {
            message: "Deployment/app 0/1 available".into(),
        };
        let status = next_status(Some(&status), &waiting, Some(1), &at(20));
        assert_eq!(status.phase, Some(HelmReleasePhase::Installing));

        let upgrade = Decision::Apply(Apply {
            upgrade: true,
            drift: vec![],
        });
        let status = next_status(Some(&status), &upgrade, Some(1), &at(30));
        assert_eq!(status.phase, Some(HelmReleasePhase::Upgrading));
        let status = next_status(Some(&status), &waiting, Some(1), &at(40));
        assert_eq!(status.phase, Some(HelmReleasePhase::Upgrading));
    }

    #[test]
    fn new_generation_restarts_the_timings_but_keeps_creation() {
        let ready = next_status(None, &Decision::Ready, Some(1), &at(10));
        let apply = Decision::Apply(Apply {
            upgrade: true,
            drift: vec![],
        });
        let status = next_status(Some(&ready), &apply, Some(2), &at(20));
        let timings = status.timings.expect("timings");
        assert_eq!(timings.created_at, Some(at(10)));
        assert_eq!(timings.started_at, Some(at(20)));
        assert_eq!(timings.ready_at, None);
    }

    #[test]
    fn a_repository_outage_is_its_own_condition_and_leaves_ready_alone() {
        let ready = next_status(None, &Decision::Ready, Some(1), &at(0));
        // No outage ever: no condition, the status is as it was.
        assert_eq!(
            with_repository_reachability(ready.clone(), None, Some(1), &at(5)),
            ready
        );
        let reapplied = next_status(
            Some(&ready),
            &Decision::Reapply(Reapply { drift: Vec::new() }),
            Some(1),
            &at(10),
        );
        let down = with_repository_reachability(
            reapplied,
            Some(&upstart_chart_source::Stale {
                repository: "http://charts.example.com".into(),
                error: "http://charts.example.com/index.yaml answered HTTP 500".into(),
                ref_deleted: false,
            }),
            Some(1),
            &at(10),
        );
        assert_eq!(status_of(&down, READY), "True");
        assert_eq!(down.phase, Some(HelmReleasePhase::Ready));
        let condition = find(&down.conditions, REPOSITORY_REACHABLE).unwrap();
        assert_eq!(
            (condition.status.as_str(), condition.reason.as_str()),
            ("False", reasons::REPOSITORY_UNAVAILABLE)
        );
        assert!(
            condition.message.contains("http://charts.example.com "),
            "{}",
            condition.message
        );
        assert_eq!(
            find(&down.conditions, READY).unwrap().last_transition_time,
            find(&ready.conditions, READY).unwrap().last_transition_time
        );
        let back = with_repository_reachability(down, None, Some(1), &at(20));
        let condition = find(&back.conditions, REPOSITORY_REACHABLE).unwrap();
        assert_eq!(
            (condition.status.as_str(), condition.reason.as_str()),
            ("True", reasons::REPOSITORY_REACHABLE)
        );
    }

    #[test]
    fn periodic_reapply_leaves_a_ready_status_untouched() {
        let ready = next_status(None, &Decision::Ready, Some(1), &at(10));
        let reapplied = next_status(
            Some(&ready),
            &Decision::Reapply(Reapply { drift: vec![] }),
            Some(1),
            &at(20),
        );
        assert_eq!(ready, reapplied);
    }

    #[test]
    fn ready_from_an_older_generation_does_not_count() {
        let ready = next_status(None, &Decision::Ready, Some(1), &at(10));
        assert!(!is_ready_for_generation(&ready.conditions, Some(2)));
    }

    #[test]
    fn repeated_transient_failure_leaves_status_unchanged() {
        let failed = |old| failure_status(old, "ChartFetch", "unreachable", Some(1), &at(10));
        let first = failed(None);
        let second = failure_status(Some(&first), "ChartFetch", "unreachable", Some(1), &at(20));
        assert_eq!(first, second);
        assert_eq!(second.phase, Some(HelmReleasePhase::Failed));
        assert_eq!(status_of(&second, STALLED), "False");
        assert_eq!(status_of(&second, RECONCILING), "True");
        let recovered = next_status(Some(&second), &Decision::Ready, Some(1), &at(30));
        assert_eq!(recovered.phase, Some(HelmReleasePhase::Ready));
    }

    #[test]
    fn deleting_release_is_not_ready_and_names_what_it_waits_for() {
        let ready = next_status(None, &Decision::Ready, Some(1), &at(10));
        let status = deleting_status(
            Some(&ready),
            "waiting for dependents: app",
            Some(1),
            &at(20),
        );
        assert_eq!(status.phase, Some(HelmReleasePhase::Deleting));
        let condition = find(&status.conditions, READY).expect("Ready");
        assert_eq!(condition.status, "False");
        assert!(condition.message.contains("app"));
        let again = deleting_status(
            Some(&status),
            "waiting for dependents: app",
            Some(1),
            &at(30),
        );
        assert_eq!(status, again);
    }

    #[test]
    fn suspended_release_is_not_ready_and_not_reconciling() {
        let status = next_status(None, &Decision::Suspended, Some(1), &at(10));
        assert_eq!(status.phase, Some(HelmReleasePhase::Suspended));
        assert_eq!(status_of(&status, READY), "False");
        assert_eq!(status_of(&status, RECONCILING), "False");
    }

    fn every_decision() -> Vec<Decision> {
        vec![
            Decision::Suspended,
            Decision::Pending,
            Decision::WaitForDependencies {
                message: "m".into(),
            },
            Decision::SpecError {
                reason: "R".into(),
                message: "m".into(),
            },
            Decision::WaitForOutputs {
                reason: "MissingOutput".into(),
                message: "m".into(),
            },
            Decision::Apply(Apply {
                upgrade: false,
                drift: vec![],
            }),
            Decision::WaitHealthy {
                message: "m".into(),
            },
            Decision::Failed {
                message: "m".into(),
            },
            Decision::WaitForPublishedOutputs {
                message: "m".into(),
            },
            Decision::Reapply(Reapply { drift: vec![] }),
            Decision::Ready,
        ]
    }
}
