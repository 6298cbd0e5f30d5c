//! Property tests: applying a configuration twice is a no-op, a merge patch of a diff
//! reproduces its target, and apply never loses what the configuration says.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use upstart_k8s_patch::{
    ApplyParams, Semantics, WriteScope, apply, create_merge_patch, merge_patch,
};

/// JSON values without nulls (RFC 7386 cannot express a null value).
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        (-5i64..5).prop_map(Value::from),
        "[a-c]{0,2}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-d]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Deployment-like apply configurations: maps, atomic lists, and containers keyed by name
/// with env keyed by name.
fn configuration() -> impl Strategy<Value = Value> {
    let env = prop::collection::btree_map("[A-C]", "[a-c]{1,2}", 0..3).prop_map(|m| {
        m.into_iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect::<Vec<_>>()
    });
    let containers = prop::collection::btree_map(
        "[a-c]",
        ("[a-c]{1,3}", env, prop::option::of(value())),
        0..3,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(name, (image, env, args))| {
                let mut c = json!({"name": name, "image": image, "env": env});
                if let Some(args) = args {
                    c["args"] = json!([args]);
                }
                c
            })
            .collect::<Vec<_>>()
    });
    (
        prop::collection::btree_map("[a-c]", "[a-c]{0,2}", 0..3),
        prop::option::of(0i64..4),
        containers,
        prop::option::of(value()),
    )
        .prop_map(|(labels, replicas, containers, extra)| {
            let mut spec = json!({"template": {"spec": {"containers": containers}}});
            if let Some(replicas) = replicas {
                spec["replicas"] = json!(replicas);
            }
            if let Some(extra) = extra {
                spec["extra"] = extra;
            }
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "labels": labels},
                "spec": spec
            })
        })
}

fn params<'a>(manager: &'a str, now: &'static str) -> ApplyParams<'a> {
    ApplyParams {
        manager,
        force: false,
        scope: WriteScope::WholeObject,
        now,
    }
}

proptest! {
    #[test]
    fn merge_patch_of_a_diff_reproduces_the_target(from in value(), to in value()) {
        prop_assert_eq!(merge_patch(&from, &create_merge_patch(&from, &to)), to);
    }

    #[test]
    fn applying_a_configuration_twice_is_a_no_op(first in configuration(), second in configuration()) {
        let sem = Semantics::builtin();
        let live = apply(None, &first, &params("one", "2024-01-01T00:00:00Z"), &sem).unwrap();
        let live = apply(Some(&live), &second, &ApplyParams { force: true, ..params("two", "2024-01-01T00:01:00Z") }, &sem).unwrap();
        let again = apply(Some(&live), &second, &params("two", "2024-01-01T00:02:00Z"), &sem).unwrap();
        prop_assert_eq!(
            serde_json::to_string(&again).unwrap(),
            serde_json::to_string(&live).unwrap()
        );
    }

    #[test]
    fn a_forced_apply_leaves_every_applied_leaf_in_place(first in configuration(), second in configuration()) {
        let sem = Semantics::builtin();
        let live = apply(None, &first, &params("one", "2024-01-01T00:00:00Z"), &sem).unwrap();
        let result = apply(Some(&live), &second, &ApplyParams { force: true, ..params("two", "2024-01-01T00:01:00Z") }, &sem).unwrap();
        prop_assert_eq!(&result["spec"]["replicas"], second["spec"].get("replicas").unwrap_or(&live["spec"]["replicas"]));
        for container in second["spec"]["template"]["spec"]["containers"].as_array().unwrap() {
            let found = result["spec"]["template"]["spec"]["containers"].as_array().unwrap().iter()
                .find(|c| c["name"] == container["name"]).cloned();
            prop_assert!(found.is_some());
            let found = found.unwrap();
            prop_assert_eq!(&found["image"], &container["image"]);
            prop_assert_eq!(found.get("args"), container.get("args").or(found.get("args")));
        }
    }
}
