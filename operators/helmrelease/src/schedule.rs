//! Where a release stands in its namespace's dependency graph, for the work gate
//! ([`upstart_operator_runtime::WorkGate`]): how far along its chain it is and how long a chain
//! of dependents waits behind it; and for the reconcile queue, whether it can start at all.
//! Pure, over the releases of the cache.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use kube::ResourceExt;
use upstart_api::conditions::is_ready_for_generation;
use upstart_api::v1alpha1::{DependencyKind, HelmRelease};
use upstart_operator_runtime::Priority;

use crate::roots;

/// The gate priority of release `name` of `namespace`: `depth` counts the releases on the
/// longest chain of dependencies ending at it (itself included), `remaining` those on the
/// longest chain of dependents starting at it. A dependency on an UpstartService is one on
/// each release it owns. Releases on a cycle (a spec problem reported elsewhere) count as
/// having no dependencies there.
pub fn priority(releases: &[Arc<HelmRelease>], namespace: &str, name: &str) -> Priority {
    let local: Vec<&HelmRelease> = releases
        .iter()
        .filter(|r| r.namespace().as_deref() == Some(namespace))
        .map(Arc::as_ref)
        .collect();
    let index: HashMap<String, usize> = local
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name_any(), i))
        .collect();
    let Some(&me) = index.get(name) else {
        return Priority {
            depth: 1,
            remaining: 1,
        };
    };
    let mut children_of: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, release) in local.iter().enumerate() {
        for service in roots::owning_services(release) {
            children_of.entry(service).or_default().push(i);
        }
    }
    // dependencies[i]: the releases release i waits for.
    let dependencies: Vec<Vec<usize>> = local
        .iter()
        .map(|release| {
            let mut found = Vec::new();
            for dependency in &release.spec.dependencies {
                if dependency.kind != Some(DependencyKind::UpstartService)
                    && let Some(&d) = index.get(&dependency.name)
                {
                    found.push(d);
                }
                if dependency.kind != Some(DependencyKind::HelmRelease)
                    && let Some(children) = children_of.get(&dependency.name)
                {
                    found.extend(children);
                }
            }
            found
        })
        .collect();
    let mut dependents = vec![Vec::new(); local.len()];
    for (i, waits_for) in dependencies.iter().enumerate() {
        for &d in waits_for {
            dependents[d].push(i);
        }
    }
    Priority {
        depth: longest_chain(&dependencies, &dependents, me),
        remaining: longest_chain(&dependents, &dependencies, me),
    }
}

/// The reconcile queue's priority of `hr` (higher first): 1 when nothing it depends on is
/// still to come (no dependencies, or every HelmRelease it names Ready for its generation in
/// `release`'s view, the rule its reconcile applies), so
/// that among many releases created at once the head of a chain starts before the releases
/// that will only find it not Ready yet; 0 otherwise (a dependency on an UpstartService, whose
/// readiness is not known here, included).
pub fn reconcile_priority(
    hr: &HelmRelease,
    release: impl Fn(&str) -> Option<Arc<HelmRelease>>,
) -> u8 {
    let ready = |dependency: &upstart_api::v1alpha1::Dependency| {
        dependency.kind != Some(DependencyKind::UpstartService)
            && release(&dependency.name).is_some_and(|dependency| {
                dependency.status.as_ref().is_some_and(|s| {
                    is_ready_for_generation(&s.conditions, dependency.metadata.generation)
                })
            })
    };
    u8::from(hr.spec.dependencies.iter().all(ready))
}

