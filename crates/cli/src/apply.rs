//! Applying manifests with server-side apply (CRDs first, then waiting until they are
//! established), and waiting for the applied objects to become Ready.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client};

use crate::error::Error;
use crate::manifests::Manifest;
use crate::ready::{Readiness, readiness};

/// The field manager of everything `upstart dev` applies.
pub const FIELD_MANAGER: &str = "upstart-dev";

/// How long a CRD may take to be served.
const CRD_TIMEOUT: Duration = Duration::from_secs(30);

/// How often readiness is checked.
const READY_POLL: Duration = Duration::from_millis(200);

/// An object that was applied.
pub struct Applied {
    /// Where it came from (`FILE#DOC`).
    pub source: String,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    api: Api<DynamicObject>,
}

impl Applied {
    /// `Kind namespace/name` or `Kind name`.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// Applies `manifests` (already in apply order) and returns what was applied. Objects of a
/// namespaced kind without a namespace go to `default`.
pub async fn apply_all(client: &Client, manifests: Vec<Manifest>) -> Result<Vec<Applied>, Error> {
    let mut kinds: HashMap<(String, String), (ApiResource, ApiCapabilities)> = HashMap::new();
    let mut applied = Vec::with_capacity(manifests.len());
    let crds: Vec<String> = manifests
        .iter()
        .filter(|m| m.is_crd())
        .map(|m| m.name().to_owned())
        .collect();
    let mut crds_waited = crds.is_empty();
    for manifest in manifests {
        if !manifest.is_crd() && !crds_waited {
            for name in &crds {
                wait_established(client, name).await?;
            }
            crds_waited = true;
        }
        applied.push(apply_one(client, &mut kinds, manifest).await?);
    }
    if !crds_waited {
        for name in &crds {
            wait_established(client, name).await?;
        }
    }
    Ok(applied)
}

async fn apply_one(
    client: &Client,
    kinds: &mut HashMap<(String, String), (ApiResource, ApiCapabilities)>,
    mut manifest: Manifest,
) -> Result<Applied, Error> {
    let api_version = manifest.api_version().to_owned();
    let kind = manifest.kind().to_owned();
    let name = manifest.name().to_owned();
    let key = (api_version.clone(), kind.clone());
    let (resource, caps) = match kinds.get(&key) {
        Some(found) => found.clone(),
        None => {
            let (group, version) = api_version
                .split_once('/')
                .unwrap_or(("", api_version.as_str()));
            let gvk = GroupVersionKind::gvk(group, version, &kind);
            let found = kube::discovery::pinned_kind(client, &gvk)
                .await
                .map_err(|source| Error::UnknownKind {
                    source_name: manifest.source.clone(),
                    api_version: api_version.clone(),
                    kind: kind.clone(),
                    source: Box::new(source),
                })?;
            kinds.insert(key, found.clone());
            found
        }
    };
    let (api, namespace) = if caps.scope == Scope::Namespaced {
        let ns = manifest.object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        manifest.object["metadata"]["namespace"] = ns.clone().into();
        (
            Api::namespaced_with(client.clone(), &ns, &resource),
            Some(ns),
        )
    } else {
        (Api::all_with(client.clone(), &resource), None)
    };
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&manifest.object),
    )
    .await
    .map_err(|source| Error::Apply {
        source_name: manifest.source.clone(),
        kind: kind.clone(),
        name: name.clone(),
        source: Box::new(source),
    })?;
    let applied = Applied {
        source: manifest.source,
        kind,
        name,
        namespace,
        api,
    };
    tracing::info!(object = %applied.describe(), source = %applied.source, "applied");
    Ok(applied)
}

async fn wait_established(client: &Client, name: &str) -> Result<(), Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let established = await_condition(api, name, conditions::is_crd_established());
    match tokio::time::timeout(CRD_TIMEOUT, established).await {
        Ok(Ok(_)) => {
            tracing::info!(crd = name, "established");
            Ok(())
        }
        Ok(Err(error)) => {
            tracing::warn!(crd = name, %error, "watching the CRD failed");
            Err(Error::CrdNotEstablished {
                name: name.to_owned(),
                timeout: CRD_TIMEOUT,
            })
        }
        Err(_) => Err(Error::CrdNotEstablished {
            name: name.to_owned(),
            timeout: CRD_TIMEOUT,
        }),
    }
}

/// Waits until every applied object that has a `Ready` condition says `Ready=True`; returns
/// at once when none has one.
pub async fn wait_ready(applied: &[Applied], timeout: Duration) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_pending: Vec<String> = Vec::new();
    loop {
        let mut pending = Vec::new();
        let mut with_condition = 0usize;
        for object in applied {
            let current = object
                .api
                .get(&object.name)
                .await
                .map_err(|source| Error::Get {
                    kind: object.kind.clone(),
                    name: object.name.clone(),
                    source: Box::new(source),
                })?;
            let value = serde_json::to_value(&current).unwrap_or_default();
            match readiness(&value) {
                Readiness::NoCondition => {}
                Readiness::Ready => with_condition += 1,
                Readiness::NotReady { status, detail } => {
                    with_condition += 1;
                    let detail = if detail.is_empty() {
                        String::new()
                    } else {
                        format!(" ({detail})")
                    };
                    pending.push(format!("{} is Ready={status}{detail}", object.describe()));
                }
            }
        }
        if pending.is_empty() {
            if with_condition == 0 {
                tracing::info!("no applied object has a Ready condition: nothing to wait for");
            } else {
                tracing::info!(objects = with_condition, "every applied object is Ready");
            }
            return Ok(());
        }
        if pending != last_pending {
            for line in &pending {
                tracing::info!("waiting: {line}");
            }
            last_pending = pending.clone();
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::ReadyTimeout { timeout, pending });
        }
        tokio::time::sleep(READY_POLL).await;
    }
}
