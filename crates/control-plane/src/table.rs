//! Server-side printing: `meta.k8s.io/v1` Table answers, so that `kubectl get` shows columns
//! (CRD `additionalPrinterColumns`, a few built-in kinds' usual columns, Name and Age otherwise).

use serde_json::{Value, json};

use crate::meta;
use crate::registry::ResourceType;

/// What each row carries in `object` (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

struct Column {
    name: String,
    ty: String,
    format: String,
    description: String,
    priority: i64,
    json_path: Option<String>,
    /// Built-in printers show 0 for unset counters; CRD printer columns show <none>.
    zero_when_missing: bool,
}

fn col(name: &str, ty: &str, path: Option<&str>) -> Column {
    Column {
        name: name.to_string(),
        ty: ty.to_string(),
        format: if name == "Name" {
            "name".into()
        } else {
            String::new()
        },
        description: String::new(),
        priority: 0,
        json_path: path.map(str::to_string),
        zero_when_missing: ty == "integer",
    }
}

const AGE: &str = ".metadata.creationTimestamp";

fn columns(t: &ResourceType, version: &str) -> Vec<Column> {
    let mut out = vec![Column {
        description: "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names".into(),
        ..col("Name", "string", Some(".metadata.name"))
    }];
    if let Some(v) = t.crd_versions.get(version) {
        if v.printer_columns.is_empty() {
            out.push(col("Age", "date", Some(AGE)));
        }
        for c in &v.printer_columns {
            out.push(Column {
                name: c["name"].as_str().unwrap_or("").to_string(),
                ty: c["type"].as_str().unwrap_or("string").to_string(),
                format: c["format"].as_str().unwrap_or("").to_string(),
                description: c["description"].as_str().unwrap_or("").to_string(),
                priority: c["priority"].as_i64().unwrap_or(0),
                json_path: c["jsonPath"].as_str().map(str::to_string),
                zero_when_missing: false,
            });
        }
        return out;
    }
    if t.group == "apiextensions.k8s.io" && t.plural == "customresourcedefinitions" {
        out.push(col("Created At", "string", Some(AGE)));
        return out;
    }
    // (name, type, path, priority): kubectl shows priority-1 columns with `-o wide` only, after
    // Age, as the apiserver's printers define them.
    const WORKLOAD_WIDE: &[(&str, &str, &str, i64)] = &[
        ("Containers", "string", "#containers", 1),
        ("Images", "string", "#images", 1),
        ("Selector", "string", "#selector", 1),
    ];
    let extra: &[(&str, &str, &str, i64)] = match (t.group.as_str(), t.plural.as_str()) {
        ("", "configmaps") => &[("Data", "integer", "#data", 0)],
        ("", "secrets") => &[
            ("Type", "string", ".type", 0),
            ("Data", "integer", "#data", 0),
        ],
        ("", "namespaces") => &[("Status", "string", ".status.phase", 0)],
        ("", "pods") => &[
            ("Ready", "string", "#pod-ready", 0),
            ("Status", "string", ".status.phase", 0),
            ("Restarts", "integer", "#restarts", 0),
            ("IP", "string", ".status.podIP", 1),
            ("Node", "string", ".spec.nodeName", 1),
            ("Nominated Node", "string", ".status.nominatedNodeName", 1),
            ("Readiness Gates", "string", "#readiness-gates", 1),
        ],
        ("", "services") => &[
            ("Type", "string", ".spec.type", 0),
            ("Cluster-IP", "string", ".spec.clusterIP", 0),
            ("External-IP", "string", "#external-ip", 0),
            ("Port(s)", "string", "#ports", 0),
            ("Selector", "string", "#service-selector", 1),
        ],
        ("", "persistentvolumeclaims") => &[
            ("Status", "string", ".status.phase", 0),
            ("Volume", "string", ".spec.volumeName", 0),
            ("Capacity", "string", ".status.capacity.storage", 0),
            ("Access Modes", "string", "#access-modes", 0),
            ("StorageClass", "string", ".spec.storageClassName", 0),
            (
                "VolumeAttributesClass",
                "string",
                ".spec.volumeAttributesClassName",
                0,
            ),
            ("VolumeMode", "string", ".spec.volumeMode", 1),
        ],
        ("batch", "cronjobs") => &[
            ("Schedule", "string", ".spec.schedule", 0),
            ("Timezone", "string", ".spec.timeZone", 0),
            ("Suspend", "boolean", ".spec.suspend", 0),
            ("Active", "integer", "#active", 0),
            ("Last Schedule", "date", ".status.lastScheduleTime", 0),
            ("Containers", "string", "#containers", 1),
            ("Images", "string", "#images", 1),
            ("Selector", "string", "#selector", 1),
        ],
        ("apps", "deployments") => &[
            ("Ready", "string", "#ready", 0),
            ("Up-to-date", "integer", ".status.updatedReplicas", 0),
            ("Available", "integer", ".status.availableReplicas", 0),
        ],
        ("apps", "statefulsets") => &[("Ready", "string", "#ready", 0)],
        ("apps", "replicasets") => &[
            ("Desired", "integer", ".spec.replicas", 0),
            ("Current", "integer", ".status.replicas", 0),
            ("Ready", "integer", ".status.readyReplicas", 0),
        ],
        ("apps", "daemonsets") => &[
            ("Desired", "integer", ".status.desiredNumberScheduled", 0),
            ("Current", "integer", ".status.currentNumberScheduled", 0),
            ("Ready", "integer", ".status.numberReady", 0),
            ("Up-to-date", "integer", ".status.updatedNumberScheduled", 0),
            ("Available", "integer", ".status.numberAvailable", 0),
            ("Node Selector", "string", "#node-selector", 0),
        ],
        ("batch", "jobs") => &[
            ("Status", "string", "#job-status", 0),
            ("Completions", "string", "#completions", 0),
        ],
        _ => &[],
    };
    let wide: &[(&str, &str, &str, i64)] = match (t.group.as_str(), t.plural.as_str()) {
        ("apps", "deployments" | "replicasets" | "daemonsets") | ("batch", "jobs") => WORKLOAD_WIDE,
        ("apps", "statefulsets") => &WORKLOAD_WIDE[..2],
        _ => &[],
    };
    if t.plural == "events" {
        // kubectl's event columns; the name goes last, at low priority.
        let mut cols = vec![
            col("Last Seen", "date", Some("#last-seen")),
            col("Type", "string", Some(".type")),
            col("Reason", "string", Some(".reason")),
            col("Object", "string", Some("#event-object")),
            col("Message", "string", Some("#event-message")),
        ];
        let mut name = out.remove(0);
        name.priority = 1;
        cols.push(name);
        return cols;
    }
    let with_priority = |(name, ty, path, priority): &(&str, &str, &str, i64)| Column {
        priority: *priority,
        ..col(name, ty, Some(path))
    };
    out.extend(extra.iter().filter(|c| c.3 == 0).map(with_priority));
    out.push(col("Age", "date", Some(AGE)));
    out.extend(
        extra
            .iter()
            .filter(|c| c.3 > 0)
            .chain(wide)
            .map(with_priority),
    );
    out
}

