//! The "what next" function of a reconcile: what was observed in, the one next step out.
//! Pure, so every rule of SPEC §2.6 is tested without an API server; when to look again after
//! a decision ([`Decision::look_again_after`]) is decided here too.

use std::time::Duration;

use upstart_api::v1alpha1::{Dependency, DependencyKind, HookStatus};
use upstart_release_engine::health::Health;

use crate::constants::reasons;

/// Everything a reconcile observed about one release, as plain data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// `spec.suspend`.
    pub suspended: bool,
    /// Problems of the spec itself (see [`alias_problems`]): only a spec change fixes them.
    pub spec_problems: Vec<SpecProblem>,
    /// Every declared dependency, in spec order.
    pub dependencies: Vec<DependencyObservation>,
    /// The values document, once every dependency is Ready.
    pub values: ValuesState,
    /// `status.appliedDigest`: what the last successful apply was made from.
    pub applied_digest: Option<String>,
    /// Inventory objects that no longer exist (deleted by hand: drift), as `Kind/name`.
    pub inventory_missing: Vec<String>,
    /// Inventory objects another field manager wrote since our last apply of them (changed by
    /// hand: drift), as `Kind/name`; a write already corrected is not listed again.
    pub inventory_edited: Vec<String>,
    /// `spec.wait`: Ready requires healthy workloads.
    pub wait: bool,
    /// Combined health of the inventory.
    pub health: Health,
    /// The release has been waiting for health longer than `spec.timeout`.
    pub health_timed_out: bool,
    /// Non-optional `outputsFrom` entries that do not hold what they must yet (descriptions,
    /// never values).
    pub published_missing: Vec<String>,
    /// `spec.interval` has passed since the last apply: re-apply to correct drift of objects
    /// changed by hand (SPEC §2.5).
    pub reapply_due: bool,
    /// The release's environment fell asleep or woke since the last apply (its asleep
    /// annotation differs from `status.asleep`): the same render goes again, its workloads'
    /// replicas zeroed or put back.
    pub sleep_changed: bool,
}

/// A problem of the spec itself, found without reading anything else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecProblem {
    /// Bounded condition reason.
    pub reason: String,
    pub message: String,
}

/// Dependency aliases of `release` used twice or hiding a built-in expression root
/// (`environment`, `service`, `release`), as `upstart validate` reports them offline; and
/// `EnvironmentRelease` dependencies, which only UpstartServices and UpstartEnvironments
/// resolve (their children name the HelmRelease itself).
pub fn alias_problems(release: &str, dependencies: &[Dependency]) -> Vec<SpecProblem> {
    let mut problems: Vec<SpecProblem> = upstart_dag::check_aliases(release, dependencies)
        .iter()
        .map(|error| SpecProblem {
            reason: error.reason().to_owned(),
            message: error.to_string(),
        })
        .collect();
    problems.extend(
        dependencies
            .iter()
            .filter(|d| d.kind == Some(DependencyKind::EnvironmentRelease))
            .map(|d| SpecProblem {
                reason: reasons::UNRESOLVED_ENVIRONMENT_RELEASE.to_owned(),
                message: format!(
                    "{release}: dependency {name} has kind EnvironmentRelease, which only UpstartServices and UpstartEnvironments resolve; a HelmRelease names the release itself: kind HelmRelease, name <environment>-{name} (or {name} outside an environment)",
                    name = d.name
                ),
            }),
    );
    problems
}

/// The dependency cycle `release` is on, among the HelmReleases of its namespace (name and
/// dependencies each): its releases could only wait for each other for ever. (Cycles through
/// UpstartServices are the service operator's to report.)
pub fn cycle_problems<'a>(
    release: &str,
    namespace_releases: impl IntoIterator<Item = (&'a str, &'a [Dependency])>,
) -> Vec<SpecProblem> {
    let mut input = upstart_dag::GraphInput::new();
    for (name, dependencies) in namespace_releases {
        input.add_release(name, dependencies);
    }
    let me = upstart_dag::NodeId::release(release);
    upstart_dag::DependencyGraph::build(&input)
        .ordering()
        .cycles
        .iter()
        .filter(|cycle| cycle.members.contains(&me))
        .map(|cycle| {
            let error = cycle.to_error();
            SpecProblem {
                reason: error.reason().to_owned(),
                message: error.to_string(),
            }
        })
        .collect()
}

