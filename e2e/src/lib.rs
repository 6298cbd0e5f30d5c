//! The e2e harness: scenarios written as numbered steps (apply, then assert) that run against
//! the local cluster (`upstart-local-cluster`) by default, and against a real cluster when
//! [`KUBECONFIG_ENV`] (`UPSTART_E2E_KUBECONFIG`) names a kubeconfig.
//!
//! ```no_run
//! # async fn scenario() -> Result<(), upstart_e2e::Error> {
//! use std::time::Duration;
//! use upstart_e2e::{Check, TestEnv};
//!
//! let env = TestEnv::start().await?;
//! env.step("apply the CRDs and a service");
//! env.apply_dir("crds").await?;
//! env.apply_file("examples/services/another-upstart-service.yaml").await?;
//! env.step("the service is stored");
//! env.wait_for("the service to be stored", Duration::from_secs(10), || async {
//!     Ok(match env.get_dynamic("upstartoperators.upstart.com/v1alpha1", "UpstartService", "another-upstart-service").await? {
//!         Some(o) => Check::Done(o),
//!         None => Check::Waiting("not found".into()),
//!     })
//! }).await?;
//! env.finish().await
//! # }
//! ```
//!
//! Every [`TestEnv`] gets a namespace of its own (`e2e-<test name>-<random>`): namespaced
//! objects without a namespace are applied there. Locally every `TestEnv` also has a cluster of
//! its own, with every built-in operator and `charts/` served as `upstart-charts`; on a real
//! cluster the harness creates the namespace, and [`TestEnv::finish`] (or, failing that,
//! dropping the `TestEnv`) deletes it together with the other objects the scenario applied
//! outside it (cluster-scoped ones, catalog templates; CustomResourceDefinitions excepted:
//! deleting one would delete every object of its kind in the cluster).
//!
//! Workloads become ready at once locally; [`TestEnv::start_with_workload_delay`] makes them
//! slow (the workload simulator's delay), for scenarios about ordering and timing.

pub mod crash;
mod error;
mod objects;
pub mod parity;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, DynamicObject, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use kube::{Api, Client};
use upstart_local_cluster::{
    Applied, LocalCluster, LocalClusterOptions, ReportedKinds, apply_manifests, parse, read_files,
};

pub use error::Error;
pub use objects::{ContainerEnv, ObjectTimes, ReleaseTimes, Table};
pub use upstart_local_cluster;

/// The environment variable naming a kubeconfig: when set (and not empty), scenarios run
/// against that cluster and nothing local is started.
pub const KUBECONFIG_ENV: &str = "UPSTART_E2E_KUBECONFIG";

/// The field manager of everything the harness applies.
pub const FIELD_MANAGER: &str = "upstart-e2e";

/// The label on every namespace the harness creates (value `true`), to find leftovers.
pub const NAMESPACE_LABEL: &str = "e2e.upstart.dev/test";

/// On a real cluster, the catalog namespace its operators use, when not `upstart-catalog`.
pub const CATALOG_NAMESPACE_ENV: &str = "UPSTART_E2E_CATALOG_NAMESPACE";

/// How often [`TestEnv::wait_for`] checks its condition.
const POLL: Duration = Duration::from_millis(200);

/// How many distinct observations a timeout message lists (the latest ones).
const OBSERVED_KEPT: usize = 20;

/// What a [`TestEnv::wait_for`] condition saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check<T> {
    /// The condition holds; the wait returns this value.
    Done(T),
    /// Not yet; the text says what was observed instead (listed in the timeout message).
    Waiting(String),
}

enum Target {
    /// A local cluster of this test's own (`None` once shut down).
    Local(Option<Box<LocalCluster>>),
    /// A real cluster, reached through this kubeconfig.
    Real { kubeconfig: PathBuf },
}

/// One scenario's environment: a cluster, a namespace, and the helpers to drive it.
pub struct TestEnv {
    client: Client,
    namespace: String,
    target: Target,
    step: AtomicUsize,
    step_title: Mutex<String>,
    /// Objects applied outside the test namespace (cluster-scoped ones, catalog templates),
    /// deleted at the end on a real cluster: kind, namespace, name.
    outside: Mutex<Vec<Outside>>,
    finished: bool,
}

