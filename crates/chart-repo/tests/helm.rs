//! The real `helm` binary adds the served repository, pulls a chart from it and renders it.
//!
//! helm is found through `UPSTART_HELM`, else `.tools/bin/helm` at the workspace root (installed
//! by `scripts/bootstrap-tools`), else `PATH`; without it this test fails and says so.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::path::Path;

use upstart_chart_repo::ChartRepo;

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Runs helm with its config, cache and data kept inside `home`, so the user's repositories
/// are neither read nor changed.
async fn helm(home: &Path, args: &[&str]) -> String {
    let output = tokio::process::Command::new(upstart_test_support::helm())
        .args(args)
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .await
        .expect("helm runs");
    assert!(
        output.status.success(),
        "helm {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn helm_adds_the_repository_pulls_and_renders_a_chart() {
    let charts = tempfile::tempdir().unwrap();
    write(
        charts.path(),
        "tiny/Chart.yaml",
        "apiVersion: v2\nname: tiny\nversion: 0.3.0\nappVersion: \"2.0\"\ndescription: A tiny chart\n",
    );
    write(charts.path(), "tiny/values.yaml", "greeting: hello\n");
    write(
        charts.path(),
        "tiny/templates/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-tiny\ndata:\n  greeting: {{ .Values.greeting | quote }}\n",
    );
    write(charts.path(), "tiny/.helmignore", "notes.txt\n");
    write(charts.path(), "tiny/notes.txt", "not packaged\n");
    let repo = ChartRepo::from_dir(charts.path()).unwrap();
    let digest = repo.charts()[0].digest.clone();
    let running = repo.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();

    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    helm(h, &["repo", "add", "upstart-charts", running.url()]).await;
    let search = helm(h, &["search", "repo", "upstart-charts/tiny", "--versions"]).await;
    assert!(search.contains("0.3.0"), "{search}");

    let out = h.join("pulled");
    std::fs::create_dir_all(&out).unwrap();
    let out_str = out.to_str().unwrap();
    helm(
        h,
        &[
            "pull",
            "upstart-charts/tiny",
            "--version",
            "0.3.0",
            "-d",
            out_str,
        ],
    )
    .await;
    let pulled = std::fs::read(out.join("tiny-0.3.0.tgz")).unwrap();
    use sha2::Digest as _;
    assert_eq!(format!("{:x}", sha2::Sha256::digest(&pulled)), digest);

    let rendered = helm(
        h,
        &[
            "template",
            "demo",
            "upstart-charts/tiny",
            "--set",
            "greeting=bonjour",
        ],
    )
    .await;
    assert!(rendered.contains("name: demo-tiny"), "{rendered}");
    assert!(rendered.contains("greeting: \"bonjour\""), "{rendered}");
    running.shutdown().await;
}
