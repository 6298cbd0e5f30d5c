//! Whole-CRD validation with a realistic schema, and the apiserver's 422 message format.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};
use upstart_crd_validation::{
    CompiledCrd, CompiledSchema, Error, FieldError, FieldErrorKind, RenderOptions,
    check_structural, invalid_error_message, invalid_error_message_with, qualified_kind,
    schema_for_version, validate_against_crd,
};

fn environment_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["helmReleases"],
                "properties": {
                    "helmReleases": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "required": ["chart"],
                            "properties": {
                                "chart": {"type": "string", "pattern": "^[a-z0-9-]+$"},
                                "dependsOn": {
                                    "type": "array",
                                    "x-kubernetes-list-type": "set",
                                    "items": {"type": "string"}
                                }
                            }
                        }
                    },
                    "outputsFrom": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "x-kubernetes-validations": [{
                                "rule": "has(self.secretRef) != has(self.configMapRef)",
                                "message": "exactly one of secretRef or configMapRef must be set"
                            }],
                            "properties": {
                                "secretRef": {"type": "string"},
                                "configMapRef": {"type": "string"},
                                "scope": {"type": "string", "enum": ["internal", "external"], "default": "internal"}
                            }
                        }
                    },
                    "env": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {"name": {"type": "string"}, "value": {"type": "string"}}
                        }
                    }
                }
            },
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }
    })
}

fn crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "upstartenvironments.upstart.com"},
        "spec": {
            "group": "upstart.com",
            "names": {"kind": "UpstartEnvironment", "plural": "upstartenvironments"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1alpha1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": environment_schema()}
            }]
        }
    }))
    .expect("the test CRD is well formed")
}

fn valid_object() -> Value {
    json!({
        "apiVersion": "upstart.com/v1alpha1",
        "kind": "UpstartEnvironment",
        "metadata": {"name": "demo"},
        "spec": {
            "helmReleases": {"exampleService": {"chart": "example", "dependsOn": ["db"]}},
            "outputsFrom": [{"secretRef": "creds"}],
            "env": [{"name": "A", "value": "1"}]
        }
    })
}

#[test]
fn realistic_schema_is_structural() {
    assert_eq!(
        check_structural(&environment_schema()),
        Vec::<String>::new()
    );
}

#[test]
fn valid_object_is_accepted_and_defaulted() {
    let mut object = valid_object();
    let admission = validate_against_crd(&crd(), &mut object, None).expect("version exists");
    assert_eq!(admission.errors, Vec::<FieldError>::new());
    assert_eq!(object["spec"]["outputsFrom"][0]["scope"], "internal");
}

#[test]
fn every_broken_schema_rule_of_a_realistic_object_is_reported_with_its_field() {
    let mut object = valid_object();
    object["spec"]["helmReleases"]["exampleService"]["chart"] = json!("Bad_Chart");
    object["spec"]["helmReleases"]["exampleService"]["dependsOn"] = json!(["db", "db"]);
    object["spec"]["outputsFrom"] =
        json!([{"secretRef": "a", "configMapRef": "b", "scope": "public"}]);
    object["spec"]["env"] = json!([{"name": "A"}, {"name": "A"}]);
    let admission = validate_against_crd(&crd(), &mut object, None).expect("version exists");
    let message = invalid_error_message(&qualified_kind(&crd()), "demo", &admission.errors);
    // The enum violation is one of the errors after which the apiserver does not run CEL rules.
    assert_eq!(
        message,
        concat!(
            r#"UpstartEnvironment.upstart.com "demo" is invalid: ["#,
            r#"spec.helmReleases.exampleService.chart: Invalid value: "Bad_Chart": spec.helmReleases.exampleService.chart in body should match '^[a-z0-9-]+$', "#,
            r#"spec.outputsFrom[0].scope: Unsupported value: "public": supported values: "internal", "external", "#,
            r#"spec.env[1]: Duplicate value: {"name":"A"}, "#,
            r#"spec.helmReleases[exampleService].dependsOn[1]: Duplicate value: "db", "#,
            r#"<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]"#,
        )
    );
}

#[test]
fn cel_rules_of_a_realistic_object_run_when_the_schema_checks_pass() {
    let mut object = valid_object();
    object["spec"]["outputsFrom"] =
        json!([{"secretRef": "a"}, {"secretRef": "a", "configMapRef": "b"}]);
    object["spec"]["env"] = json!([{"name": "A"}, {"name": "A"}]);
    let admission = validate_against_crd(&crd(), &mut object, None).expect("version exists");
    assert_eq!(
        invalid_error_message(&qualified_kind(&crd()), "demo", &admission.errors),
        concat!(
            r#"UpstartEnvironment.upstart.com "demo" is invalid: ["#,
            r#"spec.env[1]: Duplicate value: {"name":"A"}, "#,
            r#"spec.outputsFrom[1]: Invalid value: "object": exactly one of secretRef or configMapRef must be set]"#,
        )
    );
}

