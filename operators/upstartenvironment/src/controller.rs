//! The kube-facing side of the operator: observe an environment, its namespace, services and
//! releases; apply what [`crate::children`] builds; write the status of [`crate::status`];
//! tear down in the order of [`crate::teardown`]. Thin on purpose.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, PostParams};
use kube::core::object::HasSpec;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::{info, instrument, warn};
use upstart_api::conditions::{READY, STALLED, find, is_ready_for_generation};
use upstart_api::labels::{
    ENVIRONMENT_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, REQUESTER_ANNOTATION,
};
use upstart_api::v1alpha1::{
    Endpoint, EnvironmentPhase, HelmRelease, HelmReleasePhase, ServicePhase, SleepStatus,
    UpstartEnvironment, UpstartEnvironmentStatus, UpstartService, UpstartServiceSpec,
};
use upstart_dag::{DependencyGraph, Expressions, NodeId, NodeKind, validate_template};
use upstart_operator_runtime::objects::Deletion;
use upstart_operator_runtime::{
    Action, Cache, Cleanup, Controller, ControllerMetrics, EventRecorder, FailureBackoff,
    OperatorContext, PhaseSummary, Shutdown, apply_status, finalizer, objects,
};

use crate::Error;
use crate::admission::{self, Candidate, Limits, Other, QUOTA_NAME, Quota, Refusal};
use crate::children::{
    self, Desired, NamespaceState, Problem, Sources, is_owned_by, namespace_name,
};
use crate::constants::{CONTROLLER, FIELD_MANAGER, FINALIZER, reasons};
use crate::endpoints;
use crate::error::ApiStep;
use crate::expiry;
use crate::metrics::EnvironmentMetrics;
use crate::sleep;
use crate::sleeping;
use crate::status::{self, Member, Observation, deleting_status, next_status, refused_status};
use crate::teardown::{environment_graph, held_back, next_level};
use crate::templates::{TemplateCopy, TemplateState};
use crate::tenancy::{ReleaseAccess, ReleaseAccounts};
use crate::wakeups;

/// How often an environment is looked at when no watch event came: a safety net only.
const RESYNC: Duration = Duration::from_secs(300);
/// How often a refused environment is looked at again if no deletion woke it: a safety net.
const REFUSED_RECHECK: Duration = Duration::from_secs(30);
/// How soon a teardown (or a removal) in progress is looked at again if no watch event came.
const TEARDOWN_RECHECK: Duration = Duration::from_secs(5);

/// What the operator is configured with.
#[derive(Clone, Debug)]
pub struct Config {
    /// The namespace holding the UpstartService catalog (templates).
    pub catalog_namespace: String,
    /// How long a teardown waits for each level to be gone before it proceeds anyway.
    pub teardown_timeout: Duration,
    /// The account each environment's releases act as ([`crate::tenancy`]); `None`: the
    /// releases name no account (the HelmRelease operator's default applies).
    pub release_access: Option<ReleaseAccess>,
    /// Caps on environments, quota defaults and maximums ([`crate::admission`]).
    pub limits: Limits,
}

impl Default for Config {
    /// The defaults of the binary's flags.
    fn default() -> Self {
        Config {
            catalog_namespace: upstart_api::names::DEFAULT_CATALOG_NAMESPACE.to_owned(),
            teardown_timeout: Duration::from_secs(600),
            release_access: None,
            limits: Limits::default(),
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    client: Client,
    metrics: ControllerMetrics,
    environment_metrics: EnvironmentMetrics,
    recorder: EventRecorder,
    backoff: FailureBackoff<ObjectRef<UpstartEnvironment>>,
    config: Config,
    release_accounts: Option<ReleaseAccounts>,
    /// Validates catalog templates before they are copied.
    expressions: Expressions,
    /// Every environment, for the caps ([`crate::admission`]).
    environments: Store<UpstartEnvironment>,
    /// Every UpstartService (members and catalog templates), kept by the watch that wakes the
    /// environments a change concerns.
    services: Cache<UpstartService>,
    /// Every HelmRelease, kept by the watch that wakes the environments a change concerns.
    releases: Cache<HelmRelease>,
}

/// Runs the controller until `shutdown` fires: the work handed to the shared runtime
/// (`upstart_operator_runtime::run`), in the binary and in process alike.
pub async fn run(op: OperatorContext, config: Config, shutdown: Shutdown) -> Result<(), Error> {
    let client = op.client.clone();
    // Registered before the watch starts, so /readyz never reports ready before the cache.
    let ready = op.readiness.register(CONTROLLER);
    let environments: Api<UpstartEnvironment> = Api::all(client.clone());
    let synced = ready.clone();
    let environment_metrics = EnvironmentMetrics::register(&op.metrics)?;
    let by_phase = environment_metrics.environments_by_phase.clone();
    let (store, trigger) = ready.watch_counting(environments, op.watcher_config(), move |store| {
        by_phase.count(
            store
                .state()
                .iter()
                .map(|e| e.status.as_ref().and_then(|s| s.phase)),
        );
    });
    let controller =
        Controller::for_stream(trigger, store.clone()).with_config(op.controller_config());
    // Members and templates are read from memory: each cache holds a change before its watch
    // wakes the environments it concerns.
    let (services, service_changes) = Cache::watch(
        Api::<UpstartService>::all(client.clone()),
        watcher::Config::default(),
    );
    let (releases, release_changes) = Cache::watch(
        Api::<HelmRelease>::all(client.clone()),
        watcher::Config::default(),
    );
    let context = Arc::new(Context {
        client: client.clone(),
        metrics: op.metrics.controller(CONTROLLER),
        environment_metrics,
        recorder: op.recorder(CONTROLLER),
        backoff: FailureBackoff::default(),
        config: config.clone(),
        release_accounts: config.release_access.clone().map(ReleaseAccounts::new),
        expressions: Expressions::new(),
        environments: store.clone(),
        services,
        releases,
    });
    let by_service = store.clone();
    let by_release = store.clone();
    let refused = store.clone();
    let catalog = config.catalog_namespace.clone();
    let ctx_client = client.clone();
    let controller = controller
        .watches_stream(service_changes, move |service| {
            wakeups::woken_by_member(
                &by_service.state(),
                &catalog,
                service.namespace().as_deref(),
                &service.name_any(),
                service.labels(),
                true,
            )
        })
        .watches_stream(release_changes, move |release| {
            wakeups::woken_by_member(
                &by_release.state(),
                "",
                release.namespace().as_deref(),
                &release.name_any(),
                release.labels(),
                false,
            )
        })
        .watches(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default().labels(ENVIRONMENT_LABEL),
            |namespace| {
                wakeups::owners_of_namespace(namespace.owner_references(), namespace.labels())
            },
        )
        // An environment on its way out makes room: the refused ones are looked at again.
        .watches(
            Api::<UpstartEnvironment>::all(ctx_client),
            watcher::Config::default(),
            move |environment| {
                if environment.metadata.deletion_timestamp.is_none() {
                    return Vec::new();
                }
                refused
                    .state()
                    .iter()
                    .filter(|e| {
                        e.status.as_ref().and_then(|s| s.phase) == Some(EnvironmentPhase::Refused)
                    })
                    .map(|e| ObjectRef::from_obj(e.as_ref()))
                    .collect()
            },
        )
        // Stop taking work on SIGTERM or lost leadership; in-flight reconciles finish.
        .graceful_shutdown_on(shutdown.wait())
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            match result {
                Ok(_) => {}
                Err(upstart_operator_runtime::ControllerError::ReconcilerFailed(error, object)) => {
                    // The summary, not the error: an API message may quote an applied object.
                    warn!(reason = error.metric_label(), %object, failure = error.summary(), "reconcile failed");
                }
                Err(error) => warn!(%error, "controller error"),
            }
        });
    synced.run_until_stopped(controller, &shutdown).await;
    Ok(())
}

