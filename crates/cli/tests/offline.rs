//! The offline commands as a user runs them from the repository root: `validate` accepts every
//! example and refuses each file of examples/broken with the message its `# expect:` line
//! gives; `plan` and `graph` describe the example services; completions and help work.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    upstart_test_support::workspace_root()
}

/// Runs `upstart ARGS` in the workspace root, without colour.
fn upstart(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_upstart"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// YAML files under `dir` (relative to the root), sorted, as relative paths.
fn yaml_files(dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root().join(dir)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let relative = path.strip_prefix(root()).unwrap();
                out.push(relative.display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn examples() -> Vec<String> {
    yaml_files("examples")
        .into_iter()
        .filter(|f| !f.starts_with("examples/broken/"))
        .collect()
}

#[test]
fn validate_accepts_every_example_alone_and_all_together() {
    let files = examples();
    assert!(files.len() >= 4, "{files:?}");
    for file in &files {
        let out = upstart(&["validate", file]);
        assert!(out.status.success(), "{file}: {}", text(&out.stderr));
        assert!(
            !text(&out.stderr).contains("error"),
            "{file}: {}",
            text(&out.stderr)
        );
    }
    let mut args = vec!["validate", "--strict"];
    args.extend(files.iter().map(String::as_str));
    let out = upstart(&args);
    assert!(
        out.status.success(),
        "together, every dependency resolves: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("0 error(s), 0 warning(s)"),
        "{}",
        text(&out.stdout)
    );
}

/// The original write-up's UpstartService (CI passes its folder in `UPSTART_FIXTURES_DIR`).
#[test]
fn validate_accepts_the_write_up_service() {
    let Some(dir) = std::env::var_os("UPSTART_FIXTURES_DIR") else {
        eprintln!("skipping: UPSTART_FIXTURES_DIR unset");
        return;
    };
    let path = Path::new(&dir).join("writeup-upstart-service.yaml");
    let path = path.to_str().unwrap();
    let out = upstart(&["validate", path]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // With the objects it depends on, nothing is left unresolved. The write-up names the
    // LaunchDarkly release literally, as an environment called my-environment-name names it:
    // examples/launch-darkly.yaml (named by its key) under that name.
    let dir = tempfile::tempdir().unwrap();
    let launch_darkly = dir.path().join("launch-darkly.yaml");
    let yaml = std::fs::read_to_string(root().join("examples/launch-darkly.yaml")).unwrap();
    let renamed = yaml.replace(
        "\n  name: launch-darkly\n",
        "\n  name: my-environment-name-launch-darkly\n",
    );
    assert_ne!(
        renamed, yaml,
        "examples/launch-darkly.yaml names the release launch-darkly"
    );
    std::fs::write(&launch_darkly, renamed).unwrap();
    let out = upstart(&[
        "validate",
        "--strict",
        path,
        launch_darkly.to_str().unwrap(),
        "examples/services/another-upstart-service.yaml",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn validate_refuses_each_broken_example_with_file_line_release_and_problem() {
    let files = yaml_files("examples/broken");
    assert!(files.len() >= 8, "{files:?}");
    let mut mismatches = Vec::new();
    for file in files {
        let content = std::fs::read_to_string(root().join(&file)).unwrap();
        let expected = content
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{file} has no `# expect:` line"));
        let out = upstart(&["validate", &file]);
        let stderr = text(&out.stderr);
        let wanted = format!("{file}:{expected}");
        if out.status.success() {
            mismatches.push(format!("{file}: accepted\n{stderr}"));
        } else if !stderr.lines().any(|l| l.starts_with(&wanted)) {
            mismatches.push(format!(
                "{file}:\n  expected a line starting with: {wanted}\n  got:\n{stderr}"
            ));
        } else if stderr.lines().filter(|l| l.contains(": error: ")).count() != 1 {
            mismatches.push(format!("{file}: expected exactly one error\n{stderr}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn validate_reads_the_yaml_files_of_a_directory() {
    let out = upstart(&["validate", "examples/services"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("2 file(s), 2 Upstart object(s): 0 error(s)"),
        "{}",
        text(&out.stdout)
    );
    let out = upstart(&["validate", "examples/broken"]);
    assert!(!out.status.success());
}

#[test]
fn validate_fails_on_a_missing_file_and_on_warnings_with_strict() {
    let out = upstart(&["validate", "examples/does-not-exist.yaml"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("examples/does-not-exist.yaml: error: cannot read"),
        "{}",
        text(&out.stderr)
    );

    let service = "examples/services/example-service.yaml";
    let out = upstart(&["validate", service]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(": warning: UpstartService/example-service release exampleService: dependency another-upstart-service is not among the files"),
        "{stderr}"
    );
    let out = upstart(&["validate", "--strict", service]);
    assert!(!out.status.success(), "--strict fails on warnings");
}

#[test]
fn validate_can_print_github_annotations() {
    let out = upstart(&[
        "validate",
        "--format",
        "github",
        "examples/broken/cycle.yaml",
    ]);
    assert!(!out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("::error file=examples/broken/cycle.yaml,line=13,title=UpstartService/cyclic release api::dependency cycle: cyclic/api -> cyclic/worker -> cyclic/api"),
        "{stdout}"
    );
}

#[test]
fn plan_lists_levels_waits_consumed_outputs_and_what_each_publishes() {
    let out = upstart(&[
        "plan",
        "examples/services/example-service.yaml",
        "examples/services/another-upstart-service.yaml",
        "examples/launch-darkly.yaml",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    let lines: Vec<&str> = plan.lines().collect();
    let position = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{plan}"))
    };
    assert!(
        plan.starts_with("Plan for the current namespace: 6 release(s), 4 level(s)"),
        "{plan}"
    );
    // Everything without a dependency installs first, together.
    let level1 = position("Level 1: installs at once");
    let level3 = position("Level 3: installs once level 2 is Ready");
    for release in [
        "  example-service/bugsnag  upstart-charts/bugsnag-project 0.1.0",
        "  example-service/postgres  upstart-charts/postgres 0.1.3",
        "  another-upstart-service/web  upstart-charts/example-service ^0.1",
        "  launch-darkly  upstart-charts/launch-darkly >=0.1.0 <1.0.0",
    ] {
        let at = position(release);
        assert!(level1 < at && at < level3, "{release} in level 1:\n{plan}");
    }
    let app = position("  example-service/exampleService  upstart-charts/example-service ^0.1");
    assert!(app > level3, "{plan}");
    assert!(lines[app + 1].contains("waits for: example-service/bugsnag, example-service/postgres, example-service/redis, launch-darkly, another-upstart-service (UpstartService)"), "{plan}");
    assert!(
        lines[app + 2].contains(
            "consumes:  another-upstart-service.outputs.url, bugsnag.outputs.BUGSNAG_API_KEY"
        ),
        "{plan}"
    );
    assert!(
        lines[app + 2].contains("postgres.outputs.POSTGRES_PASSWORD"),
        "{plan}"
    );
    assert!(
        lines[app + 3].contains("publishes: ConfigMap/outputs (all keys; external)"),
        "{plan}"
    );
    assert!(
        plan.contains(
            "publishes: Secret/postgres (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, PG_HOST)"
        ),
        "{plan}"
    );
    assert!(
        plan.contains(
            "UpstartService another-upstart-service  Ready when its 1 release(s) are; exports url"
        ),
        "{plan}"
    );
}

#[test]
fn plan_refuses_files_with_errors() {
    let out = upstart(&["plan", "examples/broken/cycle.yaml"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("dependency cycle"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).is_empty());
}

#[test]
fn graph_draws_the_example_services_in_each_format() {
    let files = [
        "examples/services/example-service.yaml",
        "examples/services/another-upstart-service.yaml",
    ];
    let run = |format: &str| {
        let mut args = vec!["graph"];
        args.extend(files);
        args.extend(["--format", format]);
        let out = upstart(&args);
        assert!(out.status.success(), "{format}: {}", text(&out.stderr));
        text(&out.stdout)
    };

    let ascii = run("ascii");
    assert!(
        ascii.starts_with("the current namespace\nlevel 1\n"),
        "{ascii}"
    );
    assert!(
        ascii.contains("  example-service/exampleService\n    ├─-> example-service/bugsnag\n"),
        "{ascii}"
    );
    assert!(
        ascii.contains("    ├─-> another-upstart-service (UpstartService)\n"),
        "{ascii}"
    );
    assert!(ascii.contains("-> launch-darkly (not found)"), "{ascii}");

    let dot = run("dot");
    assert!(dot.contains("digraph upstart {"), "{dot}");
    assert!(
        dot.contains("label=\"UpstartService example-service\";"),
        "{dot}"
    );
    assert!(dot.contains("[label=\"exampleService\"]"), "{dot}");
    assert!(
        dot.contains("[label=\"launch-darkly\\n(not found)\", style=dashed]"),
        "{dot}"
    );
    let edges = dot.lines().filter(|l| l.contains(" -> n")).count();
    assert_eq!(
        edges, 4,
        "exampleService's four resolved dependencies:\n{dot}"
    );

    let mermaid = run("mermaid");
    assert!(mermaid.starts_with("flowchart RL\n"), "{mermaid}");
    assert!(mermaid.contains("[\"example-service\"]"), "{mermaid}");
    assert!(mermaid.contains("(\"exampleService\")"), "{mermaid}");
    assert_eq!(
        mermaid.lines().filter(|l| l.contains(" --> ")).count(),
        4,
        "{mermaid}"
    );
}

#[test]
fn graph_of_an_unknown_name_reads_the_cluster_and_says_what_failed() {
    let out = Command::new(env!("CARGO_BIN_EXE_upstart"))
        .args([
            "graph",
            "no-such-environment",
            "--kubeconfig",
            "does/not/exist",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("kubeconfig does/not/exist"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn graph_of_a_missing_file_says_so_instead_of_asking_the_cluster() {
    let out = upstart(&["graph", "examples/servcies.yaml"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("examples/servcies.yaml: no such file"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn colour_is_used_only_when_asked_for_or_on_a_terminal() {
    let run = |force: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_upstart"));
        command
            .args(["validate", "examples/broken/cycle.yaml"])
            .current_dir(root())
            .env_remove("NO_COLOR");
        if force {
            command.env("CLICOLOR_FORCE", "1");
        } else {
            command.env_remove("CLICOLOR_FORCE");
        }
        text(&command.output().unwrap().stderr)
    };
    assert!(run(true).contains("\u{1b}["), "forced colour");
    assert!(!run(false).contains('\u{1b}'), "a pipe gets plain text");
}

#[test]
fn completions_are_generated_for_each_shell() {
    for (shell, marker) in [
        ("bash", "_upstart()"),
        ("zsh", "#compdef upstart"),
        ("fish", "complete -c upstart"),
    ] {
        let out = upstart(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("validate"), "{shell} completes subcommands");
    }
}

#[test]
fn help_shows_examples() {
    let out = upstart(&["--help"]);
    let help = text(&out.stdout);
    assert!(help.contains("Examples:"), "{help}");
    assert!(help.contains("upstart status pr-1234 --watch"), "{help}");
    let out = upstart(&["validate", "--help"]);
    assert!(text(&out.stdout).contains("FILE:LINE: error|warning: KIND/NAME release KEY: problem"));
}

/// Two services of one environment, written independently by two squads: each has a
/// `postgres` (the second renamed with `releaseName`, as a user fixes the release-name clash)
/// and an app on the example-service chart, which publishes a fixed ConfigMap `outputs`.
const TWO_SQUADS: &str = r#"
apiVersion: upstartoperators.upstart.com/v1alpha1
kind: UpstartService
metadata: {name: orders, namespace: upstart-catalog}
spec:
  helmReleases:
    postgres:
      chart: upstart-charts/postgres
      version: 0.1.3
      outputsFrom: [{secretRef: {name: postgres}}]
    api:
      chart: upstart-charts/example-service
      version: ^0.1
      dependencies: [{name: postgres}]
      outputsFrom: [{configMapRef: {name: outputs}, scope: external}]
      values:
        global: {env: {DB_PASSWORD: "<< postgres.outputs.POSTGRES_PASSWORD >>"}}
---
apiVersion: upstartoperators.upstart.com/v1alpha1
kind: UpstartService
metadata: {name: billing, namespace: upstart-catalog}
spec:
  helmReleases:
    postgres:
      chart: upstart-charts/postgres
      version: 0.1.3
      releaseName: billing-postgres
      outputsFrom: [{secretRef: {name: billing-postgres}}]
    web:
      chart: upstart-charts/example-service
      version: ^0.1
      outputsFrom: [{configMapRef: {name: outputs}, scope: external}]
---
apiVersion: upstartoperators.upstart.com/v1alpha1
kind: UpstartEnvironment
metadata: {name: pr-7}
spec:
  services:
    - {name: orders, template: {name: orders}}
    - {name: billing, template: {name: billing}}
"#;

fn helm() -> String {
    upstart_test_support::helm().display().to_string()
}

#[test]
fn validate_warns_when_two_releases_of_an_environment_publish_the_same_object() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("two-squads.yaml");
    std::fs::write(&file, TWO_SQUADS).unwrap();
    let out = upstart(&["validate", file.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: UpstartService/billing release web: ConfigMap/outputs is published by orders/api too (in namespace pr-7 (UpstartEnvironment pr-7))")
            || stderr.contains("warning: UpstartService/orders release api: ConfigMap/outputs is published by billing/web too (in namespace pr-7 (UpstartEnvironment pr-7))"),
        "{stderr}"
    );
}

#[test]
fn validate_render_reports_an_object_two_services_of_an_environment_both_render_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("two-squads.yaml");
    std::fs::write(&file, TWO_SQUADS).unwrap();
    let out = upstart(&[
        "validate",
        "--render",
        "--helm",
        &helm(),
        file.to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains(": error: ")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    let error = errors[0];
    assert!(
        error.contains("renders ConfigMap/outputs, which"),
        "{error}"
    );
    assert!(
        error.contains("orders/api") || error.contains("release api"),
        "{error}"
    );
    assert!(
        error.contains("billing/web") || error.contains("release web"),
        "{error}"
    );
    // The example postgres chart names its output Secret after the release: the renamed
    // second postgres no longer collides with the first.
    assert!(!stderr.contains("Secret/postgres"), "{stderr}");
}

#[test]
fn validate_render_accepts_the_example_environment_with_its_catalog() {
    let out = upstart(&[
        "validate",
        "--strict",
        "--render",
        "--helm",
        &helm(),
        "examples/environment.yaml",
        "examples/services",
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn validate_render_without_a_chart_directory_names_the_chart_and_the_flag() {
    let out = upstart(&[
        "validate",
        "--render",
        "--helm",
        &helm(),
        "--charts",
        "no-such-dir",
        "examples/launch-darkly.yaml",
    ]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("chart upstart-charts/launch-darkly: no chart directory at no-such-dir/launch-darkly (pass --charts DIR)"),
        "{stderr}"
    );
}
