//! One test per OpenAPI schema rule, each asserting the exact message kube-apiserver prints.

use serde_json::{Value, json};
use upstart_crd_validation::{CompiledSchema, FieldErrorKind, validate};

/// Wraps `spec_props` as the properties of `spec` in an object schema.
fn spec_schema(spec_props: Value) -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": spec_props}
        }
    })
}

fn messages(schema: &Value, object: &Value) -> Vec<String> {
    validate(schema, object, None)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn missing_required_field_is_a_required_value_error() {
    let schema = json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "required": ["chart"],
            "properties": {"chart": {"type": "string"}}
        }}
    });
    assert_eq!(
        messages(&schema, &json!({"spec": {}})),
        ["spec.chart: Required value"]
    );
}

#[test]
fn missing_required_top_level_field_is_named_without_a_leading_dot() {
    let schema = json!({
        "type": "object",
        "required": ["spec"],
        "properties": {"spec": {"type": "object"}}
    });
    assert_eq!(messages(&schema, &json!({})), ["spec: Required value"]);
}

#[test]
fn wrong_type_names_the_expected_and_actual_types() {
    let schema = spec_schema(json!({"replicas": {"type": "integer"}}));
    assert_eq!(
        messages(&schema, &json!({"spec": {"replicas": "three"}})),
        [
            r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
        ]
    );
}

#[test]
fn integral_float_is_accepted_as_an_integer() {
    let schema = spec_schema(json!({"replicas": {"type": "integer"}}));
    assert!(messages(&schema, &json!({"spec": {"replicas": 3.0}})).is_empty());
}

#[test]
fn integer_is_accepted_as_a_number() {
    let schema = spec_schema(json!({"ratio": {"type": "number"}}));
    assert!(messages(&schema, &json!({"spec": {"ratio": 3}})).is_empty());
}

