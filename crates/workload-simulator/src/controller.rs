//! The thin controller part: one kube-runtime controller per simulated kind that observes an
//! object, asks the pure functions in [`crate::status`] for its status, and writes it.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetStatus, Deployment, DeploymentStatus, ReplicaSet, ReplicaSetStatus,
    StatefulSet, StatefulSetStatus,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimStatus, Pod, PodStatus, Service, ServiceStatus,
};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::Scope;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt as _};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::status::{self, Observation, Outcome};
use crate::{Error, FIELD_MANAGER, Options, Settings};
use upstart_operator_runtime::{Action, Controller};

/// How long to wait before retrying after an error.
const RETRY: Duration = Duration::from_secs(1);

/// A kind the simulator writes status for.
trait Simulated:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    type Status: Serialize + PartialEq + Send + Sync;

    fn compute(&self, obs: &Observation) -> Outcome<Self::Status>;

    fn current(&self) -> Option<&Self::Status>;

    /// Annotations of the pod template, for the kinds that have one.
    fn template_annotations(&self) -> Option<&BTreeMap<String, String>> {
        None
    }

    /// Objects to create before `new` is written (a Job's on-complete objects).
    fn side_effects(&self, _new: &Self::Status) -> Vec<serde_json::Value> {
        Vec::new()
    }
}

macro_rules! simulated {
    ($ty:ty, $status:ty, $compute:path, $o:ident => $template:expr) => {
        impl Simulated for $ty {
            type Status = $status;
            fn compute(&self, obs: &Observation) -> Outcome<Self::Status> {
                $compute(self, obs)
            }
            fn current(&self) -> Option<&Self::Status> {
                self.status.as_ref()
            }
            fn template_annotations(&self) -> Option<&BTreeMap<String, String>> {
                let $o = self;
                $template
            }
        }
    };
}

simulated!(Deployment, DeploymentStatus, status::deployment_status, o => o
    .spec
    .as_ref()
    .and_then(|s| s.template.metadata.as_ref())
    .and_then(|m| m.annotations.as_ref()));
simulated!(ReplicaSet, ReplicaSetStatus, status::replica_set_status, o => o
    .spec
    .as_ref()
    .and_then(|s| s.template.as_ref())
    .and_then(|t| t.metadata.as_ref())
    .and_then(|m| m.annotations.as_ref()));
simulated!(StatefulSet, StatefulSetStatus, status::stateful_set_status, o => o
    .spec
    .as_ref()
    .and_then(|s| s.template.metadata.as_ref())
    .and_then(|m| m.annotations.as_ref()));
simulated!(DaemonSet, DaemonSetStatus, status::daemon_set_status, o => o
    .spec
    .as_ref()
    .and_then(|s| s.template.metadata.as_ref())
    .and_then(|m| m.annotations.as_ref()));
simulated!(Pod, PodStatus, status::pod_status, _o => None);
simulated!(PersistentVolumeClaim, PersistentVolumeClaimStatus, status::pvc_status, _o => None);
simulated!(Service, ServiceStatus, status::service_status, _o => None);

impl Simulated for Job {
    type Status = k8s_openapi::api::batch::v1::JobStatus;

    fn compute(&self, obs: &Observation) -> Outcome<Self::Status> {
        status::job_status(self, obs)
    }

    fn current(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }

    fn template_annotations(&self) -> Option<&BTreeMap<String, String>> {
        self.spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
    }

    fn side_effects(&self, new: &Self::Status) -> Vec<serde_json::Value> {
        if status::is_complete(Some(new)) && !status::is_complete(self.status.as_ref()) {
            // An invalid annotation fails the Job instead of completing it, so this is
            // reached only with a valid one.
            status::on_complete_manifests(self).unwrap_or_default()
        } else {
            Vec::new()
        }
    }
}

/// Shared state of the controllers.
struct Context {
    client: Client,
    options: Options,
    first_seen: Mutex<FirstSeen>,
}

impl Context {
    fn elapsed<K: Resource<DynamicType = ()>>(&self, obj: &K) -> Duration {
        let uid = obj.meta().uid.clone().unwrap_or_else(|| {
            format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
        });
        let generation = obj.meta().generation.unwrap_or(0);
        self.first_seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .observe((K::kind(&()).into_owned(), uid), generation, Instant::now())
    }
}

