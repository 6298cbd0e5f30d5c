//! Pure status computation: from an object, the time elapsed since its generation was first
//! seen and its [`Settings`], the status the real controllers would report.
//!
//! Each function returns an [`Outcome`]: the status to write (`None` when the object must be
//! left alone) and when to look again. Conditions keep their `lastTransitionTime` while their
//! status does not flip, so computing twice gives the same status and the controller writes
//! only on a change.

mod apps;
mod batch;
mod core;

pub use apps::{daemon_set_status, deployment_status, replica_set_status, stateful_set_status};
pub use batch::{OnCompleteError, is_complete, job_status, on_complete_manifests};
pub use core::{pod_status, pvc_status, service_status};

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::Settings;

/// What the simulator knows when it computes a status.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    /// Time since the simulator first saw the object's current generation.
    pub elapsed: Duration,
    /// The wall-clock time written into timestamps.
    pub now: Timestamp,
    /// The object's settings.
    pub settings: Settings,
}

impl Observation {
    /// Whether the object is ready now: the delay has passed and it is not set to fail.
    fn ready(&self) -> bool {
        !self.settings.fail && self.settings.due(self.elapsed)
    }

    /// Whether the object has failed now: the delay has passed and it is set to fail.
    fn failed(&self) -> bool {
        self.settings.fail && self.settings.due(self.elapsed)
    }

    /// When to look again: when the delay ends, if it has not.
    fn requeue(&self) -> Option<Duration> {
        self.settings.remaining(self.elapsed)
    }

    fn time(&self) -> Time {
        Time(self.now)
    }
}

/// The result of a status computation.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<S> {
    /// The status to write, or `None` to leave the object alone.
    pub status: Option<S>,
    /// When to compute again even if nothing changes.
    pub requeue_after: Option<Duration>,
}

impl<S> Outcome<S> {
    fn write(status: S, requeue_after: Option<Duration>) -> Self {
        Outcome {
            status: Some(status),
            requeue_after,
        }
    }

    fn leave() -> Self {
        Outcome {
            status: None,
            requeue_after: None,
        }
    }
}

/// A Kubernetes condition, whichever API group defines its struct.
pub(crate) trait Condition {
    fn type_(&self) -> &str;
    fn status(&self) -> &str;
    fn reason(&self) -> Option<&str>;
    fn message(&self) -> Option<&str>;
    fn last_transition_time(&mut self) -> &mut Option<Time>;
    /// `lastUpdateTime` / `lastProbeTime`, where the type has one.
    fn last_update_time(&mut self) -> Option<&mut Option<Time>>;
}

macro_rules! condition {
    ($ty:ty, $update:ident) => {
        impl Condition for $ty {
            fn type_(&self) -> &str {
                &self.type_
            }
            fn status(&self) -> &str {
                &self.status
            }
            fn reason(&self) -> Option<&str> {
                self.reason.as_deref()
            }
            fn message(&self) -> Option<&str> {
                self.message.as_deref()
            }
            fn last_transition_time(&mut self) -> &mut Option<Time> {
                &mut self.last_transition_time
            }
            fn last_update_time(&mut self) -> Option<&mut Option<Time>> {
                Some(&mut self.$update)
            }
        }
    };
}
condition!(
    k8s_openapi::api::apps::v1::DeploymentCondition,
    last_update_time
);
condition!(k8s_openapi::api::batch::v1::JobCondition, last_probe_time);
condition!(k8s_openapi::api::core::v1::PodCondition, last_probe_time);

/// Carries the times of `old` conditions over to `new` ones that did not change: a
/// `lastTransitionTime` while the status is the same, a `lastUpdateTime` while status, reason
/// and message are the same.
pub(crate) fn settle<C: Condition + Clone>(old: Option<&Vec<C>>, mut new: Vec<C>) -> Vec<C> {
    let old = old.map(Vec::as_slice).unwrap_or_default();
    for c in &mut new {
        let Some(prev) = old.iter().find(|o| o.type_() == c.type_()) else {
            continue;
        };
        let mut prev = prev.clone();
        if prev.status() == c.status() {
            *c.last_transition_time() = prev.last_transition_time().clone();
            let same = prev.reason() == c.reason() && prev.message() == c.message();
            if same && let (Some(dst), Some(src)) = (c.last_update_time(), prev.last_update_time())
            {
                *dst = src.clone();
            }
        }
    }
    new
}

/// A short stable hash of a pod template, as controllers put in ReplicaSet names and
/// StatefulSet revisions (FNV-1a over its JSON; the value only has to change with the template).
pub(crate) fn template_hash<T: serde::Serialize>(template: &T) -> String {
    let bytes = serde_json::to_vec(template).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:010x}", hash & 0xff_ffff_ffff)
}

/// `Some(n)` unless `n` is zero: the real controllers omit zero counts.
pub(crate) fn nonzero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub fn t0() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    pub fn obs(elapsed_ms: u64, ready_after_ms: u64, fail: bool) -> Observation {
        Observation {
            elapsed: Duration::from_millis(elapsed_ms),
            now: t0() + Duration::from_millis(elapsed_ms),
            settings: Settings {
                ready_after: Duration::from_millis(ready_after_ms),
                fail,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentCondition;

    fn cond(status: &str, reason: &str, at: i64) -> DeploymentCondition {
        let t = Time(Timestamp::from_second(at).unwrap());
        DeploymentCondition {
            type_: "Available".into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: None,
            last_transition_time: Some(t.clone()),
            last_update_time: Some(t),
        }
    }

    #[test]
    fn unchanged_condition_keeps_both_times() {
        let out = settle(
            Some(&vec![cond("True", "A", 1)]),
            vec![cond("True", "A", 9)],
        );
        assert_eq!(out, vec![cond("True", "A", 1)]);
    }

    #[test]
    fn new_reason_moves_update_time_but_not_transition_time() {
        let out = settle(
            Some(&vec![cond("True", "A", 1)]),
            vec![cond("True", "B", 9)],
        );
        assert_eq!(
            out[0].last_transition_time,
            cond("", "", 1).last_transition_time
        );
        assert_eq!(out[0].last_update_time, cond("", "", 9).last_update_time);
    }

    #[test]
    fn flipped_condition_gets_new_times() {
        let out = settle(
            Some(&vec![cond("False", "A", 1)]),
            vec![cond("True", "A", 9)],
        );
        assert_eq!(out, vec![cond("True", "A", 9)]);
    }

    #[test]
    fn template_hash_is_stable_and_changes_with_the_template() {
        let a = serde_json::json!({"image": "a"});
        let b = serde_json::json!({"image": "b"});
        assert_eq!(template_hash(&a), template_hash(&a));
        assert_ne!(template_hash(&a), template_hash(&b));
        assert_eq!(template_hash(&a).len(), 10);
    }
}
