//! The platform team's metrics on a real Prometheus (issue 20): the three operators run in
//! process with their `/metrics` servers on loopback (as `run_operator` starts them in a pod,
//! leader election included), Debian's `prometheus` scrapes them every second while the example
//! environment comes up and expires, and every PromQL expression of the chart's Grafana
//! dashboard and PrometheusRule is evaluated against it. The chart is rendered with the pinned
//! helm, so a new panel or alert is checked without touching this test. `promtool check rules`
//! and `promtool test rules` (the hand-written series of `e2e/prometheus/*.test.yaml`) run on
//! the rendered rules too.
//!
//! Local cluster only: the operators whose metrics are scraped are the ones this test starts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use upstart_api::v1alpha1::{EnvironmentPhase, UpstartEnvironment};
use upstart_e2e::{Check, TestEnv};
use upstart_local_cluster::{
    CREDENTIALS_NAMESPACE, Operator, OperatorContext, OperatorSet, StopSignal,
};
use upstart_operator_runtime::{CommonArgs, RunOptions, Shutdown};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const TIMEOUT: Duration = Duration::from_secs(60);
const ENVIRONMENT: &str = "my-environment-name";
/// The release namespace the chart is rendered for: the ServiceMonitors' targets carry it as
/// their `namespace` label, and the rules name it.
const RELEASE_NAMESPACE: &str = "upstart-system";
/// Where the operators keep their Leases here (a namespace the control plane starts with).
const LEASE_NAMESPACE: &str = "default";
/// Stands for Grafana's `$__rate_interval` and `$__interval`: long enough to cover the whole
/// run, so that the histograms observed once (time to ready) have a rate.
const RATE_INTERVAL: &str = "5m";

/// Expressions allowed to return no series on a healthy run, each with why. A dashboard query
/// is named `dashboard: PANEL TITLE`, an alert `alert: NAME`; the list must match exactly.
const EMPTY_WHEN_HEALTHY: &[(&str, &str)] = &[
    (
        "dashboard: Reconcile errors by reason",
        "upstart_reconcile_errors_total has a series only once a reconcile failed",
    ),
    (
        "alert: UpstartReconcileErrors",
        "fires only above alerts.reconcileErrorRate failed reconciles per second",
    ),
    (
        "alert: UpstartHelmReleasesFailed",
        "fires only when some HelmRelease is Failed",
    ),
    (
        "alert: UpstartEnvironmentsStuckProvisioning",
        "fires only when an environment is Provisioning (empty once it is Ready or gone)",
    ),
    (
        "alert: UpstartOperatorWithoutLeader",
        "fires only when an operator has no leader or no upstart_leader series",
    ),
];

/// Selectors inside alert expressions allowed to match nothing on a healthy run.
const SELECTORS_EMPTY_WHEN_HEALTHY: &[(&str, &str)] = &[(
    "upstart_reconcile_errors_total",
    "has a series only once a reconcile failed",
)];