/// When each object's current generation was first seen, by (kind, uid).
///
/// Deleted objects are never reported, so entries not looked at for [`FirstSeen::FORGET_AFTER`]
/// are dropped once there are many. Forgetting a live object is harmless: a ready object stays
/// ready for its generation whatever the elapsed time says, and one still waiting after that
/// long only starts its delay again.
#[derive(Default)]
struct FirstSeen {
    entries: HashMap<(String, String), Seen>,
}

struct Seen {
    generation: i64,
    first: Instant,
    last: Instant,
}

impl FirstSeen {
    const FORGET_AFTER: Duration = Duration::from_secs(600);
    const PRUNE_ABOVE: usize = 10_000;

    /// Time since `generation` of `key` was first observed (zero the first time).
    fn observe(&mut self, key: (String, String), generation: i64, now: Instant) -> Duration {
        if self.entries.len() >= Self::PRUNE_ABOVE {
            self.entries
                .retain(|_, seen| now.duration_since(seen.last) < Self::FORGET_AFTER);
        }
        let seen = self.entries.entry(key).or_insert(Seen {
            generation,
            first: now,
            last: now,
        });
        if seen.generation != generation {
            seen.generation = generation;
            seen.first = now;
        }
        seen.last = now;
        now.duration_since(seen.first)
    }
}

/// Wall-clock time at the precision the API keeps (whole seconds), so that a status read back
/// compares equal to the one computed.
fn now_seconds() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

async fn reconcile<K: Simulated>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let (settings, warnings) = Settings::resolve(
        &ctx.options,
        &[obj.meta().annotations.as_ref(), obj.template_annotations()],
    );
    for warning in warnings {
        tracing::warn!(kind = %K::kind(&()), %namespace, %name, "{warning}");
    }
    let observed_at = Instant::now();
    let obs = Observation {
        elapsed: ctx.elapsed(&*obj),
        now: now_seconds(),
        settings,
    };
    let outcome = obj.compute(&obs);
    if let Some(new) = outcome.status
        && Some(&new) != obj.current()
    {
        let manifests = obj.side_effects(&new);
        if !manifests.is_empty() {
            apply_on_complete(&ctx.client, &namespace, &name, manifests).await?;
        }
        write_status::<K>(&ctx.client, &namespace, &name, &new).await?;
        tracing::debug!(kind = %K::kind(&()), %namespace, %name, "status written");
    }
    Ok(match outcome.requeue_after {
        // From the observation, not from now: the delay is the configured one, not that plus
        // this reconcile's status write.
        Some(after) => Action::requeue(after.saturating_sub(observed_at.elapsed())),
        None => Action::await_change(),
    })
}

async fn write_status<K: Simulated>(
    client: &Client,
    namespace: &str,
    name: &str,
    status: &K::Status,
) -> Result<(), Error> {
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"name": name, "namespace": namespace},
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map(|_| ())
    .map_err(|source| Error::WriteStatus {
        kind: K::kind(&()).into_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source,
    })
}

/// Creates a completed Job's on-complete objects in its namespace (server-side apply).
async fn apply_on_complete(
    client: &Client,
    namespace: &str,
    job: &str,
    manifests: Vec<serde_json::Value>,
) -> Result<(), Error> {
    for (index, mut manifest) in manifests.into_iter().enumerate() {
        let field = |key: &str| manifest[key].as_str().map(str::to_owned);
        let (Some(api_version), Some(kind), Some(name)) = (
            field("apiVersion"),
            field("kind"),
            manifest["metadata"]["name"].as_str().map(str::to_owned),
        ) else {
            return Err(Error::IncompleteManifest {
                namespace: namespace.to_owned(),
                name: job.to_owned(),
                index,
            });
        };
        let (group, version) = api_version
            .split_once('/')
            .unwrap_or(("", api_version.as_str()));
        let gvk = GroupVersionKind::gvk(group, version, &kind);
        let (resource, caps) =
            kube::discovery::pinned_kind(client, &gvk)
                .await
                .map_err(|source| Error::Discovery {
                    namespace: namespace.to_owned(),
                    name: job.to_owned(),
                    api_version: api_version.clone(),
                    kind: kind.clone(),
                    source,
                })?;
        let api: Api<DynamicObject> = if caps.scope == Scope::Namespaced {
            manifest["metadata"]["namespace"] = namespace.into();
            Api::namespaced_with(client.clone(), namespace, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        };
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&manifest),
        )
        .await
        .map_err(|source| Error::ApplyOnComplete {
            namespace: namespace.to_owned(),
            name: job.to_owned(),
            kind: kind.clone(),
            object: name.clone(),
            source,
        })?;
        tracing::info!(%namespace, job, %kind, object = %name, "created on-complete object");
    }
    Ok(())
}

