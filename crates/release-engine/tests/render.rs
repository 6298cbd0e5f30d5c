//! Rendering with the real helm binary on tiny charts written to a temp dir, then planning the
//! result. The helm binary is `$UPSTART_HELM`, else `.tools/bin/helm` at the workspace root
//! (installed by `scripts/bootstrap-tools`), else `helm` on PATH; without one these tests fail.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use upstart_failure::Classify;
use upstart_release_engine::Error;
use upstart_release_engine::manifests::{
    ClusterScopedAllowList, HookDeletePolicy, HookEvent, Limits, ReleaseScope, plan,
};
use upstart_release_engine::render::{
    Capabilities, REDACTED, RenderRequest, Renderer, RendererConfig,
};

async fn renderer() -> Renderer {
    Renderer::new(upstart_test_support::helm())
        .await
        .expect("helm is usable")
}

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
}

const CHART_YAML: &str = "apiVersion: v2\nname: app\nversion: 0.1.0\n";

/// A chart with a Deployment, a ConfigMap, a Service without namespace, a weighted post-install
/// hook Job and a CRD in `crds/`.
fn app_chart(dir: &Path) -> PathBuf {
    let chart = dir.join("app");
    write(
        &chart,
        &[
            ("Chart.yaml", CHART_YAML),
            ("values.yaml", "replicas: 1\ngreeting: hello\n"),
            (
                "crds/widgets.yaml",
                "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {kind: Widget, plural: widgets, singular: widget}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema: {openAPIV3Schema: {type: object}}\n",
            ),
            (
                "templates/deployment.yaml",
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n  labels: {app.kubernetes.io/managed-by: {{ .Release.Service }}}\nspec:\n  replicas: {{ .Values.replicas }}\n  selector: {matchLabels: {app: {{ .Release.Name }}}}\n  template:\n    metadata: {labels: {app: {{ .Release.Name }}}}\n    spec:\n      containers:\n      - name: app\n        image: nginx\n",
            ),
            (
                "templates/configmap.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\n  namespace: {{ .Release.Namespace }}\ndata:\n  greeting: {{ .Values.greeting | quote }}\n  install: {{ .Release.IsInstall | quote }}\n",
            ),
            (
                "templates/service.yaml",
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  selector: {app: {{ .Release.Name }}}\n  ports: [{port: 80}]\n",
            ),
            (
                "templates/hook.yaml",
                "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {{ .Release.Name }}-seed\n  annotations:\n    \"helm.sh/hook\": post-install\n    \"helm.sh/hook-weight\": \"5\"\n    \"helm.sh/hook-delete-policy\": hook-succeeded\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: seed, image: busybox}]\n",
            ),
            (
                "templates/tests/test.yaml",
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-test\n  annotations: {\"helm.sh/hook\": test}\nspec:\n  containers: [{name: t, image: busybox}]\n",
            ),
        ],
    );
    chart
}

fn capabilities() -> Capabilities {
    Capabilities {
        kube_version: "v1.33.2".into(),
        api_versions: ["v1", "apps/v1", "batch/v1", "apps/v1/Deployment"]
            .into_iter()
            .map(String::from)
            .collect(),
    }
}

fn request<'a>(
    chart: &'a Path,
    values: &'a Value,
    capabilities: &'a Capabilities,
) -> RenderRequest<'a> {
    RenderRequest {
        chart_dir: chart,
        chart_digest: "sha256:0000",
        release_name: "web",
        namespace: "pr-1234",
        values,
        capabilities,
        is_upgrade: false,
    }
}

fn discovery(api_version: &str, kind: &str) -> Option<bool> {
    match (api_version, kind) {
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => Some(false),
        ("v1" | "apps/v1" | "batch/v1", _) => Some(true),
        _ => None,
    }
}

