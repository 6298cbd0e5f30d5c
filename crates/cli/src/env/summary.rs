//! One line per environment for `upstart env list`, and the "is it settled" verdict that
//! `create --wait` waits for: pure functions over what the cluster returned.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use upstart_api::labels::KEEP_ANNOTATION;
use upstart_api::v1alpha1::{EnvironmentPhase, UpstartEnvironment};

use super::desired::REQUESTER_ANNOTATION;
use crate::cluster::Live;
use crate::status::short_duration;

/// An environment in a list.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// `metadata.name`.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Who asked for it (the requester annotation; else what the web view reads).
    pub requester: String,
    /// Phase (`Pending` before the operator reports one).
    pub phase: String,
    /// Ready services.
    pub ready_services: i32,
    /// Services in all.
    pub total_services: i32,
    /// Where to reach it, as the operator reports it in `status.endpoints`.
    pub endpoints: Vec<String>,
    /// When it deletes itself (RFC 3339); none: never, or kept.
    pub expires_at: Option<String>,
    /// Whether the keep annotation suspends its expiry.
    pub kept: bool,
    /// When it was created (RFC 3339).
    pub created_at: Option<String>,
}

/// Who asked for an environment: [`REQUESTER_ANNOTATION`], else what the web view shows (its
/// own annotation, then the first field manager).
pub fn requester(environment: &UpstartEnvironment) -> String {
    environment
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REQUESTER_ANNOTATION))
        .filter(|r| !r.is_empty())
        .cloned()
        .unwrap_or_else(|| crate::ui::model::requester(&environment.metadata).name)
}

/// The endpoints an operator reports in `status.endpoints`, one line each: a list of URLs, or
/// of objects naming a service and its `url` (or `host`, `address`, `dns`), or a map from
/// service to URLs. Whatever else it holds is ignored.
pub fn endpoints(status: &Value) -> Vec<String> {
    fn addresses(value: &Value) -> Vec<String> {
        match value {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items.iter().flat_map(addresses).collect(),
            Value::Object(map) => [
                "url",
                "urls",
                "host",
                "hosts",
                "address",
                "addresses",
                "dns",
            ]
            .iter()
            .filter_map(|k| map.get(*k))
            .flat_map(addresses)
            .take(1)
            .collect(),
            _ => Vec::new(),
        }
    }
    let labelled = |label: Option<&str>, value: &Value| -> Vec<String> {
        addresses(value)
            .into_iter()
            .map(|a| match label {
                Some(label) => format!("{label}: {a}"),
                None => a,
            })
            .collect()
    };
    match &status["endpoints"] {
        Value::Array(items) => items
            .iter()
            .flat_map(|item| {
                let label = item
                    .get("service")
                    .or_else(|| item.get("name"))
                    .and_then(Value::as_str);
                labelled(label, item)
            })
            .collect(),
        Value::Object(map) => map
            .iter()
            .flat_map(|(service, value)| labelled(Some(service), value))
            .collect(),
        _ => Vec::new(),
    }
}

/// The list line of an environment; `raw` is its JSON as the cluster returned it (fields this
/// CLI does not type, such as endpoints, are read from it).
pub fn summary(environment: &UpstartEnvironment, raw: &Value) -> Summary {
    let status = environment.status.as_ref();
    Summary {
        name: environment.metadata.name.clone().unwrap_or_default(),
        namespace: crate::cluster::environment_namespace(environment),
        requester: requester(environment),
        phase: status
            .and_then(|s| s.phase)
            .map_or_else(|| "Pending".to_owned(), |p| p.as_str().to_owned()),
        ready_services: status.and_then(|s| s.ready_services).unwrap_or(0),
        total_services: status
            .and_then(|s| s.total_services)
            .unwrap_or_else(|| i32::try_from(environment.spec.services.len()).unwrap_or(0)),
        endpoints: endpoints(&raw["status"]),
        expires_at: status
            .and_then(|s| s.expires_at.as_ref())
            .map(|t| t.0.to_string()),
        kept: environment
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(KEEP_ANNOTATION))
            .is_some_and(|v| v == "true"),
        created_at: environment
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string()),
    }
}

fn until(time: Option<&str>, now: jiff::Timestamp) -> Option<Duration> {
    let time: jiff::Timestamp = time?.parse().ok()?;
    Duration::try_from(now.duration_until(time)).ok()
}