/// One reconcile: the finalizer decides between converging and tearing down (its cleanup).
#[instrument(skip_all, fields(name = env.name_any()))]
pub async fn reconcile(env: Arc<UpstartEnvironment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.count_and_measure();
    let key = ObjectRef::from_obj(env.as_ref());
    let api: Api<UpstartEnvironment> = Api::all(ctx.client.clone());
    // Reconcile the newest object, not the cached one: a wake-up by a child can come before our
    // own last status write reaches the cache.
    let Some(env) = api.get_opt(&env.name_any()).await.map_err(Error::kube(
        ApiStep::ReadEnvironment,
        "reading the UpstartEnvironment",
    ))?
    else {
        return Ok(Action::await_change());
    };
    let env = Arc::new(env);
    let (context, environments) = (ctx.as_ref(), &api);
    let result = finalizer(
        &api,
        FINALIZER,
        env.clone(),
        move |env| async move { converge(&env, context, environments).await },
        move |env| async move { teardown(&env, context, environments).await },
    )
    .await;
    match &result {
        Ok(_) => ctx.backoff.on_success(&key),
        Err(error) if error.is_conflict() => {}
        Err(error) => {
            let note = format!("{}; retrying", error.summary());
            ctx.recorder
                .warning(
                    &env.object_ref(&()),
                    error.reason(),
                    "Reconcile",
                    Some(&note),
                )
                .await;
        }
    }
    result
}

fn error_policy(env: Arc<UpstartEnvironment>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.set_failure(error);
    Action::requeue(ctx.backoff.on_failure(ObjectRef::from_obj(env.as_ref())))
}

/// The services and releases found in the environment's namespace.
#[derive(Default)]
struct Members {
    services: Vec<UpstartService>,
    releases: Vec<HelmRelease>,
}

impl Members {
    /// The members as the watch caches hold them, which may lag the API server a little. That
    /// is safe for converging: a change they do not show yet wakes the environment again once
    /// they hold it; a member missing from them is applied (server-side apply of what is there
    /// changes nothing) and the API server's answer used; one already gone is deleted again by
    /// name (a 404, nothing). While a cache's first list is not complete, a LIST instead.
    async fn read(ctx: &Context, namespace: &str) -> Result<Members, Error> {
        let services: Api<UpstartService> = Api::namespaced(ctx.client.clone(), namespace);
        let releases: Api<HelmRelease> = Api::namespaced(ctx.client.clone(), namespace);
        Ok(Members {
            services: ctx
                .services
                .in_namespace_or_list(&services, namespace)
                .await
                .map_err(Error::kube(
                    ApiStep::ListMembers,
                    "listing the UpstartServices",
                ))?,
            releases: ctx
                .releases
                .in_namespace_or_list(&releases, namespace)
                .await
                .map_err(Error::kube(
                    ApiStep::ListMembers,
                    "listing the HelmReleases",
                ))?,
        })
    }

    /// The members as the API server has them now.
    async fn list(ctx: &Context, namespace: &str) -> Result<Members, Error> {
        let services: Api<UpstartService> = Api::namespaced(ctx.client.clone(), namespace);
        let releases: Api<HelmRelease> = Api::namespaced(ctx.client.clone(), namespace);
        Ok(Members {
            services: services
                .list(&ListParams::default())
                .await
                .map_err(Error::kube(
                    ApiStep::ListMembers,
                    "listing the UpstartServices",
                ))?
                .items,
            releases: releases
                .list(&ListParams::default())
                .await
                .map_err(Error::kube(
                    ApiStep::ListMembers,
                    "listing the HelmReleases",
                ))?
                .items,
        })
    }

