//! JSON merge patch, JSON patch and strategic merge patch, from RFC 7386, RFC 6902 and the
//! Kubernetes strategic merge patch documentation.

use serde_json::{Value, json};
use upstart_k8s_patch::{
    Error, Semantics, apply_json_patch, create_merge_patch, merge_patch, strategic_merge,
};

fn smp(original: Value, patch: Value) -> Value {
    strategic_merge(&original, &patch, &Semantics::builtin()).expect("patch applies")
}

fn pod(containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}})
}

#[test]
fn merge_patch_merges_maps_removes_nulls_and_replaces_lists() {
    let target = json!({"a": {"b": 1, "c": 2}, "l": [1, 2], "d": 1});
    let patch = json!({"a": {"b": null, "e": 3}, "l": [3], "d": null});
    assert_eq!(
        merge_patch(&target, &patch),
        json!({"a": {"c": 2, "e": 3}, "l": [3]})
    );
}

#[test]
fn merge_patch_with_a_non_object_replaces_the_target() {
    assert_eq!(merge_patch(&json!({"a": 1}), &json!([1])), json!([1]));
}

#[test]
fn create_merge_patch_describes_additions_changes_and_removals() {
    let from = json!({"a": {"b": 1, "c": 2}, "d": 1});
    let to = json!({"a": {"b": 1, "c": 3}, "e": [1]});
    assert_eq!(
        create_merge_patch(&from, &to),
        json!({"a": {"c": 3}, "d": null, "e": [1]})
    );
}

#[test]
fn json_patch_applies_operations_in_order() {
    let target = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"list": [1, 2]}});
    let patch = json!([
        {"op": "test", "path": "/metadata/labels/a", "value": "1"},
        {"op": "add", "path": "/metadata/labels/b", "value": "2"},
        {"op": "remove", "path": "/spec/list/0"},
        {"op": "replace", "path": "/spec/list/0", "value": 9},
        {"op": "copy", "from": "/metadata/labels/a", "path": "/spec/copied"},
        {"op": "move", "from": "/spec/copied", "path": "/spec/moved"}
    ]);
    assert_eq!(
        apply_json_patch(&target, &patch).unwrap(),
        json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"list": [9], "moved": "1"}})
    );
}

#[test]
fn json_patch_with_a_failing_test_is_unprocessable_and_changes_nothing() {
    let target = json!({"a": 1});
    let patch =
        json!([{"op": "add", "path": "/b", "value": 2}, {"op": "test", "path": "/a", "value": 2}]);
    let err = apply_json_patch(&target, &patch).unwrap_err();
    assert!(matches!(err, Error::JsonPatchFailed(_)));
    assert_eq!(err.status_code(), 422);
}

#[test]
fn json_patch_that_is_not_a_list_of_operations_is_a_bad_request() {
    let err = apply_json_patch(&json!({}), &json!({"op": "add"})).unwrap_err();
    assert_eq!(err.status_code(), 400);
}

#[test]
fn strategic_merge_merges_containers_by_name() {
    let original = pod(json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]));
    let patched = smp(
        original,
        json!({"spec": {"containers": [{"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}]}}),
    );
    assert_eq!(
        patched["spec"]["containers"],
        json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}])
    );
}

#[test]
fn strategic_merge_merges_env_by_name_inside_a_container() {
    let original = pod(
        json!([{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "1"}]}]),
    );
    let patched = smp(
        original,
        json!({"spec": {"containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}]}]}}),
    );
    assert_eq!(
        patched["spec"]["containers"][0]["env"],
        json!([{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}])
    );
}

#[test]
fn strategic_merge_deletes_a_list_item_with_the_delete_directive() {
    let original = pod(json!([{"name": "a"}, {"name": "b"}]));
    let patched = smp(
        original,
        json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
    );
    assert_eq!(patched["spec"]["containers"], json!([{"name": "b"}]));
}

#[test]
fn strategic_merge_replaces_a_list_with_the_replace_directive() {
    let original = pod(json!([{"name": "a"}, {"name": "b"}]));
    let patched = smp(
        original,
        json!({"spec": {"containers": [{"name": "c"}, {"$patch": "replace"}]}}),
    );
    assert_eq!(patched["spec"]["containers"], json!([{"name": "c"}]));
}

#[test]
fn strategic_merge_replaces_a_map_with_the_replace_directive() {
    let original = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
    let patched = smp(
        original,
        json!({"metadata": {"labels": {"c": "3", "$patch": "replace"}}}),
    );
    assert_eq!(patched, json!({"metadata": {"labels": {"c": "3"}}}));
}

#[test]
fn strategic_merge_deletes_a_map_with_the_delete_directive() {
    let original = json!({"metadata": {"labels": {"a": "1"}, "name": "x"}});
    let patched = smp(
        original,
        json!({"metadata": {"labels": {"$patch": "delete"}}}),
    );
    assert_eq!(patched, json!({"metadata": {"name": "x"}}));
}

#[test]
fn strategic_merge_retain_keys_clears_unlisted_fields() {
    let original =
        json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
    let patched = smp(
        original,
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    );
    assert_eq!(patched, json!({"spec": {"strategy": {"type": "Recreate"}}}));
}

#[test]
fn strategic_merge_merges_finalizers_as_a_set_and_deletes_from_primitive_lists() {
    let original = json!({"metadata": {"finalizers": ["a", "b"]}});
    let patched = smp(
        original.clone(),
        json!({"metadata": {"finalizers": ["b", "c"]}}),
    );
    assert_eq!(patched["metadata"]["finalizers"], json!(["a", "b", "c"]));
    let patched = smp(
        original,
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
    );
    assert_eq!(patched["metadata"]["finalizers"], json!(["b"]));
}

#[test]
fn strategic_merge_replaces_lists_without_a_merge_key() {
    let original = json!({"spec": {"tolerations": [{"key": "a"}], "containers": [{"name": "c", "args": ["x", "y"]}]}});
    let patched = smp(
        original,
        json!({"spec": {"tolerations": [{"key": "b"}], "containers": [{"name": "c", "args": ["z"]}]}}),
    );
    assert_eq!(patched["spec"]["tolerations"], json!([{"key": "b"}]));
    assert_eq!(patched["spec"]["containers"][0]["args"], json!(["z"]));
}

#[test]
fn strategic_merge_orders_items_by_set_element_order() {
    let original = pod(json!([{"name": "a"}, {"name": "b"}]));
    let patched = smp(
        original,
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}],
            "containers": [{"name": "c"}]
        }}),
    );
    assert_eq!(
        patched["spec"]["containers"],
        json!([{"name": "c"}, {"name": "b"}, {"name": "a"}])
    );
}

