//! The resolved wiring, for people: the environment of the Deployments of every release that
//! consumes outputs, secrets masked. Read once ([`Snapshot::read`]), rendered by a pure
//! function. (The tree of environments, services and releases is `upstart status`'s.)

use std::fmt::Write as _;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::EnvVar;
use kube::api::{DynamicObject, ListParams};
use kube::discovery::ApiResource;
use kube::{Api, Client};
use serde_json::Value;
use upstart_api::v1alpha1::HelmRelease;

use crate::error::Error;

/// Variable names whose values are never shown (matched case-insensitively, anywhere in the
/// name).
const SECRET_NAME_PARTS: [&str; 5] = ["PASSWORD", "KEY", "TOKEN", "SECRET", "CREDENTIAL"];

/// What stands for a masked value.
const MASK: &str = "********";

/// The HelmReleases and the Deployments of a cluster, read at one moment (releases as JSON, so
/// that one the typed API would refuse still shows).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every HelmRelease, by namespace and name.
    pub releases: Vec<Value>,
    /// Every Deployment.
    pub deployments: Vec<Deployment>,
}

impl Snapshot {
    /// Reads every HelmRelease and Deployment of the cluster.
    pub async fn read(client: &Client) -> Result<Snapshot, Error> {
        let deployments = Api::<Deployment>::all(client.clone())
            .list(&ListParams::default())
            .await
            .map_err(|source| list_error("Deployment", source))?
            .items;
        Ok(Snapshot {
            releases: list_all(client, ApiResource::erase::<HelmRelease>(&())).await?,
            deployments,
        })
    }
}

fn list_error(kind: &str, source: kube::Error) -> Error {
    Error::Get {
        kind: kind.to_owned(),
        name: "(all)".to_owned(),
        source: Box::new(source),
    }
}

async fn list_all(client: &Client, resource: ApiResource) -> Result<Vec<Value>, Error> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|source| list_error(&resource.kind, source))?;
    let mut items: Vec<Value> = list
        .items
        .iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        .collect();
    items.sort_by_key(|o| (namespace_of(o).to_owned(), name_of(o).to_owned()));
    Ok(items)
}

fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

fn namespace_of(object: &Value) -> &str {
    object["metadata"]["namespace"].as_str().unwrap_or_default()
}

/// `Phase`, or what the `Ready` condition says when there is no phase, plus the reason and
/// message of a `Ready` condition that is not `True`.
fn state(object: &Value) -> String {
    let ready = object["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    let mut text = match (object["status"]["phase"].as_str(), ready) {
        (Some(phase), _) => phase.to_owned(),
        (None, Some(c)) => format!("Ready={}", c["status"].as_str().unwrap_or("Unknown")),
        (None, None) => "no status yet".to_owned(),
    };
    if let Some(c) = ready.filter(|c| c["status"] != "True") {
        let why: Vec<&str> = [&c["reason"], &c["message"]]
            .into_iter()
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty())
            .collect();
        if !why.is_empty() {
            let _ = write!(text, " ({})", why.join(": "));
        }
    }
    text
}

/// Whether a variable of this name holds something that must not be shown.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_NAME_PARTS.iter().any(|part| upper.contains(part))
}

/// The value as it may be shown: masked for a secret-looking name, and with the password of a
/// URL's user information (`scheme://user:password@host`) masked otherwise.
pub fn masked_value(name: &str, value: &str) -> String {
    if is_secret_name(name) {
        return MASK.to_owned();
    }
    mask_url_password(value)
}