/// One declared dependency as found in the namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DependencyObservation {
    /// The name as written in the spec.
    pub name: String,
    pub state: DependencyState,
}

/// What a dependency is right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DependencyState {
    /// Ready for its own current generation.
    Ready,
    /// Exists but is not Ready; the message is its own (names and reasons only).
    NotReady { message: String },
    /// Nothing of that name (and kind) exists in the namespace yet: a wait.
    Missing,
    /// Both a HelmRelease and an UpstartService have that name and no `kind` says which: only a
    /// spec change can fix it.
    Ambiguous,
}

/// The values document of the release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValuesState {
    /// Not evaluated (dependencies are not Ready yet).
    NotObserved,
    /// Merged and substituted; `digest` covers everything the render depends on.
    Resolved { digest: String },
    /// Only a spec change can fix it (expression syntax, unknown root, a values document that
    /// is not a map...).
    SpecError { reason: String, message: String },
    /// Something it reads does not exist yet (an output key, a valuesFrom object).
    Wait { reason: String, message: String },
}

/// The one next step of a reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// `spec.suspend`: touch nothing.
    Suspended,
    /// Values not evaluated yet.
    Pending,
    /// Some dependency is missing or not Ready.
    WaitForDependencies { message: String },
    /// Retrying cannot help; wait for a spec change.
    SpecError { reason: String, message: String },
    /// Values read something that does not exist yet.
    WaitForOutputs { reason: String, message: String },
    /// Render and apply: the inputs changed, or applied objects went missing (or were changed
    /// by hand while the release is not Ready).
    Apply(Apply),
    /// Applied; workloads not healthy yet.
    WaitHealthy { message: String },
    /// Workloads failed, or did not become healthy within the timeout.
    Failed { message: String },
    /// Healthy, but its own outputs are not all published yet.
    WaitForPublishedOutputs { message: String },
    /// Ready, and the interval has passed or applied objects were changed by hand: re-apply
    /// the same render (status stays Ready).
    Reapply(Reapply),
    /// Nothing to do.
    Ready,
}

/// What [`Decision::Apply`] applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Apply {
    /// Something was applied before: the render is an upgrade (`.Release.IsUpgrade`, the
    /// upgrade hooks), else an install.
    pub upgrade: bool,
    /// Each object this apply puts back and why (`Kind/name (why)`), as the Event names them.
    pub drift: Vec<String>,
}

/// What [`Decision::Reapply`] puts back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reapply {
    /// Each object changed by hand and why; empty for the interval re-apply.
    pub drift: Vec<String>,
}