#[test]
fn null_is_refused_unless_nullable() {
    let schema = spec_schema(json!({
        "a": {"type": "string"},
        "b": {"type": "string", "nullable": true}
    }));
    assert_eq!(
        messages(&schema, &json!({"spec": {"a": null, "b": null}})),
        [r#"spec.a: Invalid value: "null": spec.a in body must be of type string: "null""#]
    );
}

#[test]
fn enum_mismatch_lists_supported_values() {
    let schema =
        spec_schema(json!({"scope": {"type": "string", "enum": ["internal", "external"]}}));
    assert_eq!(
        messages(&schema, &json!({"spec": {"scope": "public"}})),
        [r#"spec.scope: Unsupported value: "public": supported values: "internal", "external""#]
    );
}

#[test]
fn enum_of_numbers_quotes_their_json_form() {
    let schema = spec_schema(json!({"port": {"type": "integer", "enum": [80, 443]}}));
    assert_eq!(
        messages(&schema, &json!({"spec": {"port": 8080}})),
        [r#"spec.port: Unsupported value: 8080: supported values: "80", "443""#]
    );
}

#[test]
fn pattern_is_a_search_not_a_full_match() {
    let schema = spec_schema(json!({"chart": {"type": "string", "pattern": "[a-z]+"}}));
    assert!(messages(&schema, &json!({"spec": {"chart": "ABC-def-GHI"}})).is_empty());
}

#[test]
fn pattern_mismatch_quotes_the_pattern() {
    let schema = spec_schema(json!({"chart": {"type": "string", "pattern": "^[a-z]+$"}}));
    assert_eq!(
        messages(&schema, &json!({"spec": {"chart": "x-1"}})),
        [r#"spec.chart: Invalid value: "x-1": spec.chart in body should match '^[a-z]+$'"#]
    );
}

#[test]
fn max_length_counts_characters_not_bytes() {
    let schema = spec_schema(json!({"name": {"type": "string", "maxLength": 3}}));
    assert!(messages(&schema, &json!({"spec": {"name": "äöü"}})).is_empty());
    assert_eq!(
        messages(&schema, &json!({"spec": {"name": "äöüß"}})),
        ["spec.name: Too long: may not be more than 3 bytes"]
    );
}

#[test]
fn min_length_shows_the_value() {
    let schema = spec_schema(json!({"name": {"type": "string", "minLength": 3}}));
    assert_eq!(
        messages(&schema, &json!({"spec": {"name": "ab"}})),
        [r#"spec.name: Invalid value: "ab": spec.name in body should be at least 3 chars long"#]
    );
}

#[test]
fn min_and_max_items_report_the_count() {
    let schema = spec_schema(json!({"list": {
        "type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 3
    }}));
    assert_eq!(
        messages(&schema, &json!({"spec": {"list": ["a"]}})),
        ["spec.list: Invalid value: 1: spec.list in body should have at least 2 items"]
    );
    assert_eq!(
        messages(&schema, &json!({"spec": {"list": ["a", "b", "c", "d"]}})),
        ["spec.list: Too many: 4: must have at most 3 items"]
    );
}

#[test]
fn min_and_max_properties_report_the_count() {
    let schema = spec_schema(json!({"labels": {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "minProperties": 1,
        "maxProperties": 1
    }}));
    assert_eq!(
        messages(&schema, &json!({"spec": {"labels": {}}})),
        ["spec.labels: Invalid value: 0: spec.labels in body should have at least 1 properties"]
    );
    assert_eq!(
        messages(&schema, &json!({"spec": {"labels": {"a": "1", "b": "2"}}})),
        ["spec.labels: Too many: 2: must have at most 1 item"]
    );
}

#[test]
fn minimum_and_maximum_are_inclusive_unless_exclusive() {
    let schema = spec_schema(json!({
        "a": {"type": "integer", "minimum": 1, "maximum": 10},
        "b": {"type": "integer", "minimum": 1, "exclusiveMinimum": true,
              "maximum": 10, "exclusiveMaximum": true}
    }));
    assert!(messages(&schema, &json!({"spec": {"a": 1}})).is_empty());
    assert_eq!(
        messages(&schema, &json!({"spec": {"a": 0, "b": 10}})),
        [
            "spec.a: Invalid value: 0: spec.a in body should be greater than or equal to 1",
            "spec.b: Invalid value: 10: spec.b in body should be less than 10",
        ]
    );
    assert_eq!(
        messages(&schema, &json!({"spec": {"a": 11, "b": 1}})),
        [
            "spec.a: Invalid value: 11: spec.a in body should be less than or equal to 10",
            "spec.b: Invalid value: 1: spec.b in body should be greater than 1",
        ]
    );
}

#[test]
fn multiple_of_rejects_values_off_the_step() {
    let schema = spec_schema(json!({"size": {"type": "number", "multipleOf": 0.5}}));
    assert!(messages(&schema, &json!({"spec": {"size": 2.5}})).is_empty());
    assert_eq!(
        messages(&schema, &json!({"spec": {"size": 2.2}})),
        ["spec.size: Invalid value: 2.2: spec.size in body should be a multiple of 0.5"]
    );
}

#[test]
fn date_time_format_is_checked() {
    let schema = spec_schema(json!({"at": {"type": "string", "format": "date-time"}}));
    assert!(messages(&schema, &json!({"spec": {"at": "2024-05-01T10:00:00Z"}})).is_empty());
    assert_eq!(
        messages(&schema, &json!({"spec": {"at": "yesterday"}})),
        [
            r#"spec.at: Invalid value: "yesterday": spec.at in body must be of type date-time: "yesterday""#
        ]
    );
}

#[test]
fn byte_format_requires_base64() {
    let schema = spec_schema(json!({"data": {"type": "string", "format": "byte"}}));
    assert!(messages(&schema, &json!({"spec": {"data": "aGk="}})).is_empty());
    assert_eq!(
        messages(&schema, &json!({"spec": {"data": "%%"}})),
        [r#"spec.data: Invalid value: "%%": spec.data in body must be of type byte: "%%""#]
    );
}

#[test]
fn int32_format_reports_out_of_range_values_at_the_nil_path() {
    let schema = spec_schema(json!({"port": {"type": "integer", "format": "int32"}}));
    assert!(messages(&schema, &json!({"spec": {"port": 2147483647}})).is_empty());
    assert_eq!(
        messages(&schema, &json!({"spec": {"port": 2147483648_i64}})),
        [
            r#"<nil>: Invalid value: "": Checked value must be of type integer with format int32 in spec.port"#
        ]
    );
}

#[test]
fn unknown_formats_accept_any_string() {
    let schema = spec_schema(json!({"pw": {"type": "string", "format": "password"}}));
    assert!(messages(&schema, &json!({"spec": {"pw": "anything"}})).is_empty());
}

#[test]
fn array_items_are_validated_with_index_paths() {
    let schema = spec_schema(json!({"outputsFrom": {
        "type": "array",
        "items": {"type": "object", "properties": {
            "scope": {"type": "string", "enum": ["internal", "external"]}
        }}
    }}));
    assert_eq!(
        messages(
            &schema,
            &json!({"spec": {"outputsFrom": [{"scope": "internal"}, {"scope": "x"}]}})
        ),
        [
            r#"spec.outputsFrom[1].scope: Unsupported value: "x": supported values: "internal", "external""#
        ]
    );
}

#[test]
fn map_values_are_validated_with_kube_openapi_dotted_paths() {
    let schema = spec_schema(json!({"helmReleases": {
        "type": "object",
        "additionalProperties": {"type": "object", "required": ["chart"],
            "properties": {"chart": {"type": "string"}}}
    }}));
    assert_eq!(
        messages(
            &schema,
            &json!({"spec": {"helmReleases": {"exampleService": {}}}})
        ),
        ["spec.helmReleases.exampleService.chart: Required value"]
    );
}

#[test]
fn additional_properties_false_forbids_unknown_keys() {
    let schema = spec_schema(json!({"opts": {
        "type": "object", "additionalProperties": false,
        "properties": {"a": {"type": "string"}}
    }}));
    assert_eq!(
        messages(&schema, &json!({"spec": {"opts": {"a": "x", "b": "y"}}})),
        [r#"spec.opts: Invalid value: "b": spec.opts.b in body is a forbidden property"#]
    );
}

#[test]
fn int_or_string_accepts_both_and_refuses_others_through_any_of() {
    let schema = spec_schema(json!({"port": {
        "x-kubernetes-int-or-string": true,
        "anyOf": [{"type": "integer"}, {"type": "string"}]
    }}));
    assert!(messages(&schema, &json!({"spec": {"port": 80}})).is_empty());
    assert!(messages(&schema, &json!({"spec": {"port": "http"}})).is_empty());
    assert_eq!(
        messages(&schema, &json!({"spec": {"port": true}})),
        [
            r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#,
            r#"<nil>: Invalid value: "": "spec.port" must validate at least one schema (anyOf)"#,
            r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer: "boolean""#,
        ]
    );
}

#[test]
fn one_of_requires_exactly_one_match() {
    let schema = spec_schema(json!({"source": {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        "oneOf": [{"required": ["a"]}, {"required": ["b"]}]
    }}));
    assert!(messages(&schema, &json!({"spec": {"source": {"a": "x"}}})).is_empty());
    assert_eq!(
        messages(&schema, &json!({"spec": {"source": {"a": "x", "b": "y"}}})),
        [
            r#"<nil>: Invalid value: "": "spec.source" must validate one and only one schema (oneOf). Found 2 valid alternatives"#
        ]
    );
}

#[test]
fn not_refuses_values_matching_the_schema() {
    let schema = spec_schema(json!({"source": {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "not": {"required": ["a"]}
    }}));
    assert_eq!(
        messages(&schema, &json!({"spec": {"source": {"a": "x"}}})),
        [r#"<nil>: Invalid value: "": "spec.source" must not validate the schema (not)"#]
    );
}

#[test]
fn all_of_reports_each_failing_branch() {
    let schema = spec_schema(json!({"source": {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        "allOf": [{"required": ["a"]}, {"required": ["b"]}]
    }}));
    assert_eq!(
        messages(&schema, &json!({"spec": {"source": {"a": "x"}}})),
        [
            "spec.source.b: Required value",
            r#"<nil>: Invalid value: "": "spec.source" must validate all the schemas (allOf)"#,
        ]
    );
}

#[test]
fn list_type_set_reports_duplicates() {
    let schema = spec_schema(json!({"tags": {
        "type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}
    }}));
    assert_eq!(
        messages(
            &schema,
            &json!({"spec": {"tags": ["a", "b", "a", "a", "b"]}})
        ),
        [
            r#"spec.tags[2]: Duplicate value: "a""#,
            r#"spec.tags[4]: Duplicate value: "b""#
        ]
    );
}

#[test]
fn list_type_map_reports_duplicate_keys() {
    let schema = spec_schema(json!({"ports": {
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        "items": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "port": {"type": "integer"}
        }}
    }}));
    assert!(
        messages(
            &schema,
            &json!({"spec": {"ports": [{"name": "a"}, {"name": "b"}]}})
        )
        .is_empty()
    );
    assert_eq!(
        messages(
            &schema,
            &json!({"spec": {"ports": [{"name": "a", "port": 1}, {"name": "a", "port": 2}]}})
        ),
        [r#"spec.ports[1]: Duplicate value: {"name":"a"}"#]
    );
}

#[test]
fn list_type_map_treats_items_without_the_key_as_sharing_an_empty_key() {
    let schema = spec_schema(json!({"ports": {
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name", "protocol"],
        "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "protocol": {"type": "string"}
        }}
    }}));
    assert_eq!(
        messages(
            &schema,
            &json!({"spec": {"ports": [{"name": "a"}, {"name": "a", "protocol": "UDP"}, {}, {"name": "a"}, {}]}})
        ),
        [
            r#"spec.ports[3]: Duplicate value: {"name":"a"}"#,
            "spec.ports[4]: Duplicate value: {}",
        ]
    );
}

#[test]
fn preserve_unknown_fields_accepts_anything_untyped() {
    let schema = spec_schema(json!({"values": {
        "type": "object", "x-kubernetes-preserve-unknown-fields": true
    }}));
    assert!(
        messages(
            &schema,
            &json!({"spec": {"values": {"a": [1, {"b": null}]}}})
        )
        .is_empty()
    );
}

#[test]
fn errors_report_their_kind() {
    let schema = spec_schema(json!({"n": {"type": "string", "maxLength": 1}}));
    let errors = validate(&schema, &json!({"spec": {"n": "ab"}}), None);
    assert_eq!(errors[0].kind, FieldErrorKind::TooLong);
    assert_eq!(errors[0].path, "spec.n");
    assert_eq!(errors[0].kind.reason(), "FieldValueTooLong");
}

#[test]
fn unchanged_invalid_values_are_allowed_on_update() {
    let schema = CompiledSchema::new(&spec_schema(json!({
        "a": {"type": "string", "maxLength": 1},
        "b": {"type": "string", "maxLength": 1}
    })));
    let old = json!({"spec": {"a": "long", "b": "x"}});
    assert!(
        schema
            .validate(&json!({"spec": {"a": "long", "b": "y"}}), Some(&old))
            .is_empty()
    );
    assert_eq!(
        schema
            .validate(&json!({"spec": {"a": "long", "b": "yy"}}), Some(&old))
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["spec.b: Too long: may not be more than 1 byte"]
    );
}

#[test]
fn integer_with_a_format_names_the_format_when_given_a_fraction() {
    let schema = spec_schema(json!({"port": {"type": "integer", "format": "int32"}}));
    assert_eq!(
        messages(&schema, &json!({"spec": {"port": 1.5}})),
        [
            r#"spec.port: Invalid value: "float64": spec.port in body must be of type int32: "float64""#,
            r#"<nil>: Invalid value: "": Checked value must be of type integer with format int32 in spec.port"#,
        ]
    );
}

#[test]
fn unsupported_formats_are_ignored_like_the_apiserver_strips_them() {
    let schema = spec_schema(json!({
        "a": {"type": "string", "format": "my-own-format"},
        "b": {"type": "integer", "format": "date-time"}
    }));
    assert!(messages(&schema, &json!({"spec": {"a": "anything", "b": 3}})).is_empty());
}

#[test]
fn wrong_type_still_runs_the_other_checks_that_apply() {
    let schema = spec_schema(json!({"mode": {"type": "integer", "enum": [1, 2]}}));
    assert_eq!(
        messages(&schema, &json!({"spec": {"mode": "fast"}})),
        [
            r#"spec.mode: Invalid value: "string": spec.mode in body must be of type integer: "string""#,
            r#"spec.mode: Unsupported value: "fast": supported values: "1", "2""#,
        ]
    );
}

#[test]
fn embedded_resources_need_api_version_and_kind() {
    let schema = spec_schema(json!({"template": {
        "type": "object",
        "x-kubernetes-embedded-resource": true,
        "x-kubernetes-preserve-unknown-fields": true
    }}));
    assert!(
        messages(
            &schema,
            &json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod"}}})
        )
        .is_empty()
    );
    assert_eq!(
        messages(
            &schema,
            &json!({"spec": {"template": {"kind": "Not_A_Kind"}}})
        ),
        [
            "spec.template.apiVersion: Required value: must not be empty",
            r#"spec.template.kind: Invalid value: "Not_A_Kind": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#,
        ]
    );
}

#[test]
fn unchanged_items_of_a_changed_map_list_are_not_revalidated_on_update() {
    let schema = CompiledSchema::new(&spec_schema(json!({"ports": {
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        "items": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "port": {"type": "integer", "maximum": 100}
        }}
    }})));
    let old = json!({"spec": {"ports": [{"name": "a", "port": 500}]}});
    // The stored item keeps its invalid port; the new item is checked.
    let update =
        json!({"spec": {"ports": [{"name": "b", "port": 200}, {"name": "a", "port": 500}]}});
    assert_eq!(
        schema
            .validate(&update, Some(&old))
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "spec.ports[0].port: Invalid value: 200: spec.ports[0].port in body should be less than or equal to 100"
        ]
    );
}
