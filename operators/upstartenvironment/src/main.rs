//! The `upstart-environment-operator` binary (SPEC §6): the shared flags, then the controller
//! under the shared runtime (logging, metrics and health server, leader election, graceful
//! shutdown).

use clap::Parser;
use std::collections::BTreeMap;

use upstart_environment_operator::Error;
use upstart_environment_operator::admission::{self, Limits};
use upstart_environment_operator::controller::{self, Config};
use upstart_environment_operator::tenancy::ReleaseAccess;
use upstart_operator_runtime::{CommonArgs, OperatorContext, Shutdown, run_operator};

#[derive(Parser)]
#[command(
    name = "upstart-environment-operator",
    version,
    about = "Provisions UpstartEnvironments: an isolated, expiring namespace with every service it needs",
    // Without this the flattened CommonArgs doc comment becomes the long help text.
    long_about = None
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Give each environment namespace the ServiceAccount `upstart-release`, bound there by a
    /// RoleBinding to this ClusterRole, and make every release of the environment act as it
    /// (`serviceAccountName`): charts then create only what the ClusterRole allows, in their
    /// namespace. The operator needs `bind` on the ClusterRole. Unset: no account is made.
    #[arg(long, env = "UPSTART_RELEASE_CLUSTER_ROLE", value_name = "CLUSTERROLE")]
    release_cluster_role: Option<String>,
    /// At most this many environments at once; one more is refused (phase Refused, reason
    /// CapReached, nothing created) and starts by itself once another is deleted.
    #[arg(long, env = "UPSTART_MAX_ENVIRONMENTS", value_name = "N")]
    max_environments: Option<usize>,
    /// At most this many environments per requester (the requester annotation that
    /// `upstart env create` sets), refused as with --max-environments.
    #[arg(long, env = "UPSTART_MAX_ENVIRONMENTS_PER_REQUESTER", value_name = "N")]
    max_environments_per_requester: Option<usize>,
    /// The ResourceQuota `hard` of each environment namespace, under its `spec.quota.hard`
    /// (e.g. `requests.cpu=4,limits.memory=8Gi,pods=30`).
    #[arg(long, env = "UPSTART_DEFAULT_QUOTA", value_name = "RESOURCE=QUANTITY,...", value_parser = admission::parse_resource_list, default_value = "")]
    default_quota: BTreeMap<String, String>,
    /// The most an environment may ask for in `spec.quota` (above: refused, reason
    /// QuotaAboveMaximum); a resource named here and set nowhere else gets this value.
    #[arg(long, env = "UPSTART_MAX_QUOTA", value_name = "RESOURCE=QUANTITY,...", value_parser = admission::parse_resource_list, default_value = "")]
    max_quota: BTreeMap<String, String>,
    /// The LimitRange's default requests for containers that set none (e.g.
    /// `cpu=100m,memory=128Mi`).
    #[arg(long, env = "UPSTART_DEFAULT_CONTAINER_REQUESTS", value_name = "RESOURCE=QUANTITY,...", value_parser = admission::parse_resource_list, default_value = "")]
    default_container_requests: BTreeMap<String, String>,
    /// The LimitRange's default limits for containers that set none (e.g. `memory=512Mi`).
    #[arg(long, env = "UPSTART_DEFAULT_CONTAINER_LIMITS", value_name = "RESOURCE=QUANTITY,...", value_parser = admission::parse_resource_list, default_value = "")]
    default_container_limits: BTreeMap<String, String>,
}

#[tokio::main]
async fn main() -> Result<(), upstart_operator_runtime::Error> {
    let cli = Cli::parse();
    let common = cli.common.clone();
    run_operator(
        common,
        "upstart-environment-operator",
        move |op, shutdown| operate(op, shutdown, cli),
    )
    .await
}

async fn operate(op: OperatorContext, shutdown: Shutdown, cli: Cli) -> Result<(), Error> {
    let config = Config {
        catalog_namespace: cli.common.catalog_namespace,
        teardown_timeout: cli.common.teardown_timeout,
        release_access: cli
            .release_cluster_role
            .filter(|role| !role.is_empty())
            .map(ReleaseAccess::bound_to),
        limits: Limits {
            max_environments: cli.max_environments,
            max_per_requester: cli.max_environments_per_requester,
            default_quota: cli.default_quota,
            max_quota: cli.max_quota,
            default_container_requests: cli.default_container_requests,
            default_container_limits: cli.default_container_limits,
        },
    };
    controller::run(op, config, shutdown).await
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn flags_are_consistent_and_help_describes_this_operator() {
        Cli::command().debug_assert();
        let help = Cli::command().render_long_help().to_string();
        assert!(help.starts_with("Provisions UpstartEnvironments"), "{help}");
        let cli = Cli::parse_from([
            "upstart-environment-operator",
            "--catalog-namespace",
            "templates",
            "--teardown-timeout",
            "90s",
        ]);
        assert_eq!(cli.common.catalog_namespace, "templates");
        assert_eq!(
            cli.common.teardown_timeout,
            std::time::Duration::from_secs(90)
        );
        assert_eq!(cli.release_cluster_role, None);
        let cli = Cli::parse_from([
            "upstart-environment-operator",
            "--release-cluster-role",
            "upstart-release-edit",
        ]);
        assert_eq!(
            cli.release_cluster_role.as_deref(),
            Some("upstart-release-edit")
        );
        assert_eq!(cli.max_environments, None);
        assert!(cli.default_quota.is_empty());
        let cli = Cli::parse_from([
            "upstart-environment-operator",
            "--max-environments",
            "20",
            "--max-environments-per-requester",
            "3",
            "--max-quota",
            "requests.cpu=8,limits.memory=16Gi",
        ]);
        assert_eq!(
            (cli.max_environments, cli.max_environments_per_requester),
            (Some(20), Some(3))
        );
        assert_eq!(cli.max_quota["limits.memory"], "16Gi");
        assert!(
            Cli::try_parse_from(["upstart-environment-operator", "--max-quota", "cpu=lots"])
                .is_err()
        );
    }
}
