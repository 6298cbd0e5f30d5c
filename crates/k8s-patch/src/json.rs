//! JSON merge patch (RFC 7386) and JSON patch (RFC 6902), as the apiserver applies them.

use serde_json::{Map, Value};

use crate::Error;

/// Applies a JSON merge patch (`application/merge-patch+json`, RFC 7386): maps merge field by
/// field, `null` removes a field, anything else (lists included) replaces.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let mut out = target.clone();
    json_patch::merge(&mut out, patch);
    out
}

/// The JSON merge patch that turns `from` into `to` (the inverse of [`merge_patch`] for values
/// without `null`s, which RFC 7386 cannot express).
pub fn create_merge_patch(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(from), Value::Object(to)) => {
            let mut patch = Map::new();
            for key in from.keys() {
                if !to.contains_key(key) {
                    patch.insert(key.clone(), Value::Null);
                }
            }
            for (key, to_value) in to {
                match from.get(key) {
                    Some(from_value) if from_value == to_value => {}
                    Some(from_value @ Value::Object(_)) if to_value.is_object() => {
                        patch.insert(key.clone(), create_merge_patch(from_value, to_value));
                    }
                    _ => {
                        patch.insert(key.clone(), to_value.clone());
                    }
                }
            }
            Value::Object(patch)
        }
        _ => to.clone(),
    }
}

/// Applies a JSON patch (`application/json-patch+json`, RFC 6902): `add`, `remove`, `replace`,
/// `move`, `copy` and `test`, all or nothing.
///
/// Errors: [`Error::InvalidPatch`] (400) when `patch` is not a list of operations,
/// [`Error::JsonPatchFailed`] (422) when an operation fails (a missing path, a failed `test`).
///
/// As in kube-apiserver, a `test` for `null` passes on a missing path: its JSON patch library
/// reads a missing value as `null`, and clients rely on it (kube-runtime's finalizer helper
/// sends `test /metadata/finalizers null` before adding the first finalizer).
pub fn apply_json_patch(target: &Value, patch: &Value) -> Result<Value, Error> {
    let patch: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| Error::InvalidPatch(e.to_string()))?;
    let mut out = target.clone();
    for operation in patch.0 {
        if let json_patch::PatchOperation::Test(test) = &operation
            && test.value.is_null()
            && out.pointer(test.path.as_str()).is_none()
        {
            continue;
        }
        json_patch::patch(&mut out, &[operation])
            .map_err(|e| Error::JsonPatchFailed(e.to_string()))?;
    }
    Ok(out)
}