impl std::fmt::Debug for TestEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestEnv")
            .field("namespace", &self.namespace)
            .field("real_cluster", &self.is_real_cluster())
            .finish_non_exhaustive()
    }
}

/// An object applied outside the test namespace: kind, namespace (`None`: cluster-scoped),
/// name.
type Outside = (ApiResource, Option<String>, String);

impl TestEnv {
    /// Starts an environment with the default local cluster ([`TestEnv::local_options`]:
    /// every built-in operator, `charts/` as `upstart-charts`, instant workloads, no HTTPS
    /// endpoint), or on the real cluster of [`KUBECONFIG_ENV`].
    pub async fn start() -> Result<TestEnv, Error> {
        TestEnv::start_with(TestEnv::local_options()).await
    }

    /// Like [`TestEnv::start`], with simulated workloads (Deployments, Jobs, …) taking `delay`
    /// to become ready. On a real cluster the workloads take what they take.
    pub async fn start_with_workload_delay(delay: Duration) -> Result<TestEnv, Error> {
        TestEnv::start_with(LocalClusterOptions {
            workload_delay: delay,
            ..TestEnv::local_options()
        })
        .await
    }

    /// The default local cluster: every built-in operator
    /// ([`upstart_local_cluster::OperatorSet::all`]), the workspace's `charts/` served as
    /// `upstart-charts`, instant workloads. A base for [`TestEnv::start_with`].
    pub fn local_options() -> LocalClusterOptions {
        LocalClusterOptions {
            operators: upstart_local_cluster::OperatorSet::all(),
            charts_dir: Some(TestEnv::workspace_path("charts")),
            ..LocalClusterOptions::default()
        }
    }

    /// Like [`TestEnv::start`] with these local cluster options (ignored on a real cluster).
    pub async fn start_with(options: LocalClusterOptions) -> Result<TestEnv, Error> {
        match std::env::var_os(KUBECONFIG_ENV).filter(|v| !v.is_empty()) {
            Some(path) => TestEnv::connect(PathBuf::from(path)).await,
            None => {
                let cluster = LocalCluster::start(options).await?;
                let client = cluster.client().clone();
                TestEnv::new(client, Target::Local(Some(Box::new(cluster)))).await
            }
        }
    }

    /// An environment on the cluster of `kubeconfig`, treated as a real cluster whatever
    /// [`KUBECONFIG_ENV`] says: nothing local is started, and the namespace and the
    /// cluster-scoped objects applied are deleted at the end.
    pub async fn connect(kubeconfig: impl Into<PathBuf>) -> Result<TestEnv, Error> {
        let kubeconfig = kubeconfig.into();
        let client = real_client(&kubeconfig).await?;
        TestEnv::new(client, Target::Real { kubeconfig }).await
    }