fn mask_url_password(value: &str) -> String {
    let Some(scheme_end) = value.find("://") else {
        return value.to_owned();
    };
    let authority_start = scheme_end + 3;
    let rest = &value[authority_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    // The last `@` of the authority ends the user information (a password may contain `@`
    // only percent-encoded, but be lenient).
    let Some(at) = rest[..authority_end].rfind('@') else {
        return value.to_owned();
    };
    let Some(colon) = rest[..at].find(':') else {
        return value.to_owned();
    };
    format!(
        "{}{MASK}{}",
        &value[..authority_start + colon + 1],
        &value[authority_start + at..]
    )
}

/// One variable as shown: `NAME=value` (masked), or where a `valueFrom` takes it from.
fn show_var(var: &EnvVar) -> String {
    if let Some(value) = &var.value {
        return format!("{}={}", var.name, masked_value(&var.name, value));
    }
    let from = var.value_from.as_ref();
    let source = if let Some(s) = from.and_then(|f| f.secret_key_ref.as_ref()) {
        format!("from Secret {} key {}", s.name, s.key)
    } else if let Some(c) = from.and_then(|f| f.config_map_key_ref.as_ref()) {
        format!("from ConfigMap {} key {}", c.name, c.key)
    } else if let Some(f) = from.and_then(|f| f.field_ref.as_ref()) {
        format!("from field {}", f.field_path)
    } else {
        "(empty)".to_owned()
    };
    format!("{} {source}", var.name)
}

/// The resolved wiring: for every HelmRelease that depends on something (outside the catalog
/// namespace), the environment of each container of its Deployments, secrets masked.
pub fn wiring(snapshot: &Snapshot, catalog_namespace: &str) -> String {
    let mut out = String::new();
    for release in &snapshot.releases {
        let namespace = namespace_of(release);
        let consumes = release["spec"]["dependencies"]
            .as_array()
            .is_some_and(|d| !d.is_empty());
        if !consumes || namespace == catalog_namespace {
            continue;
        }
        let name = name_of(release);
        let release_label = upstart_api::names::release_label_value(namespace, name);
        let deployments = snapshot.deployments.iter().filter(|d| {
            d.metadata.namespace.as_deref() == Some(namespace)
                && d.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(upstart_release_engine::manifests::RELEASE_LABEL))
                    == Some(&release_label)
        });
        let mut shown = false;
        for deployment in deployments {
            let containers = deployment
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .map(|s| s.containers.as_slice())
                .unwrap_or_default();
            for container in containers {
                let _ = writeln!(
                    out,
                    "HelmRelease {namespace}/{name} -> Deployment {} (container {}):",
                    deployment.metadata.name.as_deref().unwrap_or_default(),
                    container.name
                );
                let vars = container.env.as_deref().unwrap_or_default();
                if vars.is_empty() {
                    out.push_str("  (no env)\n");
                }
                for var in vars {
                    let _ = writeln!(out, "  {}", show_var(var));
                }
                shown = true;
            }
        }
        if !shown {
            let _ = writeln!(
                out,
                "HelmRelease {namespace}/{name}: no Deployment (yet): {}",
                state(release)
            );
        }
    }
    if out.is_empty() {
        out.push_str("(no HelmRelease with dependencies)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;
    use serde_json::json;

    #[test]
    fn secret_looking_names_are_masked_whatever_their_case() {
        for name in [
            "POSTGRES_PASSWORD",
            "BUGSNAG_API_KEY",
            "LAUNCHDARKLY_SDK_KEY",
            "github_token",
            "ClientSecret",
        ] {
            assert_eq!(masked_value(name, "hunter22"), MASK, "{name}");
        }
        assert_eq!(masked_value("REDIS_HOST", "redis"), "redis");
    }

    #[test]
    fn the_password_of_a_url_is_masked_and_the_rest_kept() {
        assert_eq!(
            masked_value(
                "DATABASE_URL",
                "postgres://app:s3cr3t@db.ns:5432/my_service"
            ),
            "postgres://app:********@db.ns:5432/my_service"
        );
        assert_eq!(
            masked_value("X", "redis://redis.ns.svc:6379/1"),
            "redis://redis.ns.svc:6379/1"
        );
        assert_eq!(
            masked_value("X", "https://user@host/p:a@b"),
            "https://user@host/p:a@b"
        );
        assert_eq!(masked_value("X", "not a url: a@b"), "not a url: a@b");
    }

    fn release(ns: &str, name: &str, phase: &str, deps: bool) -> Value {
        json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"dependencies": if deps { json!([{"name": "db"}]) } else { json!([]) }},
            "status": {"phase": phase, "conditions": [
                {"type": "Ready", "status": if phase == "Ready" { "True" } else { "False" },
                 "reason": "WaitingForDependencies", "message": "waiting for db"}
            ]}
        })
    }

    #[test]
    fn wiring_shows_the_env_of_the_deployments_of_consuming_releases_masked() {
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "svc-app", "namespace": "ns", "labels": {
                upstart_release_engine::manifests::RELEASE_LABEL: "ns.svc-app"
            }},
            "spec": {"selector": {}, "template": {"spec": {"containers": [{
                "name": "app",
                "env": [
                    {"name": "DATABASE_URL", "value": "postgres://u:pw@db:5432/x"},
                    {"name": "API_KEY", "value": "k-123"},
                    {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
                ]
            }]}}}
        }))
        .unwrap();
        let snapshot = Snapshot {
            releases: vec![
                release("ns", "svc-app", "Ready", true),
                release("ns", "db", "Ready", false),
                release("ns", "waiting", "Pending", true),
            ],
            deployments: vec![deployment],
        };
        let text = wiring(&snapshot, "upstart-catalog");
        assert_eq!(
            text,
            "HelmRelease ns/svc-app -> Deployment svc-app (container app):\n\
             \x20 DATABASE_URL=postgres://u:********@db:5432/x\n\
             \x20 API_KEY=********\n\
             \x20 FROM_SECRET from Secret s key k\n\
             HelmRelease ns/waiting: no Deployment (yet): Pending (WaitingForDependencies: waiting for db)\n"
        );
        assert!(!text.contains("k-123") && !text.contains(":pw@"));
    }
}
