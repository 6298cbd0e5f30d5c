//! The `upstart-helmrelease-operator` binary (SPEC §6): flags, repository configuration and
//! credentials, then the controller under the shared runtime (logging, metrics and health
//! server, leader election, graceful shutdown).

use std::path::PathBuf;

use clap::Parser;
use upstart_chart_source::RepositoryConfig;
use upstart_helmrelease_operator::Error;
use upstart_helmrelease_operator::controller::{self, Config};
use upstart_operator_runtime::{CommonArgs, OperatorContext, Shutdown, run_operator};
use upstart_release_engine::manifests::ClusterScopedAllowList;

#[derive(Parser)]
#[command(
    name = "upstart-helmrelease-operator",
    version,
    about = "Installs HelmReleases: Helm charts applied once their dependencies are Ready",
    long_about = None
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// The helm binary used for `helm template` (a missing helm is a startup error).
    #[arg(long, env = "UPSTART_HELM_PATH", default_value = "helm")]
    helm_path: PathBuf,
    /// YAML file with the chart repositories (SPEC §2.2); none: no repository is configured.
    #[arg(long, env = "UPSTART_REPOSITORY_CONFIG", value_name = "PATH")]
    repository_config: Option<PathBuf>,
    /// Namespace of the repository credential Secrets (the operator's own namespace).
    #[arg(
        long,
        env = "UPSTART_CREDENTIALS_NAMESPACE",
        default_value = "upstart-system"
    )]
    credentials_namespace: String,
    /// Chart cache directory (a writable volume: the root filesystem is read-only).
    #[arg(
        long,
        env = "UPSTART_CACHE_DIR",
        default_value = "/var/cache/upstart/charts"
    )]
    cache_dir: PathBuf,
    /// Cluster-scoped kinds a chart may create: `Kind` or `group/Kind` (repeatable).
    #[arg(
        long = "allow-cluster-scoped",
        env = "UPSTART_ALLOW_CLUSTER_SCOPED",
        value_delimiter = ','
    )]
    allow_cluster_scoped: Vec<String>,
    /// Most memory one helm process may use, in MiB (its data size; 0: no limit). A render
    /// needing more fails with its own error (RenderOutOfMemory) instead of growing the pod.
    #[arg(
        long,
        env = "UPSTART_HELM_MEMORY_LIMIT",
        value_name = "MIB",
        default_value_t = upstart_release_engine::render::DEFAULT_MEMORY_LIMIT >> 20
    )]
    helm_memory_limit: u64,
    /// The ServiceAccount, of each release's own namespace, that a HelmRelease without
    /// `spec.serviceAccountName` acts as: its chart's objects are written by impersonating it
    /// (the operator needs `impersonate` on serviceaccounts). Unset: such releases use the
    /// operator's own rights.
    #[arg(long, env = "UPSTART_DEFAULT_SERVICE_ACCOUNT", value_name = "NAME")]
    default_service_account: Option<String>,
    /// How many releases render and apply at the same time, taken by priority: a dependent
    /// whose dependencies just became Ready first, then releases others wait for. Reconciles
    /// that only observe and write status are not counted here (see
    /// --max-concurrent-reconciles).
    #[arg(
        long,
        env = "UPSTART_MAX_CONCURRENT_APPLIES",
        value_name = "N",
        default_value_t = controller::DEFAULT_MAX_CONCURRENT_APPLIES,
        value_parser = clap::builder::TypedValueParser::map(
            clap::value_parser!(u16).range(1..),
            usize::from
        )
    )]
    max_concurrent_applies: usize,
}

#[tokio::main]
async fn main() -> Result<(), upstart_operator_runtime::Error> {
    // git runs this binary as its ssh where there is no shell (the operator image).
    upstart_chart_source::exec_ssh_if_asked();
    let cli = Cli::parse();
    let common = cli.common.clone();
    run_operator(
        common,
        "upstart-helmrelease-operator",
        move |op, shutdown| operate(op, shutdown, cli),
    )
    .await
}

async fn operate(op: OperatorContext, shutdown: Shutdown, cli: Cli) -> Result<(), Error> {
    let repositories = match &cli.repository_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Config(format!("reading {}: {e}", path.display())))?;
            RepositoryConfig::from_yaml(&text).map_err(Error::ChartFetch)?
        }
        None => RepositoryConfig::default(),
    };
    let credentials =
        controller::load_credentials(&op.client, &cli.credentials_namespace, &repositories).await?;
    let config = Config {
        helm_path: cli.helm_path,
        repositories,
        credentials,
        credentials_namespace: Some(cli.credentials_namespace),
        cache_dir: cli.cache_dir,
        cluster_scoped_allow_list: ClusterScopedAllowList::new(cli.allow_cluster_scoped),
        teardown_timeout: cli.common.teardown_timeout,
        helm_memory_limit: (cli.helm_memory_limit > 0)
            .then_some(cli.helm_memory_limit.saturating_mul(1 << 20)),
        default_service_account: cli.default_service_account.filter(|name| !name.is_empty()),
        max_concurrent_applies: cli.max_concurrent_applies,
    };
    controller::run(op, config, shutdown).await
}