#[tokio::test]
async fn a_chart_renders_and_plans_in_install_order_with_hooks_apart() {
    let dir = tempfile::tempdir().unwrap();
    let chart = app_chart(dir.path());
    let renderer = renderer().await;
    let values = json!({"greeting": "hi there"});
    let caps = capabilities();
    let rendered = renderer
        .render(&request(&chart, &values, &caps))
        .await
        .expect("renders");

    let allow = ClusterScopedAllowList::new(["apiextensions.k8s.io/CustomResourceDefinition"]);
    let scope = ReleaseScope {
        namespace: "pr-1234",
        name: "example-web",
        cluster_scoped_allow_list: &allow,
        is_namespaced: &discovery,
    };
    let plan = plan(&rendered.manifest, &scope, &Limits::default()).expect("plans");
    // The chart's crds/ CRD is apart, as Helm keeps it: created first, never in the inventory.
    let crds: Vec<String> = plan.crds.iter().map(|o| o.display_name()).collect();
    assert_eq!(crds, ["CustomResourceDefinition/widgets.example.com"]);
    let order: Vec<String> = plan.resources.iter().map(|o| o.display_name()).collect();
    assert_eq!(
        order,
        ["ConfigMap/web-config", "Service/web", "Deployment/web",]
    );
    let service = &plan.resources[1];
    assert_eq!(service.entry.namespace.as_deref(), Some("pr-1234"));
    assert_eq!(
        service.source.as_deref(),
        Some("app/templates/service.yaml")
    );
    let config = &plan.resources[0].object;
    assert_eq!(config["data"]["greeting"], "hi there");
    assert_eq!(config["data"]["install"], "true");
    let deployment = &plan.resources[2].object;
    assert_eq!(
        deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "upstart"
    );
    assert_eq!(
        deployment["metadata"]["labels"]["upstartoperators.upstart.com/release"],
        "pr-1234.example-web"
    );

    // The test hook is not rendered (--skip-tests) and would be dropped anyway.
    assert_eq!(plan.hooks.len(), 1);
    let hook = plan.hooks_for(HookEvent::PostInstall)[0];
    assert_eq!(hook.object.display_name(), "Job/web-seed");
    assert_eq!(hook.weight, 5);
    assert!(hook.has_policy(HookDeletePolicy::HookSucceeded));
    assert_eq!(plan.inventory().len(), 3);
}

#[tokio::test]
async fn capabilities_reach_the_templates() {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("caps");
    write(
        &chart,
        &[
            (
                "Chart.yaml",
                "apiVersion: v2\nname: caps\nversion: 0.1.0\nkubeVersion: \">=1.30.0-0\"\n",
            ),
            (
                "templates/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: caps\ndata:\n  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n  minor: {{ .Capabilities.KubeVersion.Minor | quote }}\n  widgets: {{ .Capabilities.APIVersions.Has \"example.com/v1/Widget\" | quote }}\n  group: {{ .Capabilities.APIVersions.Has \"example.com/v1\" | quote }}\n  upgrade: {{ .Release.IsUpgrade | quote }}\n  lookup: {{ lookup \"v1\" \"Namespace\" \"\" \"default\" | toJson | quote }}\n",
            ),
        ],
    );
    let renderer = renderer().await;
    let values = json!({});
    let mut caps = capabilities();
    let render = |caps: Capabilities, is_upgrade: bool| {
        let renderer = &renderer;
        let chart = chart.clone();
        let values = values.clone();
        async move {
            let req = RenderRequest {
                is_upgrade,
                ..request(&chart, &values, &caps)
            };
            let rendered = renderer.render(&req).await.expect("renders");
            let doc: Value = serde_yaml_ng::from_str(&rendered.manifest).unwrap();
            doc["data"].clone()
        }
    };

    let data = render(caps.clone(), false).await;
    assert_eq!(data["kube"], "v1.33.2");
    assert_eq!(data["minor"], "33");
    assert_eq!(data["widgets"], "false");
    assert_eq!(data["upgrade"], "false");
    // Known difference from `helm install`: lookup sees nothing.
    assert_eq!(data["lookup"], "{}");

    caps.api_versions.insert("example.com/v1".into());
    caps.api_versions.insert("example.com/v1/Widget".into());
    caps.kube_version = "v1.34.1".into();
    let data = render(caps.clone(), true).await;
    assert_eq!(data["kube"], "v1.34.1");
    assert_eq!(data["widgets"], "true");
    assert_eq!(data["group"], "true");
    assert_eq!(data["upgrade"], "true");

    // The chart's kubeVersion constraint is checked against the cluster's version.
    caps.kube_version = "v1.29.0".into();
    let req = request(&chart, &values, &caps);
    let err = renderer
        .render(&req)
        .await
        .expect_err("kubeVersion refused");
    assert!(matches!(err, Error::HelmFailed { .. }), "{err}");
    assert!(err.to_string().contains("kubeVersion"), "{err}");
}

