//! Validation of built-in kinds after defaulting, with the API server's 422 causes
//! (`spec.template.spec.containers: Required value`, `...imagePullPolicy: Unsupported value:
//! "Sometimes": supported values: "Always", "IfNotPresent", "Never"`).
//!
//! Required fields come from the schema (k8s-openapi's `required`: the Go fields that are not
//! optional), checked wherever their type appears; a required object that is missing is
//! validated as Go's zero struct, as the server decodes it. What the schema cannot say (its
//! 1.33 documents carry no enums, the server checks more than `required`) is the server's own
//! validation, written per type here: the enums with the server's list of values in its order,
//! a container's image, a service port's range, and the per-kind rules of pod templates
//! (restart policy, selector matching the template's labels).

use serde_json::{Map, Value, json};

use super::schema::{self, Child, Definitions};
use crate::error::Cause;
use crate::registry::ResourceType;

const POD_SPEC: &str = "io.k8s.api.core.v1.PodSpec";

/// Required in the schema but not checked by the server: an image pull secret's name
/// (`LocalObjectReference` got `+default=""` without validation), and a service port's number,
/// which the server refuses as an out-of-range 0 instead (see `service_spec`).
const NOT_CHECKED: &[(&str, &str)] = &[
    ("io.k8s.api.core.v1.LocalObjectReference", "name"),
    ("io.k8s.api.core.v1.ServicePort", "port"),
];

/// Definitions that Go's API types always hold by pointer: required and absent, they are
/// missing (`spec.selector: Required value`), not a zero struct to look into.
const POINTERS: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.api.core.v1.LocalObjectReference",
];

/// Enumerated strings by definition and field, with the values in the order the server's
/// validation lists them (its `field.NotSupported` calls; `sets.List` sorts).
const ENUMS: &[(&str, &str, &[&str])] = &[
    (
        "io.k8s.api.core.v1.Container",
        "imagePullPolicy",
        &["Always", "IfNotPresent", "Never"],
    ),
    (
        "io.k8s.api.core.v1.Container",
        "terminationMessagePolicy",
        &["File", "FallbackToLogsOnError"],
    ),
    (POD_SPEC, "restartPolicy", &["Always", "OnFailure", "Never"]),
    (
        POD_SPEC,
        "dnsPolicy",
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
    ),
    (
        "io.k8s.api.core.v1.ContainerPort",
        "protocol",
        &["SCTP", "TCP", "UDP"],
    ),
    (
        "io.k8s.api.core.v1.ServicePort",
        "protocol",
        &["SCTP", "TCP", "UDP"],
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "type",
        &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "sessionAffinity",
        &["ClientIP", "None"],
    ),
    (
        "io.k8s.api.core.v1.Toleration",
        "operator",
        &["Equal", "Exists"],
    ),
    (
        "io.k8s.api.apps.v1.DeploymentStrategy",
        "type",
        &["Recreate", "RollingUpdate"],
    ),
    (
        "io.k8s.api.batch.v1.CronJobSpec",
        "concurrencyPolicy",
        &["Allow", "Forbid", "Replace"],
    ),
    (
        "io.k8s.api.batch.v1.JobSpec",
        "completionMode",
        &["Indexed", "NonIndexed"],
    ),
    (
        "io.k8s.api.networking.v1.HTTPIngressPath",
        "pathType",
        &["Exact", "ImplementationSpecific", "Prefix"],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement",
        "operator",
        &["In", "NotIn", "Exists", "DoesNotExist"],
    ),
];

/// A check of one object at a field path, adding the causes it finds.
type Check = fn(&Map<String, Value>, &str, &mut Vec<Cause>);

/// The server's checks of one type that the schema does not carry.
const CHECKS: &[(&str, Check)] = &[
    ("io.k8s.api.core.v1.Container", container),
    ("io.k8s.api.core.v1.ServiceSpec", service_spec),
];

