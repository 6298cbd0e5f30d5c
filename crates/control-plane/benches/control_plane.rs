//! Control plane benchmarks: start-up, get/list/watch throughput, watch fan-out latency with
//! 1,000 objects and 10 watchers, and writes of a custom resource (the HelmRelease CRD of this
//! repository): its create, and the server-side apply of its status (the write an operator
//! makes most, a status of the size a release writes). Prints figures (`cargo bench -p upstart-control-plane`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a benchmark binary

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use serde_json::json;
use upstart_control_plane::{ControlPlane, Options};

const OBJECTS: usize = 1_000;
const WATCHERS: usize = 10;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "data": {"key": "value", "other": "x".repeat(64)}
    }))
    .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn report(name: &str, count: usize, elapsed: Duration) {
    println!(
        "{name:<40} {count:>7} ops in {:>9.3} ms  = {:>10.0} ops/s",
        elapsed.as_secs_f64() * 1e3,
        count as f64 / elapsed.as_secs_f64()
    );
}

async fn startup() {
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let cp = ControlPlane::start(Options::default());
        let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
        cms.list(&ListParams::default()).await.unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "{:<40} median {:>8.3} ms, max {:>8.3} ms",
        "start-up (start + first list)",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let cp = ControlPlane::start(Options::default());
    let endpoint = cp
        .serve_https("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = endpoint.client().await.unwrap();
    Api::<ConfigMap>::default_namespaced(client)
        .list(&ListParams::default())
        .await
        .unwrap();
    println!(
        "{:<40} {:>8.3} ms",
        "start-up over HTTPS (certs + TLS + list)",
        t.elapsed().as_secs_f64() * 1e3
    );
}

async fn throughput() {
    let cp = ControlPlane::start(Options::default());
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let t = Instant::now();
    for i in 0..OBJECTS {
        cms.create(&PostParams::default(), &cm(&format!("cm-{i}")))
            .await
            .unwrap();
    }
    report("create (sequential)", OBJECTS, t.elapsed());

    let t = Instant::now();
    for i in 0..OBJECTS {
        cms.get(&format!("cm-{i}")).await.unwrap();
    }
    report("get (sequential)", OBJECTS, t.elapsed());

    let t = Instant::now();
    let gets = (0..OBJECTS).map(|i| {
        let cms = cms.clone();
        async move { cms.get(&format!("cm-{i}")).await.unwrap() }
    });
    futures::future::join_all(gets).await;
    report("get (1,000 concurrent)", OBJECTS, t.elapsed());

    let lists = 50;
    let t = Instant::now();
    for _ in 0..lists {
        let l = cms.list(&ListParams::default()).await.unwrap();
        assert_eq!(l.items.len(), OBJECTS);
    }
    report("list of 1,000 objects", lists, t.elapsed());
    println!(
        "{:<40} {:>10.0} objects/s",
        "  = listed objects",
        (lists * OBJECTS) as f64 / t.elapsed().as_secs_f64()
    );

    let client = cp.client();
    let t = Instant::now();
    for _ in 0..lists {
        let req = http::Request::get("/api/v1/namespaces/default/configmaps")
            .body(Vec::new())
            .unwrap();
        let text = client.request_text(req).await.unwrap();
        assert!(text.len() > OBJECTS * 100);
    }
    report(
        "list of 1,000 objects (raw, no decoding)",
        lists,
        t.elapsed(),
    );

    let t = Instant::now();
    for i in 0..OBJECTS {
        cms.patch(
            &format!("cm-{i}"),
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"key": "v2"}})),
        )
        .await
        .unwrap();
    }
    report("merge patch (sequential)", OBJECTS, t.elapsed());

    // Watch throughput: replay of the whole history from resourceVersion 1 onwards.
    let t = Instant::now();
    let mut s = cms
        .watch(&WatchParams::default().disable_bookmarks(), "1")
        .await
        .unwrap()
        .boxed();
    let mut seen = 0;
    while seen < 2 * OBJECTS {
        if let WatchEvent::Added(_) | WatchEvent::Modified(_) = s.try_next().await.unwrap().unwrap()
        {
            seen += 1;
        }
    }
    report("watch events replayed (one watcher)", seen, t.elapsed());
}

