//! The kube-facing side of the operator: [`reconcile`] reads the newest object, then either
//! tears it down or runs observe → [`crate::decide()`] → act → status ([`crate::status`]).
//! Thin on purpose; each step lives in a module of its own:
//! - `observe`: everything the decision depends on, read from the cluster;
//! - `act`: one module per action (`apply` and its `install` pass, `objects`, `hooks`,
//!   `prune`, `teardown`);
//! - `memory`: what this process remembers of each release between reconciles;
//! - `config`: the operator's configuration and repository credentials;
//! - `accounts`: whom a release's objects are written as (its impersonated ServiceAccount).
//!
//! This file keeps the shared [`Context`], the wiring of [`run`] and the reconcile itself.

use std::collections::HashMap;
use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, PartialObjectMeta};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt as _, watcher};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::RwLock;
use tracing::{info, instrument, warn};
use upstart_api::conditions::{READY, find};
use upstart_api::v1alpha1::{
    DependencyKind, HelmRelease, HelmReleasePhase, HelmReleaseStatus, InventoryEntry,
    UpstartEnvironment, UpstartService,
};
use upstart_chart_source::ChartSource;
use upstart_dag::Expressions;
use upstart_operator_runtime::outputs::OutputReads;
use upstart_operator_runtime::{
    Action, Cache, Controller, ControllerMetrics, EventRecorder, FailureBackoff, OperatorContext,
    PhaseSummary, Shutdown, StatusWrite, WorkGate, apply_status, finalizer,
};
use upstart_release_engine::catalog::ApiCatalog;
use upstart_release_engine::manifests::{ClusterScopedAllowList, Limits, RELEASE_LABEL};
use upstart_release_engine::render::{Renderer, RendererConfig};

use crate::Error;
use crate::constants::{CONTROLLER, FIELD_MANAGER, FINALIZER};
use crate::decide::{Decision, decide};
use crate::error::ApiStep;
use crate::metrics::ReleaseMetrics;
use crate::roots;
use crate::schedule;
use crate::status::next_status;
use crate::wakeups::{self, DataKind};
use accounts::Accounts;
use act::apply::apply_run;
use act::install::render_ahead;
use act::teardown::cleanup;
use applied::AppliedObjects;
use config::{LateCredentials, repository_alias, secret_credentials};
use memory::{ReleaseMemory, cached_copy_will_do};
use observe::observe;

mod accounts;
mod act;
mod applied;
mod config;
mod memory;
mod observe;
mod pins;

pub use config::{
    Config, DEFAULT_MAX_CONCURRENT_APPLIES, DEFAULT_TEARDOWN_TIMEOUT, load_credentials,
};
pub use observe::{MAX_VALUES_DOCUMENT_BYTES, edited_at, parse_values_document};

/// How soon an apply waiting for a hook or a CRD is looked at again if no watch event came.
/// Only a safety net: the hook objects and CRDs a release applies carry its label and are
/// watched (Jobs, Pods, CRDs...), so their progress wakes the release at once; polling here
/// would re-run a whole pass (fetch, GET and apply of every object) for nothing.
const APPLY_RECHECK: Duration = Duration::from_secs(10);

/// How soon a release queued at the work gate is looked at again if its turn was not
/// announced (only a safety net: the gate's turns start its next reconcile).
const GATE_RECHECK: Duration = Duration::from_secs(30);

/// Shared by every reconcile.
pub struct Context {
    client: Client,
    metrics: ControllerMetrics,
    release_metrics: ReleaseMetrics,
    recorder: EventRecorder,
    backoff: FailureBackoff<ObjectRef<HelmRelease>>,
    renderer: Renderer,
    charts: ChartSource,
    late_credentials: Option<LateCredentials>,
    expressions: Expressions,
    discovered: RwLock<Discovered>,
    allow_list: ClusterScopedAllowList,
    teardown_timeout: Duration,
    limits: Limits,
    /// The clients a release's objects are written with (impersonating its ServiceAccount).
    accounts: Accounts,
    /// What this process remembers of each release, forgotten when the release is deleted.
    memory: std::sync::Mutex<HashMap<ObjectRef<HelmRelease>, ReleaseMemory>>,
    releases: Store<HelmRelease>,
    /// The kinds a reconcile reads besides releases, kept by their watches (see [`Caches`]).
    caches: Caches,
    /// The objects releases applied, as their watches last saw them.
    applied_objects: AppliedObjects,
    /// Output Secrets and ConfigMaps, read once per version.
    outputs: OutputReads,
    /// At most `max_concurrent_applies` renders and applies at once, by priority.
    gate: WorkGate<ObjectRef<HelmRelease>>,
}

