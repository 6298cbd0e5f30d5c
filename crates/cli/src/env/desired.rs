//! The UpstartEnvironment that `upstart env create` applies (and `upstart env diff` compares),
//! built by a pure function from the command's flags or file and the environment as it exists:
//! `--service`, `--set`, `--var`, `--ttl`, the requester annotation.
//!
//! Re-running `create` for every push of a pull request is the intended use, so the rules make
//! a re-run safe: the requester recorded first stays; a ttl never shrinks (an `extend` in
//! between is not undone, and a push without `--ttl` does not remove the expiry).

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value, json};
use upstart_api::duration::{format_duration, parse_duration};
use upstart_api::v1alpha1::UpstartEnvironment;

/// The API version and kind of an environment.
const API_VERSION: &str = "upstartoperators.upstart.com/v1alpha1";
const KIND: &str = "UpstartEnvironment";

/// Who asked for an environment: set by the CLI on create, from `--requester` or the
/// kubeconfig's user (the operator shows it as `status.requester`).
pub use upstart_api::labels::REQUESTER_ANNOTATION;

/// `--service NAME[=TEMPLATE]`: a service of the environment from a catalog template (by
/// default the template of the same name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceArg {
    /// The UpstartService created in the environment.
    pub name: String,
    /// The catalog template.
    pub template: String,
}

impl std::str::FromStr for ServiceArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, template) = s.split_once('=').unwrap_or((s, s));
        if name.is_empty() || template.is_empty() {
            return Err(format!(
                "{s:?}: expected SERVICE or SERVICE=TEMPLATE (a catalog template's name)"
            ));
        }
        Ok(ServiceArg {
            name: name.to_owned(),
            template: template.to_owned(),
        })
    }
}

/// What a `--set` changes in a release of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetField {
    /// `values.PATH`: a value at a dotted path.
    Values(Vec<String>),
    /// `version`.
    Version,
    /// `chart`.
    Chart,
}

/// `--set SERVICE.KEY.values.PATH=VALUE` (or `SERVICE.KEY.version=V`, `SERVICE.KEY.chart=C`).
/// Its [`fmt::Display`] shows the target only, never the value (which may be a secret).
#[derive(Clone, PartialEq, Eq)]
pub struct SetArg {
    /// The service's name in the environment.
    pub service: String,
    /// The release key in the service.
    pub key: String,
    /// What is set.
    pub field: SetField,
    /// The value as typed on the command line.
    pub raw: String,
}

impl fmt::Debug for SetArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SetArg({self})")
    }
}

impl fmt::Display for SetArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            SetField::Values(path) => write!(
                f,
                "{}.{}.values.{}",
                self.service,
                self.key,
                path.iter()
                    .map(|p| p.replace('.', "\\."))
                    .collect::<Vec<_>>()
                    .join(".")
            ),
            SetField::Version => write!(f, "{}.{}.version", self.service, self.key),
            SetField::Chart => write!(f, "{}.{}.chart", self.service, self.key),
        }
    }
}

/// Splits at dots not preceded by a backslash (`a\.b.c` is `a.b`, `c`), as `helm --set` does.
fn split_path(path: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                chars.next();
                if let Some(part) = parts.last_mut() {
                    part.push('.');
                }
            }
            '.' => parts.push(String::new()),
            c => {
                if let Some(part) = parts.last_mut() {
                    part.push(c);
                }
            }
        }
    }
    parts
}

impl std::str::FromStr for SetArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const FORM: &str =
            "expected SERVICE.KEY.values.PATH=VALUE, SERVICE.KEY.version=V or SERVICE.KEY.chart=C";
        // The value is never repeated in a message: it may be a secret.
        let Some((target, raw)) = s.split_once('=') else {
            return Err(format!("a --set without '=': {FORM}"));
        };
        let parts = split_path(target);
        if parts.iter().any(String::is_empty) {
            return Err(format!("--set {target}: an empty name in the path; {FORM}"));
        }
        let field = match parts.get(2).map(String::as_str) {
            Some("values") if parts.len() > 3 => SetField::Values(parts[3..].to_vec()),
            Some("version") if parts.len() == 3 => SetField::Version,
            Some("chart") if parts.len() == 3 => SetField::Chart,
            _ => return Err(format!("--set {target}: {FORM}")),
        };
        Ok(SetArg {
            service: parts[0].clone(),
            key: parts[1].clone(),
            field,
            raw: raw.to_owned(),
        })
    }
}

