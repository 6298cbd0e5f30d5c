//! `x-kubernetes-validations` CEL rules: messages, reasons, field paths and transition rules.

use serde_json::{Value, json};
use upstart_crd_validation::{CompiledSchema, FieldErrorKind};

fn messages(schema: &CompiledSchema, object: &Value, old: Option<&Value>) -> Vec<String> {
    schema
        .validate(object, old)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn outputs_schema() -> CompiledSchema {
    CompiledSchema::new(&json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"outputsFrom": {
            "type": "array",
            "items": {
                "type": "object",
                "x-kubernetes-validations": [{
                    "rule": "has(self.secretRef) != has(self.configMapRef)",
                    "message": "exactly one of secretRef or configMapRef must be set"
                }],
                "properties": {
                    "secretRef": {"type": "string"},
                    "configMapRef": {"type": "string"}
                }
            }
        }}}}
    }))
}

#[test]
fn failing_rule_reports_its_message_with_the_schema_type_as_value() {
    let schema = outputs_schema();
    let object = json!({"spec": {"outputsFrom": [{"secretRef": "a"}, {}]}});
    assert_eq!(
        messages(&schema, &object, None),
        [
            r#"spec.outputsFrom[1]: Invalid value: "object": exactly one of secretRef or configMapRef must be set"#
        ]
    );
}

#[test]
fn passing_rule_reports_nothing() {
    let schema = outputs_schema();
    let object = json!({"spec": {"outputsFrom": [{"secretRef": "a"}, {"configMapRef": "b"}]}});
    assert!(messages(&schema, &object, None).is_empty());
}

#[test]
fn rule_without_message_reports_the_rule_itself() {
    let schema = CompiledSchema::new(&json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "x-kubernetes-validations": [{"rule": "self.min <= self.max"}],
            "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}}
        }}
    }));
    assert_eq!(
        messages(&schema, &json!({"spec": {"min": 5, "max": 1}}), None),
        [r#"spec: Invalid value: "object": failed rule: self.min <= self.max"#]
    );
}

#[test]
fn rule_on_the_root_is_reported_at_the_nil_path() {
    let schema = CompiledSchema::new(&json!({
        "type": "object",
        "x-kubernetes-validations": [{"rule": "has(self.spec)", "message": "spec is needed"}],
        "properties": {"spec": {"type": "object"}}
    }));
    assert_eq!(
        messages(&schema, &json!({}), None),
        [r#"<nil>: Invalid value: "object": spec is needed"#]
    );
}

#[test]
fn message_expression_builds_the_message_from_the_value() {
    let schema = CompiledSchema::new(&json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "x-kubernetes-validations": [{
                "rule": "self.replicas <= 5",
                "messageExpression": "'replicas must be at most 5, not ' + string(self.replicas)"
            }],
            "properties": {"replicas": {"type": "integer"}}
        }}
    }));
    assert_eq!(
        messages(&schema, &json!({"spec": {"replicas": 9}}), None),
        [r#"spec: Invalid value: "object": replicas must be at most 5, not 9"#]
    );
}

#[test]
fn field_path_and_reason_move_and_reclassify_the_error() {
    let schema = CompiledSchema::new(&json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "!has(self.legacy)", "message": "legacy is not allowed",
                 "fieldPath": ".legacy", "reason": "FieldValueForbidden"},
                {"rule": "has(self.chart)", "message": "chart is needed",
                 "fieldPath": ".chart", "reason": "FieldValueRequired"}
            ],
            "properties": {"legacy": {"type": "string"}, "chart": {"type": "string"}}
        }}
    }));
    let errors = schema.validate(&json!({"spec": {"legacy": "x"}}), None);
    let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        [
            "spec.legacy: Forbidden: legacy is not allowed",
            "spec.chart: Required value: chart is needed",
        ]
    );
    assert_eq!(errors[0].kind, FieldErrorKind::Forbidden);
}

#[test]
fn map_values_use_bracketed_keys_in_cel_errors() {
    let schema = CompiledSchema::new(&json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"helmReleases": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "x-kubernetes-validations": [{"rule": "self.chart != ''", "message": "chart must not be empty"}],
                "properties": {"chart": {"type": "string"}}
            }
        }}}}
    }));
    assert_eq!(
        messages(
            &schema,
            &json!({"spec": {"helmReleases": {"exampleService": {"chart": ""}}}}),
            None
        ),
        [r#"spec.helmReleases[exampleService]: Invalid value: "object": chart must not be empty"#]
    );
}

fn immutable_schema() -> CompiledSchema {
    CompiledSchema::new(&json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"storageClass": {
            "type": "string",
            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "storageClass is immutable"}]
        }}}}
    }))
}

#[test]
fn transition_rules_do_not_run_on_create() {
    let schema = immutable_schema();
    assert!(messages(&schema, &json!({"spec": {"storageClass": "fast"}}), None).is_empty());
}