/// What a reconcile reads from memory instead of the API: the UpstartServices it depends on,
/// the Namespace and UpstartEnvironment of `environment.*`. Each is kept by the watch that also
/// wakes the releases concerned, so a reconcile woken by a change reads that change.
#[derive(Clone)]
pub struct Caches {
    services: Cache<UpstartService>,
    namespaces: Cache<Namespace>,
    environments: Cache<UpstartEnvironment>,
}

/// What discovery found: the catalog for rendering and planning, and how to reach each kind.
struct Discovered {
    catalog: ApiCatalog,
    resources: HashMap<(String, String), (ApiResource, ApiCapabilities)>,
}

impl Context {
    /// Builds the shared context: helm is checked here, so a missing helm fails startup.
    pub async fn new(
        op: &OperatorContext,
        config: Config,
        releases: Store<HelmRelease>,
        caches: Caches,
        applied_objects: AppliedObjects,
        release_metrics: ReleaseMetrics,
    ) -> Result<Self, Error> {
        let client = op.client.clone();
        let renderer = Renderer::with_config(RendererConfig {
            memory_limit: config.helm_memory_limit,
            ..RendererConfig::new(&config.helm_path)
        })
        .await
        .map_err(Error::Render)?
        .with_cluster(client.clone());
        let late_credentials = LateCredentials::of(&config);
        if let Some(late) = &late_credentials {
            let aliases: Vec<String> = late.pending.lock().await.keys().cloned().collect();
            info!(
                repositories = %aliases.join(", "),
                namespace = %late.namespace,
                "credentials Secrets missing at start are read again at each fetch until they exist"
            );
        }
        let charts = ChartSource::new(config.repositories, config.credentials, &config.cache_dir)
            .map_err(Error::ChartFetch)?;
        let discovered = discover(&client).await?;
        Ok(Context {
            accounts: Accounts::new(client.clone(), config.default_service_account),
            client,
            metrics: op.metrics.controller(CONTROLLER),
            release_metrics,
            recorder: op.recorder(CONTROLLER),
            backoff: FailureBackoff::default(),
            renderer,
            charts,
            late_credentials,
            expressions: Expressions::new(),
            discovered: RwLock::new(discovered),
            allow_list: config.cluster_scoped_allow_list,
            teardown_timeout: config.teardown_timeout,
            memory: std::sync::Mutex::default(),
            limits: Limits::default(),
            releases,
            caches,
            outputs: OutputReads::new(
                applied_objects.secrets.clone(),
                applied_objects.config_maps.clone(),
            ),
            applied_objects,
            gate: WorkGate::new(config.max_concurrent_applies),
        })
    }

    /// How to reach `kind` of `api_version`; rediscovers once when it is unknown (a CRD the
    /// chart just installed).
    async fn resource(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, ApiCapabilities), Error> {
        let key = (api_version.to_owned(), kind.to_owned());
        if let Some(found) = self.discovered.read().await.resources.get(&key) {
            return Ok(found.clone());
        }
        let fresh = discover(&self.client).await?;
        let mut discovered = self.discovered.write().await;
        *discovered = fresh;
        discovered
            .resources
            .get(&key)
            .cloned()
            .ok_or_else(|| Error::UnknownKind {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
            })
    }

