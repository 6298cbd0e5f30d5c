//! The checks kube-apiserver makes on a CRD's schema itself, so a CRD is known good before it
//! is installed. Like the apiserver they run in stages, each only when the previous one passed:
//! the CRD v1 schema restrictions (unsupported keywords, list types, CEL rules that do not
//! compile), then the "structural schema" invariants (reported sorted, as the apiserver sorts
//! them), then the defaults.

use serde_json::{Value, json};

use crate::field_error::FieldError;
use crate::schema::{Additional, Node};

const TYPES: &[&str] = &["array", "boolean", "integer", "number", "object", "string"];
const REASONS: &[&str] = &[
    "FieldValueInvalid",
    "FieldValueForbidden",
    "FieldValueRequired",
    "FieldValueDuplicate",
];
/// Keys a CRD v1 schema may not use at all, with the apiserver's wording.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("$ref", "$ref is not supported"),
    ("$schema", "$schema is not supported"),
    ("id", "id is not supported"),
    ("definitions", "definitions are not supported"),
    ("dependencies", "dependencies are not supported"),
    ("patternProperties", "patternProperties is not supported"),
    ("additionalItems", "additionalItems is not supported"),
];
/// Keys a value validation (inside allOf/anyOf/oneOf/not) may not hold, with the wording.
const NOT_IN_VALUE_VALIDATIONS: &[(&str, &str)] = &[
    ("type", "must be empty to be structural"),
    ("additionalProperties", "must be undefined to be structural"),
    ("default", "must be undefined to be structural"),
    ("title", "must be empty to be structural"),
    ("description", "must be empty to be structural"),
    ("nullable", "must be false to be structural"),
    (
        "x-kubernetes-preserve-unknown-fields",
        "must be false to be structural",
    ),
    (
        "x-kubernetes-embedded-resource",
        "must be false to be structural",
    ),
    (
        "x-kubernetes-int-or-string",
        "must be false to be structural",
    ),
    (
        "x-kubernetes-list-map-keys",
        "must be empty to be structural",
    ),
    (
        "x-kubernetes-list-type",
        "must be undefined to be structural",
    ),
];

/// Where a node sits in the structure.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

#[derive(Default)]
struct Checker {
    /// CRD v1 restrictions, in schema order.
    schema: Vec<FieldError>,
    /// Structural invariants; the apiserver sorts these by message.
    structural: Vec<String>,
    /// Problems with `default` values.
    defaults: Vec<FieldError>,
}

/// Reports every reason kube-apiserver would refuse a CRD with this `openAPIV3Schema`, as
/// messages like `openAPIV3Schema.properties[spec].type: Required value: must not be empty for
/// specified object fields`. Empty means the schema is acceptable.
///
/// CEL rules are only parsed, not type-checked: a rule naming a field that does not exist
/// passes here and fails when evaluated.
#[must_use]
pub fn check_structural(schema: &Value) -> Vec<String> {
    let path = "openAPIV3Schema";
    let mut checker = Checker::default();
    checker.restrictions(schema, path, true);
    if !checker.schema.is_empty() {
        return checker.schema.iter().map(ToString::to_string).collect();
    }
    checker.invariants(schema, path, Level::Root);
    checker.completeness(schema, path);
    if !checker.structural.is_empty() {
        checker.structural.sort();
        return checker.structural;
    }
    checker.defaults_of(schema, path);
    checker.defaults.iter().map(ToString::to_string).collect()
}

fn str_value(s: &str) -> Value {
    Value::String(s.to_string())
}

/// The sub-schemas of a node with their paths: properties, items, additionalProperties.
fn children(schema: &Value, path: &str) -> Vec<(String, Value, Level)> {
    let mut out = Vec::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            out.push((format!("{path}.properties[{k}]"), v.clone(), Level::Field));
        }
    }
    if let Some(items @ Value::Object(_)) = schema.get("items") {
        out.push((format!("{path}.items"), items.clone(), Level::Item));
    }
    if let Some(additional @ Value::Object(_)) = schema.get("additionalProperties") {
        out.push((
            format!("{path}.additionalProperties"),
            additional.clone(),
            Level::Field,
        ));
    }
    out
}

/// Value validations directly under a node, with their paths.
fn junctors(schema: &Value, path: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(branches) = schema.get(key).and_then(Value::as_array) {
            for (i, b) in branches.iter().enumerate() {
                out.push((format!("{path}.{key}[{i}]"), b.clone()));
            }
        }
    }
    if let Some(not) = schema.get("not") {
        out.push((format!("{path}.not"), not.clone()));
    }
    out
}

