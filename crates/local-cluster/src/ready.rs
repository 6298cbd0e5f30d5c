//! Waiting until applied objects are Ready: what an object's `Ready` condition says (a pure
//! function), which objects are waited for, and the polling loop.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::apply::Applied;
use crate::error::Error;
use crate::operators::ReportedKinds;

/// How often readiness is checked.
const READY_POLL: Duration = Duration::from_millis(200);

/// What an object's `Ready` condition says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// The object has no `Ready` condition (yet).
    NoCondition,
    /// `Ready=True` for the object's current generation.
    Ready,
    /// `Ready` is `False` or `Unknown`, with its reason and message when given.
    NotReady { status: String, detail: String },
    /// `Ready=True`, but for an older generation: the latest spec was not assessed yet.
    Stale { observed: i64, generation: i64 },
}

/// The readiness of `object` according to `status.conditions[type=Ready]`. A condition that
/// carries an `observedGeneration` older than `metadata.generation` speaks about an older spec.
pub fn readiness(object: &Value) -> Readiness {
    let Some(condition) = object["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
    else {
        return Readiness::NoCondition;
    };
    let status = condition["status"].as_str().unwrap_or("Unknown");
    if status == "True" {
        let observed = condition["observedGeneration"].as_i64();
        let generation = object["metadata"]["generation"].as_i64();
        return match (observed, generation) {
            (Some(observed), Some(generation)) if observed < generation => Readiness::Stale {
                observed,
                generation,
            },
            _ => Readiness::Ready,
        };
    }
    let detail = [&condition["reason"], &condition["message"]]
        .iter()
        .filter_map(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    Readiness::NotReady {
        status: status.to_owned(),
        detail,
    }
}

/// Whether an object is waited for, and what it is waiting for when it is not Ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Ready.
    Ready,
    /// Not Ready yet; the text says why (`Kind ns/name is Ready=False (reason: message)`).
    Pending(String),
    /// Not waited for: a kind outside the Upstart group without a `Ready` condition (most
    /// built-in kinds never get one).
    NoCondition,
    /// Not waited for: an Upstart kind without a `Ready` condition whose operator is not
    /// running, so no one would ever write one.
    NoOperator,
}

/// The verdict on `object` (described as `description`, of API group `group` and kind
/// `kind`). Objects of the Upstart group (`upstartoperators.upstart.com`) always get a `Ready`
/// condition from their operator, so one without it is pending while its operator runs.
pub fn verdict(
    description: &str,
    group: &str,
    kind: &str,
    object: &Value,
    reported: &ReportedKinds,
) -> Verdict {
    match readiness(object) {
        Readiness::Ready => Verdict::Ready,
        Readiness::NotReady { status, detail } => {
            let detail = if detail.is_empty() {
                String::new()
            } else {
                format!(" ({detail})")
            };
            Verdict::Pending(format!("{description} is Ready={status}{detail}"))
        }
        Readiness::Stale {
            observed,
            generation,
        } => Verdict::Pending(format!(
            "{description} is Ready=True for generation {observed}, not yet for generation {generation}"
        )),
        Readiness::NoCondition if group == upstart_api::GROUP => {
            if reported.covers(kind) {
                Verdict::Pending(format!(
                    "{description} has no Ready condition yet (its operator has not reported)"
                ))
            } else {
                Verdict::NoOperator
            }
        }
        Readiness::NoCondition => Verdict::NoCondition,
    }
}

/// Waits until every applied object that is waited for is Ready (see [`verdict`]); returns at
/// once when none is. `reported` says which Upstart kinds have an operator writing their
/// `Ready` condition. Fails with [`Error::ReadyTimeout`], listing what is still pending, after
/// `timeout`.
pub async fn wait_ready(
    applied: &[Applied],
    reported: &ReportedKinds,
    timeout: Duration,
) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_pending: Vec<String> = Vec::new();
    let mut told_no_operator: BTreeSet<String> = BTreeSet::new();
    loop {
        let mut pending = Vec::new();
        let mut waited = 0usize;
        for object in applied {
            let current = object.get().await?;
            let value = serde_json::to_value(&current).unwrap_or_default();
            match verdict(
                &object.describe(),
                object.group(),
                &object.kind,
                &value,
                reported,
            ) {
                Verdict::Ready => waited += 1,
                Verdict::Pending(line) => {
                    waited += 1;
                    pending.push(line);
                }
                Verdict::NoCondition => {}
                Verdict::NoOperator => {
                    if told_no_operator.insert(object.describe()) {
                        tracing::warn!(
                            "no operator for {} is running: not waiting for {}",
                            object.kind,
                            object.describe()
                        );
                    }
                }
            }
        }
        if pending.is_empty() {
            if waited == 0 {
                tracing::info!("no applied object has a Ready condition: nothing to wait for");
            } else {
                tracing::info!(objects = waited, "every applied object is Ready");
            }
            return Ok(());
        }
        if pending != last_pending {
            for line in &pending {
                tracing::info!("waiting: {line}");
            }
            last_pending = pending.clone();
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::ReadyTimeout { timeout, pending });
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn object_without_conditions_has_no_ready_condition() {
        assert_eq!(
            readiness(&json!({"kind": "ConfigMap"})),
            Readiness::NoCondition
        );
        let other = json!({"status": {"conditions": [{"type": "Available", "status": "True"}]}});
        assert_eq!(readiness(&other), Readiness::NoCondition);
    }

    #[test]
    fn ready_true_is_ready() {
        let o = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(readiness(&o), Readiness::Ready);
    }

    #[test]
    fn ready_false_carries_reason_and_message() {
        let o = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False", "reason": "WaitingForDependencies", "message": "waiting for postgres"}
        ]}});
        assert_eq!(
            readiness(&o),
            Readiness::NotReady {
                status: "False".into(),
                detail: "WaitingForDependencies: waiting for postgres".into()
            }
        );
    }

    #[test]
    fn ready_without_status_counts_as_unknown() {
        let o = json!({"status": {"conditions": [{"type": "Ready"}]}});
        assert!(matches!(readiness(&o), Readiness::NotReady { status, .. } if status == "Unknown"));
    }

    #[test]
    fn ready_true_for_an_older_generation_is_stale() {
        let o = json!({
            "metadata": {"generation": 3},
            "status": {"conditions": [{"type": "Ready", "status": "True", "observedGeneration": 2}]}
        });
        assert_eq!(
            readiness(&o),
            Readiness::Stale {
                observed: 2,
                generation: 3
            }
        );
        let current = json!({
            "metadata": {"generation": 3},
            "status": {"conditions": [{"type": "Ready", "status": "True", "observedGeneration": 3}]}
        });
        assert_eq!(readiness(&current), Readiness::Ready);
    }

    fn reported(kinds: &[&str]) -> ReportedKinds {
        ReportedKinds::Kinds(kinds.iter().map(|k| (*k).to_owned()).collect())
    }

    #[test]
    fn upstart_kind_without_ready_condition_is_pending_while_its_operator_runs() {
        let o = json!({"kind": "UpstartService", "status": {}});
        let v = verdict(
            "UpstartService ns/s",
            upstart_api::GROUP,
            "UpstartService",
            &o,
            &reported(&["UpstartService"]),
        );
        assert_eq!(
            v,
            Verdict::Pending(
                "UpstartService ns/s has no Ready condition yet (its operator has not reported)"
                    .into()
            )
        );
        let on_a_real_cluster = verdict(
            "UpstartService ns/s",
            upstart_api::GROUP,
            "UpstartService",
            &o,
            &ReportedKinds::All,
        );
        assert!(matches!(on_a_real_cluster, Verdict::Pending(_)));
    }

    #[test]
    fn upstart_kind_without_ready_condition_is_not_waited_for_without_its_operator() {
        let o = json!({"kind": "UpstartService"});
        let v = verdict(
            "UpstartService ns/s",
            upstart_api::GROUP,
            "UpstartService",
            &o,
            &reported(&["HelmRelease"]),
        );
        assert_eq!(v, Verdict::NoOperator);
    }

    #[test]
    fn other_kinds_without_ready_condition_are_not_waited_for_even_with_operators() {
        let o = json!({"kind": "Widget"});
        let v = verdict(
            "Widget ns/w",
            "example.com",
            "Widget",
            &o,
            &ReportedKinds::All,
        );
        assert_eq!(v, Verdict::NoCondition);
    }

    #[test]
    fn pending_text_names_the_object_and_its_reason() {
        let o = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False", "reason": "Waiting", "message": "for the database"}
        ]}});
        let v = verdict(
            "Gadget default/g",
            "example.com",
            "Gadget",
            &o,
            &ReportedKinds::none(),
        );
        assert_eq!(
            v,
            Verdict::Pending("Gadget default/g is Ready=False (Waiting: for the database)".into())
        );
    }
}
