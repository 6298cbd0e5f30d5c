//! Chart repositories: other repositories, unlisted URLs and cluster roles installed with the
//! dev flags, a repositories config file used as the operator uses it (flags override it), a
//! repository named `upstart-charts` winning over the charts directory, and a repository URL
//! with a password refused without showing it.

use super::*;

/// A second chart repository, as a user would serve a directory: another `upstart dev`, with
/// no operators, serving it as its `upstart-charts`. Returns it and its URL.
fn serve_charts(dir: &Path) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_upstart"))
        .current_dir(dir)
        .args(["dev", "--no-operators", "--port", "0"])
        .args(["--kubeconfig", "repo-kubeconfig", "--charts", "charts"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let running = Running { child: Some(child) };
    for line in stdout.lines() {
        if let Some(url) = line
            .unwrap()
            .strip_prefix("# chart repository upstart-charts: ")
        {
            return (running, url.trim_end_matches('/').to_owned());
        }
    }
    panic!("the chart repository did not start");
}

/// Charts nobody configured in `upstart dev`: `hello` (a ConfigMap) and `reader` (a
/// ClusterRole, as ingress-nginx or kube-state-metrics render).
fn other_charts(dir: &Path) {
    for (name, template) in [
        (
            "hello",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ .Release.Name }}'}\n\
             data: {chart: '{{ .Chart.Name }}'}\n",
        ),
        (
            "reader",
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\n\
             metadata: {name: '{{ .Release.Namespace }}-{{ .Release.Name }}'}\n\
             rules: [{apiGroups: [''], resources: [pods], verbs: [get]}]\n",
        ),
    ] {
        let chart = dir.join("charts").join(name);
        std::fs::create_dir_all(chart.join("templates")).unwrap();
        write(
            &chart,
            "Chart.yaml",
            &format!("apiVersion: v2\nname: {name}\nversion: 1.0.0\n"),
        );
        write(&chart.join("templates"), "objects.yaml", template);
    }
}