    /// The services owned by the environment.
    fn owned_services(&self, env_uid: &str) -> impl Iterator<Item = &UpstartService> {
        self.services
            .iter()
            .filter(move |s| is_owned_by(&s.metadata, env_uid))
    }

    /// The releases owned by the environment (environment-wide ones).
    fn owned_releases(&self, env_uid: &str) -> impl Iterator<Item = &HelmRelease> {
        self.releases
            .iter()
            .filter(move |r| is_owned_by(&r.metadata, env_uid))
    }

    /// The releases of the environment's own services (by owner name and uid) and its own
    /// releases: what its status counts.
    fn environment_releases<'a>(
        &'a self,
        env_uid: &'a str,
        services: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a HelmRelease> {
        self.releases.iter().filter(move |r| {
            is_owned_by(&r.metadata, env_uid)
                || service_owner(r)
                    .is_some_and(|(name, uid)| services.get(name).is_some_and(|u| u == uid))
        })
    }

    /// The graph of the owned services and environment releases as they are now.
    fn graph(&self, env_uid: &str) -> DependencyGraph {
        self.graph_with(env_uid, self.owned_releases(env_uid))
    }

    /// The graph the critical path is walked on: [`Members::graph`] plus every other HelmRelease
    /// of the namespace that no service owns (one applied by hand for a dependency the
    /// environment lacks), so the release that really held a dependent back is the one named.
    fn timing_graph(&self, env_uid: &str) -> DependencyGraph {
        self.graph_with(
            env_uid,
            self.releases.iter().filter(|r| service_owner(r).is_none()),
        )
    }

    /// The owned services (with their child releases) and `releases` beside them.
    fn graph_with<'a>(
        &'a self,
        env_uid: &str,
        releases: impl Iterator<Item = &'a HelmRelease>,
    ) -> DependencyGraph {
        let services: Vec<(String, &UpstartServiceSpec)> = self
            .owned_services(env_uid)
            .map(|s| (s.name_any(), &s.spec))
            .collect();
        let releases: Vec<(String, &[upstart_api::v1alpha1::Dependency])> = releases
            .map(|r| (r.name_any(), r.spec.dependencies.as_slice()))
            .collect();
        environment_graph(
            services.iter().map(|(n, s)| (n.as_str(), *s)),
            releases.iter().map(|(n, d)| (n.as_str(), *d)),
        )
    }

    /// Owned service name -> uid.
    fn service_uids(&self, env_uid: &str) -> BTreeMap<String, String> {
        self.owned_services(env_uid)
            .map(|s| (s.name_any(), s.uid().unwrap_or_default()))
            .collect()
    }

    /// Every service and release of the namespace that belongs to the environment: its own,
    /// and every child of an UpstartService, also one whose service is already gone (the
    /// namespace is the environment's, so its services are too).
    fn present(&self, env_uid: &str) -> BTreeSet<NodeId> {
        let mut present: BTreeSet<NodeId> = self
            .owned_services(env_uid)
            .map(|s| NodeId::service(s.name_any()))
            .collect();
        present.extend(
            self.releases
                .iter()
                .filter(|r| is_owned_by(&r.metadata, env_uid) || service_owner(r).is_some())
                .map(|r| NodeId::release(r.name_any())),
        );
        present
    }

    fn is_deleting(&self, node: &NodeId) -> bool {
        match node.kind {
            NodeKind::UpstartService => self
                .services
                .iter()
                .any(|s| s.name_any() == node.name && s.metadata.deletion_timestamp.is_some()),
            NodeKind::HelmRelease => self
                .releases
                .iter()
                .any(|r| r.name_any() == node.name && r.metadata.deletion_timestamp.is_some()),
        }
    }
}

/// The UpstartService owning a release, as (name, uid).
fn service_owner(release: &HelmRelease) -> Option<(&str, &str)> {
    release
        .owner_references()
        .iter()
        .find(|o| o.kind == "UpstartService")
        .map(|o| (o.name.as_str(), o.uid.as_str()))
}

