//! A CRD `openAPIV3Schema` read once into a typed tree, with regexes and CEL rules compiled.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::{Number, Value};

/// What `additionalProperties` says.
#[derive(Debug)]
pub(crate) enum Additional {
    /// Not set.
    Unset,
    /// `true` or `false`.
    Allows(bool),
    /// A schema for every value of the map.
    Schema(Box<Node>),
}

/// One compiled `x-kubernetes-validations` rule.
pub(crate) struct CelRule {
    /// Index of the rule in its node's `x-kubernetes-validations`.
    pub index: usize,
    /// The raw rule text.
    pub rule: String,
    pub message: Option<String>,
    pub reason: Option<String>,
    pub field_path: Option<String>,
    /// Whether the rule reads `oldSelf`, so only runs on update.
    pub is_transition: bool,
    /// kube-cel's compiled form of a copy of the node holding only this rule, so that kube-cel
    /// converts the value exactly as it would for the whole schema but evaluates one rule.
    pub compiled: Result<kube_cel::CompiledSchema, String>,
    /// For `optionalOldSelf` rules, the form run when there is no old value: `oldSelf` is
    /// `optional.none()` there, and `optional.of(oldSelf)` in `compiled`, as in the apiserver.
    pub compiled_without_old: Option<Result<kube_cel::CompiledSchema, String>>,
}

impl std::fmt::Debug for CelRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CelRule")
            .field("rule", &self.rule)
            .field("is_transition", &self.is_transition)
            .finish_non_exhaustive()
    }
}

/// One node of the schema.
#[derive(Debug)]
pub(crate) struct Node {
    pub type_: Option<String>,
    pub nullable: bool,
    pub format: Option<String>,
    pub required: Vec<String>,
    pub properties: BTreeMap<String, Node>,
    pub additional: Additional,
    pub items: Option<Box<Node>>,
    pub enum_: Option<Vec<Value>>,
    /// The pattern text and its compiled form (or the compile error).
    pub pattern: Option<(String, Result<Regex, String>)>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub min_properties: Option<u64>,
    pub max_properties: Option<u64>,
    pub minimum: Option<Number>,
    pub maximum: Option<Number>,
    pub exclusive_minimum: bool,
    pub exclusive_maximum: bool,
    pub multiple_of: Option<Number>,
    pub unique_items: bool,
    pub int_or_string: bool,
    pub preserve_unknown: bool,
    pub embedded: bool,
    pub list_type: Option<String>,
    pub list_map_keys: Vec<String>,
    pub all_of: Vec<Node>,
    pub any_of: Vec<Node>,
    pub one_of: Vec<Node>,
    pub not: Option<Box<Node>>,
    pub default: Option<Value>,
    pub rules: Vec<CelRule>,
}

fn u64_of(schema: &Value, key: &str) -> Option<u64> {
    schema.get(key).and_then(Value::as_u64)
}

fn bool_of(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn nodes_of(schema: &Value, key: &str) -> Vec<Node> {
    schema
        .get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().map(Node::compile).collect())
        .unwrap_or_default()
}