#[test]
fn objects_of_unknown_versions_or_groups_are_refused() {
    let mut object = valid_object();
    object["apiVersion"] = json!("upstart.com/v9");
    assert!(matches!(
        validate_against_crd(&crd(), &mut object, None),
        Err(Error::UnknownVersion { version }) if version == "v9"
    ));
    object["apiVersion"] = json!("other.com/v1alpha1");
    assert!(matches!(
        validate_against_crd(&crd(), &mut object, None),
        Err(Error::WrongGroup { .. })
    ));
}

#[test]
fn schema_for_version_returns_the_open_api_schema() {
    let schema = schema_for_version(&crd(), "v1alpha1").expect("version exists");
    assert_eq!(schema, environment_schema());
}

#[test]
fn a_single_error_is_not_bracketed() {
    let errors = [FieldError::required("spec.chart", "")];
    assert_eq!(
        invalid_error_message("HelmRelease.upstartoperators.upstart.com", "x", &errors),
        r#"HelmRelease.upstartoperators.upstart.com "x" is invalid: spec.chart: Required value"#
    );
}

#[test]
fn repeated_messages_are_listed_once() {
    let errors = [
        FieldError::required("spec.a", ""),
        FieldError::required("spec.a", ""),
        FieldError::required("spec.b", ""),
    ];
    assert_eq!(
        invalid_error_message("Thing.example.com", "x", &errors),
        r#"Thing.example.com "x" is invalid: [spec.a: Required value, spec.b: Required value]"#
    );
}

#[test]
fn redaction_hides_bad_values_and_values_quoted_in_details() {
    let schema = CompiledSchema::new(&json!({
        "type": "object",
        "properties": {"data": {"type": "object", "additionalProperties": {
            "type": "string", "format": "byte", "enum": ["aGk="]
        }}}
    }));
    let errors = schema.validate(&json!({"data": {"password": "hunter2!"}}), None);
    let redacted: Vec<String> = errors
        .iter()
        .map(|e| e.message_with(&RenderOptions::redacted()))
        .collect();
    assert_eq!(
        redacted,
        [
            "data.password: Invalid value: <redacted>: data.password in body must be of type byte: <redacted>",
            r#"data.password: Unsupported value: <redacted>: supported values: "aGk=""#,
        ]
    );
    assert!(redacted.iter().all(|m| !m.contains("hunter2")));
}

#[test]
fn long_values_can_be_truncated() {
    let error = FieldError::invalid("spec.a", json!("x".repeat(50)), "too odd");
    let options = RenderOptions {
        redact: false,
        max_value_chars: Some(10),
    };
    assert_eq!(
        error.message_with(&options),
        r#"spec.a: Invalid value: "xxxxxxxxx...(truncated): too odd"#
    );
    assert_eq!(
        invalid_error_message_with("T", "n", &[error], &options),
        r#"T "n" is invalid: spec.a: Invalid value: "xxxxxxxxx...(truncated): too odd"#
    );
}

#[test]
fn values_print_like_go() {
    let show = |v: Value| FieldError::invalid("f", v, "").to_string();
    assert_eq!(show(json!("a\"b\n")), r#"f: Invalid value: "a\"b\n""#);
    assert_eq!(show(json!(3)), "f: Invalid value: 3");
    assert_eq!(show(json!(2.5)), "f: Invalid value: 2.5");
    assert_eq!(show(json!(1e21)), "f: Invalid value: 1e+21");
    assert_eq!(show(json!(true)), "f: Invalid value: true");
    assert_eq!(
        show(json!({"b": 1, "a": [null]})),
        r#"f: Invalid value: {"a":[null],"b":1}"#
    );
    assert_eq!(
        FieldError::too_many("f", 3, 1).kind,
        FieldErrorKind::TooMany
    );
}

#[test]
fn compiled_schemas_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledSchema>();
}

#[test]
fn a_compiled_crd_admits_objects_of_each_version() {
    let compiled = CompiledCrd::new(&crd()).expect("schemas serialise");
    assert_eq!(compiled.qualified_kind(), "UpstartEnvironment.upstart.com");
    let mut object = valid_object();
    object["spec"]["outputsFrom"] = json!([{}]);
    let admission = compiled.admit(&mut object, None).expect("version exists");
    assert_eq!(
        compiled.invalid_error_message("demo", &admission.errors),
        r#"UpstartEnvironment.upstart.com "demo" is invalid: spec.outputsFrom[0]: Invalid value: "object": exactly one of secretRef or configMapRef must be set"#
    );
    assert!(matches!(
        compiled.schema("v2"),
        Err(Error::UnknownVersion { .. })
    ));
}
