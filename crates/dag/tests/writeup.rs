//! The write-up's UpstartService end to end through this crate: graph, outputs, values and
//! expressions, as the operators and `upstart validate` use them.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;
use upstart_api::v1alpha1::{
    HelmReleaseSpec, ObjectReference, OutputScope, OutputSource, UpstartService,
};
use upstart_dag::{
    DependencyGraph, Error, ExpressionContext, Expressions, GraphInput, NodeId, Objects,
    OfflineContext, Outputs, ReleaseInfo, ServiceInfo, collect_release_outputs,
    collect_service_outputs, release_values,
};
use upstart_failure::Classify;

const FIXTURE: &str = include_str!("fixtures/writeup-upstart-service.yaml");

fn service() -> UpstartService {
    serde_yaml_ng::from_str(FIXTURE).expect("the write-up's YAML parses as an UpstartService")
}

fn example_service(service: &UpstartService) -> &HelmReleaseSpec {
    &service.spec.helm_releases["exampleService"]
}

fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        ..Default::default()
    }
}

/// What the namespace holds once every dependency published its outputs.
fn namespace_objects() -> Objects {
    Objects::new()
        .with_secret(secret(
            "bugsnag-bugsnag",
            &[("BUGSNAG_API_KEY", "bs-key-1")],
        ))
        .with_secret(secret(
            "postgres",
            &[
                ("POSTGRES_USER", "my_service"),
                ("POSTGRES_PASSWORD", "p@ss:w/rd&<>"),
                ("PG_HOST", "postgres.pr-1234.svc"),
                ("POSTGRES_DB", "my_service"),
            ],
        ))
        .with_config_map(config_map(
            "redis-outputs",
            &[("SERVICE_FQDN", "redis.pr-1234.svc")],
        ))
        .with_secret(secret("ld", &[("LD_SDK_KEY_PRICING", "sdk-pricing")]))
        .with_config_map(config_map(
            "another-outputs",
            &[("url", "http://another.pr-1234.svc")],
        ))
}

fn from(secret: Option<&str>, config_map: Option<&str>, scope: OutputScope) -> OutputSource {
    OutputSource {
        secret_ref: secret.map(|name| ObjectReference {
            name: name.to_owned(),
        }),
        config_map_ref: config_map.map(|name| ObjectReference {
            name: name.to_owned(),
        }),
        keys: None,
        optional: false,
        scope,
    }
}

/// The context of the exampleService release, built the way the HelmRelease operator does:
/// graph resolution gives each dependency's target and alias, outputs come from that target.
fn example_service_context(service: &UpstartService) -> ExpressionContext {
    let launch_darkly = [from(Some("ld"), None, OutputScope::External)];
    let another_app = [from(None, Some("another-outputs"), OutputScope::External)];
    let mut input = GraphInput::new();
    input.add_service("example-service", &service.spec);
    input.add_release("my-environment-name-launch-darkly", &[]);
    input.add_service_releases("another-upstart-service", [("app".to_owned(), Vec::new())]);
    let graph = DependencyGraph::build(&input);
    assert!(graph.problems().is_empty(), "{:?}", graph.problems());

    let objects = namespace_objects();
    let outputs_of = |target: &NodeId| -> Outputs {
        let sources: &[OutputSource] = match target.name.as_str() {
            "my-environment-name-launch-darkly" => &launch_darkly,
            "another-upstart-service" => {
                return collect_service_outputs([("app", another_app.as_slice())], &objects)
                    .expect("valid outputs")
                    .outputs;
            }
            child => {
                let key = service
                    .spec
                    .helm_releases
                    .keys()
                    .find(|key| upstart_api::names::child_name("example-service", key) == child)
                    .expect("a child of example-service");
                &service.spec.helm_releases[key].outputs_from
            }
        };
        let collected = collect_release_outputs(sources, &objects).expect("valid outputs");
        assert!(collected.is_complete(), "{:?}", collected.missing);
        collected.outputs
    };
    let dependencies: BTreeMap<String, Outputs> = graph
        .dependencies(&NodeId::release("example-service-example-service"))
        .iter()
        .map(|d| (d.alias.clone(), outputs_of(&d.target)))
        .collect();
    ExpressionContext {
        dependencies,
        environment: None,
        service: Some(ServiceInfo {
            name: "example-service".to_owned(),
        }),
        release: ReleaseInfo {
            name: "example-service-example-service".to_owned(),
            namespace: "pr-1234".to_owned(),
        },
        images: Default::default(),
    }
}

