//! The status of an environment from what a reconcile observed: phase, counts, conditions
//! (Ready, NamespaceReady, Reconciling, Stalled, TemplatesUpToDate), readyAt, time-to-ready,
//! critical path, expiry, template revisions and the services the closure added. Pure: the same old status and observation give the same status, so a no-op
//! reconcile writes nothing (SPEC §1).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use upstart_api::conditions::{ConditionUpdate, READY, RECONCILING, STALLED, set_condition};
use upstart_api::v1alpha1::{
    AddedService, CriticalPathStep, Endpoint, EnvironmentPhase, ReleaseTimings, SleepStatus,
    UpstartEnvironmentStatus,
};
use upstart_dag::{DependencyGraph, NodeId, Timing};

use crate::children::{NamespaceState, Problem};
use crate::constants::{NAMESPACE_READY, reasons};
use crate::templates::{self, TemplateUse};

/// How many not-ready names a message lists before it says "and N more".
const MAX_LISTED: usize = 5;

/// One service or release of the environment as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The object's name.
    pub name: String,
    /// Ready for its current generation.
    pub ready: bool,
    /// In phase Failed: its Ready message (names and reasons only).
    pub failed: Option<String>,
}

impl Member {
    /// A member that does not exist yet.
    pub fn missing(name: impl Into<String>) -> Self {
        Member {
            name: name.into(),
            ready: false,
            failed: None,
        }
    }
}

/// What a reconcile observed about an environment, as plain data.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub generation: Option<i64>,
    /// The environment's namespace.
    pub namespace: String,
    pub namespace_state: NamespaceState,
    /// Spec problems (missing templates, unknown override keys).
    pub problems: Vec<Problem>,
    /// Every enabled service, in spec order.
    pub services: Vec<Member>,
    /// Every release of the environment (service children and environment-wide).
    pub releases: Vec<Member>,
    /// When the environment deletes itself (see [`crate::expiry`]).
    pub expires_at: Option<Timestamp>,
    /// The template copy each template-made service runs.
    pub templates: Vec<TemplateUse>,
    /// The services the dependency closure added.
    pub added: Vec<AddedService>,
    /// Dependencies nothing provides: said in `Ready` while provisioning (not a failure: an
    /// object applied by hand heals them).
    pub missing: Vec<Problem>,
    /// Who asked for the environment (its requester annotation).
    pub requester: Option<String>,
    /// Where its services can be reached (see [`crate::endpoints`]).
    pub endpoints: Vec<Endpoint>,
    /// Whether it sleeps (`spec.sleep`, see [`crate::sleep`]); `None`: no `spec.sleep`.
    pub sleep: Option<SleepStatus>,
}

impl Observation {
    /// Whether the expiry has passed at `now`.
    pub fn expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Asleep, in a namespace of its own (nothing sleeps elsewhere).
    fn asleep(&self) -> bool {
        self.namespace_state == NamespaceState::Owned
            && self.sleep.as_ref().is_some_and(|s| s.asleep)
    }

    fn all_ready(&self) -> bool {
        self.namespace_state == NamespaceState::Owned
            && self.services.iter().all(|s| s.ready)
            && self.releases.iter().all(|r| r.ready)
    }
}

/// The phase for an observation at `now`, given the old status.
pub fn phase(
    observation: &Observation,
    old: Option<&UpstartEnvironmentStatus>,
    now: Timestamp,
) -> EnvironmentPhase {
    if observation.namespace_state == NamespaceState::Foreign || !observation.problems.is_empty() {
        return EnvironmentPhase::Failed;
    }
    if observation.expired(now) {
        return EnvironmentPhase::Expiring;
    }
    if observation.asleep() {
        return EnvironmentPhase::Sleeping;
    }
    if observation.all_ready() {
        return EnvironmentPhase::Ready;
    }
    if observation
        .services
        .iter()
        .chain(&observation.releases)
        .any(|m| m.failed.is_some())
    {
        return EnvironmentPhase::Failed;
    }
    // Degraded: it was Ready for this very spec and something no longer is. A spec change
    // (a service added) provisions again instead.
    let was_ready = old.is_some_and(|s| {
        s.observed_generation == observation.generation
            && matches!(
                s.phase,
                Some(EnvironmentPhase::Ready | EnvironmentPhase::Degraded)
            )
    });
    if was_ready {
        EnvironmentPhase::Degraded
    } else {
        EnvironmentPhase::Provisioning
    }
}