#[tokio::test]
async fn an_unchanged_release_costs_no_subprocess() {
    let dir = tempfile::tempdir().unwrap();
    let chart = app_chart(dir.path());
    let renderer = renderer().await;
    let caps = capabilities();
    let values = json!({"greeting": "one"});
    let first = renderer
        .render(&request(&chart, &values, &caps))
        .await
        .unwrap();
    assert_eq!(renderer.invocations(), 1);
    // Same inputs, values with keys in another order: served from the cache.
    let same: Value = serde_json::from_str(r#"{"greeting":"one"}"#).unwrap();
    let again = renderer
        .render(&request(&chart, &same, &caps))
        .await
        .unwrap();
    assert_eq!(renderer.invocations(), 1);
    assert_eq!(first.manifest, again.manifest);

    let other = json!({"greeting": "two"});
    renderer
        .render(&request(&chart, &other, &caps))
        .await
        .unwrap();
    assert_eq!(renderer.invocations(), 2, "new values render again");

    let mut newer = caps.clone();
    newer.kube_version = "v1.34.0".into();
    renderer
        .render(&request(&chart, &values, &newer))
        .await
        .unwrap();
    assert_eq!(
        renderer.invocations(),
        3,
        "a new kube version renders again"
    );

    let moved = RenderRequest {
        namespace: "pr-9",
        ..request(&chart, &values, &caps)
    };
    renderer.render(&moved).await.unwrap();
    let new_chart = RenderRequest {
        chart_digest: "sha256:1111",
        ..request(&chart, &values, &caps)
    };
    renderer.render(&new_chart).await.unwrap();
    assert_eq!(
        renderer.invocations(),
        5,
        "namespace and chart digest are part of the key"
    );

    renderer.render(&new_chart).await.unwrap();
    assert_eq!(renderer.invocations(), 5, "the newest render is cached");
    renderer
        .render(&request(&chart, &values, &caps))
        .await
        .unwrap();
    assert_eq!(
        renderer.invocations(),
        6,
        "only the newest render of a release is kept: going back renders again"
    );
}

#[tokio::test]
async fn a_failing_template_that_echoes_a_secret_is_scrubbed() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("leaky");
    write(
        &chart,
        &[
            (
                "Chart.yaml",
                "apiVersion: v2\nname: leaky\nversion: 0.1.0\n",
            ),
            (
                "templates/fail.yaml",
                "{{ fail (printf \"bad password %s (b64 %s) for %s\" .Values.db.password (b64enc .Values.db.password) .Values.db.user) }}\n",
            ),
        ],
    );
    let renderer = renderer().await;
    let values = json!({"db": {"password": "correct-horse-battery", "user": "admin"}});
    let caps = capabilities();
    let err = renderer
        .render(&request(&chart, &values, &caps))
        .await
        .expect_err("the template fails");
    let text = err.to_string();
    let b64 = base64::engine::general_purpose::STANDARD.encode("correct-horse-battery");
    assert!(matches!(err, Error::HelmFailed { .. }), "{text}");
    assert!(!text.contains("correct-horse-battery"), "{text}");
    assert!(!text.contains(&b64), "{text}");
    assert!(!text.contains("admin"), "{text}");
    assert!(text.contains(REDACTED), "{text}");
    assert!(text.contains("leaky/templates/fail.yaml"), "{text}");
    assert!(err.needs_spec_change());
}

#[tokio::test]
async fn values_never_reach_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let chart = app_chart(dir.path());
    let config = RendererConfig {
        work_dir: Some(work.path().to_owned()),
        ..RendererConfig::new(upstart_test_support::helm())
    };
    let renderer = Renderer::with_config(config).await.unwrap();
    let values = json!({"greeting": "never-on-disk-4242"});
    let caps = capabilities();
    let rendered = renderer
        .render(&request(&chart, &values, &caps))
        .await
        .unwrap();
    assert!(rendered.manifest.contains("never-on-disk-4242"));
    let mut stack = vec![work.path().to_owned(), dir.path().to_owned()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            let content = fs::read(&path).unwrap_or_default();
            let found = content
                .windows(b"never-on-disk-4242".len())
                .any(|w| w == b"never-on-disk-4242");
            assert!(!found, "value written to {}", path.display());
        }
    }
}

