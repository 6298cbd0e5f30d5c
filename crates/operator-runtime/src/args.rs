//! The command-line flags every Upstart operator shares (SPEC §6), each also settable by an
//! `UPSTART_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use kube::runtime::watcher;

use crate::ControllerConfig;

use crate::logging::LogFormat;

/// Flags shared by the three operators. Flatten them into each operator's CLI:
///
/// ```
/// use clap::Parser;
/// use upstart_operator_runtime::CommonArgs;
///
/// #[derive(Parser)]
/// struct Cli {
///     #[command(flatten)]
///     common: CommonArgs,
///     /// An operator-specific flag.
///     #[arg(long, env = "UPSTART_HELM_PATH", default_value = "helm")]
///     helm_path: String,
/// }
///
/// let cli = Cli::parse_from(["helmrelease-operator", "--namespace", "team-a"]);
/// assert_eq!(cli.common.namespace.as_deref(), Some("team-a"));
/// assert_eq!(cli.common.max_concurrent_reconciles, 8);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct CommonArgs {
    /// Kubeconfig file to use; without it `KUBECONFIG`, else the in-cluster configuration,
    /// else `~/.kube/config`.
    #[arg(long, env = "UPSTART_KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Address serving `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "UPSTART_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Log format; defaults to `json` when stdout is not a terminal, `text` otherwise.
    /// Filter with `RUST_LOG` (default `info`).
    #[arg(long, env = "UPSTART_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// How many objects are reconciled at the same time.
    #[arg(
        long,
        env = "UPSTART_MAX_CONCURRENT_RECONCILES",
        default_value_t = 8,
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub max_concurrent_reconciles: u16,

    /// Watch this namespace only (default: all namespaces).
    #[arg(long, env = "UPSTART_NAMESPACE")]
    pub namespace: Option<String>,

    /// Reconcile only objects matching this label selector, to shard the work across
    /// instances (for example `upstart.com/shard=a`).
    #[arg(long, env = "UPSTART_LABEL_SELECTOR")]
    pub label_selector: Option<String>,

    /// Run only while holding the leader election Lease (`--leader-elect` or
    /// `--leader-elect=true|false`).
    #[arg(
        long,
        env = "UPSTART_LEADER_ELECT",
        default_value_t = false,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub leader_elect: bool,

    /// Namespace of the leader election Lease (default: the pod's namespace, else the
    /// client's default namespace).
    #[arg(long, env = "UPSTART_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,

    /// Name of the leader election Lease (default: one per operator).
    #[arg(long, env = "UPSTART_LEASE_NAME")]
    pub lease_name: Option<String>,

    /// How long a leader's Lease is valid after its last renewal.
    #[arg(long, env = "UPSTART_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,

    /// How long the leader keeps retrying to renew before it gives up the leadership.
    #[arg(long, env = "UPSTART_RENEW_DEADLINE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub renew_deadline: Duration,

    /// How often candidates try to acquire and the leader renews.
    #[arg(long, env = "UPSTART_RETRY_PERIOD", default_value = "2s", value_parser = humantime::parse_duration)]
    pub retry_period: Duration,

    /// Namespace holding the UpstartService catalog.
    #[arg(
        long,
        env = "UPSTART_CATALOG_NAMESPACE",
        default_value = upstart_api::names::DEFAULT_CATALOG_NAMESPACE
    )]
    pub catalog_namespace: String,

    /// How long an environment's teardown may take before it is reported as stuck.
    #[arg(long, env = "UPSTART_TEARDOWN_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub teardown_timeout: Duration,
}

impl Default for CommonArgs {
    /// The values the flags default to.
    fn default() -> Self {
        CommonArgs {
            kubeconfig: None,
            metrics_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            log_format: None,
            max_concurrent_reconciles: 8,
            namespace: None,
            label_selector: None,
            leader_elect: false,
            leader_election_namespace: None,
            lease_name: None,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            catalog_namespace: upstart_api::names::DEFAULT_CATALOG_NAMESPACE.to_string(),
            teardown_timeout: Duration::from_secs(600),
        }
    }
}

impl CommonArgs {
    /// The log format: the flag's value, else chosen by whether stdout is a terminal.
    pub fn log_format(&self) -> LogFormat {
        self.log_format.unwrap_or_else(LogFormat::detect)
    }

    /// Watcher settings for the primary resource: the `--label-selector` shard, if any.
    pub fn watcher_config(&self) -> watcher::Config {
        let config = watcher::Config::default();
        match self.label_selector.as_deref() {
            Some(selector) if !selector.trim().is_empty() => config.labels(selector),
            _ => config,
        }
    }

    /// Controller settings: at most `--max-concurrent-reconciles` reconciles at once.
    pub fn controller_config(&self) -> ControllerConfig {
        ControllerConfig {
            concurrency: self.max_concurrent_reconciles,
        }
    }
}