    /// The chart source to fetch `chart` with: the shared one, unless `chart` comes from a
    /// repository whose credentials Secret was missing at start (see [`LateCredentials`]).
    async fn chart_source(&self, chart: &str) -> Result<ChartSource, Error> {
        let Some(late) = &self.late_credentials else {
            return Ok(self.charts.clone());
        };
        let Some(alias) = repository_alias(&late.repositories, chart) else {
            return Ok(self.charts.clone());
        };
        let mut pending = late.pending.lock().await;
        let Some((secret, source)) = pending.get_mut(alias) else {
            return Ok(self.charts.clone());
        };
        if let Some(source) = source {
            return Ok(source.clone());
        }
        let namespace = &late.namespace;
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let found = secrets.get_opt(secret).await.map_err(Error::kube(
            ApiStep::ReadCredentials,
            format!("reading the credentials Secret {namespace}/{secret} of repository {alias}"),
        ))?;
        let Some(found) = found else {
            return Err(Error::CredentialsMissing {
                repository: alias.to_owned(),
                namespace: namespace.clone(),
                secret: secret.clone(),
            });
        };
        let mut repositories = late.repositories.clone();
        repositories.repositories.retain(|key, _| key == alias);
        let credentials = HashMap::from([(alias.to_owned(), secret_credentials(found))]);
        let built = ChartSource::new(
            repositories,
            credentials,
            late.cache_dir.join(format!("credentials-{alias}")),
        )
        .map_err(Error::ChartFetch)?;
        info!(
            repository = %alias,
            secret = %format!("{namespace}/{secret}"),
            "the credentials Secret now exists: this repository's charts are fetched with it"
        );
        *source = Some(built.clone());
        Ok(built)
    }

    /// The API of one object of release `hr`, as the account `hr` acts as (see
    /// [`accounts`]): every read and write of a chart's objects goes through here.
    async fn dynamic_api(
        &self,
        hr: &HelmRelease,
        entry: &InventoryEntry,
        namespace: &str,
    ) -> Result<Api<DynamicObject>, Error> {
        let (resource, capabilities) = self.resource(&entry.api_version, &entry.kind).await?;
        let client = self.accounts.client(hr, namespace)?;
        Ok(if capabilities.scope == Scope::Namespaced {
            Api::namespaced_with(
                client,
                entry.namespace.as_deref().unwrap_or(namespace),
                &resource,
            )
        } else {
            Api::all_with(client, &resource)
        })
    }
}

async fn discover(client: &Client) -> Result<Discovered, Error> {
    let version = client.apiserver_version().await.map_err(Error::Discovery)?;
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .map_err(Error::Discovery)?;
    let mut catalog = ApiCatalog::new(version.git_version);
    let mut resources = HashMap::new();
    for group in discovery.groups() {
        for version in group.versions() {
            for (resource, capabilities) in group.versioned_resources(version) {
                catalog.add(
                    &resource.api_version,
                    &resource.kind,
                    capabilities.scope == Scope::Namespaced,
                );
                resources.insert(
                    (resource.api_version.clone(), resource.kind.clone()),
                    (resource, capabilities),
                );
            }
        }
    }
    Ok(Discovered { catalog, resources })
}