/// A free loopback port: bound, read and released (the operators and Prometheus bind it again
/// right after).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs an operator's work as its binary does (`run_operator`): the `/metrics` server on
/// `addr` and leader election on a Lease, stopped by the cluster's `stop`.
async fn run_served<F, Fut, E>(
    name: &'static str,
    addr: SocketAddr,
    ctx: OperatorContext,
    stop: StopSignal,
    work: F,
) -> Result<(), BoxError>
where
    F: FnOnce(upstart_operator_runtime::OperatorContext, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<BoxError>,
{
    let args = CommonArgs {
        catalog_namespace: ctx.catalog_namespace.clone(),
        metrics_addr: addr,
        leader_elect: true,
        leader_election_namespace: Some(LEASE_NAMESPACE.to_owned()),
        ..CommonArgs::default()
    };
    let op = upstart_operator_runtime::OperatorContext::new(name, ctx.client, args);
    let options = RunOptions::from_context(&op);
    let shutdown = Shutdown::new();
    let trigger = shutdown.clone();
    let relay = tokio::spawn(async move {
        stop.requested().await;
        trigger.trigger();
    });
    let result = upstart_operator_runtime::run(op, options, shutdown, work).await;
    relay.abort();
    result.map_err(Into::into)
}

/// The three operators, configured as `OperatorSet::all` configures them, each serving its
/// metrics on the address given for its binary name.
fn served_operators(addrs: &BTreeMap<&'static str, SocketAddr>) -> OperatorSet {
    let helmrelease = addrs["upstart-helmrelease-operator"];
    let service = addrs["upstart-service-operator"];
    let environment = addrs["upstart-environment-operator"];
    OperatorSet::none()
        .with(Operator::new(
            "helmrelease",
            &["HelmRelease"],
            move |ctx: OperatorContext, stop: StopSignal| async move {
                use upstart_helmrelease_operator::controller;
                let config = controller::Config {
                    helm_path: ctx.helm()?,
                    repositories: ctx.repository_config(),
                    credentials_namespace: Some(CREDENTIALS_NAMESPACE.to_owned()),
                    cache_dir: ctx.work_dir.join("helmrelease-charts"),
                    cluster_scoped_allow_list: ctx.cluster_scoped_allow_list.clone(),
                    ..controller::Config::default()
                };
                run_served(
                    "upstart-helmrelease-operator",
                    helmrelease,
                    ctx,
                    stop,
                    |op, shutdown| controller::run(op, config, shutdown),
                )
                .await
            },
        ))
        .with(Operator::new(
            "upstartservice",
            &["UpstartService"],
            move |ctx: OperatorContext, stop: StopSignal| async move {
                use upstart_service_operator::controller;
                #[allow(
                    clippy::needless_update,
                    reason = "settings the operator adds later keep their defaults"
                )]
                let config = controller::Config {
                    catalog_namespace: ctx.catalog_namespace.clone(),
                    ..controller::Config::default()
                };
                run_served(
                    "upstart-service-operator",
                    service,
                    ctx,
                    stop,
                    |op, shutdown| controller::run(op, config, shutdown),
                )
                .await
            },
        ))
        .with(Operator::new(
            "upstartenvironment",
            &["UpstartEnvironment"],
            move |ctx: OperatorContext, stop: StopSignal| async move {
                use upstart_environment_operator::controller;
                let config = controller::Config {
                    catalog_namespace: ctx.catalog_namespace.clone(),
                    ..controller::Config::default()
                };
                run_served(
                    "upstart-environment-operator",
                    environment,
                    ctx,
                    stop,
                    |op, shutdown| controller::run(op, config, shutdown),
                )
                .await
            },
        ))
}

/// `NAME` from `/usr/bin` or PATH, or a failure saying how to get it.
fn prometheus_tool(name: &str) -> PathBuf {
    let system = Path::new("/usr/bin").join(name);
    if system.is_file() {
        return system;
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "{name} is needed for the Prometheus e2e: run scripts/bootstrap-tools as root (it \
                 runs `apt-get install -y prometheus`, which brings promtool), or install \
                 Debian's prometheus package"
            )
        })
}

