//! Which environments a change wakes (STYLE pattern 5): pure functions over the environments
//! of the cache. A service or release in an environment's namespace wakes that environment; a
//! namespace wakes its owner; a catalog template wakes the environments using it (and the
//! Failed ones, which may be missing it).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::runtime::reflector::ObjectRef;
use upstart_api::labels::ENVIRONMENT_LABEL;
use upstart_api::v1alpha1::{EnvironmentPhase, UpstartEnvironment};

use crate::children::namespace_name;

/// Environments whose namespace is `namespace`.
pub fn environments_of_namespace(
    environments: &[Arc<UpstartEnvironment>],
    namespace: &str,
) -> Vec<ObjectRef<UpstartEnvironment>> {
    environments
        .iter()
        .filter(|e| namespace_name(e) == namespace)
        .map(|e| ObjectRef::from_obj(e.as_ref()))
        .collect()
}

/// Environments with a service made from the catalog template `template` (listed, or added
/// by the closure), and the Failed ones: a template published or fixed may be what they miss.
pub fn users_of_template(
    environments: &[Arc<UpstartEnvironment>],
    template: &str,
) -> Vec<ObjectRef<UpstartEnvironment>> {
    environments
        .iter()
        .filter(|e| {
            let listed = e
                .spec
                .services
                .iter()
                .any(|s| s.template.as_ref().is_some_and(|t| t.name == template));
            let status = e.status.as_ref();
            let copied = status.is_some_and(|s| s.templates.iter().any(|t| t.template == template));
            let failed = status.is_some_and(|s| s.phase == Some(EnvironmentPhase::Failed));
            listed || copied || failed
        })
        .map(|e| ObjectRef::from_obj(e.as_ref()))
        .collect()
}

/// Environments woken by a change of an UpstartService or HelmRelease in `namespace`: the
/// users of a catalog template, else the environment of the namespace, plus the environment
/// its label names.
pub fn woken_by_member(
    environments: &[Arc<UpstartEnvironment>],
    catalog_namespace: &str,
    namespace: Option<&str>,
    name: &str,
    labels: &BTreeMap<String, String>,
    is_service: bool,
) -> Vec<ObjectRef<UpstartEnvironment>> {
    let Some(namespace) = namespace else {
        return Vec::new();
    };
    let mut woken = if is_service && namespace == catalog_namespace {
        users_of_template(environments, name)
    } else {
        environments_of_namespace(environments, namespace)
    };
    if let Some(environment) = labels.get(ENVIRONMENT_LABEL) {
        woken.push(ObjectRef::new(environment));
    }
    woken.sort_by(|a, b| a.name.cmp(&b.name));
    woken.dedup();
    woken
}

/// The environments owning a namespace (by owner reference or label).
pub fn owners_of_namespace(
    owners: &[OwnerReference],
    labels: &BTreeMap<String, String>,
) -> Vec<ObjectRef<UpstartEnvironment>> {
    let mut woken: Vec<ObjectRef<UpstartEnvironment>> = owners
        .iter()
        .filter(|o| o.kind == "UpstartEnvironment")
        .map(|o| ObjectRef::new(&o.name))
        .collect();
    if let Some(environment) = labels.get(ENVIRONMENT_LABEL) {
        woken.push(ObjectRef::new(environment));
    }
    woken.sort_by(|a, b| a.name.cmp(&b.name));
    woken.dedup();
    woken
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn env(name: &str, spec: serde_json::Value) -> Arc<UpstartEnvironment> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "upstartoperators.upstart.com/v1alpha1",
                "kind": "UpstartEnvironment",
                "metadata": {"name": name},
                "spec": spec,
            }))
            .expect("valid environment"),
        )
    }

    fn names(refs: Vec<ObjectRef<UpstartEnvironment>>) -> Vec<String> {
        refs.into_iter().map(|r| r.name).collect()
    }

    fn environments() -> Vec<Arc<UpstartEnvironment>> {
        vec![
            env(
                "a",
                json!({"services": [{"name": "x", "template": {"name": "web"}}]}),
            ),
            env("b", json!({"namespace": "bee"})),
            env(
                "c",
                json!({"services": [{"name": "web", "spec": {"helmReleases": {}}}]}),
            ),
        ]
    }

    #[test]
    fn member_in_an_environment_namespace_wakes_that_environment() {
        let woken = woken_by_member(
            &environments(),
            "upstart-catalog",
            Some("bee"),
            "web",
            &BTreeMap::new(),
            true,
        );
        assert_eq!(names(woken), ["b"]);
    }

    #[test]
    fn catalog_template_change_wakes_only_the_environments_using_it() {
        let woken = woken_by_member(
            &environments(),
            "upstart-catalog",
            Some("upstart-catalog"),
            "web",
            &BTreeMap::new(),
            true,
        );
        assert_eq!(names(woken), ["a"]);
    }

    #[test]
    fn catalog_template_change_wakes_environments_that_copied_it_or_failed() {
        let mut added = (*env("d", json!({}))).clone();
        added.status = Some(
            serde_json::from_value(json!({
                "templates": [{"service": "auth", "template": "auth", "revision": "sha256:1"}]
            }))
            .expect("status"),
        );
        let mut failed = (*env("e", json!({}))).clone();
        failed.status = Some(serde_json::from_value(json!({"phase": "Failed"})).expect("status"));
        let mut all = environments();
        all.extend([Arc::new(added), Arc::new(failed)]);
        let woken = woken_by_member(
            &all,
            "upstart-catalog",
            Some("upstart-catalog"),
            "auth",
            &BTreeMap::new(),
            true,
        );
        assert_eq!(names(woken), ["d", "e"]);
    }

    #[test]
    fn environment_label_wakes_the_environment_it_names() {
        let labels = BTreeMap::from([(ENVIRONMENT_LABEL.to_owned(), "z".to_owned())]);
        let woken = woken_by_member(&environments(), "cat", Some("a"), "r", &labels, false);
        assert_eq!(names(woken), ["a", "z"]);
    }

    #[test]
    fn member_elsewhere_wakes_nothing() {
        let woken = woken_by_member(
            &environments(),
            "cat",
            Some("other"),
            "r",
            &BTreeMap::new(),
            false,
        );
        assert!(woken.is_empty());
    }

    #[test]
    fn namespace_wakes_its_owner() {
        let owner = OwnerReference {
            api_version: "upstartoperators.upstart.com/v1alpha1".into(),
            kind: "UpstartEnvironment".into(),
            name: "a".into(),
            uid: "u".into(),
            ..OwnerReference::default()
        };
        let other = OwnerReference {
            kind: "Deployment".into(),
            name: "d".into(),
            ..OwnerReference::default()
        };
        assert_eq!(
            names(owners_of_namespace(&[owner, other], &BTreeMap::new())),
            ["a"]
        );
    }
}