/// Runs the controller until `shutdown` fires: the work handed to the shared runtime
/// (`upstart_operator_runtime::run`), in the binary and in process alike.
pub async fn run(op: OperatorContext, config: Config, shutdown: Shutdown) -> Result<(), Error> {
    let client = op.client.clone();
    // Registered before the watch starts, so /readyz never reports ready before the cache.
    let ready = op.readiness.register(CONTROLLER);
    let releases: Api<HelmRelease> = op.api();
    let synced = ready.clone();
    let release_metrics = ReleaseMetrics::register(&op.metrics)?;
    let by_phase = release_metrics.releases_by_phase.clone();
    // One watch of releases: it feeds the store, starts their own reconciles, and wakes the
    // releases a change concerns (its dependents) once the store holds the change, so that
    // their reconcile reads the dependency as it now is from the store.
    let (woken_tx, woken) = futures::channel::mpsc::unbounded();
    let (store, trigger) = ready.watch_observing(
        releases.clone(),
        op.watcher_config(),
        move |store, event| {
            if let watcher::Event::Apply(changed) | watcher::Event::Delete(changed) = event {
                for dependent in wakeups::dependents_of_release(&store.state(), changed) {
                    // Nobody listening: the controller stopped.
                    let _ = woken_tx.unbounded_send(dependent);
                }
            }
            // Not for each object of the initial list: once, when it is complete.
            if matches!(
                event,
                watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone
            ) {
                by_phase.count(
                    store
                        .state()
                        .iter()
                        .map(|r| r.status.as_ref().and_then(|s| s.phase)),
                );
            }
        },
    );
    let trigger = trigger.predicate_filter(beyond_status, PredicateConfig::default());
    let by_priority = store.clone();
    let controller = Controller::for_stream(trigger, store.clone())
        .with_config(op.controller_config())
        .with_priority(move |hr: &HelmRelease| {
            let namespace = hr.namespace().unwrap_or_default();
            schedule::reconcile_priority(hr, |name| {
                by_priority.get(&ObjectRef::new(name).within(&namespace))
            })
        });
    let all = watcher::Config::default();
    let (services, service_changes) = Cache::watch(op.api::<UpstartService>(), all.clone());
    let (namespaces, namespace_events) =
        Cache::watch(Api::<Namespace>::all(client.clone()), all.clone());
    let (environments, environment_events) =
        Cache::watch(Api::<UpstartEnvironment>::all(client.clone()), all.clone());
    let caches = Caches {
        services,
        namespaces,
        environments,
    };
    // What releases applied, by the watches that wake them on a change (readiness, drift),
    // with who wrote what (drift is a write by another field manager).
    let owned = watcher::Config::default().labels(RELEASE_LABEL);
    let (deployments, deployment_events) =
        Cache::watch_with_field_owners(op.api::<Deployment>(), owned.clone());
    let (stateful_sets, stateful_set_events) =
        Cache::watch_with_field_owners(Api::<StatefulSet>::all(client.clone()), owned.clone());
    let (daemon_sets, daemon_set_events) =
        Cache::watch_with_field_owners(op.api::<DaemonSet>(), owned.clone());
    let (jobs, job_events) = Cache::watch_with_field_owners(op.api::<Job>(), owned.clone());
    let (pods, pod_events) = Cache::watch_with_field_owners(op.api::<Pod>(), owned.clone());
    let (kube_services, kube_service_events) =
        Cache::watch_with_field_owners(op.api::<Service>(), owned.clone());
    let (crds, crd_events) =
        Cache::watch_with_field_owners(Api::<CustomResourceDefinition>::all(client.clone()), owned);
    // All of them, not only those releases applied: outputs may come from any Secret or
    // ConfigMap of the namespace. Metadata only: no Secret's data reaches the operator
    // through a watch (outputs are read when used).
    let (secrets, secret_events) = Cache::watch_with_field_owners(
        Api::<PartialObjectMeta<Secret>>::all(client.clone()),
        all.clone(),
    );
    let (config_maps, config_map_events) = Cache::watch_with_field_owners(
        Api::<PartialObjectMeta<ConfigMap>>::all(client.clone()),
        all.clone(),
    );
    let applied_objects = AppliedObjects {
        deployments,
        stateful_sets,
        daemon_sets,
        jobs,
        pods,
        services: kube_services,
        crds,
        config_maps,
        secrets,
    };
    let context = Arc::new(
        Context::new(
            &op,
            config,
            store.clone(),
            caches,
            applied_objects,
            release_metrics,
        )
        .await?,
    );
    let turns = context
        .gate
        .take_turns()
        .ok_or_else(|| Error::Config("the work gate's turns were already taken".to_owned()))?;

    let by_service = store.clone();
    let by_secret = store.clone();
    let by_config_map = store.clone();
    let by_environment = store.clone();
    let by_namespace = store.clone();
    let environment_changes = wakeups::ChangeFilter::default();
    let namespace_changes = wakeups::ChangeFilter::default();
    let controller = controller.reconcile_on(woken);
    // A shard (--label-selector) sees only its own releases: a dependency in another shard
    // wakes its dependents here through a watch of every release.
    let sharded = op
        .args
        .label_selector
        .as_deref()
        .is_some_and(|selector| !selector.trim().is_empty());
    let controller = if sharded {
        let by_release = store.clone();
        controller.watches(releases, all.clone(), move |changed| {
            wakeups::dependents_of_release(&by_release.state(), &changed)
        })
    } else {
        controller
    };
    let controller = controller
        .watches_stream(service_changes, move |service| {
            service
                .namespace()
                .map(|ns| {
                    wakeups::dependents(
                        &by_service.state(),
                        &ns,
                        &service.name_any(),
                        DependencyKind::UpstartService,
                    )
                })
                .unwrap_or_default()
        })
        .watches_stream(secret_events, move |s| {
            wakeups::woken_by_data(
                &by_secret.state(),
                s.namespace().as_deref(),
                s.labels(),
                DataKind::Secret,
                &s.name_any(),
            )
        })
        .watches_stream(config_map_events, move |c| {
            wakeups::woken_by_data(
                &by_config_map.state(),
                c.namespace().as_deref(),
                c.labels(),
                DataKind::ConfigMap,
                &c.name_any(),
            )
        })
        .watches_stream(environment_events, move |environment| {
            let read = (
                roots::environment_namespace(&environment),
                environment.spec.variables.clone(),
            );
            if environment_changes.changed(&environment.name_any(), read) {
                wakeups::releases_of_environment(&by_environment.state(), &environment)
            } else {
                Vec::new()
            }
        })
        .watches_stream(namespace_events, move |namespace| {
            let name = namespace.name_any();
            let label = roots::environment_of_namespace(namespace.labels()).map(str::to_owned);
            if namespace_changes.changed(&name, label) {
                wakeups::releases_in_namespace(&by_namespace.state(), &name)
            } else {
                Vec::new()
            }
        })
        .watches_stream(deployment_events, applied_by(&store))
        .watches_stream(stateful_set_events, applied_by(&store))
        .watches_stream(daemon_set_events, applied_by(&store))
        .watches_stream(job_events, applied_by(&store))
        // Hooks may be Pods; a CRD's Established condition moves an apply pass on.
        .watches_stream(pod_events, applied_by(&store))
        // Drift (SPEC §2.5): a Service changed by hand is put back at once, as the kinds above
        // and the ConfigMaps and Secrets (watched for outputs too) are.
        .watches_stream(kube_service_events, applied_by(&store))
        .watches_stream(crd_events, applied_by(&store))
        // A release queued at the work gate is reconciled again when its turn comes.
        .reconcile_on(turns)
        // Stop taking work on SIGTERM or lost leadership; in-flight reconciles finish.
        .graceful_shutdown_on(shutdown.wait())
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            match result {
                Ok(_) => {}
                // The message went, scrubbed, to the release's status; logs get the reason only,
                // since a Kubernetes API error may quote an applied object.
                Err(upstart_operator_runtime::ControllerError::ReconcilerFailed(error, object)) => {
                    warn!(reason = error.metric_label(), %object, "reconcile failed");
                }
                Err(error) => warn!(%error, "controller error"),
            }
        });
    synced.run_until_stopped(controller, &shutdown).await;
    Ok(())
}

