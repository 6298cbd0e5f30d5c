//! The kube-facing side of the operator: observe a release and its surroundings, act on the
//! decision of [`crate::decide()`], write the status of [`crate::status`]. Thin on purpose.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::RwLock;
use tracing::{debug, info, instrument, warn};
use upstart_api::conditions::{READY, find, is_ready_for_generation};
use upstart_api::v1alpha1::{
    DependencyKind, HelmRelease, HelmReleasePhase, HelmReleaseStatus, HookStatus, InventoryEntry,
    UpstartEnvironment, UpstartService,
};
use upstart_chart_source::{ChartSource, Credentials, RepositoryConfig};
use upstart_dag::{
    EnvironmentInfo, ExpressionContext, Expressions, Objects, Outputs, ReleaseInfo,
    collect_release_outputs, collect_service_outputs, release_values,
};
use upstart_release_engine::catalog::ApiCatalog;
use upstart_release_engine::digest::{FieldDigest, canonical_json};
use upstart_release_engine::health::{self, Health};
use upstart_release_engine::manifests::{
    self, ClusterScopedAllowList, HookEvent, HookOutcome, Limits, RELEASE_LABEL, ReleaseScope,
};
use upstart_release_engine::render::{RenderRequest, Renderer, Scrubber};

use crate::Error;
use hooks::{HookPass, HookStep};
use teardown::{cleanup, teardown, wait_for_dependents};

mod hooks;
mod teardown;
use upstart_operator_runtime::{
    ControllerMetrics, EventRecorder, FailureBackoff, OperatorContext, PhaseSummary, Shutdown,
    StatusWrite, apply_status,
};

use crate::constants::{CONTROLLER, FIELD_MANAGER, FINALIZER, HOOK_RUN_ANNOTATION, reasons};
use crate::decide::{
    Decision, DependencyObservation, DependencyState, Observation, ValuesState, alias_problems,
    cycle_problems, decide,
};
use crate::metrics::ReleaseMetrics;
use crate::roots;
use crate::status::{applying_status, deleting_status, failure_status, next_status};
use crate::wakeups::{self, DataKind};

/// Largest `valuesFrom` document read (SPEC §7: hostile inputs have size limits).
pub const MAX_VALUES_DOCUMENT_BYTES: usize = 1024 * 1024;
/// How soon a release waiting for its workloads is looked at again if no watch event came.
const HEALTH_RECHECK: Duration = Duration::from_secs(30);
/// Value strings at least this long are scrubbed from failure messages (as the renderer does).
const MIN_SCRUB_LEN: usize = 4;
/// `status.hooks[].phase` of a hook that has not ended.
const RUNNING: &str = "Running";
/// How soon an apply waiting for a hook or a CRD is looked at again if no watch event came.
const APPLY_RECHECK: Duration = Duration::from_millis(500);

/// What the operator is configured with. [`Config::default`] matches the binary's flags
/// except for the cache directory, which goes under the system temporary directory so that an
/// in-process operator (tests, `upstart dev`) runs without a writable `/var/cache`.
#[derive(Clone, Debug)]
pub struct Config {
    /// The helm binary (SPEC §2.4).
    pub helm_path: PathBuf,
    /// Chart repositories (SPEC §2.2).
    pub repositories: RepositoryConfig,
    /// Credentials by repository alias, read from the operator's own namespace.
    pub credentials: HashMap<String, Credentials>,
    /// Where the credential Secrets live (the operator's own namespace). With it, a repository
    /// whose `credentialsSecret` has no entry in [`Config::credentials`] (the Secret did not
    /// exist when [`load_credentials`] ran) has its Secret read again at each fetch until it
    /// exists; its releases fail naming the Secret meanwhile.
    pub credentials_namespace: Option<String>,
    /// Chart archive cache.
    pub cache_dir: PathBuf,
    /// Cluster-scoped kinds a chart may create.
    pub cluster_scoped_allow_list: ClusterScopedAllowList,
    /// How long a deleted release waits for its dependents to go first (SPEC §2.8).
    pub teardown_timeout: Duration,
}

/// The default teardown timeout (SPEC §2.8), as the binary's `--teardown-timeout`.
pub const DEFAULT_TEARDOWN_TIMEOUT: Duration = Duration::from_secs(10 * 60);

impl Default for Config {
    fn default() -> Self {
        Config {
            helm_path: PathBuf::from("helm"),
            repositories: RepositoryConfig::default(),
            credentials: HashMap::new(),
            credentials_namespace: None,
            cache_dir: std::env::temp_dir().join("upstart-helmrelease-charts"),
            cluster_scoped_allow_list: ClusterScopedAllowList::default(),
            teardown_timeout: DEFAULT_TEARDOWN_TIMEOUT,
        }
    }
}

/// Reads each repository's credentials Secret from `namespace`, the operator's own, never
/// from a tenant namespace (SPEC §2.2). The binary calls it at startup; in-process users may
/// too, or fill [`Config::credentials`] themselves. A Secret that does not exist is logged and
/// left out, not an error: one missing Secret must not stop the releases of every other
/// repository, and with [`Config::credentials_namespace`] set it is read again later.
pub async fn load_credentials(
    client: &Client,
    namespace: &str,
    repositories: &RepositoryConfig,
) -> Result<HashMap<String, Credentials>, Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut credentials = HashMap::new();
    for (alias, repository) in &repositories.repositories {
        let Some(name) = &repository.credentials_secret else {
            continue;
        };
        let action =
            format!("reading the credentials Secret {namespace}/{name} of repository {alias}");
        match secrets.get_opt(name).await.map_err(Error::kube(action))? {
            Some(secret) => {
                credentials.insert(alias.clone(), secret_credentials(secret));
            }
            None => warn!(
                repository = %alias,
                secret = %format!("{namespace}/{name}"),
                "the credentials Secret of this repository does not exist: its releases fail until \
                 it is created in {namespace}, and pick it up then without a restart"
            ),
        }
    }
    Ok(credentials)
}

/// The credentials in a Secret's data (the keys [`Credentials::from_secret_data`] knows).
fn secret_credentials(secret: Secret) -> Credentials {
    let data = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(key, value)| (key, value.0))
        .collect();
    Credentials::from_secret_data(&data)
}

/// Repositories whose credentials Secret did not exist when the operator started. Each fetch
/// from one of them reads its Secret again; once it exists, the repository gets a chart source
/// of its own with those credentials (and a cache directory of its own: a chart source owns
/// its cache directory), so creating the Secret heals its releases without a restart, and the
/// shared source, with its caches, stays as it is.
struct LateCredentials {
    namespace: String,
    repositories: RepositoryConfig,
    cache_dir: PathBuf,
    /// By repository alias: the Secret's name, and the source built once the Secret was read.
    pending: tokio::sync::Mutex<BTreeMap<String, (String, Option<ChartSource>)>>,
}

impl LateCredentials {
    /// The repositories of `config` that name a credentials Secret absent from its credentials;
    /// `None` when there are none or nowhere to read them from.
    fn of(config: &Config) -> Option<Self> {
        let namespace = config.credentials_namespace.clone()?;
        let pending: BTreeMap<String, (String, Option<ChartSource>)> = config
            .repositories
            .repositories
            .iter()
            .filter(|(alias, _)| !config.credentials.contains_key(*alias))
            .filter_map(|(alias, repository)| {
                let secret = repository.credentials_secret.clone()?;
                Some((alias.clone(), (secret, None)))
            })
            .collect();
        (!pending.is_empty()).then(|| LateCredentials {
            namespace,
            repositories: config.repositories.clone(),
            cache_dir: config.cache_dir.clone(),
            pending: tokio::sync::Mutex::new(pending),
        })
    }
}