/// The next step for what was observed (SPEC §2.6, in its order).
pub fn decide(observation: &Observation) -> Decision {
    if observation.suspended {
        return Decision::Suspended;
    }
    if let Some(first) = observation.spec_problems.first() {
        return Decision::SpecError {
            reason: first.reason.clone(),
            message: observation
                .spec_problems
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        };
    }
    let ambiguous: Vec<&str> = observation
        .dependencies
        .iter()
        .filter(|d| d.state == DependencyState::Ambiguous)
        .map(|d| d.name.as_str())
        .collect();
    if !ambiguous.is_empty() {
        return Decision::SpecError {
            reason: upstart_dag::reasons::AMBIGUOUS_DEPENDENCY.to_owned(),
            message: format!(
                "dependency {} names both a HelmRelease and an UpstartService: set its kind",
                ambiguous.join(", ")
            ),
        };
    }
    let waiting: Vec<String> = observation
        .dependencies
        .iter()
        .filter_map(|d| match &d.state {
            DependencyState::Ready | DependencyState::Ambiguous => None,
            DependencyState::Missing => Some(format!("{}: does not exist", d.name)),
            DependencyState::NotReady { message } => Some(format!("{}: {message}", d.name)),
        })
        .collect();
    if !waiting.is_empty() {
        return Decision::WaitForDependencies {
            message: format!("waiting for {}", waiting.join("; ")),
        };
    }
    let digest = match &observation.values {
        ValuesState::NotObserved => return Decision::Pending,
        ValuesState::SpecError { reason, message } => {
            return Decision::SpecError {
                reason: reason.clone(),
                message: message.clone(),
            };
        }
        ValuesState::Wait { reason, message } => {
            return Decision::WaitForOutputs {
                reason: reason.clone(),
                message: message.clone(),
            };
        }
        ValuesState::Resolved { digest } => digest,
    };
    let applied = observation.applied_digest.as_deref() == Some(digest.as_str());
    let deleted = described(&observation.inventory_missing, DELETED);
    let edited = described(&observation.inventory_edited, CHANGED);
    if !applied || !deleted.is_empty() {
        return Decision::Apply(Apply {
            upgrade: observation.applied_digest.is_some(),
            // Only what had been applied can have drifted: during an install or upgrade the
            // recorded inventory also holds objects not applied yet.
            drift: if applied {
                deleted.into_iter().chain(edited).collect()
            } else {
                Vec::new()
            },
        });
    }
    // An edit is put back before health is judged: a broken image set by hand must not fail
    // the release, nor wait for the interval. A release that is not Ready otherwise goes
    // through a plain apply; a Ready one stays Ready (below).
    let not_ready = (observation.wait && !observation.health.is_healthy())
        || !observation.published_missing.is_empty();
    if not_ready && !edited.is_empty() {
        return Decision::Apply(Apply {
            upgrade: true,
            drift: edited,
        });
    }
    // Before health is judged: a release that falls asleep mid-rollout must not wait for
    // it, and a woken one is unhealthy until its replicas are put back.
    if observation.sleep_changed {
        return Decision::Reapply(Reapply { drift: edited });
    }
    if observation.wait {
        match &observation.health {
            Health::Failed(message) => {
                return Decision::Failed {
                    message: message.clone(),
                };
            }
            Health::Progressing(message) if observation.health_timed_out => {
                return Decision::Failed {
                    message: format!("not healthy within the timeout: {message}"),
                };
            }
            Health::Progressing(message) => {
                return Decision::WaitHealthy {
                    message: message.clone(),
                };
            }
            Health::Healthy => {}
        }
    }
    if !observation.published_missing.is_empty() {
        return Decision::WaitForPublishedOutputs {
            message: format!(
                "waiting for outputs: {}",
                observation.published_missing.join("; ")
            ),
        };
    }
    if observation.reapply_due || !edited.is_empty() {
        return Decision::Reapply(Reapply { drift: edited });
    }
    Decision::Ready
}

const DELETED: &str = "deleted by hand";
const CHANGED: &str = "changed by hand";

/// `Kind/name (why)` for each drifted object, as the Event and the log name them.
fn described(objects: &[String], why: &str) -> Vec<String> {
    objects
        .iter()
        .map(|object| format!("{object} ({why})"))
        .collect()
}

/// How soon a release waiting for its workloads is looked at again if no watch event came.
pub const HEALTH_RECHECK: Duration = Duration::from_secs(30);

impl Decision {
    /// When to look at a release again after a decision that applied nothing (`None`: only
    /// when something changes). Watch events are what wake a release; these are safety nets,
    /// except the one that notices a health timeout (`timeout_in`: how long until it passes).
    pub fn look_again_after(
        &self,
        timeout_in: Option<Duration>,
        interval: Duration,
    ) -> Option<Duration> {
        match self {
            Decision::Suspended | Decision::SpecError { .. } => None,
            // Workload changes wake the release; this only makes sure the timeout is noticed.
            Decision::WaitHealthy { .. } => Some(
                timeout_in
                    .map_or(HEALTH_RECHECK, |left| {
                        left.saturating_add(Duration::from_millis(100))
                    })
                    .min(HEALTH_RECHECK),
            ),
            Decision::WaitForPublishedOutputs { .. } | Decision::Failed { .. } => {
                Some(HEALTH_RECHECK)
            }
            Decision::Pending
            | Decision::WaitForDependencies { .. }
            | Decision::WaitForOutputs { .. }
            | Decision::Apply(_)
            | Decision::Reapply(_)
            | Decision::Ready => Some(interval),
        }
    }
}

