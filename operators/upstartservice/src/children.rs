//! The child HelmReleases of a service, built from its plan, and the children that no longer
//! belong to any key (orphans). Pure.

use std::collections::BTreeMap;

use kube::{Resource, ResourceExt};
use upstart_api::labels::{
    ENVIRONMENT_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, RELEASE_KEY_LABEL, SERVICE_LABEL,
};
use upstart_api::names::bounded_label;
use upstart_api::v1alpha1::{HelmRelease, UpstartService};

use crate::plan::KeyPlan;

/// The child HelmRelease of `key`, as it is applied: labels naming the service and the key,
/// owned by the service (controller, blocking its foreground deletion), with the planned spec.
pub fn build_child(service: &UpstartService, key: &str, plan: &KeyPlan) -> HelmRelease {
    let mut labels = BTreeMap::from([
        (SERVICE_LABEL.to_owned(), service.name_any()),
        (RELEASE_KEY_LABEL.to_owned(), bounded_label(key)),
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
    ]);
    // Services created by an environment pass its name on, for those who select by it.
    if let Some(environment) = service.labels().get(ENVIRONMENT_LABEL) {
        labels.insert(ENVIRONMENT_LABEL.to_owned(), environment.clone());
    }
    let mut child = HelmRelease::new(&plan.child, plan.spec.clone());
    child.metadata.namespace = service.namespace();
    child.metadata.labels = Some(labels);
    child.metadata.owner_references = service.controller_owner_ref(&()).map(|mut owner| {
        // A foreground deletion of the service waits for its children.
        owner.block_owner_deletion = Some(true);
        vec![owner]
    });
    child
}

/// Whether `release` is a child of `service`: labelled with its name and owned by it (the
/// uid, so a child of an earlier service of the same name is recognised too when its owner
/// reference is gone).
pub fn is_child_of(release: &HelmRelease, service: &UpstartService) -> bool {
    release.namespace() == service.namespace()
        && release.labels().get(SERVICE_LABEL) == Some(&service.name_any())
}

/// The children of `service` among `releases` whose key is no longer in its spec: they are
/// deleted (their finalizer waits for their dependents first, SPEC §2.8). Children of keys
/// that are only withheld (a cycle, a conflict) are not orphans.
pub fn orphans<'a>(service: &UpstartService, releases: &'a [HelmRelease]) -> Vec<&'a HelmRelease> {
    let expected: Vec<String> = service
        .spec
        .helm_releases
        .keys()
        .map(|key| upstart_api::names::child_name(&service.name_any(), key))
        .collect();
    let uid = service.uid();
    releases
        .iter()
        .filter(|r| is_child_of(r, service))
        .filter(|r| !expected.contains(&r.name_any()))
        // Owned by this service, or by nothing any more: never another object's release.
        .filter(|r| {
            r.owner_references().is_empty()
                || r.owner_references()
                    .iter()
                    .any(|o| Some(&o.uid) == uid.as_ref())
        })
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .collect()
}

/// Whether a child has never been applied (no applied render, no inventory): deleting it
/// removes nothing that runs. A withheld key's child in that state is deleted, so nothing on a
/// cycle or in a conflict even waits to be installed; one that runs is left alone.
pub fn never_installed(release: &HelmRelease) -> bool {
    release
        .status
        .as_ref()
        .is_none_or(|s| s.applied_digest.is_none() && s.inventory.is_empty())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plan::plan;

    fn service(releases: serde_json::Value) -> UpstartService {
        serde_json::from_value(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "UpstartService",
            "metadata": {
                "name": "example-service", "namespace": "pr-1", "uid": "u-1",
                "labels": {ENVIRONMENT_LABEL: "pr-1"}
            },
            "spec": {"helmReleases": releases}
        }))
        .expect("valid UpstartService")
    }

    #[test]
    fn child_is_labelled_owned_and_carries_the_planned_spec() {
        let svc = service(json!({
            "postgres": {"chart": "c/postgres", "version": "0.1.3", "values": {"dbName": "x"}},
            "exampleService": {"chart": "c/app", "dependencies": [{"name": "postgres"}]}
        }));
        let plan = plan(&svc, &[], &[]);
        let child = build_child(&svc, "exampleService", &plan.keys["exampleService"]);
        let value = serde_json::to_value(&child).expect("serialisable");
        assert_eq!(value["metadata"]["name"], "example-service-example-service");
        assert_eq!(value["metadata"]["namespace"], "pr-1");
        assert_eq!(
            value["metadata"]["labels"],
            json!({
                SERVICE_LABEL: "example-service",
                RELEASE_KEY_LABEL: "exampleService",
                MANAGED_BY_LABEL: MANAGED_BY_VALUE,
                ENVIRONMENT_LABEL: "pr-1",
            })
        );
        let owner = &value["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "UpstartService");
        assert_eq!(owner["name"], "example-service");
        assert_eq!(owner["uid"], "u-1");
        assert_eq!(owner["controller"], true);
        assert_eq!(owner["blockOwnerDeletion"], true);
        assert_eq!(
            value["spec"],
            json!({
                "chart": "c/app",
                "releaseName": "example-service",
                "dependencies": [{"name": "example-service-postgres", "kind": "HelmRelease", "as": "postgres"}]
            })
        );
        let postgres = build_child(&svc, "postgres", &plan.keys["postgres"]);
        assert_eq!(postgres.spec.values, Some(json!({"dbName": "x"})));
        assert_eq!(postgres.spec.version.as_deref(), Some("0.1.3"));
    }

    fn child(name: &str, owner_uid: Option<&str>) -> HelmRelease {
        let mut object = json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": "pr-1", "labels": {SERVICE_LABEL: "example-service"}},
            "spec": {"chart": "c/app"}
        });
        if let Some(uid) = owner_uid {
            object["metadata"]["ownerReferences"] = json!([{
                "apiVersion": "upstartoperators.upstart.com/v1alpha1",
                "kind": "UpstartService", "name": "example-service", "uid": uid, "controller": true
            }]);
        }
        serde_json::from_value(object).expect("valid HelmRelease")
    }

    #[test]
    fn child_of_a_removed_key_is_an_orphan_and_current_children_are_not() {
        let svc = service(json!({"postgres": {"chart": "c/postgres"}}));
        let releases = vec![
            child("example-service-postgres", Some("u-1")),
            child("example-service-redis", Some("u-1")),
            child("example-service-foreign", Some("u-other")),
        ];
        let names: Vec<String> = orphans(&svc, &releases)
            .iter()
            .map(|r| r.name_any())
            .collect();
        assert_eq!(names, ["example-service-redis"]);
    }

    #[test]
    fn child_without_an_applied_render_was_never_installed() {
        let mut release = child("example-service-postgres", Some("u-1"));
        assert!(never_installed(&release));
        release.status = Some(
            serde_json::from_value(json!({"phase": "WaitingForDependencies"})).expect("valid"),
        );
        assert!(never_installed(&release));
        release.status =
            Some(serde_json::from_value(json!({"appliedDigest": "sha256:a"})).expect("valid"));
        assert!(!never_installed(&release));
    }
}