fn helm_releases(charts: &[(&str, &str)]) -> String {
    charts
        .iter()
        .map(|(name, chart)| {
            format!(
                "apiVersion: upstartoperators.upstart.com/v1alpha1\nkind: HelmRelease\n\
                 metadata: {{name: {name}}}\nspec: {{chart: \"{chart}\"}}\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// `upstart dev` with its operators, waiting at most `timeout` for `args` (with no charts
/// directory unless `args` gives one).
fn dev_with_operators(dir: &Path, timeout: &str, args: &[&str]) -> Output {
    let charts = if args.contains(&"--charts") {
        &[][..]
    } else {
        &["--charts", "no-charts"][..]
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_upstart"));
    command
        .current_dir(dir)
        .args(["--log-format", "text", "dev", "--port", "0"])
        .args(["--kubeconfig", "k.yaml"])
        .args(charts)
        .args(["--helm", upstart_test_support::helm().to_str().unwrap()])
        .args(["--workload-delay", "0s", "--exit-when-ready"])
        .args(["--ready-timeout", timeout])
        .args(args)
        .env("RUST_LOG", "warn");
    run(command)
}

#[test]
fn charts_of_other_repositories_unlisted_urls_and_cluster_roles_install_with_the_dev_flags() {
    let tmp = tempfile::tempdir().unwrap();
    other_charts(tmp.path());
    let (repo, url) = serve_charts(tmp.path());
    let releases = write(
        tmp.path(),
        "releases.yaml",
        &helm_releases(&[
            ("hello", "other/hello"),
            ("direct", &format!("{url}/hello")),
            ("reader", "other/reader"),
        ]),
    );
    let releases = releases.to_str().unwrap();

    // Today's configuration: nothing but upstart-charts, and no cluster-scoped kind.
    let out = dev_with_operators(tmp.path(), "3s", &[releases]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for refusal in [
        "HelmRelease default/hello is Ready=False (ChartFetchFailed",
        "HelmRelease default/direct is Ready=False (ChartFetchFailed",
        "HelmRelease default/reader is Ready=False (ChartFetchFailed",
    ] {
        assert!(stderr.contains(refusal), "{refusal}:\n{stderr}");
    }

    let repository = format!("other={url}");
    let out = dev_with_operators(
        tmp.path(),
        "30s",
        &[
            "--repository",
            &repository,
            "--allow-unlisted",
            "--allow-cluster-scoped",
            "rbac.authorization.k8s.io/ClusterRole",
            releases,
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!("# chart repository other: {url}")),
        "{stdout}"
    );

    // The ClusterRole alone, without the allow-list: refused as the operator refuses it.
    let reader = write(
        tmp.path(),
        "reader.yaml",
        &helm_releases(&[("reader", "other/reader")]),
    );
    let out = dev_with_operators(
        tmp.path(),
        "3s",
        &["--repository", &repository, reader.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("HelmRelease default/reader is Ready=False (ClusterScopedNotAllowed"),
        "{stderr}"
    );
    repo.stop_quietly();
}

#[test]
fn a_repositories_config_file_is_used_as_the_operator_uses_it_and_flags_override_it() {
    let tmp = tempfile::tempdir().unwrap();
    other_charts(tmp.path());
    let (repo, url) = serve_charts(tmp.path());
    let releases = write(
        tmp.path(),
        "releases.yaml",
        &helm_releases(&[
            ("hello", "other/hello"),
            ("direct", &format!("{url}/hello")),
        ]),
    );
    // As the operators' chart renders its ConfigMap.
    let config = write(
        tmp.path(),
        "repositories.yaml",
        &format!(
            "repositories:\n  other:\n    url: {url}\nallowUnlisted: true\n\
             unlistedPlainHttp: false\nindexTtl: \"5m\"\nlimits:\n  fetchTimeout: \"10s\"\n"
        ),
    );
    let config = config.to_str().unwrap();
    let out = dev_with_operators(
        tmp.path(),
        "30s",
        &["--repositories-config", config, releases.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    // A --repository of the file's name replaces the file's entry, whatever the order.
    let dead = write(
        tmp.path(),
        "dead.yaml",
        "repositories:\n  other: {url: \"http://127.0.0.1:1\"}\n",
    );
    let hello = write(
        tmp.path(),
        "hello.yaml",
        &helm_releases(&[("hello", "other/hello")]),
    );
    let repository = format!("other={url}");
    let out = dev_with_operators(
        tmp.path(),
        "30s",
        &[
            "--repository",
            &repository,
            "--repositories-config",
            dead.to_str().unwrap(),
            hello.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!("# chart repository other: {url}")),
        "{stdout}"
    );
    repo.stop_quietly();
}

#[test]
fn a_repository_named_upstart_charts_wins_over_the_charts_directory() {
    let tmp = tempfile::tempdir().unwrap();
    other_charts(tmp.path());
    let (repo, url) = serve_charts(tmp.path());
    // The local directory has no `hello`: only the repository given by name serves it.
    std::fs::create_dir_all(tmp.path().join("local/tiny")).unwrap();
    write(
        &tmp.path().join("local/tiny"),
        "Chart.yaml",
        "apiVersion: v2\nname: tiny\nversion: 0.1.0\n",
    );
    let hello = write(
        tmp.path(),
        "hello.yaml",
        &helm_releases(&[("hello", "upstart-charts/hello")]),
    );
    let repository = format!("upstart-charts={url}");
    let out = dev_with_operators(
        tmp.path(),
        "30s",
        &[
            "--charts",
            "local",
            "--repository",
            &repository,
            hello.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let repositories: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("# chart repository"))
        .collect();
    assert_eq!(
        repositories,
        [format!("# chart repository upstart-charts: {url}")],
        "{stdout}"
    );
    repo.stop_quietly();
}

#[test]
fn a_configured_repository_url_with_a_password_is_refused_without_showing_it() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write(
        tmp.path(),
        "repositories.yaml",
        "repositories:\n  mirror: {url: \"https://robot:hunter2@127.0.0.1:1/charts\"}\n",
    );
    let stderr = refused_flags(&["--repositories-config", config.to_str().unwrap()]);
    assert!(
        stderr.contains("repository \"mirror\"")
            && stderr.contains("carries credentials; use credentialsSecret instead"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