/// Whether the `interval` re-apply is due: the interval has passed since this process last
/// applied the release, or, when it has not applied it yet (it just started: a restart or a new
/// leader), since it first looked at it. A restart alone re-renders nothing, so values a chart
/// generates at render time do not rotate on failover; drift that happened while no operator
/// ran is still seen at once by the observation (objects deleted or changed by hand).
pub fn reapply_due(
    since_last_apply: Option<Duration>,
    since_first_seen: Duration,
    interval: Duration,
) -> bool {
    since_last_apply.unwrap_or(since_first_seen) >= interval
}

/// The hooks of the run applying `digest` that status records as succeeded (`status.hooks`
/// and `status.hooksDigest`): they are not run again for the same inputs, even once their
/// object is gone (`ttlSecondsAfterFinished: 0`, a `hook-succeeded` deletion) or after a
/// restart: a migration runs once. Hooks recorded for other inputs belong to another run.
pub fn hooks_already_succeeded(
    recorded: &[HookStatus],
    recorded_digest: Option<&str>,
    digest: &str,
) -> Vec<HookStatus> {
    if recorded_digest != Some(digest) {
        return Vec::new();
    }
    recorded
        .iter()
        .filter(|h| h.phase == HOOK_SUCCEEDED)
        .cloned()
        .collect()
}