/// `--var NAME=VALUE`.
#[derive(Clone, PartialEq, Eq)]
pub struct VarArg {
    /// The variable.
    pub name: String,
    /// Its value.
    pub value: String,
}

impl fmt::Debug for VarArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VarArg({})", self.name)
    }
}

impl std::str::FromStr for VarArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((name, value)) if !name.is_empty() => Ok(VarArg {
                name: name.to_owned(),
                value: value.to_owned(),
            }),
            _ => Err("a --var is NAME=VALUE".to_owned()),
        }
    }
}

/// A `--set` value as `helm --set` reads it: `true`/`false`, `null` and integers are typed,
/// everything else is a string. `--set-string` keeps it a string.
pub fn typed_value(raw: &str, as_string: bool) -> Value {
    if as_string {
        return Value::String(raw.to_owned());
    }
    match raw {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "null" => Value::Null,
        // A leading zero (`0123`) or a `+` makes it a string, as in Helm: image tags and
        // zip codes keep their form.
        _ if raw == "0"
            || (raw
                .trim_start_matches('-')
                .starts_with(|c: char| ('1'..='9').contains(&c))
                && raw
                    .trim_start_matches('-')
                    .chars()
                    .all(|c| c.is_ascii_digit())) =>
        {
            raw.parse::<i64>()
                .map_or_else(|_| Value::String(raw.to_owned()), Value::from)
        }
        _ => Value::String(raw.to_owned()),
    }
}

/// What the command line asks the environment to be.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// `-f FILE`: an UpstartEnvironment document the flags apply on top of.
    pub document: Option<Value>,
    /// `--service`.
    pub services: Vec<ServiceArg>,
    /// `--set` and `--set-string` (true: kept a string), in command-line order.
    pub sets: Vec<(SetArg, bool)>,
    /// `--var`.
    pub variables: Vec<VarArg>,
    /// `--ttl`.
    pub ttl: Option<String>,
    /// `--env-namespace`: the namespace the environment creates.
    pub namespace: Option<String>,
}

/// The object to apply, and notes for the user (a ttl kept, for instance).
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// The UpstartEnvironment, as JSON for server-side apply.
    pub object: Value,
    /// What the rules changed from what was asked.
    pub notes: Vec<String>,
}

fn ttl_of(value: Option<&str>) -> Option<Duration> {
    parse_duration(value?).ok()
}