impl Checker {
    // --- Stage 1: the CRD v1 restrictions -------------------------------------------------------

    /// `correlatable`: whether `oldSelf` can be bound here (not under an atomic or set list).
    fn restrictions(&mut self, schema: &Value, path: &str, correlatable: bool) {
        let Some(obj) = schema.as_object() else {
            self.schema.push(FieldError::invalid(
                path,
                schema.clone(),
                "must be a schema object",
            ));
            return;
        };
        for (key, detail) in UNSUPPORTED {
            if obj.contains_key(*key) {
                self.schema
                    .push(FieldError::forbidden(format!("{path}.{key}"), *detail));
            }
        }
        if obj.get("uniqueItems") == Some(&Value::Bool(true)) {
            self.schema.push(FieldError::forbidden(
                format!("{path}.uniqueItems"),
                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            ));
        }
        if let Some(Value::Array(_)) = obj.get("items") {
            self.schema.push(FieldError::forbidden(
                format!("{path}.items"),
                "items must be a schema object and not an array",
            ));
        }
        let type_ = obj.get("type").and_then(Value::as_str).unwrap_or("");
        if !type_.is_empty() && !TYPES.contains(&type_) {
            let supported: Vec<String> = TYPES.iter().map(|t| t.to_string()).collect();
            self.schema.push(FieldError::not_supported(
                format!("{path}.type"),
                str_value(type_),
                &supported,
            ));
        }
        let has_properties = obj
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty());
        if has_properties && obj.contains_key("additionalProperties") {
            self.schema.push(FieldError::forbidden(
                format!("{path}.additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
            self.schema.push(FieldError::invalid(
                format!("{path}.x-kubernetes-preserve-unknown-fields"),
                Value::Bool(false),
                "must be true or undefined",
            ));
        }
        let node = Node::compile(schema);
        if node.int_or_string && !type_.is_empty() {
            self.schema.push(FieldError::invalid(
                format!("{path}.type"),
                str_value(type_),
                "must be empty if x-kubernetes-int-or-string is true",
            ));
        }
        self.list_type(&node, obj, path);
        self.rules(&node, schema, path, correlatable);

        for (child_path, child, level) in children(schema, path) {
            let correlates =
                correlatable && (level != Level::Item || node.list_type.as_deref() == Some("map"));
            self.restrictions(&child, &child_path, correlates);
        }
        for (branch_path, branch) in junctors(schema, path) {
            self.restrictions_in_value_validation(&branch, &branch_path);
        }
    }

    /// Value validations get the keyword restrictions too (their other rules are structural).
    fn restrictions_in_value_validation(&mut self, schema: &Value, path: &str) {
        let Some(obj) = schema.as_object() else {
            return;
        };
        for (key, detail) in UNSUPPORTED {
            if obj.contains_key(*key) {
                self.schema
                    .push(FieldError::forbidden(format!("{path}.{key}"), *detail));
            }
        }
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                self.restrictions_in_value_validation(v, &format!("{path}.properties[{k}]"));
            }
        }
        if let Some(items) = obj.get("items") {
            self.restrictions_in_value_validation(items, &format!("{path}.items"));
        }
        for (branch_path, branch) in junctors(schema, path) {
            self.restrictions_in_value_validation(&branch, &branch_path);
        }
    }

