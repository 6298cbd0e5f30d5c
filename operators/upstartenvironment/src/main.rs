//! The `upstart-environment-operator` binary (SPEC §6): the shared flags, then the controller
//! under the shared runtime (logging, metrics and health server, leader election, graceful
//! shutdown).

use clap::Parser;
use upstart_environment_operator::Error;
use upstart_environment_operator::controller::{self, Config};
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
    }
}
