//! PATCH bodies and managed-fields bookkeeping: the one place the store turns a patch into an
//! object, delegating the semantics to `upstart-k8s-patch`.

use std::sync::Arc;

use serde_json::{Value, json};
use upstart_k8s_patch::{self as kp, ApplyParams, Semantics, UpdateParams, WriteScope};

use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::registry::ResourceType;

/// The patch formats the apiserver accepts, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchKind::Apply)
            }
            _ => None,
        }
    }
}

fn parse_json(body: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(body)
        .map(crate::meta::with_integral_floats_as_integers)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// The merge rules of a type: built-in tables, or the CRD schema of the object's version.
pub fn semantics(t: &ResourceType, obj: Option<&Value>) -> Arc<Semantics> {
    /// Built-in kinds all share the built-in tables.
    static BUILTIN: std::sync::LazyLock<Arc<Semantics>> =
        std::sync::LazyLock::new(|| Arc::new(Semantics::builtin()));
    if t.builtin {
        return Arc::clone(&BUILTIN);
    }
    let version = obj
        .and_then(|o| o["apiVersion"].as_str())
        .map(|v| crate::registry::split_api_version(v).1.to_string())
        .unwrap_or_else(|| t.preferred_version().to_string());
    match t
        .crd_versions
        .get(&version)
        .or_else(|| t.crd_versions.values().next())
    {
        Some(v) => Arc::clone(&v.semantics),
        None => Arc::new(Semantics::from_crd_schema(&json!({"type": "object"}))),
    }
}

fn scope(t: &ResourceType, subresource: Option<&str>) -> WriteScope {
    match (t.has_status, subresource) {
        (_, Some("status")) => WriteScope::StatusSubresource,
        (true, _) => WriteScope::MainResource,
        (false, _) => WriteScope::WholeObject,
    }
}

fn patch_error(e: kp::Error) -> ApiError {
    match e {
        kp::Error::Conflict(conflicts) => {
            let causes: Vec<Value> = conflicts
                .0
                .iter()
                .map(|c| {
                    json!({"reason": "FieldManagerConflict", "message": c.cause_message(), "field": c.field})
                })
                .collect();
            ApiError::new(409, "Conflict", conflicts.to_string())
                .with_details(json!({"causes": causes}))
        }
        other => ApiError::new(other.status_code(), other.reason(), other.to_string()),
    }
}

/// Applies a merge, JSON or strategic merge patch to `current`.
pub fn apply_patch(
    kind: PatchKind,
    current: &Value,
    body: &[u8],
    t: &ResourceType,
) -> ApiResult<Value> {
    let patch = parse_json(body)?;
    match kind {
        PatchKind::Merge => Ok(kp::merge_patch(current, &patch)),
        PatchKind::Json => kp::apply_json_patch(current, &patch).map_err(patch_error),
        PatchKind::Strategic => {
            if !t.builtin {
                return Err(ApiError::unsupported_media_type(
                    "application/strategic-merge-patch+json",
                ));
            }
            kp::strategic_merge(current, &patch, &semantics(t, Some(current))).map_err(patch_error)
        }
        PatchKind::Apply => Err(ApiError::internal(
            "server-side apply goes through server_side_apply",
        )),
    }
}

/// Parses an apply body (YAML or JSON).
pub fn parse_apply_body(body: &[u8]) -> ApiResult<Value> {
    // Clients send JSON (kube-rs, client-go, kubectl): JSON is YAML, and a JSON parser reads it
    // several times faster, to the same value (a key given twice included: the last one
    // counts either way). Anything else goes the YAML way, with its answers.
    let parsed = match serde_json::from_slice::<Value>(body) {
        Ok(value) => Ok(value),
        Err(_) => serde_yaml_ng::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}"))),
    };
    parsed.map(crate::meta::with_integral_floats_as_integers)
}

/// Server-side apply of `applied` by `manager` onto `current` (None when creating), with
/// conflicts (409) unless `force`.
pub fn server_side_apply(
    current: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    t: &ResourceType,
    subresource: Option<&str>,
) -> ApiResult<Value> {
    let now = meta::now_rfc3339();
    let params = ApplyParams {
        manager,
        force,
        scope: scope(t, subresource),
        now: &now,
    };
    kp::apply(current, applied, &params, &semantics(t, Some(applied))).map_err(patch_error)
}

/// Records a non-apply write by `manager` in `managedFields`.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    t: &ResourceType,
    subresource: Option<&str>,
) -> ApiResult<()> {
    let now = meta::now_rfc3339();
    let api_version = new["apiVersion"].as_str().unwrap_or("").to_string();
    let params = UpdateParams {
        manager,
        api_version: &api_version,
        scope: scope(t, subresource),
        now: &now,
    };
    let sem = semantics(t, Some(new));
    kp::record_update(old, new, &params, &sem).map_err(patch_error)
}

#[cfg(test)]
mod apply_body_tests {
    use super::*;

    #[test]
    fn a_json_body_reads_as_its_yaml_reading_would() {
        let body = br#"{"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "labels": {"x": "\u00e9\/"}},
            "data": {"n": "1"}, "spec": {"replicas": 2.0, "ratio": 0.5, "big": 18446744073709551615,
            "neg": -3, "on": true, "off": null, "list": [1, "two", {"three": [3]}]}}"#;
        let fast = parse_apply_body(body).unwrap();
        let yaml = serde_yaml_ng::from_slice::<Value>(body)
            .map(crate::meta::with_integral_floats_as_integers)
            .unwrap();
        assert_eq!(fast, yaml);
        assert_eq!(fast["spec"]["replicas"], json!(2));
        assert_eq!(fast["metadata"]["labels"]["x"], json!("é/"));
    }

    #[test]
    fn a_key_given_twice_reads_as_its_yaml_reading_would() {
        let body = br#"{"metadata": {"name": "a", "labels": {"x": "1"}, "name": "b"}}"#;
        let yaml = serde_yaml_ng::from_slice::<Value>(body).unwrap();
        assert_eq!(parse_apply_body(body).unwrap(), yaml);
        assert_eq!(yaml["metadata"]["name"], json!("b"));
    }

    #[test]
    fn a_yaml_body_is_still_read_as_yaml() {
        let body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  n: '1'\n";
        let value = parse_apply_body(body).unwrap();
        assert_eq!(value["metadata"]["name"], json!("a"));
        assert_eq!(value["data"]["n"], json!("1"));
        let err = parse_apply_body(b"{\"a\": 1} {").unwrap_err();
        assert!(err.message.contains("error decoding YAML"), "{err:?}");
    }
}
