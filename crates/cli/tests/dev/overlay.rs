//! The development overlay (issue 17's done-when): `upstart dev --charts DIR --upstream
//! upstart-charts=URL` installs a local chart, an upstream-only chart and a chart pushed with
//! curl while it runs, and an environment whose `spec.chartRepositories` points an alias at the
//! overlay; `upstart charts pack` / `unpack` carry it to a fresh directory, where the same
//! releases come up with the upstream stopped.

use super::*;

/// A chart rendering one ConfigMap.
fn chart(charts: &Path, name: &str, version: &str) {
    let dir = charts.join(name);
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    write(
        &dir,
        "Chart.yaml",
        &format!("apiVersion: v2\nname: {name}\nversion: {version}\n"),
    );
    write(
        &dir.join("templates"),
        "configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ .Release.Name }}'}\n\
         data: {chart: '{{ .Chart.Name }}-{{ .Chart.Version }}'}\n",
    );
}

/// Starts `command` (printing `# PREFIX URL` on stdout) and returns it with that URL.
fn start_until(mut command: Command, prefix: &str) -> (Running, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let running = Running { child: Some(child) };
    for line in stdout.lines() {
        if let Some(url) = line.unwrap().strip_prefix(prefix) {
            return (running, url.trim().to_owned());
        }
    }
    panic!("no line starting with {prefix:?}");
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body"])
        .args(args)
        .output()
        .expect("curl runs");
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl {args:?}: {body} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    body
}

const RELEASES: &str = "\
apiVersion: upstartoperators.upstart.com/v1alpha1
kind: HelmRelease
metadata: {name: mine}
spec: {chart: upstart-charts/mine}
---
apiVersion: upstartoperators.upstart.com/v1alpha1
kind: HelmRelease
metadata: {name: remote}
spec: {chart: upstart-charts/remote}
---
apiVersion: upstartoperators.upstart.com/v1alpha1
kind: HelmRelease
metadata: {name: pushed}
spec: {chart: upstart-charts/pushed}
";

fn dev(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_upstart"));
    command
        .current_dir(dir)
        .args(["--log-format", "text", "dev", "--port", "0", "--no-ui"])
        .args(["--kubeconfig", "k.yaml"])
        .args(["--helm", upstart_test_support::helm().to_str().unwrap()])
        .args(["--workload-delay", "0s"])
        .args(args)
        .env("RUST_LOG", "warn");
    command
}