/// Converges a live environment: namespace, children, removals, status, expiry.
async fn converge(
    env: &UpstartEnvironment,
    ctx: &Context,
    api: &Api<UpstartEnvironment>,
) -> Result<Action, Error> {
    let uid = env.uid().ok_or(Error::MissingUid)?;
    let namespace = namespace_name(env);
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let live = namespaces.get_opt(&namespace).await.map_err(Error::kube(
        ApiStep::ReadNamespace,
        format!("reading namespace {namespace}"),
    ))?;
    let mut namespace_state = children::namespace_state(live.as_ref(), &uid);
    let now = Timestamp::now();
    let quota = admission::quota(env.spec.quota.as_ref(), &ctx.config.limits);
    if namespace_state == NamespaceState::Missing
        && let Some(refusal) = refusal(env, ctx, quota.as_ref().err())
    {
        return refuse(ctx, api, env, &refusal, now).await;
    }
    if namespace_state == NamespaceState::Missing {
        if env.status.as_ref().and_then(|s| s.phase) == Some(EnvironmentPhase::Refused) {
            ctx.recorder
                .normal(
                    &env.object_ref(&()),
                    reasons::ADMITTED,
                    "Admit",
                    Some("there is room now: creating the environment"),
                )
                .await;
        }
        match namespaces
            .create(&PostParams::default(), &children::build_namespace(env))
            .await
        {
            Ok(_) => {
                info!(%namespace, "namespace created");
                namespace_state = NamespaceState::Owned;
            }
            // Someone else created it in between: the next reconcile classifies it.
            Err(kube::Error::Api(status)) if status.code == 409 => {
                return Ok(Action::requeue(Duration::from_millis(200)));
            }
            Err(source) => {
                return Err(Error::Kube {
                    step: ApiStep::CreateNamespace,
                    action: format!("creating namespace {namespace}"),
                    source,
                });
            }
        }
    } else if namespace_state == NamespaceState::Owned
        && let Some(live) = &live
        && live.labels().get(ENVIRONMENT_LABEL) != Some(&env.name_any())
    {
        // Labels removed by hand: the HelmRelease operator reads the environment from them.
        apply(
            &namespaces,
            &namespace,
            &children::build_namespace(env),
            ApiStep::ApplyChild,
        )
        .await?;
    }

    let mut members = if namespace_state == NamespaceState::Owned {
        Members::read(ctx, &namespace).await?
    } else {
        Members::default()
    };
    let sources = sources(ctx, env, &uid, &members).await?;
    let mut desired = children::desired(env, &sources, &|name, spec| {
        validate_template(name, spec, &ctx.expressions)
    });
    crate::chart_repositories::apply(&mut desired, &env.spec.chart_repositories);
    announce_catalog_changes(ctx, env, &desired).await;
    let sleep = match sleep::state_at(env.spec.sleep.as_ref(), now) {
        Ok(state) => Some(state),
        Err(message) => {
            desired.problems.push(Problem {
                service: env.name_any(),
                reason: reasons::INVALID_SLEEP_SCHEDULE,
                message,
            });
            None
        }
    };
    let expires_at = expiry::expires_at(env);

    let mut pending_removal = false;
    if namespace_state == NamespaceState::Owned {
        if let Some(accounts) = &ctx.release_accounts {
            accounts
                .ensure(&ctx.client, env, &namespace, &mut desired)
                .await?;
        }
        match &quota {
            Ok(quota) => apply_quota(ctx, env, &namespace, quota).await?,
            // Started already: it keeps the quota it has, and says why the new one is not used.
            Err(refusal) => desired.problems.push(Problem {
                service: env.name_any(),
                reason: refusal.reason,
                message: refusal.message.clone(),
            }),
        }
        apply_children(ctx, &namespace, &desired, &mut members).await?;
        if let Some(state) = &sleep {
            let services = members.service_uids(&uid);
            let marked = sleeping::mark(
                &ctx.client,
                &namespace,
                members.environment_releases(&uid, &services),
                env.spec.sleep.as_ref(),
                state.asleep,
            )
            .await?;
            let to = if state.asleep { "asleep" } else { "awake" };
            ctx.environment_metrics
                .sleep_transitions
                .with_label_values(&[to])
                .inc_by(marked);
        }
        let held;
        (pending_removal, held) =
            remove_unwanted(ctx, env, &uid, &namespace, &desired, &members).await?;
        announce_held(ctx, env, &held).await;
        desired.problems.extend(held);
    }

    let observation = observe(env, &uid, &namespace, namespace_state, &desired, &members);
    let endpoints = if namespace_state == NamespaceState::Owned {
        reachable(ctx, &namespace, &uid, &members).await?
    } else {
        Vec::new()
    };
    let created = env
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    let old = env.status.as_ref();
    let status = next_status(
        old,
        &Observation {
            // Recomputed from the spec every time: editing ttl moves it.
            expires_at,
            requester: env.annotations().get(REQUESTER_ANNOTATION).cloned(),
            endpoints,
            sleep: env
                .spec
                .sleep
                .as_ref()
                .and(sleep.as_ref())
                .map(|s| SleepStatus {
                    asleep: s.asleep,
                    by: s.by.as_str().to_owned(),
                    next_transition: s.next_transition.map(Time),
                }),
            ..observation
        },
        created,
        now,
        || {
            let services = members.service_uids(&uid);
            let timings = members
                .releases
                .iter()
                .filter(|r| {
                    service_owner(r)
                        .is_none_or(|(name, uid)| services.get(name).is_some_and(|u| u == uid))
                })
                .filter_map(|r| Some((r.name_any(), r.status.as_ref()?.timings.clone()?)))
                .collect();
            status::critical_path(&members.timing_graph(&uid), &timings, created)
        },
    );
    if old.and_then(|s| s.ready_at.as_ref()).is_none()
        && let Some(seconds) = status.time_to_ready_seconds
    {
        ctx.environment_metrics.time_to_ready.observe(seconds);
        info!(seconds, "environment Ready");
    }
    write_status(ctx, api, env, status).await?;

    let mut requeue = if pending_removal {
        TEARDOWN_RECHECK
    } else {
        RESYNC
    };
    // Requeue exactly at the expiry and at the next scheduled sleep or wake (a little after,
    // so the clock has passed it).
    if let Some(at) = expires_at {
        let left = expiry::time_left(at, now);
        if left.is_zero() {
            return expire(ctx, api, env).await;
        }
        requeue = requeue.min(left.saturating_add(Duration::from_millis(50)));
    }
    if let Some(at) = sleep.and_then(|s| s.next_transition) {
        requeue = requeue.min(expiry::time_left(at, now).saturating_add(Duration::from_millis(50)));
    }
    Ok(Action::requeue(requeue))
}

/// Why `env`, not started yet, may not start: its quota (`quota`, when refused) or a cap.
fn refusal(env: &UpstartEnvironment, ctx: &Context, quota: Option<&Refusal>) -> Option<Refusal> {
    if let Some(refusal) = quota {
        return Some(refusal.clone());
    }
    let limits = &ctx.config.limits;
    if !limits.caps() {
        return None;
    }
    let created = |e: &UpstartEnvironment| {
        e.metadata
            .creation_timestamp
            .as_ref()
            .map_or_else(Timestamp::now, |t| t.0)
    };
    let others: Vec<Other> = ctx
        .environments
        .state()
        .iter()
        .map(|e| {
            let status = e.status.as_ref();
            let phase = status.and_then(|s| s.phase);
            Other {
                name: e.name_any(),
                requester: e.annotations().get(REQUESTER_ANNOTATION).cloned(),
                created: created(e),
                started: phase.is_some_and(|p| p != EnvironmentPhase::Refused),
                refused_for_quota: phase == Some(EnvironmentPhase::Refused)
                    && status
                        .and_then(|s| find(&s.conditions, READY))
                        .is_some_and(|c| c.reason == reasons::QUOTA_ABOVE_MAXIMUM),
            }
        })
        .collect();
    let name = env.name_any();
    let candidate = Candidate {
        name: &name,
        requester: env
            .annotations()
            .get(REQUESTER_ANNOTATION)
            .map(String::as_str),
        created: created(env),
    };
    admission::admit(&candidate, &others, limits).err()
}