/// The chart `charts/upstart-operators` rendered with the pinned helm, with the dashboard,
/// the alerts and (when `service_monitors`) the ServiceMonitors on: its documents.
fn render_chart(service_monitors: bool) -> Vec<Value> {
    let helm = upstart_local_cluster::locate_helm()
        .expect("helm: run scripts/bootstrap-tools, or set UPSTART_HELM");
    let chart = TestEnv::workspace_path("charts/upstart-operators");
    let output = Command::new(helm)
        .args(["template", "upstart"])
        .arg(&chart)
        .args(["--namespace", RELEASE_NAMESPACE])
        .args(["--set", "alerts.enabled=true,dashboard.enabled=true"])
        .arg("--set")
        .arg(format!("metrics.serviceMonitor.enabled={service_monitors}"))
        .args([
            "--api-versions",
            "monitoring.coreos.com/v1/PrometheusRule",
            "--api-versions",
            "monitoring.coreos.com/v1/ServiceMonitor",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .filter(|doc: &Value| !doc.is_null())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The PrometheusRule's `spec` as a Prometheus rule file.
fn rule_file(docs: &[Value]) -> String {
    let rules = of_kind(docs, "PrometheusRule");
    assert_eq!(rules.len(), 1, "one PrometheusRule expected");
    serde_yaml_ng::to_string(&rules[0]["spec"]).unwrap()
}

/// The alerting rules: name and expression.
fn alerts(docs: &[Value]) -> Vec<(String, String)> {
    of_kind(docs, "PrometheusRule")[0]["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .map(|r| {
            let name = r["alert"]
                .as_str()
                .or(r["record"].as_str())
                .unwrap()
                .to_owned();
            (name, r["expr"].as_str().unwrap().trim().to_owned())
        })
        .collect()
}

/// The dashboard JSON, as the chart ships it in its ConfigMap.
fn dashboard(docs: &[Value]) -> Value {
    let maps = of_kind(docs, "ConfigMap");
    let json = maps
        .iter()
        .find_map(|m| m["data"]["upstart-operators.json"].as_str())
        .expect("the dashboard ConfigMap");
    serde_json::from_str(json).unwrap()
}

/// Every panel's queries (rows' nested panels included): panel title and expression.
fn panel_queries(panels: &Value, out: &mut Vec<(String, String)>) {
    for panel in panels.as_array().into_iter().flatten() {
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                out.push((title.to_owned(), expr.to_owned()));
            }
        }
        panel_queries(&panel["panels"], out);
    }
}

/// A Prometheus on loopback scraping the operators, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus with `rules` loaded and one scrape job per `(job, address)`, every
    /// target labelled with the release namespace (as a ServiceMonitor's targets are).
    fn start(rules: &str, jobs: &[(String, SocketAddr)]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rules.yaml"), rules).unwrap();
        let scrape_configs: Vec<Value> = jobs
            .iter()
            .map(|(job, addr)| {
                serde_json::json!({
                    "job_name": job,
                    "static_configs": [{
                        "targets": [addr.to_string()],
                        "labels": {"namespace": RELEASE_NAMESPACE},
                    }],
                })
            })
            .collect();
        let config = serde_json::json!({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["rules.yaml"],
            "scrape_configs": scrape_configs,
        });
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, serde_json::to_string(&config).unwrap()).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(prometheus_tool("prometheus"))
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    async fn wait_ready(&mut self, http: &reqwest::Client) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited with {status}:\n{}", self.log());
            }
            if let Ok(response) = http.get(format!("{}/-/ready", self.url)).send().await
                && response.status().is_success()
            {
                return;
            }
            assert!(
                started.elapsed() < TIMEOUT,
                "prometheus not ready after {TIMEOUT:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `GET PATH` of the HTTP API: its `data`, or the error Prometheus gives.
    async fn api(&self, http: &reqwest::Client, path: &str) -> Result<Value, String> {
        let body: Value = http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        match body["status"].as_str() {
            Some("success") => Ok(body["data"].clone()),
            _ => Err(format!("{}: {}", body["errorType"], body["error"])),
        }
    }

    /// An instant query, now: the series it returns.
    async fn query(&self, http: &reqwest::Client, expr: &str) -> Result<Vec<Value>, String> {
        let encoded: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
        let data = self
            .api(http, &format!("/api/v1/query?query={encoded}"))
            .await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }
}

/// The expression with Grafana's variables replaced: `$namespace` by `namespaces` (the
/// variable's values), the interval variables by [`RATE_INTERVAL`].
fn grafana_to_promql(expr: &str, namespaces: &str) -> String {
    let out = expr
        .replace("${namespace}", namespaces)
        .replace("$namespace", namespaces)
        .replace("$__rate_interval", RATE_INTERVAL)
        .replace("$__interval", RATE_INTERVAL);
    assert!(
        !out.contains('$'),
        "{expr}: a Grafana variable this test does not know; teach grafana_to_promql its value"
    );
    out
}

/// The metric selectors of an expression (`upstart_x` or `upstart_x{...}`), those inside
/// range vectors included.
fn selectors(expr: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"upstart_[a-z_]+(\{[^}]*\})?").unwrap();
    re.find_iter(expr).map(|m| m.as_str().to_owned()).collect()
}

