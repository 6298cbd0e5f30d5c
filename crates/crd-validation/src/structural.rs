//! The checks kube-apiserver makes on a CRD's schema itself ("structural schema" rules, the
//! CRD v1 restrictions and CEL compilation), so a CRD is known good before it is installed.

use serde_json::Value;

use crate::field_error::FieldError;
use crate::schema::Node;

const TYPES: &[&str] = &["array", "boolean", "integer", "number", "object", "string"];
const REASONS: &[&str] = &[
    "FieldValueInvalid",
    "FieldValueForbidden",
    "FieldValueRequired",
    "FieldValueDuplicate",
];
/// Keys a schema node may not hold at all in a CRD v1 schema, with the apiserver's wording.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("$ref", "$ref is not supported"),
    ("$schema", "$schema is not supported"),
    ("id", "id is not supported"),
    ("definitions", "definitions are not supported"),
    ("dependencies", "dependencies are not supported"),
    ("patternProperties", "patternProperties is not supported"),
    ("additionalItems", "additionalItems is not supported"),
];
/// Keys that make no sense in a value validation (inside allOf/anyOf/oneOf/not).
const NOT_IN_VALUE_VALIDATIONS: &[&str] = &[
    "type",
    "default",
    "nullable",
    "additionalProperties",
    "description",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
];

/// Where a node sits, which decides the wording of some errors and whether `oldSelf` works.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Root,
    Property,
    Items,
    AdditionalProperties,
}

struct Checker {
    errors: Vec<FieldError>,
}

/// Reports every reason kube-apiserver would refuse a CRD with this `openAPIV3Schema`, as
/// messages like `openAPIV3Schema.properties[spec].type: Required value: must not be empty for
/// specified object fields`. Empty means the schema is acceptable.
#[must_use]
pub fn check_structural(schema: &Value) -> Vec<String> {
    let mut checker = Checker { errors: Vec::new() };
    checker.node(schema, "openAPIV3Schema", Place::Root, true, false);
    checker.errors.iter().map(ToString::to_string).collect()
}

fn str_value(s: &str) -> Value {
    Value::String(s.to_string())
}

impl Checker {
    fn push(&mut self, e: FieldError) {
        self.errors.push(e);
    }

