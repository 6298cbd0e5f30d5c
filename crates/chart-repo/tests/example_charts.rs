//! The example charts under the workspace's `charts/` (SPEC §8) lint, render with the values the
//! examples and the original write-up pass, publish every output those examples read, fit into
//! one namespace together, and are packaged and indexed by [`ChartRepo`].
//!
//! helm is found through `UPSTART_HELM`, else `.tools/bin/helm` at the workspace root (installed
//! by `scripts/bootstrap-tools`), else `PATH`; without it these tests fail and say so.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_yaml_ng::Value;
use sha2::Digest as _;
use upstart_chart_repo::ChartRepo;

/// The chart of the operators themselves: not an example, and another piece of work.
const OPERATORS_CHART: &str = "upstart-operators";
/// The example charts, with the versions the write-up and the examples pin.
const EXAMPLE_CHARTS: [&str; 5] = [
    "bugsnag-project",
    "example-service",
    "launch-darkly",
    "postgres",
    "redis",
];
/// The namespace every render pretends to install into.
const NAMESPACE: &str = "pr-1234";
/// The simulator annotation declaring what a Job creates when it completes.
const ON_COMPLETE: &str = "simulator.upstart.dev/on-complete";

fn charts_dir() -> PathBuf {
    upstart_test_support::workspace_root().join("charts")
}

/// Runs helm with its config, cache and data inside a fresh directory, so the user's
/// repositories are neither read nor changed. Returns (success, stdout, stderr).
fn run_helm(args: &[&str]) -> (bool, String, String) {
    let home = tempfile::tempdir().unwrap();
    let output = Command::new(upstart_test_support::helm())
        .args(args)
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .output()
        .expect("helm runs");
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The chart directories under `charts/`, except the operators' chart.
fn example_chart_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(charts_dir())
        .expect("the workspace has a charts/ directory")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("Chart.yaml").is_file())
        .filter(|path| path.file_name().unwrap() != OPERATORS_CHART)
        .collect();
    dirs.sort();
    dirs
}

fn yaml_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Renders `chart` as release `release` in `namespace` with `values`, and returns its objects
/// followed by the objects its Jobs declare in the simulator's on-complete annotation (what
/// they create in a cluster).
fn render(chart: &str, release: &str, namespace: &str, values: &Value) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    // JSON, as the operator hands values to helm: a YAML emitter may leave `yes` unquoted,
    // which helm's YAML 1.1 reader turns into a boolean.
    let values_file = dir.path().join("values.json");
    std::fs::write(&values_file, serde_json::to_vec(values).unwrap()).unwrap();
    let chart_dir = charts_dir().join(chart);
    let (ok, stdout, stderr) = run_helm(&[
        "template",
        release,
        chart_dir.to_str().unwrap(),
        "--namespace",
        namespace,
        "--values",
        values_file.to_str().unwrap(),
    ]);
    assert!(ok, "helm template {chart} as {release} failed: {stderr}");
    let mut objects = Vec::new();
    for document in split_documents(&stdout) {
        let object: Value = serde_yaml_ng::from_str(&document)
            .unwrap_or_else(|e| panic!("{chart}: rendered YAML does not parse: {e}"));
        if !object.is_null() {
            objects.push(object);
        }
    }
    let created: Vec<Value> = objects
        .iter()
        .filter(|o| o["kind"] == "Job")
        .filter_map(|job| job["metadata"]["annotations"][ON_COMPLETE].as_str())
        .flat_map(|text| {
            let parsed: Value = serde_yaml_ng::from_str(text)
                .unwrap_or_else(|e| panic!("{chart}: {ON_COMPLETE} does not parse: {e}"));
            match parsed {
                Value::Sequence(items) => items,
                single => vec![single],
            }
        })
        .collect();
    // What the simulator requires of each manifest before it creates it.
    for object in &created {
        for field in [
            &object["apiVersion"],
            &object["kind"],
            &object["metadata"]["name"],
        ] {
            assert!(
                field.as_str().is_some_and(|s| !s.is_empty()),
                "{chart}: an on-complete manifest lacks apiVersion, kind or metadata.name"
            );
        }
    }
    objects.extend(created);
    objects
}

