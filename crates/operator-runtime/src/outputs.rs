//! Reading outputs: the Secrets and ConfigMaps a list of `outputsFrom` sources names, as they
//! are now, for the DAG crate to collect keys from. Here, so the DAG crate stays free of any
//! Kubernetes client, and the HelmRelease and service operators read outputs one way.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};
use upstart_api::v1alpha1::OutputSource;
use upstart_dag::Objects;

/// Which kind of object a failed output read was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    Secret,
    ConfigMap,
}

/// Reads the objects `sources` name in `namespace` (missing ones are simply absent: whether
/// that is a wait is the DAG crate's to say). A failed read names the kind it was for.
pub async fn read_output_objects(
    client: &Client,
    namespace: &str,
    sources: &[OutputSource],
) -> Result<Objects, (OutputKind, kube::Error)> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let mut objects = Objects::new();
    for source in sources {
        if let Some(reference) = &source.secret_ref
            && let Some(secret) = secrets
                .get_opt(&reference.name)
                .await
                .map_err(|e| (OutputKind::Secret, e))?
        {
            objects = objects.with_secret(secret);
        }
        if let Some(reference) = &source.config_map_ref
            && let Some(config_map) = config_maps
                .get_opt(&reference.name)
                .await
                .map_err(|e| (OutputKind::ConfigMap, e))?
        {
            objects = objects.with_config_map(config_map);
        }
    }
    Ok(objects)
}
