//! SPEC §9 benchmarks of the DAG crate: ordering and cycle-checking 10,000 releases (target
//! <= 50 ms), and substituting a 1 MB values document holding 10,000 expressions (target >= 50
//! MB/s). Prints a plain summary in those units first, then runs criterion.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
use serde_json::{Map, Value};
use upstart_api::v1alpha1::Dependency;
use upstart_dag::{
    DependencyGraph, EnvironmentInfo, ExpressionContext, Expressions, GraphInput, Outputs,
    ReleaseInfo, ServiceInfo,
};

const SERVICES: usize = 1_000;
const RELEASES_PER_SERVICE: usize = 10;
const EXPRESSIONS: usize = 10_000;
const ALIASES: usize = 50;
const KEYS: usize = 20;

fn dependency(name: String) -> Dependency {
    Dependency {
        name,
        kind: None,
        alias: None,
    }
}

/// 1,000 services of 10 releases (10,000 releases, 11,000 nodes): inside a service each
/// release needs the two before it; each service's first release needs two earlier services.
fn graph_input() -> GraphInput {
    let mut input = GraphInput::new();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |bound: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize % bound
    };
    for s in 0..SERVICES {
        let releases = (0..RELEASES_PER_SERVICE).map(|r| {
            let mut dependencies = Vec::new();
            if r >= 1 {
                dependencies.push(dependency(format!("r{}", r - 1)));
            }
            if r >= 2 {
                dependencies.push(dependency(format!("r{}", r - 2)));
            }
            if r == 0 && s > 0 {
                dependencies.push(dependency(format!("service-{}", next(s))));
                dependencies.push(dependency(format!("service-{}", next(s))));
            }
            (format!("r{r}"), dependencies)
        });
        let releases: Vec<_> = releases.collect();
        input.add_service_releases(&format!("service-{s}"), releases);
    }
    input
}

fn context() -> ExpressionContext {
    let dependencies: BTreeMap<String, Outputs> = (0..ALIASES)
        .map(|a| {
            let outputs: Outputs = (0..KEYS)
                .map(|k| {
                    (
                        format!("KEY_{k}"),
                        format!("value-{a}-{k}-0123456789abcdef"),
                    )
                })
                .collect();
            (format!("dependency-{a}"), outputs)
        })
        .collect();
    ExpressionContext {
        dependencies,
        environment: Some(EnvironmentInfo {
            name: "pr-1234".to_owned(),
            namespace: "pr-1234".to_owned(),
            variables: BTreeMap::from([("branch".to_owned(), "feature-x".to_owned())]),
        }),
        service: Some(ServiceInfo {
            name: "example-service".to_owned(),
        }),
        release: ReleaseInfo {
            name: "example".to_owned(),
            namespace: "pr-1234".to_owned(),
        },
        images: BTreeMap::new(),
    }
}

/// About 1 MB of values: 10,000 strings with one expression each (one in five a helper call),
/// padded with literal text, nested as Helm values usually are.
fn values_document() -> Value {
    let mut services = Map::new();
    for i in 0..EXPRESSIONS {
        let reference = format!(
            "dependency-{}.outputs.KEY_{}",
            i % ALIASES,
            (i / ALIASES) % KEYS
        );
        let expression = match i % 5 {
            0 => format!("<< upper {reference} >>"),
            _ => format!("<< {reference} >>"),
        };
        let text =
            format!("https://{expression}.example.com/path/to/some/resource?query=1&x={i:05}");
        let group = services
            .entry(format!("component-{}", i / 10))
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(group) = group {
            group.insert(format!("ENV_VARIABLE_{i:05}"), Value::String(text));
        }
    }
    serde_json::json!({ "global": { "env": services } })
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn summary() {
    let input = graph_input();
    let mut samples = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        let graph = DependencyGraph::build(black_box(&input));
        let ordering = graph.ordering();
        samples.push(start.elapsed());
        assert!(ordering.cycles.is_empty() && graph.problems().is_empty());
        assert_eq!(graph.len(), SERVICES * (RELEASES_PER_SERVICE + 1));
    }
    let graph = median(samples);
    println!(
        "dag/order: {} releases ({} nodes) built, ordered and cycle-checked in {:.2} ms (median of 20; target <= 50 ms)",
        SERVICES * RELEASES_PER_SERVICE,
        SERVICES * (RELEASES_PER_SERVICE + 1),
        graph.as_secs_f64() * 1e3
    );

    let engine = Expressions::new();
    let context = context();
    let document = values_document();
    let bytes = serde_json::to_vec(&document).map(|v| v.len()).unwrap_or(0);
    let mut samples = Vec::new();
    for _ in 0..20 {
        let copy = document.clone();
        let start = Instant::now();
        let out = engine.substitute(black_box(copy), "spec.values", &context);
        samples.push(start.elapsed());
        assert!(out.is_ok());
    }
    let substitution = median(samples);
    println!(
        "dag/substitute: {:.2} MB with {} expressions substituted in {:.2} ms = {:.1} MB/s (median of 20; target >= 50 MB/s)",
        bytes as f64 / 1e6,
        EXPRESSIONS,
        substitution.as_secs_f64() * 1e3,
        bytes as f64 / 1e6 / substitution.as_secs_f64()
    );
}

fn main() {
    summary();

    let mut criterion = Criterion::default().configure_from_args().sample_size(30);
    let input = graph_input();
    criterion.bench_function("dag/build+order 10k releases", |b| {
        b.iter(|| DependencyGraph::build(black_box(&input)).ordering())
    });
    let graph = DependencyGraph::build(&input);
    criterion.bench_function("dag/order 10k releases (graph built)", |b| {
        b.iter(|| black_box(&graph).ordering())
    });

    let engine = Expressions::new();
    let context = context();
    let document = values_document();
    let bytes = serde_json::to_vec(&document)
        .map(|v| v.len() as u64)
        .unwrap_or(0);
    let mut group = criterion.benchmark_group("dag/substitute");
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("1MB, 10k expressions", |b| {
        b.iter_batched(
            || document.clone(),
            |values| engine.substitute(values, "spec.values", &context),
            BatchSize::LargeInput,
        )
    });
    group.finish();
    criterion.final_summary();
}
