//! The validation passes the apiserver runs on a custom resource write, in its order: OpenAPI
//! schema checks (kube-openapi), list-type uniqueness, then `x-kubernetes-validations` CEL rules.

use serde_json::{Number, Value};

use crate::field_error::{FieldError, FieldErrorKind, go_float, go_quote, render_number};
use crate::formats;
use crate::schema::{Additional, CelRule, Node};

/// The detail of the error the apiserver adds instead of running CEL rules when the schema
/// checks already found an error that could make the rules misbehave.
pub(crate) const CEL_SKIPPED: &str = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

/// Runs every pass over `value`. `old` is the stored object on update.
pub(crate) fn validate(
    root: &Node,
    value: &Value,
    old: Option<&Value>,
    style: CelValueStyle,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    openapi(root, value, old, "", &mut errors);
    let mut embedded_errors = Vec::new();
    let mut list_errors = Vec::new();
    let mut cel_errors = Vec::new();
    structural(
        root,
        value,
        Correlation::Old(old),
        "",
        &mut Passes {
            embedded_errors: &mut embedded_errors,
            list_errors: &mut list_errors,
            cel_errors: &mut cel_errors,
            style,
        },
    );
    errors.append(&mut embedded_errors);
    errors.append(&mut list_errors);
    let blocking = errors.iter().any(|e| {
        matches!(
            e.kind,
            FieldErrorKind::NotSupported
                | FieldErrorKind::Required
                | FieldErrorKind::TooLong
                | FieldErrorKind::TooMany
                | FieldErrorKind::TypeInvalid
        )
    });
    if blocking {
        if root_has_rules(root) {
            errors.push(FieldError::invalid("", Value::Null, CEL_SKIPPED));
        }
    } else {
        errors.append(&mut cel_errors);
    }
    errors
}

fn root_has_rules(node: &Node) -> bool {
    !node.rules.is_empty()
        || node.properties.values().any(root_has_rules)
        || node.items.as_deref().is_some_and(root_has_rules)
        || matches!(&node.additional, Additional::Schema(s) if root_has_rules(s))
        || node.all_of.iter().any(root_has_rules)
}

// ---------------------------------------------------------------------------------------------
// OpenAPI checks. Paths here follow kube-openapi: `a.b`, `a[0]`, and map keys as `a.key`; the
// message text names the field with the same string, and the error path is that string with
// one leading dot removed (an empty one is the apiserver's nil path).

