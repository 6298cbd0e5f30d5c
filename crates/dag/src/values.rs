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

/// `release` with an environment's override of it applied, as the environment operator applies
/// it (and the CLI previews it): the chart, version and `enabled` replaced, the values deep-merged over the
/// release's inline values (`key` names the release in an error). A values override that is
/// not a mapping is an error and leaves the values as they were.
pub fn apply_override(
    key: &str,
    release: &mut upstart_api::v1alpha1::HelmReleaseSpec,
    change: &upstart_api::v1alpha1::ReleaseOverride,
) -> Result<(), Error> {
    if let Some(chart) = &change.chart {
        release.chart.clone_from(chart);
    }
    if let Some(version) = &change.version {
        release.version = Some(version.clone());
    }
    if let Some(enabled) = &change.enabled {
        release.enabled = Some(enabled.clone());
    }
    if change.values.is_some() {
        let base = release
            .values
            .clone()
            .unwrap_or_else(|| Value::Object(Map::new()));
        release.values = Some(release_values(
            [(format!("the values of {key}"), base)],
            change.values.as_ref(),
        )?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn maps_merge_key_by_key_and_later_documents_win() {
        let merged = release_values(
            [
                (
                    "ConfigMap/shared".to_owned(),
                    json!({"image": {"repository": "app", "tag": "1"}, "a": 1}),
                ),
                (
                    "Secret/db".to_owned(),
                    json!({"image": {"tag": "2"}, "b": 2}),
                ),
            ],
            Some(&json!({"image": {"pullPolicy": "Always"}, "c": 3})),
        )
        .unwrap();
        assert_eq!(
            merged,
            json!({"image": {"repository": "app", "tag": "2", "pullPolicy": "Always"}, "a": 1, "b": 2, "c": 3})
        );
    }

    #[test]
    fn lists_are_replaced_not_appended() {
        let merged = release_values(
            [("a".to_owned(), json!({"hosts": ["a", "b"]}))],
            Some(&json!({"hosts": ["c"]})),
        )
        .unwrap();
        assert_eq!(merged, json!({"hosts": ["c"]}));
    }

    #[test]
    fn a_scalar_replaces_a_map_and_a_map_replaces_a_scalar() {
        let mut base = json!({"x": {"y": 1}, "z": 5});
        merge_values(&mut base, json!({"x": "flat", "z": {"deep": true}}));
        assert_eq!(base, json!({"x": "flat", "z": {"deep": true}}));
    }

    #[test]
    fn null_replaces_a_value_and_is_kept_so_helm_drops_the_chart_default_too() {
        let merged = release_values(
            [(
                "a".to_owned(),
                json!({"resources": {"limits": {"cpu": 1}}, "keep": 1}),
            )],
            Some(&json!({"resources": null})),
        )
        .unwrap();
        assert_eq!(merged, json!({"resources": null, "keep": 1}));
    }

    #[test]
    fn empty_documents_contribute_nothing_and_non_maps_are_errors_naming_the_source() {
        let merged = release_values([("empty".to_owned(), Value::Null)], None).unwrap();
        assert_eq!(merged, json!({}));
        let err = release_values([("ConfigMap/bad".to_owned(), json!(["a"]))], None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ConfigMap/bad: a values document must be a mapping, found a list"
        );
        let err = release_values(Vec::new(), Some(&json!("text"))).unwrap_err();
        assert!(matches!(
            err,
            Error::ValuesNotAMap {
                found: "a string",
                ..
            }
        ));
    }

    #[test]
    fn inline_values_are_not_modified_by_merging() {
        let inline = json!({"a": {"b": 1}});
        let _ = release_values([("x".to_owned(), json!({"a": {"c": 2}}))], Some(&inline)).unwrap();
        assert_eq!(inline, json!({"a": {"b": 1}}));
    }
}
