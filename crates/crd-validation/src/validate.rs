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
pub(crate) fn validate(root: &Node, value: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    openapi(root, value, old, "", &mut errors);
    let mut list_errors = Vec::new();
    let mut cel_errors = Vec::new();
    structural(
        root,
        value,
        old,
        "",
        &mut Passes {
            list_errors: &mut list_errors,
            cel_errors: &mut cel_errors,
        },
    );
    errors.append(&mut list_errors);
    let blocking = errors.iter().any(|e| {
        matches!(
            e.kind,
            FieldErrorKind::Required
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

fn type_matches(expected: &str, value: &Value) -> bool {
    let actual = json_type(value);
    match expected {
        "integer" => {
            actual == "integer"
                || (actual == "number" && value.as_f64().is_some_and(|f| f.fract() == 0.0))
        }
        "number" => actual == "integer" || actual == "number",
        other => other == actual,
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
        if let Some(t) = &node.type_
            && !node.nullable
        {
            errs.push(type_error(name, t, "null"));
        }
        return;
    }
    if let Some(t) = &node.type_
        && !type_matches(t, value)
    {
        errs.push(type_error(name, t, json_type(value)));
        check_enum(node, value, name, errs);
        return;
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
    if let Some(format) = &node.format
        && formats::is_checked(format)
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

/// The old list item an item of a new list corresponds to: by key for `map` lists, by value for
/// `set` lists, none for atomic lists (the apiserver cannot correlate those).
pub(crate) fn correlate_item<'a>(list: &Node, item: &Value, old: &'a [Value]) -> Option<&'a Value> {
    match list.list_type.as_deref() {
        Some("map") => {
            let key = map_key(list, item)?;
            old.iter().find(|o| map_key(list, o).as_ref() == Some(&key))
        }
        Some("set") => old.iter().find(|o| *o == item),
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
    list_errors: &'e mut Vec<FieldError>,
    cel_errors: &'e mut Vec<FieldError>,
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
    old: Option<&Value>,
    path: &str,
    passes: &mut Passes<'_>,
) {
    if value.is_null() {
        return;
    }
    run_rules(node, value, old, path, passes.cel_errors);
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let old_v = old.and_then(|o| o.get(key));
                if let Some(prop) = node.properties.get(key) {
                    structural(prop, v, old_v, &child(path, key), passes);
                } else if let Additional::Schema(s) = &node.additional {
                    structural(s, v, old_v, &format!("{path}[{key}]"), passes);
                }
            }
        }
        Value::Array(items) => {
            check_list_type(node, items, path, passes.list_errors);
            if let Some(item_schema) = &node.items {
                let old_items = old.and_then(Value::as_array);
                for (i, item) in items.iter().enumerate() {
                    // Only map lists correlate items for transition rules.
                    let old_item = old_items
                        .filter(|_| node.list_type.as_deref() == Some("map"))
                        .and_then(|o| correlate_item(node, item, o));
                    structural(item_schema, item, old_item, &format!("{path}[{i}]"), passes);
                }
            }
        }
        _ => {}
    }
}

fn check_list_type(node: &Node, items: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    match node.list_type.as_deref() {
        Some("set") => {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    errs.push(FieldError::duplicate(format!("{path}[{i}]"), item.clone()));
                }
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
            let mut seen: Vec<Vec<Value>> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let Some(key) = map_key(node, item) else {
                    continue;
                };
                if seen.contains(&key) {
                    let key_map: serde_json::Map<String, Value> = node
                        .list_map_keys
                        .iter()
                        .cloned()
                        .zip(key.iter().cloned())
                        .filter(|(_, v)| !v.is_null())
                        .collect();
                    errs.push(FieldError::duplicate(
                        format!("{path}[{i}]"),
                        Value::Object(key_map),
                    ));
                } else {
                    seen.push(key);
                }
            }
        }
        _ => {}
    }
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
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let unchanged = old.is_some_and(|o| o == value);
    for rule in &node.rules {
        // Ratcheting: rules that do not read oldSelf are not re-checked on unchanged values.
        if unchanged && !rule.is_transition {
            continue;
        }
        let error_path = rule_path(path, rule.field_path.as_deref());
        let compiled = match &rule.compiled {
            Ok(c) => c,
            Err(e) => {
                errs.push(FieldError::internal(
                    error_path,
                    format!("rule compile error: {e}"),
                ));
                continue;
            }
        };
        let result = VALIDATOR.with(|v| v.validate_compiled(compiled, value, old));
        let Err(failures) = result else { continue };
        for failure in failures.iter() {
            errs.push(cel_error(node, rule, &error_path, failure));
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
    path: &str,
    failure: &kube_cel::ValidationError,
) -> FieldError {
    let type_value = Value::String(node.type_name().to_string());
    match failure.kind {
        kube_cel::ErrorKind::ValidationFailure => {
            let detail = if failure.message.starts_with("failed rule: ") && rule.message.is_none() {
                format!("failed rule: {}", rule_error_string(rule))
            } else {
                failure.message.trim().to_string()
            };
            match rule.reason.as_deref() {
                Some("FieldValueForbidden") => FieldError::forbidden(path, detail),
                Some("FieldValueRequired") => FieldError::required(path, detail),
                Some("FieldValueDuplicate") => FieldError::duplicate(path, type_value),
                _ => FieldError::invalid(path, type_value, detail),
            }
        }
        kube_cel::ErrorKind::CompilationFailure | kube_cel::ErrorKind::InvalidRule => {
            FieldError::internal(path, failure.message.clone())
        }
        _ => FieldError::invalid(
            path,
            type_value,
            format!(
                "{} evaluating rule: {}",
                failure.message,
                rule_error_string(rule)
            ),
        ),
    }
}

/// Appends a rule's `fieldPath` (`.a.b`, `.a['b.c']`, `.a[0]`) to the node's path.
fn rule_path(base: &str, field_path: Option<&str>) -> String {
    let Some(fp) = field_path.filter(|f| !f.is_empty()) else {
        return base.to_string();
    };
    let mut out = base.to_string();
    let mut rest = fp;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            out = child(&out, &r[..end]);
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix("['") {
            let Some(end) = r.find("']") else { break };
            out = child(&out, &r[..end]);
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else { break };
            out = format!("{out}[{}]", &r[..end]);
            rest = &r[end + 1..];
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

    #[test]
    fn rule_field_paths_extend_the_node_path_in_field_path_form() {
        assert_eq!(rule_path("spec", Some(".a.b")), "spec.a.b");
        assert_eq!(rule_path("", Some(".spec['x.y']")), "spec.x.y");
        assert_eq!(rule_path("spec", Some(".list[0]")), "spec.list[0]");
        assert_eq!(rule_path("spec", None), "spec");
    }
}