/// The number of nodes on the longest path that ends at `target`, following `incoming` edges
/// backwards (`outgoing` is their reverse). Kahn's order over the whole graph: nodes on a
/// cycle are never reached and count as chains of one.
fn longest_chain(incoming: &[Vec<usize>], outgoing: &[Vec<usize>], target: usize) -> u32 {
    let mut waiting: Vec<usize> = incoming.iter().map(Vec::len).collect();
    let mut length = vec![1u32; incoming.len()];
    let mut ready: VecDeque<usize> = (0..incoming.len()).filter(|&i| waiting[i] == 0).collect();
    while let Some(node) = ready.pop_front() {
        for &next in &outgoing[node] {
            length[next] = length[next].max(length[node].saturating_add(1));
            waiting[next] -= 1;
            if waiting[next] == 0 {
                ready.push_back(next);
            }
        }
    }
    length[target]
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;
    use kube::api::ObjectMeta;
    use upstart_api::conditions::{ConditionUpdate, READY, set_condition};
    use upstart_api::v1alpha1::{Dependency, HelmReleaseSpec};

    use super::*;

    fn release(name: &str, dependencies: &[(&str, Option<DependencyKind>)]) -> Arc<HelmRelease> {
        let mut hr = HelmRelease::new(
            name,
            HelmReleaseSpec {
                chart: "repo/chart".to_owned(),
                dependencies: dependencies
                    .iter()
                    .map(|(name, kind)| Dependency {
                        name: (*name).to_owned(),
                        kind: *kind,
                        alias: None,
                    })
                    .collect(),
                ..HelmReleaseSpec::default()
            },
        );
        hr.metadata.namespace = Some("ns".to_owned());
        Arc::new(hr)
    }

    fn owned_by(hr: Arc<HelmRelease>, service: &str) -> Arc<HelmRelease> {
        let mut hr = (*hr).clone();
        hr.metadata = ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                api_version: "upstart.dev/v1alpha1".to_owned(),
                kind: "UpstartService".to_owned(),
                name: service.to_owned(),
                uid: format!("uid-{service}"),
                ..OwnerReference::default()
            }]),
            ..hr.metadata
        };
        Arc::new(hr)
    }

    fn at(depth: u32, remaining: u32) -> Priority {
        Priority { depth, remaining }
    }

    fn ready(hr: Arc<HelmRelease>) -> Arc<HelmRelease> {
        let mut hr = (*hr).clone();
        hr.status = Some(upstart_api::v1alpha1::HelmReleaseStatus {
            conditions: set_condition(
                &[],
                ConditionUpdate::new(READY, true, "Installed", ""),
                None,
                &Time(Timestamp::UNIX_EPOCH),
            ),
            ..Default::default()
        });
        Arc::new(hr)
    }

    #[test]
    fn a_release_whose_dependencies_are_all_ready_is_reconciled_first() {
        let head = release("head", &[]);
        let next = release("next", &[("head", None)]);
        let of_service = release(
            "of-service",
            &[("svc", Some(DependencyKind::UpstartService))],
        );
        let none = |_: &str| None;
        assert_eq!(reconcile_priority(&head, none), 1, "no dependencies");
        assert_eq!(
            reconcile_priority(&next, none),
            0,
            "its dependency is not there"
        );
        let not_ready = |_: &str| Some(head.clone());
        assert_eq!(reconcile_priority(&next, not_ready), 0);
        let is_ready = |_: &str| Some(ready(head.clone()));
        assert_eq!(reconcile_priority(&next, is_ready), 1);
        assert_eq!(
            reconcile_priority(&of_service, is_ready),
            0,
            "a service's readiness is not known here"
        );
    }

    #[test]
    fn a_chain_gives_each_release_its_place_and_what_waits_behind_it() {
        let releases = [
            release("db", &[]),
            release("api", &[("db", None)]),
            release("web", &[("api", None)]),
            release("leaf", &[]),
        ];
        assert_eq!(priority(&releases, "ns", "db"), at(1, 3));
        assert_eq!(priority(&releases, "ns", "api"), at(2, 2));
        assert_eq!(priority(&releases, "ns", "web"), at(3, 1));
        assert_eq!(priority(&releases, "ns", "leaf"), at(1, 1));
    }

    #[test]
    fn the_longest_chain_counts_where_several_meet() {
        let releases = [
            release("a", &[]),
            release("b", &[("a", None)]),
            release("c", &[]),
            release("d", &[("b", None), ("c", None)]),
        ];
        assert_eq!(priority(&releases, "ns", "d"), at(3, 1));
        assert_eq!(priority(&releases, "ns", "c"), at(1, 2));
        assert_eq!(priority(&releases, "ns", "a"), at(1, 3));
    }

    #[test]
    fn a_dependency_on_a_service_is_one_on_each_release_it_owns() {
        let releases = [
            owned_by(release("postgres", &[]), "database"),
            release("api", &[("database", Some(DependencyKind::UpstartService))]),
        ];
        assert_eq!(priority(&releases, "ns", "postgres"), at(1, 2));
        assert_eq!(priority(&releases, "ns", "api"), at(2, 1));
    }

    #[test]
    fn other_namespaces_and_cycles_do_not_count() {
        let mut elsewhere = (*release("b", &[])).clone();
        elsewhere.metadata.namespace = Some("other".to_owned());
        let releases = [
            release("a", &[("b", None)]),
            Arc::new(elsewhere),
            release("x", &[("y", None)]),
            release("y", &[("x", None)]),
        ];
        assert_eq!(priority(&releases, "ns", "a"), at(1, 1));
        assert_eq!(priority(&releases, "ns", "x"), at(1, 1));
        assert_eq!(priority(&releases, "ns", "unknown"), at(1, 1));
    }
}
