//! Which services a change wakes (STYLE pattern 5): pure functions over the services of the
//! cache.
//!
//! - A HelmRelease change wakes the service owning it (its status follows the child's), the
//!   services whose dependencies name it (a dependency created later is resolved at once), and
//!   the services with a release of the same `.Release.Name` (a conflict may start or end).
//! - An UpstartService change wakes every other service of its namespace: dependency names,
//!   cycles and conflicts are properties of the whole namespace, and a service's Ready flip is
//!   what its dependents report on. Namespaces hold few services, and a woken service whose
//!   status does not change writes nothing, so this settles at once.

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use upstart_api::labels::{ENVIRONMENT_LABEL, SERVICE_LABEL};
use upstart_api::v1alpha1::{DependencyKind, HelmRelease, UpstartService};

/// The service a child HelmRelease belongs to, from its service label.
pub fn owner_of(release: &HelmRelease) -> Option<ObjectRef<UpstartService>> {
    let namespace = release.namespace()?;
    let service = release.labels().get(SERVICE_LABEL)?;
    Some(ObjectRef::new(service).within(&namespace))
}

/// Services of `namespace` with a dependency (of a release or a job) named `name` that may be
/// of `kind`.
pub fn services_naming(
    services: &[Arc<UpstartService>],
    namespace: &str,
    name: &str,
    kind: DependencyKind,
) -> Vec<ObjectRef<UpstartService>> {
    services
        .iter()
        .filter(|s| s.namespace().as_deref() == Some(namespace))
        .filter(|s| {
            let environment = s.labels().get(ENVIRONMENT_LABEL).map(String::as_str);
            let releases = s.spec.helm_releases.values().map(|r| &r.dependencies);
            let jobs = s.spec.jobs.values().map(|j| &j.dependencies);
            releases.chain(jobs).flatten().any(|d| {
                let d = d.in_environment(environment);
                d.name == name && d.kind.is_none_or(|k| k == kind)
            })
        })
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

/// Services woken by a change of `changed` (see the module documentation).
pub fn woken_by_release(
    services: &[Arc<UpstartService>],
    changed: &HelmRelease,
) -> Vec<ObjectRef<UpstartService>> {
    let Some(namespace) = changed.namespace() else {
        return Vec::new();
    };
    let mut woken: Vec<ObjectRef<UpstartService>> = owner_of(changed).into_iter().collect();
    woken.extend(services_naming(
        services,
        &namespace,
        &changed.name_any(),
        DependencyKind::HelmRelease,
    ));
    let release_name = changed.spec.release_name_of_object(&changed.name_any());
    woken.extend(
        services
            .iter()
            .filter(|s| s.namespace().as_deref() == Some(namespace.as_str()))
            .filter(|s| {
                s.spec
                    .helm_releases
                    .iter()
                    .any(|(key, spec)| spec.release_name_of_key(key) == release_name)
            })
            .map(|s| ObjectRef::from_obj(s.as_ref())),
    );
    dedup(woken)
}

/// Services woken by a change of the service `changed`: every other one of its namespace.
pub fn woken_by_service(
    services: &[Arc<UpstartService>],
    changed: &UpstartService,
) -> Vec<ObjectRef<UpstartService>> {
    let namespace = changed.namespace();
    let name = changed.name_any();
    dedup(
        services
            .iter()
            .filter(|s| s.namespace() == namespace && s.name_any() != name)
            .map(|s| ObjectRef::from_obj(s.as_ref()))
            .collect(),
    )
}

fn dedup(mut refs: Vec<ObjectRef<UpstartService>>) -> Vec<ObjectRef<UpstartService>> {
    refs.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    refs.dedup();
    refs
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn service(name: &str, namespace: &str, releases: Value) -> Arc<UpstartService> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "upstartoperators.upstart.com/v1alpha1",
                "kind": "UpstartService",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"helmReleases": releases}
            }))
            .expect("valid UpstartService"),
        )
    }

    fn release(name: &str, labels: Value, spec: Value) -> HelmRelease {
        let mut object = json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": "pr-1", "labels": labels},
            "spec": {"chart": "c/app"}
        });
        if let (Some(target), Some(extra)) = (object["spec"].as_object_mut(), spec.as_object()) {
            target.extend(extra.clone());
        }
        serde_json::from_value(object).expect("valid HelmRelease")
    }

    fn names(refs: &[ObjectRef<UpstartService>]) -> Vec<&str> {
        refs.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn child_change_wakes_its_owner() {
        let child = release(
            "svc-db",
            json!({SERVICE_LABEL: "svc"}),
            json!({"releaseName": "db"}),
        );
        let woken = woken_by_release(&[], &child);
        assert_eq!(names(&woken), ["svc"]);
        assert_eq!(woken[0].namespace.as_deref(), Some("pr-1"));
    }

    #[test]
    fn release_created_later_wakes_the_services_naming_it() {
        let services = vec![
            service(
                "waiting",
                "pr-1",
                json!({"app": {"chart": "c/app", "dependencies": [{"name": "launch-darkly"}]}}),
            ),
            service(
                "wants-a-service",
                "pr-1",
                json!({"app": {"chart": "c/app", "dependencies": [{"name": "launch-darkly", "kind": "UpstartService"}]}}),
            ),
            service(
                "elsewhere",
                "pr-2",
                json!({"app": {"chart": "c/app", "dependencies": [{"name": "launch-darkly"}]}}),
            ),
        ];
        let ld = release("launch-darkly", json!({}), json!({}));
        assert_eq!(names(&woken_by_release(&services, &ld)), ["waiting"]);
    }

    #[test]
    fn release_created_later_wakes_the_services_whose_job_names_it() {
        let mut seeding: UpstartService = (*service("seeding", "pr-1", json!({}))).clone();
        seeding.spec.jobs = serde_json::from_value(json!({
            "seed": {"template": {"spec": {"containers": []}}, "dependencies": [{"name": "db"}]}
        }))
        .expect("valid jobs");
        let services = vec![Arc::new(seeding)];
        let db = release("db", json!({}), json!({}));
        assert_eq!(names(&woken_by_release(&services, &db)), ["seeding"]);
    }

    #[test]
    fn release_with_the_same_release_name_wakes_the_services_using_it() {
        let services = vec![
            service("a", "pr-1", json!({"postgres": {"chart": "c/postgres"}})),
            service(
                "b",
                "pr-1",
                json!({"db": {"chart": "c/postgres", "releaseName": "postgres"}}),
            ),
            service("c", "pr-1", json!({"redis": {"chart": "c/redis"}})),
        ];
        let child = release(
            "a-postgres",
            json!({SERVICE_LABEL: "a"}),
            json!({"releaseName": "postgres"}),
        );
        assert_eq!(names(&woken_by_release(&services, &child)), ["a", "b"]);
    }

    #[test]
    fn service_change_wakes_every_other_service_of_its_namespace_only() {
        let services = vec![
            service("a", "pr-1", json!({"x": {"chart": "c/x"}})),
            service("b", "pr-1", json!({"x": {"chart": "c/x"}})),
            service("c", "pr-2", json!({"x": {"chart": "c/x"}})),
        ];
        assert_eq!(names(&woken_by_service(&services, &services[0])), ["b"]);
    }
}