fn err_path(name: &str) -> String {
    name.strip_prefix('.').unwrap_or(name).to_string()
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// kube-openapi's type validator, quirks included: a non-numeric schema with a format accepts
/// any string or array, and numeric formats are compared with the value's Go format
/// (`int64` for integers, `float64` for other numbers).
fn type_check(node: &Node, value: &Value, name: &str) -> Option<FieldError> {
    // The apiserver gives int-or-string fields the OpenAPI type list `[integer, string]`.
    let expected: Vec<&str> = if node.int_or_string {
        vec!["integer", "string"]
    } else {
        node.type_.as_deref().into_iter().collect()
    };
    let format = formats::effective(node.type_.as_deref(), node.format.as_deref());
    if expected.is_empty() && format.is_none() {
        return None;
    }
    let actual = json_type(value);
    let data_format = match actual {
        "integer" => "int64",
        "number" => "float64",
        _ => "",
    };
    let contains = expected.contains(&actual);
    let is_float_int = actual == "number"
        && value.as_f64().is_some_and(|f| f.fract() == 0.0)
        && expected.contains(&"integer");
    let is_int_float = actual == "integer" && expected.contains(&"number");
    let string_or_array = matches!(value, Value::String(_) | Value::Array(_));
    if let Some(format) = format {
        if !(string_or_array || contains || data_format == format || is_float_int || is_int_float) {
            return Some(type_error(name, format, data_format));
        }
        let numeric = expected.contains(&"number") || expected.contains(&"integer");
        if !numeric && string_or_array {
            return None;
        }
    }
    if contains || is_float_int || is_int_float {
        None
    } else {
        Some(type_error(name, &expected.join(","), actual))
    }
}

/// The value as a float, for comparisons with schema bounds.
fn as_f64(n: &Number) -> f64 {
    n.as_f64().unwrap_or(f64::NAN)
}

/// How a schema bound prints: go-openapi uses the integer form when the value is an integer
/// and the bound integral, the float form (Go `%v`) otherwise; both print integral bounds alike.
fn bound(n: &Number) -> String {
    if n.is_f64() {
        go_float(as_f64(n))
    } else {
        render_number(n)
    }
}

fn openapi(
    node: &Node,
    value: &Value,
    old: Option<&Value>,
    name: &str,
    errs: &mut Vec<FieldError>,
) {
    // Ratcheting (on by default since Kubernetes 1.30): an update may keep a value that no
    // longer validates, as long as it is unchanged.
    if old.is_some_and(|o| o == value) {
        return;
    }
    if value.is_null() {
        if !node.nullable {
            if node.int_or_string {
                errs.push(type_error(name, "integer,string", "null"));
            } else if let Some(t) = &node.type_ {
                errs.push(type_error(name, t, "null"));
            }
        }
        return;
    }
    if let Some(e) = type_check(node, value, name) {
        errs.push(e);
    }

    composition(node, value, name, errs);

    match value {
        Value::String(s) => {
            check_string(node, s, name, errs);
        }
        Value::Number(n) => check_number(node, n, value, name, errs),
        Value::Array(items) => check_array(node, items, old, name, errs),
        _ => {}
    }
    check_enum(node, value, name, errs);
    if let Value::Object(map) = value {
        check_object(node, map, old, name, errs);
    }
}

fn type_error(name: &str, expected: &str, actual: &str) -> FieldError {
    FieldError::type_invalid(
        err_path(name),
        Value::String(actual.to_string()),
        format!(
            "{name} in body must be of type {expected}: {}",
            go_quote(actual)
        ),
    )
}

fn check_enum(node: &Node, value: &Value, name: &str, errs: &mut Vec<FieldError>) {
    let Some(allowed) = &node.enum_ else { return };
    if allowed.iter().any(|a| a == value) {
        return;
    }
    let supported: Vec<String> = allowed
        .iter()
        .map(|a| match a {
            Value::String(s) => s.clone(),
            other => serde_json::to_string(other).unwrap_or_default(),
        })
        .collect();
    errs.push(FieldError::not_supported(
        err_path(name),
        value.clone(),
        &supported,
    ));
}

fn check_string(node: &Node, s: &str, name: &str, errs: &mut Vec<FieldError>) {
    let chars = s.chars().count() as u64;
    if let Some(max) = node.max_length
        && chars > max
    {
        errs.push(FieldError::too_long(err_path(name), max as i64));
    }
    if let Some(min) = node.min_length
        && chars < min
    {
        errs.push(FieldError::invalid(
            err_path(name),
            Value::String(s.to_string()),
            format!("{name} in body should be at least {min} chars long"),
        ));
    }
    if let Some((pattern, compiled)) = &node.pattern {
        match compiled {
            Ok(re) if re.is_match(s) => {}
            Ok(_) => errs.push(FieldError::invalid(
                err_path(name),
                Value::String(s.to_string()),
                format!("{name} in body should match '{pattern}'"),
            )),
            Err(e) => errs.push(FieldError::internal(
                err_path(name),
                format!("pattern {pattern:?} does not compile: {e}"),
            )),
        }
    }
    if let Some(format) = formats::effective(node.type_.as_deref(), node.format.as_deref())
        && !formats::is_valid(format, s)
    {
        errs.push(FieldError::type_invalid(
            err_path(name),
            Value::String(s.to_string()),
            format!("{name} in body must be of type {format}: {}", go_quote(s)),
        ));
    }
}

fn check_number(node: &Node, n: &Number, value: &Value, name: &str, errs: &mut Vec<FieldError>) {
    let is_integer_type = node.type_.as_deref() == Some("integer");
    if is_integer_type
        && node.format.as_deref() == Some("int32")
        && n.as_i64().is_none_or(|i| i32::try_from(i).is_err())
    {
        // go-openapi reports this as a plain error, which the apiserver files at the nil path.
        errs.push(FieldError::invalid(
            "",
            Value::String(String::new()),
            format!("Checked value must be of type integer with format int32 in {name}"),
        ));
    }
    let data = as_f64(n);
    if let Some(factor) = &node.multiple_of {
        let f = as_f64(factor);
        let ok = if let (Some(v), Some(k)) = (n.as_i64(), factor.as_i64()) {
            k != 0 && v % k == 0
        } else {
            let mult = data / f;
            f != 0.0 && (mult - mult.round()).abs() < 1e-9
        };
        if !ok {
            errs.push(FieldError::invalid(
                err_path(name),
                value.clone(),
                format!("{name} in body should be a multiple of {}", bound(factor)),
            ));
        }
    }
    if let Some(min) = &node.minimum {
        let m = as_f64(min);
        let fails = if node.exclusive_minimum {
            data <= m
        } else {
            data < m
        };
        if fails {
            let op = if node.exclusive_minimum {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errs.push(FieldError::invalid(
                err_path(name),
                value.clone(),
                format!("{name} in body should be {op} {}", bound(min)),
            ));
        }
    }
    if let Some(max) = &node.maximum {
        let m = as_f64(max);
        let fails = if node.exclusive_maximum {
            data >= m
        } else {
            data > m
        };
        if fails {
            let op = if node.exclusive_maximum {
                "less than"
            } else {
                "less than or equal to"
            };
            errs.push(FieldError::invalid(
                err_path(name),
                value.clone(),
                format!("{name} in body should be {op} {}", bound(max)),
            ));
        }
    }
}

fn check_array(
    node: &Node,
    items: &[Value],
    old: Option<&Value>,
    name: &str,
    errs: &mut Vec<FieldError>,
) {
    if let Some(item_schema) = &node.items {
        let old_items = old.and_then(Value::as_array);
        for (i, item) in items.iter().enumerate() {
            let old_item = old_items.and_then(|o| correlate_item(node, item, o));
            openapi(item_schema, item, old_item, &format!("{name}[{i}]"), errs);
        }
    }
    let size = items.len() as u64;
    if let Some(min) = node.min_items
        && size < min
    {
        errs.push(FieldError::invalid(
            err_path(name),
            Value::from(size),
            format!("{name} in body should have at least {min} items"),
        ));
    }
    if let Some(max) = node.max_items
        && size > max
    {
        errs.push(FieldError::too_many(
            err_path(name),
            size as i64,
            max as i64,
        ));
    }
    if node.unique_items
        && items
            .iter()
            .enumerate()
            .any(|(i, a)| items[..i].contains(a))
    {
        errs.push(FieldError::invalid(
            err_path(name),
            Value::String(String::new()),
            format!("{name} in body shouldn't contain duplicates"),
        ));
    }
}

fn check_object(
    node: &Node,
    map: &serde_json::Map<String, Value>,
    old: Option<&Value>,
    name: &str,
    errs: &mut Vec<FieldError>,
) {
    let keys = map.len() as u64;
    if let Some(min) = node.min_properties
        && keys < min
    {
        errs.push(FieldError::invalid(
            err_path(name),
            Value::from(keys),
            format!("{name} in body should have at least {min} properties"),
        ));
        return;
    }
    if let Some(max) = node.max_properties
        && keys > max
    {
        errs.push(FieldError::too_many(
            err_path(name),
            keys as i64,
            max as i64,
        ));
        return;
    }
    match &node.additional {
        Additional::Allows(false) => {
            for key in map.keys().filter(|k| !node.properties.contains_key(*k)) {
                errs.push(FieldError::invalid(
                    err_path(name),
                    Value::String(key.clone()),
                    format!("{name}.{key} in body is a forbidden property"),
                ));
            }
        }
        Additional::Schema(schema) => {
            for (key, v) in map
                .iter()
                .filter(|(k, _)| !node.properties.contains_key(*k))
            {
                let old_v = old.and_then(|o| o.get(key));
                openapi(schema, v, old_v, &format!("{name}.{key}"), errs);
            }
        }
        _ => {}
    }
    for (key, schema) in &node.properties {
        if let Some(v) = map.get(key) {
            let child = if name.is_empty() {
                key.clone()
            } else {
                format!("{name}.{key}")
            };
            openapi(schema, v, old.and_then(|o| o.get(key)), &child, errs);
        }
    }
    for key in &node.required {
        if !map.contains_key(key) {
            errs.push(FieldError::required(err_path(&format!("{name}.{key}")), ""));
        }
    }
}

/// `allOf`, `oneOf`, `anyOf` and `not`, as value validations on the same value.
fn composition(node: &Node, value: &Value, name: &str, errs: &mut Vec<FieldError>) {
    let run = |branch: &Node| {
        let mut branch_errs = Vec::new();
        openapi(branch, value, None, name, &mut branch_errs);
        branch_errs
    };
    let composite = |detail: String| FieldError::invalid("", Value::String(String::new()), detail);
    if !node.any_of.is_empty() {
        let results: Vec<Vec<FieldError>> = node.any_of.iter().map(run).collect();
        if !results.iter().any(Vec::is_empty) {
            errs.push(composite(format!(
                "{} must validate at least one schema (anyOf)",
                go_quote(name)
            )));
            if let Some(best) = results.into_iter().min_by_key(Vec::len) {
                errs.extend(best);
            }
        }
    }
    if !node.one_of.is_empty() {
        let results: Vec<Vec<FieldError>> = node.one_of.iter().map(run).collect();
        let valid = results.iter().filter(|r| r.is_empty()).count();
        if valid != 1 {
            let extra = if valid == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {valid} valid alternatives")
            };
            errs.push(composite(format!(
                "{} must validate one and only one schema (oneOf). {extra}",
                go_quote(name)
            )));
            if valid == 0
                && let Some(best) = results.into_iter().min_by_key(Vec::len)
            {
                errs.extend(best);
            }
        }
    }
    if !node.all_of.is_empty() {
        let mut validated = 0;
        for branch in &node.all_of {
            let branch_errs = run(branch);
            if branch_errs.is_empty() {
                validated += 1;
            }
            errs.extend(branch_errs);
        }
        if validated != node.all_of.len() {
            let extra = if validated == 0 {
                ". None validated"
            } else {
                ""
            };
            errs.push(composite(format!(
                "{} must validate all the schemas (allOf){extra}",
                go_quote(name)
            )));
        }
    }
    if let Some(not) = &node.not
        && run(not).is_empty()
    {
        errs.push(composite(format!(
            "{} must not validate the schema (not)",
            go_quote(name)
        )));
    }
}

/// The old list item an item of a new list corresponds to: by key for `map` lists; items of
/// `set` and atomic lists do not correlate (as in the apiserver's ratcheting).
pub(crate) fn correlate_item<'a>(list: &Node, item: &Value, old: &'a [Value]) -> Option<&'a Value> {
    match list.list_type.as_deref() {
        Some("map") => {
            let key = map_key(list, item)?;
            old.iter().find(|o| map_key(list, o).as_ref() == Some(&key))
        }
        _ => None,
    }
}

