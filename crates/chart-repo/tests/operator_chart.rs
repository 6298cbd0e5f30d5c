//! The chart that installs the operators (`charts/upstart-operators`, SPEC §7, §8) lints, and
//! what it renders is what the operators need and no more: hardened pods whose arguments parse
//! as the operators' flags, least-privilege RBAC without wildcards, a repository configuration
//! the HelmRelease operator accepts, monitoring objects built on the metric names the code
//! registers, and the generated CRDs.
//!
//! helm is found through `UPSTART_HELM`, else `.tools/bin/helm` at the workspace root (installed
//! by `scripts/bootstrap-tools`), else `PATH`; without it these tests fail and say so.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use serde_yaml_ng::Value;
use upstart_chart_source::{RepositoryConfig, RepositoryKind};
use upstart_operator_runtime::CommonArgs;

const RELEASE: &str = "upstart";
const NAMESPACE: &str = "upstart-system";
/// The Deployments, by operator binary (the container's command).
const OPERATORS: [&str; 3] = [
    "upstart-helmrelease-operator",
    "upstart-service-operator",
    "upstart-environment-operator",
];

fn chart_dir() -> PathBuf {
    upstart_test_support::workspace_root().join("charts/upstart-operators")
}

/// Runs helm with its config, cache and data inside a fresh directory. Returns (success,
/// stdout, stderr).
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

/// Writes `values` (YAML text) to a file and returns helm's `--values` arguments for it.
fn values_file(dir: &Path, values: &str) -> PathBuf {
    let path = dir.join("values.yaml");
    std::fs::write(&path, values).unwrap();
    path
}

/// The kinds of the Prometheus Operator, as `helm template --api-versions` declares them.
const PROMETHEUS_OPERATOR_KINDS: [&str; 2] = [
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
];

/// `helm template` of the chart in `namespace` with `values` (YAML text), for a cluster serving
/// `api_versions` besides the built-in ones: the objects rendered, or helm's error.
fn try_render(namespace: &str, values: &str, api_versions: &[&str]) -> Result<Vec<Value>, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = values_file(dir.path(), values);
    let chart = chart_dir();
    let mut args = vec![
        "template",
        RELEASE,
        chart.to_str().unwrap(),
        "--namespace",
        namespace,
        "--values",
        file.to_str().unwrap(),
    ];
    for api_version in api_versions {
        args.extend(["--api-versions", api_version]);
    }
    let (ok, stdout, stderr) = run_helm(&args);
    if !ok {
        return Err(stderr);
    }
    Ok(stdout
        .split("\n---")
        .map(|document| serde_yaml_ng::from_str::<Value>(document).unwrap())
        .filter(|object| !object.is_null())
        .collect())
}

/// `helm template` of the chart in `namespace` with `values` (YAML text), for a cluster with
/// the Prometheus Operator; the objects rendered.
fn render_in(namespace: &str, values: &str) -> Vec<Value> {
    try_render(namespace, values, &PROMETHEUS_OPERATOR_KINDS)
        .unwrap_or_else(|stderr| panic!("helm template failed: {stderr}"))
}

fn render(values: &str) -> Vec<Value> {
    render_in(NAMESPACE, values)
}

/// Every optional object switched on, with repositories and credentials configured.
const EVERYTHING_ON: &str = r#"
metrics:
  serviceMonitor:
    enabled: true
    labels: {release: prometheus}
dashboard:
  enabled: true
alerts:
  enabled: true
catalog:
  create: true
repositories:
  upstart-charts:
    url: https://charts.example.com
    credentialsSecret: upstart-charts-auth
  registry:
    url: oci://registry.example.com/charts
    kind: oci
    plainHttp: true
    credentialsSecret: registry-pull
    caBundle: |
      -----BEGIN CERTIFICATE-----
      MIIB
      -----END CERTIFICATE-----
  public:
    url: https://public.example.com/charts
allowUnlisted: true
indexTtl: 2m
chartLimits:
  maxIndexBytes: 67108864
  maxArchiveBytes: 20971520
  maxFiles: 5000
  fetchTimeout: 30s
operators:
  helmRelease:
    allowClusterScoped: [apiextensions.k8s.io/CustomResourceDefinition, ClusterRole]
