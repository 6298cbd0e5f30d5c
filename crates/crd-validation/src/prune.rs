//! Dropping fields the schema does not declare, as the apiserver does before storing an object.

use serde_json::{Map, Value};

use crate::schema::{Additional, Node};

/// The fields of `ObjectMeta`: what survives in the metadata of an embedded resource.
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Removes unknown fields from `value` and returns their paths (`spec.foo`, `spec.items[0].bar`),
/// which the apiserver reports as `unknown field "..."` warnings.
pub(crate) fn prune(root: &Node, value: &mut Value) -> Vec<String> {
    let mut pruned = Vec::new();
    if let Value::Object(map) = value {
        // apiVersion, kind and metadata of the object itself are the apiserver's, never pruned.
        prune_object(root, map, "", true, &mut pruned);
    }
    pruned
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn prune_object(
    node: &Node,
    map: &mut Map<String, Value>,
    path: &str,
    is_resource_root: bool,
    pruned: &mut Vec<String>,
) {
    let keep_all = node.preserve_unknown || matches!(node.additional, Additional::Allows(true));
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        let child_path = join(path, &key);
        if is_resource_root && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            if key == "metadata"
                && !path.is_empty()
                && let Some(Value::Object(meta)) = map.get_mut(&key)
            {
                // Embedded resources keep only ObjectMeta's fields in their metadata.
                let unknown: Vec<String> = meta
                    .keys()
                    .filter(|k| !OBJECT_META_FIELDS.contains(&k.as_str()))
                    .cloned()
                    .collect();
                for k in unknown {
                    meta.remove(&k);
                    pruned.push(join(&child_path, &k));
                }
            }
            continue;
        }
        if let Some(prop) = node.properties.get(&key) {
            if let Some(v) = map.get_mut(&key) {
                prune_value(prop, v, &child_path, pruned);
            }
        } else if let Additional::Schema(s) = &node.additional {
            if let Some(v) = map.get_mut(&key) {
                prune_value(s, v, &format!("{path}[{key}]"), pruned);
            }
        } else if !keep_all {
            map.remove(&key);
            pruned.push(child_path);
        }
    }
}

fn prune_value(node: &Node, value: &mut Value, path: &str, pruned: &mut Vec<String>) {
    match value {
        Value::Object(map) => prune_object(node, map, path, node.embedded, pruned),
        Value::Array(items) => {
            if let Some(item_schema) = &node.items {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_value(item_schema, item, &format!("{path}[{i}]"), pruned);
                }
            }
        }
        _ => {}
    }
}

/// Prunes a value that sits at `node` rather than at a resource's root (used for defaults).
pub(crate) fn prune_value_at(node: &Node, value: &mut Value) -> Vec<String> {
    let mut pruned = Vec::new();
    prune_value(node, value, "", &mut pruned);
    pruned
}