fn map_key(list: &Node, item: &Value) -> Option<Vec<Value>> {
    let obj = item.as_object()?;
    Some(
        list.list_map_keys
            .iter()
            .map(|k| obj.get(k).cloned().unwrap_or(Value::Null))
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------------
// List-type uniqueness and CEL. Paths here are the apiserver's field.Path: `a.b`, `a[0]`,
// `a[key]`.

struct Passes<'e> {
    embedded_errors: &'e mut Vec<FieldError>,
    list_errors: &'e mut Vec<FieldError>,
    cel_errors: &'e mut Vec<FieldError>,
    style: CelValueStyle,
}

/// How a failed CEL rule shows the value, which changed in Kubernetes 1.35.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CelValueStyle {
    /// Up to 1.34: the schema type (`Invalid value: "object": ...`).
    SchemaType,
    /// From 1.35: scalars as themselves, objects and arrays omitted (`Invalid value: ...`).
    ScalarValue,
}

/// How the old value of a node is known, for transition rules and ratcheting.
#[derive(Clone, Copy)]
enum Correlation<'a> {
    /// The node correlates with a stored value (`None`: it is new).
    Old(Option<&'a Value>),
    /// The node cannot be correlated (an item of an atomic or set list); errors are ratcheted
    /// when its nearest correlatable ancestor is unchanged, which this records.
    Uncorrelated { ancestor_unchanged: bool },
}