/// The list as a table: NAME REQUESTER PHASE SERVICES ENDPOINTS EXPIRES AGE.
pub fn table(rows: &[Summary], now: jiff::Timestamp) -> String {
    let header = [
        "NAME",
        "REQUESTER",
        "PHASE",
        "SERVICES",
        "ENDPOINTS",
        "EXPIRES",
        "AGE",
    ];
    let mut lines: Vec<[String; 7]> = vec![header.map(str::to_owned)];
    for row in rows {
        let endpoints = match row.endpoints.as_slice() {
            [] => "-".to_owned(),
            [one] => one.clone(),
            [first, rest @ ..] => format!("{first} (+{})", rest.len()),
        };
        let expires = if row.kept {
            "kept".to_owned()
        } else {
            match (&row.expires_at, until(row.expires_at.as_deref(), now)) {
                (None, _) => "never".to_owned(),
                (Some(_), Some(left)) if !left.is_zero() => format!("in {}", short_duration(left)),
                (Some(_), _) => "now".to_owned(),
            }
        };
        let age = row
            .created_at
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .and_then(|t| Duration::try_from(now.duration_since(t)).ok())
            .map_or_else(|| "-".to_owned(), short_duration);
        lines.push([
            row.name.clone(),
            if row.requester.is_empty() {
                "-".to_owned()
            } else {
                row.requester.clone()
            },
            row.phase.clone(),
            format!("{}/{}", row.ready_services, row.total_services),
            endpoints,
            expires,
            age,
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in &lines {
        let mut text = String::new();
        for (c, cell) in line.iter().enumerate() {
            if c + 1 == line.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}   ", width = widths[c]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// Whether an object's status describes its current generation and says Ready.
fn ready_for_generation(
    generation: Option<i64>,
    observed: Option<i64>,
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> bool {
    observed.is_some()
        && observed >= generation
        && conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Ok once the environment, every service and every release of its namespace are Ready for
/// their current generation (so an update is not taken for done while the old generation is
/// still Ready); otherwise what is not, in a few words.
pub fn settled(live: &Live) -> Result<(), String> {
    let Some(environment) = &live.environment else {
        return Err("the environment does not exist".to_owned());
    };
    let status = environment.status.as_ref();
    let mut waiting = Vec::new();
    if !status.is_some_and(|s| {
        ready_for_generation(
            environment.metadata.generation,
            s.observed_generation,
            &s.conditions,
        )
    }) {
        let phase = status.and_then(|s| s.phase);
        // Refused and Sleeping do not pass by themselves: say why, so a pipeline's log does.
        let why = match phase {
            Some(EnvironmentPhase::Refused | EnvironmentPhase::Sleeping) => status
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                .map(|c| format!(" ({}: {})", c.reason, c.message))
                .unwrap_or_default(),
            _ => String::new(),
        };
        waiting.push(format!(
            "environment {}{why}",
            phase.map_or("Pending", |p| p.as_str())
        ));
    }
    for service in &live.services {
        let ready = service.status.as_ref().is_some_and(|s| {
            ready_for_generation(
                service.metadata.generation,
                s.observed_generation,
                &s.conditions,
            )
        });
        if !ready {
            waiting.push(format!(
                "service {}",
                service.metadata.name.as_deref().unwrap_or_default()
            ));
        }
    }
    for release in &live.releases {
        let status = release.status.as_ref();
        let ready = status.is_some_and(|s| {
            ready_for_generation(
                release.metadata.generation,
                s.observed_generation,
                &s.conditions,
            )
        });
        if !ready {
            waiting.push(format!(
                "release {} {}",
                release.metadata.name.as_deref().unwrap_or_default(),
                status
                    .and_then(|s| s.phase)
                    .map_or("Pending", |p| p.as_str())
            ));
        }
    }
    if waiting.is_empty() {
        Ok(())
    } else {
        Err(format!("waiting for {}", waiting.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn environment(value: Value) -> UpstartEnvironment {
        serde_json::from_value(value).expect("environment")
    }

    #[test]
    fn waiting_on_a_refused_environment_says_why() {
        let live = Live {
            environment: Some(environment(
                json!({"metadata": {"name": "pr-2"}, "spec": {}, "status": {
                    "phase": "Refused",
                    "conditions": [{"type": "Ready", "status": "False", "reason": "CapReached",
                                    "message": "requester ann has 1 environments",
                                    "lastTransitionTime": "2026-12-07T10:00:00Z"}]
                }}),
            )),
            namespace: "pr-2".into(),
            services: vec![],
            releases: vec![],
            planned: Default::default(),
        };
        assert_eq!(
            settled(&live),
            Err(
                "waiting for environment Refused (CapReached: requester ann has 1 environments)"
                    .to_owned()
            )
        );
    }

    #[test]
    fn endpoints_are_read_from_lists_objects_and_maps() {
        assert_eq!(
            endpoints(&json!({"endpoints": ["https://a.example.com"]})),
            ["https://a.example.com"]
        );
        assert_eq!(
            endpoints(&json!({"endpoints": [
                {"service": "shop", "url": "https://shop.pr-1.example.com"},
                {"service": "db", "dns": "postgres.pr-1.svc.cluster.local"}]})),
            [
                "shop: https://shop.pr-1.example.com",
                "db: postgres.pr-1.svc.cluster.local"
            ]
        );
        assert_eq!(
            endpoints(&json!({"endpoints": {"shop": ["http://1.2.3.4"]}})),
            ["shop: http://1.2.3.4"]
        );
        assert!(endpoints(&json!({})).is_empty());
    }

    #[test]
    fn the_list_shows_requester_phase_services_endpoints_expiry_and_age() {
        let env = environment(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1", "kind": "UpstartEnvironment",
            "metadata": {"name": "pr-1", "creationTimestamp": "2026-01-01T00:00:00Z",
                         "annotations": {REQUESTER_ANNOTATION: "alice"}},
            "spec": {"ttl": "72h"},
            "status": {"phase": "Ready", "readyServices": 2, "totalServices": 2,
                       "expiresAt": "2026-01-04T00:00:00Z"}
        }));
        let raw = serde_json::to_value(&env).unwrap();
        let mut raw_with_endpoints = raw.clone();
        raw_with_endpoints["status"]["endpoints"] =
            json!([{"service": "shop", "url": "https://shop.pr-1.example.com"}]);
        let mut kept = env.clone();
        kept.metadata.name = Some("pr-2".into());
        kept.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(KEEP_ANNOTATION.into(), "true".into());
        let rows = [summary(&env, &raw_with_endpoints), summary(&kept, &raw)];
        assert_eq!(rows[0].requester, "alice");
        let now: jiff::Timestamp = "2026-01-01T02:00:00Z".parse().unwrap();
        assert_eq!(
            table(&rows, now),
            "\
NAME   REQUESTER   PHASE   SERVICES   ENDPOINTS                             EXPIRES    AGE
pr-1   alice       Ready   2/2        shop: https://shop.pr-1.example.com   in 70h0m   2h0m
pr-2   alice       Ready   2/2        -                                     kept       2h0m
"
        );
    }
}
