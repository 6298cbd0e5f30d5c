//! The scale subresource: an object seen as an `autoscaling/v1` Scale, and writes through it.

use serde_json::{Value, json};

use super::{Store, WriteOpts, subject};
use crate::error::{ApiError, ApiResult, Cause};
use crate::meta;
use crate::registry::ResourceType;

impl Store {
    /// `GET .../scale`: the object seen as an `autoscaling/v1` Scale.
    pub fn get_scale(
        &self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> ApiResult<Value> {
        let obj = self.get(resource, namespace, name)?;
        scale_of(resource, &obj)
    }

    /// `PUT`/`PATCH .../scale`: writes `spec.replicas` (or the CRD's specReplicasPath).
    pub fn set_scale(
        &mut self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
        scale: &Value,
        opts: &WriteOpts,
    ) -> ApiResult<Value> {
        let namespace = Self::storage_namespace(resource, namespace);
        let old = self.get(resource, &namespace, name)?;
        let paths = resource
            .scale
            .clone()
            .ok_or_else(ApiError::page_not_found)?;
        let rv = meta::resource_version(scale);
        if !rv.is_empty() && rv != meta::resource_version(&old) {
            return Err(ApiError::stale(subject(resource, name)));
        }
        let Some(replicas) = scale["spec"]["replicas"]
            .as_i64()
            .filter(|replicas| *replicas >= 0)
        else {
            return Err(ApiError::invalid(
                "Scale",
                "autoscaling",
                name,
                vec![Cause::invalid(
                    "spec.replicas",
                    &scale["spec"]["replicas"],
                    "must be greater than or equal to 0",
                )],
            ));
        };
        let mut new = (*old).clone();
        set_path(&mut new, &paths.spec_replicas, json!(replicas));
        let result = self.write_update(resource, &old, new, None, opts)?;
        scale_of(resource, &result.object)
    }
}

/// The fields of a CRD's scale path (`.spec.replicas`).
fn path_segments(path: &str) -> impl Iterator<Item = &str> {
    path.trim_start_matches('.')
        .split('.')
        .filter(|segment| !segment.is_empty())
}

fn get_path<'a>(obj: &'a Value, path: &str) -> &'a Value {
    path_segments(path).fold(obj, |current, segment| &current[segment])
}

fn set_path(obj: &mut Value, path: &str, value: Value) {
    let mut current = obj;
    for segment in path_segments(path) {
        if !current.is_object() {
            *current = json!({});
        }
        current = &mut current[segment];
    }
    *current = value;
}

/// A label selector object (`matchLabels`, `matchExpressions`) in its string form.
fn selector_string(selector: &Value) -> String {
    if let Some(already_string) = selector.as_str() {
        return already_string.to_string();
    }
    let mut parts: Vec<String> = selector["matchLabels"]
        .as_object()
        .map(|match_labels| {
            match_labels
                .iter()
                .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    for expression in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = expression["key"].as_str().unwrap_or("");
        let values: Vec<&str> = expression["values"]
            .as_array()
            .map(|values| values.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        parts.push(match expression["operator"].as_str().unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    parts.join(",")
}

/// The object seen as an `autoscaling/v1` Scale, through the resource's scale paths.
fn scale_of(resource: &ResourceType, obj: &Value) -> ApiResult<Value> {
    let paths = resource
        .scale
        .as_ref()
        .ok_or_else(ApiError::page_not_found)?;
    let metadata = &obj["metadata"];
    let mut scale = json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": metadata["name"], "uid": metadata["uid"],
            "resourceVersion": metadata["resourceVersion"],
            "creationTimestamp": metadata["creationTimestamp"],
        },
        "spec": {"replicas": get_path(obj, &paths.spec_replicas).as_i64().unwrap_or(0)},
        "status": {"replicas": get_path(obj, &paths.status_replicas).as_i64().unwrap_or(0)},
    });
    if resource.namespaced {
        scale["metadata"]["namespace"] = metadata["namespace"].clone();
    }
    if let Some(selector_path) = &paths.label_selector {
        let selector = get_path(obj, selector_path);
        if !selector.is_null() {
            scale["status"]["selector"] = json!(selector_string(selector));
        }
    }
    Ok(scale)
}
