//! Server-side apply and update ownership, rule by rule, from the Kubernetes documentation on
//! Server-Side Apply.

use serde_json::{Value, json};
use upstart_k8s_patch::{
    ApplyParams, Error, Semantics, UpdateParams, WriteScope, apply, managed_fields, record_update,
};

const T0: &str = "2024-01-01T00:00:00Z";
const T1: &str = "2024-01-01T00:01:00Z";
const T2: &str = "2024-01-01T00:02:00Z";

fn params<'a>(manager: &'a str, now: &'static str) -> ApplyParams<'a> {
    ApplyParams {
        manager,
        force: false,
        scope: WriteScope::WholeObject,
        now,
    }
}

fn apply_as(live: Option<&Value>, applied: &Value, manager: &str, now: &'static str) -> Value {
    apply(live, applied, &params(manager, now), &Semantics::builtin()).expect("apply succeeds")
}

fn update_as(old: Option<&Value>, new: Value, manager: &str, api_version: &str) -> Value {
    let mut new = new;
    let params = UpdateParams {
        manager,
        api_version,
        scope: WriteScope::WholeObject,
        now: T0,
    };
    record_update(old, &mut new, &params, &Semantics::builtin()).expect("update succeeds");
    new
}

fn fields_of(object: &Value, manager: &str) -> Value {
    object["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields present")
        .iter()
        .find(|e| e["manager"] == manager)
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or(Value::Null)
}

fn without_managed_fields(object: &Value) -> Value {
    let mut object = object.clone();
    object["metadata"]
        .as_object_mut()
        .expect("metadata present")
        .remove("managedFields");
    object
}

fn config_map(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns"}, "data": data})
}

fn deployment(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "nginx",
                    "image": image,
                    "ports": [{"containerPort": 80}]
                }]}
            }
        }
    })
}

#[test]
fn first_apply_creates_the_object_and_records_an_apply_entry() {
    let applied = config_map(json!({"k": "v"}));
    let result = apply_as(None, &applied, "tool", T0);
    assert_eq!(without_managed_fields(&result), applied);
    assert_eq!(
        result["metadata"]["managedFields"],
        json!([{
            "apiVersion": "v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:k": {}}},
            "manager": "tool",
            "operation": "Apply",
            "time": T0
        }])
    );
}

#[test]
fn apply_records_list_map_items_by_key_with_a_dot_for_the_item_itself() {
    let result = apply_as(None, &deployment(2, "nginx:1"), "tool", T0);
    assert_eq!(
        fields_of(&result, "tool"),
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                        ".": {},
                        "f:image": {},
                        "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                            ".": {},
                            "f:containerPort": {}
                        }}
                    }}}
                }
            }
        })
    );
}

#[test]
fn applying_the_same_configuration_twice_returns_the_live_object_unchanged() {
    let first = apply_as(None, &deployment(2, "nginx:1"), "tool", T0);
    let second = apply_as(Some(&first), &deployment(2, "nginx:1"), "tool", T1);
    assert_eq!(
        serde_json::to_string(&second).unwrap(),
        serde_json::to_string(&first).unwrap()
    );
}

#[test]
fn a_changing_apply_moves_the_managers_time() {
    let first = apply_as(None, &deployment(2, "nginx:1"), "tool", T0);
    let second = apply_as(Some(&first), &deployment(3, "nginx:1"), "tool", T1);
    assert_eq!(second["spec"]["replicas"], 3);
    assert_eq!(second["metadata"]["managedFields"][0]["time"], T1);
}

#[test]
fn changing_a_field_owned_by_an_updater_is_a_conflict_with_the_apiservers_message() {
    let live = update_as(
        None,
        deployment(1, "nginx:1"),
        "kubectl-client-side-apply",
        "apps/v1",
    );
    let err = apply(
        Some(&live),
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}}),
        &params("tool", T1),
        &Semantics::builtin(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
    );
    assert_eq!(err.status_code(), 409);
    let Error::Conflict(conflicts) = err else {
        panic!("expected a conflict")
    };
    assert_eq!(conflicts.0[0].field, ".spec.replicas");
    assert_eq!(conflicts.0[0].manager, "kubectl-client-side-apply");
    assert_eq!(
        conflicts.0[0].cause_message(),
        r#"conflict with "kubectl-client-side-apply" using apps/v1"#
    );
}

