//! The `upstart-environment-operator` binary (SPEC §6): the shared flags, then the controller
//! under the shared runtime (logging, metrics and health server, leader election, graceful
//! shutdown).

use clap::Parser;
use upstart_environment_operator::Error;
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
    }
}
