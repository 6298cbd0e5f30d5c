//! Conversion between the API versions of one stored kind: core/v1 Events are served from
//! the events.k8s.io/v1 storage, as in the apiserver, so `kubectl get events` and `kubectl
//! describe` show what kube-runtime's recorder publishes; autoscaling/v1
//! HorizontalPodAutoscalers are stored as autoscaling/v2.

use serde_json::{Map, Value, json};

/// A served type whose objects are stored in another type's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// core/v1 Event, stored as events.k8s.io/v1 Event.
    CoreEvent,
}

/// `(events.k8s.io/v1 field, core/v1 field)`.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(obj: &Value, from_events: bool, api_version: &str) -> Value {
    let Some(map) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = Map::new();
    for (k, v) in map {
        let renamed = EVENT_FIELDS.iter().find_map(|(events, core)| {
            let (from, to) = if from_events {
                (events, core)
            } else {
                (core, events)
            };
            (k == from).then_some(*to)
        });
        out.insert(renamed.unwrap_or(k).to_string(), v.clone());
    }
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!("Event"));
    Value::Object(out)
}

impl Conversion {
    /// The stored form of a body sent in the served version.
    pub fn incoming(self, obj: &Value) -> Value {
        match self {
            Conversion::CoreEvent => rename(obj, false, "events.k8s.io/v1"),
        }
    }

    /// The served form of a stored object.
    pub fn outgoing(self, obj: &Value) -> Value {
        match self {
            Conversion::CoreEvent => rename(obj, true, "v1"),
        }
    }
}

/// The CPU utilization metric of an autoscaling/v2 metric list (`target` or `current`), which
/// is all autoscaling/v1 can express.
fn cpu_utilization(metrics: &Value, field: &str) -> Option<Value> {
    metrics.as_array()?.iter().find_map(|m| {
        (m["type"] == "Resource" && m["resource"]["name"] == "cpu")
            .then(|| m["resource"][field]["averageUtilization"].clone())
            .filter(|v| !v.is_null())
    })
}

/// An autoscaling/v1 HorizontalPodAutoscaler in its stored autoscaling/v2 form:
/// `targetCPUUtilizationPercentage` becomes a CPU `Resource` metric, as the apiserver converts.
pub fn hpa_v1_to_v2(obj: &Value) -> Value {
    let mut out = obj.clone();
    out["apiVersion"] = json!("autoscaling/v2");
    if let Some(spec) = out["spec"].as_object_mut()
        && let Some(target) = spec.remove("targetCPUUtilizationPercentage")
    {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}}]),
        );
    }
    if let Some(status) = out["status"].as_object_mut()
        && let Some(current) = status.remove("currentCPUUtilizationPercentage")
    {
        status.insert(
            "currentMetrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": current}}}]),
        );
    }
    out
}

/// A stored autoscaling/v2 HorizontalPodAutoscaler as autoscaling/v1 serves it: the CPU
/// utilization target and current value; other metrics, behavior and conditions have no v1
/// form (the apiserver keeps them in annotations, which this control plane does not).
pub fn hpa_v2_to_v1(obj: &Value) -> Value {
    let mut out = obj.clone();
    out["apiVersion"] = json!("autoscaling/v1");
    if let Some(spec) = out["spec"].as_object_mut() {
        let target = spec
            .remove("metrics")
            .and_then(|m| cpu_utilization(&m, "target"));
        spec.remove("behavior");
        if let Some(t) = target {
            spec.insert("targetCPUUtilizationPercentage".into(), t);
        }
    }
    if let Some(status) = out["status"].as_object_mut() {
        let current = status
            .remove("currentMetrics")
            .and_then(|m| cpu_utilization(&m, "current"));
        status.remove("conditions");
        if let Some(c) = current {
            status.insert("currentCPUUtilizationPercentage".into(), c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_events_round_trip_through_the_events_api_form() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "message": "hello", "reason": "Started", "count": 2, "type": "Normal"
        });
        let stored = Conversion::CoreEvent.incoming(&core);
        assert_eq!(stored["apiVersion"], "events.k8s.io/v1");
        assert_eq!(stored["regarding"]["name"], "p");
        assert_eq!(stored["note"], "hello");
        assert_eq!(stored["deprecatedCount"], 2);
        assert_eq!(Conversion::CoreEvent.outgoing(&stored), core);
    }

    /// The apiserver serves HorizontalPodAutoscalers in autoscaling/v1 and v2 from one storage:
    /// v1's CPU target is v2's CPU Resource metric.
    #[test]
    fn autoscaling_v1_round_trips_through_the_v2_storage() {
        let v1 = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 80},
            "status": {"currentReplicas": 1, "desiredReplicas": 1, "currentCPUUtilizationPercentage": 40}
        });
        let stored = hpa_v1_to_v2(&v1);
        assert_eq!(stored["apiVersion"], "autoscaling/v2");
        assert_eq!(
            stored["spec"]["metrics"][0]["resource"]["target"],
            json!({"type": "Utilization", "averageUtilization": 80})
        );
        assert_eq!(
            stored["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"],
            40
        );
        assert_eq!(hpa_v2_to_v1(&stored), v1);
    }
}