/// A copy of `schema` keeping its own structure but without any CEL rule, used as the shape
/// kube-cel converts values with.
fn strip_rules(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "x-kubernetes-validations")
                .map(|(k, v)| {
                    let v = match k.as_str() {
                        "properties" => match v {
                            Value::Object(props) => Value::Object(
                                props
                                    .iter()
                                    .map(|(pk, pv)| (pk.clone(), strip_rules(pv)))
                                    .collect(),
                            ),
                            other => other.clone(),
                        },
                        "items" | "additionalProperties" | "not" => strip_rules(v),
                        "allOf" | "anyOf" | "oneOf" => match v {
                            Value::Array(a) => Value::Array(a.iter().map(strip_rules).collect()),
                            other => other.clone(),
                        },
                        _ => v.clone(),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Compiles `rule` (a raw `x-kubernetes-validations` entry) alone on a copy of its node.
fn compile_one(stripped: &Value, rule: Value) -> (bool, Result<kube_cel::CompiledSchema, String>) {
    let mut single = stripped.clone();
    if let Value::Object(map) = &mut single {
        map.insert("x-kubernetes-validations".into(), Value::Array(vec![rule]));
    }
    let compiled = kube_cel::compile_schema(&single);
    match compiled.validations.first() {
        Some(Ok(result)) => (result.is_transition_rule, Ok(compiled)),
        Some(Err(e)) => (false, Err(e.to_string())),
        None => (false, Err("rule is not an object".to_string())),
    }
}

/// Replaces the identifier `oldSelf` (outside string literals and not as a field name) with
/// `replacement`.
pub(crate) fn replace_old_self(expr: &str, replacement: &str) -> String {
    const NAME: &str = "oldSelf";
    let bytes = expr.as_bytes();
    let mut out = String::with_capacity(expr.len());
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(q) = quote {
            if c == b'\\' {
                // Keep the escaped character, whatever it is.
                let end = (i + 2).min(bytes.len());
                out.push_str(&expr[i..end]);
                i = end;
                continue;
            }
            if c == q {
                quote = None;
            }
            out.push(c as char);
            i += 1;
            continue;
        }
        if c == b'\'' || c == b'"' {
            quote = Some(c);
            out.push(c as char);
            i += 1;
            continue;
        }
        let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        if expr[i..].starts_with(NAME)
            && (i == 0 || !(is_ident(bytes[i - 1]) || bytes[i - 1] == b'.'))
            && bytes.get(i + NAME.len()).is_none_or(|b| !is_ident(*b))
        {
            out.push_str(replacement);
            i += NAME.len();
            continue;
        }
        // Copy one whole UTF-8 character.
        let len = expr[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&expr[i..i + len]);
        i += len;
    }
    out
}

fn compile_rules(schema: &Value) -> Vec<CelRule> {
    let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let stripped = strip_rules(schema);
    rules
        .iter()
        .enumerate()
        .map(|(index, raw)| {
            let text = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_string);
            let optional_old_self = raw
                .get("optionalOldSelf")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let (is_transition, compiled, compiled_without_old) = if optional_old_self {
                // kube-cel binds a missing oldSelf to null; the apiserver binds an optional.
                let variant = |replacement: &str| {
                    let mut rule = raw.clone();
                    if let Value::Object(map) = &mut rule {
                        map.remove("optionalOldSelf");
                        for key in ["rule", "messageExpression"] {
                            if let Some(Value::String(expr)) = map.get_mut(key) {
                                *expr = replace_old_self(expr, replacement);
                            }
                        }
                    }
                    rule
                };
                let (is_transition, with_old) =
                    compile_one(&stripped, variant("optional.of(oldSelf)"));
                let (_, without_old) = compile_one(&stripped, variant("optional.none()"));
                (is_transition, with_old, Some(without_old))
            } else {
                let (is_transition, compiled) = compile_one(&stripped, raw.clone());
                (is_transition, compiled, None)
            };
            CelRule {
                index,
                rule: text("rule").unwrap_or_default(),
                message: text("message"),
                reason: text("reason"),
                field_path: text("fieldPath"),
                is_transition,
                compiled,
                compiled_without_old,
            }
        })
        .collect()
}

impl Node {
    /// Reads a schema node. Never fails: anything malformed is what `check_structural` reports,
    /// and validation treats an unknown shape as "no constraint", as a lenient reader would.
    pub(crate) fn compile(schema: &Value) -> Node {
        let properties = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| {
                p.iter()
                    .map(|(k, v)| (k.clone(), Node::compile(v)))
                    .collect()
            })
            .unwrap_or_default();
        let additional = match schema.get("additionalProperties") {
            Some(Value::Bool(b)) => Additional::Allows(*b),
            Some(v @ Value::Object(_)) => Additional::Schema(Box::new(Node::compile(v))),
            _ => Additional::Unset,
        };
        let pattern = schema
            .get("pattern")
            .and_then(Value::as_str)
            .map(|p| (p.to_string(), Regex::new(p).map_err(|e| e.to_string())));
        Node {
            type_: schema
                .get("type")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            nullable: bool_of(schema, "nullable"),
            format: schema
                .get("format")
                .and_then(Value::as_str)
                .filter(|f| !f.is_empty())
                .map(str::to_string),
            required: schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            properties,
            additional,
            items: schema
                .get("items")
                .filter(|i| i.is_object())
                .map(|i| Box::new(Node::compile(i))),
            enum_: schema.get("enum").and_then(Value::as_array).cloned(),
            pattern,
            min_length: u64_of(schema, "minLength"),
            max_length: u64_of(schema, "maxLength"),
            min_items: u64_of(schema, "minItems"),
            max_items: u64_of(schema, "maxItems"),
            min_properties: u64_of(schema, "minProperties"),
            max_properties: u64_of(schema, "maxProperties"),
            minimum: schema.get("minimum").and_then(|v| v.as_number().cloned()),
            maximum: schema.get("maximum").and_then(|v| v.as_number().cloned()),
            exclusive_minimum: bool_of(schema, "exclusiveMinimum"),
            exclusive_maximum: bool_of(schema, "exclusiveMaximum"),
            multiple_of: schema
                .get("multipleOf")
                .and_then(|v| v.as_number().cloned()),
            unique_items: bool_of(schema, "uniqueItems"),
            int_or_string: bool_of(schema, "x-kubernetes-int-or-string"),
            preserve_unknown: bool_of(schema, "x-kubernetes-preserve-unknown-fields"),
            embedded: bool_of(schema, "x-kubernetes-embedded-resource"),
            list_type: schema
                .get("x-kubernetes-list-type")
                .and_then(Value::as_str)
                .map(str::to_string),
            list_map_keys: schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            all_of: nodes_of(schema, "allOf"),
            any_of: nodes_of(schema, "anyOf"),
            one_of: nodes_of(schema, "oneOf"),
            not: schema
                .get("not")
                .filter(|n| n.is_object())
                .map(|n| Box::new(Node::compile(n))),
            default: schema.get("default").cloned(),
            rules: compile_rules(schema),
        }
    }

    /// The type name CEL errors print as the bad value (`sts.Type` in the apiserver).
    pub(crate) fn type_name(&self) -> &str {
        self.type_.as_deref().unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::replace_old_self;

    #[test]
    fn old_self_is_replaced_only_as_an_identifier() {
        assert_eq!(
            replace_old_self("!oldSelf.hasValue() || self == oldSelf.value()", "X"),
            "!X.hasValue() || self == X.value()"
        );
        assert_eq!(
            replace_old_self("self.oldSelf == 'oldSelf' && myoldSelf == oldSelfish", "X"),
            "self.oldSelf == 'oldSelf' && myoldSelf == oldSelfish"
        );
        assert_eq!(
            replace_old_self(r#""a\"oldSelf" + oldSelf"#, "X"),
            r#""a\"oldSelf" + X"#
        );
    }
}
