//! Conversion between the two API versions of one stored kind: core/v1 Events are served from
//! the events.k8s.io/v1 storage, as in the apiserver, so `kubectl get events` and `kubectl
//! describe` show what kube-runtime's recorder publishes.

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
}