#[test]
fn strategic_merge_merges_service_ports_by_port_and_container_ports_by_container_port() {
    let service =
        json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}});
    let patched = smp(
        service,
        json!({"spec": {"ports": [{"port": 443, "targetPort": 8443}]}}),
    );
    assert_eq!(
        patched["spec"]["ports"],
        json!([{"port": 80, "name": "http"}, {"port": 443, "name": "https", "targetPort": 8443}])
    );
    let original = pod(json!([{"name": "a", "ports": [{"containerPort": 80, "name": "x"}]}]));
    let patched = smp(
        original,
        json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "y"}]}]}}),
    );
    assert_eq!(
        patched["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80, "name": "y"}])
    );
}

#[test]
fn strategic_merge_behaves_as_merge_patch_elsewhere() {
    let original = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}});
    let patch = json!({"metadata": {"labels": {"a": null, "c": "3"}}, "data": {"k": "w"}});
    assert_eq!(
        smp(original.clone(), patch.clone()),
        merge_patch(&original, &patch)
    );
}

#[test]
fn strategic_merge_of_a_keyed_item_without_its_key_is_refused() {
    let err = strategic_merge(
        &pod(json!([])),
        &json!({"spec": {"containers": [{"image": "x"}]}}),
        &Semantics::builtin(),
    )
    .unwrap_err();
    assert_eq!(err.status_code(), 400);
}

#[test]
fn strategic_merge_of_a_custom_resource_is_unsupported_media_type() {
    let sem = Semantics::from_crd_schema(&json!({"type": "object"}));
    let err = strategic_merge(&json!({}), &json!({}), &sem).unwrap_err();
    assert!(matches!(err, Error::StrategicMergeUnsupported));
    assert_eq!(err.status_code(), 415);
    assert_eq!(err.reason(), "UnsupportedMediaType");
}

#[test]
fn strategic_merge_puts_a_new_keyed_item_before_the_servers_items_as_the_apiserver_does() {
    let original = pod(json!([{"name": "a"}, {"name": "b"}]));
    let patched = smp(original, json!({"spec": {"containers": [{"name": "c"}]}}));
    assert_eq!(
        patched["spec"]["containers"],
        json!([{"name": "c"}, {"name": "a"}, {"name": "b"}])
    );
}

#[test]
fn strategic_merge_keeps_the_patch_order_for_the_items_it_names() {
    let original = pod(json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]));
    let patched = smp(
        original,
        json!({"spec": {"containers": [{"name": "c", "image": "x"}, {"name": "a", "image": "y"}]}}),
    );
    let names: Vec<&str> = patched["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b", "c", "a"]);
}

#[test]
fn json_patch_test_for_null_passes_on_a_missing_path_as_the_apiserver_does() {
    let target = json!({"metadata": {"name": "x"}});
    let patch = json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["example.com/cleanup"]}
    ]);
    assert_eq!(
        apply_json_patch(&target, &patch).unwrap(),
        json!({"metadata": {"name": "x", "finalizers": ["example.com/cleanup"]}})
    );
    let present = json!({"metadata": {"name": "x", "finalizers": ["other"]}});
    assert!(matches!(
        apply_json_patch(&present, &patch),
        Err(Error::JsonPatchFailed(_))
    ));
}