#[test]
fn conflicts_with_an_applier_name_it_without_an_api_version() {
    let live = apply_as(None, &config_map(json!({"k": "v"})), "first", T0);
    let err = apply(
        Some(&live),
        &config_map(json!({"k": "other"})),
        &params("second", T1),
        &Semantics::builtin(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "first": .data.k"#
    );
}

#[test]
fn several_conflicts_are_grouped_by_manager_in_manager_order() {
    let live = apply_as(None, &config_map(json!({"a": "1", "b": "1"})), "zeta", T0);
    let live = apply_as(Some(&live), &config_map(json!({"c": "1"})), "alpha", T0);
    let err = apply(
        Some(&live),
        &config_map(json!({"a": "2", "b": "2", "c": "2"})),
        &params("third", T1),
        &Semantics::builtin(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 3 conflicts: conflicts with \"alpha\":\n- .data.c\nconflicts with \"zeta\":\n- .data.a\n- .data.b"
    );
}

#[test]
fn applying_an_equal_value_shares_ownership_without_conflict() {
    let live = apply_as(None, &config_map(json!({"k": "v"})), "first", T0);
    let result = apply_as(Some(&live), &config_map(json!({"k": "v"})), "second", T1);
    assert_eq!(fields_of(&result, "first"), json!({"f:data": {"f:k": {}}}));
    assert_eq!(fields_of(&result, "second"), json!({"f:data": {"f:k": {}}}));
    assert_eq!(
        without_managed_fields(&result),
        without_managed_fields(&live)
    );
}

#[test]
fn force_takes_ownership_away_from_the_other_manager() {
    let live = apply_as(None, &config_map(json!({"k": "v", "x": "1"})), "first", T0);
    let result = apply(
        Some(&live),
        &config_map(json!({"k": "forced"})),
        &ApplyParams {
            force: true,
            ..params("second", T1)
        },
        &Semantics::builtin(),
    )
    .unwrap();
    assert_eq!(result["data"], json!({"k": "forced", "x": "1"}));
    assert_eq!(fields_of(&result, "first"), json!({"f:data": {"f:x": {}}}));
    assert_eq!(fields_of(&result, "second"), json!({"f:data": {"f:k": {}}}));
}

#[test]
fn a_field_dropped_from_the_configuration_is_removed_when_nobody_else_owns_it() {
    let live = apply_as(None, &config_map(json!({"a": "1", "b": "2"})), "tool", T0);
    let result = apply_as(Some(&live), &config_map(json!({"a": "1"})), "tool", T1);
    assert_eq!(result["data"], json!({"a": "1"}));
    assert_eq!(fields_of(&result, "tool"), json!({"f:data": {"f:a": {}}}));
}

#[test]
fn a_field_dropped_from_the_configuration_stays_when_another_manager_owns_it() {
    let live = apply_as(None, &config_map(json!({"a": "1", "b": "2"})), "tool", T0);
    let live = apply_as(Some(&live), &config_map(json!({"b": "2"})), "other", T0);
    let result = apply_as(Some(&live), &config_map(json!({"a": "1"})), "tool", T1);
    assert_eq!(result["data"], json!({"a": "1", "b": "2"}));
    assert_eq!(fields_of(&result, "tool"), json!({"f:data": {"f:a": {}}}));
    assert_eq!(fields_of(&result, "other"), json!({"f:data": {"f:b": {}}}));
}

#[test]
fn a_field_owned_by_an_updater_is_kept_when_the_applier_drops_it() {
    let live = apply_as(None, &config_map(json!({"a": "1"})), "tool", T0);
    let mut edited = live.clone();
    edited["data"]["a"] = json!("edited");
    let live = update_as(Some(&live), edited, "kubectl-edit", "v1");
    assert_eq!(fields_of(&live, "tool"), Value::Null);
    let result = apply_as(Some(&live), &config_map(json!({})), "tool", T1);
    assert_eq!(result["data"], json!({"a": "edited"}));
}

#[test]
fn dropping_a_container_removes_only_that_container() {
    let two = {
        let mut d = deployment(1, "nginx:1");
        d["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "sidecar", "image": "s:1"}));
        d
    };
    let live = apply_as(None, &two, "tool", T0);
    let result = apply_as(Some(&live), &deployment(1, "nginx:1"), "tool", T1);
    assert_eq!(
        result["spec"]["template"]["spec"]["containers"],
        deployment(1, "nginx:1")["spec"]["template"]["spec"]["containers"]
    );
}

#[test]
fn containers_applied_by_different_managers_merge_by_name() {
    let live = apply_as(None, &deployment(1, "nginx:1"), "tool", T0);
    let sidecar = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "s:1"}]}}}
    });
    let result = apply_as(Some(&live), &sidecar, "injector", T1);
    let names: Vec<&str> = result["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nginx", "sidecar"]);
    assert_eq!(
        fields_of(&result, "injector"),
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"sidecar\"}": {".": {}, "f:image": {}, "f:name": {}}
        }}}}})
    );
}