/// Writes the refusal (status, and an Event when it is new) and waits: a deletion of another
/// environment wakes it (see `run`), the resync is the safety net.
async fn refuse(
    ctx: &Context,
    api: &Api<UpstartEnvironment>,
    env: &UpstartEnvironment,
    refusal: &Refusal,
    now: Timestamp,
) -> Result<Action, Error> {
    // Said once per refusal and reason: the message's counts may move while it waits.
    let said = env.status.as_ref().is_some_and(|s| {
        s.phase == Some(EnvironmentPhase::Refused)
            && find(&s.conditions, READY).is_some_and(|c| c.reason == refusal.reason)
    });
    if !said {
        ctx.recorder
            .warning(
                &env.object_ref(&()),
                refusal.reason,
                "Admit",
                Some(&refusal.message),
            )
            .await;
        ctx.environment_metrics
            .refused
            .with_label_values(&[refusal.reason])
            .inc();
    }
    let status = refused_status(
        env.status.as_ref(),
        refusal.reason,
        &refusal.message,
        env.metadata.generation,
        now,
    );
    write_status(ctx, api, env, status).await?;
    Ok(Action::requeue(REFUSED_RECHECK))
}

/// Applies the namespace's ResourceQuota and LimitRange ([`crate::admission::build`]).
async fn apply_quota(
    ctx: &Context,
    env: &UpstartEnvironment,
    namespace: &str,
    quota: &Quota,
) -> Result<(), Error> {
    let (resource_quota, limit_range) = admission::build(env, namespace, quota);
    if let Some(object) = resource_quota {
        let api: Api<ResourceQuota> = Api::namespaced(ctx.client.clone(), namespace);
        apply(&api, QUOTA_NAME, &object, ApiStep::ApplyQuota).await?;
    }
    if let Some(object) = limit_range {
        let api: Api<LimitRange> = Api::namespaced(ctx.client.clone(), namespace);
        apply(&api, QUOTA_NAME, &object, ApiStep::ApplyQuota).await?;
    }
    Ok(())
}

/// What the children are built from besides the spec: the catalog (read only when a service
/// may come from it), the template copies the live services carry, and what else is in the
/// namespace.
async fn sources(
    ctx: &Context,
    env: &UpstartEnvironment,
    uid: &str,
    members: &Members,
) -> Result<Sources, Error> {
    let catalog = if children::needs_catalog(env) {
        catalog(ctx).await?
    } else {
        BTreeMap::new()
    };
    Ok(Sources {
        catalog,
        recorded: members
            .owned_services(uid)
            .filter_map(|s| Some((s.name_any(), TemplateCopy::recorded(&s.metadata)?)))
            .collect(),
        foreign_services: members
            .services
            .iter()
            .filter(|s| !is_owned_by(&s.metadata, uid))
            .map(|s| (s.name_any(), s.spec.clone()))
            .collect(),
        foreign_releases: members
            .releases
            .iter()
            .filter(|r| !is_owned_by(&r.metadata, uid) && service_owner(r).is_none())
            .map(|r| (r.name_any(), r.spec.dependencies.clone()))
            .collect(),
        present: members.present(uid).into_iter().map(|n| n.name).collect(),
    })
}

/// Events for what the catalog changed that the status does not say yet: a service the
/// closure added, a template revision not copied because it is invalid, a dependency nothing
/// provides.
async fn announce_catalog_changes(ctx: &Context, env: &UpstartEnvironment, desired: &Desired) {
    let old = env.status.as_ref();
    let reference = env.object_ref(&());
    let ready = old
        .and_then(|s| find(&s.conditions, READY))
        .map(|c| c.message.as_str())
        .unwrap_or_default();
    for missing in &desired.missing {
        if !ready.contains(&missing.message) {
            ctx.recorder
                .warning(
                    &reference,
                    missing.reason,
                    "Resolve",
                    Some(&missing.message),
                )
                .await;
        }
    }
    for added in &desired.added {
        if old.is_some_and(|s| s.added_services.iter().any(|a| a.name == added.name)) {
            continue;
        }
        let note = format!(
            "added service {} from the catalog: required by {}",
            added.name,
            added.required_by.join(", ")
        );
        ctx.recorder
            .normal(&reference, reasons::SERVICE_ADDED, "Add", Some(&note))
            .await;
    }
    for used in &desired.templates {
        let TemplateState::Invalid { errors } = &used.state else {
            continue;
        };
        let catalog_revision = used.catalog_revision.as_deref().unwrap_or_default();
        let said = old.is_some_and(|s| {
            s.templates.iter().any(|t| {
                t.service == used.service && t.catalog_revision.as_deref() == Some(catalog_revision)
            })
        });
        if said {
            continue;
        }
        let note = format!(
            "template {} revision {catalog_revision} is invalid and was not copied; service {}              keeps running revision {}: {errors}",
            used.template, used.service, used.revision
        );
        ctx.recorder
            .warning(&reference, reasons::TEMPLATE_INVALID, "Copy", Some(&note))
            .await;
    }
}