#[test]
fn transition_rules_run_on_update() {
    let schema = immutable_schema();
    let old = json!({"spec": {"storageClass": "fast"}});
    assert!(
        messages(
            &schema,
            &json!({"spec": {"storageClass": "fast"}}),
            Some(&old)
        )
        .is_empty()
    );
    assert_eq!(
        messages(
            &schema,
            &json!({"spec": {"storageClass": "slow"}}),
            Some(&old)
        ),
        [r#"spec.storageClass: Invalid value: "string": storageClass is immutable"#]
    );
}

#[test]
fn transition_rules_skip_fields_that_are_new_on_update() {
    let schema = immutable_schema();
    let old = json!({"spec": {}});
    assert!(
        messages(
            &schema,
            &json!({"spec": {"storageClass": "slow"}}),
            Some(&old)
        )
        .is_empty()
    );
}

#[test]
fn transition_rules_correlate_list_map_items_by_key() {
    let schema = CompiledSchema::new(&json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"ports": {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "items": {
                "type": "object",
                "required": ["name"],
                "x-kubernetes-validations": [{"rule": "self.port == oldSelf.port", "message": "port is immutable"}],
                "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}
            }
        }}}}
    }));
    let old = json!({"spec": {"ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2}]}});
    // Reordered but unchanged: each item meets its own old self.
    let reordered =
        json!({"spec": {"ports": [{"name": "b", "port": 2}, {"name": "a", "port": 1}]}});
    assert!(messages(&schema, &reordered, Some(&old)).is_empty());
    let changed = json!({"spec": {"ports": [{"name": "b", "port": 3}, {"name": "a", "port": 1}]}});
    assert_eq!(
        messages(&schema, &changed, Some(&old)),
        [r#"spec.ports[0]: Invalid value: "object": port is immutable"#]
    );
}

#[test]
fn rules_are_skipped_when_schema_errors_could_break_them() {
    let schema = CompiledSchema::new(&json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "required": ["min"],
            "x-kubernetes-validations": [{"rule": "self.min <= 3"}],
            "properties": {"min": {"type": "integer"}}
        }}
    }));
    assert_eq!(
        messages(&schema, &json!({"spec": {}}), None),
        [
            "spec.min: Required value",
            "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
        ]
    );
}

#[test]
fn rules_do_not_run_on_null_values() {
    let schema = CompiledSchema::new(&json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"opt": {
            "type": "object",
            "nullable": true,
            "x-kubernetes-validations": [{"rule": "has(self.a)"}],
            "properties": {"a": {"type": "string"}}
        }}}}
    }));
    assert!(messages(&schema, &json!({"spec": {"opt": null}}), None).is_empty());
}

#[test]
fn unchanged_values_are_not_rechecked_by_non_transition_rules_on_update() {
    let schema = CompiledSchema::new(&json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "source": {
                "type": "object",
                "x-kubernetes-validations": [{"rule": "has(self.a)", "message": "a is needed"}],
                "properties": {"a": {"type": "string"}, "b": {"type": "string"}}
            },
            "note": {"type": "string"}
        }}}
    }));
    let old = json!({"spec": {"source": {"b": "x"}, "note": "1"}});
    assert!(
        messages(
            &schema,
            &json!({"spec": {"source": {"b": "x"}, "note": "2"}}),
            Some(&old)
        )
        .is_empty()
    );
    assert_eq!(
        messages(
            &schema,
            &json!({"spec": {"source": {"b": "y"}}}),
            Some(&old)
        ),
        [r#"spec.source: Invalid value: "object": a is needed"#]
    );
}

#[test]
fn items_of_atomic_lists_are_forgiven_only_while_the_whole_list_is_unchanged() {
    // The apiserver cannot correlate items of an atomic list with old ones, so it ratchets their
    // errors on the nearest correlatable ancestor: the list.
    let schema = outputs_schema();
    let old = json!({"spec": {"outputsFrom": [{}]}});
    assert!(messages(&schema, &json!({"spec": {"outputsFrom": [{}]}}), Some(&old)).is_empty());
    assert_eq!(
        messages(
            &schema,
            &json!({"spec": {"outputsFrom": [{}, {"secretRef": "a"}]}}),
            Some(&old)
        ),
        [
            r#"spec.outputsFrom[0]: Invalid value: "object": exactly one of secretRef or configMapRef must be set"#
        ]
    );
}