/// The alias of the configured repository `chart` is fetched from: `ALIAS/NAME`, or a direct
/// `oci://…`/`https://…` reference to a configured repository's URL (as the chart source
/// resolves them).
fn repository_alias<'a>(repositories: &'a RepositoryConfig, chart: &str) -> Option<&'a str> {
    let chart = chart.trim();
    if chart.starts_with("file:") {
        return None;
    }
    if chart.starts_with("oci://") || chart.starts_with("https://") || chart.starts_with("http://")
    {
        let (base, _name) = chart.rsplit_once('/')?;
        return repositories
            .repositories
            .iter()
            .find(|(_, repository)| repository.url.trim_end_matches('/') == base)
            .map(|(alias, _)| alias.as_str());
    }
    let (alias, _name) = chart.split_once('/')?;
    repositories
        .repositories
        .get_key_value(alias)
        .map(|(alias, _)| alias.as_str())
}

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
    /// What this process remembers of each release, forgotten when the release is deleted.
    memory: std::sync::Mutex<HashMap<ObjectRef<HelmRelease>, ReleaseMemory>>,
    releases: Store<HelmRelease>,
}

/// What this process remembers of one release. In memory on purpose: after a restart every
/// release is re-applied once, which also corrects drift that happened while the operator was
/// down, and costs at most one no-op apply per object in `corrected`.
#[derive(Debug, Default)]
struct ReleaseMemory {
    /// When it was last applied (the interval re-apply clock), and whether that apply rendered
    /// as an upgrade: a re-apply renders the same way, so it is the same render (a render
    /// cache hit, no helm process).
    last_applied: Option<(std::time::Instant, bool)>,
    /// When this process wrote its flip to Ready: the precise start of a hand-off (`readyAt`
    /// in status has whole seconds only).
    became_ready: Option<std::time::Instant>,
    /// Per applied object (see [`object_key`]): the newest write by another field manager that
    /// a re-apply already answered. A write our apply does not take back (a controller's
    /// annotation on the main resource) keeps its entry newer than ours; this stops it from
    /// counting as drift again.
    corrected: HashMap<String, Timestamp>,
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
    ) -> Result<Self, Error> {
        let client = op.client.clone();
        let renderer = Renderer::new(&config.helm_path)
            .await
            .map_err(Error::Render)?;
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
            client,
            metrics: op.metrics.controller(CONTROLLER),
            release_metrics: ReleaseMetrics::register(&op.metrics)?,
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
        let found = secrets.get_opt(secret).await.map_err(Error::kube(format!(
            "reading the credentials Secret {namespace}/{secret} of repository {alias}"
        )))?;
        let Some(found) = found else {
            return Err(Error::MissingCredentials {
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

    /// Updates what this process remembers of the release `key`.
    fn remember<T>(
        &self,
        key: &ObjectRef<HelmRelease>,
        update: impl FnOnce(&mut ReleaseMemory) -> T,
    ) -> T {
        let mut memory = self
            .memory
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        update(memory.entry(key.clone()).or_default())
    }

    /// Reads what this process remembers of the release `key`, if anything.
    fn recall<T>(
        &self,
        key: &ObjectRef<HelmRelease>,
        read: impl FnOnce(&ReleaseMemory) -> T,
    ) -> Option<T> {
        self.memory
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(key)
            .map(read)
    }

    /// Forgets the release `key` (it is deleted).
    fn forget(&self, key: &ObjectRef<HelmRelease>) {
        self.memory
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(key);
    }

    fn record_apply(&self, key: &ObjectRef<HelmRelease>, is_upgrade: bool) {
        self.remember(key, |m| {
            m.last_applied = Some((std::time::Instant::now(), is_upgrade));
        });
    }

    fn since_last_apply(&self, key: &ObjectRef<HelmRelease>) -> Option<Duration> {
        self.recall(key, |m| m.last_applied.map(|(at, _)| at.elapsed()))
            .flatten()
    }

    /// Whether the last apply of this process rendered as an upgrade; after a restart, yes.
    fn last_apply_was_upgrade(&self, key: &ObjectRef<HelmRelease>) -> bool {
        self.recall(key, |m| m.last_applied.map(|(_, is_upgrade)| is_upgrade))
            .flatten()
            .unwrap_or(true)
    }

    /// Whether a foreign write at `at` on the object `object` of the release `key` is still to
    /// be put back.
    fn is_uncorrected(&self, key: &ObjectRef<HelmRelease>, object: &str, at: Timestamp) -> bool {
        self.recall(key, |m| m.corrected.get(object).copied())
            .flatten()
            .is_none_or(|corrected| at > corrected)
    }

    fn record_corrected(&self, key: &ObjectRef<HelmRelease>, edits: &[(String, Timestamp)]) {
        self.remember(key, |m| {
            for (object, at) in edits {
                m.corrected.insert(object.clone(), *at);
            }
        });
    }

    fn since_became_ready(&self, key: &ObjectRef<HelmRelease>) -> Option<Duration> {
        self.recall(key, |m| m.became_ready.map(|at| at.elapsed()))
            .flatten()
    }

    fn reapply_due(&self, key: &ObjectRef<HelmRelease>, interval: Duration) -> bool {
        self.since_last_apply(key)
            .is_none_or(|elapsed| elapsed >= interval)
    }

    async fn dynamic_api(
        &self,
        entry: &InventoryEntry,
        namespace: &str,
    ) -> Result<Api<DynamicObject>, Error> {
        let (resource, capabilities) = self.resource(&entry.api_version, &entry.kind).await?;
        Ok(if capabilities.scope == Scope::Namespaced {
            Api::namespaced_with(
                self.client.clone(),
                entry.namespace.as_deref().unwrap_or(namespace),
                &resource,
            )
        } else {
            Api::all_with(self.client.clone(), &resource)
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
    let (store, trigger) = ready.watch(releases.clone(), op.watcher_config());
    let controller =
        Controller::for_stream(trigger, store.clone()).with_config(op.controller_config());
    let context = Arc::new(Context::new(&op, config, store.clone()).await?);
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

/// One reconcile: the finalizer decides between applying and tearing down.
#[instrument(skip_all, fields(namespace = hr.namespace(), name = hr.name_any()))]
pub async fn reconcile(hr: Arc<HelmRelease>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.count_and_measure();
    ctx.release_metrics
        .count_phases(ctx.releases.state().iter().map(|r| r.as_ref()));
    let key = ObjectRef::from_obj(hr.as_ref());
    let namespace = hr.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<HelmRelease> = Api::namespaced(ctx.client.clone(), &namespace);
    // Reconcile the newest object, not the cached one: a wake-up by a workload event can come
    // before our own last status write reaches the cache, and a stale status would apply (and
    // run hooks) a second time.
    let Some(hr) = api
        .get_opt(&hr.name_any())
        .await
        .map_err(Error::kube("reading the HelmRelease"))?
    else {
        return Ok(Action::await_change());
    };
    let hr = Arc::new(hr);
    if let Some(action) = wait_for_dependents(&hr, &ctx, &api).await? {
        return Ok(action);
    }
    if let Some(action) = teardown(&hr, &ctx, &api, &namespace).await? {
        return Ok(action);
    }
    let action = finalizer(&api, FINALIZER, hr, |event| async {
        match event {
            FinalizerEvent::Apply(hr) => apply(&hr, &ctx, &namespace).await,
            FinalizerEvent::Cleanup(hr) => cleanup(&hr, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))?;
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

/// What observe found, plus what the apply step needs and the decision does not.
struct Observed {
    observation: Observation,
    values: Option<Value>,
    /// While waiting for dependencies: the values with the outputs they publish so far.
    early_values: Option<Value>,
    digest: Option<String>,
    published_keys: Vec<String>,
    /// How long until the health timeout, when it is counting.
    timeout_in: Option<Duration>,
    /// Applied objects changed by hand, with the time of the newest foreign write: recorded
    /// as corrected once the apply putting them back succeeds.
    edits: Vec<(String, Timestamp)>,
}

async fn apply(hr: &HelmRelease, ctx: &Context, namespace: &str) -> Result<Action, Error> {
    let observed = observe(hr, ctx, namespace).await?;
    let decision = decide(&observed.observation);
    let now = Time(Timestamp::now());
    let generation = hr.metadata.generation;
    let old = hr.status.as_ref();
    let api: Api<HelmRelease> = Api::namespaced(ctx.client.clone(), namespace);

    let key = ObjectRef::from_obj(hr);
    let apply_step = match &decision {
        Decision::Apply { is_upgrade, drift } => Some((*is_upgrade, drift.as_slice(), true)),
        // The same render again: no hooks (nothing was upgraded), status stays Ready.
        Decision::Reapply { drift } => {
            Some((ctx.last_apply_was_upgrade(&key), drift.as_slice(), false))
        }
        _ => None,
    };
    if let (Decision::WaitForDependencies { .. }, Some(values)) =
        (&decision, &observed.early_values)
    {
        render_ahead(
            hr,
            ctx,
            namespace,
            values,
            old.is_some_and(|s| s.applied_digest.is_some()),
        )
        .await;
    }
    if let Some((is_upgrade, drift, with_hooks)) = apply_step {
        if let Some(waited) = handoff_latency(hr, ctx, namespace).await {
            ctx.release_metrics
                .dependency_handoff_seconds
                .observe(waited.as_secs_f64());
        }
        if !drift.is_empty() {
            info!(
                objects = drift.join(", "),
                "putting back objects changed or deleted by hand"
            );
            ctx.release_metrics.drift_corrections.inc();
            let note = format!("putting back {}", drift.join(", "));
            ctx.recorder
                .warning(&hr.object_ref(&()), "DriftCorrected", "Apply", Some(&note))
                .await;
        }
        let values = observed.values.clone().unwrap_or(Value::Null);
        // Any failure message may quote what was applied: values never reach status or Events.
        let scrubber = Scrubber::new(&values, MIN_SCRUB_LEN);
        // Hooks run when what is applied changed, not when deleted objects are put back.
        let inputs_changed =
            observed.digest.as_deref() != old.and_then(|s| s.applied_digest.as_deref());
        let with_hooks = with_hooks && inputs_changed;
        let run = hook_run(hr, observed.digest.as_deref().unwrap_or_default());
        let mut recorded = hr.status.clone();
        let progress = apply_release(
            hr,
            ctx,
            namespace,
            &values,
            (is_upgrade, with_hooks),
            &run,
            &mut recorded,
        )
        .await;
        // The status the apply may have written (its inventory) is the base from here on.
        let old = recorded.as_ref();
        match progress {
            Ok(Progress::Waiting { message, hooks }) => {
                let mut status = applying_status(old, &decision, &message, generation, &now);
                if with_hooks {
                    status.hooks = hooks;
                }
                status.outputs = observed.published_keys.clone();
                write_status(ctx, &api, hr, status).await?;
                // The watch on the awaited object starts the next pass; this is the safety
                // net (and the pace of a CRD, whose Established condition is not watched).
                return Ok(Action::requeue(APPLY_RECHECK));
            }
            Ok(Progress::Done(applied)) => {
                ctx.record_apply(&key, is_upgrade);
                ctx.record_corrected(&key, &observed.edits);
                let mut status = next_status(old, &decision, generation, &now);
                status.applied_digest = observed.digest.clone();
                // Kept objects stay listed until a render takes them back.
                for entry in applied.kept {
                    if !status.kept.contains(&entry) {
                        status.kept.push(entry);
                    }
                }
                status.kept.retain(|k| !applied.inventory.contains(k));
                status.inventory = applied.inventory;
                status.version = Some(applied.version);
                status.chart_digest = Some(applied.chart_digest);
                if with_hooks {
                    status.hooks = applied.hooks;
                }
                status.outputs = observed.published_keys.clone();
                if matches!(decision, Decision::Reapply { .. }) {
                    write_status(ctx, &api, hr, status).await?;
                    return Ok(Action::requeue(hr.spec.interval()));
                }
                write_status(ctx, &api, hr, status).await?;
                for entry in &applied.succeeded_hooks {
                    delete_entry(ctx, namespace, entry).await?;
                }
                // The status write wakes the release again; this is only the safety net.
                return Ok(Action::requeue(Duration::from_secs(1)));
            }
            Err(error) if error.needs_spec_change() => {
                let decision = Decision::SpecError {
                    reason: error.reason().to_owned(),
                    message: scrubber.scrub(&error.to_string()),
                };
                let status = next_status(old, &decision, generation, &now);
                write_status(ctx, &api, hr, status).await?;
                return Ok(Action::requeue(hr.spec.interval()));
            }
            Err(error) => {
                let message = scrubber.scrub(&error.to_string());
                let status = failure_status(old, error.reason(), &message, generation, &now);
                write_status(ctx, &api, hr, status).await?;
                return Err(error);
            }
        }
    }

    let mut status = next_status(old, &decision, generation, &now);
    status.outputs = observed.published_keys.clone();
    write_status(ctx, &api, hr, status).await?;
    Ok(match decision {
        Decision::Suspended | Decision::SpecError { .. } => Action::await_change(),
        // Workload changes wake the release; this only makes sure the timeout is noticed.
        Decision::WaitHealthy { .. } => Action::requeue(
            observed
                .timeout_in
                .map_or(HEALTH_RECHECK, |left| {
                    left.saturating_add(Duration::from_millis(100))
                })
                .min(HEALTH_RECHECK),
        ),
        Decision::WaitForPublishedOutputs { .. } => Action::requeue(HEALTH_RECHECK),
        Decision::Failed { .. } => Action::requeue(HEALTH_RECHECK),
        Decision::Pending
        | Decision::WaitForDependencies { .. }
        | Decision::WaitForOutputs { .. }
        | Decision::Apply { .. }
        | Decision::Reapply { .. }
        | Decision::Ready => Action::requeue(hr.spec.interval()),
    })
}

/// On the first apply of a generation: how long since the last of its HelmRelease dependencies
/// became Ready (from their status timings in the cache).
async fn handoff_latency(hr: &HelmRelease, ctx: &Context, namespace: &str) -> Option<Duration> {
    let first_apply = hr
        .status
        .as_ref()
        .and_then(|s| s.timings.as_ref())
        .and_then(|t| t.started_at.as_ref())
        .is_none()
        || hr.status.as_ref().and_then(|s| s.observed_generation) != hr.metadata.generation;
    if !first_apply || hr.spec.dependencies.is_empty() {
        return None;
    }
    // The last dependency to become Ready is the one with the shortest time since. Precise
    // when this process wrote that Ready; else from status (whole seconds: up to 1 s high).
    let api: Api<HelmRelease> = Api::namespaced(ctx.client.clone(), namespace);
    let mut shortest: Option<Duration> = None;
    for dependency in &hr.spec.dependencies {
        if dependency.kind == Some(DependencyKind::UpstartService) {
            continue;
        }
        let key = ObjectRef::<HelmRelease>::new(&dependency.name).within(namespace);
        let since = match ctx.since_became_ready(&key) {
            Some(since) => Some(since),
            // Read directly: the cache may not hold the dependency's newest status yet.
            None => api
                .get_opt(&dependency.name)
                .await
                .ok()
                .flatten()
                .and_then(|r| r.status?.timings?.ready_at)
                .map(|at| Timestamp::now().duration_since(at.0).unsigned_abs()),
        };
        if let Some(since) = since {
            shortest = Some(shortest.map_or(since, |s| s.min(since)));
        }
    }
    shortest
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
    .map_err(Error::kube("writing status"))?;
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

async fn observe(hr: &HelmRelease, ctx: &Context, namespace: &str) -> Result<Observed, Error> {
    let mut dependencies = Vec::new();
    let mut expression_context = ExpressionContext {
        release: ReleaseInfo {
            name: hr.name_any(),
            namespace: namespace.to_owned(),
        },
        ..ExpressionContext::default()
    };
    for dependency in &hr.spec.dependencies {
        let (state, outputs) =
            observe_dependency(ctx, namespace, &dependency.name, dependency.kind).await?;
        expression_context
            .dependencies
            .insert(dependency.alias().to_owned(), outputs);
        dependencies.push(DependencyObservation {
            name: dependency.name.clone(),
            state,
        });
    }
    let all_ready = dependencies
        .iter()
        .all(|d| d.state == DependencyState::Ready);
    expression_context.service = roots::service_info(hr);

    let (values_state, values, digest) = if all_ready {
        match resolve_values(hr, ctx, namespace, &mut expression_context).await? {
            Ok(values) => {
                let digest = FieldDigest::new()
                    .field("chart", &hr.spec.chart)
                    .field("version", hr.spec.version.as_deref().unwrap_or(""))
                    .field("releaseName", release_name(hr).as_str())
                    .field("namespace", namespace)
                    .field("values", &canonical_json(&values))
                    .finish();
                (
                    ValuesState::Resolved {
                        digest: digest.clone(),
                    },
                    Some(values),
                    Some(digest),
                )
            }
            Err(state) => (state, None, None),
        }
    } else {
        (ValuesState::NotObserved, None, None)
    };
    // Waiting for dependencies that are installed but not Ready yet: the values as their
    // outputs stand now, to render ahead (see `render_ahead`).
    let early_values = if !all_ready
        && dependencies.iter().all(|d| {
            matches!(
                d.state,
                DependencyState::Ready | DependencyState::NotReady { .. }
            )
        }) {
        resolve_values(hr, ctx, namespace, &mut expression_context)
            .await
            .ok()
            .and_then(Result::ok)
    } else {
        None
    };

    let status = hr.status.clone().unwrap_or_default();
    let mut healths = Vec::new();
    let mut inventory_missing = Vec::new();
    let mut inventory_edited = Vec::new();
    let mut edits = Vec::new();
    let release = ObjectRef::from_obj(hr);
    for entry in &status.inventory {
        let api = match ctx.dynamic_api(entry, namespace).await {
            Ok(api) => api,
            Err(Error::UnknownKind { .. }) => {
                inventory_missing.push(manifests::display_name(entry));
                healths.push(Health::missing(entry));
                continue;
            }
            Err(error) => return Err(error),
        };
        match api
            .get_opt(&entry.name)
            .await
            .map_err(Error::kube("reading an applied object"))?
        {
            Some(live) => {
                let key = object_key(entry, namespace);
                if let Some(at) = edited_at(live.managed_fields(), FIELD_MANAGER)
                    && ctx.is_uncorrected(&release, &key, at)
                {
                    inventory_edited.push(manifests::display_name(entry));
                    edits.push((key, at));
                }
                let live = serde_json::to_value(&live).unwrap_or(Value::Null);
                healths.push(health::assess(&live));
            }
            None => {
                inventory_missing.push(manifests::display_name(entry));
                healths.push(Health::missing(entry));
            }
        }
    }
    let health = health::combine(healths);

    let own = objects_for(ctx, namespace, &hr.spec.outputs_from).await?;
    let (published_missing, published_keys) =
        match collect_release_outputs(&hr.spec.outputs_from, &own) {
            Ok(collected) => (
                collected.missing.iter().map(ToString::to_string).collect(),
                collected.outputs.key_names(),
            ),
            Err(error) => (vec![error.to_string()], Vec::new()),
        };

    // Measured from the last apply of this process (a drift correction restarts the clock),
    // else from when this generation started applying (after a restart).
    let since_apply = ctx.since_last_apply(&ObjectRef::from_obj(hr)).or_else(|| {
        status
            .timings
            .as_ref()
            .and_then(|t| t.started_at.as_ref())
            .map(|started| Timestamp::now().duration_since(started.0).unsigned_abs())
    });
    let health_timed_out =
        !health.is_healthy() && since_apply.is_some_and(|waited| waited > hr.spec.timeout());

    Ok(Observed {
        observation: Observation {
            suspended: hr.spec.suspend,
            spec_problems: {
                let mut problems = alias_problems(&hr.name_any(), &hr.spec.dependencies);
                let releases = ctx.releases.state();
                problems.extend(cycle_problems(
                    &hr.name_any(),
                    releases
                        .iter()
                        .filter(|r| r.namespace().as_deref() == Some(namespace))
                        .map(|r| {
                            (
                                r.metadata.name.as_deref().unwrap_or_default(),
                                r.spec.dependencies.as_slice(),
                            )
                        }),
                ));
                problems
            },
            dependencies,
            values: values_state,
            applied_digest: status.applied_digest.clone(),
            inventory_missing,
            inventory_edited,
            wait: hr.spec.wait(),
            health,
            health_timed_out,
            published_missing,
            reapply_due: ctx.reapply_due(&ObjectRef::from_obj(hr), hr.spec.interval()),
        },
        values,
        early_values,
        digest,
        published_keys,
        timeout_in: since_apply.map(|waited| hr.spec.timeout().saturating_sub(waited)),
        edits,
    })
}

/// Identifies an applied object across releases and reconciles.
fn object_key(entry: &InventoryEntry, namespace: &str) -> String {
    format!(
        "{}/{}/{}/{}",
        entry.namespace.as_deref().unwrap_or(namespace),
        entry.api_version,
        entry.kind,
        entry.name
    )
}

/// When an applied object was last changed by hand: the time of the newest write to its main
/// resource by a field manager other than `ours`, when it is not older than our own last apply
/// of it (or when our apply no longer owns anything, e.g. the object was replaced).
/// Writes through a subresource (`/status`, `/scale`) are controllers at work, not drift.
/// So are writes that own nothing but metadata (labels, annotations): controllers annotate what
/// they manage (kube-controller-manager's `deployment.kubernetes.io/revision` after every
/// rollout), and counting that as drift would announce a false correction after each install
/// or upgrade. A label or annotation changed by hand is put back on the interval instead.
/// managedFields times have whole seconds, so a write in the same second as our apply counts:
/// at worst one re-apply that changes nothing.
pub fn edited_at(fields: &[ManagedFieldsEntry], ours: &str) -> Option<Timestamp> {
    let main = |f: &&ManagedFieldsEntry| f.subresource.as_deref().is_none_or(str::is_empty);
    let our_apply = fields
        .iter()
        .filter(main)
        .filter(|f| f.manager.as_deref() == Some(ours) && f.operation.as_deref() == Some("Apply"))
        .filter_map(|f| f.time.as_ref().map(|t| t.0))
        .max();
    let foreign = fields
        .iter()
        .filter(main)
        .filter(|f| f.manager.as_deref() != Some(ours))
        .filter(|f| our_apply.is_none() || !owns_only_metadata(f))
        .map(|f| f.time.as_ref().map_or(Timestamp::UNIX_EPOCH, |t| t.0))
        .max()?;
    match our_apply {
        Some(ours) if foreign < ours => None,
        _ => Some(foreign),
    }
}

/// Whether a managedFields entry owns nothing outside `metadata` (unknown fields: no).
fn owns_only_metadata(entry: &ManagedFieldsEntry) -> bool {
    entry
        .fields_v1
        .as_ref()
        .and_then(|fields| fields.0.as_object())
        .is_some_and(|owned| owned.keys().all(|k| k == "f:metadata"))
}

/// `environment.*` (SPEC §5): the UpstartEnvironment named by the namespace's environment
/// label, when it owns that namespace. Read directly, as dependencies are: a variables change
/// wakes the release and must be seen by that very reconcile.
async fn observe_environment(
    ctx: &Context,
    namespace: &str,
) -> Result<Option<EnvironmentInfo>, Error> {
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let Some(found) = namespaces
        .get_opt(namespace)
        .await
        .map_err(Error::kube("reading the release's Namespace"))?
    else {
        return Ok(None);
    };
    let Some(name) = roots::environment_of_namespace(found.labels()) else {
        return Ok(None);
    };
    let environments: Api<UpstartEnvironment> = Api::all(ctx.client.clone());
    Ok(environments
        .get_opt(name)
        .await
        .map_err(Error::kube("reading the namespace's UpstartEnvironment"))?
        .and_then(|environment| roots::environment_info(&environment, namespace)))
}

fn release_name(hr: &HelmRelease) -> String {
    hr.spec.release_name_of_object(&hr.name_any())
}

/// A dependency's state and, once Ready, the outputs it publishes.
async fn observe_dependency(
    ctx: &Context,
    namespace: &str,
    name: &str,
    kind: Option<DependencyKind>,
) -> Result<(DependencyState, Outputs), Error> {
    let releases: Api<HelmRelease> = Api::namespaced(ctx.client.clone(), namespace);
    let services: Api<UpstartService> = Api::namespaced(ctx.client.clone(), namespace);
    let release = match kind {
        Some(DependencyKind::UpstartService) => None,
        _ => releases
            .get_opt(name)
            .await
            .map_err(Error::kube("reading a dependency"))?,
    };
    let service = match kind {
        Some(DependencyKind::HelmRelease) => None,
        _ => services
            .get_opt(name)
            .await
            .map_err(Error::kube("reading a dependency"))?,
    };
    match (release, service) {
        (Some(_), Some(_)) => Ok((DependencyState::Ambiguous, Outputs::new())),
        (None, None) => Ok((DependencyState::Missing, Outputs::new())),
        (Some(release), None) => {
            let conditions = release
                .status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or_default();
            let objects = objects_for(ctx, namespace, &release.spec.outputs_from).await?;
            if !is_ready_for_generation(conditions, release.metadata.generation) {
                // What it publishes so far (outputs usually exist from its apply on): only
                // for rendering ahead, never applied before it is Ready.
                let early = collect_release_outputs(&release.spec.outputs_from, &objects)
                    .map(|collected| collected.outputs)
                    .unwrap_or_default();
                return Ok((not_ready(conditions), early));
            }
            match collect_release_outputs(&release.spec.outputs_from, &objects) {
                Ok(collected) => Ok((DependencyState::Ready, collected.outputs)),
                Err(error) => Ok((
                    DependencyState::NotReady {
                        message: error.to_string(),
                    },
                    Outputs::new(),
                )),
            }
        }
        (None, Some(service)) => {
            let conditions = service
                .status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or_default();
            if !is_ready_for_generation(conditions, service.metadata.generation) {
                return Ok((not_ready(conditions), Outputs::new()));
            }
            let uid = service.metadata.uid.clone().unwrap_or_default();
            let children: Vec<HelmRelease> = ctx
                .releases
                .state()
                .iter()
                .filter(|r| r.namespace().as_deref() == Some(namespace))
                .filter(|r| r.owner_references().iter().any(|o| o.uid == uid))
                .map(|r| (**r).clone())
                .collect();
            let mut sources = Vec::new();
            for child in &children {
                sources.extend(child.spec.outputs_from.iter().cloned());
            }
            let objects = objects_for(ctx, namespace, &sources).await?;
            let entries: Vec<(String, &[upstart_api::v1alpha1::OutputSource])> = children
                .iter()
                .map(|c| (c.name_any(), c.spec.outputs_from.as_slice()))
                .collect();
            match collect_service_outputs(entries.iter().map(|(k, s)| (k.as_str(), *s)), &objects) {
                Ok(collected) => Ok((DependencyState::Ready, collected.outputs)),
                Err(error) => Ok((
                    DependencyState::NotReady {
                        message: error.to_string(),
                    },
                    Outputs::new(),
                )),
            }
        }
    }
}

fn not_ready(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> DependencyState {
    let message = match find(conditions, READY) {
        Some(c) if c.status == "True" => "not yet reconciled for its current generation".to_owned(),
        // Not its message: that names its own dependencies and theirs, so a change at the head
        // of a chain would rewrite the status of every release below it.
        Some(c) if c.reason == reasons::DEPENDENCIES_NOT_READY => {
            "waiting for its own dependencies".to_owned()
        }
        Some(c) if !c.message.is_empty() => c.message.clone(),
        Some(c) => c.reason.clone(),
        None => "not reconciled yet".to_owned(),
    };
    DependencyState::NotReady { message }
}

/// The Secrets and ConfigMaps the given output sources name, as they are now.
async fn objects_for(
    ctx: &Context,
    namespace: &str,
    sources: &[upstart_api::v1alpha1::OutputSource],
) -> Result<Objects, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
    let mut objects = Objects::new();
    for source in sources {
        if let Some(reference) = &source.secret_ref
            && let Some(secret) = secrets
                .get_opt(&reference.name)
                .await
                .map_err(Error::kube("reading an output Secret"))?
        {
            objects = objects.with_secret(secret);
        }
        if let Some(reference) = &source.config_map_ref
            && let Some(config_map) = config_maps
                .get_opt(&reference.name)
                .await
                .map_err(Error::kube("reading an output ConfigMap"))?
        {
            objects = objects.with_config_map(config_map);
        }
    }
    Ok(objects)
}

/// The final values (SPEC §2.3), or why there are none yet.
async fn resolve_values(
    hr: &HelmRelease,
    ctx: &Context,
    namespace: &str,
    context: &mut ExpressionContext,
) -> Result<Result<Value, ValuesState>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
    let mut documents = Vec::new();
    for source in &hr.spec.values_from {
        let (origin, reference, text) = if let Some(reference) = &source.secret_ref {
            let text = secrets
                .get_opt(&reference.name)
                .await
                .map_err(Error::kube("reading a valuesFrom Secret"))?
                .and_then(|s| s.data?.get(reference.key()).map(|b| b.0.clone()));
            (format!("Secret/{}", reference.name), reference, text)
        } else if let Some(reference) = &source.config_map_ref {
            let text = config_maps
                .get_opt(&reference.name)
                .await
                .map_err(Error::kube("reading a valuesFrom ConfigMap"))?
                .and_then(|c| c.data?.get(reference.key()).map(|s| s.clone().into_bytes()));
            (format!("ConfigMap/{}", reference.name), reference, text)
        } else {
            continue;
        };
        let origin = format!("{origin} key {}", reference.key());
        let Some(text) = text else {
            if reference.optional {
                continue;
            }
            return Ok(Err(ValuesState::Wait {
                reason: "ValuesSourceMissing".to_owned(),
                message: format!("{origin} does not exist"),
            }));
        };
        match parse_values_document(&text) {
            Ok(document) => documents.push((origin, document)),
            Err(why) => {
                return Ok(Err(ValuesState::SpecError {
                    reason: "InvalidValuesDocument".to_owned(),
                    message: format!("{origin}: {why}"),
                }));
            }
        }
    }
    let merged = match release_values(documents, hr.spec.values.as_ref()) {
        Ok(merged) => merged,
        Err(error) => {
            return Ok(Err(ValuesState::SpecError {
                reason: error.reason().to_owned(),
                message: error.to_string(),
            }));
        }
    };
    // An expression reading `environment.*` names it: without the word, the environment's
    // two reads are saved.
    if serde_json::to_string(&merged).is_ok_and(|text| text.contains("environment")) {
        context.environment = observe_environment(ctx, namespace).await?;
    }
    Ok(
        match ctx.expressions.substitute(merged, "spec.values", context) {
            Ok(values) => Ok(values),
            Err(error) if error.is_wait() => Err(ValuesState::Wait {
                reason: error.reason().to_owned(),
                message: error.to_string(),
            }),
            Err(error) => Err(ValuesState::SpecError {
                reason: error.reason().to_owned(),
                message: error.to_string(),
            }),
        },
    )
}

/// Parses one `valuesFrom` document with a size limit, as Helm reads values (YAML 1.1, see
/// `upstart_release_engine::yaml`), its alias expansion bounded by the default `YamlLimits`.
/// The reason never quotes the content.
pub fn parse_values_document(bytes: &[u8]) -> Result<Value, String> {
    if bytes.len() > MAX_VALUES_DOCUMENT_BYTES {
        return Err(format!(
            "document is {} bytes, more than the limit of {MAX_VALUES_DOCUMENT_BYTES}",
            bytes.len()
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "document is not UTF-8".to_owned())?;
    use upstart_release_engine::yaml::{YamlError, YamlLimits, to_json_documents};
    let mut documents = to_json_documents(text, &YamlLimits::default()).map_err(|e| match e {
        YamlError::TooLarge { .. } => e.to_string(),
        other => format!("invalid YAML: {other}"),
    })?;
    if documents.len() > 1 {
        return Err("holds more than one YAML document".to_owned());
    }
    Ok(documents.pop().unwrap_or(Value::Null))
}

/// Renders while the dependencies finish becoming Ready, with the outputs they already
/// publish: when they are Ready with the same outputs, the apply finds the render in the cache
/// and starts without a helm run, so a hand-off costs no render (SPEC §9). Nothing is applied;
/// a failure here is left for the real apply to report.
async fn render_ahead(
    hr: &HelmRelease,
    ctx: &Context,
    namespace: &str,
    values: &Value,
    is_upgrade: bool,
) {
    if let Err(error) = render_plan(hr, ctx, namespace, values, is_upgrade).await {
        debug!(reason = error.metric_label(), "rendering ahead failed");
    }
}

/// Fetches the chart, renders it with `values` and plans the result.
async fn render_plan(
    hr: &HelmRelease,
    ctx: &Context,
    namespace: &str,
    values: &Value,
    is_upgrade: bool,
) -> Result<(upstart_chart_source::FetchedChart, manifests::Plan), Error> {
    let started = std::time::Instant::now();
    let chart = ctx
        .chart_source(&hr.spec.chart)
        .await?
        .fetch(&hr.spec.chart, hr.spec.version.as_deref())
        .await
        .map_err(Error::ChartFetch)?;
    ctx.release_metrics
        .chart_fetch_seconds
        .observe(started.elapsed().as_secs_f64());
    let release_name = release_name(hr);
    let started = std::time::Instant::now();
    let capabilities = ctx.discovered.read().await.catalog.capabilities();
    let rendered = ctx
        .renderer
        .render(&RenderRequest {
            chart_dir: &chart.path,
            chart_digest: &chart.digest,
            release_name: &release_name,
            namespace,
            values,
            capabilities: &capabilities,
            is_upgrade,
        })
        .await
        .map_err(Error::Render)?;
    ctx.release_metrics
        .render_seconds
        .observe(started.elapsed().as_secs_f64());
    let name = hr.name_any();
    let plan = {
        let discovered = ctx.discovered.read().await;
        let is_namespaced =
            |api_version: &str, kind: &str| discovered.catalog.is_namespaced(api_version, kind);
        let scope = ReleaseScope {
            namespace,
            name: &name,
            cluster_scoped_allow_list: &ctx.allow_list,
            is_namespaced: &is_namespaced,
        };
        manifests::plan(&rendered.manifest, &scope, &ctx.limits).map_err(Error::Render)?
    };
    Ok((chart, plan))
}

struct Applied {
    hooks: Vec<HookStatus>,
    inventory: Vec<InventoryEntry>,
    version: String,
    chart_digest: String,
    /// Hooks that succeeded with the `hook-succeeded` policy: deleted once status records the
    /// apply, so that a restart before that finds them and does not run them again.
    succeeded_hooks: Vec<InventoryEntry>,
    /// Objects the prune left in place (`helm.sh/resource-policy: keep`).
    kept: Vec<InventoryEntry>,
}

/// Where one pass of an apply got to. A pass never waits: a hook still running or a CRD not
/// yet Established ends it, the watch on that object starts the next one.
enum Progress {
    Done(Applied),
    Waiting {
        message: String,
        hooks: Vec<HookStatus>,
    },
}

/// One pass of fetch, render, plan, pre hooks, apply in order, post hooks, prune (SPEC §2.4,
/// §2.5). Every step is idempotent and its progress lives in the cluster (hook objects are
/// marked with `run`, the digest being applied), so a pass after a restart carries on where the
/// last one stopped: a hook that completed is not run again.
/// `recorded` is the status as last written: when the plan holds objects its inventory does not,
/// they are added to it (and written) before anything is applied.
async fn apply_release(
    hr: &HelmRelease,
    ctx: &Context,
    namespace: &str,
    values: &Value,
    (is_upgrade, with_hooks): (bool, bool),
    run: &str,
    recorded: &mut Option<HelmReleaseStatus>,
) -> Result<Progress, Error> {
    let (chart, plan) = render_plan(hr, ctx, namespace, values, is_upgrade).await?;
    let inventory = plan.inventory();
    let known = recorded
        .as_ref()
        .map(|s| s.inventory.as_slice())
        .unwrap_or_default();
    let unknown: Vec<InventoryEntry> = inventory
        .iter()
        .filter(|e| !known.contains(e))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        // Recorded before anything is applied: an apply that fails or is interrupted leaves
        // nothing that the next prune or the deletion would not find.
        let mut status = recorded.clone().unwrap_or_default();
        status.inventory.extend(unknown);
        let api: Api<HelmRelease> = Api::namespaced(ctx.client.clone(), namespace);
        write_status(ctx, &api, hr, status.clone()).await?;
        *recorded = Some(status);
    }
    let name = hr.name_any();
    let release_label = upstart_api::names::release_label_value(namespace, &name);
    let mut hooks = Vec::new();
    let mut succeeded_hooks = Vec::new();
    let (pre, post) = HookEvent::around_apply(is_upgrade);
    let with_hooks = with_hooks && !hr.spec.disable_hooks;
    let hook_pass = HookPass {
        ctx,
        hr,
        namespace,
        plan: &plan,
        release_label: &release_label,
        run,
        ended: &[],
        for_deletion: false,
    };
    if with_hooks
        && let HookStep::Waiting(message) = hook_pass
            .step(pre, &mut hooks, &mut succeeded_hooks)
            .await?
    {
        return Ok(Progress::Waiting { message, hooks });
    }
    let mut healths = Vec::with_capacity(plan.resources.len());
    for object in &plan.resources {
        let live = apply_object(
            ctx,
            namespace,
            &object.entry,
            &object.object,
            &release_label,
        )
        .await?;
        healths.push(health::assess(
            &serde_json::to_value(&live).unwrap_or(Value::Null),
        ));
        if object.entry.kind == "CustomResourceDefinition"
            && let Some(message) = crd_not_established(&object.entry, &live, hr.spec.timeout())?
        {
            // Custom resources of the same render are refused until their CRD is served.
            return Ok(Progress::Waiting { message, hooks });
        }
    }
    // As `helm install --wait`: post hooks start once the release's objects are healthy (a
    // migration Job must not run before its database is up); without `wait`, right away.
    if with_hooks
        && hr.spec.wait()
        && !plan.hooks_for(post).is_empty()
        && let Health::Progressing(progress) | Health::Failed(progress) = health::combine(healths)
    {
        let started = recorded
            .as_ref()
            .and_then(|s| s.timings.as_ref()?.started_at.as_ref());
        if started.is_some_and(|t| {
            Timestamp::now().duration_since(t.0).unsigned_abs() > hr.spec.timeout()
        }) {
            return Err(Error::NotHealthyForHooks {
                event: post.as_str(),
                message: progress,
                seconds: hr.spec.timeout().as_secs(),
            });
        }
        let message = format!(
            "{} hooks wait for the release to be healthy: {progress}",
            post.as_str()
        );
        return Ok(Progress::Waiting { message, hooks });
    }
    if with_hooks
        && let HookStep::Waiting(message) = hook_pass
            .step(post, &mut hooks, &mut succeeded_hooks)
            .await?
    {
        return Ok(Progress::Waiting { message, hooks });
    }
    let old = recorded
        .as_ref()
        .map(|s| s.inventory.as_slice())
        .unwrap_or_default();
    let mut kept = Vec::new();
    for entry in manifests::prune_set(old, &inventory) {
        match delete_unless_kept(hr, ctx, namespace, &entry).await? {
            Removal::Deleted => ctx.release_metrics.objects_pruned.inc(),
            Removal::Kept => kept.push(entry),
        }
    }
    Ok(Progress::Done(Applied {
        inventory,
        kept,
        version: chart.version,
        chart_digest: chart.digest,
        hooks,
        succeeded_hooks,
    }))
}

/// A CRD that is not Established yet: what to say while waiting, or an error once the release's
/// timeout has passed since the CRD was created.
fn crd_not_established(
    entry: &InventoryEntry,
    live: &DynamicObject,
    timeout: Duration,
) -> Result<Option<String>, Error> {
    let object = manifests::display_name(entry);
    match health::assess(&serde_json::to_value(live).unwrap_or(Value::Null)) {
        Health::Healthy => Ok(None),
        Health::Failed(message) => Err(Error::CrdNotEstablished { object, message }),
        Health::Progressing(message) if older_than(live, timeout) => {
            Err(Error::CrdNotEstablished { object, message })
        }
        Health::Progressing(_) => Ok(Some(format!("waiting for {object} to be Established"))),
    }
}

/// Whether `live` was created more than `age` ago.
fn older_than(live: &DynamicObject, age: Duration) -> bool {
    live.metadata
        .creation_timestamp
        .as_ref()
        .is_some_and(|created| Timestamp::now().duration_since(created.0).unsigned_abs() > age)
}

/// Server-side applies one object after checking it is not another release's.
async fn apply_object(
    ctx: &Context,
    namespace: &str,
    entry: &InventoryEntry,
    object: &Value,
    release_label: &str,
) -> Result<DynamicObject, Error> {
    let display = manifests::display_name(entry);
    let api = ctx.dynamic_api(entry, namespace).await?;
    let live = api
        .get_opt(&entry.name)
        .await
        .map_err(Error::kube(format!("reading {display}")))?;
    manifests::check_conflict(entry, live.as_ref().map(|l| l.labels()), release_label)
        .map_err(Error::Render)?;
    let applied = api
        .patch(
            &entry.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await
        .map_err(Error::kube(format!("applying {display}")))?;
    ctx.release_metrics.objects_applied.inc();
    Ok(applied)
}

/// The value of [`HOOK_RUN_ANNOTATION`] on the hooks of one run: the release object's uid and
/// what the run applies. The uid keeps a release deleted and created again with the same spec
/// from taking the hooks its earlier self left behind for its own (and skipping them).
fn hook_run(hr: &HelmRelease, what: &str) -> String {
    format!("{}-{what}", hr.uid().unwrap_or_default())
}

/// What [`delete_unless_kept`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Removal {
    /// Deleted (or already gone).
    Deleted,
    /// Left in place: it carries `helm.sh/resource-policy: keep`.
    Kept,
}

/// Deletes an object of the release as Helm's uninstall and upgrade do: unless the live object
/// carries `helm.sh/resource-policy: keep`, which leaves it in place (announced by an Event).
async fn delete_unless_kept(
    hr: &HelmRelease,
    ctx: &Context,
    namespace: &str,
    entry: &InventoryEntry,
) -> Result<Removal, Error> {
    let live = match ctx.dynamic_api(entry, namespace).await {
        Ok(api) => api.get_opt(&entry.name).await.map_err(Error::kube(format!(
            "reading {}",
            manifests::display_name(entry)
        )))?,
        Err(Error::UnknownKind { .. }) => None,
        Err(error) => return Err(error),
    };
    if live.is_some_and(|live| manifests::is_kept(live.metadata.annotations.as_ref())) {
        let note = format!(
            "{} left in place: it carries {}: keep",
            manifests::display_name(entry),
            manifests::RESOURCE_POLICY_ANNOTATION
        );
        ctx.recorder
            .normal(
                &hr.object_ref(&()),
                reasons::RESOURCE_KEPT,
                "Delete",
                Some(&note),
            )
            .await;
        return Ok(Removal::Kept);
    }
    delete_entry(ctx, namespace, entry).await?;
    Ok(Removal::Deleted)
}

async fn delete_entry(ctx: &Context, namespace: &str, entry: &InventoryEntry) -> Result<(), Error> {
    let api = match ctx.dynamic_api(entry, namespace).await {
        Ok(api) => api,
        // A kind no longer served has nothing left to delete.
        Err(Error::UnknownKind { .. }) => return Ok(()),
        Err(error) => return Err(error),
    };
    match api.delete(&entry.name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(Error::Kube {
            action: format!("deleting {}", manifests::display_name(entry)),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        manager: &str,
        operation: &str,
        second: i64,
        subresource: Option<&str>,
    ) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            time: Some(Time(
                Timestamp::from_second(1_700_000_000 + second).expect("a valid time"),
            )),
            subresource: subresource.map(str::to_owned),
            ..ManagedFieldsEntry::default()
        }
    }

    fn at(second: i64) -> Option<Timestamp> {
        Some(Timestamp::from_second(1_700_000_000 + second).expect("a valid time"))
    }

    fn owning(mut entry: ManagedFieldsEntry, fields: serde_json::Value) -> ManagedFieldsEntry {
        entry.fields_v1 = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1(
            fields,
        ));
        entry
    }

    #[test]
    fn annotation_written_by_a_controller_is_not_an_edit() {
        let fields = [
            entry(FIELD_MANAGER, "Apply", 5, None),
            owning(
                entry("kube-controller-manager", "Update", 9, None),
                json!({"f:metadata": {"f:annotations": {"f:deployment.kubernetes.io/revision": {}}}}),
            ),
        ];
        assert_eq!(edited_at(&fields, FIELD_MANAGER), None);
    }

    #[test]
    fn data_written_by_hand_is_an_edit() {
        let fields = [
            entry(FIELD_MANAGER, "Apply", 5, None),
            owning(
                entry("kubectl-edit", "Update", 9, None),
                json!({"f:data": {"f:message": {}}}),
            ),
        ];
        assert_eq!(edited_at(&fields, FIELD_MANAGER), at(9));
    }

    #[test]
    fn object_only_we_wrote_is_not_edited() {
        assert_eq!(
            edited_at(&[entry(FIELD_MANAGER, "Apply", 5, None)], FIELD_MANAGER),
            None
        );
    }

    #[test]
    fn status_written_by_a_controller_is_not_an_edit() {
        let fields = [
            entry(FIELD_MANAGER, "Apply", 5, None),
            entry("upstart-simulator", "Apply", 9, Some("status")),
        ];
        assert_eq!(edited_at(&fields, FIELD_MANAGER), None);
    }

    #[test]
    fn write_by_another_manager_after_our_apply_is_an_edit_at_its_time() {
        let fields = [
            entry(FIELD_MANAGER, "Apply", 5, None),
            entry("kubectl-edit", "Update", 9, None),
        ];
        assert_eq!(edited_at(&fields, FIELD_MANAGER), at(9));
    }

    #[test]
    fn write_in_the_same_second_as_our_apply_counts_as_an_edit() {
        let fields = [
            entry(FIELD_MANAGER, "Apply", 5, None),
            entry("kubectl-edit", "Update", 5, None),
        ];
        assert_eq!(edited_at(&fields, FIELD_MANAGER), at(5));
    }

    #[test]
    fn write_our_later_apply_answered_is_not_an_edit() {
        let fields = [
            entry("kubectl-edit", "Update", 5, None),
            entry(FIELD_MANAGER, "Apply", 9, None),
        ];
        assert_eq!(edited_at(&fields, FIELD_MANAGER), None);
    }

    #[test]
    fn object_we_no_longer_own_anything_of_is_edited() {
        let fields = [entry("kubectl", "Update", 3, None)];
        assert_eq!(edited_at(&fields, FIELD_MANAGER), at(3));
    }

    #[test]
    fn a_dependency_waiting_for_its_own_dependencies_is_named_without_its_message() {
        let waiting = |message: &str| {
            vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                type_: READY.to_owned(),
                status: "False".to_owned(),
                reason: reasons::DEPENDENCIES_NOT_READY.to_owned(),
                message: message.to_owned(),
                last_transition_time: Time(Timestamp::UNIX_EPOCH),
                observed_generation: Some(1),
            }]
        };
        // Whatever happens further up the chain, what a dependent says does not change.
        assert_eq!(
            not_ready(&waiting("waiting for a: waiting for b")),
            not_ready(&waiting("waiting for a: Deployment/b 0/1 available"))
        );
    }

    #[test]
    fn default_config_matches_the_binary_defaults_with_a_temporary_cache() {
        let config = Config::default();
        assert_eq!(config.helm_path, PathBuf::from("helm"));
        assert!(config.repositories.repositories.is_empty());
        assert!(config.cache_dir.starts_with(std::env::temp_dir()));
        assert_eq!(
            config.teardown_timeout,
            upstart_operator_runtime::CommonArgs::default().teardown_timeout
        );
        assert_eq!(
            config.cluster_scoped_allow_list,
            ClusterScopedAllowList::default()
        );
    }

    #[test]
    fn values_document_too_large_is_refused_without_quoting_it() {
        let big = vec![b'a'; MAX_VALUES_DOCUMENT_BYTES + 1];
        let error = parse_values_document(&big).expect_err("too large");
        assert!(error.contains("limit"));
        assert!(!error.contains("aaa"));
    }

    #[test]
    fn invalid_values_document_names_the_position_not_the_content() {
        let error = parse_values_document(b"password: hunter2\n  : [").expect_err("invalid");
        assert!(!error.contains("hunter2"), "{error}");
        assert!(error.contains("line"), "{error}");
    }

    #[test]
    fn values_document_is_parsed_as_yaml() {
        let value = parse_values_document(b"a:\n  b: 1\n").expect("valid");
        assert_eq!(value, json!({"a": {"b": 1}}));
    }

    #[test]
    fn a_chart_reference_names_its_configured_repository_as_the_chart_source_resolves_it() {
        let config = RepositoryConfig::from_yaml(
            "repositories: {reg: {url: \"oci://registry.example.com/charts/\"}, \
             web: {url: \"https://charts.example.com/stable\"}}",
        )
        .expect("valid");
        for (chart, alias) in [
            ("reg/app", Some("reg")),
            ("oci://registry.example.com/charts/app", Some("reg")),
            ("https://charts.example.com/stable/app", Some("web")),
            ("web/app", Some("web")),
            ("other/app", None),
            ("oci://registry.example.com/other/app", None),
            ("file:charts/reg/app", None),
        ] {
            assert_eq!(repository_alias(&config, chart), alias, "{chart}");
        }
    }
}