#[test]
fn the_writeup_service_installs_its_dependencies_before_example_service() {
    let service = service();
    let mut input = GraphInput::new();
    input.add_service("example-service", &service.spec);
    input.add_release("my-environment-name-launch-darkly", &[]);
    input.add_service_releases("another-upstart-service", [("app".to_owned(), Vec::new())]);
    let ordering = DependencyGraph::build(&input).ordering();
    let labels: Vec<Vec<String>> = ordering
        .install_levels
        .iter()
        .map(|level| level.iter().map(|n| n.name.clone()).collect())
        .collect();
    assert_eq!(
        labels,
        vec![
            vec![
                "another-upstart-service-app",
                "example-service-bugsnag",
                "example-service-postgres",
                "example-service-redis",
                "my-environment-name-launch-darkly",
            ],
            vec!["another-upstart-service"],
            vec!["example-service-example-service"],
            vec!["example-service"],
        ]
    );
}

#[test]
fn the_writeup_example_service_values_substitute_with_every_dependencys_outputs() {
    let service = service();
    let spec = example_service(&service);
    let values = release_values(Vec::new(), spec.values.as_ref()).expect("inline values are a map");
    let resolved = Expressions::new()
        .substitute(values, "spec.values", &example_service_context(&service))
        .expect("every output exists");
    assert_eq!(
        resolved,
        json!({
            "global": {
                "env": {
                    "BUGSNAG_API_KEY": "bs-key-1",
                    "REDIS_BACKEND_URI": "redis://redis.pr-1234.svc:6379/1",
                    "LAUNCHDARKLY_SDK_KEY": "sdk-pricing",
                    "DATABASE_URL": "postgres://my_service:p@ss:w/rd&<>@postgres.pr-1234.svc:5432/my_service",
                    "ANOTHER_UPSTART_SERVICE_URL": "http://another.pr-1234.svc",
                }
            }
        })
    );
}

#[test]
fn the_writeup_example_service_waits_for_a_key_its_dependency_has_not_published() {
    let service = service();
    let mut context = example_service_context(&service);
    context.dependencies.insert(
        "postgres".to_owned(),
        [
            ("POSTGRES_USER", "u"),
            ("POSTGRES_DB", "d"),
            ("PG_HOST", "h"),
        ]
        .into_iter()
        .collect(),
    );
    let values = example_service(&service).values.clone().expect("values");
    let err = Expressions::new()
        .substitute(values, "spec.values", &context)
        .unwrap_err();
    assert!(err.is_wait());
    assert_eq!(
        err.to_string(),
        "spec.values.global.env.DATABASE_URL: << postgres.outputs.POSTGRES_PASSWORD >> at column 49: \
         output key POSTGRES_PASSWORD of postgres is missing (it has: PG_HOST, POSTGRES_DB, POSTGRES_USER)"
    );
}

#[test]
fn the_writeup_example_service_passes_the_offline_check_with_its_five_dependencies() {
    let service = service();
    let spec = example_service(&service);
    let context = OfflineContext::from_dependencies(&spec.dependencies, true, true);
    assert_eq!(context.aliases.len(), 5);
    let values = spec.values.clone().expect("values");
    let report = Expressions::new().check_offline(&values, "spec.values", &context);
    assert!(report.is_valid(), "{:?}", report.errors);
    let consumed: Vec<String> = report
        .consumes
        .iter()
        .map(|r| format!("{}.{}", r.alias, r.key))
        .collect();
    assert_eq!(
        consumed,
        [
            "another-upstart-service.url",
            "bugsnag.BUGSNAG_API_KEY",
            "my-environment-name-launch-darkly.LD_SDK_KEY_PRICING",
            "postgres.PG_HOST",
            "postgres.POSTGRES_DB",
            "postgres.POSTGRES_PASSWORD",
            "postgres.POSTGRES_USER",
            "redis.SERVICE_FQDN",
        ]
    );
}

#[test]
fn the_writeup_offline_check_fails_naming_the_alias_when_a_dependency_is_removed() {
    let service = service();
    let spec = example_service(&service);
    let values = spec.values.clone().expect("values");
    for removed in [
        "bugsnag",
        "postgres",
        "redis",
        "my-environment-name-launch-darkly",
        "another-upstart-service",
    ] {
        let dependencies: Vec<_> = spec
            .dependencies
            .iter()
            .filter(|d| d.name != removed)
            .cloned()
            .collect();
        let context = OfflineContext::from_dependencies(&dependencies, true, true);
        let report = Expressions::new().check_offline(&values, "spec.values", &context);
        assert!(!report.is_valid(), "{removed}");
        for error in &report.errors {
            assert!(error.needs_spec_change());
            let Error::UnknownRoot { root, .. } = error else {
                panic!("{error:?}")
            };
            assert_eq!(root, removed);
            assert!(
                error
                    .to_string()
                    .contains(&format!("unknown name {removed} ")),
                "{error}"
            );
        }
    }
}
