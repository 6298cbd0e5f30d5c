//! Object metadata helpers: name validation, timestamps, generated names, JSON accessors.

use rand::Rng;
use serde_json::Value;

use crate::error::Cause;

pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Parses an RFC 3339 timestamp to seconds since the epoch (for the Age column).
pub fn parse_time(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// The characters and length the apiserver's `SimpleNameGenerator` uses for `generateName`.
pub fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let max_prefix = 63 - 5;
    let prefix = if prefix.len() > max_prefix {
        &prefix[..max_prefix]
    } else {
        prefix
    };
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn dns1123_label_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| is_alnum(c) || c == '-')
        && s.starts_with(is_alnum)
        && s.ends_with(is_alnum)
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// Validates `metadata.name` the way the apiserver does for the kind: DNS-1123 labels for
/// namespaces and services, path segments for RBAC objects (`system:controller:x` is a valid
/// ClusterRole name), DNS-1123 subdomains for everything else.
pub fn validate_name(plural: &str, group: &str, name: &str) -> Vec<Cause> {
    if group == "rbac.authorization.k8s.io" {
        return validate_path_segment_name(name);
    }
    let label = group.is_empty() && matches!(plural, "namespaces" | "services");
    let value = Value::String(name.to_string());
    if label {
        if !dns1123_label_ok(name) {
            let mut causes = Vec::new();
            if name.len() > 63 {
                causes.push(Cause::invalid(
                    "metadata.name",
                    &value,
                    "must be no more than 63 characters",
                ));
            }
            causes.push(Cause::invalid("metadata.name", &value, LABEL_MSG));
            return causes;
        }
        return Vec::new();
    }
    let mut causes = Vec::new();
    if name.len() > 253 {
        causes.push(Cause::invalid(
            "metadata.name",
            &value,
            "must be no more than 253 characters",
        ));
    }
    let ok = !name.is_empty()
        && name.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| is_alnum(c) || c == '-')
                && part.starts_with(is_alnum)
                && part.ends_with(is_alnum)
        });
    if !ok {
        causes.push(Cause::invalid("metadata.name", &value, SUBDOMAIN_MSG));
    }
    causes
}

/// The apiserver's `ValidatePathSegmentName`: anything but `.`, `..`, `/` and `%`.
fn validate_path_segment_name(name: &str) -> Vec<Cause> {
    let value = Value::String(name.to_string());
    let mut causes = Vec::new();
    if name.is_empty() {
        causes.push(Cause::invalid(
            "metadata.name",
            &value,
            "name or generateName is required",
        ));
    }
    if name == "." || name == ".." {
        causes.push(Cause::invalid(
            "metadata.name",
            &value,
            &format!("may not be '{name}'"),
        ));
    }
    for forbidden in ["/", "%"] {
        if name.contains(forbidden) {
            causes.push(Cause::invalid(
                "metadata.name",
                &value,
                &format!("may not contain '{forbidden}'"),
            ));
        }
    }
    causes
}

pub fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or("")
}

pub fn namespace(obj: &Value) -> &str {
    obj["metadata"]["namespace"].as_str().unwrap_or("")
}

pub fn uid(obj: &Value) -> &str {
    obj["metadata"]["uid"].as_str().unwrap_or("")
}

pub fn resource_version(obj: &Value) -> &str {
    obj["metadata"]["resourceVersion"].as_str().unwrap_or("")
}

pub fn is_deleting(obj: &Value) -> bool {
    obj["metadata"]["deletionTimestamp"].is_string()
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Mutable access to `metadata`, creating it when absent.
pub fn metadata_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = Value::Object(serde_json::Map::new());
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

pub fn set_finalizers(obj: &mut Value, finalizers: &[String]) {
    let meta = metadata_mut(obj);
    if finalizers.is_empty() {
        meta.remove("finalizers");
    } else {
        meta.insert("finalizers".into(), Value::from(finalizers.to_vec()));
    }
}

/// Owner references as `(uid, blockOwnerDeletion)`.
pub fn owner_refs(obj: &Value) -> Vec<(String, bool)> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| {
                    let uid = r["uid"].as_str()?.to_string();
                    Some((uid, r["blockOwnerDeletion"].as_bool() == Some(true)))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `a` and `b` are the same but for `metadata` (and `status` when `drop_status`): what
/// `generation` tracks. Compared in place, without copying either object.
pub fn same_for_generation(a: &Value, b: &Value, drop_status: bool) -> bool {
    let tracked = |key: &String| key != "metadata" && !(drop_status && key == "status");
    match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => {
            a.keys().filter(|k| tracked(k)).count() == b.keys().filter(|k| tracked(k)).count()
                && a.iter()
                    .filter(|(k, _)| tracked(k))
                    .all(|(k, v)| b.get(k) == Some(v))
        }
        _ => a == b,
    }
}

/// A request body's numbers as the apiserver keeps them: it decodes a JSON number that is not
/// an integer literal (`100.0`, `1e3`) as a float and stores it re-encoded, where a float with
/// an integral value is written as an integer (`100`). So `maximum: 100.0` from one client and
/// `maximum: 100` from another are the same value, and server-side apply sees no change (nor
/// a conflict) between them.
pub fn with_integral_floats_as_integers(mut value: Value) -> Value {
    fn walk(value: &mut Value) {
        match value {
            Value::Number(n) if n.is_f64() => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                // 2^63: the floats at or beyond it do not fit an i64.
                if f.fract() == 0.0 && f.abs() < 9_223_372_036_854_775_808.0 {
                    *value = Value::from(f as i64);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            Value::Object(map) => map.values_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_follows_all_but_metadata_and_status() {
        let a = serde_json::json!({"metadata": {"name": "a", "labels": {"x": "1"}},
            "spec": {"replicas": 1}, "status": {"ready": 0}, "data": {"k": "v"}});
        let mut b = a.clone();
        b["metadata"]["labels"]["x"] = serde_json::json!("2");
        b["status"]["ready"] = serde_json::json!(1);
        assert!(same_for_generation(&a, &b, true));
        assert!(
            !same_for_generation(&a, &b, false),
            "status counts without a subresource"
        );
        b["spec"]["replicas"] = serde_json::json!(2);
        assert!(!same_for_generation(&a, &b, true));
        let mut c = a.clone();
        if let Some(fields) = c.as_object_mut() {
            fields.remove("data");
        }
        assert!(!same_for_generation(&a, &c, true), "a field removed");
        assert!(!same_for_generation(&c, &a, true), "a field added");
    }

    #[test]
    fn names_follow_dns_1123_rules() {
        assert!(validate_name("configmaps", "", "a.b-c").is_empty());
        assert_eq!(validate_name("configmaps", "", "Bad_Name").len(), 1);
        assert!(!validate_name("namespaces", "", "a.b").is_empty());
        assert!(validate_name("namespaces", "", "team-a").is_empty());
        let rbac = "rbac.authorization.k8s.io";
        assert!(validate_name("clusterroles", rbac, "system:controller:upstart").is_empty());
        assert_eq!(validate_name("clusterroles", rbac, "a/b").len(), 1);
        assert_eq!(validate_name("roles", rbac, "..").len(), 1);
    }

    #[test]
    fn generated_names_append_five_characters() {
        let n = generate_name("web-");
        assert_eq!(n.len(), 9);
        assert!(n.starts_with("web-"));
    }
}