impl<'a> Correlation<'a> {
    fn old(self) -> Option<&'a Value> {
        match self {
            Self::Old(old) => old,
            Self::Uncorrelated { .. } => None,
        }
    }

    fn unchanged(self, value: &Value) -> bool {
        match self {
            Self::Old(old) => old == Some(value),
            Self::Uncorrelated { ancestor_unchanged } => ancestor_unchanged,
        }
    }
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn structural(
    node: &Node,
    value: &Value,
    correlation: Correlation<'_>,
    path: &str,
    passes: &mut Passes<'_>,
) {
    if value.is_null() {
        return;
    }
    let unchanged = correlation.unchanged(value);
    run_rules(node, value, correlation.old(), unchanged, path, passes);
    // Rules may also sit in allOf branches; the apiserver runs those without ratcheting them
    // on the value itself.
    for branch in &node.all_of {
        run_rules(branch, value, correlation.old(), false, path, passes);
    }
    let old = correlation.old();
    match value {
        Value::Object(map) => {
            if node.embedded {
                check_embedded_resource(map, path, passes.embedded_errors);
            }
            let child_correlation = |key: &str| match correlation {
                Correlation::Old(o) => Correlation::Old(o.and_then(|o| o.get(key))),
                uncorrelated => uncorrelated,
            };
            for (key, v) in map {
                if let Some(prop) = node.properties.get(key) {
                    structural(prop, v, child_correlation(key), &child(path, key), passes);
                } else if let Additional::Schema(s) = &node.additional {
                    structural(
                        s,
                        v,
                        child_correlation(key),
                        &format!("{path}[{key}]"),
                        passes,
                    );
                }
            }
        }
        Value::Array(items) => {
            check_list_type(node, items, path, passes.list_errors);
            if let Some(item_schema) = &node.items {
                let old_items = old.and_then(Value::as_array);
                let is_map_list = node.list_type.as_deref() == Some("map");
                for (i, item) in items.iter().enumerate() {
                    // Only items of map lists correlate with old items, by key.
                    let item_correlation = match correlation {
                        Correlation::Old(_) if is_map_list => {
                            Correlation::Old(old_items.and_then(|o| correlate_item(node, item, o)))
                        }
                        Correlation::Old(_) => Correlation::Uncorrelated {
                            ancestor_unchanged: unchanged,
                        },
                        uncorrelated => uncorrelated,
                    };
                    structural(
                        item_schema,
                        item,
                        item_correlation,
                        &format!("{path}[{i}]"),
                        passes,
                    );
                }
            }
        }
        _ => {}
    }
}

