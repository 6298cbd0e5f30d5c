//! Properties of the pure parts: planning does not depend on rendered order beyond Helm's rules,
//! canonical JSON round-trips, and scrubbing removes every value.

use proptest::prelude::*;
use serde_json::{Map, Value};
use upstart_release_engine::digest::{bytes_digest, canonical_json, json_digest};
use upstart_release_engine::manifests::{
    ClusterScopedAllowList, Limits, ReleaseScope, install_order_key, plan,
};
use upstart_release_engine::render::{REDACTED, Scrubber};

const KINDS: [(&str, &str); 10] = [
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("batch/v1", "Job"),
    ("networking.k8s.io/v1", "Ingress"),
    ("example.com/v1", "Widget"),
    ("example.com/v1", "Gadget"),
];

fn document(api_version: &str, kind: &str, name: usize) -> String {
    format!("---\napiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: obj-{name}\n")
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-z\"\\\\ é]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(("[a-zA-Z_]{1,6}", inner), 0..5)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// The same object with its keys inserted in reverse order, at every level.
fn reversed(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.reverse();
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), reversed(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(reversed).collect()),
        other => other.clone(),
    }
}

proptest! {
    #[test]
    fn objects_come_out_in_install_order_whatever_the_rendered_order(
        picks in prop::collection::vec(0..KINDS.len(), 1..25).prop_shuffle()
    ) {
        let manifest: String = picks
            .iter()
            .enumerate()
            .map(|(i, k)| document(KINDS[*k].0, KINDS[*k].1, i))
            .collect();
        let is_namespaced = |_: &str, _: &str| Some(true);
        let allow = ClusterScopedAllowList::default();
        let scope = ReleaseScope {
            namespace: "ns",
            name: "rel",
            cluster_scoped_allow_list: &allow,
            is_namespaced: &is_namespaced,
        };
        let plan = plan(&manifest, &scope, &Limits::default()).unwrap();
        prop_assert_eq!(plan.resources.len(), picks.len());
        let keys: Vec<_> = plan.resources.iter().map(|o| install_order_key(&o.entry.kind)).collect();
        prop_assert!(keys.windows(2).all(|w| w[0] <= w[1]));
        // Within one kind, rendered order is kept.
        for pair in plan.resources.windows(2) {
            if pair[0].entry.kind == pair[1].entry.kind {
                let index = |name: &str| name.trim_start_matches("obj-").parse::<usize>().unwrap();
                prop_assert!(index(&pair[0].entry.name) < index(&pair[1].entry.name));
            }
        }
    }

    #[test]
    fn canonical_json_round_trips_and_ignores_key_order(value in json_value()) {
        let text = canonical_json(&value);
        let parsed: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&parsed, &value);
        prop_assert_eq!(json_digest(&value), bytes_digest(text.as_bytes()));
        prop_assert_eq!(json_digest(&reversed(&value)), json_digest(&value));
    }

    #[test]
    fn scrubbing_removes_every_string_value_however_it_is_embedded(
        secret in "[a-zA-Z0-9]{4,24}",
        before in "[ :(]{0,3}[a-z ]{0,10}",
        after in "[ ):,]{0,3}[a-z ]{0,10}",
    ) {
        let values = serde_json::json!({"nested": {"list": [secret.clone()]}});
        let scrubber = Scrubber::new(&values, 4);
        let out = scrubber.scrub(&format!("{before}{secret}{after}"));
        prop_assert!(!out.replace(REDACTED, " ").contains(&secret), "{}", out);
    }
}