#[tokio::test]
async fn a_render_over_the_output_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("big");
    write(
        &chart,
        &[
            ("Chart.yaml", "apiVersion: v2\nname: big\nversion: 0.1.0\n"),
            (
                "templates/cm.yaml",
                "{{- range until 2000 }}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{{ . }}\ndata:\n  filler: {{ repeat 100 \"x\" | quote }}\n{{- end }}\n",
            ),
        ],
    );
    let config = RendererConfig {
        max_output_bytes: 64 * 1024,
        ..RendererConfig::new(upstart_test_support::helm())
    };
    let renderer = Renderer::with_config(config).await.unwrap();
    let values = json!({});
    let caps = capabilities();
    let err = renderer
        .render(&request(&chart, &values, &caps))
        .await
        .expect_err("too large");
    assert!(
        matches!(err, Error::RenderTooLarge { limit: 65536 }),
        "{err}"
    );
}

/// A schema bomb: `values.schema.json` referring to an endless file. A helm without the schema
/// fixes (refused at startup: `helm_without_the_archive_and_schema_fixes_and_other_majors_are_refused`)
/// reads it until it runs out of memory; the pinned one fails the render at once.
#[tokio::test]
async fn a_values_schema_referring_to_dev_zero_fails_the_render() {
    let dir = tempfile::tempdir().unwrap();
    let chart = app_chart(dir.path());
    write(
        &chart,
        &[("values.schema.json", r#"{"$ref": "file:///dev/zero"}"#)],
    );
    let renderer = renderer().await;
    let values = json!({});
    let caps = capabilities();
    let err = renderer
        .render(&request(&chart, &values, &caps))
        .await
        .expect_err("the schema cannot be read");
    assert!(matches!(err, Error::HelmFailed { .. }), "{err}");
    assert!(err.to_string().contains("schema"), "{err}");
}

#[tokio::test]
async fn a_missing_chart_directory_is_a_clear_error() {
    let renderer = renderer().await;
    let values = json!({});
    let caps = capabilities();
    let missing = Path::new("/nonexistent/chart");
    let err = renderer
        .render(&request(missing, &values, &caps))
        .await
        .expect_err("missing");
    assert!(matches!(err, Error::ChartMissing { .. }), "{err}");
    assert_eq!(renderer.invocations(), 0);
}

#[tokio::test]
async fn a_missing_helm_binary_is_a_clear_startup_error() {
    let err = Renderer::new("/nonexistent/bin/helm")
        .await
        .expect_err("no helm");
    assert!(matches!(err, Error::HelmUnavailable { .. }));
    assert!(err.to_string().contains("/nonexistent/bin/helm"), "{err}");
}

/// A stand-in helm that answers `version` with `version` and runs `template_body` for the rest.
fn fake_helm(dir: &Path, version: &str, template_body: &str) -> PathBuf {
    let path = dir.join("helm");
    fs::write(
        &path,
        format!(
            "#!/bin/sh\nif [ \"$1\" = version ]; then printf '%s' '{version}'; exit 0; fi\n{template_body}\n"
        ),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test]
async fn a_helm_older_than_3_14_is_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let old = fake_helm(dir.path(), "v3.13.3", "exit 1");
    let err = Renderer::new(old).await.expect_err("too old");
    assert!(matches!(err, Error::HelmVersionUnsupported { .. }));
    assert!(err.to_string().contains("v3.13.3"), "{err}");
}

#[tokio::test]
async fn a_render_that_hangs_is_killed_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let hanging = fake_helm(dir.path(), "v4.0.0", "exec /bin/sleep 30");
    let chart = app_chart(dir.path());
    let config = RendererConfig {
        timeout: Duration::from_millis(500),
        ..RendererConfig::new(hanging)
    };
    let renderer = Renderer::with_config(config).await.unwrap();
    let values = json!({});
    let caps = capabilities();
    let start = Instant::now();
    let err = renderer
        .render(&request(&chart, &values, &caps))
        .await
        .expect_err("times out");
    assert!(matches!(err, Error::HelmTimeout { .. }), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn the_real_helm_reports_its_version() {
    let renderer = renderer().await;
    let version = renderer.helm_version();
    assert!(
        version.starts_with("v3.") || version.starts_with("v4."),
        "{version}"
    );
}

#[tokio::test]
async fn renders_waiting_for_a_helm_slot_reuse_a_render_finished_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let chart = app_chart(dir.path());
    let config = RendererConfig {
        max_concurrent: 1,
        ..RendererConfig::new(upstart_test_support::helm())
    };
    let renderer = Renderer::with_config(config).await.unwrap();
    let values = json!({"greeting": "same"});
    let caps = capabilities();
    let req = request(&chart, &values, &caps);
    let (a, b, c) = tokio::join!(
        renderer.render(&req),
        renderer.render(&req),
        renderer.render(&req)
    );
    assert_eq!(a.unwrap().manifest, b.unwrap().manifest);
    c.unwrap();
    assert_eq!(renderer.invocations(), 1);
}

#[test]
fn a_renderer_can_be_shared_between_reconcile_tasks() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<Renderer>();
    shared::<std::sync::Arc<upstart_release_engine::render::Rendered>>();
}

/// A cluster for `lookup`: discovery of core/v1 Secrets and ConfigMaps, and the objects in
/// `objects` (path → JSON); every other path answers 404. Counts the object reads.
struct FakeCluster {
    objects: std::sync::Mutex<std::collections::HashMap<String, String>>,
    object_reads: std::sync::atomic::AtomicUsize,
}

impl FakeCluster {
    fn with(objects: &[(&str, Value)]) -> std::sync::Arc<Self> {
        std::sync::Arc::new(FakeCluster {
            objects: std::sync::Mutex::new(
                objects
                    .iter()
                    .map(|(path, value)| ((*path).to_owned(), value.to_string()))
                    .collect(),
            ),
            object_reads: Default::default(),
        })
    }

    fn set(&self, path: &str, value: Value) {
        self.objects
            .lock()
            .unwrap()
            .insert(path.to_owned(), value.to_string());
    }
}

impl upstart_release_engine::lookup::ClusterReader for FakeCluster {
    fn get<'a>(
        &'a self,
        path: &'a str,
        _accept: Option<&'a str>,
    ) -> upstart_release_engine::lookup::ReadFuture<'a> {
        Box::pin(async move {
            let discovery = match path {
                "/version" => Some(json!({"major": "1", "minor": "33", "gitVersion": "v1.33.2"})),
                "/api" => Some(json!({"kind": "APIVersions", "versions": ["v1"]})),
                "/apis" => Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})),
                "/api/v1" => Some(json!({"kind": "APIResourceList", "groupVersion": "v1",
                    "resources": [
                        {"name": "secrets", "singularName": "secret", "namespaced": true,
                         "kind": "Secret", "verbs": ["get", "list"]},
                        {"name": "configmaps", "singularName": "configmap", "namespaced": true,
                         "kind": "ConfigMap", "verbs": ["get", "list"]}]})),
                _ => None,
            };
            let body = match discovery {
                Some(body) => Some(body.to_string()),
                None => {
                    self.object_reads
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    self.objects.lock().unwrap().get(path).cloned()
                }
            };
            let (status, body) = match body {
                Some(body) => (200, body),
                None => (
                    404,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "reason": "NotFound", "code": 404})
                    .to_string(),
                ),
            };
            Ok(upstart_release_engine::lookup::ReadResponse {
                status,
                content_type: Some("application/json".into()),
                body: body.into(),
            })
        })
    }
}