fn error_policy<K: Simulated>(obj: Arc<K>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(
        kind = %K::kind(&()),
        namespace = %obj.namespace().unwrap_or_default(),
        name = %obj.name_any(),
        label = error.label(),
        %error,
        "simulation step failed; retrying"
    );
    Action::requeue(RETRY)
}

/// The workload simulator: one controller per simulated kind, over any [`kube::Client`].
#[derive(Clone)]
pub struct Simulator {
    client: Client,
    options: Options,
}

impl Simulator {
    /// A simulator writing through `client` with the given global options.
    pub fn new(client: Client, options: Options) -> Self {
        Self { client, options }
    }

    /// Starts the controllers on the current Tokio runtime.
    pub fn spawn(self) -> RunningSimulator {
        let ctx = Arc::new(Context {
            client: self.client,
            options: self.options,
            first_seen: Mutex::new(FirstSeen::default()),
        });
        let mut running = RunningSimulator {
            stops: Vec::new(),
            tasks: Vec::new(),
        };
        running.add::<Deployment>(&ctx);
        running.add::<ReplicaSet>(&ctx);
        running.add::<StatefulSet>(&ctx);
        running.add::<DaemonSet>(&ctx);
        running.add::<Job>(&ctx);
        running.add::<Pod>(&ctx);
        running.add::<PersistentVolumeClaim>(&ctx);
        running.add::<Service>(&ctx);
        running
    }
}

/// How long [`RunningSimulator::shutdown`] lets the controllers finish before aborting them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// A running simulator. Dropping it stops the controllers, as [`RunningSimulator::shutdown`]
/// does (without waiting for them).
pub struct RunningSimulator {
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningSimulator {
    fn add<K: Simulated>(&mut self, ctx: &Arc<Context>) {
        let (stop, stopped) = oneshot::channel::<()>();
        let api: Api<K> = Api::all(ctx.client.clone());
        let controller = Controller::new(api, watcher::Config::default())
            .graceful_shutdown_on(async move {
                let _ = stopped.await;
            })
            .run(reconcile::<K>, error_policy::<K>, Arc::clone(ctx))
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(kind = %K::kind(&()), %error, "simulator controller event");
                }
            });
        self.stops.push(stop);
        self.tasks.push(tokio::spawn(controller));
    }

    /// Stops every controller: each gets [`SHUTDOWN_GRACE`] to finish the status write it is
    /// doing, then it is aborted.
    ///
    /// The bound matters: kube-runtime's controller waits for its cache to be filled before it
    /// stops, and a stop that arrives before the first list completed ends the watch that would
    /// fill it, so a graceful stop alone can hang forever. Aborting is safe here: the simulator's
    /// only writes are idempotent status updates that the next run redoes.
    pub async fn shutdown(mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        for mut task in self.tasks.drain(..) {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uid: &str) -> (String, String) {
        ("Deployment".to_owned(), uid.to_owned())
    }

    #[test]
    fn elapsed_counts_from_the_first_sight_of_a_generation() {
        let mut seen = FirstSeen::default();
        let t0 = Instant::now();
        assert_eq!(seen.observe(key("a"), 1, t0), Duration::ZERO);
        let t1 = t0 + Duration::from_secs(3);
        assert_eq!(seen.observe(key("a"), 1, t1), Duration::from_secs(3));
        // A new generation starts the clock again.
        assert_eq!(seen.observe(key("a"), 2, t1), Duration::ZERO);
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(seen.observe(key("a"), 2, t2), Duration::from_secs(1));
        assert_eq!(seen.observe(key("b"), 2, t2), Duration::ZERO);
    }

    #[test]
    fn many_entries_forget_the_ones_not_seen_for_long() {
        let mut seen = FirstSeen::default();
        let t0 = Instant::now();
        for i in 0..FirstSeen::PRUNE_ABOVE {
            seen.observe(key(&i.to_string()), 1, t0);
        }
        let later = t0 + FirstSeen::FORGET_AFTER;
        seen.observe(key("0"), 1, later - Duration::from_secs(1));
        seen.observe(key("new"), 1, later);
        assert_eq!(
            seen.entries.len(),
            2,
            "only the recently seen entries remain"
        );
        assert_eq!(
            seen.observe(key("0"), 1, later),
            FirstSeen::FORGET_AFTER,
            "a kept entry keeps its first sight"
        );
    }
}
