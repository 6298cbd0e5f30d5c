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
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
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
use upstart_operator_runtime::{
    ControllerMetrics, EventRecorder, FailureBackoff, OperatorContext, PhaseSummary, Shutdown,
    StatusWrite, apply_status, finalizer,
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
use crate::status::next_status;
use crate::wakeups::{self, DataKind};
use accounts::Accounts;
use act::apply::apply_run;
use act::install::render_ahead;
use act::teardown::cleanup;
use config::{LateCredentials, repository_alias, secret_credentials};
use memory::ReleaseMemory;
use observe::observe;

mod accounts;
mod act;
mod config;
mod memory;
mod observe;
mod pins;

pub use config::{Config, DEFAULT_TEARDOWN_TIMEOUT, load_credentials};
pub use observe::{MAX_VALUES_DOCUMENT_BYTES, edited_at, parse_values_document};

/// How soon an apply waiting for a hook or a CRD is looked at again if no watch event came.
/// Only a safety net: the hook objects and CRDs a release applies carry its label and are
/// watched (Jobs, Pods, CRDs...), so their progress wakes the release at once; polling here
/// would re-run a whole pass (fetch, GET and apply of every object) for nothing.
const APPLY_RECHECK: Duration = Duration::from_secs(10);

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
    let (store, trigger) =
        ready.watch_counting(releases.clone(), op.watcher_config(), move |store| {
            by_phase.count(
                store
                    .state()
                    .iter()
                    .map(|r| r.status.as_ref().and_then(|s| s.phase)),
            );
        });
    let controller =
        Controller::for_stream(trigger, store.clone()).with_config(op.controller_config());
    let context = Arc::new(Context::new(&op, config, store.clone(), release_metrics).await?);
    let owned = watcher::Config::default().labels(RELEASE_LABEL);
    let all = watcher::Config::default();

    let by_release = store.clone();
    let by_service = store.clone();
    let by_secret = store.clone();
    let by_config_map = store.clone();
    let by_environment = store.clone();
    let by_namespace = store.clone();
    let environment_changes = wakeups::ChangeFilter::default();
    let namespace_changes = wakeups::ChangeFilter::default();
    let controller = controller
        .watches(releases, all.clone(), move |changed| {
            wakeups::dependents_of_release(&by_release.state(), &changed)
        })
        .watches(op.api::<UpstartService>(), all.clone(), move |service| {
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
        .watches(
            Api::<Secret>::all(client.clone()),
            watcher::Config::default(),
            move |s| {
                wakeups::woken_by_data(
                    &by_secret.state(),
                    s.namespace().as_deref(),
                    s.labels(),
                    DataKind::Secret,
                    &s.name_any(),
                )
            },
        )
        .watches(
            Api::<ConfigMap>::all(client.clone()),
            watcher::Config::default(),
            move |c| {
                wakeups::woken_by_data(
                    &by_config_map.state(),
                    c.namespace().as_deref(),
                    c.labels(),
                    DataKind::ConfigMap,
                    &c.name_any(),
                )
            },
        )
        .watches(
            Api::<UpstartEnvironment>::all(client.clone()),
            all.clone(),
            move |environment| {
                let read = (
                    roots::environment_namespace(&environment),
                    environment.spec.variables.clone(),
                );
                if environment_changes.changed(&environment.name_any(), read) {
                    wakeups::releases_of_environment(&by_environment.state(), &environment)
                } else {
                    Vec::new()
                }
            },
        )
        .watches(
            Api::<Namespace>::all(client.clone()),
            all.clone(),
            move |namespace| {
                let name = namespace.name_any();
                let label = roots::environment_of_namespace(namespace.labels()).map(str::to_owned);
                if namespace_changes.changed(&name, label) {
                    wakeups::releases_in_namespace(&by_namespace.state(), &name)
                } else {
                    Vec::new()
                }
            },
        )
        .watches(op.api::<Deployment>(), owned.clone(), applied_by(&store))
        .watches(
            Api::<StatefulSet>::all(client.clone()),
            owned.clone(),
            applied_by(&store),
        )
        .watches(op.api::<DaemonSet>(), owned.clone(), applied_by(&store))
        .watches(op.api::<Job>(), owned.clone(), applied_by(&store))
        // Hooks may be Pods; a CRD's Established condition moves an apply pass on.
        .watches(op.api::<Pod>(), owned.clone(), applied_by(&store))
        // Drift (SPEC §2.5): a Service changed by hand is put back at once, as the kinds above
        // and the ConfigMaps and Secrets (watched for outputs too) are.
        .watches(op.api::<Service>(), owned.clone(), applied_by(&store))
        .watches(
            Api::<CustomResourceDefinition>::all(client.clone()),
            owned,
            applied_by(&store),
        )
        // Stop taking work on SIGTERM or lost leadership; in-flight reconciles finish.
        .graceful_shutdown_on(shutdown.wait())
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            match result {
                Ok(_) => {}
                // The message went, scrubbed, to the release's status; logs get the reason only,
                // since a Kubernetes API error may quote an applied object.
                Err(kube::runtime::controller::Error::ReconcilerFailed(error, object)) => {
                    warn!(reason = error.metric_label(), %object, "reconcile failed");
                }
                Err(error) => warn!(%error, "controller error"),
            }
        });
    synced.run_until_stopped(controller, &shutdown).await;
    Ok(())
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
    // Reconcile the newest object, not the cached one: a wake-up by a workload event can come
    // before our own last status write reaches the cache, and a stale status would apply (and
    // run hooks) a second time.
    let Some(hr) = api
        .get_opt(&hr.name_any())
        .await
        .map_err(Error::kube(ApiStep::ReadRelease, "reading the HelmRelease"))?
    else {
        return Ok(Action::await_change());
    };
    let (context, namespace, releases) = (ctx.as_ref(), namespace.as_str(), &api);
    let action = finalizer(
        &api,
        FINALIZER,
        Arc::new(hr),
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
    if let Some(run) = apply_run(&decision, ctx, &ObjectRef::from_obj(hr)) {
        return act::apply::apply(hr, ctx, namespace, &observed, &decision, run, &now).await;
    }
    if let (Decision::WaitForDependencies { .. }, Some(values)) =
        (&decision, &observed.early_values)
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
    // The write's start, not its end: a dependent cannot be woken before it, so a hand-off
    // measured from here is never short.
    if let StatusWrite::Written {
        phase_changed: true,
        started,
    } = written
        && status.phase == Some(HelmReleasePhase::Ready)
    {
        ctx.remember(&ObjectRef::from_obj(hr), |m| m.became_ready = Some(started));
    }
    Ok(())
}
