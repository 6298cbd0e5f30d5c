//! Which releases a change wakes (SPEC §2.6, §2.7; STYLE pattern 5): pure functions over the
//! releases of the cache, so a dependent starts the moment its dependency or an output changes.

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use upstart_api::v1alpha1::{DependencyKind, HelmRelease, OutputSource};
use upstart_release_engine::manifests::RELEASE_LABEL;

/// A Secret or a ConfigMap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataKind {
    Secret,
    ConfigMap,
}

/// Releases of `namespace` that declare a dependency named `name` which may be of `kind`.
pub fn dependents(
    releases: &[Arc<HelmRelease>],
    namespace: &str,
    name: &str,
    kind: DependencyKind,
) -> Vec<ObjectRef<HelmRelease>> {
    releases
        .iter()
        .filter(|r| r.namespace().as_deref() == Some(namespace))
        .filter(|r| {
            r.spec
                .dependencies
                .iter()
                .any(|d| d.name == name && d.kind.is_none_or(|k| k == kind))
        })
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

/// Releases woken when a HelmRelease changes: its dependents, the dependents of the
/// UpstartServices owning it (its outputs are theirs), and, once it is being deleted, its own
/// dependencies (they may be waiting for it to go first).
pub fn dependents_of_release(
    releases: &[Arc<HelmRelease>],
    changed: &HelmRelease,
) -> Vec<ObjectRef<HelmRelease>> {
    let Some(namespace) = changed.namespace() else {
        return Vec::new();
    };
    let mut woken = dependents(
        releases,
        &namespace,
        &changed.name_any(),
        DependencyKind::HelmRelease,
    );
    for owner in service_owners(changed) {
        woken.extend(dependents(
            releases,
            &namespace,
            &owner,
            DependencyKind::UpstartService,
        ));
    }
    if changed.metadata.deletion_timestamp.is_some() {
        for dependency in &changed.spec.dependencies {
            if dependency.kind != Some(DependencyKind::UpstartService) {
                woken.push(ObjectRef::new(&dependency.name).within(&namespace));
            }
        }
    }
    woken
}

/// Releases woken when a Secret or ConfigMap changes: those reading it through `valuesFrom`,
/// those publishing it (their own readiness), and the dependents of those publishing it.
pub fn readers_of_data(
    releases: &[Arc<HelmRelease>],
    namespace: &str,
    kind: DataKind,
    name: &str,
) -> Vec<ObjectRef<HelmRelease>> {
    let mut woken = Vec::new();
    for release in releases
        .iter()
        .filter(|r| r.namespace().as_deref() == Some(namespace))
    {
        let reads_values = release.spec.values_from.iter().any(|v| {
            let reference = match kind {
                DataKind::Secret => v.secret_ref.as_ref(),
                DataKind::ConfigMap => v.config_map_ref.as_ref(),
            };
            reference.is_some_and(|r| r.name == name)
        });
        let publishes = publishes(&release.spec.outputs_from, kind, name);
        if reads_values || publishes {
            woken.push(ObjectRef::from_obj(release.as_ref()));
        }
        if publishes {
            woken.extend(dependents_of_release(releases, release));
        }
    }
    woken.sort_by(|a, b| a.name.cmp(&b.name));
    woken.dedup();
    woken
}

/// Releases woken when a Secret or ConfigMap changes: its readers (see [`readers_of_data`])
/// and, when it was applied by a release, that release (drift).
pub fn woken_by_data(
    releases: &[Arc<HelmRelease>],
    namespace: Option<&str>,
    labels: &std::collections::BTreeMap<String, String>,
    kind: DataKind,
    name: &str,
) -> Vec<ObjectRef<HelmRelease>> {
    let Some(namespace) = namespace else {
        return Vec::new();
    };
    let mut woken = readers_of_data(releases, namespace, kind, name);
    if let Some(owner) = release_of_labels(Some(namespace), labels)
        && !woken.contains(&owner)
    {
        woken.push(owner);
    }
    woken
}

/// The release an applied object belongs to, from its release label (`<namespace>.<name>`).
pub fn release_of_labels(
    namespace: Option<&str>,
    labels: &std::collections::BTreeMap<String, String>,
) -> Option<ObjectRef<HelmRelease>> {
    let namespace = namespace?;
    let value = labels.get(RELEASE_LABEL)?;
    let name = value.strip_prefix(namespace)?.strip_prefix('.')?;
    Some(ObjectRef::new(name).within(namespace))
}

fn publishes(sources: &[OutputSource], kind: DataKind, name: &str) -> bool {
    sources.iter().any(|s| {
        let reference = match kind {
            DataKind::Secret => s.secret_ref.as_ref(),
            DataKind::ConfigMap => s.config_map_ref.as_ref(),
        };
        reference.is_some_and(|r| r.name == name)
    })
}

fn service_owners(release: &HelmRelease) -> Vec<String> {
    release
        .owner_references()
        .iter()
        .filter(|o| o.kind == "UpstartService")
        .map(|o| o.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn release(name: &str, spec: serde_json::Value) -> Arc<HelmRelease> {
        let mut object = json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": "pr-1"},
            "spec": {"chart": "charts/app"}
        });
        if let (Some(target), Some(extra)) = (object["spec"].as_object_mut(), spec.as_object()) {
            target.extend(extra.clone());
        }
        Arc::new(serde_json::from_value(object).expect("valid HelmRelease"))
    }

    fn names(refs: &[ObjectRef<HelmRelease>]) -> Vec<&str> {
        refs.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn dependent_is_woken_when_its_dependency_changes() {
        let releases = vec![
            release("db", json!({})),
            release("app", json!({"dependencies": [{"name": "db"}]})),
            release("other", json!({})),
        ];
        assert_eq!(
            names(&dependents_of_release(&releases, &releases[0])),
            ["app"]
        );
    }

    #[test]
    fn deleted_dependent_wakes_its_dependencies() {
        let mut app = (*release("app", json!({"dependencies": [{"name": "db"}]}))).clone();
        assert!(dependents_of_release(&[], &app).is_empty());
        app.metadata.deletion_timestamp =
            Some(serde_json::from_value(json!("2026-01-01T00:00:00Z")).expect("valid time"));
        assert_eq!(names(&dependents_of_release(&[], &app)), ["db"]);
    }

    #[test]
    fn dependency_of_another_kind_does_not_wake() {
        let releases = vec![
            release("db", json!({})),
            release(
                "app",
                json!({"dependencies": [{"name": "db", "kind": "UpstartService"}]}),
            ),
        ];
        assert!(dependents_of_release(&releases, &releases[0]).is_empty());
    }

    #[test]
    fn releases_of_other_namespaces_are_never_woken() {
        let releases = vec![release("app", json!({"dependencies": [{"name": "db"}]}))];
        assert!(dependents(&releases, "pr-2", "db", DependencyKind::HelmRelease).is_empty());
    }

    #[test]
    fn child_of_a_service_wakes_the_service_dependents() {
        let mut child = (*release("svc-db", json!({}))).clone();
        child.metadata.owner_references = Some(vec![
            serde_json::from_value(json!({
                "apiVersion": "upstartoperators.upstart.com/v1alpha1",
                "kind": "UpstartService", "name": "svc", "uid": "u1"
            }))
            .expect("valid owner reference"),
        ]);
        let releases = vec![
            Arc::new(child),
            release("app", json!({"dependencies": [{"name": "svc"}]})),
        ];
        assert_eq!(
            names(&dependents_of_release(&releases, &releases[0])),
            ["app"]
        );
    }

    #[test]
    fn output_secret_change_wakes_its_publisher_and_the_publisher_dependents() {
        let releases = vec![
            release(
                "db",
                json!({"outputsFrom": [{"secretRef": {"name": "db-creds"}}]}),
            ),
            release("app", json!({"dependencies": [{"name": "db"}]})),
            release("unrelated", json!({})),
        ];
        let woken = readers_of_data(&releases, "pr-1", DataKind::Secret, "db-creds");
        assert_eq!(names(&woken), ["app", "db"]);
    }

    #[test]
    fn config_map_of_the_same_name_as_an_output_secret_wakes_nobody() {
        let releases = vec![
            release(
                "db",
                json!({"outputsFrom": [{"secretRef": {"name": "db-creds"}}]}),
            ),
            release("app", json!({"dependencies": [{"name": "db"}]})),
        ];
        assert!(readers_of_data(&releases, "pr-1", DataKind::ConfigMap, "db-creds").is_empty());
    }

    #[test]
    fn values_source_change_wakes_its_reader() {
        let releases = vec![release(
            "app",
            json!({"valuesFrom": [{"configMapRef": {"name": "shared"}}]}),
        )];
        let woken = readers_of_data(&releases, "pr-1", DataKind::ConfigMap, "shared");
        assert_eq!(names(&woken), ["app"]);
    }

    #[test]
    fn applied_config_map_wakes_the_release_that_applied_it_once() {
        let releases = vec![release(
            "app",
            json!({"valuesFrom": [{"configMapRef": {"name": "app-settings"}}]}),
        )];
        let labels = [(RELEASE_LABEL.to_owned(), "pr-1.app".to_owned())].into();
        let woken = woken_by_data(
            &releases,
            Some("pr-1"),
            &labels,
            DataKind::ConfigMap,
            "app-settings",
        );
        assert_eq!(names(&woken), ["app"]);
        let unlabelled = woken_by_data(&[], Some("pr-1"), &labels, DataKind::ConfigMap, "x");
        assert_eq!(names(&unlabelled), ["app"]);
    }

    #[test]
    fn applied_object_wakes_the_release_named_by_its_label() {
        let labels = [(RELEASE_LABEL.to_owned(), "pr-1.app".to_owned())].into();
        let woken = release_of_labels(Some("pr-1"), &labels).expect("a release");
        assert_eq!(woken.name, "app");
        assert_eq!(woken.namespace.as_deref(), Some("pr-1"));
        assert!(release_of_labels(Some("pr-2"), &labels).is_none());
    }
}
