//! The documented operator pattern, end to end against the local control plane: a kube-runtime
//! Controller under `run`, sharded by label selector, limited to one namespace, reporting
//! readiness, metrics and backoff, and stopping gracefully on shutdown.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::PostParams;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use upstart_control_plane::{ControlPlane, Options};
use upstart_operator_runtime::{
    Action, BackoffPolicy, CommonArgs, Controller, ControllerMetrics, FailureBackoff, MetricLabel,
    OperatorContext, RunOptions, Shutdown, run,
};

const CONTROLLER: &str = "configmaps";

#[derive(Debug, thiserror::Error)]
#[error("the object asked to fail")]
struct AskedToFail;

impl MetricLabel for AskedToFail {
    fn metric_label(&self) -> &'static str {
        "asked_to_fail"
    }
}

struct Context {
    metrics: ControllerMetrics,
    backoff: FailureBackoff<ObjectRef<ConfigMap>>,
    seen: Arc<Mutex<BTreeSet<String>>>,
}

async fn reconcile(obj: Arc<ConfigMap>, ctx: Arc<Context>) -> Result<Action, AskedToFail> {
    let _timer = ctx.metrics.count_and_measure();
    ctx.seen.lock().expect("seen").insert(format!(
        "{}/{}",
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    ));
    if obj.name_any().starts_with("fail") {
        return Err(AskedToFail);
    }
    ctx.backoff.on_success(&ObjectRef::from_obj(&*obj));
    Ok(Action::await_change())
}

fn error_policy(obj: Arc<ConfigMap>, error: &AskedToFail, ctx: Arc<Context>) -> Action {
    ctx.metrics.set_failure(error);
    Action::requeue(ctx.backoff.on_failure(ObjectRef::from_obj(&*obj)))
}

fn configmap(namespace: &str, name: &str, shard: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.into());
    cm.metadata.namespace = Some(namespace.into());
    cm.metadata.labels = Some([("shard".to_string(), shard.to_string())].into());
    cm
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) -> anyhow::Result<()> {
    for _ in 0..200 {
        if check() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("timed out waiting for {what}")
}

#[tokio::test]
async fn a_sharded_controller_reconciles_only_its_objects_and_stops_on_shutdown()
-> anyhow::Result<()> {
    let cp = ControlPlane::start(Options::default());
    let client = cp.client();
    let mut other = Namespace::default();
    other.metadata.name = Some("other".into());
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &other)
        .await?;
    for (ns, name, shard) in [
        ("default", "mine", "a"),
        ("default", "fail-mine", "a"),
        ("default", "theirs", "b"),
        ("other", "mine-elsewhere", "a"),
    ] {
        Api::<ConfigMap>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &configmap(ns, name, shard))
            .await?;
    }

    let args = CommonArgs {
        namespace: Some("default".into()),
        label_selector: Some("shard=a".into()),
        max_concurrent_reconciles: 2,
        ..CommonArgs::default()
    };
    let ctx = OperatorContext::new("test-operator", client.clone(), args);
    let readiness = ctx.readiness.clone();
    let controller_metrics = ctx.metrics.controller(CONTROLLER);
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let shutdown = Shutdown::new();
    let operator = tokio::spawn(run(ctx, RunOptions::in_process(), shutdown.clone(), {
        let seen = seen.clone();
        move |ctx: OperatorContext, shutdown: Shutdown| async move {
            let ready = ctx.readiness.register(CONTROLLER);
            let (store, trigger) = ready.watch(ctx.api::<ConfigMap>(), ctx.watcher_config());
            let controller = Controller::for_stream(trigger, store)
                .with_config(ctx.controller_config())
                .graceful_shutdown_on(shutdown.wait());
            let context = Arc::new(Context {
                metrics: ctx.metrics.controller(CONTROLLER),
                backoff: FailureBackoff::new(BackoffPolicy {
                    base: Duration::from_millis(20),
                    cap: Duration::from_millis(100),
                    jitter: 0.0,
                }),
                seen,
            });
            controller
                .run(reconcile, error_policy, context)
                .for_each(|_| async {})
                .await;
            Ok::<(), std::io::Error>(())
        }
    }));

    eventually("the caches to sync", || readiness.is_ready()).await?;
    eventually("both objects of the shard to be reconciled", || {
        seen.lock().expect("seen").len() >= 2
    })
    .await?;
    eventually("the failing object to be retried with backoff", || {
        controller_metrics.failures("asked_to_fail") >= 3
    })
    .await?;
    // A later object of the shard is picked up from the watch.
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &configmap("default", "late", "a"))
        .await?;
    eventually("the late object to be reconciled", || {
        seen.lock().expect("seen").contains("default/late")
    })
    .await?;

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), operator).await???;
    let seen = seen.lock().expect("seen").clone();
    assert_eq!(
        seen,
        BTreeSet::from([
            "default/fail-mine".to_string(),
            "default/late".into(),
            "default/mine".into()
        ]),
        "only the shard's objects in the watched namespace"
    );
    assert!(controller_metrics.reconciles() >= 4);
    assert_eq!(
        controller_metrics.measured(),
        controller_metrics.reconciles()
    );
    Ok(())
}