/// The status after `observation` at `now`. `created` is the environment's creation time;
/// `critical_path` is asked for only when the environment becomes Ready for the first time
/// (the path that decided its time-to-ready is recorded once).
pub fn next_status(
    old: Option<&UpstartEnvironmentStatus>,
    observation: &Observation,
    created: Timestamp,
    now: Timestamp,
    critical_path: impl FnOnce() -> Vec<CriticalPathStep>,
) -> UpstartEnvironmentStatus {
    let mut status = old.cloned().unwrap_or_default();
    let phase = phase(observation, old, now);
    let generation = observation.generation;
    status.phase = Some(phase);
    status.observed_generation = generation;
    status.namespace = Some(observation.namespace.clone());

    let ready_services = count(observation.services.iter().filter(|s| s.ready).count());
    let total_services = count(observation.services.len());
    status.services = Some(format!("{ready_services}/{total_services}"));
    status.ready_services = Some(ready_services);
    status.total_services = Some(total_services);
    status.ready_releases = Some(count(
        observation.releases.iter().filter(|r| r.ready).count(),
    ));
    status.total_releases = Some(count(observation.releases.len()));

    if phase == EnvironmentPhase::Ready && status.ready_at.is_none() {
        status.ready_at = Some(Time(now));
        status.time_to_ready_seconds = Some(seconds(now.duration_since(created).as_secs_f64()));
        status.critical_path = critical_path();
    }
    status.expires_at = observation.expires_at.map(Time);
    status.templates = observation
        .templates
        .iter()
        .map(TemplateUse::status)
        .collect();
    status.added_services.clone_from(&observation.added);
    status.requester.clone_from(&observation.requester);
    status.endpoints.clone_from(&observation.endpoints);
    status.sleep.clone_from(&observation.sleep);

    let time = Time(now);
    let mut conditions = std::mem::take(&mut status.conditions);
    for update in condition_updates(observation, phase) {
        conditions = set_condition(&conditions, update, generation, &time);
    }
    status.conditions = conditions;
    status
}

/// The status of an environment refused before anything of it was created (a cap on
/// environments, a quota above the maximum): phase Refused, `reason` and `message` in Ready
/// and Stalled.
pub fn refused_status(
    old: Option<&UpstartEnvironmentStatus>,
    reason: &'static str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> UpstartEnvironmentStatus {
    let mut status = old.cloned().unwrap_or_default();
    status.phase = Some(EnvironmentPhase::Refused);
    status.observed_generation = generation;
    let time = Time(now);
    let mut conditions = std::mem::take(&mut status.conditions);
    for update in [
        ConditionUpdate::new(READY, false, reason, message),
        ConditionUpdate::new(RECONCILING, false, reason, message),
        ConditionUpdate::new(STALLED, true, reason, message),
    ] {
        conditions = set_condition(&conditions, update, generation, &time);
    }
    status.conditions = conditions;
    status
}