/// A chart keeping `password` in Secret `<release>-auth` with `lookup`, else a fixed
/// placeholder (so the test can tell which it was); `extra` files are added.
fn keeping_chart(dir: &Path, extra: &[(&str, &str)]) -> PathBuf {
    let chart = dir.join("keeping");
    write(
        &chart,
        &[
            (
                "Chart.yaml",
                "apiVersion: v2\nname: keeping\nversion: 0.1.0\n",
            ),
            (
                "templates/secret.yaml",
                "{{- $found := (lookup \"v1\" \"Secret\" .Release.Namespace (printf \"%s-auth\" .Release.Name)).data }}\n{{- $elsewhere := lookup \"v1\" \"Secret\" \"other\" \"db-auth\" }}\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}-auth\ndata:\n  password: {{ if $found }}{{ $found.password }}{{ else }}{{ \"generated\" | b64enc }}{{ end }}\n  elsewhere: {{ if $elsewhere }}{{ \"seen\" | b64enc }}{{ else }}{{ \"unseen\" | b64enc }}{{ end }}\n",
            ),
        ],
    );
    write(&chart, extra);
    chart
}

fn secret(password: &str) -> Value {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(password);
    json!({"kind": "Secret", "apiVersion": "v1",
        "metadata": {"name": "db-auth", "namespace": "team", "resourceVersion": "1"},
        "data": {"password": encoded}})
}