/// An embedded resource needs a well-formed `apiVersion` and `kind`.
fn check_embedded_resource(
    map: &serde_json::Map<String, Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    for key in ["apiVersion", "kind"] {
        if !map.contains_key(key) {
            errs.push(FieldError::required(child(path, key), "must not be empty"));
        }
    }
    for (key, v) in map {
        let at = child(path, key);
        match key.as_str() {
            "apiVersion" | "kind" => {
                let Some(text) = v.as_str() else {
                    errs.push(FieldError::invalid(at, v.clone(), "must be a string"));
                    continue;
                };
                if text.is_empty() {
                    errs.push(FieldError::invalid(at, v.clone(), "must not be empty"));
                } else if key == "apiVersion" && text.matches('/').count() > 1 {
                    errs.push(FieldError::invalid(
                        at,
                        v.clone(),
                        format!("unexpected GroupVersion string: {text}"),
                    ));
                } else if key == "kind"
                    && let Some(problems) = dns1035_label_problems(&text.to_lowercase())
                {
                    errs.push(FieldError::invalid(
                        at,
                        v.clone(),
                        format!("may have mixed case, but should otherwise match: {problems}"),
                    ));
                }
            }
            _ => {}
        }
    }
}

/// `IsDNS1035Label`'s messages, joined with a comma as the apiserver joins them.
fn dns1035_label_problems(value: &str) -> Option<String> {
    let mut problems = Vec::new();
    if value.len() > 63 {
        problems.push("must be no more than 63 characters".to_string());
    }
    let bytes = value.as_bytes();
    let valid = !bytes.is_empty()
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !valid {
        problems.push(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".to_string(),
        );
    }
    (!problems.is_empty()).then(|| problems.join(","))
}