    fn list_type(&mut self, node: &Node, obj: &serde_json::Map<String, Value>, path: &str) {
        let keys_set = obj.contains_key("x-kubernetes-list-map-keys");
        let map_type_of_items = obj
            .get("items")
            .and_then(|i| i.get("x-kubernetes-map-type"))
            .and_then(Value::as_str);
        match node.list_type.as_deref() {
            None | Some("atomic") | Some("set") if keys_set => {
                self.schema.push(FieldError::forbidden(
                    format!("{path}.x-kubernetes-list-map-keys"),
                    "must not be set if x-kubernetes-list-type is not map",
                ));
            }
            _ => {}
        }
        match node.list_type.as_deref() {
            None | Some("atomic") => {}
            Some("set") => {
                if let Some(items) = &node.items
                    && items.type_.as_deref() == Some("object")
                    && map_type_of_items != Some("atomic")
                {
                    self.schema.push(FieldError::invalid(
                        format!("{path}.items.x-kubernetes-map-type"),
                        map_type_of_items.map_or(Value::Null, str_value),
                        "must be atomic as item of a list with x-kubernetes-list-type=set",
                    ));
                }
            }
            Some("map") => {
                let items_type = node.items.as_ref().and_then(|i| i.type_.clone());
                if items_type.as_deref() != Some("object") {
                    self.schema.push(FieldError::invalid(
                        format!("{path}.items.type"),
                        str_value(items_type.as_deref().unwrap_or("")),
                        "must be object when x-kubernetes-list-type is map",
                    ));
                }
                if node.list_map_keys.is_empty() {
                    self.schema.push(FieldError::required(
                        format!("{path}.x-kubernetes-list-map-keys"),
                        "must not be empty if x-kubernetes-list-type is map",
                    ));
                }
                if let Some(items) = &node.items {
                    for key in &node.list_map_keys {
                        match items.properties.get(key) {
                            None => self.schema.push(FieldError::invalid(
                                format!("{path}.x-kubernetes-list-map-keys"),
                                str_value(key),
                                "entries must all be names of item properties",
                            )),
                            Some(prop) => {
                                if !items.required.contains(key) && prop.default.is_none() {
                                    self.schema.push(FieldError::required(
                                        format!("{path}.items.properties[{key}]"),
                                        "all map keys must be required or have a default value",
                                    ));
                                }
                            }
                        }
                    }
                }
            }
            Some(other) => {
                let supported = ["atomic", "set", "map"].map(String::from);
                self.schema.push(FieldError::not_supported(
                    format!("{path}.x-kubernetes-list-type"),
                    str_value(other),
                    &supported,
                ));
            }
        }
    }

    fn rules(&mut self, node: &Node, schema: &Value, path: &str, correlatable: bool) {
        let Some(raw_rules) = schema
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
        else {
            return;
        };
        for rule in &node.rules {
            let rule_path = format!("{path}.x-kubernetes-validations[{}]", rule.index);
            let raw = &raw_rules[rule.index];
            if let Err(e) = &rule.compiled {
                let field = if e.contains("messageExpression") {
                    "messageExpression"
                } else {
                    "rule"
                };
                let text = raw.get(field).and_then(Value::as_str).unwrap_or("");
                self.schema.push(FieldError::invalid(
                    format!("{rule_path}.{field}"),
                    str_value(text),
                    format!("compilation failed: {e}"),
                ));
            }
            if rule.is_transition && !correlatable {
                self.schema.push(FieldError::invalid(
                    format!("{rule_path}.rule"),
                    str_value(&rule.rule),
                    format!(
                        "oldSelf cannot be used on the uncorrelatable portion of the schema within {path}"
                    ),
                ));
            }
            if let Some(reason) = &rule.reason
                && !REASONS.contains(&reason.as_str())
            {
                let supported: Vec<String> = REASONS.iter().map(|r| r.to_string()).collect();
                self.schema.push(FieldError::not_supported(
                    format!("{rule_path}.reason"),
                    str_value(reason),
                    &supported,
                ));
            }
        }
    }

    // --- Stage 2: structural invariants ----------------------------------------------------------

    fn structural_error(&mut self, e: FieldError) {
        self.structural.push(e.to_string());
    }