/// What a release's own reconcile reacts to: any change but one of its status alone. Only
/// this operator writes that status, at the end of a reconcile; reacting to it would repeat
/// the reconcile that wrote it, reading everything again. (Its dependents still see it: they
/// are woken from the unfiltered watch.)
fn beyond_status(hr: &HelmRelease) -> Option<u64> {
    let mut hasher = std::hash::DefaultHasher::new();
    (
        &hr.metadata.uid,
        hr.metadata.generation,
        hr.metadata.deletion_timestamp.is_some(),
        hr.finalizers(),
        hr.annotations(),
        hr.labels(),
    )
        .hash(&mut hasher);
    Some(hasher.finish())
}

/// Maps an object applied by a release (its release label) to that release.
fn applied_by<K: Resource>(
    store: &Store<HelmRelease>,
) -> impl Fn(K) -> Option<ObjectRef<HelmRelease>> + Send + Sync + 'static {
    let store = store.clone();
    move |object| {
        wakeups::release_of_labels(
            &store.state(),
            object.meta().namespace.as_deref(),
            object.labels(),
        )
    }
}

/// One reconcile: the finalizer decides between applying and tearing down (its cleanup).
#[instrument(skip_all, fields(namespace = hr.namespace(), name = hr.name_any()))]
pub async fn reconcile(hr: Arc<HelmRelease>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.count_and_measure();
    let key = ObjectRef::from_obj(hr.as_ref());
    let namespace = hr.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<HelmRelease> = Api::namespaced(ctx.client.clone(), &namespace);
    let written = ctx.recall(&key, |m| m.written_version.clone()).flatten();
    let hr = if cached_copy_will_do(&hr, written.as_deref()) {
        hr
    } else {
        let Some(newest) = api
            .get_opt(&hr.name_any())
            .await
            .map_err(Error::kube(ApiStep::ReadRelease, "reading the HelmRelease"))?
        else {
            return Ok(Action::await_change());
        };
        Arc::new(newest)
    };
    let (context, namespace, releases) = (ctx.as_ref(), namespace.as_str(), &api);
    let action = finalizer(
        &api,
        FINALIZER,
        hr,
        move |hr| async move { apply(&hr, context, namespace).await },
        move |hr| async move { cleanup(&hr, context, releases, namespace).await },
    )
    .await?;
    ctx.backoff.on_success(&key);
    Ok(action)
}