"#;

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|items| {
            items
                .iter()
                .map(|i| i.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

/// The operator binary a Deployment runs.
fn binary(deployment: &Value) -> String {
    strings(&container(deployment)["command"])
        .first()
        .cloned()
        .unwrap()
}

/// The flags of the UpstartService and UpstartEnvironment operators: the shared ones, and the
/// environment operator's `--release-cluster-role` (operators/upstartenvironment/src/main.rs).
#[derive(Parser, Debug)]
struct OperatorCli {
    #[command(flatten)]
    common: CommonArgs,
    #[arg(long)]
    release_cluster_role: Option<String>,
}

/// The HelmRelease operator's flags, as operators/helmrelease/src/main.rs declares them (that
/// struct is private to the binary, so its extra flags are mirrored here).
#[derive(Parser, Debug)]
struct HelmReleaseCli {
    #[command(flatten)]
    common: CommonArgs,
    #[arg(long, default_value = "helm")]
    helm_path: PathBuf,
    #[arg(long)]
    repository_config: Option<PathBuf>,
    #[arg(long, default_value = "upstart-system")]
    credentials_namespace: String,
    #[arg(long, default_value = "/var/cache/upstart/charts")]
    cache_dir: PathBuf,
    #[arg(long = "allow-cluster-scoped", value_delimiter = ',')]
    allow_cluster_scoped: Vec<String>,
    #[arg(long)]
    default_service_account: Option<String>,
    #[arg(long, default_value_t = 4)]
    max_concurrent_applies: u16,
}

/// Parses a Deployment's arguments as its operator does; for the HelmRelease operator also
/// returns its own flags.
fn parse_args(deployment: &Value) -> (CommonArgs, Option<HelmReleaseCli>) {
    let name = binary(deployment);
    let argv = std::iter::once(name.clone()).chain(strings(&container(deployment)["args"]));
    if name == "upstart-helmrelease-operator" {
        let cli = HelmReleaseCli::try_parse_from(argv)
            .unwrap_or_else(|e| panic!("{name}: arguments do not parse: {e}"));
        (cli.common.clone(), Some(cli))
    } else {
        let cli = OperatorCli::try_parse_from(argv)
            .unwrap_or_else(|e| panic!("{name}: arguments do not parse: {e}"));
        assert!(
            cli.release_cluster_role.is_none() || name == "upstart-environment-operator",
            "{name}: --release-cluster-role is the environment operator's flag"
        );
        (cli.common, None)
    }
}

/// The environment operator's `--release-cluster-role`, if its Deployment passes one.
fn release_cluster_role(objects: &[Value]) -> Option<String> {
    let deployment = of_kind(objects, "Deployment")
        .into_iter()
        .find(|d| binary(d) == "upstart-environment-operator")
        .unwrap();
    let argv = std::iter::once("upstart-environment-operator".to_owned())
        .chain(strings(&container(deployment)["args"]));
    OperatorCli::try_parse_from(argv)
        .unwrap()
        .release_cluster_role
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_operators_chart_passes_helm_lint_strict_with_defaults_and_with_everything_on() {
    let chart = chart_dir();
    let (ok, stdout, stderr) = run_helm(&["lint", "--strict", chart.to_str().unwrap()]);
    assert!(ok, "helm lint --strict (defaults):\n{stdout}\n{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let file = values_file(dir.path(), EVERYTHING_ON);
    let (ok, stdout, stderr) = run_helm(&[
        "lint",
        "--strict",
        chart.to_str().unwrap(),
        "--values",
        file.to_str().unwrap(),
    ]);
    assert!(
        ok,
        "helm lint --strict (everything on):\n{stdout}\n{stderr}"
    );
}

#[test]
fn the_chart_ships_exactly_the_crds_of_the_crds_directory() {
    let root = upstart_test_support::workspace_root();
    let canonical = root.join("crds");
    let shipped = chart_dir().join("crds");
    let names = file_names(&canonical);
    assert_eq!(names.len(), 3, "crds/ holds the three CRDs");
    assert_eq!(file_names(&shipped), names);
    for name in names {
        assert_eq!(
            std::fs::read_to_string(shipped.join(&name)).unwrap(),
            std::fs::read_to_string(canonical.join(&name)).unwrap(),
            "charts/upstart-operators/crds/{name} differs from crds/{name}: run `cargo run -p upstart-api --bin crdgen`"
        );
    }
}

#[test]
fn every_operator_runs_as_non_root_on_a_read_only_root_filesystem_without_capabilities() {
    for values in ["{}", EVERYTHING_ON] {
        let objects = render(values);
        let deployments = of_kind(&objects, "Deployment");
        let mut binaries: Vec<String> = deployments.iter().map(|d| binary(d)).collect();
        binaries.sort();
        let mut expected = OPERATORS.map(str::to_owned).to_vec();
        expected.sort();
        assert_eq!(binaries, expected);
        for deployment in deployments {
            let name = binary(deployment);
            let pod = &deployment["spec"]["template"]["spec"];
            let security = &container(deployment)["securityContext"];
            assert_eq!(security["runAsNonRoot"], true, "{name}");
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
            assert!(
                security["runAsUser"].as_u64().unwrap() > 0,
                "{name} runs as a non-root uid"
            );
            assert_eq!(security["readOnlyRootFilesystem"], true, "{name}");
            assert_eq!(security["allowPrivilegeEscalation"], false, "{name}");
            assert_eq!(
                strings(&security["capabilities"]["drop"]),
                ["ALL"],
                "{name}"
            );
            assert!(security["capabilities"]["add"].is_null(), "{name}");
            assert_eq!(
                security["seccompProfile"]["type"], "RuntimeDefault",
                "{name}"
            );
            assert_eq!(
                pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
                "{name}"
            );
            // The writable paths are emptyDirs: /tmp everywhere, the chart cache for helm.
            let empty_dirs: BTreeSet<String> = pod["volumes"]
                .as_sequence()
                .unwrap()
                .iter()
                .filter(|v| v["emptyDir"].is_mapping())
                .map(|v| v["name"].as_str().unwrap().to_owned())
                .collect();
            let mounts: BTreeMap<String, String> = container(deployment)["volumeMounts"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|m| {
                    (
                        m["mountPath"].as_str().unwrap().to_owned(),
                        m["name"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            assert!(empty_dirs.contains(&mounts["/tmp"]), "{name}: /tmp");
            let (_, helm_release) = parse_args(deployment);
            if let Some(cli) = helm_release {
                let cache = cli.cache_dir.to_str().unwrap();
                assert!(empty_dirs.contains(&mounts[cache]), "{name}: chart cache");
            }
            assert!(
                container(deployment)["resources"]["requests"].is_mapping(),
                "{name}: resources"
            );
        }
    }
}

#[test]
fn every_deployment_passes_flags_its_operator_parses_with_leader_election_on() {
    let objects = render("{}");
    for deployment in of_kind(&objects, "Deployment") {
        let name = binary(deployment);
        let (common, helm_release) = parse_args(deployment);
        assert!(
            common.leader_elect,
            "{name}: leader election is on by default"
        );
        assert_eq!(
            common.leader_election_namespace.as_deref(),
            Some(NAMESPACE),
            "{name}: the Lease lives in the release namespace"
        );
        assert_eq!(common.lease_name.as_deref(), Some(name.as_str()));
        assert_eq!(common.catalog_namespace, "upstart-catalog");
        assert_eq!(common.namespace, None);
        assert_eq!(common.label_selector, None);
        assert_eq!(deployment["spec"]["replicas"], 1);
        // Health and metrics are served where the probes and the Service look.
        let port = common.metrics_addr.port();
        let ports = container(deployment)["ports"].as_sequence().unwrap();
        let metrics = ports.iter().find(|p| p["name"] == "metrics").unwrap();
        assert_eq!(metrics["containerPort"].as_u64(), Some(u64::from(port)));
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            let get = &container(deployment)[probe]["httpGet"];
            assert_eq!(get["path"], path, "{name} {probe}");
            assert_eq!(get["port"], "metrics", "{name} {probe}");
        }
        let service = named(&objects, "Service", &format!("{name}-metrics"));
        assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
        assert_eq!(
            service["spec"]["selector"],
            deployment["spec"]["selector"]["matchLabels"]
        );
        assert_eq!(
            deployment["spec"]["template"]["spec"]["serviceAccountName"],
            name
        );
        if let Some(cli) = helm_release {
            assert_eq!(cli.credentials_namespace, NAMESPACE);
            let config = cli.repository_config.unwrap();
            let mounts = container(deployment)["volumeMounts"].as_sequence().unwrap();
            let mount = mounts.iter().find(|m| m["name"] == "repositories").unwrap();
            assert_eq!(
                config.parent().unwrap().to_str(),
                mount["mountPath"].as_str()
            );
        }
    }
}

#[test]
fn sharding_and_tuning_values_reach_the_operators_flags() {
    let objects = render(
        r#"
watchNamespace: team-a
labelSelector: upstart.com/shard=a
leaderElection: {namespace: leases}
catalog: {namespace: my-catalog}
teardownTimeout: 20m
operators:
  service:
    labelSelector: upstart.com/shard=b
    maxConcurrentReconciles: 3
    replicas: 2
  helmRelease:
    allowClusterScoped: [apiextensions.k8s.io/CustomResourceDefinition, ClusterRole]
"#,
    );
    for deployment in of_kind(&objects, "Deployment") {
        let name = binary(deployment);
        let (common, helm_release) = parse_args(deployment);
        assert_eq!(common.namespace.as_deref(), Some("team-a"), "{name}");
        let shard = if name == "upstart-service-operator" {
            "upstart.com/shard=b"
        } else {
            "upstart.com/shard=a"
        };
        assert_eq!(common.label_selector.as_deref(), Some(shard), "{name}");
        assert_eq!(common.leader_election_namespace.as_deref(), Some("leases"));
        assert_eq!(common.catalog_namespace, "my-catalog");
        assert_eq!(common.teardown_timeout.as_secs(), 20 * 60);
        if name == "upstart-service-operator" {
            assert_eq!(common.max_concurrent_reconciles, 3);
            assert_eq!(deployment["spec"]["replicas"], 2);
        }
        if let Some(cli) = helm_release {
            assert_eq!(
                cli.allow_cluster_scoped,
                [
                    "apiextensions.k8s.io/CustomResourceDefinition",
                    "ClusterRole"
                ]
            );
        }
    }
    // The Lease Roles follow the Leases into their namespace.
    for role in of_kind(&objects, "Role").into_iter().filter(|r| {
        r["metadata"]["name"]
            .as_str()
            .unwrap()
            .ends_with("-leader-election")
    }) {
        assert_eq!(role["metadata"]["namespace"], "leases");
    }
    let off = render("leaderElection: {enabled: false}");
    for deployment in of_kind(&off, "Deployment") {
        assert!(!parse_args(deployment).0.leader_elect);
    }
    assert!(of_kind(&off, "Role").iter().all(|r| {
        !r["metadata"]["name"]
            .as_str()
            .unwrap()
            .ends_with("-leader-election")
    }));
}

/// Whether an RBAC rule covers `resource` of `group`.
fn covers(rule: &Value, group: &str, resource: &str) -> bool {
    strings(&rule["apiGroups"]).iter().any(|g| g == group)
        && strings(&rule["resources"]).iter().any(|r| r == resource)
}

/// The verbs `role` grants on `resource` of `group`, across its rules (ignoring rules limited
/// to some resourceNames).
fn verbs(role: &Value, group: &str, resource: &str) -> BTreeSet<String> {
    role["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|rule| rule["resourceNames"].is_null() && covers(rule, group, resource))
        .flat_map(|rule| strings(&rule["verbs"]))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

const GROUP: &str = "upstartoperators.upstart.com";

#[test]
fn no_cluster_role_grants_wildcards() {
    for values in ["{}", EVERYTHING_ON] {
        let objects = render(values);
        let roles: Vec<&Value> = of_kind(&objects, "ClusterRole")
            .into_iter()
            .chain(of_kind(&objects, "Role"))
            .collect();
        assert_eq!(
            of_kind(&objects, "ClusterRole").len(),
            7,
            "three operators' roles, the releases' role and three user-facing ones"
        );
        for role in roles {
            let name = role["metadata"]["name"].as_str().unwrap();
            for rule in role["rules"].as_sequence().unwrap() {
                for field in ["verbs", "resources", "apiGroups", "nonResourceURLs"] {
                    assert!(
                        !strings(&rule[field]).iter().any(|v| v == "*"),
                        "{name} grants a wildcard in {field}: {rule:?}"
                    );
                }
                if !rule["nonResourceURLs"].is_null() {
                    assert_eq!(strings(&rule["verbs"]), ["get"], "{name}");
                }
                // Secrets: never escalate, never bulk-delete, never `*`.
                if covers(rule, "", "secrets") {
                    let granted = set(&strings(&rule["verbs"])
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>());
                    assert!(
                        granted.is_subset(&set(&[
                            "get", "list", "watch", "create", "update", "patch", "delete"
                        ])),
                        "{name}: secrets {granted:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn each_operator_gets_the_rights_of_its_own_controller_only() {
    let objects = render(EVERYTHING_ON);
    let cluster_role =
        |binary: &str| named(&objects, "ClusterRole", &format!("{binary}-{NAMESPACE}"));
    let read = set(&["get", "list", "watch"]);
    let crud = set(&[
        "get", "list", "watch", "create", "update", "patch", "delete",
    ]);

    let helm = cluster_role("upstart-helmrelease-operator");
    assert!(
        verbs(helm, GROUP, "helmreleases").is_superset(&set(&["get", "list", "watch", "patch"]))
    );
    assert!(verbs(helm, GROUP, "helmreleases/status").contains("patch"));
    assert!(verbs(helm, GROUP, "helmreleases/finalizers").contains("update"));
    assert!(!verbs(helm, GROUP, "helmreleases").contains("delete"));
    assert_eq!(verbs(helm, GROUP, "upstartservices"), read);
    assert_eq!(verbs(helm, GROUP, "upstartenvironments"), read);
    assert!(verbs(helm, "", "secrets").is_superset(&read));
    assert!(verbs(helm, "", "configmaps").is_superset(&read));
    assert_eq!(
        verbs(helm, "events.k8s.io", "events"),
        set(&["create", "patch"])
    );
    assert_eq!(
        verbs(helm, "", "namespaces"),
        read,
        "namespaces are only read"
    );
    // Charts' objects are written as each release's ServiceAccount (tenancy, on by default):
    // the operator only reads (and watches) what releases apply, writes none of it, and may
    // impersonate the release accounts by name.
    for (group, resource) in [
        ("apps", "deployments"),
        ("apps", "statefulsets"),
        ("batch", "jobs"),
        ("", "services"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
    ] {
        assert_eq!(verbs(helm, group, resource), read, "{group}/{resource}");
    }
    for (group, resource) in [
        ("networking.k8s.io", "ingresses"),
        ("policy", "poddisruptionbudgets"),
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("rbac.authorization.k8s.io", "roles"),
        ("", "serviceaccounts"),
    ] {
        assert!(
            verbs(helm, group, resource).is_empty(),
            "{group}/{resource}"
        );
    }
    let impersonation: Vec<&Value> = helm["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|r| strings(&r["verbs"]).contains(&"impersonate".to_owned()))
        .collect();
    assert_eq!(impersonation.len(), 1, "{impersonation:?}");
    assert_eq!(strings(&impersonation[0]["resources"]), ["serviceaccounts"]);
    assert_eq!(
        strings(&impersonation[0]["resourceNames"]),
        ["upstart-release"]
    );
    // The releases' own ClusterRole (bound per environment namespace) has the default
    // chart-object rights: the workload kinds, and CRDs without delete.
    let release_role = named(
        &objects,
        "ClusterRole",
        &format!("upstart-release-{NAMESPACE}"),
    );
    for (group, resource) in [
        ("apps", "deployments"),
        ("apps", "statefulsets"),
        ("batch", "jobs"),
        ("", "services"),
        ("networking.k8s.io", "ingresses"),
        ("policy", "poddisruptionbudgets"),
    ] {
        assert_eq!(
            verbs(release_role, group, resource),
            crud,
            "{group}/{resource}"
        );
    }
    let crds = verbs(
        release_role,
        "apiextensions.k8s.io",
        "customresourcedefinitions",
    );
    assert!(
        crds.is_superset(&set(&["get", "create", "patch"])),
        "{crds:?}"
    );
    assert!(!crds.contains("delete"), "CRDs outlive releases");
    let discovery = helm["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| !r["nonResourceURLs"].is_null())
        .unwrap();
    assert!(strings(&discovery["nonResourceURLs"]).contains(&"/apis".to_owned()));

    let service = cluster_role("upstart-service-operator");
    assert!(verbs(service, GROUP, "upstartservices").is_superset(&read));
    assert!(verbs(service, GROUP, "upstartservices/status").contains("patch"));
    assert!(verbs(service, GROUP, "upstartservices/finalizers").contains("update"));
    assert_eq!(verbs(service, GROUP, "helmreleases"), crud);
    // Exported outputs are read by name, never listed or watched.
    assert_eq!(verbs(service, "", "secrets"), set(&["get"]));
    assert_eq!(verbs(service, "", "configmaps"), set(&["get"]));
    assert!(verbs(service, "", "namespaces").is_empty());
    assert!(verbs(service, GROUP, "upstartenvironments").is_empty());

    let environment = cluster_role("upstart-environment-operator");
    assert!(
        verbs(environment, GROUP, "upstartenvironments")
            .is_superset(&set(&["get", "list", "watch", "patch", "delete"]))
    );
    assert!(verbs(environment, GROUP, "upstartenvironments/status").contains("patch"));
    assert!(verbs(environment, GROUP, "upstartenvironments/finalizers").contains("update"));
    assert_eq!(verbs(environment, GROUP, "upstartservices"), crud);
    assert_eq!(verbs(environment, GROUP, "helmreleases"), crud);
    assert_eq!(
        verbs(environment, "", "namespaces"),
        set(&["get", "list", "watch", "create", "patch", "delete"])
    );
    assert!(verbs(environment, "", "secrets").is_empty());
    // The release account of each environment namespace and its binding: `bind` on the
    // releases' ClusterRole only, whose rights it does not hold.
    assert_eq!(
        verbs(environment, "", "serviceaccounts"),
        set(&["get", "create", "patch"])
    );
    assert_eq!(
        verbs(environment, "rbac.authorization.k8s.io", "rolebindings"),
        set(&["get", "create", "patch"])
    );
    let bind: Vec<&Value> = environment["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|r| strings(&r["verbs"]).contains(&"bind".to_owned()))
        .collect();
    assert_eq!(bind.len(), 1, "{bind:?}");
    assert_eq!(
        strings(&bind[0]["resourceNames"]),
        [format!("upstart-release-{NAMESPACE}")]
    );
    assert_eq!(
        release_cluster_role(&objects),
        Some(format!("upstart-release-{NAMESPACE}"))
    );

    // Each ClusterRole is bound to its own ServiceAccount only.
    for binary in OPERATORS {
        let binding = named(
            &objects,
            "ClusterRoleBinding",
            &format!("{binary}-{NAMESPACE}"),
        );
        assert_eq!(binding["roleRef"]["name"], format!("{binary}-{NAMESPACE}"));
        let subjects = binding["subjects"].as_sequence().unwrap();
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0]["name"], binary);
        assert_eq!(subjects[0]["namespace"], NAMESPACE);
        named(&objects, "ServiceAccount", binary);
        // Its Lease only: create (which cannot be limited by name) and get/update by name.
        let lease_role = named(&objects, "Role", &format!("{binary}-leader-election"));
        assert_eq!(
            verbs(lease_role, "coordination.k8s.io", "leases"),
            set(&["create"])
        );
        let named_rule = lease_role["rules"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|r| !r["resourceNames"].is_null())
            .unwrap();
        assert_eq!(strings(&named_rule["resourceNames"]), [binary]);
    }
}

#[test]
fn with_tenancy_off_the_helmrelease_operator_writes_charts_objects_with_its_own_rights() {
    let objects = render("tenancy: {enabled: false}");
    let helm = named(
        &objects,
        "ClusterRole",
        &format!("upstart-helmrelease-operator-{NAMESPACE}"),
    );
    assert_eq!(
        verbs(helm, "apps", "deployments"),
        set(&[
            "get", "list", "watch", "create", "update", "patch", "delete"
        ])
    );
    assert!(
        !helm["rules"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|r| strings(&r["verbs"]).contains(&"impersonate".to_owned()))
    );
    assert!(
        of_kind(&objects, "ClusterRole")
            .iter()
            .all(|r| r["metadata"]["name"] != format!("upstart-release-{NAMESPACE}"))
    );
    assert_eq!(release_cluster_role(&objects), None);
    for deployment in of_kind(&objects, "Deployment") {
        if let (_, Some(cli)) = parse_args(deployment) {
            assert_eq!(cli.default_service_account, None);
        }
    }
    // On, with a ClusterRole of the platform team's: bound instead of the chart's, and more
    // account names the operator may act as.
    let objects = render(
        "tenancy: {releaseClusterRole: edit, defaultServiceAccount: deployer, serviceAccountNames: [ci]}",
    );
    assert_eq!(release_cluster_role(&objects).as_deref(), Some("edit"));
    assert!(
        of_kind(&objects, "ClusterRole")
            .iter()
            .all(|r| r["metadata"]["name"] != format!("upstart-release-{NAMESPACE}"))
    );
    let helm = named(
        &objects,
        "ClusterRole",
        &format!("upstart-helmrelease-operator-{NAMESPACE}"),
    );
    let impersonation = helm["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| strings(&r["verbs"]).contains(&"impersonate".to_owned()))
        .unwrap();
    assert_eq!(
        strings(&impersonation["resourceNames"]),
        ["upstart-release", "deployer", "ci"]
    );
    for deployment in of_kind(&objects, "Deployment") {
        if let (_, Some(cli)) = parse_args(deployment) {
            assert_eq!(cli.default_service_account.as_deref(), Some("deployer"));
        }
    }
}

#[test]
fn credential_secrets_are_readable_by_name_in_the_operator_namespace_only() {
    let objects = render(EVERYTHING_ON);
    let role = named(&objects, "Role", "upstart-helmrelease-operator-credentials");
    assert_eq!(role["metadata"]["namespace"], NAMESPACE);
    let rules = role["rules"].as_sequence().unwrap();
    assert_eq!(rules.len(), 1);
    assert!(covers(&rules[0], "", "secrets"));
    assert_eq!(strings(&rules[0]["verbs"]), ["get"]);
    assert_eq!(
        strings(&rules[0]["resourceNames"]),
        ["registry-pull", "upstart-charts-auth"]
    );
    let binding = named(
        &objects,
        "RoleBinding",
        "upstart-helmrelease-operator-credentials",
    );
    assert_eq!(
        binding["subjects"][0]["name"],
        "upstart-helmrelease-operator"
    );
    // Without credentials configured there is nothing to read.
    let plain = render("{}");
    assert!(of_kind(&plain, "Role").iter().all(|r| {
        !r["metadata"]["name"]
            .as_str()
            .unwrap()
            .ends_with("-credentials")
    }));
    // The environment operator never reads Secrets; the service operator only gets the ones a
    // service exports, by name (it can neither list nor watch them).
    let secret_verbs = |binary: &str| -> BTreeSet<String> {
        ["ClusterRole", "Role"]
            .into_iter()
            .flat_map(|kind| of_kind(&objects, kind))
            .filter(|r| r["metadata"]["labels"]["app.kubernetes.io/name"] == binary)
            .flat_map(|role| role["rules"].as_sequence().unwrap().iter())
            .filter(|rule| covers(rule, "", "secrets"))
            .flat_map(|rule| strings(&rule["verbs"]))
            .collect()
    };
    assert!(secret_verbs("upstart-environment-operator").is_empty());
    assert_eq!(secret_verbs("upstart-service-operator"), set(&["get"]));
}

fn repository_config(objects: &[Value]) -> RepositoryConfig {
    let config_map = named(objects, "ConfigMap", "upstart-operators-repositories");
    let text = config_map["data"]["repositories.yaml"].as_str().unwrap();
    RepositoryConfig::from_yaml(text)
        .unwrap_or_else(|e| panic!("the operator refuses the rendered configuration: {e}\n{text}"))
}

#[test]
fn the_rendered_repository_configuration_is_what_the_helmrelease_operator_reads() {
    assert_eq!(
        repository_config(&render("{}")),
        RepositoryConfig::default(),
        "by default: no repository, unlisted ones refused"
    );

    let config = repository_config(&render(EVERYTHING_ON));
    assert_eq!(
        config.repositories.keys().collect::<Vec<_>>(),
        ["public", "registry", "upstart-charts"]
    );
    let http = &config.repositories["upstart-charts"];
    assert_eq!(http.url, "https://charts.example.com");
    assert_eq!(
        http.credentials_secret.as_deref(),
        Some("upstart-charts-auth")
    );
    let oci = &config.repositories["registry"];
    assert_eq!(oci.kind, Some(RepositoryKind::Oci));
    assert!(oci.plain_http);
    assert_eq!(oci.credentials_secret.as_deref(), Some("registry-pull"));
    assert!(
        oci.ca_bundle
            .as_deref()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----\nMIIB\n")
    );
    assert_eq!(config.repositories["public"].credentials_secret, None);
    assert!(config.allow_unlisted);
    assert_eq!(config.index_ttl.as_secs(), 120);
    // Large integers survive helm (which reads numbers as floats).
    assert_eq!(config.limits.max_index_bytes, 64 << 20);
    assert_eq!(config.limits.max_archive_bytes, 20 << 20);
    assert_eq!(config.limits.max_files, 5000);
    assert_eq!(config.limits.fetch_timeout.as_secs(), 30);
    assert_eq!(
        config.limits.max_unpacked_bytes,
        RepositoryConfig::default().limits.max_unpacked_bytes
    );

    // A change of configuration rolls the operator, which reads it at start.
    let checksum = |objects: &[Value]| {
        named(objects, "Deployment", "upstart-helmrelease-operator")["spec"]["template"]["metadata"]
            ["annotations"]["checksum/repositories"]
            .clone()
    };
    assert_ne!(checksum(&render("{}")), checksum(&render(EVERYTHING_ON)));
}

#[test]
fn values_the_operator_would_refuse_are_refused_at_install() {
    let dir = tempfile::tempdir().unwrap();
    for (values, complaint) in [
        (
            "repositories: {x: {url: https://a.example.com, credentialSecret: s}}",
            "credentialSecret",
        ),
        ("repositories: {x: {kind: oci}}", "url"),
        ("chartLimits: {maxArchiveByte: 1}", "maxArchiveByte"),
        ("logFormat: yaml", "logFormat"),
        (
            "operators: {helmRelease: {rbac: {managedResources: [{apiGroups: [''], resources: ['*'], verbs: [get]}]}}}",
            "resources",
        ),
        (
            "operators: {helmRelease: {rbac: {managedResources: [{apiGroups: [''], resources: [secrets], verbs: ['*']}]}}}",
            "verbs",
        ),
        (
            "operators: {helmRelease: {rbac: {managedResources: [{apiGroups: ['*'], resources: [pods], verbs: [get]}]}}}",
            "apiGroups",
        ),
    ] {
        let file = values_file(dir.path(), values);
        let chart = chart_dir();
        let (ok, _, stderr) = run_helm(&[
            "template",
            RELEASE,
            chart.to_str().unwrap(),
            "--values",
            file.to_str().unwrap(),
        ]);
        assert!(!ok, "accepted: {values}");
        assert!(stderr.contains(complaint), "{values}: {stderr}");
    }
}

#[test]
fn monitoring_objects_are_off_by_default() {
    let objects = render("{}");
    for kind in ["ServiceMonitor", "PrometheusRule", "Namespace"] {
        assert!(
            of_kind(&objects, kind).is_empty(),
            "{kind} rendered by default"
        );
    }
    assert!(
        of_kind(&objects, "ConfigMap")
            .iter()
            .all(|c| c["metadata"]["labels"]["grafana_dashboard"].is_null())
    );
    assert_eq!(of_kind(&objects, "Service").len(), 3);
}

#[test]
fn monitoring_objects_without_the_prometheus_operator_fail_naming_the_crds_and_the_values() {
    for (values, served, kinds, settings) in [
        (
            "metrics: {serviceMonitor: {enabled: true}}",
            &[][..],
            &["ServiceMonitor"][..],
            &["metrics.serviceMonitor.enabled=false"][..],
        ),
        (
            "alerts: {enabled: true}",
            &[PROMETHEUS_OPERATOR_KINDS[0]][..],
            &["PrometheusRule"][..],
            &["alerts.enabled=false"][..],
        ),
        (
            "{metrics: {serviceMonitor: {enabled: true}}, alerts: {enabled: true}}",
            &[][..],
            &["ServiceMonitor", "PrometheusRule"][..],
            &[
                "metrics.serviceMonitor.enabled=false",
                "alerts.enabled=false",
            ][..],
        ),
    ] {
        let error = try_render(NAMESPACE, values, served)
            .err()
            .unwrap_or_else(|| panic!("{values}: rendered without the Prometheus Operator CRDs"));
        assert!(
            error.contains("the cluster does not serve the Prometheus Operator kinds these values ask for: monitoring.coreos.com/v1 "),
            "{values}: {error}"
        );
        for (kind, setting) in kinds.iter().zip(settings) {
            // The kind, with the value that asks for it.
            let asked = format!("{kind} ({}=true)", setting.trim_end_matches("=false"));
            assert!(
                error.contains(&asked),
                "{values}: {asked} not named: {error}"
            );
            assert!(
                error.contains(&format!("--api-versions monitoring.coreos.com/v1/{kind}")),
                "{values}: {error}"
            );
        }
        for setting in settings {
            assert!(
                error.contains(setting),
                "{values}: {setting} not named: {error}"
            );
        }
        // A kind the cluster serves is not blamed.
        for served in served {
            let kind = served.rsplit('/').next().unwrap();
            assert!(!error.contains(&format!("{kind} (")), "{values}: {error}");
        }
        // With the CRDs, the same values render.
        let objects = try_render(NAMESPACE, values, &PROMETHEUS_OPERATOR_KINDS).unwrap();
        for kind in kinds {
            assert!(!of_kind(&objects, kind).is_empty(), "{values}: no {kind}");
        }
    }
    // The defaults need no Prometheus Operator.
    try_render(NAMESPACE, "{}", &[]).unwrap();
}

#[test]
fn alert_rules_and_service_monitors_carry_the_labels_prometheus_selects() {
    let objects = render(
        "{metrics: {serviceMonitor: {enabled: true, labels: {release: kube-prometheus-stack}}}, \
         alerts: {enabled: true, labels: {release: kube-prometheus-stack, team: platform}}}",
    );
    let rule = named(&objects, "PrometheusRule", "upstart-operators");
    assert_eq!(
        rule["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    assert_eq!(rule["metadata"]["labels"]["team"], "platform");
    assert_eq!(
        rule["metadata"]["labels"]["app.kubernetes.io/name"], "upstart-operators",
        "the chart's own labels stay"
    );
    let monitors = of_kind(&objects, "ServiceMonitor");
    assert_eq!(monitors.len(), 3);
    for monitor in monitors {
        assert_eq!(
            monitor["metadata"]["labels"]["release"],
            "kube-prometheus-stack"
        );
    }
    // Label values are strings, as Kubernetes requires: a number is refused at install.
    let error = try_render(
        NAMESPACE,
        "alerts: {enabled: true, labels: {release: 1}}",
        &PROMETHEUS_OPERATOR_KINDS,
    )
    .unwrap_err();
    assert!(error.contains("/alerts/labels/release"), "{error}");
}

/// The expression of the no-leader alert.
fn no_leader_expr(objects: &[Value]) -> String {
    let rule = named(objects, "PrometheusRule", "upstart-operators");
    rule["spec"]["groups"][0]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| r["alert"] == "UpstartOperatorWithoutLeader")
        .expect("the no-leader alert")["expr"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn the_no_leader_alert_also_fires_when_no_replica_runs() {
    // Scraped by the chart's ServiceMonitors, whose job label is the metrics Service's name:
    // each enabled operator's missing series are found by name, even if it never started.
    let objects = render(
        "{metrics: {serviceMonitor: {enabled: true}}, alerts: {enabled: true}, \
         operators: {service: {enabled: false}}}",
    );
    let expr = no_leader_expr(&objects);
    assert_valid_promql(&expr, "UpstartOperatorWithoutLeader");
    assert!(
        expr.starts_with("max by (namespace, job) (upstart_leader) < 1 or "),
        "standing-by replicas still fire it: {expr}"
    );
    for binary in [
        "upstart-helmrelease-operator",
        "upstart-environment-operator",
    ] {
        let absent = format!(
            "absent(upstart_leader{{namespace=\"{NAMESPACE}\", job=\"{binary}-metrics\"}})"
        );
        assert!(expr.contains(&absent), "{absent} missing from {expr}");
        named(&objects, "Service", &format!("{binary}-metrics"));
    }
    assert!(
        !expr.contains("upstart-service-operator"),
        "a disabled operator is not missed: {expr}"
    );

    // Scraped some other way (job names unknown): series seen within a day and gone now.
    let objects = render("alerts: {enabled: true}");
    let expr = no_leader_expr(&objects);
    assert_valid_promql(&expr, "UpstartOperatorWithoutLeader");
    assert!(!expr.contains("absent("), "{expr}");
    assert!(
        expr.contains(
            "max by (namespace, job) (max_over_time(upstart_leader[1d])) unless max by (namespace, job) (upstart_leader)"
        ),
        "{expr}"
    );

    // Without leader election there is no Lease and no alert about it.
    let objects = render("{alerts: {enabled: true}, leaderElection: {enabled: false}}");
    let rule = named(&objects, "PrometheusRule", "upstart-operators");
    assert!(
        !serde_yaml_ng::to_string(rule)
            .unwrap()
            .contains("UpstartOperatorWithoutLeader")
    );
}

#[test]
fn helm_template_renders_the_catalog_namespace_it_cannot_look_up() {
    let objects = render("catalog: {create: true, namespace: team-catalog}");
    let namespace = named(&objects, "Namespace", "team-catalog");
    assert_eq!(
        namespace["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    assert!(of_kind(&render("{}"), "Namespace").is_empty());
}

/// The verbs of a user-facing ClusterRole on `resource` of Upstart's group.
fn user_role<'a>(objects: &'a [Value], role: &str) -> &'a Value {
    named(
        objects,
        "ClusterRole",
        &format!("upstart-{role}-{NAMESPACE}"),
    )
}

#[test]
fn user_facing_cluster_roles_grant_what_each_role_needs_and_aggregate_to_the_built_in_roles() {
    let objects = render("{}");
    let read = set(&["get", "list", "watch"]);
    let write = set(&[
        "get", "list", "watch", "create", "update", "patch", "delete",
    ]);
    let aggregation = |role: &Value| -> BTreeSet<String> {
        role["metadata"]["labels"]
            .as_mapping()
            .unwrap()
            .iter()
            .filter(|(_, v)| *v == "true")
            .filter_map(|(k, _)| {
                k.as_str()?
                    .strip_prefix("rbac.authorization.k8s.io/aggregate-to-")
                    .map(str::to_owned)
            })
            .collect()
    };

    let requester = user_role(&objects, "environment-requester");
    assert_eq!(verbs(requester, GROUP, "upstartenvironments"), write);
    assert_eq!(verbs(requester, GROUP, "upstartservices"), read);
    assert_eq!(verbs(requester, GROUP, "helmreleases"), read);
    // UpstartEnvironments are cluster-scoped: `edit`, bound per namespace, would give nothing.
    assert!(aggregation(requester).is_empty());

    let author = user_role(&objects, "catalog-author");
    assert_eq!(verbs(author, GROUP, "upstartservices"), write);
    assert_eq!(verbs(author, GROUP, "helmreleases"), read);
    assert!(verbs(author, GROUP, "upstartenvironments").is_empty());
    assert_eq!(aggregation(author), set(&["admin", "edit"]));

    let viewer = user_role(&objects, "viewer");
    for resource in ["upstartenvironments", "upstartservices", "helmreleases"] {
        assert_eq!(verbs(viewer, GROUP, resource), read, "{resource}");
    }
    assert_eq!(aggregation(viewer), set(&["view"]));

    for role in [requester, author, viewer] {
        for rule in role["rules"].as_sequence().unwrap() {
            assert_eq!(strings(&rule["apiGroups"]), [GROUP], "Upstart's kinds only");
        }
        assert_eq!(
            role["metadata"]["labels"]["app.kubernetes.io/component"],
            "user-role"
        );
    }
    // Nobody is bound by the chart: the bindings are the cluster's access policy.
    for binding in of_kind(&objects, "ClusterRoleBinding")
        .into_iter()
        .chain(of_kind(&objects, "RoleBinding"))
    {
        assert_eq!(binding["subjects"][0]["kind"], "ServiceAccount");
    }

    let unaggregated = render("userRoles: {aggregate: false}");
    for role in ["environment-requester", "catalog-author", "viewer"] {
        assert!(
            aggregation(user_role(&unaggregated, role)).is_empty(),
            "{role}"
        );
    }
    let off = render("userRoles: {enabled: false}");
    assert_eq!(
        of_kind(&off, "ClusterRole").len(),
        4,
        "the operators' and the releases' only"
    );
    let prefixed = render("namePrefix: blue-");
    named(
        &prefixed,
        "ClusterRole",
        &format!("blue-upstart-viewer-{NAMESPACE}"),
    );
}

/// The metric names the operators register: the string literals `"upstart_…"` in their code.
fn registered_metrics() -> BTreeSet<String> {
    let root = upstart_test_support::workspace_root();
    let mut names = BTreeSet::new();
    let mut dirs = vec![root.join("crates/operator-runtime/src")];
    for entry in std::fs::read_dir(root.join("operators")).unwrap() {
        dirs.push(entry.unwrap().path().join("src"));
    }
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for piece in text.split('"').skip(1).step_by(2) {
                    if piece.starts_with("upstart_")
                        && piece.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    {
                        names.insert(piece.to_owned());
                    }
                }
            }
        }
    }
    names
}

/// Parses `expr` as Prometheus would.
fn assert_valid_promql(expr: &str, origin: &str) {
    if let Err(error) = promql_parser::parser::parse(expr) {
        panic!("{origin}: invalid PromQL {expr:?}: {error}");
    }
}

/// The metric names a PromQL expression reads (`_bucket` series belong to their histogram).
fn metrics_in(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(start) = rest.find("upstart_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        names.insert(name.strip_suffix("_bucket").unwrap_or(name).to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_dashboard_and_the_alerts_read_metrics_the_operators_register() {
    let objects = render(EVERYTHING_ON);
    assert_eq!(of_kind(&objects, "ServiceMonitor").len(), 3);
    for monitor in of_kind(&objects, "ServiceMonitor") {
        assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
        assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
        let selected = &monitor["spec"]["selector"]["matchLabels"];
        assert!(
            of_kind(&objects, "Service")
                .iter()
                .any(|s| s["spec"]["selector"] == *selected),
            "a ServiceMonitor selects a metrics Service"
        );
    }
    named(&objects, "Namespace", "upstart-catalog");

    let dashboard = of_kind(&objects, "ConfigMap")
        .into_iter()
        .find(|c| c["metadata"]["labels"]["grafana_dashboard"] == "1")
        .expect("the dashboard ConfigMap carries the Grafana sidecar label");
    let json: serde_json::Value = serde_json::from_str(
        dashboard["data"]["upstart-operators.json"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let panels = json["panels"].as_array().unwrap();
    let titles: BTreeSet<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for wanted in [
        "Reconciles per second",
        "Reconcile errors by reason",
        "Reconcile duration",
        "HelmReleases by phase",
        "Environments by phase",
        "Environment time to ready",
        "Dependency hand-off latency",
    ] {
        assert!(titles.contains(wanted), "panel {wanted}: {titles:?}");
    }
    let mut used = BTreeSet::new();
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            // Grafana replaces its variables before Prometheus sees the query.
            let query = expr
                .replace("$__rate_interval", "5m")
                .replace("$namespace", "upstart-system");
            assert_valid_promql(&query, panel["title"].as_str().unwrap());
            used.extend(metrics_in(expr));
        }
    }
    let rule = of_kind(&objects, "PrometheusRule")[0];
    let mut alerts = Vec::new();
    for group in rule["spec"]["groups"].as_sequence().unwrap() {
        for alert in group["rules"].as_sequence().unwrap() {
            let name = alert["alert"].as_str().unwrap();
            let expr = alert["expr"].as_str().unwrap();
            assert_valid_promql(expr, name);
            alerts.push(name.to_owned());
            used.extend(metrics_in(expr));
        }
    }
    assert!(alerts.contains(&"UpstartReconcileErrors".to_owned()));
    assert!(alerts.contains(&"UpstartEnvironmentsStuckProvisioning".to_owned()));
    for name in [
        "upstart_reconciles_total",
        "upstart_reconcile_errors_total",
        "upstart_reconcile_duration_seconds",
        "upstart_helmreleases",
        "upstart_environments",
        "upstart_environment_time_to_ready_seconds",
        "upstart_dependency_handoff_seconds",
    ] {
        assert!(used.contains(name), "{name} is charted");
    }
    let registered = registered_metrics();
    let unknown: Vec<&String> = used.difference(&registered).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard or the alerts read metrics no operator registers: {unknown:?}"
    );
}

#[test]
fn installations_in_two_namespaces_do_not_collide_on_cluster_scoped_names() {
    let cluster_scoped = |objects: &[Value]| -> BTreeSet<String> {
        objects
            .iter()
            .filter(|o| o["metadata"]["namespace"].is_null())
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    let a = cluster_scoped(&render_in("shard-a", "{}"));
    let b = cluster_scoped(&render_in("shard-b", "{}"));
    assert_eq!(
        a.len(),
        10,
        "three operators' ClusterRoles and their bindings, the releases' and three user-facing ClusterRoles: {a:?}"
    );
    assert!(a.is_disjoint(&b), "{a:?} and {b:?} collide");
}

/// Reads `object` as the Kubernetes type `K` and writes it back: a field the type does not
/// know (a misspelt key) or a value of the wrong shape is lost or refused on the way, and the
/// round trip differs.
fn round_trips_as<K>(object: &Value) -> Result<(), String>
where
    K: k8s_openapi::serde::de::DeserializeOwned + k8s_openapi::serde::Serialize,
{
    let original: serde_json::Value = serde_json::to_value(object).map_err(|e| e.to_string())?;
    let typed: K = serde_json::from_value(original.clone()).map_err(|e| e.to_string())?;
    let again = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    if again == original {
        Ok(())
    } else {
        Err(format!(
            "fields lost or changed:\n  rendered {original}\n  typed    {again}"
        ))
    }
}

#[test]
fn every_built_in_object_the_chart_renders_is_a_valid_kubernetes_object() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};

    let mut seen = BTreeSet::new();
    for values in ["{}", EVERYTHING_ON] {
        for object in render(values) {
            let kind = object["kind"].as_str().unwrap().to_owned();
            let checked = match kind.as_str() {
                "Deployment" => round_trips_as::<Deployment>(&object),
                "Service" => round_trips_as::<Service>(&object),
                "ServiceAccount" => round_trips_as::<ServiceAccount>(&object),
                "ConfigMap" => round_trips_as::<ConfigMap>(&object),
                "Namespace" => round_trips_as::<Namespace>(&object),
                "ClusterRole" => round_trips_as::<ClusterRole>(&object),
                "ClusterRoleBinding" => round_trips_as::<ClusterRoleBinding>(&object),
                "Role" => round_trips_as::<Role>(&object),
                "RoleBinding" => round_trips_as::<RoleBinding>(&object),
                // Prometheus Operator kinds: no types here; their shape is checked above.
                "ServiceMonitor" | "PrometheusRule" => Ok(()),
                other => Err(format!("unexpected kind {other}")),
            };
            if let Err(problem) = checked {
                panic!(
                    "{kind} {}: {problem}",
                    object["metadata"]["name"].as_str().unwrap()
                );
            }
            seen.insert(kind);
        }
    }
    assert_eq!(
        seen.len(),
        11,
        "every kind the chart renders was checked: {seen:?}"
    );
}

/// The Kubernetes kinds an operator's code makes an `Api` for, and the ones it watches besides
/// its primary kind: `Api<K>`, `Api::<K>` and `op.api::<K>()` in its sources.
fn kinds_in_code(operator_dir: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let dir = upstart_test_support::workspace_root()
        .join("operators")
        .join(operator_dir)
        .join("src");
    let mut used = BTreeSet::new();
    let mut watched = BTreeSet::new();
    let kind_after = |text: &str| -> Option<String> {
        let end = text.find('>')?;
        let kind = &text[..end];
        kind.chars()
            .all(|c| c.is_ascii_alphanumeric())
            .then(|| kind.to_owned())
    };
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for marker in ["Api<", "Api::<", "api::<"] {
            for (at, _) in text.match_indices(marker) {
                if let Some(kind) = kind_after(&text[at + marker.len()..]) {
                    used.insert(kind);
                }
            }
        }
        for (at, _) in text.match_indices(".watches(") {
            let window = &text[at..(at + 200).min(text.len())];
            if let Some(start) = window.find("::<")
                && let Some(kind) = kind_after(&window[start + 3..])
            {
                watched.insert(kind);
            }
        }
    }
    (used, watched)
}

/// The API group and resource of a kind the operators use.
fn resource_of(kind: &str) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        "HelmRelease" => (GROUP, "helmreleases"),
        "UpstartService" => (GROUP, "upstartservices"),
        "UpstartEnvironment" => (GROUP, "upstartenvironments"),
        "Secret" => ("", "secrets"),
        "ConfigMap" => ("", "configmaps"),
        "Namespace" => ("", "namespaces"),
        "Pod" => ("", "pods"),
        "Service" => ("", "services"),
        "ServiceAccount" => ("", "serviceaccounts"),
        "ResourceQuota" => ("", "resourcequotas"),
        "LimitRange" => ("", "limitranges"),
        "RoleBinding" => ("rbac.authorization.k8s.io", "rolebindings"),
        "Deployment" => ("apps", "deployments"),
        "StatefulSet" => ("apps", "statefulsets"),
        "DaemonSet" => ("apps", "daemonsets"),
        "Job" => ("batch", "jobs"),
        "CustomResourceDefinition" => ("apiextensions.k8s.io", "customresourcedefinitions"),
        _ => return None,
    })
}

/// Keeps the chart's RBAC in step with the code: an operator that starts reading or watching
/// a kind its ClusterRole does not grant would only fail in a cluster, with Forbidden.
#[test]
fn every_kind_an_operator_reads_or_watches_is_granted_by_its_cluster_role() {
    let objects = render("{}");
    for (dir, binary) in [
        ("helmrelease", "upstart-helmrelease-operator"),
        ("upstartservice", "upstart-service-operator"),
        ("upstartenvironment", "upstart-environment-operator"),
    ] {
        let role = named(&objects, "ClusterRole", &format!("{binary}-{NAMESPACE}"));
        let (used, watched) = kinds_in_code(dir);
        assert!(!used.is_empty(), "{dir}: no Api<K> found in the sources");
        for kind in &used {
            // Dynamic objects are the chart objects (rbac.managedResources); `K` is generic.
            if kind == "DynamicObject" || kind == "K" {
                continue;
            }
            let (group, resource) = resource_of(kind).unwrap_or_else(|| {
                panic!("{dir} uses {kind}: add it to resource_of and to the chart's RBAC")
            });
            let granted = verbs(role, group, resource);
            assert!(
                granted.contains("get"),
                "{binary} reads {kind} but its ClusterRole lacks get on {resource}: {granted:?}"
            );
            if watched.contains(kind) {
                assert!(
                    granted.is_superset(&set(&["list", "watch"])),
                    "{binary} watches {kind} but its ClusterRole lacks list/watch on {resource}"
                );
            }
        }
    }
}

/// Runs helm against the cluster of `kubeconfig`.
async fn helm_on_cluster(kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    let home = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(upstart_test_support::helm())
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .output()
        .await
        .expect("helm runs");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_upgrades_and_uninstalls_the_chart_on_an_api_server() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, ListParams};

    let control_plane =
        upstart_control_plane::ControlPlane::start(upstart_control_plane::Options::default());
    let endpoint = control_plane
        .serve_https("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    endpoint.write_kubeconfig(&kubeconfig).unwrap();
    // Everything but the Prometheus Operator kinds, whose CRDs this cluster does not have.
    let values = values_file(
        dir.path(),
        &EVERYTHING_ON
            .replace(
                "serviceMonitor:\n    enabled: true",
                "serviceMonitor:\n    enabled: false",
            )
            .replace("alerts:\n  enabled: true", "alerts:\n  enabled: false"),
    );
    let chart = chart_dir();
    let (ok, output) = helm_on_cluster(
        &kubeconfig,
        &[
            "install",
            RELEASE,
            chart.to_str().unwrap(),
            "--namespace",
            NAMESPACE,
            "--create-namespace",
            "--values",
            values.to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok, "helm install failed:\n{output}");

    let client = control_plane.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut crd_names: Vec<String> = crds
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    crd_names.sort();
    assert_eq!(
        crd_names,
        [
            "helmreleases.upstartoperators.upstart.com",
            "upstartenvironments.upstartoperators.upstart.com",
            "upstartservices.upstartoperators.upstart.com"
        ]
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let mut names: Vec<String> = deployments
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|d| d.metadata.name)
        .collect();
    names.sort();
    let mut expected = OPERATORS.map(str::to_owned).to_vec();
    expected.sort();
    assert_eq!(names, expected);
    let cluster_roles: Api<ClusterRole> = Api::all(client.clone());
    for binary in OPERATORS {
        cluster_roles
            .get(&format!("{binary}-{NAMESPACE}"))
            .await
            .unwrap();
    }
    let roles: Api<Role> = Api::namespaced(client.clone(), NAMESPACE);
    roles
        .get("upstart-helmrelease-operator-credentials")
        .await
        .unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let stored = config_maps
        .get("upstart-operators-repositories")
        .await
        .unwrap();
    let text = &stored.data.unwrap()["repositories.yaml"];
    assert_eq!(
        RepositoryConfig::from_yaml(text)
            .unwrap()
            .repositories
            .len(),
        3
    );

    // An upgrade that turns a repository off rolls the HelmRelease operator's pods.
    let checksum = |d: &Deployment| {
        d.spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()["checksum/repositories"]
            .clone()
    };
    let before = checksum(
        &deployments
            .get("upstart-helmrelease-operator")
            .await
            .unwrap(),
    );
    let (ok, output) = helm_on_cluster(
        &kubeconfig,
        &[
            "upgrade",
            RELEASE,
            chart.to_str().unwrap(),
            "--namespace",
            NAMESPACE,
            "--reuse-values",
            "--set",
            "allowUnlisted=false",
        ],
    )
    .await;
    assert!(ok, "helm upgrade failed:\n{output}");
    // The catalog namespace this release created is still its own after the upgrade.
    let (ok, manifest) = helm_on_cluster(
        &kubeconfig,
        &["get", "manifest", RELEASE, "--namespace", NAMESPACE],
    )
    .await;
    assert!(ok, "helm get manifest failed:\n{manifest}");
    assert!(
        manifest.contains("kind: Namespace\nmetadata:\n  name: upstart-catalog"),
        "{manifest}"
    );
    let after = checksum(
        &deployments
            .get("upstart-helmrelease-operator")
            .await
            .unwrap(),
    );
    assert_ne!(before, after);

    let (ok, output) = helm_on_cluster(
        &kubeconfig,
        // --keep-history: purging the release record deletes Secrets with a protobuf
        // DeleteOptions body, which the local control plane does not decode.
        &[
            "uninstall",
            RELEASE,
            "--namespace",
            NAMESPACE,
            "--keep-history",
        ],
    )
    .await;
    assert!(ok, "helm uninstall failed:\n{output}");
    assert!(
        deployments
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // Helm never deletes what it installed from crds/: the custom resources survive.
    assert_eq!(
        crds.list(&ListParams::default()).await.unwrap().items.len(),
        3
    );
    control_plane.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_keeps_an_existing_catalog_namespace_and_refuses_monitoring_without_its_crds()
{
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, PostParams};

    let control_plane =
        upstart_control_plane::ControlPlane::start(upstart_control_plane::Options::default());
    let endpoint = control_plane
        .serve_https("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    endpoint.write_kubeconfig(&kubeconfig).unwrap();
    let chart = chart_dir();
    let install = |values: &str| {
        let file = dir.path().join(format!("{}.yaml", values.len()));
        std::fs::write(&file, values).unwrap();
        let kubeconfig = kubeconfig.clone();
        let chart = chart.clone();
        async move {
            helm_on_cluster(
                &kubeconfig,
                &[
                    "install",
                    RELEASE,
                    chart.to_str().unwrap(),
                    "--namespace",
                    NAMESPACE,
                    "--create-namespace",
                    "--values",
                    file.to_str().unwrap(),
                ],
            )
            .await
        }
    };

    // This API server serves no monitoring.coreos.com kinds: refused before anything is made.
    let (ok, output) =
        install("{alerts: {enabled: true}, metrics: {serviceMonitor: {enabled: true}}}").await;
    assert!(
        !ok,
        "installed without the Prometheus Operator CRDs:\n{output}"
    );
    for named in [
        "monitoring.coreos.com/v1",
        "ServiceMonitor (metrics.serviceMonitor.enabled=true)",
        "PrometheusRule (alerts.enabled=true)",
        "--set alerts.enabled=false,metrics.serviceMonitor.enabled=false",
    ] {
        assert!(output.contains(named), "{named} not in:\n{output}");
    }

    // A catalog namespace made before (by hand, by another tool) is left as it is.
    let namespaces: Api<Namespace> = Api::all(control_plane.client());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "upstart-catalog", "labels": {"team": "platform"}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let (ok, output) = install("catalog: {create: true}").await;
    assert!(
        ok,
        "helm install with an existing catalog namespace failed:\n{output}"
    );
    let catalog = namespaces.get("upstart-catalog").await.unwrap();
    assert_eq!(catalog.metadata.labels.unwrap()["team"], "platform");
    assert!(
        catalog
            .metadata
            .annotations
            .unwrap_or_default()
            .keys()
            .all(|k| !k.starts_with("meta.helm.sh/")),
        "helm adopted a namespace it did not create"
    );
    let (ok, output) = helm_on_cluster(
        &kubeconfig,
        &[
            "upgrade",
            RELEASE,
            chart.to_str().unwrap(),
            "--namespace",
            NAMESPACE,
            "--reuse-values",
        ],
    )
    .await;
    assert!(ok, "helm upgrade failed:\n{output}");
    control_plane.shutdown();
}

/// Where the platform guide's table of the operators' rights starts and ends.
const RBAC_TABLE_START: &str = "<!-- rbac-table: generated from `helm template charts/upstart-operators` by crates/chart-repo/tests/operator_chart.rs; UPSTART_REGENERATE_DOCS=1 rewrites it -->";
const RBAC_TABLE_END: &str = "<!-- end rbac-table -->";

/// The rules of the operators' Roles and ClusterRoles as rendered, one Markdown row per rule:
/// operator, where the rule is granted, API group (or non-resource URLs), resources, names,
/// verbs.
fn rbac_table(objects: &[Value]) -> String {
    let label = |name: &str| {
        [
            ("upstart-helmrelease-operator", "HelmRelease"),
            ("upstart-service-operator", "UpstartService"),
            ("upstart-environment-operator", "UpstartEnvironment"),
            ("upstart-release", "Releases (their ServiceAccount)"),
        ]
        .into_iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map(|(_, label)| label)
    };
    let list = |value: &Value| {
        strings(value)
            .iter()
            .map(|s| {
                if s.is_empty() {
                    "`\"\"`".to_string()
                } else {
                    format!("`{s}`")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut rows = vec![
        "| Operator | Granted by | API group | Resources | Names | Verbs |".to_string(),
        "|---|---|---|---|---|---|".to_string(),
    ];
    for kind in ["ClusterRole", "Role"] {
        for role in of_kind(objects, kind) {
            let name = role["metadata"]["name"].as_str().unwrap();
            let Some(operator) = label(name) else {
                continue;
            };
            let granted = format!("{kind} `{name}`");
            for rule in role["rules"].as_sequence().unwrap() {
                let (group, resources) = if rule["nonResourceURLs"].is_sequence() {
                    (
                        "(non-resource URLs)".to_string(),
                        list(&rule["nonResourceURLs"]),
                    )
                } else {
                    (list(&rule["apiGroups"]), list(&rule["resources"]))
                };
                rows.push(format!(
                    "| {operator} | {granted} | {group} | {resources} | {} | {} |",
                    list(&rule["resourceNames"]),
                    strings(&rule["verbs"]).join(", ")
                ));
            }
        }
    }
    rows.join("\n")
}

#[test]
fn the_platform_guides_rbac_table_is_the_charts_rules() {
    // Defaults, plus a credential Secret so that the credentials Role is rendered too.
    let objects = render(
        "repositories:\n  upstart-charts:\n    url: https://charts.example.com\n    credentialsSecret: upstart-charts-auth\n",
    );
    let table = rbac_table(&objects);
    let guide_path = upstart_test_support::workspace_root().join("docs/guides/platform-team.md");
    let guide = std::fs::read_to_string(&guide_path).unwrap();
    let start = guide
        .find(RBAC_TABLE_START)
        .expect("the platform guide has the rbac-table start marker")
        + RBAC_TABLE_START.len();
    let end = guide[start..]
        .find(RBAC_TABLE_END)
        .expect("the platform guide has the rbac-table end marker")
        + start;
    let generated = format!("\n{table}\n");
    if std::env::var_os("UPSTART_REGENERATE_DOCS").is_some_and(|v| !v.is_empty()) {
        let updated = format!("{}{generated}{}", &guide[..start], &guide[end..]);
        std::fs::write(&guide_path, updated).unwrap();
        return;
    }
    assert!(
        guide[start..end] == generated,
        "docs/guides/platform-team.md's RBAC table differs from the chart's rules: run this test with UPSTART_REGENERATE_DOCS=1 to rewrite it.\nGenerated:\n{table}"
    );
}