/// The containers of a workload's pod template (a CronJob's is inside its job template).
fn template_containers(o: &Value) -> Vec<&Value> {
    let spec = if o["spec"]["jobTemplate"].is_object() {
        &o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    } else {
        &o["spec"]["template"]["spec"]
    };
    spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect()
}

/// `k=v,k2=v2` of a label map, or null (`<none>`) when empty.
fn label_list(m: &Value) -> Value {
    match m.as_object() {
        Some(m) if !m.is_empty() => json!(
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        ),
        _ => Value::Null,
    }
}

/// A label selector as kubectl prints one: `app=web,tier in (a,b)`.
fn selector_text(sel: &Value) -> Value {
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other}"),
        });
    }
    if parts.is_empty() {
        Value::Null
    } else {
        json!(parts.join(","))
    }
}

/// A Job's Status column: the terminal condition, else Suspended or Running.
fn job_status(o: &Value) -> &'static str {
    let conditions = o["status"]["conditions"].as_array();
    let has = |ty: &str| {
        conditions
            .into_iter()
            .flatten()
            .any(|c| c["type"] == ty && c["status"] == "True")
    };
    if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if has("Suspended") {
        "Suspended"
    } else {
        "Running"
    }
}

/// Renders `objects` as a Table.
pub fn table(
    t: &ResourceType,
    version: &str,
    objects: &[Value],
    resource_version: &str,
    continue_token: Option<&str>,
    include: Include,
) -> Value {
    let cols = columns(t, version);
    let defs: Vec<Value> = cols
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": c.ty, "format": c.format, "description": c.description, "priority": c.priority})
        })
        .collect();
    let now = jiff::Timestamp::now().as_second();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let cells: Vec<Value> = cols.iter().map(|c| cell(o, c, now)).collect();
            let mut row = json!({"cells": cells});
            match include {
                Include::None => {}
                Include::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": o["metadata"],
                    });
                }
                Include::Object => row["object"] = o.clone(),
            }
            row
        })
        .collect();
    let mut metadata = json!({"resourceVersion": resource_version});
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