/// Where the environment's services can be reached ([`crate::endpoints`]), from the Ingresses
/// and Services its releases applied. Informational: an install that may not list them (a 403)
/// gets none, and the environment is not held up for it.
async fn reachable(
    ctx: &Context,
    namespace: &str,
    uid: &str,
    members: &Members,
) -> Result<Vec<Endpoint>, Error> {
    let params = ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    let ingresses: Vec<Ingress> = list_unless_forbidden(
        &Api::namespaced(ctx.client.clone(), namespace),
        &params,
        "listing the Ingresses",
    )
    .await?;
    let services: Vec<Service> = list_unless_forbidden(
        &Api::namespaced(ctx.client.clone(), namespace),
        &params,
        "listing the Services",
    )
    .await?;
    let ours = members.service_uids(uid);
    let owners: BTreeMap<String, String> = members
        .releases
        .iter()
        .filter_map(|r| {
            if is_owned_by(&r.metadata, uid) {
                return Some((r.name_any(), r.name_any()));
            }
            let (service, service_uid) = service_owner(r)?;
            (ours.get(service).map(String::as_str) == Some(service_uid))
                .then(|| (r.name_any(), service.to_owned()))
        })
        .collect();
    Ok(endpoints::endpoints(
        namespace, &owners, &ingresses, &services,
    ))
}

/// The objects `api` lists, none when the operator may not list them.
async fn list_unless_forbidden<K>(
    api: &Api<K>,
    params: &ListParams,
    action: &str,
) -> Result<Vec<K>, Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.list(params).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(status)) if status.code == 403 => Ok(Vec::new()),
        Err(source) => Err(Error::Kube {
            step: ApiStep::ListMembers,
            action: action.to_owned(),
            source,
        }),
    }
}

/// The catalog's templates by name: from the cache (a template change not in it yet wakes the
/// environments using it once it is), else, before its first list, from a LIST.
async fn catalog(ctx: &Context) -> Result<BTreeMap<String, UpstartServiceSpec>, Error> {
    let namespace = &ctx.config.catalog_namespace;
    let api: Api<UpstartService> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(ctx
        .services
        .in_namespace_or_list(&api, namespace)
        .await
        .map_err(Error::kube(
            ApiStep::ReadCatalog,
            "listing the catalog templates",
        ))?
        .into_iter()
        .map(|s| (s.name_any(), s.spec))
        .collect())
}

/// Server-side applies the wanted services and releases that differ from what is there, and
/// puts the applied objects into `members` (their new generation decides readiness).
async fn apply_children(
    ctx: &Context,
    namespace: &str,
    desired: &Desired,
    members: &mut Members,
) -> Result<(), Error> {
    let services: Api<UpstartService> = Api::namespaced(ctx.client.clone(), namespace);
    apply_changed(&services, &desired.services, &mut members.services).await?;
    let releases: Api<HelmRelease> = Api::namespaced(ctx.client.clone(), namespace);
    apply_changed(&releases, &desired.releases, &mut members.releases).await
}

/// Server-side applies each of `desired` whose live copy in `live` (same name) is missing or
/// differs in spec, labels or owner, and puts what the apply returns into `live`.
async fn apply_changed<K>(api: &Api<K>, desired: &[K], live: &mut Vec<K>) -> Result<(), Error>
where
    K: Resource<DynamicType = ()>
        + HasSpec
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
    K::Spec: PartialEq,
{
    for object in desired {
        let name = object.name_any();
        let current = live.iter().position(|l| l.name_any() == name);
        if let Some(i) = current
            && objects::is_as_desired(&live[i], object)
        {
            continue;
        }
        let applied = apply(api, &name, object, ApiStep::ApplyChild).await?;
        match current {
            Some(i) => live[i] = applied,
            None => live.push(applied),
        }
    }
    Ok(())
}

/// Server-side apply of a whole object (its status left out) under the operator's field
/// manager; `step` names it in an error.
async fn apply<K>(api: &Api<K>, name: &str, object: &K, step: ApiStep) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let mut value = serde_json::to_value(object).map_err(|source| Error::Serialize {
        what: format!("{} {name}", K::kind(&())),
        source,
    })?;
    value["apiVersion"] = json!(K::api_version(&()));
    value["kind"] = json!(K::kind(&()));
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
    }
    objects::apply(api, name, &value, FIELD_MANAGER)
        .await
        .map_err(Error::kube(
            step,
            format!("applying {} {name}", K::kind(&())),
        ))
}

