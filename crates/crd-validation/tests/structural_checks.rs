//! `check_structural`: the reasons kube-apiserver would refuse the CRD's schema itself.

use serde_json::json;
use upstart_crd_validation::check_structural;

#[test]
fn a_well_formed_schema_has_no_problems() {
    let schema = json!({
        "type": "object",
        "properties": {
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 40}}},
            "spec": {
                "type": "object",
                "x-kubernetes-validations": [{"rule": "self.a == oldSelf.a"}],
                "properties": {
                    "a": {"type": "string"},
                    "port": {"x-kubernetes-int-or-string": true,
                             "anyOf": [{"type": "integer"}, {"type": "string"}]},
                    "values": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "items": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "required": ["name"],
                                  "properties": {"name": {"type": "string"}}}
                    }
                },
                "oneOf": [{"required": ["a"]}, {"required": ["values"]}]
            }
        }
    });
    assert_eq!(check_structural(&schema), Vec::<String>::new());
}

#[test]
fn structural_problems_are_only_reported_once_the_v1_restrictions_are_met() {
    // The apiserver does not look for structural problems in a schema it already refused.
    let schema = json!({"type": "object", "properties": {
        "a": {"properties": {}},
        "b": {"type": "string", "$ref": "#/x"}
    }});
    assert_eq!(
        check_structural(&schema),
        ["openAPIV3Schema.properties[b].$ref: Forbidden: $ref is not supported"]
    );
}

#[test]
fn structural_problems_are_sorted_like_the_apiserver_sorts_them() {
    let schema = json!({"type": "object", "properties": {
        "z": {"properties": {}},
        "a": {"type": "array"}
    }});
    assert_eq!(
        check_structural(&schema),
        [
            "openAPIV3Schema.properties[a].items: Required value: must be specified",
            "openAPIV3Schema.properties[z].type: Required value: must not be empty for specified object fields",
        ]
    );
}

#[test]
fn a_field_without_type_is_reported() {
    let schema = json!({"type": "object", "properties": {"spec": {"properties": {}}}});
    assert_eq!(
        check_structural(&schema),
        [
            "openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"
        ]
    );
}

#[test]
fn the_root_must_be_an_object() {
    assert_eq!(
        check_structural(&json!({"type": "string"})),
        [r#"openAPIV3Schema.type: Invalid value: "string": must be object at the root"#]
    );
}

#[test]
fn properties_and_additional_properties_exclude_each_other() {
    let schema = json!({"type": "object", "properties": {"spec": {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "additionalProperties": {"type": "string"}
    }}});
    assert_eq!(
        check_structural(&schema),
        [
            "openAPIV3Schema.properties[spec].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
        ]
    );
}

#[test]
fn value_validations_may_not_set_types_or_defaults() {
    let schema = json!({"type": "object", "properties": {"spec": {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "anyOf": [{"type": "object", "properties": {"a": {"default": "x"}}}]
    }}});
    assert_eq!(
        check_structural(&schema),
        [
            "openAPIV3Schema.properties[spec].anyOf[0].properties[a].default: Forbidden: must be undefined to be structural",
            "openAPIV3Schema.properties[spec].anyOf[0].type: Forbidden: must be empty to be structural",
        ]
    );
}

#[test]
fn value_validations_may_only_name_fields_of_the_structure() {
    let schema = json!({"type": "object", "properties": {"spec": {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "oneOf": [{"required": ["a"]}, {"properties": {"b": {"minLength": 1}}}]
    }}});
    assert_eq!(
        check_structural(&schema),
        [
            "openAPIV3Schema.properties[spec].properties[b]: Required value: because it is defined in openAPIV3Schema.properties[spec].oneOf[1].properties[b]"
        ]
    );
}

#[test]
fn root_metadata_may_only_restrict_name_and_generate_name() {
    let schema = json!({"type": "object", "properties": {"metadata": {
        "type": "object", "properties": {"labels": {"type": "object"}}
    }}});
    assert_eq!(
        check_structural(&schema),
        [
            "openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
        ]
    );
}

#[test]
fn list_map_needs_keys_that_are_required_item_properties() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"l": {
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name", "missing"],
        "items": {"type": "object", "properties": {"name": {"type": "string"}}}
    }}}}});
    assert_eq!(
        check_structural(&schema),
        [
            "openAPIV3Schema.properties[spec].properties[l].items.properties[name]: Required value: all map keys must be required or have a default value",
            r#"openAPIV3Schema.properties[spec].properties[l].x-kubernetes-list-map-keys: Invalid value: "missing": entries must all be names of item properties"#,
        ]
    );
}

#[test]
fn unsupported_keywords_are_forbidden() {
    let schema = json!({"type": "object", "properties": {"spec": {
        "type": "array", "uniqueItems": true, "items": {"$ref": "#/x", "type": "string"}
    }}});
    assert_eq!(
        check_structural(&schema),
        [
            "openAPIV3Schema.properties[spec].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            "openAPIV3Schema.properties[spec].items.$ref: Forbidden: $ref is not supported",
        ]
    );
}

#[test]
fn patterns_must_compile() {
    let schema =
        json!({"type": "object", "properties": {"spec": {"type": "string", "pattern": "(?=x)"}}});
    let problems = check_structural(&schema);
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].starts_with(
            r#"openAPIV3Schema.properties[spec].pattern: Invalid value: "(?=x)": must be a valid regular expression, but isn't: "#
        ),
        "{problems:?}"
    );
}

#[test]
fn defaults_must_validate_against_their_schema() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "scope": {"type": "string", "enum": ["a", "b"], "default": "c"}
    }}}});
    assert_eq!(
        check_structural(&schema),
        [
            r#"openAPIV3Schema.properties[spec].properties[scope].default: Invalid value: "c": Unsupported value: "c": supported values: "a", "b""#
        ]
    );
}

#[test]
fn cel_rules_that_do_not_compile_are_reported_with_their_path() {
    let schema = json!({"type": "object", "properties": {"spec": {
        "type": "object",
        "x-kubernetes-validations": [{"rule": "self.a ==="}]
    }}});
    let problems = check_structural(&schema);
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].starts_with(
            r#"openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: "self.a ===": compilation failed: "#
        ),
        "{problems:?}"
    );
}

#[test]
fn transition_rules_under_atomic_lists_are_reported() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"l": {
        "type": "array",
        "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}
    }}}}});
    assert_eq!(
        check_structural(&schema),
        [
            r#"openAPIV3Schema.properties[spec].properties[l].items.x-kubernetes-validations[0].rule: Invalid value: "self == oldSelf": oldSelf cannot be used on the uncorrelatable portion of the schema within openAPIV3Schema.properties[spec].properties[l].items"#
        ]
    );
}