fn error_policy(hr: Arc<HelmRelease>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.set_failure(error);
    warn!(
        reason = error.metric_label(),
        "reconcile failed; retrying with backoff"
    );
    Action::requeue(ctx.backoff.on_failure(ObjectRef::from_obj(hr.as_ref())))
}

/// One reconcile of a release that is not being deleted: observe, decide, act on the decision,
/// write the status it ends in.
async fn apply(hr: &HelmRelease, ctx: &Context, namespace: &str) -> Result<Action, Error> {
    let observed = observe(hr, ctx, namespace).await?;
    let decision = decide(&observed.observation);
    let now = Time(Timestamp::now());
    let key = ObjectRef::from_obj(hr);
    if let Some(run) = apply_run(&decision, ctx, &key) {
        let priority = schedule::priority(&ctx.releases.state(), namespace, &hr.name_any());
        let Some(_permit) = ctx.gate.enter(&key, namespace, priority) else {
            return Ok(Action::requeue(GATE_RECHECK));
        };
        return act::apply::apply(hr, ctx, namespace, &observed, &decision, run, &now).await;
    }
    ctx.gate.leave(&key);
    if let (Decision::WaitForDependencies { .. }, Some(values)) =
        (&decision, &observed.early_values)
        // Only on an idle slot: rendering ahead never delays an apply.
        && let Some(_permit) = ctx.gate.enter_if_idle(namespace)
    {
        let applied_before = hr
            .status
            .as_ref()
            .is_some_and(|s| s.applied_digest.is_some());
        render_ahead(hr, ctx, namespace, values, applied_before).await;
    }
    let mut status = next_status(hr.status.as_ref(), &decision, hr.metadata.generation, &now);
    status.outputs = observed.published_keys.clone();
    let api: Api<HelmRelease> = Api::namespaced(ctx.client.clone(), namespace);
    write_status(ctx, &api, hr, status).await?;
    Ok(
        match decision.look_again_after(observed.timeout_in, hr.spec.interval()) {
            Some(after) => Action::requeue(after),
            None => Action::await_change(),
        },
    )
}

/// Writes status with server-side apply, only when it changed (no self-triggered loops), and
/// announces a phase change with an Event (names and reasons only).
async fn write_status(
    ctx: &Context,
    api: &Api<HelmRelease>,
    hr: &HelmRelease,
    status: HelmReleaseStatus,
) -> Result<(), Error> {
    let written = apply_status(
        api,
        hr,
        &status,
        FIELD_MANAGER,
        &ctx.recorder,
        |s: &HelmReleaseStatus| {
            s.phase.map(|phase| PhaseSummary {
                phase: phase.as_str(),
                failed: phase == HelmReleasePhase::Failed,
                note: find(&s.conditions, READY).map(|c| c.message.as_str()),
            })
        },
    )
    .await
    .map_err(Error::kube(ApiStep::WriteStatus, "writing status"))?;
    if let StatusWrite::Written {
        phase_changed,
        started,
        resource_version,
    } = written
    {
        // The write's start, not its end: a dependent cannot be woken before it, so a
        // hand-off measured from here is never short.
        let became_ready = phase_changed && status.phase == Some(HelmReleasePhase::Ready);
        ctx.remember(&ObjectRef::from_obj(hr), |m| {
            m.written_version = resource_version;
            if became_ready {
                m.became_ready = Some(started);
            }
        });
    }
    Ok(())
}