fn check_list_type(node: &Node, items: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    match node.list_type.as_deref() {
        Some("set") => {
            for i in second_occurrences(items) {
                errs.push(FieldError::duplicate(
                    format!("{path}[{i}]"),
                    items[i].clone(),
                ));
            }
        }
        Some("map") => {
            for (i, item) in items.iter().enumerate() {
                if !item.is_object() && !item.is_null() {
                    errs.push(FieldError::invalid(
                        format!("{path}[{i}]"),
                        item.clone(),
                        "must be an object for an array of list-type map",
                    ));
                    return;
                }
            }
            // An item's key: the key fields it sets (a null item or an absent field sets none).
            let keys: Vec<Value> = items
                .iter()
                .map(|item| {
                    let fields = node
                        .list_map_keys
                        .iter()
                        .filter_map(|k| item.get(k).map(|v| (k.clone(), v.clone())))
                        .collect();
                    Value::Object(fields)
                })
                .collect();
            for i in second_occurrences(&keys) {
                errs.push(FieldError::duplicate(
                    format!("{path}[{i}]"),
                    keys[i].clone(),
                ));
            }
        }
        _ => {}
    }
}

/// Indices of the second occurrence of each repeated value: the apiserver reports a value
/// repeated many times once.
fn second_occurrences(values: &[Value]) -> Vec<usize> {
    (0..values.len())
        .filter(|&i| values[..i].iter().filter(|v| **v == values[i]).count() == 1)
        .collect()
}

thread_local! {
    /// kube-cel's validator registers every Kubernetes CEL library on creation; reuse one per
    /// thread.
    static VALIDATOR: kube_cel::Validator = kube_cel::Validator::new();
}

fn run_rules(
    node: &Node,
    value: &Value,
    old: Option<&Value>,
    unchanged: bool,
    path: &str,
    passes: &mut Passes<'_>,
) {
    for rule in &node.rules {
        // Ratcheting: failures of rules that do not read oldSelf are forgiven when the value
        // (or, for uncorrelatable values, the nearest correlatable ancestor) is unchanged.
        if unchanged && !rule.is_transition {
            continue;
        }
        let error_path = rule_path(node, path, rule.field_path.as_deref());
        let chosen = match (&rule.compiled_without_old, old) {
            (Some(without_old), None) => without_old,
            _ => &rule.compiled,
        };
        let compiled = match chosen {
            Ok(c) => c,
            Err(e) => {
                passes.cel_errors.push(FieldError::invalid(
                    path,
                    Value::String(node.type_name().to_string()),
                    format!("rule compile error: {e}"),
                ));
                continue;
            }
        };
        let result = VALIDATOR.with(|v| v.validate_compiled(compiled, value, old));
        let Err(failures) = result else { continue };
        for failure in failures.iter() {
            passes.cel_errors.push(cel_error(
                node,
                rule,
                path,
                &error_path,
                value,
                failure,
                passes.style,
            ));
        }
    }
}

fn rule_error_string(rule: &CelRule) -> String {
    match &rule.message {
        Some(m) if !m.trim().is_empty() => m.trim().to_string(),
        _ => rule.rule.trim().to_string(),
    }
}

