//! `upstart env` as a pipeline runs it: the built binary against the local control plane over
//! HTTPS, with the three operators, a catalog template and a tiny chart served as
//! `upstart-charts`. One pull request's life, in numbered steps: create with an override and
//! --wait, diff a second push, push it, extend, keep, sleep, wake, a second pull request
//! refused over the per-requester cap, delete --wait, and the refused one starting then.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::{Value, json};
use upstart_api::v1alpha1::{EnvironmentPhase, HelmRelease, UpstartEnvironment, UpstartService};
use upstart_local_cluster::{EnvironmentLimits, LocalCluster, LocalClusterOptions, OperatorSet};

const REQUESTER: &str = "upstartoperators.upstart.com/requester";
const KEEP: &str = "upstartoperators.upstart.com/keep";

/// A chart with one Deployment (its image tag from the values), a Service, and a Secret for
/// the API token when one is given.
fn write_chart(charts: &Path) {
    let chart = charts.join("web");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(
        chart.join("values.yaml"),
        "image:\n  tag: main\napiToken: \"\"\n",
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/web.yaml"),
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: 1
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      containers:
      - name: web
        image: "example.com/web:{{ .Values.image.tag }}"
---
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}
spec:
  selector: {app: {{ .Release.Name }}}
  ports:
  - port: 80
{{- if .Values.apiToken }}
---
apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-token
stringData:
  token: {{ .Values.apiToken | quote }}
{{- end }}
"#,
    )
    .unwrap();
}

struct Cluster {
    cluster: Option<LocalCluster>,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn client(&self) -> Client {
        self.cluster.as_ref().unwrap().client().clone()
    }

    async fn shutdown(mut self) {
        if let Some(cluster) = self.cluster.take() {
            cluster.shutdown().await;
        }
    }
}

/// The local cluster with the operators and the catalog template `shop`: `db`, and `app`
/// depending on it, both of the `web` chart.
async fn cluster() -> Cluster {
    cluster_with(EnvironmentLimits::default()).await
}

/// [`cluster`] with the environment operator's caps and quotas set to `limits`.
async fn cluster_with(limits: EnvironmentLimits) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    write_chart(&dir.path().join("charts"));
    let kubeconfig = dir.path().join("kubeconfig");
    let cluster = LocalCluster::start(LocalClusterOptions {
        https_port: Some(0),
        kubeconfig_path: Some(kubeconfig.clone()),
        charts_dir: Some(dir.path().join("charts")),
        workload_delay: Duration::from_millis(100),
        operators: OperatorSet::all(),
        environment_limits: limits,
        ..LocalClusterOptions::default()
    })
    .await
    .unwrap();
    let catalog: Api<UpstartService> =
        Api::namespaced(cluster.client().clone(), cluster.catalog_namespace());
    let template: UpstartService = serde_json::from_value(json!({
        "apiVersion": "upstartoperators.upstart.com/v1alpha1", "kind": "UpstartService",
        "metadata": {"name": "shop"},
        "spec": {"helmReleases": {
            "db": {"chart": "upstart-charts/web", "values": {"image": {"tag": "db-1"}}},
            "app": {"chart": "upstart-charts/web", "dependencies": [{"name": "db"}]}
        }}
    }))
    .unwrap();
    catalog
        .create(&PostParams::default(), &template)
        .await
        .unwrap();
    Cluster {
        cluster: Some(cluster),
        kubeconfig,
        _dir: dir,
    }
}

/// What a run of the binary printed, and how it ended.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `upstart env ARGS --kubeconfig K`, killed after a minute.
async fn upstart(cluster: &Cluster, args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_upstart"));
    command
        .arg("env")
        .args(args)
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(90), command.output())
        .await
        .unwrap_or_else(|_| panic!("upstart env {args:?} did not end within 90 s"))
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// (generation, appliedDigest) of a HelmRelease.
async fn rendered(client: &Client, name: &str) -> (Option<i64>, Option<String>) {
    let releases: Api<HelmRelease> = Api::namespaced(client.clone(), "pr-1");
    let release = releases.get(name).await.unwrap();
    (
        release.metadata.generation,
        release.status.and_then(|s| s.applied_digest),
    )
}