/// The groups whose kinds are validated: the workloads, services, networking, RBAC and
/// disruption budgets people write by hand. Others are stored as decoded.
fn validated(t: &ResourceType) -> bool {
    match t.group.as_str() {
        "" => t.plural != "events",
        group => matches!(
            group,
            "apps" | "batch" | "networking.k8s.io" | "rbac.authorization.k8s.io" | "policy"
        ),
    }
}

/// The causes the API server would refuse a defaulted built-in object with (empty: valid).
pub fn validate(t: &ResourceType, obj: &Value) -> Vec<Cause> {
    if !validated(t) {
        return Vec::new();
    }
    let Some((root, definitions)) = schema::of_kind(t, obj) else {
        return Vec::new();
    };
    let mut causes = Vec::new();
    walk(definitions, root, obj, "", &mut causes);
    match root {
        "io.k8s.api.apps.v1.Deployment" => replicated(definitions, obj, "deployment", &mut causes),
        "io.k8s.api.apps.v1.ReplicaSet" => replicated(definitions, obj, "deployment", &mut causes),
        "io.k8s.api.apps.v1.StatefulSet" => {
            replicated(definitions, obj, "statefulset", &mut causes)
        }
        "io.k8s.api.apps.v1.DaemonSet" => replicated(definitions, obj, "daemonset", &mut causes),
        "io.k8s.api.batch.v1.Job" => {
            run_to_completion(definitions, &obj["spec"], "spec", &mut causes)
        }
        "io.k8s.api.batch.v1.CronJob" => run_to_completion(
            definitions,
            &obj["spec"]["jobTemplate"]["spec"],
            "spec.jobTemplate.spec",
            &mut causes,
        ),
        _ => {}
    }
    causes
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn not_supported(field: &str, value: &str, supported: &[&str]) -> Cause {
    let listed: Vec<String> = supported.iter().map(|v| format!("{v:?}")).collect();
    Cause {
        reason: "FieldValueNotSupported",
        field: field.to_string(),
        message: format!(
            "Unsupported value: {value:?}: supported values: {}",
            listed.join(", ")
        ),
    }
}

fn is_unset(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

/// Validates `value` as an object of `definition` at `path`, then its children.
fn walk(
    definitions: &Definitions,
    definition: &str,
    value: &Value,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    // Metadata has its own checks (names, labels, owner references: `validate_metadata`).
    if definition == "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" {
        return;
    }
    let Some(fields) = value.as_object() else {
        return;
    };
    let properties = &definitions[definition]["properties"];
    for field in schema::required(definitions, definition) {
        if NOT_CHECKED.contains(&(definition, field)) || !is_unset(fields.get(field)) {
            continue;
        }
        let at = join(path, field);
        match schema::child(&properties[field]) {
            // A struct field: Go decodes its absence as the zero struct.
            Some(Child::One(d)) if !POINTERS.contains(&d) => {
                walk(definitions, d, &json!({}), &at, causes)
            }
            _ => causes.push(Cause::required(&at, "")),
        }
    }
    for (_, field, supported) in ENUMS.iter().filter(|(d, ..)| *d == definition) {
        if let Some(v) = fields.get(*field).and_then(Value::as_str)
            && !v.is_empty()
            && !supported.contains(&v)
        {
            causes.push(not_supported(&join(path, field), v, supported));
        }
    }
    for (_, check) in CHECKS.iter().filter(|(d, _)| *d == definition) {
        check(fields, path, causes);
    }
    for (name, property) in schema::properties(definitions, definition) {
        if name == "status" {
            continue;
        }
        let (Some(target), Some(v)) = (schema::child(property), fields.get(name)) else {
            continue;
        };
        let at = join(path, name);
        match (target, v) {
            (Child::One(d), v) => walk(definitions, d, v, &at, causes),
            (Child::Each(d), Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    walk(definitions, d, item, &format!("{at}[{i}]"), causes);
                }
            }
            (Child::Values(d), Value::Object(values)) => {
                for (key, item) in values {
                    walk(definitions, d, item, &format!("{at}[{key}]"), causes);
                }
            }
            _ => {}
        }
    }
}

/// `validateContainers`: every container names its image.
fn container(c: &Map<String, Value>, path: &str, causes: &mut Vec<Cause>) {
    if is_unset(c.get("image")) {
        causes.push(Cause::required(&join(path, "image"), ""));
    }
}

/// `validateServicePort`: port numbers in range (an absent port is Go's 0), and names on
/// every port of a multi-port service.
fn service_spec(spec: &Map<String, Value>, path: &str, causes: &mut Vec<Cause>) {
    let Some(ports) = spec.get("ports").and_then(Value::as_array) else {
        return;
    };
    for (i, port) in ports.iter().enumerate() {
        let at = join(path, &format!("ports[{i}]"));
        if ports.len() > 1 && is_unset(port.get("name")) {
            causes.push(Cause::required(&format!("{at}.name"), ""));
        }
        for field in ["port", "targetPort"] {
            let number = match port.get(field) {
                None | Some(Value::Null) if field == "port" => Some(0),
                Some(Value::Number(n)) => n.as_i64(),
                _ => None,
            };
            if let Some(n) = number
                && !(1..=65535).contains(&n)
            {
                causes.push(Cause::invalid(
                    &format!("{at}.{field}"),
                    &json!(n),
                    "must be between 1 and 65535, inclusive",
                ));
            }
        }
    }
}

/// Whether a `LabelSelector` (matchLabels and matchExpressions) selects `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let label = |k: &str| labels[k].as_str();
    let by_labels = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str());
    let by_expressions = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match e["operator"].as_str() {
                Some("In") => label(key).is_some_and(|v| values.contains(&v)),
                Some("NotIn") => label(key).is_none_or(|v| !values.contains(&v)),
                Some("Exists") => label(key).is_some(),
                Some("DoesNotExist") => label(key).is_none(),
                _ => false,
            }
        });
    by_labels && by_expressions
}

