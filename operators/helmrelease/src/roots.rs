//! The built-in expression roots a release sees besides its dependencies (SPEC §5):
//! `service.*` from the UpstartService owning it, `environment.*` from the UpstartEnvironment
//! its namespace belongs to. Pure: the controller fetches, these functions decide.

use std::collections::BTreeMap;

use kube::ResourceExt;
use upstart_api::labels::ENVIRONMENT_LABEL;
use upstart_api::v1alpha1::{HelmRelease, UpstartEnvironment};
use upstart_dag::{EnvironmentInfo, ServiceInfo};

/// The kind of the owner reference that makes a release part of a service.
pub const SERVICE_KIND: &str = "UpstartService";

/// Names of the UpstartServices owning `release` (normally one).
pub fn owning_services(release: &HelmRelease) -> Vec<String> {
    release
        .owner_references()
        .iter()
        .filter(|o| o.kind == SERVICE_KIND)
        .map(|o| o.name.clone())
        .collect()
}

/// `service.*`: the first UpstartService owning the release, if any.
pub fn service_info(release: &HelmRelease) -> Option<ServiceInfo> {
    owning_services(release)
        .into_iter()
        .next()
        .map(|name| ServiceInfo { name })
}

/// The environment a namespace belongs to, from its labels.
pub fn environment_of_namespace(labels: &BTreeMap<String, String>) -> Option<&str> {
    labels
        .get(ENVIRONMENT_LABEL)
        .map(String::as_str)
        .filter(|name| !name.is_empty())
}

/// The namespace an environment owns: `spec.namespace`, default its name.
pub fn environment_namespace(environment: &UpstartEnvironment) -> String {
    environment
        .spec
        .namespace
        .clone()
        .unwrap_or_else(|| environment.name_any())
}

/// `environment.*` for a release of `namespace`. An environment that does not own that
/// namespace gives nothing: a label alone never lets a namespace read another environment's
/// variables (SPEC §7, references never cross namespaces).
pub fn environment_info(
    environment: &UpstartEnvironment,
    namespace: &str,
) -> Option<EnvironmentInfo> {
    (environment_namespace(environment) == namespace).then(|| EnvironmentInfo {
        name: environment.name_any(),
        namespace: namespace.to_owned(),
        variables: environment.spec.variables.clone(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn environment(name: &str, spec: serde_json::Value) -> UpstartEnvironment {
        serde_json::from_value(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "UpstartEnvironment",
            "metadata": {"name": name},
            "spec": spec
        }))
        .expect("valid UpstartEnvironment")
    }

    fn release(owners: serde_json::Value) -> HelmRelease {
        serde_json::from_value(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "HelmRelease",
            "metadata": {"name": "svc-db", "namespace": "pr-1", "ownerReferences": owners},
            "spec": {"chart": "charts/app"}
        }))
        .expect("valid HelmRelease")
    }

    #[test]
    fn service_name_comes_from_the_owning_service() {
        let owned = release(json!([
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "other", "uid": "u0"},
            {"apiVersion": "upstartoperators.upstart.com/v1alpha1", "kind": "UpstartService",
             "name": "checkout", "uid": "u1"}
        ]));
        assert_eq!(
            service_info(&owned),
            Some(ServiceInfo {
                name: "checkout".into()
            })
        );
        assert_eq!(service_info(&release(json!([]))), None);
    }

    #[test]
    fn environment_gives_its_name_namespace_and_variables() {
        let env = environment("pr-1", json!({"variables": {"BRANCH": "feature"}}));
        let info = environment_info(&env, "pr-1").expect("the environment owns pr-1");
        assert_eq!(info.name, "pr-1");
        assert_eq!(info.namespace, "pr-1");
        assert_eq!(info.variables["BRANCH"], "feature");
    }

    #[test]
    fn environment_with_its_own_namespace_name_is_found_there() {
        let env = environment("pr-1", json!({"namespace": "sandbox-1"}));
        assert!(environment_info(&env, "sandbox-1").is_some());
        assert!(environment_info(&env, "pr-1").is_none());
    }

    #[test]
    fn namespace_labelled_for_another_environment_sees_no_environment() {
        let env = environment("pr-1", json!({"variables": {"TOKEN": "t"}}));
        assert!(environment_info(&env, "intruder").is_none());
    }

    #[test]
    fn namespace_environment_comes_from_its_label() {
        let labels = [(ENVIRONMENT_LABEL.to_owned(), "pr-1".to_owned())].into();
        assert_eq!(environment_of_namespace(&labels), Some("pr-1"));
        assert_eq!(environment_of_namespace(&BTreeMap::new()), None);
    }
}