/// Polls `check` on the environment pr-1 until it holds (30 s at most).
async fn eventually(client: &Client, what: &str, check: impl Fn(&UpstartEnvironment) -> bool) {
    eventually_named(client, "pr-1", what, check).await;
}

/// Polls `check` on the environment `name` until it holds (30 s at most).
async fn eventually_named(
    client: &Client,
    name: &str,
    what: &str,
    check: impl Fn(&UpstartEnvironment) -> bool,
) {
    let environments: Api<UpstartEnvironment> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let environment = environments.get(name).await.unwrap();
        if check(&environment) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 30 s: {:?}",
            environment.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const FIRST_PUSH: [&str; 8] = [
    "--service",
    "shop",
    "--set",
    "shop.app.values.image.tag=v1",
    "--set-string",
    "shop.app.values.apiToken=s3cret-1",
    "--ttl",
    "1h",
];

const SECOND_PUSH: [&str; 8] = [
    "--service",
    "shop",
    "--set",
    "shop.app.values.image.tag=v2",
    "--set-string",
    "shop.app.values.apiToken=s3cret-2",
    "--ttl",
    "1h",
];

/// Waits until the Deployments app and db have `want` replicas (30 s at most).
async fn for_replicas<F, Fut>(replicas: &F, want: i32)
where
    F: Fn(&'static str) -> Fut,
    Fut: std::future::Future<Output = Option<i32>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = (replicas("app").await, replicas("db").await);
        if now == (Some(want), Some(want)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "app and db at {want} replicas: not within 30 s: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_lives_through_the_cli_from_create_to_delete() {
    let cluster = cluster_with(EnvironmentLimits {
        max_per_requester: Some(1),
        ..EnvironmentLimits::default()
    })
    .await;
    let client = cluster.client();
    let environments: Api<UpstartEnvironment> = Api::all(client.clone());

    // 1. Created with an override, waited for: Ready, with its releases printed.
    let mut args = vec!["create", "pr-1"];
    args.extend(FIRST_PUSH);
    args.extend(["--wait", "--timeout", "60s"]);
    let run = upstart(&cluster, &args).await;
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout
            .contains("upstartenvironment.upstartoperators.upstart.com/pr-1 created"),
        "{run}"
    );
    assert!(
        run.stdout
            .contains("UpstartEnvironment pr-1 is Ready in namespace pr-1"),
        "{run}"
    );
    // Its endpoints once the operator reports them (Service DNS names here), else its releases.
    let shown = |release: &str| {
        run.stdout.contains(&format!("shop/{release}  Ready"))
            || run.stdout.contains(&format!("{release}.pr-1.svc"))
    };
    assert!(shown("app") && shown("db"), "{run}");
    assert!(!format!("{run}").contains("s3cret"), "{run}");
    let environment = environments.get("pr-1").await.unwrap();
    let requester = environment.metadata.annotations.as_ref().unwrap()[REQUESTER].clone();
    assert!(!requester.is_empty(), "the requester is recorded");
    let app_before = rendered(&client, "shop-app").await;
    let db_before = rendered(&client, "shop-db").await;
    assert!(app_before.1.is_some() && db_before.1.is_some());

    // 2. The second push, diffed first: the app re-renders, its token masked; exit 2.
    let mut args = vec!["diff", "pr-1"];
    args.extend(SECOND_PUSH);
    let run = upstart(&cluster, &args).await;
    assert_eq!(run.code, 2, "{run}");
    assert_eq!(
        run.stdout,
        "UpstartEnvironment pr-1: changes
~ release shop/app re-renders: values
    ~ apiToken: (masked) -> (masked)
    ~ image.tag: \"v1\" -> \"v2\"
",
        "{run}"
    );
    assert!(!format!("{run}").contains("s3cret"), "{run}");
    args.extend(["-o", "json"]);
    let run = upstart(&cluster, &args).await;
    assert_eq!(run.code, 2, "{run}");
    let diff: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(diff["releases"][0]["object"], "shop-app");
    assert!(!run.stdout.contains("s3cret"), "{run}");
    // The first push again changes nothing: exit 0.
    let mut args = vec!["diff", "pr-1"];
    args.extend(FIRST_PUSH);
    let run = upstart(&cluster, &args).await;
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "UpstartEnvironment pr-1: no changes\n"),
        "{run}"
    );

    // 3. The second push: an update in which only the app re-renders.
    let mut args = vec!["create", "pr-1"];
    args.extend(SECOND_PUSH);
    args.extend(["--wait", "--timeout", "60s", "--requester", "someone-else"]);
    let run = upstart(&cluster, &args).await;
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("pr-1 configured"), "{run}");
    let app_after = rendered(&client, "shop-app").await;
    let db_after = rendered(&client, "shop-db").await;
    assert!(
        app_after.0 > app_before.0 && app_after.1 != app_before.1,
        "the app re-rendered: {app_before:?} -> {app_after:?}"
    );
    assert_eq!(db_after, db_before, "the database did not re-render");
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "pr-1");
    let image = deployments
        .get("app")
        .await
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("example.com/web:v2"));
    let environment = environments.get("pr-1").await.unwrap();
    assert_eq!(
        environment.metadata.annotations.as_ref().unwrap()[REQUESTER],
        requester,
        "the first requester stays"
    );

    // 4. Extended by 2h: the ttl is 3h, and the operator moves the expiry.
    let run = upstart(&cluster, &["extend", "pr-1", "2h"]).await;
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("extended: ttl 3h, expires at"), "{run}");
    let created = environment.metadata.creation_timestamp.clone().unwrap().0;
    let expected = created.checked_add(Duration::from_secs(3 * 3600)).unwrap();
    eventually(&client, "expiresAt moved to creation + 3h", |e| {
        e.status
            .as_ref()
            .and_then(|s| s.expires_at.as_ref())
            .map(|t| t.0)
            == Some(expected)
    })
    .await;
    // A later push with --ttl 1h does not shorten it.
    let mut args = vec!["create", "pr-1"];
    args.extend(SECOND_PUSH);
    let run = upstart(&cluster, &args).await;
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stderr.contains("ttl kept at 3h"), "{run}");
    assert_eq!(
        environments.get("pr-1").await.unwrap().spec.ttl.as_deref(),
        Some("3h")
    );

    // 5. Kept: no expiry any more; the list and get say so.
    let run = upstart(&cluster, &["keep", "pr-1"]).await;
    assert_eq!(run.code, 0, "{run}");
    eventually(&client, "kept: no expiresAt", |e| {
        e.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.get(KEEP).map(String::as_str) == Some("true"))
            && e.status.as_ref().is_some_and(|s| s.expires_at.is_none())
    })
    .await;
    let run = upstart(&cluster, &["list", "-o", "json"]).await;
    assert_eq!(run.code, 0, "{run}");
    let list: Value = serde_json::from_str(&run.stdout).unwrap();
    let row = &list["items"][0];
    assert_eq!(
        (
            row["name"].as_str(),
            row["requester"].as_str(),
            row["kept"].as_bool()
        ),
        (Some("pr-1"), Some(requester.as_str()), Some(true)),
        "{run}"
    );
    assert_eq!(
        (row["readyServices"].as_i64(), row["totalServices"].as_i64()),
        (Some(1), Some(1))
    );
    let run = upstart(&cluster, &["list"]).await;
    assert!(run.stdout.starts_with("NAME   REQUESTER"), "{run}");
    assert!(run.stdout.contains(" kept "), "{run}");
    let run = upstart(&cluster, &["get", "pr-1"]).await;
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout
            .starts_with("UpstartEnvironment pr-1 (namespace pr-1)  Ready"),
        "{run}"
    );
    assert!(
        run.stdout.contains(&format!("requested by {requester}")),
        "{run}"
    );
    let run = upstart(&cluster, &["unkeep", "pr-1", "-o", "name"]).await;
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "upstartenvironment.upstartoperators.upstart.com/pr-1\n"),
        "{run}"
    );

    // 6. Put to sleep: its workloads at zero, phase Sleeping; woken: their replicas back.
    let run = upstart(&cluster, &["sleep", "pr-1"]).await;
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout.contains("pr-1 asleep until upstart env wake"),
        "{run}"
    );
    eventually(&client, "phase Sleeping", |e| {
        e.status.as_ref().and_then(|s| s.phase) == Some(EnvironmentPhase::Sleeping)
    })
    .await;
    let replicas = |name: &'static str| {
        let deployments = deployments.clone();
        async move { deployments.get(name).await.unwrap().spec.unwrap().replicas }
    };
    for_replicas(&replicas, 0).await;
    let run = upstart(&cluster, &["get", "pr-1"]).await;
    assert!(run.stdout.contains("Sleeping"), "{run}");
    let run = upstart(&cluster, &["wake", "pr-1"]).await;
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("pr-1 awake"), "{run}");
    for_replicas(&replicas, 1).await;
    eventually(&client, "Ready again", |e| {
        e.status.as_ref().and_then(|s| s.phase) == Some(EnvironmentPhase::Ready)
    })
    .await;

    // 7. A second pull request of the same requester is over the cap (one each): refused,
    // nothing of it created.
    let run = upstart(&cluster, &["create", "pr-2", "--service", "shop"]).await;
    assert_eq!(run.code, 0, "{run}");
    eventually_named(&client, "pr-2", "refused", |e| {
        e.status.as_ref().and_then(|s| s.phase) == Some(EnvironmentPhase::Refused)
    })
    .await;
    let run = upstart(&cluster, &["get", "pr-2", "-o", "json"]).await;
    assert!(run.stdout.contains("CapReached"), "{run}");
    assert!(
        run.stdout.contains("--max-environments-per-requester"),
        "{run}"
    );
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    assert!(namespaces.get_opt("pr-2").await.unwrap().is_none());

    // 8. Deleted, waited for: gone with its namespace's releases; deleting again is an error
    // unless --ignore-not-found.
    let run = upstart(&cluster, &["delete", "pr-1", "--wait", "--timeout", "60s"]).await;
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("pr-1 gone"), "{run}");
    assert!(environments.get_opt("pr-1").await.unwrap().is_none());
    let run = upstart(&cluster, &["delete", "pr-1"]).await;
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("--ignore-not-found"), "{run}");
    let run = upstart(&cluster, &["delete", "pr-1", "--ignore-not-found"]).await;
    assert_eq!(run.code, 0, "{run}");

    // 9. There is room now: the refused pull request starts by itself.
    let run = upstart(
        &cluster,
        &[
            "create",
            "pr-2",
            "--service",
            "shop",
            "--wait",
            "--timeout",
            "60s",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout
            .contains("UpstartEnvironment pr-2 is Ready in namespace pr-2"),
        "{run}"
    );

    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_that_runs_out_exits_3_and_shows_what_it_waits_for() {
    let cluster = cluster().await;
    // `ghost` is not in the catalog: the environment can never be Ready.
    let run = upstart(
        &cluster,
        &[
            "create",
            "pr-1",
            "--service",
            "shop,ghost",
            "--wait",
            "--timeout",
            "2s",
        ],
    )
    .await;
    assert_eq!(run.code, 3, "{run}");
    assert!(
        run.stderr
            .contains("UpstartEnvironment pr-1 not Ready after 2s"),
        "{run}"
    );
    assert!(
        run.stderr.contains("UpstartService ghost"),
        "the tree is shown: {run}"
    );

    // Errors are exit 1, and say how to fix them.
    let run = upstart(&cluster, &["create", "pr-2"]).await;
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("--service SERVICE[,SERVICE] or -f FILE"),
        "{run}"
    );
    let run = upstart(
        &cluster,
        &[
            "create",
            "pr-2",
            "--service",
            "shop",
            "--set",
            "shop.app.values.password=hunter2",
            "--set",
            "cart.app.values.password=hunter2",
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("the environment has no service cart (add --service cart)"),
        "{run}"
    );
    assert!(!run.stderr.contains("hunter2"), "{run}");
    let run = upstart(&cluster, &["extend", "nope", "1h"]).await;
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains("UpstartEnvironment nope not found"),
        "{run}"
    );

    cluster.shutdown().await;
}