fn cell(o: &Value, c: &Column, now: i64) -> Value {
    let Some(path) = &c.json_path else {
        return Value::Null;
    };
    let v = match path.as_str() {
        "#data" => json!(
            o["data"].as_object().map_or(0, |m| m.len())
                + o["binaryData"].as_object().map_or(0, |m| m.len())
        ),
        "#ready" => json!(format!(
            "{}/{}",
            o["status"]["readyReplicas"].as_i64().unwrap_or(0),
            o["spec"]["replicas"].as_i64().unwrap_or(1)
        )),
        "#pod-ready" => {
            let statuses = o["status"]["containerStatuses"].as_array();
            let ready = statuses.map_or(0, |s| s.iter().filter(|c| c["ready"] == true).count());
            let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
            json!(format!("{ready}/{total}"))
        }
        "#restarts" => json!(o["status"]["containerStatuses"].as_array().map_or(0, |s| {
            s.iter()
                .filter_map(|c| c["restartCount"].as_i64())
                .sum::<i64>()
        })),
        "#ports" => {
            let ports: Vec<String> = o["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let proto = p["protocol"].as_str().unwrap_or("TCP");
                    match p["nodePort"].as_i64() {
                        Some(n) => format!("{}:{n}/{proto}", p["port"]),
                        None => format!("{}/{proto}", p["port"]),
                    }
                })
                .collect();
            if ports.is_empty() {
                Value::Null
            } else {
                json!(ports.join(","))
            }
        }
        "#last-seen" => {
            let seen = ["lastTimestamp", "deprecatedLastTimestamp", "eventTime"]
                .iter()
                .find_map(|f| o[*f].as_str().map(str::to_string))
                .or_else(|| o["series"]["lastObservedTime"].as_str().map(str::to_string));
            seen.map_or(Value::Null, Value::String)
        }
        "#event-object" => {
            let r = if o["involvedObject"].is_object() {
                &o["involvedObject"]
            } else {
                &o["regarding"]
            };
            json!(format!(
                "{}/{}",
                r["kind"].as_str().unwrap_or("").to_ascii_lowercase(),
                r["name"].as_str().unwrap_or("")
            ))
        }
        "#containers" => {
            let names: Vec<&str> = template_containers(o)
                .iter()
                .filter_map(|c| c["name"].as_str())
                .collect();
            json!(names.join(","))
        }
        "#images" => {
            let images: Vec<&str> = template_containers(o)
                .iter()
                .filter_map(|c| c["image"].as_str())
                .collect();
            json!(images.join(","))
        }
        "#selector" => {
            let sel = if o["spec"]["jobTemplate"].is_object() {
                &o["spec"]["jobTemplate"]["spec"]["selector"]
            } else {
                &o["spec"]["selector"]
            };
            selector_text(sel)
        }
        "#service-selector" => label_list(&o["spec"]["selector"]),
        "#node-selector" => label_list(&o["spec"]["template"]["spec"]["nodeSelector"]),
        "#readiness-gates" => {
            let gates = o["spec"]["readinessGates"].as_array().map_or(0, Vec::len);
            if gates == 0 {
                Value::Null
            } else {
                let ready = o["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| {
                        c["status"] == "True"
                            && o["spec"]["readinessGates"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .any(|g| g["conditionType"] == c["type"])
                    })
                    .count();
                json!(format!("{ready}/{gates}"))
            }
        }
        "#external-ip" => {
            // As kubectl's service printer: load balancer ingress, else external IPs, else
            // <pending> for a LoadBalancer and <none> otherwise.
            let mut ips: Vec<String> = o["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["ip"].as_str().or_else(|| i["hostname"].as_str()))
                .map(str::to_string)
                .collect();
            ips.extend(
                o["spec"]["externalIPs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string),
            );
            match o["spec"]["type"].as_str() {
                _ if !ips.is_empty() => json!(ips.join(",")),
                Some("LoadBalancer") => json!("<pending>"),
                Some("ExternalName") => o["spec"]["externalName"].clone(),
                _ => Value::Null,
            }
        }
        "#access-modes" => {
            let modes: Vec<&str> = o["status"]["accessModes"]
                .as_array()
                .or_else(|| o["spec"]["accessModes"].as_array())
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|m| match m {
                    "ReadWriteOnce" => "RWO",
                    "ReadOnlyMany" => "ROX",
                    "ReadWriteMany" => "RWX",
                    "ReadWriteOncePod" => "RWOP",
                    other => other,
                })
                .collect();
            if modes.is_empty() {
                Value::Null
            } else {
                json!(modes.join(","))
            }
        }
        "#active" => json!(o["status"]["active"].as_array().map_or(0, Vec::len)),
        "#job-status" => json!(job_status(o)),
        "#completions" => {
            let succeeded = o["status"]["succeeded"].as_i64().unwrap_or(0);
            match o["spec"]["completions"].as_i64() {
                Some(n) => json!(format!("{succeeded}/{n}")),
                None => json!(format!(
                    "{succeeded}/1 of {}",
                    o["spec"]["parallelism"].as_i64().unwrap_or(1)
                )),
            }
        }
        "#event-message" => o
            .get("message")
            .or_else(|| o.get("note"))
            .cloned()
            .unwrap_or(Value::Null),
        p => json_path(o, p).unwrap_or(Value::Null),
    };
    // Missing values are null cells, which kubectl prints as <none>.
    if v.is_null() {
        return if c.zero_when_missing {
            json!(0)
        } else {
            Value::Null
        };
    }
    if c.ty == "date" {
        return match v.as_str().and_then(meta::parse_time) {
            Some(ts) => json!(human_duration(now - ts)),
            None => json!("<unknown>"),
        };
    }
    v
}

