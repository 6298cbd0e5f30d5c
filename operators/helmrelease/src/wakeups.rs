//! Which releases a change wakes (SPEC §2.6, §2.7; STYLE pattern 5): pure functions over the
//! releases of the cache, so a dependent starts the moment its dependency or an output changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use upstart_api::names::release_label_value;
use upstart_api::v1alpha1::{DependencyKind, HelmRelease, OutputSource, UpstartEnvironment};
use upstart_release_engine::manifests::RELEASE_LABEL;

use crate::roots;

/// Releases woken when an UpstartEnvironment's variables change: every release of the
/// namespace it owns (any of them may read `environment.*`).
pub fn releases_of_environment(
    releases: &[Arc<HelmRelease>],
    environment: &UpstartEnvironment,
) -> Vec<ObjectRef<HelmRelease>> {
    releases_in_namespace(releases, &roots::environment_namespace(environment))
}

/// Every release of `namespace` (its environment label changed).
pub fn releases_in_namespace(
    releases: &[Arc<HelmRelease>],
    namespace: &str,
) -> Vec<ObjectRef<HelmRelease>> {
    releases
        .iter()
        .filter(|r| r.namespace().as_deref() == Some(namespace))
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

/// Remembers, per object name, the last value of what releases read from it, so that a watch
/// wakes releases only when that changed: an environment's status updates (every release that
/// becomes Ready moves its counts) must not wake every release of its namespace.
#[derive(Debug, Default)]
pub struct ChangeFilter<V> {
    seen: Mutex<HashMap<String, V>>,
}

impl<V: PartialEq> ChangeFilter<V> {
    /// True when `name` is seen for the first time or `value` differs from the last one.
    pub fn changed(&self, name: &str, value: V) -> bool {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.get(name) == Some(&value) {
            return false;
        }
        seen.insert(name.to_owned(), value);
        true
    }
}

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
    for owner in roots::owning_services(changed) {
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
            if dependency.kind != Some(DependencyKind::HelmRelease) {
                woken.extend(children_of_service(releases, &namespace, &dependency.name));
            }
        }
    }
    woken
}

