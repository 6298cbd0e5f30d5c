//! Filling in schema `default`s and dropping non-nullable nulls, as the apiserver does when it
//! reads or writes a custom resource.

use serde_json::Value;

use crate::schema::{Additional, Node};

/// Applies defaults throughout `value`: a missing property with a `default` gets it, and so
/// does a `null` one whose schema is not nullable; other non-nullable `null` properties and map
/// values are removed. Defaults reach into array items and map values, and into the defaults
/// just set (a default object gets its own properties' defaults).
pub(crate) fn apply_defaults(node: &Node, value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, prop) in &node.properties {
                let Some(default) = &prop.default else {
                    continue;
                };
                let needs = match map.get(key) {
                    None => true,
                    Some(Value::Null) => !prop.nullable,
                    Some(_) => false,
                };
                if needs {
                    map.insert(key.clone(), default.clone());
                }
            }
            let additional = match &node.additional {
                Additional::Schema(s) => Some(s.as_ref()),
                _ => None,
            };
            map.retain(|key, v| {
                let schema = node.properties.get(key).or(additional);
                // A null that the schema does not allow and no default replaced is dropped, so
                // that it validates as absent (PruneNonNullableNullsWithoutDefaults).
                !(v.is_null() && schema.is_some_and(|s| !s.nullable && s.default.is_none()))
            });
            for (key, v) in map.iter_mut() {
                if let Some(schema) = node.properties.get(key).or(additional) {
                    if v.is_null()
                        && !schema.nullable
                        && let Some(default) = &schema.default
                    {
                        *v = default.clone();
                    }
                    apply_defaults(schema, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &node.items {
                for item in items.iter_mut() {
                    if item.is_null()
                        && !item_schema.nullable
                        && let Some(default) = &item_schema.default
                    {
                        *item = default.clone();
                    }
                    apply_defaults(item_schema, item);
                }
            }
        }
        _ => {}
    }
}
