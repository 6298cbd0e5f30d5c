//! Condition types, reasons and the one rule for updating them: `lastTransitionTime` moves only
//! when a condition's status flips, so a no-op reconcile leaves status untouched.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The summary condition every resource has.
pub const READY: &str = "Ready";
/// HelmRelease: every dependency is Ready for its own current generation.
pub const DEPENDENCIES_READY: &str = "DependenciesReady";
/// Work is in progress toward the current generation.
pub const RECONCILING: &str = "Reconciling";
/// Progress needs a spec change: retrying would not help.
pub const STALLED: &str = "Stalled";
/// Catalog templates: schema, graph and expressions are valid.
pub const VALID: &str = "Valid";
/// HelmRelease: its chart repository answered the last fetch. Set False (with the repository
/// named) while a chart fetched before is served during an outage, so Ready stays as it was.
pub const REPOSITORY_REACHABLE: &str = "RepositoryReachable";

/// Condition status values.
pub const TRUE: &str = "True";
pub const FALSE: &str = "False";
pub const UNKNOWN: &str = "Unknown";

/// A condition as a reconciler decides it, before bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionUpdate<'a> {
    pub type_: &'a str,
    pub status: bool,
    pub reason: &'a str,
    pub message: String,
}

impl<'a> ConditionUpdate<'a> {
    pub fn new(type_: &'a str, status: bool, reason: &'a str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// Returns `conditions` with `update` applied for `generation`. The transition time is kept
/// unless the status flips (or the condition is new); everything else follows the update.
pub fn set_condition(
    conditions: &[Condition],
    update: ConditionUpdate<'_>,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let status = if update.status { TRUE } else { FALSE };
    let mut out: Vec<Condition> = conditions.to_vec();
    let new = |last_transition_time: Time| Condition {
        type_: update.type_.to_owned(),
        status: status.to_owned(),
        reason: update.reason.to_owned(),
        message: update.message.clone(),
        observed_generation: generation,
        last_transition_time,
    };
    match out.iter_mut().find(|c| c.type_ == update.type_) {
        Some(existing) => {
            let time = if existing.status == status {
                existing.last_transition_time.clone()
            } else {
                now.clone()
            };
            *existing = new(time);
        }
        None => out.push(new(now.clone())),
    }
    out
}

/// The condition of that type, if any.
pub fn find<'c>(conditions: &'c [Condition], type_: &str) -> Option<&'c Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of that type is `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == TRUE)
}

/// Whether `Ready` is `True` *for this generation*: a Ready from an older spec does not count.
pub fn is_ready_for_generation(conditions: &[Condition], generation: Option<i64>) -> bool {
    find(conditions, READY).is_some_and(|c| {
        c.status == TRUE && (generation.is_none() || c.observed_generation == generation)
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("valid timestamp"))
    }

    #[test]
    fn a_new_condition_gets_the_current_time() {
        let out = set_condition(
            &[],
            ConditionUpdate::new(READY, false, "Pending", "waiting"),
            Some(1),
            &at(10),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].last_transition_time, at(10));
        assert_eq!(out[0].status, FALSE);
        assert_eq!(out[0].observed_generation, Some(1));
    }

    #[test]
    fn transition_time_stays_when_only_reason_or_message_change() {
        let first = set_condition(
            &[],
            ConditionUpdate::new(READY, false, "A", "one"),
            Some(1),
            &at(10),
        );
        let second = set_condition(
            &first,
            ConditionUpdate::new(READY, false, "B", "two"),
            Some(2),
            &at(20),
        );
        assert_eq!(second[0].last_transition_time, at(10));
        assert_eq!(second[0].reason, "B");
        assert_eq!(second[0].message, "two");
        assert_eq!(second[0].observed_generation, Some(2));
    }

    #[test]
    fn transition_time_moves_when_status_flips() {
        let first = set_condition(
            &[],
            ConditionUpdate::new(READY, false, "A", ""),
            Some(1),
            &at(10),
        );
        let second = set_condition(
            &first,
            ConditionUpdate::new(READY, true, "Ready", ""),
            Some(1),
            &at(20),
        );
        assert_eq!(second[0].last_transition_time, at(20));
    }

    #[test]
    fn an_unchanged_update_returns_identical_conditions() {
        let first = set_condition(
            &[],
            ConditionUpdate::new(READY, true, "Ready", "ok"),
            Some(3),
            &at(10),
        );
        let again = set_condition(
            &first,
            ConditionUpdate::new(READY, true, "Ready", "ok"),
            Some(3),
            &at(99),
        );
        assert_eq!(first, again);
    }

    #[test]
    fn ready_from_an_older_generation_does_not_count() {
        let conditions = set_condition(
            &[],
            ConditionUpdate::new(READY, true, "Ready", ""),
            Some(1),
            &at(1),
        );
        assert!(is_ready_for_generation(&conditions, Some(1)));
        assert!(!is_ready_for_generation(&conditions, Some(2)));
    }
}