#[test]
fn finalizers_are_a_set_owned_value_by_value() {
    let with = |finalizers: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": finalizers}});
    let live = apply_as(None, &with(json!(["a/one"])), "one", T0);
    let live = apply_as(Some(&live), &with(json!(["b/two"])), "two", T0);
    assert_eq!(live["metadata"]["finalizers"], json!(["a/one", "b/two"]));
    assert_eq!(
        fields_of(&live, "two"),
        json!({"f:metadata": {"f:finalizers": {"v:\"b/two\"": {}}}})
    );
    let result = apply_as(Some(&live), &with(json!([])), "one", T1);
    assert_eq!(result["metadata"]["finalizers"], json!(["b/two"]));
}

#[test]
fn an_atomic_list_is_owned_and_replaced_as_a_whole() {
    let with_args = |args: Value| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"containers": [{"name": "c", "args": args}]}})
    };
    let live = apply_as(None, &with_args(json!(["a", "b"])), "one", T0);
    let err = apply(
        Some(&live),
        &with_args(json!(["a"])),
        &params("two", T1),
        &Semantics::builtin(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "one": .spec.containers[name="c"].args"#
    );
}

#[test]
fn an_atomic_map_conflicts_as_one_field() {
    let live = apply_as(None, &deployment(1, "nginx:1"), "one", T0);
    let mut other = deployment(1, "nginx:1");
    other["spec"]["selector"] = json!({"matchLabels": {"app": "web", "tier": "x"}});
    let err = apply(
        Some(&live),
        &other,
        &params("two", T1),
        &Semantics::builtin(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "one": .spec.selector"#
    );
}

#[test]
fn managed_fields_in_an_applied_configuration_are_refused() {
    let mut applied = config_map(json!({}));
    applied["metadata"]["managedFields"] = json!([]);
    let err = apply(None, &applied, &params("tool", T0), &Semantics::builtin()).unwrap_err();
    assert_eq!(err.to_string(), "metadata.managedFields must be nil");
    assert_eq!(err.status_code(), 400);
}

#[test]
fn an_associative_list_item_without_its_key_is_invalid() {
    let applied = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                         "spec": {"containers": [{"image": "x"}]}});
    let err = apply(None, &applied, &params("tool", T0), &Semantics::builtin()).unwrap_err();
    assert_eq!(err.status_code(), 422);
    assert!(
        err.to_string().contains(r#"omits key field "name""#),
        "{err}"
    );
}

#[test]
fn server_set_metadata_is_never_owned() {
    let mut applied = config_map(json!({"k": "v"}));
    applied["metadata"]["uid"] = json!("u");
    applied["metadata"]["resourceVersion"] = json!("7");
    let result = apply_as(None, &applied, "tool", T0);
    assert_eq!(fields_of(&result, "tool"), json!({"f:data": {"f:k": {}}}));
}

#[test]
fn an_apply_to_the_main_resource_ignores_status() {
    let mut applied = deployment(1, "nginx:1");
    applied["status"] = json!({"replicas": 5});
    let live = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                      "status": {"replicas": 1}});
    let result = apply(
        Some(&live),
        &applied,
        &ApplyParams {
            scope: WriteScope::MainResource,
            ..params("tool", T0)
        },
        &Semantics::builtin(),
    )
    .unwrap();
    assert_eq!(result["status"], json!({"replicas": 1}));
    assert!(fields_of(&result, "tool").get("f:status").is_none());
}

#[test]
fn an_apply_to_the_status_subresource_writes_only_status_under_its_own_entry() {
    let live = apply_as(None, &deployment(1, "nginx:1"), "tool", T0);
    let status_apply = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 9},
        "status": {"readyReplicas": 1, "conditions": [{"type": "Available", "status": "True"}]}
    });
    let result = apply(
        Some(&live),
        &status_apply,
        &ApplyParams {
            scope: WriteScope::StatusSubresource,
            ..params("controller", T1)
        },
        &Semantics::builtin(),
    )
    .unwrap();
    assert_eq!(result["spec"]["replicas"], 1);
    assert_eq!(result["status"]["readyReplicas"], 1);
    let entries = managed_fields(&result).unwrap();
    let controller = entries.iter().find(|e| e.manager == "controller").unwrap();
    assert_eq!(controller.subresource.as_deref(), Some("status"));
    assert_eq!(
        controller.fields.to_fields_v1(),
        json!({"f:status": {
            "f:conditions": {"k:{\"type\":\"Available\"}": {".": {}, "f:status": {}, "f:type": {}}},
            "f:readyReplicas": {}
        }})
    );
    assert_eq!(
        result["metadata"]["managedFields"][1]["subresource"],
        "status"
    );
}

