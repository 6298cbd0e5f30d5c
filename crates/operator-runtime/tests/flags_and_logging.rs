//! Flag parsing (defaults, forms, `UPSTART_*` environment) and log output selection.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use upstart_operator_runtime::{CommonArgs, LogFormat, init_logging, subscriber};

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

fn parse(args: &[&str]) -> Result<CommonArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("operator").chain(args.iter().copied())).map(|c| c.common)
}

/// Set by the parent test to run [`flags_are_read_from_upstart_environment_variables`] in a
/// child process: the environment of this process cannot be changed safely.
const CHILD: &str = "UPSTART_RUNTIME_TEST_CHILD";

#[test]
fn defaults_match_the_documented_values() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let args = parse(&[]).expect("no flags");
    assert_eq!(args, CommonArgs::default());
    assert_eq!(args.metrics_addr.to_string(), "0.0.0.0:8080");
    assert_eq!(args.max_concurrent_reconciles, 8);
    assert!(!args.leader_elect);
    assert_eq!(args.lease_duration, Duration::from_secs(15));
    assert_eq!(args.renew_deadline, Duration::from_secs(10));
    assert_eq!(args.retry_period, Duration::from_secs(2));
    assert_eq!(args.catalog_namespace, "upstart-catalog");
    assert_eq!(args.teardown_timeout, Duration::from_secs(600));
}

#[test]
fn every_flag_parses_from_the_command_line() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let args = parse(&[
        "--kubeconfig=/tmp/kc",
        "--metrics-addr=127.0.0.1:9090",
        "--log-format=text",
        "--max-concurrent-reconciles=3",
        "--namespace=team-a",
        "--label-selector=upstart.com/shard=a",
        "--leader-elect",
        "--leader-election-namespace=upstart-system",
        "--lease-name=hr",
        "--lease-duration=30s",
        "--renew-deadline=20s",
        "--retry-period=500ms",
        "--catalog-namespace=catalog",
        "--teardown-timeout=1h",
    ])
    .expect("valid flags");
    assert_eq!(
        args.kubeconfig.as_deref(),
        Some(std::path::Path::new("/tmp/kc"))
    );
    assert_eq!(args.metrics_addr.port(), 9090);
    assert_eq!(args.log_format, Some(LogFormat::Text));
    assert_eq!(args.log_format(), LogFormat::Text);
    assert_eq!(args.max_concurrent_reconciles, 3);
    assert_eq!(args.namespace.as_deref(), Some("team-a"));
    assert!(args.leader_elect);
    assert_eq!(
        args.leader_election_namespace.as_deref(),
        Some("upstart-system")
    );
    assert_eq!(args.lease_name.as_deref(), Some("hr"));
    assert_eq!(args.lease_duration, Duration::from_secs(30));
    assert_eq!(args.renew_deadline, Duration::from_secs(20));
    assert_eq!(args.retry_period, Duration::from_millis(500));
    assert_eq!(args.catalog_namespace, "catalog");
    assert_eq!(args.teardown_timeout, Duration::from_secs(3600));
    let wc = args.watcher_config();
    assert_eq!(wc.label_selector.as_deref(), Some("upstart.com/shard=a"));
}

#[test]
fn leader_election_takes_an_explicit_boolean_and_refuses_nonsense() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    assert!(parse(&["--leader-elect=true"]).expect("true").leader_elect);
    assert!(
        !parse(&["--leader-elect=false"])
            .expect("false")
            .leader_elect
    );
    assert!(parse(&["--leader-elect=maybe"]).is_err());
    assert!(parse(&["--max-concurrent-reconciles=0"]).is_err());
    assert!(parse(&["--lease-duration=soon"]).is_err());
    assert!(parse(&["--log-format=xml"]).is_err());
}

#[test]
fn flags_are_read_from_upstart_environment_variables() {
    if std::env::var_os(CHILD).is_some() {
        let args = parse(&[]).expect("flags from the environment");
        assert_eq!(args.namespace.as_deref(), Some("from-env"));
        assert!(args.leader_elect);
        assert_eq!(args.max_concurrent_reconciles, 2);
        assert_eq!(args.log_format, Some(LogFormat::Json));
        assert_eq!(args.retry_period, Duration::from_secs(1));
        assert_eq!(args.label_selector.as_deref(), Some("shard=b"));
        // The command line wins over the environment.
        assert_eq!(
            parse(&["--namespace=cli"])
                .expect("cli")
                .namespace
                .as_deref(),
            Some("cli")
        );
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let status = std::process::Command::new(exe)
        .args([
            "--exact",
            "flags_are_read_from_upstart_environment_variables",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env("UPSTART_NAMESPACE", "from-env")
        .env("UPSTART_LEADER_ELECT", "true")
        .env("UPSTART_MAX_CONCURRENT_RECONCILES", "2")
        .env("UPSTART_LOG_FORMAT", "json")
        .env("UPSTART_RETRY_PERIOD", "1s")
        .env("UPSTART_LABEL_SELECTOR", "shard=b")
        .status()
        .expect("run the child test");
    assert!(status.success(), "the child test failed");
}

#[test]
fn log_format_is_text_on_a_terminal_and_json_otherwise() {
    assert_eq!(LogFormat::for_terminal(true), LogFormat::Text);
    assert_eq!(LogFormat::for_terminal(false), LogFormat::Json);
    // Test output is captured, not a terminal.
    let args = parse(&[]).expect("no flags");
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        assert_eq!(args.log_format(), LogFormat::Json);
    }
}

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture(format: LogFormat) -> String {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = subscriber(format, move || writer.clone());
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(release = "db", "installed");
        tracing::debug!("hidden by the default info filter");
    });
    let bytes = buffer.0.lock().expect("buffer").clone();
    String::from_utf8(bytes).expect("utf-8")
}

#[test]
fn json_logs_are_one_object_per_line_with_the_fields() {
    if std::env::var_os("RUST_LOG").is_some() {
        return; // the filter assertion below assumes the default filter
    }
    let out = capture(LogFormat::Json);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let line: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON line");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["message"], "installed");
    assert_eq!(line["release"], "db");
}

#[test]
fn text_logs_are_plain_lines() {
    if std::env::var_os("RUST_LOG").is_some() {
        return;
    }
    let out = capture(LogFormat::Text);
    assert!(
        out.contains("INFO") && out.contains("installed") && out.contains("release=\"db\""),
        "{out}"
    );
    assert!(serde_json::from_str::<serde_json::Value>(out.trim()).is_err());
    assert!(!out.contains("hidden"));
}

#[test]
fn installing_logging_twice_is_harmless() {
    let first = init_logging(LogFormat::Text).expect("first");
    let second = init_logging(LogFormat::Json).expect("second");
    assert!(!second, "a second call changes nothing");
    // The first call installs unless something else in this process already did.
    let _ = first;
}