/// The environment `name` as `request` asks for it, given what exists (`existing`) and who
/// asks (`requester`, used when the environment has no requester yet).
pub fn desired(
    name: &str,
    request: &Request,
    existing: Option<&UpstartEnvironment>,
    requester: &str,
) -> Result<Desired, String> {
    let mut notes = Vec::new();
    let mut object = match &request.document {
        Some(document) => from_document(name, document)?,
        None => json!({"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name},
                       "spec": {}}),
    };
    let spec = object_field(&mut object, "spec")?;
    if let Some(namespace) = &request.namespace {
        spec.insert("namespace".to_owned(), json!(namespace));
    }
    let services = spec
        .entry("services")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(services) = services else {
        return Err("spec.services is not a list".to_owned());
    };
    for service in &request.services {
        let present = services
            .iter()
            .any(|s| s["name"].as_str() == Some(service.name.as_str()));
        if !present {
            services.push(json!({"name": service.name, "template": {"name": service.template}}));
        }
    }
    for (set, as_string) in &request.sets {
        let Some(service) = services
            .iter_mut()
            .find(|s| s["name"].as_str() == Some(set.service.as_str()))
        else {
            return Err(format!(
                "--set {set}: the environment has no service {} (add --service {})",
                set.service, set.service
            ));
        };
        let release = service
            .as_object_mut()
            .ok_or_else(|| format!("service {} is not a mapping", set.service))?
            .entry("overrides")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| format!("service {}: overrides is not a mapping", set.service))?
            .entry(set.key.clone())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| format!("--set {set}: the override of {} is not a mapping", set.key))?;
        match &set.field {
            SetField::Version => {
                release.insert("version".to_owned(), json!(set.raw));
            }
            SetField::Chart => {
                release.insert("chart".to_owned(), json!(set.raw));
            }
            SetField::Values(path) => {
                let mut at = release.entry("values").or_insert_with(|| json!({}));
                for part in &path[..path.len() - 1] {
                    if !at.is_object() {
                        // A --set deeper than a scalar replaces it, as `helm --set` does.
                        *at = json!({});
                    }
                    at = at
                        .as_object_mut()
                        .map(|m| m.entry(part.clone()).or_insert_with(|| json!({})))
                        .ok_or_else(|| format!("--set {set}: not a mapping"))?;
                }
                if !at.is_object() {
                    *at = json!({});
                }
                if let (Some(map), Some(last)) = (at.as_object_mut(), path.last()) {
                    map.insert(last.clone(), typed_value(&set.raw, *as_string));
                }
            }
        }
    }
    if !request.variables.is_empty() {
        let variables = spec
            .entry("variables")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or("spec.variables is not a mapping")?;
        for variable in &request.variables {
            variables.insert(variable.name.clone(), json!(variable.value));
        }
    }
    if let Some(ttl) = &request.ttl {
        parse_duration(ttl).map_err(|e| format!("--ttl: {e}"))?;
        spec.insert("ttl".to_owned(), json!(ttl));
    }
    // Never shorten a life: the longer of the asked and the existing ttl wins.
    let asked = spec.get("ttl").and_then(Value::as_str).map(str::to_owned);
    let current = existing.and_then(|e| e.spec.ttl.clone());
    match (asked.as_deref(), current.as_deref()) {
        (_, None) => {}
        (None, Some(current)) => {
            spec.insert("ttl".to_owned(), json!(current));
        }
        (Some(asked), Some(current)) => {
            if let (Some(a), Some(c)) = (ttl_of(Some(asked)), ttl_of(Some(current)))
                && c > a
            {
                notes.push(format!(
                    "ttl kept at {current} (longer than the {asked} asked; `upstart env extend` \
                     or kubectl can shorten it)"
                ));
                spec.insert("ttl".to_owned(), json!(current));
            }
        }
    }
    let requester = existing
        .and_then(|e| e.metadata.annotations.as_ref())
        .and_then(|a| a.get(REQUESTER_ANNOTATION))
        .filter(|r| !r.is_empty())
        .map_or(requester, String::as_str)
        .to_owned();
    if !requester.is_empty() {
        object_field(&mut object, "metadata")?
            .entry("annotations")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or("metadata.annotations is not a mapping")?
            .insert(REQUESTER_ANNOTATION.to_owned(), json!(requester));
    }
    Ok(Desired { object, notes })
}

fn object_field<'a>(
    object: &'a mut Value,
    field: &str,
) -> Result<&'a mut Map<String, Value>, String> {
    object
        .as_object_mut()
        .ok_or("the environment is not a mapping")?
        .entry(field)
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| format!("{field} is not a mapping"))
}

/// The environment document of `-f`: an UpstartEnvironment named `name` (or unnamed), with
/// only what a user writes (metadata name, labels, annotations; spec).
fn from_document(name: &str, document: &Value) -> Result<Value, String> {
    if document["kind"].as_str() != Some(KIND) {
        return Err(format!(
            "the file holds a {} where an UpstartEnvironment was expected",
            document["kind"].as_str().unwrap_or("document without kind")
        ));
    }
    if document["apiVersion"].as_str() != Some(API_VERSION) {
        return Err(format!(
            "the file's UpstartEnvironment has apiVersion {}, expected {API_VERSION}",
            document["apiVersion"]
        ));
    }
    let named = document["metadata"]["name"].as_str().unwrap_or(name);
    if named != name {
        return Err(format!(
            "the file's UpstartEnvironment is named {named}, the command names {name}: make \
             them agree (or drop metadata.name from the file)"
        ));
    }
    let mut metadata = Map::new();
    metadata.insert("name".to_owned(), json!(name));
    for field in ["labels", "annotations"] {
        if let Some(value) = document["metadata"].get(field).filter(|v| !v.is_null()) {
            metadata.insert(field.to_owned(), value.clone());
        }
    }
    Ok(json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": document.get("spec").cloned().unwrap_or_else(|| json!({})),
    }))
}

