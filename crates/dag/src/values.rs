//! The values document of a release (SPEC §2.3): `valuesFrom` documents merged in order, then the
//! inline `values`, with the rules Helm applies to several `-f` files.
//!
//! Maps merge key by key; anything else (lists, scalars, `null`) replaces what was there. A
//! `null` is kept as `null` rather than dropped: it is how a user removes a key of the chart's
//! own defaults, and Helm only does that if it sees the `null` (dropping it here would bring the
//! chart default back).

use serde_json::{Map, Value};

use crate::Error;

/// Merges `overlay` into `base`: maps recursively, everything else replaced by the overlay.
pub fn merge_values(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge_values(existing, value);
                    }
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

/// The final values of a release before expressions: each `valuesFrom` document in order (as
/// `(where it came from, document)`), then the inline `values`. An empty document (`null`)
/// contributes nothing; any other non-mapping document is an error naming where it came from.
pub fn release_values(
    values_from: impl IntoIterator<Item = (String, Value)>,
    inline: Option<&Value>,
) -> Result<Value, Error> {
    let mut merged = Value::Object(Map::new());
    for (origin, document) in values_from {
        match document {
            Value::Null => {}
            Value::Object(_) => merge_values(&mut merged, document),
            other => {
                return Err(Error::ValuesNotAMap {
                    origin,
                    found: type_name(&other),
                });
            }
        }
    }
    match inline {
        None | Some(Value::Null) => {}
        Some(values @ Value::Object(_)) => merge_values(&mut merged, values.clone()),
        Some(other) => {
            return Err(Error::ValuesNotAMap {
                origin: "values".to_owned(),
                found: type_name(other),
            });
        }
    }
    Ok(merged)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
