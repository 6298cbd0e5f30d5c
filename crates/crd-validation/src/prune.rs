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
/// which the apiserver reports as `unknown field "..."` warnings. Follows the apiserver's
/// pruning algorithm, including its treatment of `additionalProperties: true|false` (values
/// kept, objects inside them emptied) and of `x-kubernetes-preserve-unknown-fields`.
pub(crate) fn prune(root: &Node, value: &mut Value) -> Vec<String> {
    let mut pruned = Vec::new();
    // The object itself is a resource: its apiVersion, kind and metadata are the apiserver's.
    prune_at(Some(root), value, "", true, &mut pruned);
    pruned
}

/// Prunes a value that sits at `node` rather than at a resource's root (used for defaults).
pub(crate) fn prune_value_at(node: &Node, value: &mut Value) -> Vec<String> {
    let mut pruned = Vec::new();
    prune_at(Some(node), value, "", false, &mut pruned);
    pruned
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn is_meta_field(key: &str) -> bool {
    matches!(key, "apiVersion" | "kind" | "metadata")
}

/// Embedded resources keep only ObjectMeta's fields in their metadata (the apiserver
/// round-trips it through ObjectMeta).
fn prune_embedded_metadata(map: &mut Map<String, Value>, path: &str, pruned: &mut Vec<String>) {
    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
        let unknown: Vec<String> = meta
            .keys()
            .filter(|k| !OBJECT_META_FIELDS.contains(&k.as_str()))
            .cloned()
            .collect();
        for k in unknown {
            meta.remove(&k);
            pruned.push(join(&join(path, "metadata"), &k));
        }
    }
}

/// The schema a key of an object falls under: its property, else the additionalProperties
/// schema. `Some(None)`: additionalProperties is a boolean, so the key is kept but has no schema.
fn schema_for_key<'a>(node: &'a Node, key: &str) -> Option<Option<&'a Node>> {
    if let Some(prop) = node.properties.get(key) {
        return Some(Some(prop));
    }
    match &node.additional {
        Additional::Schema(s) => Some(Some(s)),
        Additional::Allows(_) => Some(None),
        Additional::Unset => None,
    }
}

fn key_path(node: &Node, path: &str, key: &str) -> String {
    if node.properties.contains_key(key) {
        join(path, key)
    } else {
        format!("{path}[{key}]")
    }
}

fn prune_at(
    node: Option<&Node>,
    value: &mut Value,
    path: &str,
    is_root: bool,
    pruned: &mut Vec<String>,
) {
    if let Some(n) = node
        && n.preserve_unknown
    {
        skip_prune(n, value, path, is_root, pruned);
        return;
    }
    match value {
        Value::Object(map) => {
            let Some(n) = node else {
                // No schema at all: nothing inside is known.
                for (key, _) in std::mem::take(map) {
                    pruned.push(join(path, &key));
                }
                return;
            };
            let resource = is_root || n.embedded;
            if n.embedded && !is_root {
                prune_embedded_metadata(map, path, pruned);
            }
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                if resource && is_meta_field(&key) {
                    continue;
                }
                match schema_for_key(n, &key) {
                    Some(schema) => {
                        if let Some(v) = map.get_mut(&key) {
                            prune_at(schema, v, &key_path(n, path, &key), false, pruned);
                        }
                    }
                    None => {
                        map.remove(&key);
                        pruned.push(join(path, &key));
                    }
                }
            }
        }
        Value::Array(items) => {
            let item_schema = node.and_then(|n| n.items.as_deref());
            for (i, item) in items.iter_mut().enumerate() {
                prune_at(item_schema, item, &format!("{path}[{i}]"), false, pruned);
            }
        }
        _ => {}
    }
}

/// Below `x-kubernetes-preserve-unknown-fields`: unknown keys stay, known ones are pruned by
/// their own schemas.
fn skip_prune(node: &Node, value: &mut Value, path: &str, is_root: bool, pruned: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let resource = is_root || node.embedded;
            if node.embedded && !is_root {
                prune_embedded_metadata(map, path, pruned);
            }
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                if resource && is_meta_field(&key) {
                    continue;
                }
                if let Some(schema) = schema_for_key(node, &key)
                    && let Some(v) = map.get_mut(&key)
                {
                    prune_at(schema, v, &key_path(node, path, &key), false, pruned);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = node.items.as_deref() {
                for (i, item) in items.iter_mut().enumerate() {
                    skip_prune(item_schema, item, &format!("{path}[{i}]"), false, pruned);
                }
            }
        }
        _ => {}
    }
}
