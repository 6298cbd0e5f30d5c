//! Applying manifests with server-side apply: CustomResourceDefinitions first (then waiting
//! until they are established), Namespaces, then the rest, each kind found through discovery.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client};

use crate::error::Error;
use crate::manifests::{Manifest, apply_order, read_files};

/// How long a CRD may take to be served.
const CRD_TIMEOUT: Duration = Duration::from_secs(30);

/// An object that was applied.
#[derive(Clone)]
pub struct Applied {
    /// Where it came from (`FILE#DOC`).
    pub source: String,
    /// Its `apiVersion`.
    pub api_version: String,
    /// Its kind.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its namespace; `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    api: Api<DynamicObject>,
    resource: ApiResource,
}

impl std::fmt::Debug for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applied")
            .field("source", &self.source)
            .field("object", &self.describe())
            .finish_non_exhaustive()
    }
}

impl Applied {
    /// `Kind namespace/name` or `Kind name`.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }

    /// Its API group (empty for the core group).
    pub fn group(&self) -> &str {
        self.api_version
            .split_once('/')
            .map_or("", |(group, _)| group)
    }

    /// The API of its kind, in its namespace for namespaced kinds.
    pub fn api(&self) -> &Api<DynamicObject> {
        &self.api
    }

    /// Its kind as discovery found it (plural, version, …).
    pub fn resource(&self) -> &ApiResource {
        &self.resource
    }

    /// Reads it back as it is now.
    pub async fn get(&self) -> Result<DynamicObject, Error> {
        self.api.get(&self.name).await.map_err(|source| Error::Get {
            kind: self.kind.clone(),
            name: self.name.clone(),
            source: Box::new(source),
        })
    }
}

/// Reads `files` and applies them with [`apply_manifests`].
pub async fn apply_files<P: AsRef<Path>>(
    client: &Client,
    files: &[P],
    field_manager: &str,
    default_namespace: &str,
) -> Result<Vec<Applied>, Error> {
    let manifests = read_files(files)?;
    apply_manifests(client, manifests, field_manager, default_namespace).await
}

/// Applies `manifests` with server-side apply (forced) under `field_manager`, in apply order:
/// CustomResourceDefinitions first, then, once they are established, Namespaces, then the rest,
/// each group in the given order. Objects of a namespaced kind without a namespace go to
/// `default_namespace`. Returns what was applied, in the order it was applied.
pub async fn apply_manifests(
    client: &Client,
    manifests: Vec<Manifest>,
    field_manager: &str,
    default_namespace: &str,
) -> Result<Vec<Applied>, Error> {
    let manifests = apply_order(manifests);
    let mut kinds: HashMap<(String, String), (ApiResource, ApiCapabilities)> = HashMap::new();
    let mut applied = Vec::with_capacity(manifests.len());
    let crds: Vec<String> = manifests
        .iter()
        .filter(|m| m.is_crd())
        .map(|m| m.name().to_owned())
        .collect();
    let mut crds_waited = crds.is_empty();
    let target = Target {
        client,
        field_manager,
        default_namespace,
    };
    for manifest in manifests {
        if !manifest.is_crd() && !crds_waited {
            for name in &crds {
                wait_established(client, name).await?;
            }
            crds_waited = true;
        }
        applied.push(target.apply_one(&mut kinds, manifest).await?);
    }
    if !crds_waited {
        for name in &crds {
            wait_established(client, name).await?;
        }
    }
    Ok(applied)
}

/// Where and as whom objects are applied.
struct Target<'a> {
    client: &'a Client,
    field_manager: &'a str,
    default_namespace: &'a str,
}

impl Target<'_> {
    async fn apply_one(
        &self,
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
                let found = kube::discovery::pinned_kind(self.client, &gvk)
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
                .unwrap_or(self.default_namespace)
                .to_owned();
            manifest.object["metadata"]["namespace"] = ns.clone().into();
            (
                Api::namespaced_with(self.client.clone(), &ns, &resource),
                Some(ns),
            )
        } else {
            (Api::all_with(self.client.clone(), &resource), None)
        };
        api.patch(
            &name,
            &PatchParams::apply(self.field_manager).force(),
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
            api_version,
            kind,
            name,
            namespace,
            api,
            resource,
        };
        tracing::info!(object = %applied.describe(), source = %applied.source, "applied");
        Ok(applied)
    }
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
