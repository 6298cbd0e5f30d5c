//! Pruning unknown fields and applying defaults, as the apiserver does before validating.

use serde_json::{Value, json};
use upstart_crd_validation::{CompiledSchema, apply_defaults, prune};

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "chart": {"type": "string"},
                    "values": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "releases": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "properties": {
                                "timeout": {"type": "string", "default": "5m"},
                                "wait": {"type": "boolean"}
                            }
                        }
                    },
                    "ports": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "protocol": {"type": "string", "default": "TCP"}
                            }
                        }
                    },
                    "template": {
                        "type": "object",
                        "x-kubernetes-embedded-resource": true,
                        "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}
                    },
                    "scope": {"type": "string", "default": "internal"},
                    "label": {"type": "string", "nullable": true, "default": "x"},
                    "note": {"type": "string"}
                }
            }
        }
    })
}

#[test]
fn unknown_fields_are_removed_and_reported() {
    let mut object = json!({
        "apiVersion": "example.com/v1",
        "kind": "Thing",
        "metadata": {"name": "a", "labels": {"x": "y"}},
        "spec": {"chart": "c", "bogus": 1, "ports": [{"name": "p", "extra": true}]},
        "status2": {}
    });
    let pruned = prune(&schema(), &mut object);
    assert_eq!(pruned, ["spec.bogus", "spec.ports[0].extra", "status2"]);
    assert_eq!(
        object,
        json!({
            "apiVersion": "example.com/v1",
            "kind": "Thing",
            "metadata": {"name": "a", "labels": {"x": "y"}},
            "spec": {"chart": "c", "ports": [{"name": "p"}]}
        })
    );
}

#[test]
fn preserve_unknown_fields_keeps_everything_below_it() {
    let mut object = json!({"spec": {"values": {"any": {"thing": [1, 2]}}}});
    assert!(prune(&schema(), &mut object).is_empty());
    assert_eq!(object["spec"]["values"]["any"]["thing"], json!([1, 2]));
}

#[test]
fn map_values_are_pruned_by_their_schema() {
    let mut object = json!({"spec": {"releases": {"web": {"wait": true, "junk": 1}}}});
    assert_eq!(prune(&schema(), &mut object), ["spec.releases[web].junk"]);
}

#[test]
fn embedded_resources_keep_api_version_kind_and_object_meta_only() {
    let mut object = json!({"spec": {"template": {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "bogus": 1},
        "spec": {"a": "b", "c": "d"}
    }}});
    assert_eq!(
        prune(&schema(), &mut object),
        ["spec.template.metadata.bogus", "spec.template.spec.c"]
    );
    assert_eq!(
        object["spec"]["template"],
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"a": "b"}})
    );
}

#[test]
fn defaults_fill_missing_fields_including_list_items_and_map_values() {
    let mut object = json!({"spec": {
        "ports": [{"name": "http"}, {"name": "dns", "protocol": "UDP"}],
        "releases": {"web": {}}
    }});
    apply_defaults(&schema(), &mut object);
    assert_eq!(
        object,
        json!({"spec": {
            "ports": [{"name": "http", "protocol": "TCP"}, {"name": "dns", "protocol": "UDP"}],
            "releases": {"web": {"timeout": "5m"}},
            "scope": "internal",
            "label": "x"
        }})
    );
}

#[test]
fn defaults_replace_non_nullable_nulls_but_not_nullable_ones() {
    let mut object = json!({"spec": {"scope": null, "label": null, "note": null}});
    apply_defaults(&schema(), &mut object);
    assert_eq!(
        object,
        json!({"spec": {"scope": "internal", "label": null}}),
        "a non-nullable null without default is dropped"
    );
}

#[test]
fn admit_prunes_defaults_then_validates() {
    let compiled = CompiledSchema::new(&json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "required": ["scope"],
            "properties": {
                "scope": {"type": "string", "enum": ["internal", "external"], "default": "internal"}
            }
        }}
    }));
    let mut object = json!({"spec": {"extra": 1}});
    let admission = compiled.admit(&mut object, None);
    assert_eq!(admission.pruned, ["spec.extra"]);
    assert!(admission.errors.is_empty());
    assert_eq!(object, json!({"spec": {"scope": "internal"}}));
}

#[test]
fn boolean_additional_properties_keep_values_but_empty_objects_inside_them() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "free": {"type": "object", "additionalProperties": true}
    }}}});
    let mut object = json!({"spec": {"free": {"a": 1, "b": {"c": 2}, "d": [{"e": 3}]}}});
    assert_eq!(
        prune(&schema, &mut object),
        ["spec.free[b].c", "spec.free[d][0].e"]
    );
    assert_eq!(
        object,
        json!({"spec": {"free": {"a": 1, "b": {}, "d": [{}]}}})
    );
}

#[test]
fn known_fields_below_preserve_unknown_fields_are_still_pruned_by_their_schema() {
    let schema = json!({"type": "object", "properties": {"spec": {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}
    }}});
    let mut object = json!({"spec": {"other": {"x": 1}, "known": {"a": "1", "b": "2"}}});
    assert_eq!(prune(&schema, &mut object), ["spec.known.b"]);
    assert_eq!(
        object,
        json!({"spec": {"other": {"x": 1}, "known": {"a": "1"}}})
    );
}