/// The releases of `namespace` owned by the UpstartService `service`.
pub fn children_of_service(
    releases: &[Arc<HelmRelease>],
    namespace: &str,
    service: &str,
) -> Vec<ObjectRef<HelmRelease>> {
    releases
        .iter()
        .filter(|r| r.namespace().as_deref() == Some(namespace))
        .filter(|r| roots::owning_services(r).iter().any(|s| s == service))
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

/// Releases that must go before `release` (SPEC §2.8, reverse-dependency teardown): those
/// depending on it, and those depending on an UpstartService owning it (the service's
/// outputs are its children's).
pub fn teardown_blockers(
    releases: &[Arc<HelmRelease>],
    release: &HelmRelease,
) -> Vec<ObjectRef<HelmRelease>> {
    let Some(namespace) = release.namespace() else {
        return Vec::new();
    };
    let name = release.name_any();
    let mut blockers = dependents(releases, &namespace, &name, DependencyKind::HelmRelease);
    for service in roots::owning_services(release) {
        blockers.extend(dependents(
            releases,
            &namespace,
            &service,
            DependencyKind::UpstartService,
        ));
    }
    blockers.retain(|b| b.name != name);
    blockers.sort_by(|a, b| a.name.cmp(&b.name));
    blockers.dedup();
    blockers
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
    if let Some(owner) = release_of_labels(releases, Some(namespace), labels)
        && !woken.contains(&owner)
    {
        woken.push(owner);
    }
    woken
}

/// The release an applied object belongs to, from its release label: `<namespace>.<name>`, or,
/// when that is too long for a label, a shortened form with a hash, found among the releases.
/// `namespace` is the object's own; `None` for a cluster-scoped object (a CRD).
pub fn release_of_labels(
    releases: &[Arc<HelmRelease>],
    namespace: Option<&str>,
    labels: &std::collections::BTreeMap<String, String>,
) -> Option<ObjectRef<HelmRelease>> {
    let value = labels.get(RELEASE_LABEL)?;
    let known = releases
        .iter()
        .filter(|r| namespace.is_none_or(|ns| r.namespace().as_deref() == Some(ns)))
        .find(|r| {
            r.namespace()
                .is_some_and(|ns| release_label_value(&ns, &r.name_any()) == *value)
        });
    if let Some(release) = known {
        return Some(ObjectRef::from_obj(release.as_ref()));
    }
    // Not cached yet: read the label as written (a namespace name holds no dot).
    let (release_namespace, name) = match namespace {
        Some(ns) => (ns, value.strip_prefix(ns)?.strip_prefix('.')?),
        None => value.split_once('.')?,
    };
    Some(ObjectRef::new(name).within(release_namespace))
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

    fn owned_by(name: &str, service: &str) -> Arc<HelmRelease> {
        let mut child = (*release(name, json!({}))).clone();
        child.metadata.owner_references = Some(vec![
            serde_json::from_value(json!({
                "apiVersion": "upstartoperators.upstart.com/v1alpha1",
                "kind": "UpstartService", "name": service, "uid": "u1"
            }))
            .expect("valid owner reference"),
        ]);
        Arc::new(child)
    }

    #[test]
    fn deleted_dependent_of_a_service_wakes_the_service_children() {
        let releases = vec![owned_by("svc-db", "svc"), release("other", json!({}))];
        let mut app = (*release("app", json!({"dependencies": [{"name": "svc"}]}))).clone();
        app.metadata.deletion_timestamp =
            Some(serde_json::from_value(json!("2026-01-01T00:00:00Z")).expect("valid time"));
        let woken = dependents_of_release(&releases, &app);
        assert!(names(&woken).contains(&"svc-db"), "{woken:?}");
        assert!(!names(&woken).contains(&"other"), "{woken:?}");
    }

    #[test]
    fn release_of_a_service_is_held_by_dependents_of_the_service_and_its_own() {
        let releases = vec![
            owned_by("svc-db", "svc"),
            release("by-service", json!({"dependencies": [{"name": "svc"}]})),
            release(
                "by-kind",
                json!({"dependencies": [{"name": "svc", "kind": "UpstartService"}]}),
            ),
            release("direct", json!({"dependencies": [{"name": "svc-db"}]})),
            release(
                "release-named-svc",
                json!({"dependencies": [{"name": "svc", "kind": "HelmRelease"}]}),
            ),
            release("unrelated", json!({})),
        ];
        assert_eq!(
            names(&teardown_blockers(&releases, &releases[0])),
            ["by-kind", "by-service", "direct"]
        );
        assert!(teardown_blockers(&releases, &releases[5]).is_empty());
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
    fn environment_change_wakes_every_release_of_its_namespace() {
        let mut elsewhere = (*release("web", json!({}))).clone();
        elsewhere.metadata.namespace = Some("pr-2".into());
        let releases = vec![
            release("db", json!({})),
            release("app", json!({"dependencies": [{"name": "db"}]})),
            Arc::new(elsewhere),
        ];
        let environment: UpstartEnvironment = serde_json::from_value(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "UpstartEnvironment",
            "metadata": {"name": "pr-1"},
            "spec": {"variables": {"BRANCH": "main"}}
        }))
        .expect("valid UpstartEnvironment");
        assert_eq!(
            names(&releases_of_environment(&releases, &environment)),
            ["db", "app"]
        );
        assert_eq!(names(&releases_in_namespace(&releases, "pr-2")), ["web"]);
    }

    #[test]
    fn change_filter_passes_the_first_sight_and_changes_only() {
        let filter = ChangeFilter::default();
        assert!(filter.changed("pr-1", 1));
        assert!(
            !filter.changed("pr-1", 1),
            "a status update changes nothing read"
        );
        assert!(filter.changed("pr-1", 2));
        assert!(filter.changed("pr-2", 2));
    }

    #[test]
    fn applied_object_wakes_the_release_named_by_its_label() {
        let labels = [(RELEASE_LABEL.to_owned(), "pr-1.app".to_owned())].into();
        let woken = release_of_labels(&[], Some("pr-1"), &labels).expect("a release");
        assert_eq!(woken.name, "app");
        assert_eq!(woken.namespace.as_deref(), Some("pr-1"));
        assert!(release_of_labels(&[], Some("pr-2"), &labels).is_none());
    }

    #[test]
    fn cluster_scoped_object_wakes_the_release_of_its_label() {
        let labels = [(RELEASE_LABEL.to_owned(), "pr-1.widgets".to_owned())].into();
        let woken = release_of_labels(&[], None, &labels).expect("a release");
        assert_eq!(woken.name, "widgets");
        assert_eq!(woken.namespace.as_deref(), Some("pr-1"));
    }

    #[test]
    fn object_of_a_release_with_a_long_name_wakes_that_release() {
        let long = format!("checkout-{}", "x".repeat(70));
        let releases = vec![release(&long, json!({})), release("other", json!({}))];
        let value = release_label_value("pr-1", &long);
        assert!(value.len() <= 63 && !value.ends_with(&long));
        let labels = [(RELEASE_LABEL.to_owned(), value)].into();
        let woken = release_of_labels(&releases, Some("pr-1"), &labels).expect("a release");
        assert_eq!(woken.name, long);
        let woken = release_of_labels(&releases, None, &labels).expect("a release");
        assert_eq!(woken.name, long);
    }
}