/// The status of an environment being torn down: `message` says what it waits for.
pub fn deleting_status(
    old: Option<&UpstartEnvironmentStatus>,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> UpstartEnvironmentStatus {
    let mut status = old.cloned().unwrap_or_default();
    status.phase = Some(EnvironmentPhase::Deleting);
    status.observed_generation = generation;
    let time = Time(now);
    let mut conditions = std::mem::take(&mut status.conditions);
    for update in [
        ConditionUpdate::new(READY, false, reasons::DELETING, message),
        ConditionUpdate::new(RECONCILING, true, reasons::DELETING, message),
        ConditionUpdate::new(STALLED, false, reasons::DELETING, ""),
    ] {
        conditions = set_condition(&conditions, update, generation, &time);
    }
    status.conditions = conditions;
    status
}

fn condition_updates(
    observation: &Observation,
    phase: EnvironmentPhase,
) -> Vec<ConditionUpdate<'static>> {
    let namespace = &observation.namespace;
    let namespace_condition = match observation.namespace_state {
        NamespaceState::Owned => ConditionUpdate::new(
            NAMESPACE_READY,
            true,
            reasons::NAMESPACE_CREATED,
            format!("namespace {namespace} belongs to the environment"),
        ),
        NamespaceState::Missing => ConditionUpdate::new(
            NAMESPACE_READY,
            false,
            reasons::PROVISIONING,
            format!("creating namespace {namespace}"),
        ),
        NamespaceState::Terminating => ConditionUpdate::new(
            NAMESPACE_READY,
            false,
            reasons::NAMESPACE_TERMINATING,
            format!("namespace {namespace} is being deleted"),
        ),
        NamespaceState::Foreign => ConditionUpdate::new(
            NAMESPACE_READY,
            false,
            reasons::NAMESPACE_NOT_OWNED,
            format!(
                "namespace {namespace} exists and does not belong to this environment; it is left alone"
            ),
        ),
    };
    let stalled = |reason: &'static str, message: String| {
        vec![
            ConditionUpdate::new(READY, false, reason, message.clone()),
            ConditionUpdate::new(RECONCILING, false, reason, "waiting for a spec change"),
            ConditionUpdate::new(STALLED, true, reason, message),
        ]
    };
    let progressing = |reason: &'static str, message: String| {
        vec![
            ConditionUpdate::new(READY, false, reason, message.clone()),
            ConditionUpdate::new(RECONCILING, true, reason, message),
            ConditionUpdate::new(STALLED, false, reasons::RECONCILED, ""),
        ]
    };
    let mut updates = if observation.namespace_state == NamespaceState::Foreign {
        stalled(
            reasons::NAMESPACE_NOT_OWNED,
            namespace_condition.message.clone(),
        )
    } else if let Some(first) = observation.problems.first() {
        let messages: Vec<&str> = observation
            .problems
            .iter()
            .map(|p| p.message.as_str())
            .collect();
        stalled(first.reason, messages.join("; "))
    } else {
        match phase {
            EnvironmentPhase::Ready => vec![
                ConditionUpdate::new(
                    READY,
                    true,
                    reasons::SUCCEEDED,
                    "every service and release is Ready",
                ),
                ConditionUpdate::new(
                    RECONCILING,
                    false,
                    reasons::SUCCEEDED,
                    "every service and release is Ready",
                ),
                ConditionUpdate::new(STALLED, false, reasons::RECONCILED, ""),
            ],
            EnvironmentPhase::Sleeping => {
                let sleep = observation.sleep.as_ref();
                let until = sleep
                    .and_then(|s| s.next_transition.as_ref())
                    .map_or_else(String::new, |t| format!(" until {}", t.0));
                let by = sleep.map_or("schedule", |s| s.by.as_str());
                let message =
                    format!("asleep ({by}){until}: Deployments and StatefulSets scaled to zero");
                vec![
                    ConditionUpdate::new(READY, false, reasons::SLEEPING, message.clone()),
                    ConditionUpdate::new(RECONCILING, false, reasons::SLEEPING, message),
                    ConditionUpdate::new(STALLED, false, reasons::RECONCILED, ""),
                ]
            }
            EnvironmentPhase::Expiring => progressing(
                reasons::EXPIRED,
                "the environment's ttl has passed; deleting it".to_owned(),
            ),
            EnvironmentPhase::Failed => {
                let failed: Vec<String> = observation
                    .services
                    .iter()
                    .chain(&observation.releases)
                    .filter_map(|m| m.failed.as_ref().map(|why| format!("{}: {why}", m.name)))
                    .collect();
                progressing(reasons::FAILED, format!("failed: {}", list(&failed)))
            }
            EnvironmentPhase::Degraded => progressing(
                reasons::DEGRADED,
                format!("not Ready: {}", not_ready(observation)),
            ),
            _ if !observation.missing.is_empty() => {
                let messages: Vec<&str> = observation
                    .missing
                    .iter()
                    .map(|p| p.message.as_str())
                    .collect();
                progressing(reasons::MISSING_DEPENDENCY, messages.join("; "))
            }
            _ => progressing(
                reasons::PROVISIONING,
                if observation.namespace_state == NamespaceState::Owned {
                    format!("waiting for {}", not_ready(observation))
                } else {
                    namespace_condition.message.clone()
                },
            ),
        }
    };
    updates.push(namespace_condition);
    updates.push(templates::condition(&observation.templates));
    updates
}

fn not_ready(observation: &Observation) -> String {
    let names: Vec<String> = observation
        .services
        .iter()
        .chain(&observation.releases)
        .filter(|m| !m.ready)
        .map(|m| m.name.clone())
        .collect();
    list(&names)
}

