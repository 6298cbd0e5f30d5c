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

/// One write in a random history: an apply (possibly forced) or an update that edits the live
/// object directly.
#[derive(Clone, Debug)]
enum Write {
    Apply {
        manager: usize,
        config: Value,
        force: bool,
    },
    Update {
        manager: usize,
        replicas: i64,
        label: Option<String>,
    },
    Status {
        manager: usize,
        ready: i64,
        apply: bool,
    },
}

fn write() -> impl Strategy<Value = Write> {
    prop_oneof![
        (0usize..3, configuration(), any::<bool>()).prop_map(|(manager, config, force)| {
            Write::Apply {
                manager,
                config,
                force,
            }
        }),
        (0usize..3, 0i64..4, prop::option::of("[a-c]")).prop_map(|(manager, replicas, label)| {
            Write::Update {
                manager,
                replicas,
                label,
            }
        }),
        (0usize..3, 0i64..3, any::<bool>()).prop_map(|(manager, ready, apply)| Write::Status {
            manager,
            ready,
            apply,
        }),
    ]
}

/// Whether `path` names something present in `object`.
fn exists(object: &Value, path: &upstart_k8s_patch::Path) -> bool {
    use upstart_k8s_patch::PathElement;
    let mut node = object;
    for element in &path.0 {
        let next = match element {
            PathElement::Field(name) => node.get(&**name),
            PathElement::Key(pairs) => node.as_array().and_then(|items| {
                items.iter().find(|item| {
                    pairs.iter().all(|(k, v)| {
                        item.get(k)
                            == Some(&serde_json::from_str::<Value>(v).expect("keys hold JSON"))
                    })
                })
            }),
            PathElement::Value(v) => node.as_array().and_then(|items| {
                let v: Value = serde_json::from_str(v).expect("values hold JSON");
                items.iter().find(|item| **item == v)
            }),
            PathElement::Index(i) => node.get(*i),
        };
        match next {
            Some(next) => node = next,
            None => return false,
        }
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn ownership_only_names_present_fields_and_reapplies_are_no_ops(
        history in prop::collection::vec(write(), 1..8)
    ) {
        use upstart_k8s_patch::{UpdateParams, managed_fields, record_update};
        let sem = Semantics::builtin();
        let managers = ["alpha", "beta", "gamma"];
        let mut live: Option<Value> = None;
        let mut last_applied: Vec<Option<Value>> = vec![None; 3];
        for (step, write) in history.into_iter().enumerate() {
            let now = format!("2024-01-01T00:00:{step:02}Z");
            match write {
                Write::Apply { manager, config, force } => {
                    let params = ApplyParams { manager: managers[manager], force, scope: WriteScope::MainResource, now: &now };
                    match apply(live.as_ref(), &config, &params, &sem) {
                        Ok(new) => {
                            let status = |o: Option<&Value>| o.and_then(|o| o.get("status")).cloned();
                            prop_assert_eq!(status(Some(&new)), status(live.as_ref()));
                            live = Some(new);
                            last_applied[manager] = Some(config);
                        }
                        Err(upstart_k8s_patch::Error::Conflict(conflicts)) => {
                            prop_assert!(!force);
                            prop_assert!(!conflicts.0.is_empty());
                        }
                        Err(other) => prop_assert!(false, "unexpected error {other}"),
                    }
                }
                Write::Update { manager, replicas, label } => {
                    let Some(old) = live.clone() else { continue };
                    let mut new = old.clone();
                    new["spec"]["replicas"] = json!(replicas);
                    if let Some(label) = label {
                        new["metadata"]["labels"][label] = json!("edited");
                    }
                    let params = UpdateParams { manager: managers[manager], api_version: "apps/v1", scope: WriteScope::MainResource, now: &now };
                    record_update(Some(&old), &mut new, &params, &sem).unwrap();
                    live = Some(new);
                }
                Write::Status { manager, ready, apply: by_apply } => {
                    let Some(old) = live.clone() else { continue };
                    let new = if by_apply {
                        let config = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                                            "metadata": {"name": "web"}, "status": {"readyReplicas": ready}});
                        let params = ApplyParams { manager: managers[manager], force: true, scope: WriteScope::StatusSubresource, now: &now };
                        apply(Some(&old), &config, &params, &sem).unwrap()
                    } else {
                        let mut new = old.clone();
                        new["status"] = json!({"readyReplicas": ready});
                        let params = UpdateParams { manager: managers[manager], api_version: "apps/v1", scope: WriteScope::StatusSubresource, now: &now };
                        record_update(Some(&old), &mut new, &params, &sem).unwrap();
                        new
                    };
                    prop_assert_eq!(&new["spec"], &old["spec"]);
                    live = Some(new);
                }
            }
            let object = live.clone().unwrap_or(Value::Null);
            for entry in managed_fields(&object).unwrap() {
                let status_entry = entry.subresource.as_deref() == Some("status");
                for path in entry.fields.iter() {
                    prop_assert!(exists(&object, path), "{} owns absent {}", entry.manager, path);
                    let under_status = path.to_string().starts_with(".status");
                    prop_assert_eq!(under_status, status_entry, "{} owns {}", entry.manager, path);
                }
            }
        }
        // Whoever applied last can apply the same configuration again without changing anything.
        if let Some(object) = &live {
            for (manager, config) in last_applied.iter().enumerate() {
                let Some(config) = config else { continue };
                let params = ApplyParams { manager: managers[manager], force: true, scope: WriteScope::MainResource, now: "2024-01-02T00:00:00Z" };
                let once = apply(Some(object), config, &params, &sem).unwrap();
                let twice = apply(Some(&once), config, &params, &sem).unwrap();
                prop_assert_eq!(twice, once);
            }
        }
    }
}