    /// `correlatable`: whether `oldSelf` can be bound here (not under an atomic or set list).
    fn node(
        &mut self,
        schema: &Value,
        path: &str,
        place: Place,
        correlatable: bool,
        root_meta: bool,
    ) {
        let Some(obj) = schema.as_object() else {
            self.push(FieldError::invalid(
                path,
                schema.clone(),
                "must be a schema object",
            ));
            return;
        };
        self.common(schema, path);
        let node = Node::compile(schema);
        let type_ = obj.get("type").and_then(Value::as_str).unwrap_or("");
        let int_or_string = node.int_or_string;
        let preserve = node.preserve_unknown;

        if place == Place::Root && type_ != "object" {
            self.push(FieldError::invalid(
                format!("{path}.type"),
                str_value(type_),
                "must be object at the root",
            ));
        } else if type_.is_empty() && !int_or_string && !preserve {
            let detail = match place {
                Place::Items => "must not be empty for specified array items",
                _ => "must not be empty for specified object fields",
            };
            self.push(FieldError::required(format!("{path}.type"), detail));
        }
        if !type_.is_empty() && !TYPES.contains(&type_) {
            let supported: Vec<String> = TYPES.iter().map(|t| t.to_string()).collect();
            self.push(FieldError::not_supported(
                format!("{path}.type"),
                str_value(type_),
                &supported,
            ));
        }
        if int_or_string && !type_.is_empty() {
            self.push(FieldError::invalid(
                format!("{path}.type"),
                str_value(type_),
                "must be empty if x-kubernetes-int-or-string is true",
            ));
        }
        if obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
            self.push(FieldError::invalid(
                format!("{path}.x-kubernetes-preserve-unknown-fields"),
                Value::Bool(false),
                "must be true or undefined",
            ));
        }
        if node.embedded {
            if type_ != "object" {
                self.push(FieldError::invalid(
                    format!("{path}.type"),
                    str_value(type_),
                    "must be object if x-kubernetes-embedded-resource is true",
                ));
            }
            if node.properties.is_empty() && !preserve {
                self.push(FieldError::required(
                    format!("{path}.properties"),
                    "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
                ));
            }
        }
        let has_properties = obj
            .get("properties")
            .is_some_and(|p| p.as_object().is_some_and(|m| !m.is_empty()));
        if has_properties
            && matches!(
                obj.get("additionalProperties"),
                Some(Value::Object(_) | Value::Bool(true))
            )
        {
            self.push(FieldError::forbidden(
                format!("{path}.additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if root_meta {
            self.root_metadata(schema, path);
        }
        self.list_type(&node, obj, path);
        self.default(&node, schema, path);
        self.rules(&node, schema, path, correlatable);
        self.value_validations(obj, path, &node, int_or_string);

        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (key, prop) in props {
                let is_root_meta = place == Place::Root && key == "metadata";
                self.node(
                    prop,
                    &format!("{path}.properties[{key}]"),
                    Place::Property,
                    correlatable,
                    is_root_meta,
                );
            }
        }
        if let Some(items) = obj.get("items") {
            if items.is_array() {
                self.push(FieldError::forbidden(
                    format!("{path}.items"),
                    "items must be a schema object and not an array",
                ));
            } else {
                let correlates = correlatable && node.list_type.as_deref() == Some("map");
                self.node(
                    items,
                    &format!("{path}.items"),
                    Place::Items,
                    correlates,
                    false,
                );
            }
        } else if type_ == "array" {
            self.push(FieldError::required(
                format!("{path}.items"),
                "must be specified",
            ));
        }
        if let Some(additional @ Value::Object(_)) = obj.get("additionalProperties") {
            self.node(
                additional,
                &format!("{path}.additionalProperties"),
                Place::AdditionalProperties,
                correlatable,
                false,
            );
        }
    }

    /// Checks every node shares, structural part or value validation alike.
    fn common(&mut self, schema: &Value, path: &str) {
        for (key, detail) in UNSUPPORTED {
            if schema.get(*key).is_some() {
                self.push(FieldError::forbidden(format!("{path}.{key}"), *detail));
            }
        }
        if schema.get("uniqueItems") == Some(&Value::Bool(true)) {
            self.push(FieldError::forbidden(
                format!("{path}.uniqueItems"),
                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            ));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && let Err(e) = regex::Regex::new(pattern)
        {
            self.push(FieldError::invalid(
                format!("{path}.pattern"),
                str_value(pattern),
                format!("must be a valid regular expression, but isn't: {e}"),
            ));
        }
    }

    /// The object's own metadata may only constrain name and generateName.
    fn root_metadata(&mut self, schema: &Value, path: &str) {
        let Some(obj) = schema.as_object() else {
            return;
        };
        let extra_keys = obj
            .keys()
            .any(|k| !matches!(k.as_str(), "type" | "properties" | "description"));
        let extra_props = obj
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| p.keys().any(|k| k != "name" && k != "generateName"));
        if extra_keys || extra_props {
            self.push(FieldError::forbidden(
                path,
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
    }

    fn list_type(&mut self, node: &Node, obj: &serde_json::Map<String, Value>, path: &str) {
        let keys_set = obj.contains_key("x-kubernetes-list-map-keys");
        match node.list_type.as_deref() {
            None | Some("atomic") => {
                if keys_set {
                    self.push(FieldError::forbidden(
                        format!("{path}.x-kubernetes-list-map-keys"),
                        "must not be set if x-kubernetes-list-type is not map",
                    ));
                }
            }
            Some("set") => {
                if keys_set {
                    self.push(FieldError::forbidden(
                        format!("{path}.x-kubernetes-list-map-keys"),
                        "must not be set if x-kubernetes-list-type is not map",
                    ));
                }
                if let Some(items) = &node.items
                    && items.type_.as_deref() == Some("object")
                    && obj["items"]
                        .get("x-kubernetes-map-type")
                        .and_then(Value::as_str)
                        != Some("atomic")
                {
                    self.push(FieldError::invalid(
                        format!("{path}.items.x-kubernetes-map-type"),
                        Value::Null,
                        "must be atomic as item of a list with x-kubernetes-list-type=set",
                    ));
                }
            }
            Some("map") => {
                let items_type = node.items.as_ref().and_then(|i| i.type_.clone());
                if items_type.as_deref() != Some("object") {
                    self.push(FieldError::invalid(
                        format!("{path}.items.type"),
                        str_value(items_type.as_deref().unwrap_or("")),
                        "must be object when x-kubernetes-list-type is map",
                    ));
                }
                if node.list_map_keys.is_empty() {
                    self.push(FieldError::required(
                        format!("{path}.x-kubernetes-list-map-keys"),
                        "must not be empty if x-kubernetes-list-type is map",
                    ));
                }
                if let Some(items) = &node.items {
                    for key in &node.list_map_keys {
                        match items.properties.get(key) {
                            None => self.push(FieldError::invalid(
                                format!("{path}.x-kubernetes-list-map-keys"),
                                str_value(key),
                                "entries must all be names of item properties",
                            )),
                            Some(prop) => {
                                if !items.required.contains(key) && prop.default.is_none() {
                                    self.push(FieldError::required(
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
                self.push(FieldError::not_supported(
                    format!("{path}.x-kubernetes-list-type"),
                    str_value(other),
                    &supported,
                ));
            }
        }
    }

    /// A default must survive pruning unchanged and validate against its own schema.
    fn default(&mut self, node: &Node, schema: &Value, path: &str) {
        let Some(default) = &node.default else { return };
        let mut pruned = default.clone();
        let unknown = match &mut pruned {
            Value::Object(_) | Value::Array(_) => crate::prune::prune_value_at(node, &mut pruned),
            _ => Vec::new(),
        };
        if !unknown.is_empty() {
            self.push(FieldError::invalid(
                format!("{path}.default"),
                default.clone(),
                "must not have unknown fields",
            ));
        }
        let _ = schema;
        let errors = crate::validate::validate(
            node,
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
            self.push(FieldError::invalid(at, default.clone(), e.body()));
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
                self.push(FieldError::invalid(
                    format!("{rule_path}.{field}"),
                    str_value(text),
                    format!("compilation failed: {e}"),
                ));
            }
            if rule.is_transition && !correlatable {
                self.push(FieldError::invalid(
                    format!("{rule_path}.rule"),
                    str_value(&rule.rule),
                    format!("oldSelf cannot be used on the uncorrelatable portion of the schema within {path}"),
                ));
            }
            if let Some(reason) = &rule.reason
                && !REASONS.contains(&reason.as_str())
            {
                let supported: Vec<String> = REASONS.iter().map(|r| r.to_string()).collect();
                self.push(FieldError::not_supported(
                    format!("{rule_path}.reason"),
                    str_value(reason),
                    &supported,
                ));
            }
        }
    }

    fn value_validations(
        &mut self,
        obj: &serde_json::Map<String, Value>,
        path: &str,
        node: &Node,
        int_or_string: bool,
    ) {
        for key in ["allOf", "anyOf", "oneOf"] {
            if let Some(branches) = obj.get(key).and_then(Value::as_array) {
                // The one allowed use of `type` in a value validation: int-or-string's
                // `anyOf: [{type: integer}, {type: string}]`.
                let int_or_string_pattern = int_or_string
                    && matches!(key, "anyOf" | "allOf")
                    && branches.len() == 2
                    && branches[0] == serde_json::json!({"type": "integer"})
                    && branches[1] == serde_json::json!({"type": "string"});
                for (i, branch) in branches.iter().enumerate() {
                    if int_or_string_pattern {
                        continue;
                    }
                    self.value_validation(branch, &format!("{path}.{key}[{i}]"), node);
                }
            }
        }
        if let Some(not) = obj.get("not") {
            self.value_validation(not, &format!("{path}.not"), node);
        }
    }

    /// A schema inside allOf/anyOf/oneOf/not: constraints only, on fields the structural part
    /// (`structure`) declares.
    fn value_validation(&mut self, schema: &Value, path: &str, structure: &Node) {
        let Some(obj) = schema.as_object() else {
            return;
        };
        self.common(schema, path);
        for key in NOT_IN_VALUE_VALIDATIONS {
            if obj.contains_key(*key) {
                self.push(FieldError::forbidden(
                    format!("{path}.{key}"),
                    "must be empty to be structural",
                ));
            }
        }
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (key, prop) in props {
                let prop_path = format!("{path}.properties[{key}]");
                match structure.child(key) {
                    Some(s) => self.value_validation(prop, &prop_path, s),
                    None => self.push(FieldError::required(
                        prop_path,
                        "must be specified in the structural part of the schema",
                    )),
                }
            }
        }
        if let Some(items) = obj.get("items") {
            match &structure.items {
                Some(s) => self.value_validation(items, &format!("{path}.items"), s),
                None => self.push(FieldError::required(
                    format!("{path}.items"),
                    "must be specified in the structural part of the schema",
                )),
            }
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            if let Some(branches) = obj.get(key).and_then(Value::as_array) {
                for (i, branch) in branches.iter().enumerate() {
                    self.value_validation(branch, &format!("{path}.{key}[{i}]"), structure);
                }
            }
        }
        if let Some(not) = obj.get("not") {
            self.value_validation(not, &format!("{path}.not"), structure);
        }
    }
}