/// The ttl that makes an environment created at `created` expire `by` later than it would
/// (or than `now`, when that is later: an environment already past its expiry, but kept, gets
/// `by` from now). `None` when it has no ttl: it never expires.
pub fn extended_ttl(
    ttl: Option<&str>,
    created: jiff::Timestamp,
    now: jiff::Timestamp,
    by: Duration,
) -> Result<Option<String>, String> {
    let Some(ttl) = ttl else {
        return Ok(None);
    };
    let ttl = parse_duration(ttl).map_err(|e| format!("spec.ttl: {e}"))?;
    let age = Duration::try_from(now.duration_since(created)).unwrap_or(Duration::ZERO);
    let base = ttl.max(age);
    // Whole seconds, rounded up: the expiry is never earlier than asked.
    let total = base + by;
    let seconds = total.as_secs() + u64::from(total.subsec_nanos() > 0);
    Ok(Some(format_duration(Duration::from_secs(seconds))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> (SetArg, bool) {
        (s.parse().expect("a valid --set"), false)
    }

    fn existing(ttl: Option<&str>, requester: Option<&str>) -> UpstartEnvironment {
        let mut annotations = serde_json::Map::new();
        if let Some(r) = requester {
            annotations.insert(REQUESTER_ANNOTATION.to_owned(), json!(r));
        }
        serde_json::from_value(json!({
            "apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": "pr-1", "annotations": annotations},
            "spec": {"ttl": ttl}
        }))
        .expect("environment")
    }

    #[test]
    fn flags_build_services_from_templates_with_overrides_and_variables() {
        let request = Request {
            services: vec!["shop".parse().unwrap(), "pay=payments".parse().unwrap()],
            sets: vec![
                set("shop.app.values.image.tag=pr-1-abc"),
                set("shop.app.values.replicas=2"),
                ("shop.app.values.build=0123".parse().unwrap(), true),
                set("pay.api.version=1.2.3"),
                set(r"shop.app.values.annotations.example\.com/team=shop"),
            ],
            variables: vec!["branch=feature-x".parse().unwrap()],
            ttl: Some("72h".into()),
            ..Request::default()
        };
        let out = desired("pr-1", &request, None, "alice").unwrap();
        assert_eq!(
            out.object,
            json!({
                "apiVersion": API_VERSION, "kind": KIND,
                "metadata": {"name": "pr-1", "annotations": {REQUESTER_ANNOTATION: "alice"}},
                "spec": {
                    "services": [
                        {"name": "shop", "template": {"name": "shop"}, "overrides": {"app": {"values": {
                            "image": {"tag": "pr-1-abc"}, "replicas": 2, "build": "0123",
                            "annotations": {"example.com/team": "shop"}}}}},
                        {"name": "pay", "template": {"name": "payments"},
                         "overrides": {"api": {"version": "1.2.3"}}}
                    ],
                    "variables": {"branch": "feature-x"},
                    "ttl": "72h"
                }
            })
        );
        assert!(out.notes.is_empty());
    }

    #[test]
    fn a_set_for_a_service_not_in_the_environment_names_the_fix_and_not_the_value() {
        let request = Request {
            services: vec!["shop".parse().unwrap()],
            sets: vec![set("billing.app.values.password=hunter2")],
            ..Request::default()
        };
        let error = desired("pr-1", &request, None, "alice").unwrap_err();
        assert_eq!(
            error,
            "--set billing.app.values.password: the environment has no service billing (add --service billing)"
        );
        assert!(!error.contains("hunter2"));
    }

    #[test]
    fn malformed_sets_are_refused_with_the_expected_form() {
        for bad in [
            "shop.app=1",
            "shop.app.values=1",
            "shop..values.a=1",
            "shop.app.values.a",
        ] {
            let error = bad.parse::<SetArg>().unwrap_err();
            assert!(
                error.contains("expected SERVICE.KEY.values.PATH=VALUE"),
                "{bad}: {error}"
            );
        }
        let error = "x.y.values.password".parse::<SetArg>().unwrap_err();
        assert!(
            !error.contains("password=") && error.contains("without '='"),
            "{error}"
        );
    }

    #[test]
    fn set_values_are_typed_as_helm_types_them() {
        assert_eq!(typed_value("true", false), json!(true));
        assert_eq!(typed_value("42", false), json!(42));
        assert_eq!(typed_value("-7", false), json!(-7));
        assert_eq!(typed_value("0", false), json!(0));
        assert_eq!(typed_value("0123", false), json!("0123"));
        assert_eq!(typed_value("1.5", false), json!("1.5"));
        assert_eq!(typed_value("42", true), json!("42"));
        assert_eq!(typed_value("pr-1", false), json!("pr-1"));
    }

    #[test]
    fn a_rerun_keeps_the_first_requester_and_never_shortens_the_ttl() {
        let request = Request {
            services: vec!["shop".parse().unwrap()],
            ttl: Some("72h".into()),
            ..Request::default()
        };
        let live = existing(Some("96h"), Some("alice"));
        let out = desired("pr-1", &request, Some(&live), "ci-bot").unwrap();
        assert_eq!(out.object["spec"]["ttl"], "96h");
        assert_eq!(
            out.object["metadata"]["annotations"][REQUESTER_ANNOTATION],
            "alice"
        );
        assert_eq!(out.notes.len(), 1, "{:?}", out.notes);

        let without_ttl = Request {
            ttl: None,
            ..request.clone()
        };
        let out = desired("pr-1", &without_ttl, Some(&live), "ci-bot").unwrap();
        assert_eq!(
            out.object["spec"]["ttl"], "96h",
            "a push without --ttl keeps the expiry"
        );

        let longer = Request {
            ttl: Some("120h".into()),
            ..request
        };
        let out = desired("pr-1", &longer, Some(&live), "ci-bot").unwrap();
        assert_eq!(out.object["spec"]["ttl"], "120h");
        assert!(out.notes.is_empty());
    }

    #[test]
    fn a_file_is_the_base_and_must_name_the_same_environment() {
        let document = json!({
            "apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": "pr-1", "resourceVersion": "7", "labels": {"team": "a"}},
            "spec": {"services": [{"name": "shop", "template": {"name": "shop"}}]},
            "status": {"phase": "Ready"}
        });
        let request = Request {
            document: Some(document.clone()),
            sets: vec![set("shop.app.values.image.tag=x")],
            ..Request::default()
        };
        let out = desired("pr-1", &request, None, "").unwrap();
        assert_eq!(
            out.object,
            json!({"apiVersion": API_VERSION, "kind": KIND,
                   "metadata": {"name": "pr-1", "labels": {"team": "a"}},
                   "spec": {"services": [{"name": "shop", "template": {"name": "shop"},
                       "overrides": {"app": {"values": {"image": {"tag": "x"}}}}}]}})
        );
        let error = desired("pr-2", &request, None, "").unwrap_err();
        assert!(
            error.contains("named pr-1, the command names pr-2"),
            "{error}"
        );
    }

    #[test]
    fn extending_adds_to_the_expiry_or_to_now_when_it_has_passed() {
        let created: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let hour = Duration::from_secs(3600);
        let now: jiff::Timestamp = "2026-01-01T10:00:00Z".parse().unwrap();
        assert_eq!(
            extended_ttl(Some("72h"), created, now, 2 * hour).unwrap(),
            Some("74h".to_owned())
        );
        // Created 100h ago with a 72h ttl (kept meanwhile): 2h from now.
        let later: jiff::Timestamp = "2026-01-05T04:00:00Z".parse().unwrap();
        assert_eq!(
            extended_ttl(Some("72h"), created, later, 2 * hour).unwrap(),
            Some("102h".to_owned())
        );
        assert_eq!(extended_ttl(None, created, now, hour).unwrap(), None);
    }
}