#[test]
fn kubernetes_1_35_shows_scalar_values_and_omits_objects() {
    let schema = CompiledSchema::for_kubernetes_minor(
        &json!({
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "x-kubernetes-validations": [{"rule": "self.replicas <= 5", "message": "too many"}],
                "properties": {"replicas": {
                    "type": "integer",
                    "x-kubernetes-validations": [{"rule": "self >= 0", "message": "must not be negative"}]
                }}
            }}
        }),
        35,
    );
    assert_eq!(
        messages(&schema, &json!({"spec": {"replicas": -1}}), None),
        ["spec.replicas: Invalid value: -1: must not be negative"]
    );
    assert_eq!(
        messages(&schema, &json!({"spec": {"replicas": 9}}), None),
        ["spec: Invalid value: too many"]
    );
}

#[test]
fn field_path_into_a_map_names_the_key_in_brackets() {
    let schema = CompiledSchema::new(&json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "x-kubernetes-validations": [{
                "rule": "!has(self.releases.web) || self.releases.web != ''",
                "message": "web must not be empty",
                "fieldPath": ".releases['web']"
            }],
            "properties": {"releases": {"type": "object", "additionalProperties": {"type": "string"}}}
        }}
    }));
    assert_eq!(
        messages(&schema, &json!({"spec": {"releases": {"web": ""}}}), None),
        [r#"spec.releases[web]: Invalid value: "object": web must not be empty"#]
    );
}

#[test]
fn root_rules_can_read_metadata_and_kind() {
    let schema = CompiledSchema::new(&json!({
        "type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.metadata.name.startsWith('env-')", "message": "name must start with env-"},
            {"rule": "self.kind == 'UpstartEnvironment'", "message": "wrong kind"}
        ],
        "properties": {"spec": {"type": "object"}}
    }));
    let object = json!({"apiVersion": "upstart.com/v1", "kind": "UpstartEnvironment",
                        "metadata": {"name": "env-a"}, "spec": {}});
    assert!(messages(&schema, &object, None).is_empty());
    let mut renamed = object.clone();
    renamed["metadata"]["name"] = json!("a");
    assert_eq!(
        messages(&schema, &renamed, None),
        [r#"<nil>: Invalid value: "object": name must start with env-"#]
    );
}

#[test]
fn dashed_property_names_are_escaped_in_rules() {
    let schema = CompiledSchema::new(&json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "x-kubernetes-validations": [{"rule": "self.max__dash__size > 0", "message": "max-size must be positive"}],
            "properties": {"max-size": {"type": "integer"}}
        }}
    }));
    assert_eq!(
        messages(&schema, &json!({"spec": {"max-size": 0}}), None),
        [r#"spec: Invalid value: "object": max-size must be positive"#]
    );
}

#[test]
fn a_rule_reading_a_missing_field_reports_the_evaluation_error() {
    let schema = CompiledSchema::new(&json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "x-kubernetes-validations": [{"rule": "self.a == 'x'", "message": "a must be x"}],
            "properties": {"a": {"type": "string"}}
        }}
    }));
    assert_eq!(
        messages(&schema, &json!({"spec": {}}), None),
        [r#"spec: Invalid value: "object": no such key: a evaluating rule: a must be x"#]
    );
}

#[test]
fn optional_old_self_rules_run_on_create_with_an_absent_old_self() {
    let schema = CompiledSchema::new(&json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"a": {
            "type": "string",
            "x-kubernetes-validations": [{
                "rule": "oldSelf.hasValue() ? self == oldSelf.value() : self.startsWith('x')",
                "optionalOldSelf": true,
                "message": "a must start with x and never change"
            }]
        }}}}
    }));
    let error = [r#"spec.a: Invalid value: "string": a must start with x and never change"#];
    assert!(messages(&schema, &json!({"spec": {"a": "x1"}}), None).is_empty());
    assert_eq!(messages(&schema, &json!({"spec": {"a": "y"}}), None), error);
    let old = json!({"spec": {"a": "x1"}});
    assert!(messages(&schema, &json!({"spec": {"a": "x1"}}), Some(&old)).is_empty());
    assert_eq!(
        messages(&schema, &json!({"spec": {"a": "x2"}}), Some(&old)),
        error
    );
    // Added on update: no old value at this field, so oldSelf is absent again.
    assert!(
        messages(
            &schema,
            &json!({"spec": {"a": "x3"}}),
            Some(&json!({"spec": {}}))
        )
        .is_empty()
    );
}

#[test]
fn rules_in_all_of_branches_are_evaluated() {
    let schema = CompiledSchema::new(&json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "properties": {"a": {"type": "integer"}},
            "allOf": [{"x-kubernetes-validations": [{"rule": "self.a > 1", "message": "a must exceed 1"}]}]
        }}
    }));
    assert!(messages(&schema, &json!({"spec": {"a": 2}}), None).is_empty());
    // The branch declares no type, so the apiserver shows an empty one.
    assert_eq!(
        messages(&schema, &json!({"spec": {"a": 1}}), None),
        [r#"spec: Invalid value: "": a must exceed 1"#]
    );
}