fn list(names: &[String]) -> String {
    if names.len() <= MAX_LISTED {
        return names.join(", ");
    }
    format!(
        "{} and {} more",
        names[..MAX_LISTED].join(", "),
        names.len() - MAX_LISTED
    )
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Seconds rounded to milliseconds: enough for humans, stable in status.
fn seconds(value: f64) -> f64 {
    (value.max(0.0) * 1000.0).round() / 1000.0
}

/// The critical path (SPEC §4): the chain of releases that decided when the environment was
/// Ready, from the releases' own timings, as found by [`DependencyGraph::critical_path`]. Each
/// step waits from the environment's creation (first step) or its predecessor's readiness
/// until it started, then installs until it was Ready; the steps therefore add up to the
/// last release's readiness, and what time-to-ready adds on top is the operators' own overhead.
pub fn critical_path(
    graph: &DependencyGraph,
    timings: &BTreeMap<String, ReleaseTimings>,
    created: Timestamp,
) -> Vec<CriticalPathStep> {
    let offset = |time: Option<&Time>| -> Option<Duration> {
        time.map(|t| {
            t.0.duration_since(created)
                .try_into()
                .unwrap_or(Duration::ZERO)
        })
    };
    let by_node: HashMap<NodeId, Timing> = timings
        .iter()
        .filter_map(|(name, t)| {
            let ready = offset(t.ready_at.as_ref())?;
            let created_at = offset(t.created_at.as_ref()).unwrap_or(Duration::ZERO);
            let started = offset(t.started_at.as_ref()).unwrap_or(created_at);
            Some((
                NodeId::release(name.clone()),
                Timing {
                    created: created_at,
                    started,
                    ready,
                },
            ))
        })
        .collect();
    let mut previous_ready = Duration::ZERO;
    graph
        .critical_path(&by_node)
        .into_iter()
        .filter_map(|step| {
            let timing = by_node.get(&step.node)?;
            let wait = timing.started.saturating_sub(previous_ready);
            previous_ready = timing.ready;
            Some(CriticalPathStep {
                release: step.node.name,
                wait_seconds: seconds(wait.as_secs_f64()),
                install_seconds: seconds(step.install.as_secs_f64()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use upstart_api::conditions::{find, is_ready_for_generation};
    use upstart_api::v1alpha1::{Dependency, DependencyKind, UpstartServiceSpec};

    use super::*;
    use crate::teardown::environment_graph;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).expect("valid timestamp")
    }

    fn member(name: &str, ready: bool) -> Member {
        Member {
            name: name.into(),
            ready,
            failed: None,
        }
    }

    fn observation() -> Observation {
        Observation {
            generation: Some(1),
            namespace: "pr-1".into(),
            namespace_state: NamespaceState::Owned,
            problems: vec![],
            services: vec![member("app", false)],
            releases: vec![member("app-api", false), member("pr-1-ld", true)],
            expires_at: Some(at(1000)),
            templates: vec![],
            added: vec![],
            missing: vec![],
            requester: None,
            endpoints: vec![],
            sleep: None,
        }
    }

    fn ready_observation() -> Observation {
        let mut o = observation();
        o.services[0].ready = true;
        o.releases[0].ready = true;
        o
    }

    fn condition(status: &UpstartEnvironmentStatus, type_: &str) -> (String, String) {
        let c = find(&status.conditions, type_).expect("condition present");
        (c.status.clone(), c.reason.clone())
    }

    #[test]
    fn asleep_environment_is_sleeping_and_not_ready_until_its_next_transition() {
        let mut o = ready_observation();
        o.sleep = Some(SleepStatus {
            asleep: true,
            by: "manual".into(),
            next_transition: Some(Time(at(500))),
        });
        let status = next_status(None, &o, at(0), at(10), Vec::new);
        assert_eq!(status.phase, Some(EnvironmentPhase::Sleeping));
        assert_eq!(status.sleep, o.sleep);
        let ready = find(&status.conditions, READY).expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "Sleeping")
        );
        assert!(
            ready
                .message
                .starts_with("asleep (manual) until 1970-01-01T00:08:20Z"),
            "{}",
            ready.message
        );
        // Expiry still wins: TTL applies while asleep.
        let status = next_status(None, &o, at(0), at(2000), Vec::new);
        assert_eq!(status.phase, Some(EnvironmentPhase::Expiring));
    }

    #[test]
    fn refused_environment_says_why_in_ready_and_stalled() {
        let status = refused_status(None, reasons::CAP_REACHED, "cap reached", Some(1), at(5));
        assert_eq!(status.phase, Some(EnvironmentPhase::Refused));
        assert_eq!(
            condition(&status, READY),
            ("False".into(), "CapReached".into())
        );
        assert_eq!(
            condition(&status, STALLED),
            ("True".into(), "CapReached".into())
        );
    }

    #[test]
    fn provisioning_environment_counts_and_names_what_it_waits_for() {
        let status = next_status(None, &observation(), at(0), at(10), Vec::new);
        assert_eq!(status.phase, Some(EnvironmentPhase::Provisioning));
        assert_eq!(status.services.as_deref(), Some("0/1"));
        assert_eq!(
            (status.ready_releases, status.total_releases),
            (Some(1), Some(2))
        );
        assert_eq!(status.namespace.as_deref(), Some("pr-1"));
        assert_eq!(status.expires_at, Some(Time(at(1000))));
        let ready = find(&status.conditions, READY).expect("Ready");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.message, "waiting for app, app-api");
        assert_eq!(condition(&status, NAMESPACE_READY).0, "True");
        assert_eq!(status.ready_at, None);
    }

    #[test]
    fn first_readiness_records_ready_at_time_to_ready_and_the_critical_path_once() {
        let provisioning = next_status(None, &observation(), at(0), at(10), Vec::new);
        let path = vec![CriticalPathStep {
            release: "app-api".into(),
            wait_seconds: 1.0,
            install_seconds: 20.0,
        }];
        let ready = next_status(
            Some(&provisioning),
            &ready_observation(),
            at(0),
            at(25),
            || path.clone(),
        );
        assert_eq!(ready.phase, Some(EnvironmentPhase::Ready));
        assert_eq!(ready.ready_at, Some(Time(at(25))));
        assert_eq!(ready.time_to_ready_seconds, Some(25.0));
        assert_eq!(ready.critical_path, path);
        assert!(is_ready_for_generation(&ready.conditions, Some(1)));
        let later = next_status(Some(&ready), &ready_observation(), at(0), at(99), || {
            panic!("the critical path is computed once")
        });
        assert_eq!(later, ready, "a no-op reconcile changes nothing");
    }

    #[test]
    fn repeating_an_observation_changes_nothing() {
        for o in [observation(), ready_observation()] {
            let first = next_status(None, &o, at(0), at(10), Vec::new);
            let second = next_status(Some(&first), &o, at(0), at(20), Vec::new);
            assert_eq!(first, second);
        }
    }

    #[test]
    fn ready_environment_losing_a_release_is_degraded_but_a_new_spec_is_provisioning() {
        let ready = next_status(None, &ready_observation(), at(0), at(10), Vec::new);
        let degraded = next_status(Some(&ready), &observation(), at(0), at(20), Vec::new);
        assert_eq!(degraded.phase, Some(EnvironmentPhase::Degraded));
        assert_eq!(
            degraded.ready_at, ready.ready_at,
            "readyAt is the first time"
        );
        let mut new_spec = observation();
        new_spec.generation = Some(2);
        let provisioning = next_status(Some(&ready), &new_spec, at(0), at(20), Vec::new);
        assert_eq!(provisioning.phase, Some(EnvironmentPhase::Provisioning));
    }

    #[test]
    fn foreign_namespace_fails_and_stalls_the_environment() {
        let mut o = observation();
        o.namespace_state = NamespaceState::Foreign;
        let status = next_status(None, &o, at(0), at(10), Vec::new);
        assert_eq!(status.phase, Some(EnvironmentPhase::Failed));
        assert_eq!(
            condition(&status, STALLED),
            ("True".into(), reasons::NAMESPACE_NOT_OWNED.into())
        );
        assert_eq!(condition(&status, NAMESPACE_READY).0, "False");
        assert_eq!(condition(&status, RECONCILING).0, "False");
    }

    #[test]
    fn spec_problems_stall_the_environment_naming_each() {
        let mut o = ready_observation();
        o.problems = vec![
            Problem {
                service: "a".into(),
                reason: reasons::TEMPLATE_NOT_FOUND,
                message: "service a: template x does not exist in the catalog".into(),
            },
            Problem {
                service: "b".into(),
                reason: reasons::UNKNOWN_OVERRIDE_KEY,
                message: "service b: override of unknown release key k".into(),
            },
        ];
        let status = next_status(None, &o, at(0), at(10), Vec::new);
        assert_eq!(status.phase, Some(EnvironmentPhase::Failed));
        let ready = find(&status.conditions, READY).expect("Ready");
        assert_eq!(ready.reason, reasons::TEMPLATE_NOT_FOUND);
        assert!(ready.message.contains("service a") && ready.message.contains("service b"));
        assert_eq!(condition(&status, STALLED).0, "True");
    }

    #[test]
    fn failed_release_fails_the_environment_without_stalling_it() {
        let mut o = observation();
        o.releases[0].failed = Some("Job/migrate failed".into());
        let status = next_status(None, &o, at(0), at(10), Vec::new);
        assert_eq!(status.phase, Some(EnvironmentPhase::Failed));
        let ready = find(&status.conditions, READY).expect("Ready");
        assert_eq!(ready.message, "failed: app-api: Job/migrate failed");
        assert_eq!(condition(&status, STALLED).0, "False");
        assert_eq!(condition(&status, RECONCILING).0, "True");
    }

    #[test]
    fn past_its_expiry_the_environment_is_expiring() {
        let status = next_status(None, &ready_observation(), at(0), at(1000), Vec::new);
        assert_eq!(status.phase, Some(EnvironmentPhase::Expiring));
    }

    #[test]
    fn missing_namespace_is_reported_while_provisioning() {
        let mut o = observation();
        o.namespace_state = NamespaceState::Missing;
        let status = next_status(None, &o, at(0), at(10), Vec::new);
        assert_eq!(status.phase, Some(EnvironmentPhase::Provisioning));
        assert_eq!(condition(&status, NAMESPACE_READY).0, "False");
    }

    #[test]
    fn deleting_status_is_stable_and_not_ready() {
        let ready = next_status(None, &ready_observation(), at(0), at(10), Vec::new);
        let deleting = deleting_status(Some(&ready), "waiting for app", Some(1), at(20));
        assert_eq!(deleting.phase, Some(EnvironmentPhase::Deleting));
        assert_eq!(condition(&deleting, READY).0, "False");
        assert_eq!(
            deleting_status(Some(&deleting), "waiting for app", Some(1), at(30)),
            deleting
        );
    }

    #[test]
    fn long_lists_of_names_are_cut() {
        let names: Vec<String> = (0..8).map(|i| format!("r{i}")).collect();
        assert_eq!(list(&names), "r0, r1, r2, r3, r4 and 3 more");
    }

    fn timings(created: i64, started: i64, ready: i64) -> ReleaseTimings {
        ReleaseTimings {
            created_at: Some(Time(at(created))),
            started_at: Some(Time(at(started))),
            ready_at: Some(Time(at(ready))),
        }
    }

    #[test]
    fn critical_path_follows_the_slowest_chain_and_adds_up_to_the_last_readiness() {
        // svc: app depends on db (slow) and cache (fast); the environment release ld is
        // independent and Ready early.
        let svc: UpstartServiceSpec = serde_json::from_value(serde_json::json!({"helmReleases": {
            "db": {"chart": "r/db"},
            "cache": {"chart": "r/cache"},
            "app": {"chart": "r/app", "dependencies": [{"name": "db"}, {"name": "cache"}]}
        }}))
        .expect("spec");
        let dependencies = [Dependency {
            name: "svc".into(),
            kind: Some(DependencyKind::UpstartService),
            alias: None,
        }];
        let graph = environment_graph([("svc", &svc)], [("env-ld", &dependencies[..0])]);
        let t = BTreeMap::from([
            ("svc-db".to_owned(), timings(101, 102, 110)),
            ("svc-cache".to_owned(), timings(101, 101, 103)),
            ("svc-app".to_owned(), timings(101, 111, 115)),
            ("env-ld".to_owned(), timings(101, 101, 102)),
        ]);
        let path = critical_path(&graph, &t, at(100));
        assert_eq!(
            path,
            vec![
                CriticalPathStep {
                    release: "svc-db".into(),
                    wait_seconds: 2.0,
                    install_seconds: 8.0
                },
                CriticalPathStep {
                    release: "svc-app".into(),
                    wait_seconds: 1.0,
                    install_seconds: 4.0
                },
            ]
        );
        let total: f64 = path
            .iter()
            .map(|s| s.wait_seconds + s.install_seconds)
            .sum();
        assert_eq!(total, 15.0, "adds up to the last readiness, from creation");
    }

    #[test]
    fn releases_never_ready_are_left_out_of_the_critical_path() {
        let graph = environment_graph([], [("a", [].as_slice())]);
        let t = BTreeMap::from([(
            "a".to_owned(),
            ReleaseTimings {
                created_at: Some(Time(at(1))),
                ..ReleaseTimings::default()
            },
        )]);
        assert!(critical_path(&graph, &t, at(0)).is_empty());
    }
}