fn summary(series: &[Value]) -> String {
    series
        .iter()
        .map(|s| format!("{} {}", s["metric"], s["value"][1]))
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn the_dashboard_and_rule_expressions_are_extracted_from_the_chart() {
    let docs = render_chart(true);
    let mut queries = Vec::new();
    panel_queries(&dashboard(&docs)["panels"], &mut queries);
    assert!(queries.len() >= 10, "{queries:?}");
    assert!(queries.iter().all(|(_, e)| e.contains("upstart_")));
    let names: Vec<String> = alerts(&docs).into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"UpstartOperatorWithoutLeader".to_owned()));
    assert_eq!(
        grafana_to_promql(
            "rate(x{namespace=~\"$namespace\"}[$__rate_interval])",
            "upstart-system"
        ),
        "rate(x{namespace=~\"upstart-system\"}[5m])"
    );
    assert_eq!(
        selectors("absent(upstart_leader{job=\"a\"}) or rate(upstart_x_total[5m])"),
        BTreeSet::from([
            "upstart_leader{job=\"a\"}".to_owned(),
            "upstart_x_total".to_owned()
        ])
    );
}

/// GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces as dashes.
fn heading_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every alert's `runbook_url` is the chart's `alerts.runbookUrl` (the platform guide) plus a
/// section of that guide named after the alert.
#[test]
fn every_alert_has_a_runbook_section_its_runbook_url_points_at() {
    const GUIDE: &str = "docs/guides/platform-team.md";
    let guide = std::fs::read_to_string(TestEnv::workspace_path(GUIDE)).unwrap();
    let anchors: BTreeSet<String> = guide
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| heading_anchor(l.trim_start_matches('#')))
        .collect();
    for service_monitors in [true, false] {
        let docs = render_chart(service_monitors);
        for group in of_kind(&docs, "PrometheusRule")[0]["spec"]["groups"]
            .as_array()
            .unwrap()
        {
            for rule in group["rules"].as_array().unwrap() {
                let Some(alert) = rule["alert"].as_str() else {
                    continue;
                };
                let anchor = heading_anchor(alert);
                assert_eq!(
                    rule["annotations"]["runbook_url"].as_str(),
                    Some(format!("{GUIDE}#{anchor}").as_str()),
                    "{alert}: runbook_url"
                );
                assert!(
                    anchors.contains(&anchor),
                    "{alert} has no runbook section (a heading `#### {alert}`) in {GUIDE}"
                );
            }
        }
    }
    assert_eq!(heading_anchor(" Alert runbooks"), "alert-runbooks");
}