fn cel_error(
    node: &Node,
    rule: &CelRule,
    node_path: &str,
    error_path: &str,
    value: &Value,
    failure: &kube_cel::ValidationError,
    style: CelValueStyle,
) -> FieldError {
    let type_value = Value::String(node.type_name().to_string());
    match failure.kind {
        kube_cel::ErrorKind::ValidationFailure => {
            let detail = if failure.message.starts_with("failed rule: ") && rule.message.is_none() {
                format!("failed rule: {}", rule_error_string(rule))
            } else {
                failure.message.trim().to_string()
            };
            let shown = match style {
                CelValueStyle::SchemaType => Some(type_value),
                CelValueStyle::ScalarValue => {
                    (!matches!(value, Value::Object(_) | Value::Array(_))).then(|| value.clone())
                }
            };
            match rule.reason.as_deref() {
                Some("FieldValueForbidden") => FieldError::forbidden(error_path, detail),
                Some("FieldValueRequired") => FieldError::required(error_path, detail),
                Some("FieldValueDuplicate") => {
                    FieldError::new(error_path, FieldErrorKind::Duplicate, shown, "")
                }
                _ => FieldError::new(error_path, FieldErrorKind::Invalid, shown, detail),
            }
        }
        kube_cel::ErrorKind::CompilationFailure | kube_cel::ErrorKind::InvalidRule => {
            FieldError::invalid(
                node_path,
                type_value,
                format!("rule compile error: {}", failure.message),
            )
        }
        _ => {
            // kube-cel words runtime errors as "rule evaluation error: No such key: a"; the
            // apiserver prints cel-go's lower-case error, then which rule failed.
            let cause = failure
                .message
                .strip_prefix("rule evaluation error: ")
                .unwrap_or(&failure.message);
            let mut chars = cause.chars();
            let cause: String = match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => String::new(),
            };
            let detail = if cause.starts_with("no such overload") {
                format!(
                    "'{cause}': call arguments did not match a supported operator, function or macro signature for rule: {}",
                    rule_error_string(rule)
                )
            } else {
                format!("{cause} evaluating rule: {}", rule_error_string(rule))
            };
            FieldError::invalid(node_path, type_value, detail)
        }
    }
}

/// Appends a rule's `fieldPath` (`.a.b`, `.a['b.c']`) to the node's path the way the apiserver
/// normalises it: names of declared properties as `.name`, keys of maps as `[key]`.
fn rule_path(node: &Node, base: &str, field_path: Option<&str>) -> String {
    let Some(fp) = field_path.filter(|f| !f.is_empty()) else {
        return base.to_string();
    };
    let mut out = base.to_string();
    let mut schema = Some(node);
    let mut rest = fp;
    let push = |out: &mut String, name: &str, schema: &mut Option<&Node>| {
        let current = schema.take();
        match current {
            Some(s)
                if !s.properties.is_empty() || !matches!(s.additional, Additional::Schema(_)) =>
            {
                *out = child(out, name);
                *schema = s.properties.get(name);
            }
            Some(s) => {
                *out = format!("{out}[{name}]");
                if let Additional::Schema(a) = &s.additional {
                    *schema = Some(a);
                }
            }
            None => *out = child(out, name),
        }
    };
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("['") {
            let Some(end) = r.find("']") else { break };
            push(&mut out, &r[..end], &mut schema);
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            push(&mut out, &r[..end], &mut schema);
            rest = &r[end..];
        } else {
            out = child(&out, rest);
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::rule_path;
    use crate::schema::Node;
    use serde_json::json;

    #[test]
    fn rule_field_paths_name_properties_and_bracket_map_keys() {
        let node = Node::compile(&json!({
            "type": "object",
            "properties": {
                "a": {"type": "object", "properties": {"b": {"type": "string"}}},
                "m": {"type": "object", "additionalProperties": {"type": "string"}}
            }
        }));
        assert_eq!(rule_path(&node, "spec", Some(".a.b")), "spec.a.b");
        assert_eq!(rule_path(&node, "", Some(".m['x.y']")), "m[x.y]");
        assert_eq!(rule_path(&node, "spec", Some("['a'].b")), "spec.a.b");
        assert_eq!(rule_path(&node, "spec", None), "spec");
    }
}