#[tokio::test]
async fn lookup_reads_the_release_namespace_and_a_cached_render_is_checked_against_it() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let dir = tempfile::tempdir().unwrap();
    let chart = keeping_chart(dir.path(), &[]);
    let cluster = FakeCluster::with(&[
        (
            "/api/v1/namespaces/team/secrets/db-auth",
            secret("kept-one"),
        ),
        (
            "/api/v1/namespaces/other/secrets/db-auth",
            secret("other-ns"),
        ),
    ]);
    let renderer = renderer().await.with_cluster(cluster.clone());
    let values = json!({});
    let caps = Capabilities::default();
    let request = RenderRequest {
        chart_dir: &chart,
        chart_digest: "sha256:keeping",
        release_name: "db",
        namespace: "team",
        values: &values,
        capabilities: &caps,
        is_upgrade: true,
    };
    let first = renderer.render(&request).await.unwrap();
    assert!(
        first.manifest.contains(&b64("kept-one")),
        "{}",
        first.manifest
    );
    assert!(
        first.manifest.contains(&b64("unseen")),
        "another namespace is not read"
    );
    assert!(!first.manifest.contains(&b64("other-ns")));
    assert!(first.read_the_cluster());
    assert_eq!(renderer.invocations(), 1);

    // Nothing it read changed (a new resourceVersion is not a change): the cache answers.
    let mut same = secret("kept-one");
    same["metadata"]["resourceVersion"] = json!("2");
    cluster.set("/api/v1/namespaces/team/secrets/db-auth", same);
    let again = renderer.render(&request).await.unwrap();
    assert_eq!(again.manifest, first.manifest);
    assert_eq!(renderer.invocations(), 1);

    // What it read changed: rendered again, with the new answer.
    cluster.set(
        "/api/v1/namespaces/team/secrets/db-auth",
        secret("kept-two"),
    );
    let changed = renderer.render(&request).await.unwrap();
    assert!(
        changed.manifest.contains(&b64("kept-two")),
        "{}",
        changed.manifest
    );
    assert_eq!(renderer.invocations(), 2);
}

#[tokio::test]
async fn without_the_cluster_or_without_lookup_in_the_chart_rendering_stays_offline() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let dir = tempfile::tempdir().unwrap();
    let chart = keeping_chart(dir.path(), &[]);
    let values = json!({});
    let caps = Capabilities::default();
    let request = RenderRequest {
        chart_dir: &chart,
        chart_digest: "sha256:keeping",
        release_name: "db",
        namespace: "team",
        values: &values,
        capabilities: &caps,
        is_upgrade: true,
    };
    // `upstart validate --render`: no cluster, `lookup` finds nothing.
    let offline = renderer().await.render(&request).await.unwrap();
    assert!(
        offline.manifest.contains(&b64("generated")),
        "{}",
        offline.manifest
    );
    assert!(!offline.read_the_cluster());

    // A chart that never calls lookup does not touch the cluster.
    let cluster = FakeCluster::with(&[]);
    let renderer = renderer().await.with_cluster(cluster.clone());
    let plain = app_chart(dir.path());
    let rendered = renderer
        .render(&RenderRequest {
            chart_dir: &plain,
            chart_digest: "sha256:app",
            ..request.clone()
        })
        .await
        .unwrap();
    assert!(!rendered.read_the_cluster());
    assert_eq!(
        cluster
            .object_reads
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn a_chart_with_custom_resources_of_kinds_not_served_yet_renders_offline() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let dir = tempfile::tempdir().unwrap();
    let chart = keeping_chart(
        dir.path(),
        &[(
            "templates/widget.yaml",
            "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {{ .Release.Name }}\nspec: {size: 3}\n",
        )],
    );
    let cluster = FakeCluster::with(&[(
        "/api/v1/namespaces/team/secrets/db-auth",
        secret("kept-one"),
    )]);
    let renderer = renderer().await.with_cluster(cluster);
    let values = json!({});
    let caps = Capabilities::default();
    let rendered = renderer
        .render(&RenderRequest {
            chart_dir: &chart,
            chart_digest: "sha256:widgets",
            release_name: "db",
            namespace: "team",
            values: &values,
            capabilities: &caps,
            is_upgrade: false,
        })
        .await
        .unwrap();
    assert!(rendered.manifest.contains("kind: Widget"));
    assert!(
        rendered.manifest.contains(&b64("generated")),
        "offline: lookup finds nothing"
    );
    assert!(!rendered.read_the_cluster());
}