    fn invariants(&mut self, schema: &Value, path: &str, level: Level) {
        let Some(obj) = schema.as_object() else {
            return;
        };
        let node = Node::compile(schema);
        let type_ = node.type_name();
        if type_ == "array" && node.items.is_none() {
            self.structural_error(FieldError::required(
                format!("{path}.items"),
                "must be specified",
            ));
        }
        if obj.contains_key("additionalProperties") && level == Level::Root {
            self.structural_error(FieldError::forbidden(
                format!("{path}.additionalProperties"),
                "must not be used at the root",
            ));
        }
        if node.int_or_string && node.preserve_unknown {
            self.structural_error(FieldError::invalid(
                format!("{path}.x-kubernetes-preserve-unknown-fields"),
                Value::Bool(true),
                "must be false if x-kubernetes-int-or-string is true",
            ));
        }
        if node.int_or_string && node.embedded {
            self.structural_error(FieldError::invalid(
                format!("{path}.x-kubernetes-embedded-resource"),
                Value::Bool(true),
                "must be false if x-kubernetes-int-or-string is true",
            ));
        }
        self.value_validations(schema, path);

        let check_metadata = level == Level::Root || node.embedded;
        if node.embedded && type_ != "object" {
            let detail = "must be object if x-kubernetes-embedded-resource is true";
            self.structural_error(if type_.is_empty() {
                FieldError::required(format!("{path}.type"), detail)
            } else {
                FieldError::invalid(format!("{path}.type"), str_value(type_), detail)
            });
        } else if type_.is_empty() && !node.int_or_string && !node.preserve_unknown {
            let detail = match level {
                Level::Root => "must not be empty at the root",
                Level::Item => "must not be empty for specified array items",
                Level::Field => "must not be empty for specified object fields",
            };
            self.structural_error(FieldError::required(format!("{path}.type"), detail));
        }
        if node.embedded && !matches!(node.additional, Additional::Unset) {
            self.structural_error(FieldError::forbidden(
                format!("{path}.additionalProperties"),
                "must not be used if x-kubernetes-embedded-resource is set",
            ));
        }
        if level == Level::Root && !type_.is_empty() && type_ != "object" {
            self.structural_error(FieldError::invalid(
                format!("{path}.type"),
                str_value(type_),
                "must be object at the root",
            ));
        }
        if check_metadata {
            for (key, expected) in [
                ("kind", "string"),
                ("apiVersion", "string"),
                ("metadata", "object"),
            ] {
                if let Some(prop) = node.properties.get(key)
                    && prop.type_name() != expected
                {
                    self.structural_error(FieldError::invalid(
                        format!("{path}.properties[{key}].type"),
                        str_value(prop.type_name()),
                        format!("must be {expected}"),
                    ));
                }
            }
        }
        if level == Level::Root
            && let Some(metadata) = obj.get("properties").and_then(|p| p.get("metadata"))
            && !is_name_only_metadata(metadata)
        {
            self.structural_error(FieldError::forbidden(
                format!("{path}.properties[metadata]"),
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
        if node.embedded && !node.preserve_unknown && node.properties.is_empty() {
            self.structural_error(FieldError::required(
                format!("{path}.properties"),
                "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
            ));
        }
        for (child_path, child, child_level) in children(schema, path) {
            self.invariants(&child, &child_path, child_level);
        }
    }

    fn value_validations(&mut self, schema: &Value, path: &str) {
        let int_or_string_branches = [json!({"type": "integer"}), json!({"type": "string"})];
        // The two int-or-string exceptions: `anyOf: [{type: integer}, {type: string}]`, also as
        // the first entry of an `allOf`.
        let skip_any_of = schema
            .get("anyOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            == Some(&int_or_string_branches[..]);
        let skip_first_all_of_any_of = schema
            .get("allOf")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|f| f.get("anyOf"))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            == Some(&int_or_string_branches[..]);
        self.value_validation_of(schema, path, skip_any_of, skip_first_all_of_any_of);
    }

    /// `validateValueValidation`: the junctors under a schema (structural part or nested).
    fn value_validation_of(
        &mut self,
        schema: &Value,
        path: &str,
        skip_any_of: bool,
        skip_first_all_of_any_of: bool,
    ) {
        if !skip_any_of && let Some(branches) = schema.get("anyOf").and_then(Value::as_array) {
            for (i, b) in branches.iter().enumerate() {
                self.nested(b, &format!("{path}.anyOf[{i}]"), false);
            }
        }
        if let Some(branches) = schema.get("allOf").and_then(Value::as_array) {
            for (i, b) in branches.iter().enumerate() {
                self.nested(
                    b,
                    &format!("{path}.allOf[{i}]"),
                    skip_first_all_of_any_of && i == 0,
                );
            }
        }
        if let Some(branches) = schema.get("oneOf").and_then(Value::as_array) {
            for (i, b) in branches.iter().enumerate() {
                self.nested(b, &format!("{path}.oneOf[{i}]"), false);
            }
        }
        if let Some(not) = schema.get("not") {
            self.nested(not, &format!("{path}.not"), false);
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && let Err(e) = regex::Regex::new(pattern)
        {
            self.structural_error(FieldError::invalid(
                format!("{path}.pattern"),
                str_value(pattern),
                format!("must be a valid regular expression, but isn't: {e}"),
            ));
        }
    }

    /// `validateNestedValueValidation`: a schema inside allOf/anyOf/oneOf/not.
    fn nested(&mut self, schema: &Value, path: &str, skip_any_of: bool) {
        let Some(obj) = schema.as_object() else {
            return;
        };
        self.value_validation_of(schema, path, skip_any_of, false);
        if let Some(items) = obj.get("items") {
            self.nested(items, &format!("{path}.items"), false);
        }
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                self.nested(v, &format!("{path}.properties[{k}]"), false);
            }
        }
        for (key, detail) in NOT_IN_VALUE_VALIDATIONS {
            let set = match obj.get(*key) {
                None | Some(Value::Null) | Some(Value::Bool(false)) => false,
                Some(Value::String(s)) => !s.is_empty(),
                Some(Value::Array(a)) => !a.is_empty(),
                Some(_) => true,
            };
            if set {
                self.structural_error(FieldError::forbidden(format!("{path}.{key}"), *detail));
            }
        }
        if obj
            .get("properties")
            .and_then(|p| p.get("metadata"))
            .is_some()
        {
            self.structural_error(FieldError::forbidden(
                format!("{path}.properties[metadata]"),
                "must not be specified in a nested context",
            ));
        }
    }

    /// Every field a value validation names must exist in the structural part.
    fn completeness(&mut self, schema: &Value, path: &str) {
        for (branch_path, branch) in junctors(schema, path) {
            self.nested_completeness(&branch, Some(schema), path, &branch_path);
        }
        for (child_path, child, _) in children(schema, path) {
            self.completeness(&child, &child_path);
        }
    }

    fn nested_completeness(
        &mut self,
        validation: &Value,
        structure: Option<&Value>,
        s_path: &str,
        v_path: &str,
    ) {
        let Some(structure) = structure else {
            self.structural_error(FieldError::required(
                s_path,
                format!("because it is defined in {v_path}"),
            ));
            return;
        };
        for (branch_path, branch) in junctors(validation, v_path) {
            self.nested_completeness(&branch, Some(structure), s_path, &branch_path);
        }
        if let Some(items) = validation.get("items") {
            self.nested_completeness(
                items,
                structure.get("items"),
                &format!("{s_path}.items"),
                &format!("{v_path}.items"),
            );
        }
        if let Some(props) = validation.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                let in_structure = structure.get("properties").and_then(|p| p.get(k));
                let (sub, sub_path) = match in_structure {
                    Some(s) => (Some(s), format!("{s_path}.properties[{k}]")),
                    None => match structure.get("additionalProperties") {
                        Some(a @ Value::Object(_)) => {
                            (Some(a), format!("{s_path}.additionalProperties"))
                        }
                        _ => (None, format!("{s_path}.properties[{k}]")),
                    },
                };
                self.nested_completeness(v, sub, &sub_path, &format!("{v_path}.properties[{k}]"));
            }
        }
    }