/// The JSONPath subset printer columns use: `.a.b`, `[n]`, `[?(@.k=="v")]`.
pub fn json_path(o: &Value, path: &str) -> Option<Value> {
    let mut cur = o.clone();
    let mut rest = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            cur = cur.get(&r[..end])?.clone();
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            rest = &r[end + 1..];
            if let Some(filter) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (field, value) = filter.split_once("==")?;
                let value = value.trim().trim_matches(['"', '\'']);
                let field = field.trim();
                cur = cur
                    .as_array()?
                    .iter()
                    .find(|e| {
                        let mut x = *e;
                        for seg in field.split('.') {
                            x = &x[seg];
                        }
                        x.as_str() == Some(value) || x.to_string().as_str() == value
                    })?
                    .clone();
            } else {
                cur = cur.get(inner.parse::<usize>().ok()?)?.clone();
            }
        } else {
            return None;
        }
    }
    Some(cur)
}

/// `kubectl`'s short human duration (`5s`, `3m10s`, `4h`, `2d3h`, ...).
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else if d < 365 * 8 {
        format!("{}y{}d", d / 365, d % 365)
    } else {
        format!("{}y", d / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_path_follows_fields_indices_and_filters() {
        let o = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(json!("True"))
        );
        assert_eq!(
            json_path(&o, ".status.conditions[0].type"),
            Some(json!("A"))
        );
        assert_eq!(json_path(&o, ".spec.missing"), None);
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(190), "3m10s");
        assert_eq!(human_duration(3 * 3600), "3h");
        assert_eq!(human_duration(50 * 3600), "2d2h");
    }
}
