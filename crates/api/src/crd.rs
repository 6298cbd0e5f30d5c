//! The CustomResourceDefinitions, generated from the types: the one source for `crds/`, the
//! operators' chart and the local control plane.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, ValidationRule,
};
use kube::CustomResourceExt;

use crate::v1alpha1::{HelmRelease, UpstartEnvironment, UpstartService};

/// The three CRDs, in the order they are installed.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        helm_release_crd(),
        upstart_service_crd(),
        upstart_environment_crd(),
    ]
}

/// HelmRelease. Its dependencies can only name objects, so they must be object names; the
/// shared spec type allows the camelCase sibling keys an UpstartService uses.
pub fn helm_release_crd() -> CustomResourceDefinition {
    let mut crd = HelmRelease::crd();
    if let Some(spec) = spec_schema(&mut crd) {
        add_rule(
            spec,
            "!has(self.dependencies) || self.dependencies.all(d, d.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'))",
            "dependencies of a HelmRelease name HelmReleases or UpstartServices of its namespace: lowercase DNS-1123 names",
            Some(".dependencies"),
        );
    }
    crd
}

/// UpstartService.
pub fn upstart_service_crd() -> CustomResourceDefinition {
    UpstartService::crd()
}

/// UpstartEnvironment. Without `spec.namespace`, the name is the namespace, so it must be a
/// DNS-1123 label.
pub fn upstart_environment_crd() -> CustomResourceDefinition {
    let mut crd = UpstartEnvironment::crd();
    if let Some(root) = root_schema(&mut crd) {
        add_rule(
            root,
            "has(self.spec.namespace) || (self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))",
            "without spec.namespace the environment's name is its namespace: it must be a DNS-1123 label of at most 63 characters",
            None,
        );
    }
    crd
}

/// The CRD as YAML, with a header saying where it comes from.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_yaml_ng::Error> {
    Ok(format!(
        "# Generated from crates/api by `cargo run -p upstart-api --bin crdgen`. Do not edit.\n{}",
        serde_yaml_ng::to_string(crd)?
    ))
}

/// The file name of a CRD in `crds/`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

fn root_schema(crd: &mut CustomResourceDefinition) -> Option<&mut JSONSchemaProps> {
    crd.spec
        .versions
        .first_mut()?
        .schema
        .as_mut()?
        .open_api_v3_schema
        .as_mut()
}

fn spec_schema(crd: &mut CustomResourceDefinition) -> Option<&mut JSONSchemaProps> {
    root_schema(crd)?.properties.as_mut()?.get_mut("spec")
}

fn add_rule(schema: &mut JSONSchemaProps, rule: &str, message: &str, field_path: Option<&str>) {
    schema
        .x_kubernetes_validations
        .get_or_insert_with(Vec::new)
        .push(ValidationRule {
            rule: rule.to_owned(),
            message: Some(message.to_owned()),
            field_path: field_path.map(str::to_owned),
            ..ValidationRule::default()
        });
}