/// `status.hooks[].phase` of a hook that succeeded.
pub const HOOK_SUCCEEDED: &str = "Succeeded";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_alone_does_not_make_the_interval_reapply_due() {
        let interval = Duration::from_secs(600);
        // Just started: nothing applied by this process, first seen now.
        assert!(!reapply_due(None, Duration::ZERO, interval));
        // Its clock runs from when it first saw the release.
        assert!(reapply_due(None, interval, interval));
        assert!(!reapply_due(
            Some(Duration::from_secs(10)),
            Duration::from_secs(900),
            interval
        ));
        assert!(reapply_due(
            Some(Duration::from_secs(601)),
            Duration::from_secs(601),
            interval
        ));
    }

    fn hook(event: &str, object: &str, phase: &str) -> HookStatus {
        HookStatus {
            event: event.into(),
            object: object.into(),
            phase: phase.into(),
        }
    }

    #[test]
    fn hooks_that_succeeded_for_the_same_inputs_are_not_run_again() {
        let recorded = [
            hook("pre-install", "Job/migrate", "Succeeded"),
            hook("post-install", "Job/seed", "Running"),
            hook("post-install", "Job/notify", "Failed"),
        ];
        assert_eq!(
            hooks_already_succeeded(&recorded, Some("sha256:a"), "sha256:a"),
            [hook("pre-install", "Job/migrate", "Succeeded")],
            "a running hook is looked at, a failed one is run again"
        );
    }

    #[test]
    fn hooks_recorded_for_other_inputs_belong_to_another_run() {
        let recorded = [hook("pre-upgrade", "Job/migrate", "Succeeded")];
        assert!(hooks_already_succeeded(&recorded, Some("sha256:a"), "sha256:b").is_empty());
        // Recorded before status said which inputs they were for.
        assert!(hooks_already_succeeded(&recorded, None, "sha256:a").is_empty());
    }

    fn ready_observation() -> Observation {
        Observation {
            suspended: false,
            spec_problems: vec![],
            dependencies: vec![DependencyObservation {
                name: "postgres".into(),
                state: DependencyState::Ready,
            }],
            values: ValuesState::Resolved {
                digest: "sha256:a".into(),
            },
            applied_digest: Some("sha256:a".into()),
            inventory_missing: vec![],
            inventory_edited: vec![],
            wait: true,
            health: Health::Healthy,
            health_timed_out: false,
            published_missing: vec![],
            reapply_due: false,
            sleep_changed: false,
        }
    }

    fn dependency(name: &str, state: DependencyState) -> DependencyObservation {
        DependencyObservation {
            name: name.into(),
            state,
        }
    }

    #[test]
    fn applied_healthy_release_with_its_outputs_is_ready() {
        assert_eq!(decide(&ready_observation()), Decision::Ready);
    }

    #[test]
    fn suspended_release_does_nothing_whatever_else_is_true() {
        let mut o = ready_observation();
        o.suspended = true;
        o.applied_digest = None;
        o.dependencies[0].state = DependencyState::Ambiguous;
        assert_eq!(decide(&o), Decision::Suspended);
    }

    #[test]
    fn ambiguous_dependency_is_a_spec_error_even_when_others_are_missing() {
        let mut o = ready_observation();
        o.dependencies = vec![
            dependency("redis", DependencyState::Missing),
            dependency("db", DependencyState::Ambiguous),
        ];
        match decide(&o) {
            Decision::SpecError { reason, message } => {
                assert_eq!(reason, "AmbiguousDependency");
                assert!(message.contains("db"), "{message}");
            }
            other => panic!("expected a spec error, got {other:?}"),
        }
    }

    fn declared(name: &str, alias: Option<&str>) -> Dependency {
        Dependency {
            name: name.into(),
            kind: None,
            alias: alias.map(str::to_owned),
        }
    }

    #[test]
    fn two_dependencies_with_one_alias_are_a_spec_error_naming_it() {
        let mut o = ready_observation();
        o.spec_problems = alias_problems(
            "app",
            &[declared("postgres", Some("db")), declared("db", None)],
        );
        match decide(&o) {
            Decision::SpecError { reason, message } => {
                assert_eq!(reason, "DuplicateAlias");
                assert!(message.contains("db"), "{message}");
            }
            other => panic!("expected a spec error, got {other:?}"),
        }
    }

    #[test]
    fn alias_hiding_a_built_in_root_is_a_spec_error_even_while_dependencies_wait() {
        let mut o = ready_observation();
        o.dependencies[0].state = DependencyState::Missing;
        o.spec_problems = alias_problems("app", &[declared("postgres", Some("service"))]);
        match decide(&o) {
            Decision::SpecError { reason, message } => {
                assert_eq!(reason, "ReservedAlias");
                assert!(message.contains("service"), "{message}");
            }
            other => panic!("expected a spec error, got {other:?}"),
        }
    }

    #[test]
    fn environment_release_kind_on_a_helm_release_is_a_spec_error_naming_the_release_to_use() {
        let mut o = ready_observation();
        o.spec_problems = alias_problems(
            "app",
            &[Dependency {
                kind: Some(DependencyKind::EnvironmentRelease),
                ..declared("launch-darkly", None)
            }],
        );
        match decide(&o) {
            Decision::SpecError { reason, message } => {
                assert_eq!(reason, reasons::UNRESOLVED_ENVIRONMENT_RELEASE);
                assert!(
                    message.contains("name <environment>-launch-darkly"),
                    "{message}"
                );
            }
            other => panic!("expected a spec error, got {other:?}"),
        }
    }

    #[test]
    fn release_on_a_cycle_of_plain_helm_releases_is_a_spec_error_naming_the_path() {
        let a = [declared("b", None)];
        let b = [declared("a", None)];
        let c = [declared("a", None)];
        let releases = [("a", &a[..]), ("b", &b[..]), ("c", &c[..])];
        let problems = cycle_problems("a", releases);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].reason, "DependencyCycle");
        assert_eq!(problems[0].message, "dependency cycle: a -> b -> a");
        // c only waits behind the cycle: not on it, so not a spec error of its own.
        assert!(cycle_problems("c", releases).is_empty());
        let mut o = ready_observation();
        o.spec_problems = problems;
        assert!(matches!(decide(&o), Decision::SpecError { .. }));
    }

    #[test]
    fn dependency_named_like_a_root_with_another_alias_is_fine() {
        assert!(
            alias_problems(
                "app",
                &[declared("release", Some("rel")), declared("other", None)]
            )
            .is_empty()
        );
    }

    #[test]
    fn missing_dependency_is_a_wait_naming_it() {
        let mut o = ready_observation();
        o.dependencies[0].state = DependencyState::Missing;
        assert_eq!(
            decide(&o),
            Decision::WaitForDependencies {
                message: "waiting for postgres: does not exist".into()
            }
        );
    }

    #[test]
    fn dependency_not_ready_is_a_wait_quoting_its_reason() {
        let mut o = ready_observation();
        o.dependencies.push(dependency(
            "redis",
            DependencyState::NotReady {
                message: "Deployment/redis 0/1 available".into(),
            },
        ));
        assert_eq!(
            decide(&o),
            Decision::WaitForDependencies {
                message: "waiting for redis: Deployment/redis 0/1 available".into()
            }
        );
    }

    #[test]
    fn every_waiting_dependency_is_named() {
        let mut o = ready_observation();
        o.dependencies = vec![
            dependency("a", DependencyState::Missing),
            dependency("b", DependencyState::Ready),
            dependency(
                "c",
                DependencyState::NotReady {
                    message: "Installing".into(),
                },
            ),
        ];
        assert_eq!(
            decide(&o),
            Decision::WaitForDependencies {
                message: "waiting for a: does not exist; c: Installing".into()
            }
        );
    }

    #[test]
    fn release_without_dependencies_goes_straight_to_its_values() {
        let mut o = ready_observation();
        o.dependencies.clear();
        o.applied_digest = None;
        assert_eq!(
            decide(&o),
            Decision::Apply(Apply {
                upgrade: false,
                drift: vec![]
            })
        );
    }

    #[test]
    fn unevaluated_values_leave_the_release_pending() {
        let mut o = ready_observation();
        o.values = ValuesState::NotObserved;
        assert_eq!(decide(&o), Decision::Pending);
    }

    #[test]
    fn expression_spec_error_stops_the_release() {
        let mut o = ready_observation();
        o.values = ValuesState::SpecError {
            reason: "ExpressionSyntax".into(),
            message: "spec.values.url: bad".into(),
        };
        assert!(
            matches!(decide(&o), Decision::SpecError { reason, .. } if reason == "ExpressionSyntax")
        );
    }

    #[test]
    fn missing_output_key_is_a_wait_not_a_failure() {
        let mut o = ready_observation();
        o.values = ValuesState::Wait {
            reason: "MissingOutput".into(),
            message: "postgres.outputs.PASSWORD is missing".into(),
        };
        assert!(
            matches!(decide(&o), Decision::WaitForOutputs { reason, .. } if reason == "MissingOutput")
        );
    }

    #[test]
    fn never_applied_release_is_installed() {
        let mut o = ready_observation();
        o.applied_digest = None;
        o.health = Health::Progressing("Deployment/app does not exist".into());
        assert_eq!(
            decide(&o),
            Decision::Apply(Apply {
                upgrade: false,
                drift: vec![]
            })
        );
    }

    #[test]
    fn changed_inputs_are_applied_as_an_upgrade() {
        let mut o = ready_observation();
        o.values = ValuesState::Resolved {
            digest: "sha256:b".into(),
        };
        assert_eq!(
            decide(&o),
            Decision::Apply(Apply {
                upgrade: true,
                drift: vec![]
            })
        );
    }

    #[test]
    fn object_deleted_by_hand_is_put_back() {
        let mut o = ready_observation();
        o.inventory_missing = vec!["ConfigMap/settings".into()];
        assert_eq!(
            decide(&o),
            Decision::Apply(Apply {
                upgrade: true,
                drift: vec!["ConfigMap/settings (deleted by hand)".into()]
            })
        );
    }

    #[test]
    fn object_changed_by_hand_is_put_back_at_once_without_leaving_ready() {
        let mut o = ready_observation();
        o.inventory_edited = vec!["ConfigMap/settings".into()];
        assert_eq!(
            decide(&o),
            Decision::Reapply(Reapply {
                drift: vec!["ConfigMap/settings (changed by hand)".into()]
            })
        );
    }

    #[test]
    fn workload_changed_by_hand_into_failure_is_put_back_rather_than_failing() {
        let mut o = ready_observation();
        o.inventory_edited = vec!["Deployment/app".into()];
        o.health = Health::Failed("Deployment/app: image pull failed".into());
        assert_eq!(
            decide(&o),
            Decision::Apply(Apply {
                upgrade: true,
                drift: vec!["Deployment/app (changed by hand)".into()]
            })
        );
    }

    #[test]
    fn objects_changed_and_deleted_by_hand_are_put_back_together() {
        let mut o = ready_observation();
        o.inventory_missing = vec!["ConfigMap/a".into()];
        o.inventory_edited = vec!["Deployment/b".into()];
        assert_eq!(
            decide(&o),
            Decision::Apply(Apply {
                upgrade: true,
                drift: vec![
                    "ConfigMap/a (deleted by hand)".into(),
                    "Deployment/b (changed by hand)".into()
                ]
            })
        );
    }

    #[test]
    fn objects_changed_during_an_upgrade_are_not_drift() {
        let mut o = ready_observation();
        o.values = ValuesState::Resolved {
            digest: "sha256:b".into(),
        };
        o.inventory_edited = vec!["ConfigMap/settings".into()];
        assert_eq!(
            decide(&o),
            Decision::Apply(Apply {
                upgrade: true,
                drift: vec![]
            })
        );
    }

    #[test]
    fn objects_missing_during_an_upgrade_are_not_drift() {
        let mut o = ready_observation();
        o.values = ValuesState::Resolved {
            digest: "sha256:b".into(),
        };
        o.inventory_missing = vec!["ConfigMap/new".into()];
        assert_eq!(
            decide(&o),
            Decision::Apply(Apply {
                upgrade: true,
                drift: vec![]
            })
        );
    }

    #[test]
    fn applied_release_waits_for_progressing_workloads() {
        let mut o = ready_observation();
        o.health = Health::Progressing("Deployment/app 0/1 available".into());
        assert_eq!(
            decide(&o),
            Decision::WaitHealthy {
                message: "Deployment/app 0/1 available".into()
            }
        );
    }

    #[test]
    fn failed_workload_fails_the_release() {
        let mut o = ready_observation();
        o.health = Health::Failed("Job/migrate failed".into());
        assert_eq!(
            decide(&o),
            Decision::Failed {
                message: "Job/migrate failed".into()
            }
        );
    }

    #[test]
    fn workload_still_progressing_after_the_timeout_fails_the_release() {
        let mut o = ready_observation();
        o.health = Health::Progressing("Deployment/app 0/1 available".into());
        o.health_timed_out = true;
        assert!(matches!(decide(&o), Decision::Failed { message } if message.contains("timeout")));
    }

    #[test]
    fn without_wait_an_applied_release_is_ready_whatever_its_health() {
        let mut o = ready_observation();
        o.wait = false;
        o.health = Health::Failed("Job/migrate failed".into());
        assert_eq!(decide(&o), Decision::Ready);
    }

    #[test]
    fn ready_release_is_reapplied_once_the_interval_has_passed() {
        let mut o = ready_observation();
        o.reapply_due = true;
        assert_eq!(decide(&o), Decision::Reapply(Reapply { drift: vec![] }));
    }

    #[test]
    fn release_whose_environment_falls_asleep_mid_rollout_is_reapplied_at_once() {
        let mut o = ready_observation();
        o.sleep_changed = true;
        o.health = Health::Progressing("Deployment/app 0/1 available".into());
        assert_eq!(decide(&o), Decision::Reapply(Reapply { drift: vec![] }));
    }

    #[test]
    fn release_still_progressing_is_not_reapplied_on_the_interval() {
        let mut o = ready_observation();
        o.reapply_due = true;
        o.health = Health::Progressing("Deployment/app 0/1 available".into());
        assert!(matches!(decide(&o), Decision::WaitHealthy { .. }));
    }

    #[test]
    fn healthy_release_waits_for_its_own_outputs() {
        let mut o = ready_observation();
        o.published_missing = vec!["Secret/postgres does not exist".into()];
        assert_eq!(
            decide(&o),
            Decision::WaitForPublishedOutputs {
                message: "waiting for outputs: Secret/postgres does not exist".into()
            }
        );
    }

    #[test]
    fn a_spec_error_or_a_suspended_release_waits_for_a_change_and_a_health_wait_for_its_timeout() {
        let interval = Duration::from_secs(600);
        assert_eq!(Decision::Suspended.look_again_after(None, interval), None);
        let spec_error = Decision::SpecError {
            reason: "ExpressionSyntax".into(),
            message: "bad".into(),
        };
        assert_eq!(spec_error.look_again_after(None, interval), None);
        assert_eq!(
            Decision::Ready.look_again_after(None, interval),
            Some(interval)
        );
        let waiting = Decision::WaitHealthy {
            message: "Deployment/web 0/1 available".into(),
        };
        assert_eq!(
            waiting.look_again_after(Some(Duration::from_secs(2)), interval),
            Some(Duration::from_millis(2100))
        );
        assert_eq!(
            waiting.look_again_after(None, interval),
            Some(HEALTH_RECHECK)
        );
    }
}