    // --- Stage 3: defaults -------------------------------------------------------------------------

    /// A default must survive pruning unchanged and validate against its own schema.
    fn defaults_of(&mut self, schema: &Value, path: &str) {
        let node = Node::compile(schema);
        if let Some(default) = &node.default {
            let mut pruned = default.clone();
            if !crate::prune::prune_value_at(&node, &mut pruned).is_empty() {
                self.defaults.push(FieldError::invalid(
                    format!("{path}.default"),
                    default.clone(),
                    "must not have unknown fields",
                ));
            }
            let errors = crate::validate::validate(
                &node,
                default,
                None,
                crate::validate::CelValueStyle::SchemaType,
            );
            for e in errors {
                let at = if e.path.is_empty() {
                    format!("{path}.default")
                } else {
                    format!("{path}.default.{}", e.path)
                };
                self.defaults
                    .push(FieldError::invalid(at, default.clone(), e.body()));
            }
        }
        for (child_path, child, _) in children(schema, path) {
            self.defaults_of(&child, &child_path);
        }
    }
}

/// Whether a root `metadata` schema only says what the apiserver allows: `type`, a `default`,
/// and restrictions on `name` and `generateName`.
fn is_name_only_metadata(metadata: &Value) -> bool {
    let Some(obj) = metadata.as_object() else {
        return false;
    };
    obj.iter().all(|(k, v)| match k.as_str() {
        "type" | "default" => true,
        "properties" => v
            .as_object()
            .is_some_and(|p| p.keys().all(|k| k == "name" || k == "generateName")),
        _ => false,
    })
}