#[test]
fn local_upstream_and_pushed_charts_install_together_and_again_offline_from_an_unpacked_pack() {
    let tmp = tempfile::tempdir().unwrap();
    let here = tmp.path().join("here");
    chart(&here.join("charts"), "mine", "0.1.0");
    // The shared repository, served by `upstart charts serve`.
    let shared = tmp.path().join("shared");
    chart(&shared, "remote", "1.0.0");
    let (upstream, upstream_url) = start_until(
        {
            let mut c = Command::new(env!("CARGO_BIN_EXE_upstart"));
            c.args(["charts", "serve", shared.to_str().unwrap(), "--port", "0"]);
            c
        },
        "# chart repository: ",
    );
    // A chart packaged elsewhere, pushed while `upstart dev` runs.
    let work = tmp.path().join("work");
    chart(&work, "pushed", "0.2.0");
    let packaged = upstart_chart_repo::ChartRepo::from_dir(&work).unwrap();
    let pushed = write(tmp.path(), "pushed-0.2.0.tgz", "");
    std::fs::write(&pushed, &packaged.charts()[0].archive).unwrap();
    let releases = write(tmp.path(), "releases.yaml", RELEASES);

    let upstream_flag = format!("upstart-charts={upstream_url}");
    let (running, repo_url) = start_until(
        dev(&here, &["--charts", "charts", "--upstream", &upstream_flag]),
        "# chart repository upstart-charts: ",
    );
    let saved = curl(&[
        "--data-binary",
        &format!("@{}", pushed.display()),
        &format!("{repo_url}/api/charts"),
    ]);
    assert_eq!(saved.trim(), "{\"saved\":true}");
    kubectl_eventually(&here, &["apply", "-f", releases.to_str().unwrap()]);
    kubectl(
        &here,
        &[
            "wait",
            "--for=condition=Ready",
            "--timeout=60s",
            "helmrelease/mine",
            "helmrelease/remote",
            "helmrelease/pushed",
        ],
    );
    assert_eq!(
        kubectl(
            &here,
            &["get", "configmap", "remote", "-o", "jsonpath={.data.chart}"]
        ),
        "remote-1.0.0"
    );

    // One environment with both charts; `shared` is no configured alias: the environment's
    // spec.chartRepositories points it at the overlay.
    let environment = write(
        tmp.path(),
        "environment.yaml",
        &format!(
            "apiVersion: upstartoperators.upstart.com/v1alpha1\nkind: UpstartEnvironment\n\
             metadata: {{name: pr-1}}\nspec:\n  chartRepositories: {{shared: \"{repo_url}\"}}\n\
             \x20 services:\n  - name: shop\n    spec:\n      helmReleases:\n\
             \x20       app: {{chart: shared/mine}}\n        remote: {{chart: upstart-charts/remote}}\n"
        ),
    );
    kubectl(&here, &["apply", "-f", environment.to_str().unwrap()]);
    kubectl(
        &here,
        &[
            "wait",
            "--for=condition=Ready",
            "--timeout=60s",
            "upstartenvironment/pr-1",
        ],
    );
    assert_eq!(
        kubectl(
            &here,
            &[
                "-n",
                "pr-1",
                "get",
                "helmrelease",
                "shop-app",
                "-o",
                "jsonpath={.spec.chart}"
            ]
        ),
        format!("{repo_url}/mine")
    );
    running.stop();
    upstream.stop_quietly();

    // Carried to a fresh directory; the upstream is gone.
    let pack = tmp.path().join("charts.tar.gz");
    let packed = run({
        let mut c = Command::new(env!("CARGO_BIN_EXE_upstart"));
        c.current_dir(&here).args([
            "charts",
            "pack",
            pack.to_str().unwrap(),
            "--charts",
            "charts",
        ]);
        c
    });
    assert!(
        packed.status.success(),
        "{}",
        String::from_utf8_lossy(&packed.stderr)
    );
    assert!(
        String::from_utf8_lossy(&packed.stdout)
            .contains("packed 2 local chart(s) and 1 cached upstream archive(s)"),
        "{}",
        String::from_utf8_lossy(&packed.stdout)
    );
    let there = tmp.path().join("there");
    std::fs::create_dir_all(&there).unwrap();
    let unpacked = run({
        let mut c = Command::new(env!("CARGO_BIN_EXE_upstart"));
        c.current_dir(&there)
            .args(["charts", "unpack", pack.to_str().unwrap()]);
        c
    });
    assert!(
        unpacked.status.success(),
        "{}",
        String::from_utf8_lossy(&unpacked.stderr)
    );
    // The same charts, also as one environment.
    let offline_environment = write(
        tmp.path(),
        "offline-environment.yaml",
        "apiVersion: upstartoperators.upstart.com/v1alpha1\nkind: UpstartEnvironment\n\
         metadata: {name: offline}\nspec:\n  services:\n  - name: shop\n    spec:\n\
         \x20     helmReleases:\n        app: {chart: upstart-charts/mine}\n\
         \x20       remote: {chart: upstart-charts/remote}\n\
         \x20       pushed: {chart: upstart-charts/pushed}\n",
    );
    let offline = run({
        let mut c = dev(
            &there,
            &[
                "--exit-when-ready",
                "--ready-timeout",
                "60s",
                releases.to_str().unwrap(),
                offline_environment.to_str().unwrap(),
            ],
        );
        c.env("RUST_LOG", "info");
        c
    });
    let stderr = String::from_utf8_lossy(&offline.stderr);
    assert!(offline.status.success(), "{stderr}");
    assert!(
        stderr.contains("serving the charts kept in the cache of this upstream"),
        "{stderr}"
    );
}

#[test]
fn an_upstream_with_a_password_is_refused_without_showing_it() {
    let stderr = refused_flags(&[
        "--upstream",
        "shared=https://robot:s3cret@charts.example.com",
    ]);
    assert!(
        stderr.contains("upstreams that need credentials are not supported"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
}
