//! The examples brought up the way users and CI do: `upstart dev --exit-when-ready` with a
//! HelmRelease of an example chart, and the README's main job (`scripts/demo`: the example
//! environment with its catalog, then the tree and the resolved wiring), both with the
//! built-in operators and `charts/` as the chart repository.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::process::{Command, Output};

use upstart_test_support::workspace_root;

fn upstart() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_upstart"));
    command
        .current_dir(workspace_root())
        .env("UPSTART_HELM", upstart_test_support::helm());
    command
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn dev_brings_the_example_helmrelease_to_ready_with_the_charts_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let output = upstart()
        .args(["--log-format", "text", "dev", "--port", "0", "--kubeconfig"])
        .arg(tmp.path().join("kubeconfig"))
        .args([
            "--exit-when-ready",
            "--ready-timeout",
            "60s",
            "--print-wiring",
            "examples/launch-darkly.yaml",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("every applied object is Ready objects=1"),
        "{stderr}"
    );
    assert!(stdout.contains("✔ launch-darkly        Ready"), "{stdout}");
}

#[test]
fn main_job_brings_up_the_example_environment_and_prints_its_wiring_with_secrets_masked() {
    let output = Command::new(workspace_root().join("scripts/demo"))
        .env("UPSTART_BIN", env!("CARGO_BIN_EXE_upstart"))
        .env("UPSTART_HELM", upstart_test_support::helm())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");

    // Progress went to stderr while it installed.
    assert!(
        stderr.contains("waiting: UpstartEnvironment my-environment-name is Ready=False"),
        "{stderr}"
    );

    // The tree: the environment Ready with both services and every release.
    assert!(
        stdout.contains(
            "UpstartEnvironment my-environment-name (namespace my-environment-name)  Ready  \
             services 2/2  releases 6/6"
        ),
        "{stdout}"
    );
    for release in [
        "bugsnag",
        "exampleService",
        "postgres",
        "redis",
        "web",
        "launch-darkly",
    ] {
        assert!(
            stdout.lines().any(|l| l.contains(&format!("✔ {release} "))),
            "{release} Ready in\n{stdout}"
        );
    }

    // The wiring: every variable of the example service, resolved from its dependencies'
    // outputs, with secrets masked.
    let wiring: Vec<&str> = stdout
        .lines()
        .skip_while(|l| {
            !l.starts_with("HelmRelease my-environment-name/example-service-example-service")
        })
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(str::trim)
        .collect();
    assert_eq!(
        wiring,
        [
            "ANOTHER_UPSTART_SERVICE_URL=http://web.my-environment-name.svc.cluster.local:80",
            "BUGSNAG_API_KEY=********",
            "DATABASE_URL=postgres://postgres:********@postgres.my-environment-name.svc.cluster.local:5432/my_service",
            "LAUNCHDARKLY_SDK_KEY=********",
            "REDIS_BACKEND_URI=redis://redis.my-environment-name.svc.cluster.local:6379/1",
            "RELEASE=my-environment-name/example-service-example-service",
        ],
        "{stdout}"
    );
    assert!(
        !stdout.contains("sdk-") && !stderr.contains("sdk-"),
        "the LaunchDarkly key never shows"
    );
}