    async fn new(client: Client, target: Target) -> Result<TestEnv, Error> {
        let namespace = unique_namespace();
        let env = TestEnv {
            client,
            namespace,
            target,
            step: AtomicUsize::new(0),
            step_title: Mutex::new("0 (setup)".to_owned()),
            outside: Mutex::new(Vec::new()),
            finished: false,
        };
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": env.namespace, "labels": {NAMESPACE_LABEL: "true"}}
        }))
        .map_err(|e| Error::Unexpected {
            what: "the test namespace".into(),
            message: e.to_string(),
        })?;
        Api::<Namespace>::all(env.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .map_err(Error::kube(format!("creating namespace {}", env.namespace)))?;
        eprintln!(
            "e2e: namespace {} on {}",
            env.namespace,
            if env.is_real_cluster() {
                "the real cluster of UPSTART_E2E_KUBECONFIG"
            } else {
                "a local cluster"
            }
        );
        Ok(env)
    }

    /// A client of the cluster.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The test's own namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Whether this runs against a real cluster ([`KUBECONFIG_ENV`]).
    pub fn is_real_cluster(&self) -> bool {
        matches!(self.target, Target::Real { .. })
    }

    /// The local cluster (fault injection, chart repositories), when running locally.
    pub fn local(&self) -> Option<&LocalCluster> {
        match &self.target {
            Target::Local(cluster) => cluster.as_deref(),
            Target::Real { .. } => None,
        }
    }

    /// Starts the next numbered step and prints it (shown with the output of a failing test).
    /// Returns its number.
    pub fn step(&self, description: &str) -> usize {
        let n = self.step.fetch_add(1, Ordering::SeqCst) + 1;
        let title = format!("{n} ({description})");
        eprintln!("e2e: step {title}");
        if let Ok(mut current) = self.step_title.lock() {
            *current = title;
        }
        n
    }

    fn current_step(&self) -> String {
        self.step_title
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// `path` relative to the workspace root.
    pub fn workspace_path(path: impl AsRef<Path>) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
    }

    /// Applies the objects of a YAML text (multi-document) with server-side apply, CRDs first;
    /// namespaced objects without a namespace go to the test namespace.
    pub async fn apply_yaml(&self, yaml: &str) -> Result<Vec<Applied>, Error> {
        let manifests = parse(&format!("step {}", self.current_step()), yaml)?;
        self.apply(manifests).await
    }

    /// Applies a file given relative to the workspace root (`examples/environment.yaml`).
    pub async fn apply_file(&self, path: impl AsRef<Path>) -> Result<Vec<Applied>, Error> {
        self.apply_files(&[path]).await
    }

    /// Applies files given relative to the workspace root, as one batch (CRDs first).
    pub async fn apply_files<P: AsRef<Path>>(&self, paths: &[P]) -> Result<Vec<Applied>, Error> {
        let files: Vec<PathBuf> = paths.iter().map(TestEnv::workspace_path).collect();
        self.apply(read_files(&files)?).await
    }

    /// Applies every `.yaml`/`.yml` file under a folder of the workspace (recursively, in path
    /// order), as one batch.
    pub async fn apply_dir(&self, dir: impl AsRef<Path>) -> Result<Vec<Applied>, Error> {
        self.apply_files(&[dir]).await
    }

    /// The namespace of the catalog templates: the local cluster's (`upstart-catalog`), or on
    /// a real cluster [`CATALOG_NAMESPACE_ENV`], default `upstart-catalog`.
    pub fn catalog_namespace(&self) -> String {
        match self.local() {
            Some(cluster) => cluster.catalog_namespace().to_owned(),
            None => std::env::var(CATALOG_NAMESPACE_ENV)
                .ok()
                .filter(|ns| !ns.is_empty())
                .unwrap_or_else(|| upstart_api::names::DEFAULT_CATALOG_NAMESPACE.to_owned()),
        }
    }

    /// Applies files or folders (relative to the workspace root, e.g. `examples/services`) as
    /// catalog templates: namespaced objects without a namespace go to the catalog namespace.
    /// On a real cluster they carry [`NAMESPACE_LABEL`] and are deleted at the end, like every
    /// object applied outside the test namespace; a template of the same name that the harness
    /// did not create is never overwritten (the call fails instead), so a scenario cannot
    /// replace, then delete, a real catalog entry.
    pub async fn apply_catalog<P: AsRef<Path>>(&self, paths: &[P]) -> Result<Vec<Applied>, Error> {
        let files: Vec<PathBuf> = paths.iter().map(TestEnv::workspace_path).collect();
        let catalog = self.catalog_namespace();
        let mut manifests = read_files(&files)?;
        if self.is_real_cluster() {
            for manifest in &mut manifests {
                self.refuse_foreign_template(manifest, &catalog).await?;
                manifest.object["metadata"]["labels"][NAMESPACE_LABEL] = "true".into();
            }
        }
        self.apply_into(manifests, &catalog).await
    }

    async fn refuse_foreign_template(
        &self,
        manifest: &upstart_local_cluster::Manifest,
        catalog: &str,
    ) -> Result<(), Error> {
        let namespace = manifest.object["metadata"]["namespace"]
            .as_str()
            .unwrap_or(catalog);
        let (api, _, _) = self
            .dynamic_api_in(manifest.api_version(), manifest.kind(), namespace)
            .await?;
        let name = manifest.name();
        let existing = api
            .get_opt(name)
            .await
            .map_err(Error::kube(format!("reading {} {name}", manifest.kind())))?;
        let ours = |o: &DynamicObject| {
            o.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.get(NAMESPACE_LABEL).is_some_and(|v| v == "true"))
        };
        match existing {
            Some(object) if !ours(&object) => Err(Error::Unexpected {
                what: format!("catalog template {} {namespace}/{name}", manifest.kind()),
                message: format!(
                    "it exists on this cluster and was not made by the e2e harness: not \
                     overwriting it (point {CATALOG_NAMESPACE_ENV} at a scratch catalog)"
                ),
            }),
            _ => Ok(()),
        }
    }

    async fn apply(
        &self,
        manifests: Vec<upstart_local_cluster::Manifest>,
    ) -> Result<Vec<Applied>, Error> {
        self.apply_into(manifests, &self.namespace).await
    }

    async fn apply_into(
        &self,
        manifests: Vec<upstart_local_cluster::Manifest>,
        namespace: &str,
    ) -> Result<Vec<Applied>, Error> {
        let applied = apply_manifests(&self.client, manifests, FIELD_MANAGER, namespace).await?;
        if let Ok(mut cleanup) = self.outside.lock() {
            for a in &applied {
                let shared = a.kind == "CustomResourceDefinition" || a.kind == "Namespace";
                let outside = a.namespace.as_deref() != Some(self.namespace.as_str());
                if outside && !shared {
                    cleanup.push((a.resource().clone(), a.namespace.clone(), a.name.clone()));
                }
            }
        }
        Ok(applied)
    }

    /// The Upstart kinds whose `Ready` condition someone writes: the in-process operators'
    /// kinds locally, every kind on a real cluster (where the operators are installed).
    pub fn reported_kinds(&self) -> ReportedKinds {
        match self.local() {
            Some(cluster) => cluster.reported_kinds(),
            None => ReportedKinds::All,
        }
    }

    /// Waits until the applied objects are Ready, as `upstart dev --exit-when-ready` does
    /// (locally, an in-process operator that fails ends the wait at once).
    pub async fn wait_ready(&self, applied: &[Applied], timeout: Duration) -> Result<(), Error> {
        match self.local() {
            Some(cluster) => Ok(cluster.wait_ready(applied, timeout).await?),
            None => Ok(
                upstart_local_cluster::wait_ready(applied, &self.reported_kinds(), timeout).await?,
            ),
        }
    }

    /// Waits until an object that was not applied by the scenario (one an operator creates:
    /// an environment's UpstartServices, a service's HelmReleases) exists and is `Ready=True`
    /// for its current generation; returns it. `namespace` `None`: the test namespace (ignored
    /// for cluster-scoped kinds).
    pub async fn wait_object_ready(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        timeout: Duration,
    ) -> Result<DynamicObject, Error> {
        let (api, _, _) = self
            .dynamic_api_in(api_version, kind, namespace.unwrap_or(&self.namespace))
            .await?;
        let description = format!("{kind} {name} to be Ready");
        self.wait_for(&description, timeout, || async {
            let Some(object) = api
                .get_opt(name)
                .await
                .map_err(Error::kube(format!("reading {kind} {name}")))?
            else {
                return Ok(Check::Waiting("not found".to_owned()));
            };
            let value = serde_json::to_value(&object).unwrap_or_default();
            Ok(match upstart_local_cluster::readiness(&value) {
                upstart_local_cluster::Readiness::Ready => Check::Done(object),
                other => Check::Waiting(format!("{other:?}")),
            })
        })
        .await
    }

    /// Checks `condition` every 200 ms until it is [`Check::Done`] and returns its value, or
    /// fails after `timeout` with a message naming the step and `description` (what is
    /// waited for) and listing what the condition observed. An error from the condition ends
    /// the wait at once.
    pub async fn wait_for<T, F, Fut>(
        &self,
        description: &str,
        timeout: Duration,
        mut condition: F,
    ) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Check<T>, Error>>,
    {
        let started = tokio::time::Instant::now();
        let mut observed: Vec<String> = Vec::new();
        let mut last: Option<String> = None;
        loop {
            match condition().await? {
                Check::Done(value) => return Ok(value),
                Check::Waiting(seen) => {
                    if last.as_deref() != Some(seen.as_str()) {
                        observed.push(format!(
                            "after {:.1}s: {seen}",
                            started.elapsed().as_secs_f64()
                        ));
                        if observed.len() > OBSERVED_KEPT {
                            observed.remove(0);
                        }
                        last = Some(seen);
                    }
                }
            }
            if started.elapsed() >= timeout {
                return Err(Error::WaitTimeout {
                    step: self.current_step(),
                    description: description.to_owned(),
                    timeout,
                    observed,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Ends the scenario: on a real cluster deletes the test namespace and the cluster-scoped
    /// objects it applied; locally stops the cluster in order.
    pub async fn finish(mut self) -> Result<(), Error> {
        self.finished = true;
        match &mut self.target {
            Target::Local(cluster) => {
                if let Some(cluster) = cluster.take() {
                    cluster.shutdown().await;
                }
                Ok(())
            }
            Target::Real { .. } => {
                let cleanup = self.outside.lock().map(|c| c.clone()).unwrap_or_default();
                delete_test_objects(&self.client, &self.namespace, &cleanup).await
            }
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Locally, the cluster ends with the test's runtime. A real cluster must not keep the
        // test's objects when a scenario fails before finish(): delete them from a thread of
        // its own, with a runtime and a client of its own (this may run while the test's
        // runtime is shutting down).
        let Target::Real { kubeconfig } = &self.target else {
            return;
        };
        let kubeconfig = kubeconfig.clone();
        let namespace = self.namespace.clone();
        let cleanup = self.outside.lock().map(|c| c.clone()).unwrap_or_default();
        let cleaner = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return Err(e.to_string()),
            };
            runtime.block_on(async {
                let client = real_client(&kubeconfig).await.map_err(|e| e.to_string())?;
                delete_test_objects(&client, &namespace, &cleanup)
                    .await
                    .map_err(|e| e.to_string())
            })
        });
        match cleaner.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("e2e: cleaning up {}: {error}", self.namespace),
            Err(_) => eprintln!("e2e: cleaning up {} panicked", self.namespace),
        }
    }
}

async fn real_client(kubeconfig: &Path) -> Result<Client, Error> {
    let fail = |message: String| Error::Kubeconfig {
        path: kubeconfig.to_path_buf(),
        message,
    };
    let config = Kubeconfig::read_from(kubeconfig).map_err(|e| fail(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
        .await
        .map_err(|e| fail(e.to_string()))?;
    Client::try_from(config).map_err(|e| fail(e.to_string()))
}

async fn delete_test_objects(
    client: &Client,
    namespace: &str,
    outside: &[Outside],
) -> Result<(), Error> {
    for (resource, object_namespace, name) in outside {
        let api: Api<DynamicObject> = match object_namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
            None => Api::all_with(client.clone(), resource),
        };
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(Error::kube(format!("deleting {} {name}", resource.kind))(e)),
        }
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces
        .delete(namespace, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(e) => Err(Error::kube(format!("deleting namespace {namespace}"))(e)),
    }
}

/// `e2e-<test name>-<8 hex>`: the test's name (libtest names each test's thread after it) for
/// whoever finds a leftover, and a random part so that parallel runs never share a namespace.
fn unique_namespace() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_usize(COUNTER.fetch_add(1, Ordering::SeqCst));
    hasher.write_u32(std::process::id());
    let suffix = format!("{:08x}", hasher.finish() as u32);
    let thread = std::thread::current();
    let test = thread
        .name()
        .filter(|n| *n != "main")
        .map(|n| n.rsplit("::").next().unwrap_or(n))
        .unwrap_or("test");
    let mut name: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    // A namespace is a DNS label: at most 63 characters, alphanumeric at both ends.
    name.truncate(63 - "e2e-".len() - 1 - suffix.len());
    let name = name.trim_matches('-');
    if name.is_empty() {
        format!("e2e-{suffix}")
    } else {
        format!("e2e-{name}-{suffix}")
    }
}