#[test]
fn a_status_manager_conflicts_name_the_subresource() {
    let live = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
    let status = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "status": {"phase": "Running"}});
    let status_params = ApplyParams {
        scope: WriteScope::StatusSubresource,
        ..params("kubelet", T0)
    };
    let live = apply(Some(&live), &status, &status_params, &Semantics::builtin()).unwrap();
    let mut mine = status.clone();
    mine["status"]["phase"] = json!("Failed");
    let err = apply(
        Some(&live),
        &mine,
        &ApplyParams {
            manager: "tester",
            ..status_params
        },
        &Semantics::builtin(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubelet" with subresource "status": .status.phase"#
    );
}

#[test]
fn a_create_records_an_update_entry_for_everything_it_set() {
    let created = update_as(
        None,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"k": "v"}}),
        "kubectl-create",
        "v1",
    );
    assert_eq!(
        created["metadata"]["managedFields"],
        json!([{
            "apiVersion": "v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {".": {}, "f:k": {}}, "f:metadata": {"f:labels": {".": {}, "f:a": {}}}},
            "manager": "kubectl-create",
            "operation": "Update",
            "time": T0
        }])
    );
}

#[test]
fn an_update_takes_ownership_from_an_applier_so_the_next_apply_conflicts() {
    let live = apply_as(None, &deployment(1, "nginx:1"), "tool", T0);
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(5);
    let live = update_as(Some(&live), scaled, "kube-controller-manager", "apps/v1");
    assert_eq!(
        fields_of(&live, "kube-controller-manager"),
        json!({"f:spec": {"f:replicas": {}}})
    );
    assert!(
        fields_of(&live, "tool")["f:spec"]
            .get("f:replicas")
            .is_none()
    );
    let err = apply(
        Some(&live),
        &deployment(1, "nginx:1"),
        &params("tool", T1),
        &Semantics::builtin(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kube-controller-manager" using apps/v1: .spec.replicas"#
    );
}

#[test]
fn an_update_that_changes_nothing_leaves_managed_fields_untouched() {
    let live = update_as(None, config_map(json!({"k": "v"})), "creator", "v1");
    let mut same = live.clone();
    let params = UpdateParams {
        manager: "someone",
        api_version: "v1",
        scope: WriteScope::WholeObject,
        now: T2,
    };
    record_update(Some(&live), &mut same, &params, &Semantics::builtin()).unwrap();
    assert_eq!(same, live);
}

#[test]
fn an_update_removing_a_field_drops_everyones_ownership_of_it() {
    let live = apply_as(None, &config_map(json!({"a": "1", "b": "2"})), "tool", T0);
    let mut edited = live.clone();
    edited["data"].as_object_mut().unwrap().remove("b");
    let live = update_as(Some(&live), edited, "editor", "v1");
    assert_eq!(fields_of(&live, "tool"), json!({"f:data": {"f:a": {}}}));
    assert_eq!(fields_of(&live, "editor"), Value::Null);
}

#[test]
fn a_client_may_replace_managed_fields_through_an_update() {
    let live = apply_as(None, &config_map(json!({"a": "1"})), "tool", T0);
    let mut edited = live.clone();
    edited["metadata"]["managedFields"][0]["manager"] = json!("renamed");
    let live = update_as(Some(&live), edited, "editor", "v1");
    assert_eq!(fields_of(&live, "renamed"), json!({"f:data": {"f:a": {}}}));
}

#[test]
fn updates_through_status_are_recorded_with_the_subresource() {
    let live = update_as(None, deployment(1, "nginx:1"), "creator", "apps/v1");
    let mut with_status = live.clone();
    with_status["status"] = json!({"replicas": 1});
    with_status["spec"]["replicas"] = json!(7);
    let params = UpdateParams {
        manager: "controller",
        api_version: "apps/v1",
        scope: WriteScope::StatusSubresource,
        now: T1,
    };
    record_update(
        Some(&live),
        &mut with_status,
        &params,
        &Semantics::builtin(),
    )
    .unwrap();
    let entries = managed_fields(&with_status).unwrap();
    let controller = entries.iter().find(|e| e.manager == "controller").unwrap();
    assert_eq!(controller.subresource.as_deref(), Some("status"));
    assert_eq!(
        controller.fields.to_fields_v1(),
        json!({"f:status": {".": {}, "f:replicas": {}}})
    );
}

#[test]
fn crd_list_types_come_from_the_schema() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "routes": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["host"],
                   "items": {"type": "object", "properties": {"host": {"type": "string"}, "port": {"type": "integer"}}}},
        "hosts": {"type": "array", "items": {"type": "string"}}
    }}}});
    let sem = Semantics::from_crd_schema(&schema);
    let cr = |routes: Value, hosts: Value| {
        json!({"apiVersion": "x.io/v1", "kind": "Thing", "metadata": {"name": "t"},
               "spec": {"routes": routes, "hosts": hosts}})
    };
    let live = apply(
        None,
        &cr(json!([{"host": "a", "port": 1}]), json!(["a"])),
        &params("one", T0),
        &sem,
    )
    .unwrap();
    let result = apply(
        Some(&live),
        &json!({"apiVersion": "x.io/v1", "kind": "Thing", "metadata": {"name": "t"},
                "spec": {"routes": [{"host": "b", "port": 2}]}}),
        &params("two", T1),
        &sem,
    )
    .unwrap();
    assert_eq!(
        result["spec"]["routes"],
        json!([{"host": "a", "port": 1}, {"host": "b", "port": 2}])
    );
    assert_eq!(
        fields_of(&result, "one"),
        json!({"f:spec": {"f:hosts": {}, "f:routes": {"k:{\"host\":\"a\"}": {".": {}, "f:host": {}, "f:port": {}}}}})
    );
}