/// The documents of a multi-document YAML stream as helm prints it (`---` lines between them).
fn split_documents(stream: &str) -> Vec<String> {
    let mut documents = vec![String::new()];
    for line in stream.lines() {
        if line.trim_end() == "---" {
            documents.push(String::new());
        } else {
            let current = documents.last_mut().unwrap();
            current.push_str(line);
            current.push('\n');
        }
    }
    documents
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

/// The string data of a Secret (`data` decoded, then `stringData`) or a ConfigMap.
fn string_data(object: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let plain = |map: &Value, decode: bool, out: &mut BTreeMap<String, String>| {
        if let Some(map) = map.as_mapping() {
            for (key, value) in map {
                let text = value.as_str().unwrap_or_default();
                let text = if decode {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .expect("Secret data is base64");
                    String::from_utf8(bytes).expect("Secret data is UTF-8")
                } else {
                    text.to_owned()
                };
                out.insert(key.as_str().unwrap().to_owned(), text);
            }
        }
    };
    let secret = object["kind"] == "Secret";
    plain(&object["data"], secret, &mut out);
    plain(&object["stringData"], false, &mut out);
    out
}

/// One release the examples declare: what it installs and what its dependents read from it.
#[derive(Debug, Clone)]
struct ReleaseUse {
    /// The file and key (or object name) declaring it, for messages.
    origin: String,
    release_name: String,
    chart: String,
    version: Option<String>,
    values: Value,
    outputs_from: Vec<Value>,
}

fn kebab(key: &str) -> String {
    let mut out = String::new();
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('-');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The release of one `helmReleases` entry, or of a HelmRelease spec.
fn release_use(origin: String, release_name: String, spec: &Value) -> ReleaseUse {
    let chart = spec["chart"].as_str().unwrap();
    let chart = chart
        .strip_prefix("upstart-charts/")
        .unwrap_or_else(|| panic!("{origin}: chart {chart} is not from upstart-charts"));
    ReleaseUse {
        origin,
        release_name,
        chart: chart.to_owned(),
        version: spec["version"].as_str().map(str::to_owned),
        values: match &spec["values"] {
            Value::Null => Value::Mapping(Default::default()),
            values => values.clone(),
        },
        outputs_from: spec["outputsFrom"]
            .as_sequence()
            .cloned()
            .unwrap_or_default(),
    }
}

/// Every release declared by a file of UpstartServices, UpstartEnvironments and HelmReleases.
fn release_uses(rel_path: &str) -> Vec<ReleaseUse> {
    let document = yaml_file(&upstart_test_support::workspace_root().join(rel_path));
    let spec = &document["spec"];
    match document["kind"].as_str().unwrap() {
        "UpstartService" | "UpstartEnvironment" => spec["helmReleases"]
            .as_mapping()
            .unwrap()
            .iter()
            .map(|(key, release)| {
                let key = key.as_str().unwrap();
                let name = release["releaseName"]
                    .as_str()
                    .map_or_else(|| kebab(key), str::to_owned);
                release_use(format!("{rel_path} {key}"), name, release)
            })
            .collect(),
        "HelmRelease" => {
            let name = spec["releaseName"]
                .as_str()
                .or(document["metadata"]["name"].as_str())
                .unwrap()
                .to_owned();
            vec![release_use(rel_path.to_owned(), name, spec)]
        }
        other => panic!("{rel_path}: unexpected kind {other}"),
    }
}

/// The original write-up's UpstartService, kept as a fixture of the dag crate.
const WRITEUP: &str = "crates/dag/tests/fixtures/writeup-upstart-service.yaml";
const EXAMPLE_SERVICE: &str = "examples/services/example-service.yaml";
const ANOTHER_SERVICE: &str = "examples/services/another-upstart-service.yaml";
const LAUNCH_DARKLY: &str = "examples/launch-darkly.yaml";
const ENVIRONMENT: &str = "examples/environment.yaml";

fn all_release_uses() -> Vec<ReleaseUse> {
    [
        WRITEUP,
        EXAMPLE_SERVICE,
        ANOTHER_SERVICE,
        LAUNCH_DARKLY,
        ENVIRONMENT,
    ]
    .into_iter()
    .flat_map(release_uses)
    .collect()
}

/// The output object an `outputsFrom` entry names, and the keys it lists.
fn output_source(entry: &Value) -> (&'static str, String, Vec<String>) {
    let (kind, reference) = if entry["secretRef"].is_mapping() {
        ("Secret", &entry["secretRef"])
    } else {
        ("ConfigMap", &entry["configMapRef"])
    };
    let keys = entry["keys"]
        .as_sequence()
        .map(|keys| {
            keys.iter()
                .map(|k| k.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    (kind, reference["name"].as_str().unwrap().to_owned(), keys)
}

#[test]
fn every_example_chart_passes_helm_lint_strict() {
    let dirs = example_chart_dirs();
    let names: BTreeSet<String> = dirs
        .iter()
        .map(|d| d.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    for chart in EXAMPLE_CHARTS {
        assert!(
            names.contains(chart),
            "charts/{chart} is missing: {names:?}"
        );
    }
    for dir in dirs {
        let (ok, stdout, stderr) = run_helm(&["lint", "--strict", dir.to_str().unwrap()]);
        assert!(
            ok,
            "helm lint --strict {}:\n{stdout}\n{stderr}",
            dir.display()
        );
    }
}

#[test]
fn every_example_chart_documents_itself_and_labels_its_objects() {
    for chart in EXAMPLE_CHARTS {
        let dir = charts_dir().join(chart);
        let meta = yaml_file(&dir.join("Chart.yaml"));
        assert_eq!(meta["apiVersion"], "v2", "{chart}");
        let description = meta["description"].as_str().unwrap_or_default();
        assert!(
            description.len() > 80,
            "{chart}: Chart.yaml needs a README-style description"
        );
        let values = std::fs::read_to_string(dir.join("values.yaml")).unwrap();
        assert!(
            values.contains("# -- "),
            "{chart}: values.yaml documents its values"
        );
    }
    let uses = all_release_uses();
    for chart in EXAMPLE_CHARTS {
        let example = uses.iter().find(|u| u.chart == chart).unwrap();
        for object in render(chart, &example.release_name, NAMESPACE, &example.values) {
            let labels = &object["metadata"]["labels"];
            // Objects a Job creates at run time are labelled by the Job, not by Helm.
            let required: &[&str] =
                if labels["app.kubernetes.io/managed-by"].is_null() && object["kind"] == "Secret" {
                    &["app.kubernetes.io/name", "app.kubernetes.io/instance"]
                } else {
                    &[
                        "app.kubernetes.io/name",
                        "app.kubernetes.io/instance",
                        "app.kubernetes.io/version",
                        "app.kubernetes.io/managed-by",
                    ]
                };
            for label in required {
                assert!(
                    labels[*label].is_string(),
                    "{chart}: {} {} lacks label {label}",
                    object["kind"].as_str().unwrap(),
                    object["metadata"]["name"].as_str().unwrap()
                );
            }
            assert_eq!(labels["app.kubernetes.io/instance"], example.release_name);
        }
    }
}

#[test]
fn chart_versions_match_what_the_write_up_and_the_examples_pin() {
    let writeup_pins: BTreeMap<String, String> = release_uses(WRITEUP)
        .into_iter()
        .filter_map(|u| Some((u.chart, u.version?)))
        .collect();
    assert_eq!(
        writeup_pins,
        [
            ("bugsnag-project", "0.1.0"),
            ("postgres", "0.1.3"),
            ("redis", "0.1.1")
        ]
        .map(|(c, v)| (c.to_owned(), v.to_owned()))
        .into(),
        "the write-up pins these versions"
    );
    for example in all_release_uses() {
        let meta = yaml_file(&charts_dir().join(&example.chart).join("Chart.yaml"));
        let version = semver::Version::parse(meta["version"].as_str().unwrap()).unwrap();
        let Some(wanted) = example.version else {
            continue;
        };
        // Helm separates AND-ed constraints with spaces, the semver crate with commas.
        let requirement = wanted.split_whitespace().collect::<Vec<_>>().join(", ");
        let requirement = semver::VersionReq::parse(&requirement).unwrap();
        assert!(
            requirement.matches(&version),
            "{}: {} {version} does not satisfy {wanted}",
            example.origin,
            example.chart
        );
    }
}

#[test]
fn every_release_of_the_examples_renders_and_publishes_what_its_outputs_from_read() {
    // The keys the examples' expressions read, by output object (outputsFrom entries without
    // a `keys` filter say nothing about keys).
    let read: BTreeMap<(&str, &str), &[&str]> = [
        (
            ("Secret", "postgres"),
            &[
                "POSTGRES_USER",
                "POSTGRES_PASSWORD",
                "POSTGRES_DB",
                "PG_HOST",
            ][..],
        ),
        (
            ("ConfigMap", "redis-outputs"),
            &["SERVICE_FQDN", "PORT"][..],
        ),
        (("Secret", "bugsnag-bugsnag"), &["BUGSNAG_API_KEY"][..]),
        (("Secret", "launch-darkly"), &["LD_SDK_KEY_PRICING"][..]),
        (("ConfigMap", "outputs"), &["url"][..]),
        (
            ("ConfigMap", "another-upstart-service-outputs"),
            &["url"][..],
        ),
    ]
    .into();
    let mut seen = BTreeSet::new();
    for example in all_release_uses() {
        let objects = render(
            &example.chart,
            &example.release_name,
            NAMESPACE,
            &example.values,
        );
        assert!(!objects.is_empty(), "{}: renders nothing", example.origin);
        for entry in &example.outputs_from {
            let (kind, name, keys) = output_source(entry);
            let object = find(&objects, kind, &name).unwrap_or_else(|| {
                panic!(
                    "{}: reads {kind} {name}, which the chart never publishes",
                    example.origin
                )
            });
            let data = string_data(object);
            assert!(
                !data.is_empty(),
                "{}: {kind} {name} is empty",
                example.origin
            );
            if let Some(wanted) = read.get(&(kind, name.as_str())) {
                seen.insert((kind, name.clone()));
                for key in *wanted {
                    assert!(
                        data.get(*key).is_some_and(|v| !v.is_empty()),
                        "{}: {kind} {name} lacks {key}, which the examples read",
                        example.origin
                    );
                }
            }
            for key in keys {
                assert!(
                    data.get(&key).is_some_and(|v| !v.is_empty()),
                    "{}: {kind} {name} lacks {key}",
                    example.origin
                );
            }
        }
    }
    let all: BTreeSet<(&str, String)> = read.keys().map(|(k, n)| (*k, (*n).to_owned())).collect();
    assert_eq!(
        seen, all,
        "every output object the examples read is published"
    );
}

/// Renders every release of `uses` in one namespace; the objects, by release.
fn render_all(uses: &[ReleaseUse], namespace: &str) -> BTreeMap<String, Vec<Value>> {
    uses.iter()
        .map(|u| {
            (
                u.release_name.clone(),
                render(&u.chart, &u.release_name, namespace, &u.values),
            )
        })
        .collect()
}

/// The outputs a release publishes: the union of its outputsFrom objects' data.
fn outputs_of(example: &ReleaseUse, objects: &[Value]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in &example.outputs_from {
        let (kind, name, keys) = output_source(entry);
        let data = string_data(find(objects, kind, &name).unwrap());
        out.extend(
            data.into_iter()
                .filter(|(k, _)| keys.is_empty() || keys.contains(k)),
        );
    }
    out
}

/// Evaluates the expression forms the example values use (`A.outputs.K`,
/// `default A.outputs.K "d"`, `release.namespace`, `release.name`) against known outputs. A
/// stand-in for the operator's engine, enough to see that the charts' outputs compose.
fn substitute(
    text: &str,
    outputs: &BTreeMap<String, BTreeMap<String, String>>,
    release: &str,
) -> String {
    let lookup = |expr: &str| -> Option<String> {
        match expr.split_once(".outputs.") {
            Some((alias, key)) => outputs.get(alias)?.get(key).cloned(),
            None => match expr {
                "release.namespace" => Some(NAMESPACE.to_owned()),
                "release.name" => Some(release.to_owned()),
                _ => None,
            },
        }
    };
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("<<") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find(">>").unwrap() + start;
        let expr = rest[start + 2..end].trim();
        let value = match expr.strip_prefix("default ") {
            Some(args) => {
                let (reference, fallback) = args.split_once(' ').unwrap();
                lookup(reference).unwrap_or_else(|| fallback.trim_matches('"').to_owned())
            }
            None => lookup(expr).unwrap_or_else(|| panic!("no output for << {expr} >>")),
        };
        out.push_str(&value);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

fn container_env(deployment: &Value) -> BTreeMap<String, String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_example_service_is_wired_from_the_outputs_its_dependencies_render() {
    let mut uses = release_uses(EXAMPLE_SERVICE);
    uses.extend(release_uses(ANOTHER_SERVICE));
    uses.extend(release_uses(LAUNCH_DARKLY));
    let rendered = render_all(&uses, NAMESPACE);
    let mut outputs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for u in &uses {
        let alias = match u.origin.as_str() {
            LAUNCH_DARKLY => "launch-darkly".to_owned(),
            o if o.starts_with(ANOTHER_SERVICE) => "another-upstart-service".to_owned(),
            o => o.rsplit(' ').next().unwrap().to_owned(),
        };
        outputs.insert(alias, outputs_of(u, &rendered[&u.release_name]));
    }
    let service = uses
        .iter()
        .find(|u| u.release_name == "example-service")
        .unwrap();
    let mut values = service.values.clone();
    let env = values["global"]["env"].as_mapping_mut().unwrap();
    for (_, value) in env.iter_mut() {
        let text = substitute(value.as_str().unwrap(), &outputs, "example-service");
        *value = Value::String(text);
    }
    let objects = render("example-service", "example-service", NAMESPACE, &values);
    let env = container_env(find(&objects, "Deployment", "example-service").unwrap());

    let pg = string_data(find(&rendered["postgres"], "Secret", "postgres").unwrap());
    assert_eq!(
        env["DATABASE_URL"],
        format!(
            "postgres://postgres:{}@postgres.{NAMESPACE}.svc.cluster.local:5432/my_service",
            pg["POSTGRES_PASSWORD"]
        )
    );
    assert_eq!(pg["POSTGRES_PASSWORD"].len(), 32);
    assert_eq!(
        env["REDIS_BACKEND_URI"],
        format!("redis://redis.{NAMESPACE}.svc.cluster.local:6379/1")
    );
    assert_eq!(
        env["ANOTHER_UPSTART_SERVICE_URL"],
        format!("http://web.{NAMESPACE}.svc.cluster.local:80")
    );
    assert!(env["LAUNCHDARKLY_SDK_KEY"].starts_with("sdk-"));
    assert_eq!(env["BUGSNAG_API_KEY"].len(), 32);
    assert_eq!(env["RELEASE"], format!("{NAMESPACE}/example-service"));
    let url = string_data(find(&objects, "ConfigMap", "outputs").unwrap());
    assert_eq!(
        url["url"],
        format!("http://example-service.{NAMESPACE}.svc.cluster.local:80")
    );
}

#[test]
fn the_whole_example_fits_in_one_namespace_without_name_collisions() {
    let mut uses = release_uses(EXAMPLE_SERVICE);
    uses.extend(release_uses(ANOTHER_SERVICE));
    uses.extend(release_uses(LAUNCH_DARKLY));
    let names: BTreeSet<&str> = uses.iter().map(|u| u.release_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "bugsnag",
            "example-service",
            "launch-darkly",
            "postgres",
            "redis",
            "web"
        ]
        .into()
    );
    let mut owners: BTreeMap<(String, String), String> = BTreeMap::new();
    for (release, objects) in render_all(&uses, NAMESPACE) {
        for object in objects {
            assert!(
                object["metadata"]["namespace"].is_null(),
                "{release}: objects take the release namespace"
            );
            let id = (
                object["kind"].as_str().unwrap().to_owned(),
                object["metadata"]["name"].as_str().unwrap().to_owned(),
            );
            if let Some(other) = owners.insert(id.clone(), release.clone()) {
                panic!(
                    "{} {} is rendered by both {other} and {release}",
                    id.0, id.1
                );
            }
        }
    }
    // Both releases of example-service have their own workload.
    assert_eq!(owners[&("Deployment".into(), "web".into())], "web");
    assert_eq!(
        owners[&("Deployment".into(), "example-service".into())],
        "example-service"
    );
}

#[test]
fn global_env_values_arrive_verbatim_in_the_container_environment() {
    let tricky = [
        ("QUOTES", r#"say "hi" and 'bye'"#),
        ("COLONS", "postgres://u:p@h:5432/db?sslmode=require"),
        ("BRACES", "{{ .Release.Name }} {{- fail \"boom\" }}"),
        ("EXPRESSION_LOOKALIKE", "<< not.an.expression >>"),
        (
            "YAML_SPECIALS",
            "- &anchor *alias # comment: {a: [b]} | > % @ `",
        ),
        ("MULTILINE", "line one\nline two\n\ttabbed"),
        ("UNICODE", "héllo — ☃ \\ backslash"),
        ("LOOKS_NUMERIC", "0012"),
        ("LOOKS_BOOLEAN", "yes"),
        ("EMPTY", ""),
    ];
    let env: serde_yaml_ng::Mapping = tricky
        .iter()
        .map(|(k, v)| (Value::from(*k), Value::from(*v)))
        .collect();
    let mut values = serde_yaml_ng::Mapping::new();
    values.insert(
        "global".into(),
        Value::Mapping([("env".into(), env.into())].into_iter().collect()),
    );

    let objects = render("example-service", "svc", NAMESPACE, &values.clone().into());
    let inline = container_env(find(&objects, "Deployment", "svc").unwrap());
    values.insert("envFromSecret".into(), true.into());
    let objects = render("example-service", "svc", NAMESPACE, &values.into());
    let deployment = find(&objects, "Deployment", "svc").unwrap();
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["secretRef"]["name"],
        "svc-env"
    );
    let from_secret = string_data(find(&objects, "Secret", "svc-env").unwrap());
    for (name, value) in tricky {
        assert_eq!(
            inline.get(name).map(String::as_str),
            Some(value),
            "{name} inline"
        );
        assert_eq!(
            from_secret.get(name).map(String::as_str),
            Some(value),
            "{name} in the Secret"
        );
    }
    assert_eq!(inline.len(), tricky.len());
}

#[test]
fn derived_credentials_are_stable_across_renders_and_distinct_per_release() {
    let values = Value::Mapping(Default::default());
    let password = |namespace: &str, release: &str| {
        let objects = render("postgres", release, namespace, &values);
        // The output Secret is named after the release.
        string_data(find(&objects, "Secret", release).unwrap())["POSTGRES_PASSWORD"].clone()
    };
    let first = password("pr-1", "postgres");
    assert_eq!(
        first,
        password("pr-1", "postgres"),
        "a re-render keeps the password"
    );
    assert_ne!(first, password("pr-2", "postgres"), "namespaces differ");
    assert_ne!(first, password("pr-1", "db"), "releases differ");

    let bugsnag = render("bugsnag-project", "bugsnag", "pr-1", &values);
    let key = string_data(find(&bugsnag, "Secret", "bugsnag-bugsnag").unwrap())["BUGSNAG_API_KEY"]
        .clone();
    let again = render("bugsnag-project", "bugsnag", "pr-1", &values);
    assert_eq!(
        key,
        string_data(find(&again, "Secret", "bugsnag-bugsnag").unwrap())["BUGSNAG_API_KEY"]
    );
    // The Job's container derives the key in a real cluster: sha256 of KEY_SEED, 32 hex chars,
    // as the template derives the simulator's copy.
    let job = find(&bugsnag, "Job", "bugsnag-publish-key").unwrap();
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let seed = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "KEY_SEED")
        .unwrap()["value"]
        .as_str()
        .unwrap();
    let digest = format!("{:x}", sha2::Sha256::digest(seed.as_bytes()));
    assert_eq!(key, digest[..32]);
    let script = container["command"][2].as_str().unwrap();
    assert!(
        script.contains(r#"printf '%s' "$KEY_SEED" | sha256sum | cut -c1-32"#),
        "{script}"
    );
}

#[test]
fn the_bugsnag_key_appears_only_through_its_job_after_the_simulated_delay() {
    let values: Value = serde_yaml_ng::from_str("{type: flask, simulatedDelay: 250ms}").unwrap();
    let objects = render("bugsnag-project", "bugsnag", NAMESPACE, &values);
    let job = find(&objects, "Job", "bugsnag-publish-key").unwrap();
    let annotations = &job["metadata"]["annotations"];
    assert_eq!(annotations["simulator.upstart.dev/ready-after"], "250ms");
    assert_eq!(annotations["simulator.upstart.dev/fail"], "false");
    let project = string_data(find(&objects, "ConfigMap", "bugsnag-project").unwrap());
    assert_eq!(project["type"], "flask");
    // Only the Job's on-complete annotation declares the Secret: the chart itself does not.
    let helm_rendered = objects
        .iter()
        .filter(|o| {
            o["kind"] == "Secret"
                && o["metadata"]["labels"]["app.kubernetes.io/managed-by"].is_string()
        })
        .count();
    assert_eq!(
        helm_rendered, 0,
        "the Secret must not exist before the Job has run"
    );
    // The publisher may write that one Secret and nothing else.
    let role = find(&objects, "Role", "bugsnag-publisher").unwrap();
    assert_eq!(role["rules"].as_sequence().unwrap().len(), 1);
    assert_eq!(role["rules"][0]["resourceNames"][0], "bugsnag-bugsnag");

    let failing: Value = serde_yaml_ng::from_str("{simulatedFailure: true}").unwrap();
    let objects = render("bugsnag-project", "bugsnag", NAMESPACE, &failing);
    let job = find(&objects, "Job", "bugsnag-publish-key").unwrap();
    assert_eq!(
        job["metadata"]["annotations"]["simulator.upstart.dev/fail"],
        "true"
    );
}

#[test]
fn the_repository_packages_every_example_chart_and_lists_it_in_the_index() {
    let repo = ChartRepo::from_dir(charts_dir()).unwrap();
    let index: Value = serde_yaml_ng::from_str(repo.index_yaml()).unwrap();
    for dir in example_chart_dirs() {
        let meta = yaml_file(&dir.join("Chart.yaml"));
        let name = meta["name"].as_str().unwrap();
        let version = meta["version"].as_str().unwrap();
        let packaged = repo
            .charts()
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name} is not packaged"));
        assert_eq!(packaged.version, version);
        assert!(!packaged.archive.is_empty());
        let entries = index["entries"][name].as_sequence().unwrap();
        assert!(
            entries.iter().any(|e| e["version"] == version
                && e["urls"][0]
                    .as_str()
                    .unwrap()
                    .ends_with(&packaged.file_name())),
            "index.yaml lists {name} {version}"
        );
    }
}
