//! Cost of server-side apply and update bookkeeping for a typical Deployment: the local control
//! plane runs one of these for every write.

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::hint::black_box;
use upstart_k8s_patch::{
    ApplyParams, Semantics, UpdateParams, WriteScope, apply, record_update, strategic_merge,
};

fn deployment(replicas: i64, image: &str) -> Value {
    let containers: Vec<Value> = (0..3)
        .map(|i| {
            json!({
                "name": format!("c{i}"),
                "image": image,
                "args": ["--port", "8080"],
                "env": (0..10).map(|e| json!({"name": format!("E{e}"), "value": "x"})).collect::<Vec<_>>(),
                "ports": [{"containerPort": 8080 + i, "name": format!("p{i}")}],
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                "volumeMounts": [{"name": "data", "mountPath": format!("/data{i}")}]
            })
        })
        .collect();
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns", "labels": {"app": "web", "tier": "x"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers, "volumes": [{"name": "data", "emptyDir": {}}]}
            }
        }
    })
}

fn params(now: &str) -> ApplyParams<'_> {
    ApplyParams {
        manager: "upstart-helmrelease",
        force: true,
        scope: WriteScope::MainResource,
        now,
    }
}

fn benches(c: &mut Criterion) {
    let sem = Semantics::builtin();
    let live = apply(
        None,
        &deployment(2, "app:1"),
        &params("2024-01-01T00:00:00Z"),
        &sem,
    )
    .expect("first apply");

    c.bench_function("apply_unchanged_deployment", |b| {
        b.iter(|| {
            apply(
                Some(black_box(&live)),
                black_box(&deployment(2, "app:1")),
                &params("2024-01-01T00:01:00Z"),
                &sem,
            )
        })
    });
    c.bench_function("apply_changed_deployment", |b| {
        b.iter(|| {
            apply(
                Some(black_box(&live)),
                black_box(&deployment(3, "app:2")),
                &params("2024-01-01T00:01:00Z"),
                &sem,
            )
        })
    });
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(5);
    c.bench_function("record_update_of_a_scaled_deployment", |b| {
        b.iter(|| {
            let mut new = scaled.clone();
            record_update(
                Some(black_box(&live)),
                &mut new,
                &UpdateParams {
                    manager: "kube-controller-manager",
                    api_version: "apps/v1",
                    scope: WriteScope::MainResource,
                    now: "2024-01-01T00:01:00Z",
                },
                &sem,
            )
        })
    });
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c1", "image": "app:3"}]}}}});
    c.bench_function("strategic_merge_of_one_container_image", |b| {
        b.iter(|| strategic_merge(black_box(&live), black_box(&patch), &sem))
    });
}

criterion_group!(apply_benches, benches);
criterion_main!(apply_benches);