#[tokio::test]
async fn a_failing_template_that_echoes_a_looked_up_secret_is_scrubbed() {
    let dir = tempfile::tempdir().unwrap();
    let chart = keeping_chart(
        dir.path(),
        &[(
            "templates/check.yaml",
            "{{- $s := lookup \"v1\" \"Secret\" .Release.Namespace \"db-auth\" }}\n{{- fail (printf \"password %s (%s) is too weak\" (b64dec $s.data.password) $s.data.password) }}\n",
        )],
    );
    let cluster = FakeCluster::with(&[(
        "/api/v1/namespaces/team/secrets/db-auth",
        secret("kept-secret-value"),
    )]);
    let renderer = renderer().await.with_cluster(cluster);
    let values = json!({});
    let caps = Capabilities::default();
    let error = renderer
        .render(&RenderRequest {
            chart_dir: &chart,
            chart_digest: "sha256:check",
            release_name: "db",
            namespace: "team",
            values: &values,
            capabilities: &caps,
            is_upgrade: true,
        })
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("is too weak"), "{text}");
    assert!(!text.contains("kept-secret-value"), "{text}");
    assert!(!text.contains("a2VwdC1zZWNyZXQtdmFsdWU"), "{text}");
    assert!(text.contains(REDACTED), "{text}");
}

/// A chart whose template builds a string of `.Values.times` copies of a 1 MiB value.
fn hungry_chart(dir: &Path) -> PathBuf {
    let chart = dir.join("hungry");
    write(
        &chart,
        &[
            (
                "Chart.yaml",
                "apiVersion: v2\nname: hungry\nversion: 0.1.0\n",
            ),
            (
                "templates/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  big: {{ .Values.chunk | repeat (int .Values.times) | sha256sum | quote }}\n",
            ),
        ],
    );
    chart
}

#[tokio::test]
async fn helm_runs_under_a_memory_limit_and_running_out_is_its_own_error() {
    let dir = tempfile::tempdir().unwrap();
    let chart = hungry_chart(dir.path());
    let caps = capabilities();
    let chunk = "x".repeat(1 << 20);
    let limited = |limit| {
        let config = RendererConfig {
            memory_limit: Some(limit),
            ..RendererConfig::new(upstart_test_support::helm())
        };
        Renderer::with_config(config)
    };
    // 512 MiB of string for a helm limited to 128 MiB of data.
    let renderer = limited(128 << 20).await.unwrap();
    let values = json!({"chunk": chunk, "times": 512});
    let err = renderer
        .render(&request(&chart, &values, &caps))
        .await
        .expect_err("runs out of memory");
    assert!(
        matches!(err, Error::RenderOutOfMemory { limit_mib: 128 }),
        "{err}"
    );
    assert!(
        err.needs_spec_change(),
        "the same render fails the same way"
    );
    assert_eq!(
        upstart_failure::MetricLabel::metric_label(&err),
        "render_out_of_memory"
    );
    assert!(err.to_string().contains("128 MiB"), "{err}");

    // The same chart needing little renders under the same limit.
    let values = json!({"chunk": chunk, "times": 4});
    renderer
        .render(&request(&chart, &values, &caps))
        .await
        .expect("a small render fits");
}
