//! Reading an object's `Ready` condition, for `upstart dev --exit-when-ready`.

use serde_json::Value;

/// What an object's `Ready` condition says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// The object has no `Ready` condition (yet): it is not waited for.
    NoCondition,
    /// `Ready=True`.
    Ready,
    /// `Ready` is `False` or `Unknown`, with its reason and message when given.
    NotReady { status: String, detail: String },
}

/// The readiness of `object` according to `status.conditions[type=Ready]`.
pub fn readiness(object: &Value) -> Readiness {
    let Some(condition) = object["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
    else {
        return Readiness::NoCondition;
    };
    let status = condition["status"].as_str().unwrap_or("Unknown");
    if status == "True" {
        return Readiness::Ready;
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
}