async fn fan_out() {
    let cp = ControlPlane::start(Options::default());
    let cms: Api<ConfigMap> = Api::default_namespaced(cp.client());
    for i in 0..OBJECTS {
        cms.create(&PostParams::default(), &cm(&format!("cm-{i}")))
            .await
            .unwrap();
    }
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, String, Instant)>();
    for w in 0..WATCHERS {
        let mut s = cms
            .watch(&WatchParams::default().disable_bookmarks(), &rv)
            .await
            .unwrap()
            .boxed();
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(Some(ev)) = s.try_next().await {
                if let WatchEvent::Modified(o) = ev {
                    let _ = tx.send((w, o.metadata.name.unwrap_or_default(), Instant::now()));
                }
            }
        });
    }
    let updates = 200;
    let mut latencies = Vec::with_capacity(updates);
    for i in 0..updates {
        let name = format!("cm-{}", i * (OBJECTS / updates));
        let start = Instant::now();
        cms.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"n": i.to_string()}})),
        )
        .await
        .unwrap();
        let mut got = 0;
        let mut last = start;
        while got < WATCHERS {
            let (_, n, at) = rx.recv().await.unwrap();
            if n == name {
                got += 1;
                last = at;
            }
        }
        latencies.push(last - start);
    }
    latencies.sort();
    println!(
        "{:<40} p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms",
        "watch fan-out (1,000 objects, 10 watchers)",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3
    );
    println!("  (latency from the start of the write until the 10th watcher received the event)");
}

/// A status as a HelmRelease writes it once installed: phase, conditions, inventory, timings.
fn release_status(i: usize) -> serde_json::Value {
    let condition = |type_: &str, status: &str, reason: &str| {
        json!({"type": type_, "status": status, "reason": reason, "observedGeneration": 1,
               "lastTransitionTime": "2026-01-01T00:00:00Z",
               "message": format!("{reason} after {i} reconciles of the release")})
    };
    json!({
        "apiVersion": "upstartoperators.upstart.com/v1alpha1",
        "kind": "HelmRelease",
        "metadata": {"name": "app"},
        "status": {
            "phase": "Ready",
            "observedGeneration": 1,
            "conditions": [
                condition("Ready", "True", "Installed"),
                condition("DependenciesReady", "True", "Ready"),
                condition("Reconciling", "False", "Installed"),
            ],
            "inventory": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "app-settings"},
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "app"},
            ],
            "appliedDigest": format!("sha256:{:064x}", i),
            "chartDigest": format!("sha256:{:064x}", 7),
            "outputs": ["url", "port"],
            "timings": {"createdAt": "2026-01-01T00:00:00Z", "startedAt": "2026-01-01T00:00:01Z"},
        }
    })
}

async fn custom_resource_writes() {
    let cp = ControlPlane::start(Options::default());
    let crd: CustomResourceDefinition = serde_yaml_ng::from_str(include_str!(
        "../../../crds/helmreleases.upstartoperators.upstart.com.yaml"
    ))
    .unwrap();
    Api::<CustomResourceDefinition>::all(cp.client())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "upstartoperators.upstart.com",
        "v1alpha1",
        "HelmRelease",
    ));
    let releases: Api<DynamicObject> = Api::namespaced_with(cp.client(), "default", &resource);
    let mut release = DynamicObject::new("app", &resource);
    release.data = json!({"spec": {"chart": "example/app"}});
    // The CRD is served once it is established: retry the create until then.
    let started = Instant::now();
    while let Err(e) = releases.create(&PostParams::default(), &release).await {
        assert!(started.elapsed() < Duration::from_secs(10), "{e}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Creates of releases with a spec as a chain's (dependencies and values): the CRD's schema,
    // its CEL rules and defaults, then the store.
    let creates = 500;
    let mut times = Vec::with_capacity(creates);
    for i in 0..creates {
        let dependency = format!("link-{}", i.max(1) - 1);
        let mut created = DynamicObject::new(&format!("link-{i}"), &resource);
        created.data = json!({"spec": {
            "chart": "example/app", "version": "1.0.0",
            "dependencies": [{"name": dependency}],
            "values": {"upstream": format!("<< {dependency}.outputs.url >>"), "replicas": 1},
        }});
        let start = Instant::now();
        releases
            .create(&PostParams::default(), &created)
            .await
            .unwrap();
        times.push(start.elapsed());
    }
    report_latencies(
        "CRD object create (a HelmRelease)",
        times,
        &format!("{creates} creates"),
    );
    let params = PatchParams::apply("bench").force();
    let applies = 1_000;
    let mut times = Vec::with_capacity(applies);
    for i in 0..applies {
        let start = Instant::now();
        releases
            .patch_status("app", &params, &Patch::Apply(release_status(i)))
            .await
            .unwrap();
        times.push(start.elapsed());
    }
    report_latencies(
        "CRD status server-side apply",
        times,
        &format!("{applies} applies, each changing the status"),
    );
}

/// One line: the p50 and p99 of `times`, and what they are of.
fn report_latencies(name: &str, mut times: Vec<Duration>, of: &str) {
    times.sort();
    println!(
        "{name:<40} p50 {:>7.3} ms  p99 {:>7.3} ms  ({of})",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        startup().await;
        throughput().await;
        fan_out().await;
        custom_resource_writes().await;
    });
}