#[test]
fn crd_fields_outside_the_schema_record_nested_maps_as_owned() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-preserve-unknown-fields": true}}});
    let sem = Semantics::from_crd_schema(&schema);
    let applied = json!({"apiVersion": "x.io/v1", "kind": "Thing", "metadata": {"name": "t"},
                         "spec": {"values": {"a": {"b": 1}}, "list": [1, 2]}});
    let result = apply(None, &applied, &params("tool", T0), &sem).unwrap();
    assert_eq!(
        fields_of(&result, "tool"),
        json!({"f:spec": {"f:list": {}, "f:values": {".": {}, "f:a": {".": {}, "f:b": {}}}}})
    );
}

#[test]
fn dropping_the_last_label_removes_the_labels_map() {
    let with_label = json!({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"k": "v"}});
    let live = apply_as(None, &with_label, "tool", T0);
    let result = apply_as(Some(&live), &config_map(json!({"k": "v"})), "tool", T1);
    assert!(result["metadata"].get("labels").is_none(), "{result}");
    assert_eq!(result["data"], json!({"k": "v"}));
}

#[test]
fn an_object_without_managed_fields_gives_its_fields_to_before_first_apply() {
    let live = config_map(json!({"k": "v", "other": "x"}));
    let err = apply(
        Some(&live),
        &config_map(json!({"k": "mine"})),
        &params("tool", T1),
        &Semantics::builtin(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "before-first-apply" using v1: .data.k"#
    );
    let result = apply_as(Some(&live), &config_map(json!({"k": "v"})), "tool", T1);
    assert_eq!(
        fields_of(&result, "before-first-apply"),
        json!({"f:data": {"f:k": {}, "f:other": {}}})
    );
    assert_eq!(fields_of(&result, "tool"), json!({"f:data": {"f:k": {}}}));
}

#[test]
fn a_single_empty_entry_clears_all_managed_fields() {
    let live = apply_as(None, &config_map(json!({"a": "1"})), "tool", T0);
    let mut cleared = live.clone();
    cleared["metadata"]["managedFields"] = json!([{}]);
    let result = update_as(Some(&live), cleared, "editor", "v1");
    assert!(
        result["metadata"].get("managedFields").is_none(),
        "{result}"
    );
}

#[test]
fn a_null_in_the_configuration_unsets_the_field_and_owns_it() {
    let live = apply_as(None, &config_map(json!({"a": "1", "b": "2"})), "first", T0);
    let err = apply(
        Some(&live),
        &config_map(json!({"a": null})),
        &params("second", T1),
        &Semantics::builtin(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "first": .data.a"#
    );
    let result = apply(
        Some(&live),
        &config_map(json!({"a": null})),
        &ApplyParams {
            force: true,
            ..params("second", T1)
        },
        &Semantics::builtin(),
    )
    .unwrap();
    assert_eq!(result["data"], json!({"b": "2"}));
    assert_eq!(fields_of(&result, "second"), json!({"f:data": {"f:a": {}}}));
    let again = apply_as(Some(&result), &config_map(json!({"a": null})), "second", T2);
    assert_eq!(again, result);
}

#[test]
fn an_apply_that_only_changes_ownership_moves_the_managers_time() {
    let live = apply_as(None, &config_map(json!({"a": "1"})), "other", T0);
    let live = apply_as(Some(&live), &config_map(json!({"b": "2"})), "tool", T0);
    // "tool" now also applies "a" with the value it already has: shared ownership, same object.
    let result = apply_as(
        Some(&live),
        &config_map(json!({"a": "1", "b": "2"})),
        "tool",
        T1,
    );
    assert_eq!(
        without_managed_fields(&result),
        without_managed_fields(&live)
    );
    let tool = managed_fields(&result)
        .unwrap()
        .into_iter()
        .find(|e| e.manager == "tool")
        .unwrap();
    assert_eq!(tool.time.as_deref(), Some(T1));
}

#[test]
fn more_than_ten_updaters_fold_the_oldest_into_ancient_changes() {
    let mut live = update_as(None, config_map(json!({"k0": "v"})), "writer-0", "v1");
    for i in 1..12 {
        let mut next = live.clone();
        next["data"][format!("k{i}")] = json!("v");
        let params = UpdateParams {
            manager: &format!("writer-{i}"),
            api_version: "v1",
            scope: WriteScope::WholeObject,
            now: &format!("2024-01-01T00:00:{i:02}Z"),
        };
        record_update(Some(&live), &mut next, &params, &Semantics::builtin()).unwrap();
        live = next;
    }
    let entries = managed_fields(&live).unwrap();
    assert_eq!(entries.len(), 10);
    let ancient = entries
        .iter()
        .find(|e| e.manager == "ancient-changes")
        .unwrap();
    assert_eq!(
        ancient.fields.to_fields_v1(),
        json!({"f:data": {".": {}, "f:k0": {}, "f:k1": {}, "f:k2": {}}})
    );
    assert!(
        entries
            .iter()
            .all(|e| e.manager != "writer-0" && e.manager != "writer-2")
    );
    assert!(entries.iter().any(|e| e.manager == "writer-11"));
}

/// A ConfigMap as client-side `kubectl apply` leaves it: the last-applied annotation, and the
/// fields owned by `kubectl-client-side-apply` through an update.
fn client_side_applied(data: Value) -> Value {
    let config = config_map(data.clone());
    let mut object = config.clone();
    object["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration":
            format!("{}\n", serde_json::to_string(&config).expect("a Value serialises"))
    });
    update_as(None, object, "kubectl-client-side-apply", "v1")
}

#[test]
fn kubectl_server_side_apply_takes_over_fields_still_as_client_side_apply_left_them() {
    let live = client_side_applied(json!({"k": "v"}));
    let result = apply_as(Some(&live), &config_map(json!({"k": "new"})), "kubectl", T1);
    assert_eq!(result["data"], json!({"k": "new"}));
    assert_eq!(
        fields_of(&result, "kubectl"),
        json!({"f:data": {"f:k": {}}})
    );
    let annotation =
        result["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap();
    assert_eq!(
        annotation,
        format!(
            "{}\n",
            serde_json::to_string(&config_map(json!({"k": "new"}))).unwrap()
        )
    );
}

#[test]
fn other_managers_still_conflict_with_client_side_apply() {
    let live = client_side_applied(json!({"k": "v"}));
    let err = apply(
        Some(&live),
        &config_map(json!({"k": "new"})),
        &params("tool", T1),
        &Semantics::builtin(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using v1: .data.k"#
    );
}

#[test]
fn kubectl_conflicts_on_fields_changed_since_the_last_client_side_apply() {
    let live = client_side_applied(json!({"k": "v", "j": "v"}));
    let mut edited = live.clone();
    edited["data"]["k"] = json!("edited");
    let live = update_as(Some(&live), edited, "kubectl-client-side-apply", "v1");
    let err = apply(
        Some(&live),
        &config_map(json!({"k": "new", "j": "new"})),
        &params("kubectl", T1),
        &Semantics::builtin(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using v1: .data.k"#
    );
}