/// `promtool check rules` and `promtool test rules` on the rendered rules, for both shapes of
/// the leader alert (with and without the chart's ServiceMonitors).
#[test]
fn promtool_checks_and_tests_every_alert() {
    let promtool = prometheus_tool("promtool");
    let tests_dir = TestEnv::workspace_path("e2e/prometheus");
    for (service_monitors, rules_name, test_name) in [
        (true, "rules.yaml", "alerts.test.yaml"),
        (
            false,
            "rules-without-servicemonitors.yaml",
            "alerts-without-servicemonitors.test.yaml",
        ),
    ] {
        let docs = render_chart(service_monitors);
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join(rules_name);
        std::fs::write(&rules, rule_file(&docs)).unwrap();
        let test = dir.path().join(test_name);
        std::fs::copy(tests_dir.join(test_name), &test).unwrap();
        for args in [
            vec![
                "check".into(),
                "rules".into(),
                rules.clone().into_os_string(),
            ],
            vec!["test".into(), "rules".into(), test.clone().into_os_string()],
        ] {
            let output = Command::new(&promtool).args(&args).output().unwrap();
            assert!(
                output.status.success(),
                "promtool {args:?} failed:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        // Every alert of this rendering has a test case naming it, so a new alert needs one.
        let cases = std::fs::read_to_string(tests_dir.join(test_name)).unwrap();
        for (alert, _) in alerts(&docs) {
            assert!(
                cases.contains(&format!("alertname: {alert}")),
                "{test_name} has no test case for {alert}: add one where it fires and one \
                 where it stays silent"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_and_alert_expression_returns_series_on_a_real_prometheus() {
    if std::env::var_os(upstart_e2e::KUBECONFIG_ENV).is_some_and(|v| !v.is_empty()) {
        eprintln!("SKIPPED: the operators scraped here are the ones this test runs in process");
        return;
    }
    let docs = render_chart(true);
    let with_monitors_alerts = alerts(&docs);
    let without_monitors_alerts = alerts(&render_chart(false));

    // The scrape jobs the ServiceMonitors give: the metrics Services' names.
    let mut addrs = BTreeMap::new();
    let mut jobs = Vec::new();
    for service in of_kind(&docs, "Service") {
        let job = service["metadata"]["name"].as_str().unwrap().to_owned();
        if !job.ends_with("-metrics") {
            continue;
        }
        let binary = service["metadata"]["labels"]["app.kubernetes.io/name"]
            .as_str()
            .unwrap();
        let binary: &'static str = match binary {
            "upstart-helmrelease-operator" => "upstart-helmrelease-operator",
            "upstart-service-operator" => "upstart-service-operator",
            "upstart-environment-operator" => "upstart-environment-operator",
            other => panic!("a metrics Service of an unknown operator: {other}"),
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        addrs.insert(binary, addr);
        jobs.push((job, addr));
    }
    assert_eq!(jobs.len(), 3, "one metrics Service per operator: {jobs:?}");

    // reqwest is built without a TLS provider of its own; plain HTTP still needs one chosen.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let mut prometheus = Prometheus::start(&rule_file(&docs), &jobs);
    let env = TestEnv::start_with(upstart_local_cluster::LocalClusterOptions {
        operators: served_operators(&addrs),
        ..TestEnv::local_options()
    })
    .await
    .unwrap();
    prometheus.wait_ready(&http).await;
    // Counters and histograms observed before a target's first scrape would show no increase:
    // the environment is applied once every operator has been scraped.
    env.step("Prometheus scrapes the three operators");
    let started = Instant::now();
    loop {
        let up = prometheus.query(&http, "up == 1").await.unwrap();
        if up.len() == jobs.len() {
            break;
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "targets not all up after {TIMEOUT:?}: {:?}\n{}",
            prometheus.api(&http, "/api/v1/targets").await,
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    env.step("the example environment comes up and expires");
    env.apply_catalog(&["examples/services"]).await.unwrap();
    let text =
        std::fs::read_to_string(TestEnv::workspace_path("examples/environment.yaml")).unwrap();
    let mut environment: Value = serde_yaml_ng::from_str(&text).unwrap();
    environment["spec"]["ttl"] = serde_json::json!("10s");
    env.apply_yaml(&serde_json::to_string(&environment).unwrap())
        .await
        .unwrap();
    env.wait_for("the environment to be Ready", TIMEOUT, || async {
        let phase = env
            .get_cluster_scoped::<UpstartEnvironment>(ENVIRONMENT)
            .await?
            .and_then(|e| e.status)
            .and_then(|s| s.phase);
        Ok(match phase {
            Some(EnvironmentPhase::Ready) => Check::Done(()),
            other => Check::Waiting(format!("{other:?}")),
        })
    })
    .await
    .unwrap();
    env.wait_for("the environment to expire and be gone", TIMEOUT, || async {
        Ok(
            match env
                .get_cluster_scoped::<UpstartEnvironment>(ENVIRONMENT)
                .await?
            {
                None => Check::Done(()),
                Some(e) => Check::Waiting(format!("{:?}", e.status.and_then(|s| s.phase))),
            },
        )
    })
    .await
    .unwrap();

    env.step("Prometheus has scraped the expiry");
    let started = Instant::now();
    loop {
        let expired = prometheus
            .query(&http, "sum(upstart_environments_expired_total) >= 1")
            .await
            .unwrap();
        if !expired.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "no expiry scraped after {TIMEOUT:?}; targets: {:?}\n{}",
            prometheus.api(&http, "/api/v1/targets").await,
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A few more evaluations, so the rules see the settled series.
    tokio::time::sleep(Duration::from_secs(3)).await;

    env.step("every expression of the dashboard and the rules is evaluated");
    let mut empty: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let dashboard = dashboard(&docs);

    // The dashboard's variables: `label_values(METRIC, LABEL)` queries.
    let mut variables = BTreeMap::new();
    let label_values = regex::Regex::new(r"^label_values\(\s*([^,]+?)\s*,\s*(\w+)\s*\)$").unwrap();
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if variable["type"] != "query" {
            continue;
        }
        let name = variable["name"].as_str().unwrap();
        let query = variable["query"]["query"]
            .as_str()
            .or(variable["query"].as_str())
            .unwrap();
        let caps = label_values.captures(query).unwrap_or_else(|| {
            panic!("variable {name}: {query}: only label_values(METRIC, LABEL) is understood here")
        });
        let series = prometheus.query(&http, &caps[1]).await.unwrap();
        let values: BTreeSet<&str> = series
            .iter()
            .filter_map(|s| s["metric"][&caps[2]].as_str())
            .collect();
        eprintln!("variable {name}: {query} -> {values:?}");
        if values.is_empty() {
            failures.push(format!("variable {name}: {query} has no values"));
        }
        variables.insert(
            name.to_owned(),
            values.into_iter().collect::<Vec<_>>().join("|"),
        );
    }
    let namespaces = variables.get("namespace").cloned().unwrap_or_default();

    let mut queries = Vec::new();
    panel_queries(&dashboard["panels"], &mut queries);
    for (title, expr) in &queries {
        let promql = grafana_to_promql(expr, &namespaces);
        match prometheus.query(&http, &promql).await {
            Err(error) => failures.push(format!("dashboard {title:?}: {promql}: {error}")),
            Ok(series) if series.is_empty() => empty.push(format!("dashboard: {title}")),
            // NaN everywhere: a quantile of a histogram that observed nothing during the run.
            Ok(series) if series.iter().all(|s| s["value"][1] == "NaN") => failures.push(format!(
                "dashboard {title:?}: {promql}: only NaN: {}",
                summary(&series)
            )),
            Ok(series) => eprintln!("dashboard {title:?}: {promql} -> {}", summary(&series)),
        }
    }

    let mut checked_alerts = BTreeSet::new();
    for (name, expr) in with_monitors_alerts.iter().chain(&without_monitors_alerts) {
        if !checked_alerts.insert((name.clone(), expr.clone())) {
            continue;
        }
        match prometheus.query(&http, expr).await {
            Err(error) => failures.push(format!("alert {name}: {expr}: {error}")),
            Ok(series) if series.is_empty() => {
                if !empty.contains(&format!("alert: {name}")) {
                    empty.push(format!("alert: {name}"));
                }
            }
            Ok(series) => failures.push(format!(
                "alert {name} would fire on a healthy run: {expr} -> {}",
                summary(&series)
            )),
        }
        // What an alert looks at must exist, or it could never fire.
        for selector in selectors(expr) {
            let series = prometheus.query(&http, &selector).await.unwrap();
            let allowed = SELECTORS_EMPTY_WHEN_HEALTHY
                .iter()
                .any(|(s, _)| selector.starts_with(s));
            if series.is_empty() && !allowed {
                failures.push(format!("alert {name}: {selector} matches no series"));
            }
        }
    }

    // Prometheus loaded every rule; none is pending or firing on a healthy run.
    let rules = prometheus.api(&http, "/api/v1/rules").await.unwrap();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            if rule["health"] != "ok" || rule["state"] != "inactive" {
                failures.push(format!(
                    "rule {}: health {} state {} {}",
                    rule["name"], rule["health"], rule["state"], rule["lastError"]
                ));
            }
        }
    }

    let expected: BTreeSet<String> = EMPTY_WHEN_HEALTHY
        .iter()
        .map(|(e, _)| (*e).to_owned())
        .collect();
    let empty: BTreeSet<String> = empty.into_iter().collect();
    if empty != expected {
        failures.push(format!(
            "returned no series: {empty:?}; expected exactly {expected:?} (EMPTY_WHEN_HEALTHY)"
        ));
    }
    assert!(
        failures.is_empty(),
        "{}\nprometheus log:\n{}",
        failures.join("\n"),
        prometheus.log()
    );
    env.finish().await.unwrap();
}
