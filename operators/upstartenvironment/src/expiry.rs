//! When an environment expires (SPEC §4): `creationTimestamp + ttl`, unless the keep
//! annotation suspends it. Pure, so editing `ttl` simply moves the answer.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use upstart_api::duration::parse_duration;
use upstart_api::labels::KEEP_ANNOTATION;
use upstart_api::v1alpha1::UpstartEnvironment;

/// Whether the keep annotation (`"true"`) suspends expiry.
pub fn is_kept(env: &UpstartEnvironment) -> bool {
    env.annotations()
        .get(KEEP_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// When the environment deletes itself; `None`: never (no `ttl`, or kept). A `ttl` the schema
/// would refuse counts as none rather than as an instant expiry.
pub fn expires_at(env: &UpstartEnvironment) -> Option<Timestamp> {
    if is_kept(env) {
        return None;
    }
    let ttl = parse_duration(env.spec.ttl.as_deref()?).ok()?;
    let created = env.metadata.creation_timestamp.as_ref()?.0;
    created.checked_add(ttl).ok()
}

/// How long until `expires_at` (zero once it has passed).
pub fn time_left(expires_at: Timestamp, now: Timestamp) -> Duration {
    now.duration_until(expires_at)
        .try_into()
        .unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn env(ttl: Option<&str>, keep: Option<&str>) -> UpstartEnvironment {
        let mut annotations = serde_json::Map::new();
        if let Some(keep) = keep {
            annotations.insert(KEEP_ANNOTATION.to_owned(), json!(keep));
        }
        serde_json::from_value(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "UpstartEnvironment",
            "metadata": {"name": "e", "creationTimestamp": "2026-01-01T00:00:00Z",
                         "annotations": annotations},
            "spec": {"ttl": ttl},
        }))
        .expect("valid environment")
    }

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    #[test]
    fn expiry_is_creation_plus_ttl() {
        assert_eq!(
            expires_at(&env(Some("72h"), None)),
            Some(at("2026-01-04T00:00:00Z"))
        );
        assert_eq!(
            expires_at(&env(Some("1h30m"), None)),
            Some(at("2026-01-01T01:30:00Z"))
        );
    }

    #[test]
    fn editing_the_ttl_moves_the_expiry() {
        let short = expires_at(&env(Some("1h"), None));
        let long = expires_at(&env(Some("2h"), None));
        assert!(long > short);
    }

    #[test]
    fn no_ttl_or_the_keep_annotation_means_no_expiry() {
        assert_eq!(expires_at(&env(None, None)), None);
        assert_eq!(expires_at(&env(Some("1h"), Some("true"))), None);
        assert!(expires_at(&env(Some("1h"), Some("false"))).is_some());
    }

    #[test]
    fn time_left_counts_down_to_zero() {
        let expiry = at("2026-01-01T01:00:00Z");
        assert_eq!(
            time_left(expiry, at("2026-01-01T00:59:00Z")),
            Duration::from_secs(60)
        );
        assert_eq!(
            time_left(expiry, at("2026-01-01T02:00:00Z")),
            Duration::ZERO
        );
    }
}