fn is_empty_selector(selector: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .is_none_or(Map::is_empty)
        && selector["matchExpressions"]
            .as_array()
            .is_none_or(Vec::is_empty)
}

/// The pod template of a kind that keeps pods running (`ValidatePodTemplateSpecForReplicaSet`
/// and the specs' selector checks): a non-empty selector that matches the template's labels,
/// and restart policy Always.
fn replicated(definitions: &Definitions, obj: &Value, kind: &str, causes: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    let selector = &spec["selector"];
    if selector.is_object() && is_empty_selector(selector) {
        causes.push(Cause::invalid(
            "spec.selector",
            selector,
            &format!("empty selector is invalid for {kind}"),
        ));
    }
    let template = &spec["template"];
    // A missing selector selects nothing (`LabelSelectorAsSelector(nil)`).
    if !selector.is_object() || !selects(selector, &template["metadata"]["labels"]) {
        causes.push(Cause::invalid(
            "spec.template.metadata.labels",
            &template["metadata"]["labels"],
            "`selector` does not match template `labels`",
        ));
    }
    match template["spec"]["restartPolicy"].as_str() {
        Some(policy) if policy != "Always" => causes.push(not_supported(
            "spec.template.spec.restartPolicy",
            policy,
            &["Always"],
        )),
        _ if !template["spec"].is_object() => {
            // Go's zero pod spec, defaulted to restart Always.
            walk(
                definitions,
                POD_SPEC,
                &json!({}),
                "spec.template.spec",
                causes,
            );
        }
        _ => {}
    }
}

/// The pod template of a Job (or a CronJob's job template): restart policy OnFailure or Never.
fn run_to_completion(
    definitions: &Definitions,
    job_spec: &Value,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    let pod = &job_spec["template"]["spec"];
    let at = format!("{path}.template.spec");
    if !pod.is_object() {
        // Go's zero pod spec: no containers, and restart Always by default.
        walk(definitions, POD_SPEC, &json!({}), &at, causes);
    }
    let policy = pod["restartPolicy"].as_str().unwrap_or("Always");
    if policy != "OnFailure" && policy != "Never" {
        causes.push(not_supported(
            &format!("{at}.restartPolicy"),
            policy,
            &["OnFailure", "Never"],
        ));
    }
}