/// Deletes services and environment releases no longer wanted (removed from the spec or
/// disabled), dependents first, except those something staying depends on: these stay as
/// they are and come back as problems naming the dependents. True while some are still on
/// their way out.
async fn remove_unwanted(
    ctx: &Context,
    env: &UpstartEnvironment,
    uid: &str,
    namespace: &str,
    desired: &Desired,
    members: &Members,
) -> Result<(bool, Vec<Problem>), Error> {
    let wanted_releases: BTreeSet<String> = desired.releases.iter().map(|r| r.name_any()).collect();
    let mut doomed_services: BTreeSet<String> = members
        .owned_services(uid)
        .map(|s| s.name_any())
        .filter(|name| !desired.kept_services.contains(name))
        .collect();
    let mut doomed_releases: BTreeSet<String> = members
        .owned_releases(uid)
        .map(|r| r.name_any())
        .filter(|name| !wanted_releases.contains(name))
        .collect();
    let graph = members.graph(uid);
    // What is already being deleted cannot be kept: only the rest may be held back.
    let leaving: Vec<NodeId> = doomed_services
        .iter()
        .map(NodeId::service)
        .chain(doomed_releases.iter().map(NodeId::release))
        .filter(|node| !members.is_deleting(node))
        .collect();
    let held = held_back(&graph, &leaving);
    let mut problems = Vec::new();
    for (node, dependents) in &held {
        let what = match node.kind {
            NodeKind::UpstartService => {
                doomed_services.remove(&node.name);
                "service"
            }
            NodeKind::HelmRelease => {
                doomed_releases.remove(&node.name);
                "release"
            }
        };
        problems.push(Problem {
            service: node.name.clone(),
            reason: reasons::STILL_DEPENDED_ON,
            message: format!(
                "{what} {} is disabled or removed but stays: {} still depend on it; disable \
                 or remove them too, or drop their dependency on it",
                node.name,
                dependents.join(", ")
            ),
        });
    }
    // A removed service's children go with it (also once the service itself is gone), unless
    // the service is held.
    let doomed_children: BTreeSet<String> = members
        .releases
        .iter()
        .filter(|r| {
            service_owner(r).is_some_and(|(name, _)| {
                !desired.kept_services.contains(name) && !held.contains_key(&NodeId::service(name))
            })
        })
        .map(|r| r.name_any())
        .collect();
    if doomed_services.is_empty() && doomed_releases.is_empty() && doomed_children.is_empty() {
        return Ok((false, problems));
    }
    let level = next_level(
        &graph,
        |node| match node.kind {
            NodeKind::UpstartService => doomed_services.contains(&node.name),
            NodeKind::HelmRelease => {
                doomed_releases.contains(&node.name) || doomed_children.contains(&node.name)
            }
        },
        &members.present(uid),
    );
    if level.is_empty() {
        return Ok((false, problems));
    }
    delete_level(ctx, namespace, &level, members).await?;
    info!(
        environment = env.name_any(),
        removed = names(&level),
        "removing services and releases no longer in the spec"
    );
    Ok((true, problems))
}

/// A Warning Event for each removal held back, when the status does not say it yet (the
/// status keeps saying it; the Event is for `kubectl events` and alerting).
async fn announce_held(ctx: &Context, env: &UpstartEnvironment, held: &[Problem]) {
    let stalled = env
        .status
        .as_ref()
        .and_then(|s| find(&s.conditions, STALLED))
        .map(|c| c.message.as_str())
        .unwrap_or_default();
    for problem in held {
        if stalled.contains(&problem.message) {
            continue;
        }
        ctx.recorder
            .warning(
                &env.object_ref(&()),
                problem.reason,
                "Remove",
                Some(&problem.message),
            )
            .await;
    }
}

/// Deletes the objects of one teardown level that are not already on their way out.
async fn delete_level(
    ctx: &Context,
    namespace: &str,
    level: &[NodeId],
    members: &Members,
) -> Result<(), Error> {
    let services: Api<UpstartService> = Api::namespaced(ctx.client.clone(), namespace);
    let releases: Api<HelmRelease> = Api::namespaced(ctx.client.clone(), namespace);
    for node in level {
        if members.is_deleting(node) {
            continue;
        }
        let deleted = match node.kind {
            NodeKind::UpstartService => objects::delete_if_present(&services, &node.name).await,
            NodeKind::HelmRelease => objects::delete_if_present(&releases, &node.name).await,
        }
        .map_err(|source| Error::Kube {
            step: ApiStep::DeleteChild,
            action: format!("deleting {node}"),
            source,
        })?;
        if deleted == Deletion::Requested {
            info!(object = %node, "deleted");
        }
    }
    Ok(())
}

