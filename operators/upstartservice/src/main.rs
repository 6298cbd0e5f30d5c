//! The `upstart-service-operator` binary (SPEC §6): flags, then the controller under the shared
//! runtime (logging, metrics and health server, leader election, graceful shutdown).

use clap::Parser;
use upstart_operator_runtime::{CommonArgs, run_operator};
use upstart_service_operator::controller::{self, Config};

#[derive(Parser)]
#[command(
    name = "upstart-service-operator",
    version,
    about = "Deploys UpstartServices: one HelmRelease per release key, wired to its dependencies",
    // Without this, clap takes the flattened CommonArgs' documentation as the long help.
    long_about = None
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> Result<(), upstart_operator_runtime::Error> {
    let cli = Cli::parse();
    let config = Config {
        catalog_namespace: cli.common.catalog_namespace.clone(),
    };
    run_operator(
        cli.common,
        "upstart-service-operator",
        move |op, shutdown| controller::run(op, config, shutdown),
    )
    .await
}