fn names(nodes: &[NodeId]) -> String {
    nodes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The observation [`crate::status`] works from.
fn observe(
    env: &UpstartEnvironment,
    uid: &str,
    namespace: &str,
    namespace_state: NamespaceState,
    desired: &Desired,
    members: &Members,
) -> Observation {
    let services: Vec<Member> = env
        .spec
        .services
        .iter()
        .filter(|s| desired.kept_services.contains(&s.name))
        .map(|s| &s.name)
        .chain(desired.added.iter().map(|a| &a.name))
        .map(|wanted| {
            members
                .owned_services(uid)
                .find(|s| s.name_any() == *wanted)
                .map_or_else(|| Member::missing(wanted), service_member)
        })
        .collect();
    let uids = members.service_uids(uid);
    // Children of services no longer wanted are on their way out: they do not count.
    let kept: BTreeMap<String, String> = uids
        .into_iter()
        .filter(|(name, _)| desired.kept_services.contains(name))
        .collect();
    let wanted_releases: BTreeSet<String> = desired.releases.iter().map(|r| r.name_any()).collect();
    let mut releases: BTreeMap<String, Member> = desired
        .expected_releases()
        .into_iter()
        .map(|name| (name.clone(), Member::missing(name)))
        .collect();
    for release in members.environment_releases(uid, &kept) {
        let name = release.name_any();
        let own = is_owned_by(&release.metadata, uid);
        if release.metadata.deletion_timestamp.is_some()
            || (own && !wanted_releases.contains(&name))
        {
            continue;
        }
        releases.insert(name, release_member(release));
    }
    Observation {
        generation: env.metadata.generation,
        namespace: namespace.to_owned(),
        namespace_state,
        problems: desired.problems.clone(),
        services,
        releases: releases.into_values().collect(),
        expires_at: None,
        templates: desired.templates.clone(),
        added: desired.added.clone(),
        missing: desired.missing.clone(),
        requester: None,
        endpoints: Vec::new(),
        sleep: None,
    }
}

fn ready_message(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> String {
    find(conditions, READY)
        .map(|c| {
            if c.message.is_empty() {
                c.reason.clone()
            } else {
                c.message.clone()
            }
        })
        .unwrap_or_default()
}

fn service_member(service: &UpstartService) -> Member {
    member(
        service,
        service.status.as_ref().map(|s| {
            (
                s.conditions.as_slice(),
                s.phase == Some(ServicePhase::Failed),
            )
        }),
    )
}

fn release_member(release: &HelmRelease) -> Member {
    member(
        release,
        release.status.as_ref().map(|s| {
            (
                s.conditions.as_slice(),
                s.phase == Some(HelmReleasePhase::Failed),
            )
        }),
    )
}

/// A member as its status shows it: `status` is its conditions and whether its phase is the
/// failed one (none: no status yet).
fn member(
    object: &impl Resource,
    status: Option<(
        &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
        bool,
    )>,
) -> Member {
    let (conditions, failed) = status.unwrap_or_default();
    Member {
        name: object.name_any(),
        ready: is_ready_for_generation(conditions, object.meta().generation),
        failed: failed.then(|| ready_message(conditions)),
    }
}

/// The ttl has passed: say so, count it, delete the environment (the finalizer tears it down).
async fn expire(
    ctx: &Context,
    api: &Api<UpstartEnvironment>,
    env: &UpstartEnvironment,
) -> Result<Action, Error> {
    let ttl = env.spec.ttl.as_deref().unwrap_or_default();
    let note = format!("the ttl of {ttl} has passed; deleting the environment");
    ctx.recorder
        .normal(
            &env.object_ref(&()),
            reasons::EXPIRED,
            "Delete",
            Some(&note),
        )
        .await;
    objects::delete_if_present(api, &env.name_any())
        .await
        .map_err(|source| Error::Kube {
            step: ApiStep::Expire,
            action: "deleting the expired UpstartEnvironment".to_owned(),
            source,
        })?;
    ctx.environment_metrics.expired.inc();
    info!("environment expired");
    Ok(Action::await_change())
}

/// Deletion (SPEC §4): services and environment releases level by level, dependents first,
/// each level awaited; then the namespace; then the finalizer. Bounded by the teardown
/// timeout, after which it proceeds and says so in an Event.
async fn teardown(
    env: &UpstartEnvironment,
    ctx: &Context,
    api: &Api<UpstartEnvironment>,
) -> Result<Cleanup, Error> {
    let uid = env.uid().ok_or(Error::MissingUid)?;
    let namespace = namespace_name(env);
    let now = Timestamp::now();
    let deleted_at = env
        .metadata
        .deletion_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    let waited: Duration = now
        .duration_since(deleted_at)
        .try_into()
        .unwrap_or(Duration::ZERO);
    let timed_out = waited >= ctx.config.teardown_timeout;
    let left = ctx.config.teardown_timeout.saturating_sub(waited);
    let recheck = TEARDOWN_RECHECK.min(left.saturating_add(Duration::from_millis(50)));

    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let live = namespaces.get_opt(&namespace).await.map_err(Error::kube(
        ApiStep::ReadNamespace,
        format!("reading namespace {namespace}"),
    ))?;
    let state = children::namespace_state(live.as_ref(), &uid);
    if matches!(state, NamespaceState::Owned | NamespaceState::Terminating) {
        let mut members = Members::read(ctx, &namespace).await?;
        let mut level = next_level(&members.graph(&uid), |_| true, &members.present(&uid));
        // Nothing left, as the caches tell, ends the teardown with the namespace: confirmed
        // against the API server first, since a member created just now may not be in them yet.
        if level.is_empty() {
            members = Members::list(ctx, &namespace).await?;
            level = next_level(&members.graph(&uid), |_| true, &members.present(&uid));
        }
        if !level.is_empty() && !timed_out {
            delete_level(ctx, &namespace, &level, &members).await?;
            let message = format!("deleting {} (dependents first)", names(&level));
            write_status(
                ctx,
                api,
                env,
                deleting_status(env.status.as_ref(), &message, env.metadata.generation, now),
            )
            .await?;
            return Ok(Cleanup::Wait(Action::requeue(recheck)));
        }
        if !level.is_empty() {
            let note = format!(
                "teardown timeout reached; deleting the namespace although {} remain",
                names(&level)
            );
            ctx.recorder
                .warning(
                    &env.object_ref(&()),
                    reasons::TEARDOWN_TIMEOUT,
                    "Delete",
                    Some(&note),
                )
                .await;
        }
        if state == NamespaceState::Owned {
            let deleted = objects::delete_if_present(&namespaces, &namespace)
                .await
                .map_err(|source| Error::Kube {
                    step: ApiStep::DeleteNamespace,
                    action: format!("deleting namespace {namespace}"),
                    source,
                })?;
            if deleted == Deletion::Requested {
                info!(%namespace, "namespace deleted");
            }
        }
        if !timed_out {
            let message = format!("deleting namespace {namespace}");
            write_status(
                ctx,
                api,
                env,
                deleting_status(env.status.as_ref(), &message, env.metadata.generation, now),
            )
            .await?;
            return Ok(Cleanup::Wait(Action::requeue(recheck)));
        }
    }
    // The namespace is gone, was never ours, or the timeout passed: done.
    info!("environment deleted");
    Ok(Cleanup::Done)
}

/// Writes status with server-side apply, only when it changed (no self-triggered loops), and
/// announces a phase change with an Event (names and reasons only).
async fn write_status(
    ctx: &Context,
    api: &Api<UpstartEnvironment>,
    env: &UpstartEnvironment,
    status: UpstartEnvironmentStatus,
) -> Result<(), Error> {
    apply_status(
        api,
        env,
        &status,
        FIELD_MANAGER,
        &ctx.recorder,
        |s: &UpstartEnvironmentStatus| {
            s.phase.map(|phase| PhaseSummary {
                phase: phase.as_str(),
                failed: phase == upstart_api::v1alpha1::EnvironmentPhase::Failed,
                note: find(&s.conditions, READY).map(|c| c.message.as_str()),
            })
        },
    )
    .await
    .map_err(Error::kube(ApiStep::WriteStatus, "writing status"))?;
    Ok(())
}
