//! The `upstart` command-line tool.

mod charts;
mod cluster;
mod dev;
mod diagnostic;
mod env;
mod error;
mod error_text;
mod graph;
mod model;
mod plan;
mod render;
mod rendered;
mod source;
mod status;
mod ui;
mod validate;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  upstart validate examples/services/*.yaml          check files offline (exit 1 on errors)
  upstart plan examples/environment.yaml examples/services/*.yaml
  upstart graph examples/services/*.yaml --format mermaid
  upstart graph pr-1234 --format dot | dot -Tsvg > pr-1234.svg
  upstart status pr-1234 --watch                     follow an environment until Ready
  upstart ui                                         the web view of environments (loopback)
  upstart env create pr-1234 --service shop --set shop.app.values.image.tag=pr-1234 --wait
                                                     an environment from a pipeline
  upstart dev --catalog examples/services examples/environment.yaml
                                                     local control plane with the operators
  upstart dev --charts ./charts --upstream upstart-charts=https://charts.example.com
                                                     your charts in front of the shared repository
  source <(upstart completions bash)                 shell completions";

/// Upstart: ephemeral environments on Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "upstart", version, after_help = EXAMPLES)]
struct Cli {
    /// Log format: text on terminals and JSON otherwise by default. Levels come from
    /// RUST_LOG (default `info`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Auto,
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a local control plane with the workload simulator, a chart repository serving
    /// ./charts (as `upstart-charts`) and the operators, apply FILES, and keep running until
    /// Ctrl-C / SIGTERM. Prints how to point kubectl at it.
    Dev(dev::DevArgs),

    /// Chart repositories for development: serve a chart directory over upstream
    /// repositories (with a ChartMuseum-compatible publish endpoint), pack it with its cache
    /// for a machine without network, unpack such a pack.
    #[command(after_help = "\
Examples:
  upstart charts serve ./charts --upstream upstart-charts=https://charts.example.com/stable
  curl --data-binary @mychart-0.2.0.tgz http://127.0.0.1:8879/api/charts
  upstart charts pack charts.tar.gz --charts ./charts
  upstart charts unpack charts.tar.gz --into ./charts")]
    Charts(charts::ChartsArgs),

    /// Check UpstartService, HelmRelease and UpstartEnvironment files offline: schema (as the
    /// API server would), dependencies, cycles, expressions, environment overrides.
    #[command(after_help = "\
Problems are printed as `FILE:LINE: error|warning: KIND/NAME release KEY: problem`.
Exit status: 0 when there is no error (warnings allowed unless --strict), 1 otherwise.
A dependency that is not among the files is a warning: it may exist in the cluster.

Examples:
  upstart validate examples/*.yaml examples/services/*.yaml
  upstart validate --strict service.yaml")]
    Validate(validate::ValidateArgs),

    /// Show the install order of the files' releases (levels that install together), what
    /// each waits for, the outputs it reads (`alias.outputs.KEY`) and what it publishes.
    #[command(after_help = "\
Examples:
  upstart plan examples/services/*.yaml examples/launch-darkly.yaml
  upstart plan examples/environment.yaml examples/services/*.yaml")]
    Plan(plan::PlanArgs),

    /// Draw the dependency graph of files, or of a live environment.
    #[command(after_help = "\
Arguments are files when they all exist; otherwise one argument names an UpstartEnvironment
read from the cluster (--kubeconfig, $KUBECONFIG or ~/.kube/config), with each node's phase.

Examples:
  upstart graph examples/services/*.yaml
  upstart graph examples/services/*.yaml --format dot | dot -Tsvg > graph.svg
  upstart graph pr-1234 --format mermaid")]
    Graph(graph::GraphArgs),

    /// Show an environment's services and releases live: phase, what each waits for,
    /// ready/total and time so far.
    #[command(after_help = "\
Examples:
  upstart status pr-1234
  upstart status pr-1234 --watch --timeout 15m      exit 0 once Ready, 1 on timeout
  upstart status --namespace team-a                 services and releases without an environment")]
    Status(status::StatusArgs),

    /// Environments for pipelines and people: create or update, list, get, extend, keep,
    /// delete, and diff a change against the live environment.
    #[command(after_help = "\
Exit status: 0 success, 1 error, 2 `diff` found changes, 3 a --wait ran out of time.

Examples:
  upstart env create pr-1234 --service shop --set shop.app.values.image.tag=pr-1234-abc --wait
  upstart env diff pr-1234 --service shop --set shop.app.values.image.tag=pr-1234-def
  upstart env list
  upstart env extend pr-1234 24h
  upstart env delete pr-1234 --wait --ignore-not-found")]
    Env(env::EnvArgs),

    /// Serve a web view of the cluster's environments on loopback, with your kubeconfig: the
    /// list, each environment's dependency graph live, and the catalog.
    #[command(after_help = "\
The view acts with your credentials: it shows only what you may read, and is bound to
127.0.0.1 unless --address says otherwise. Pages update live (server-sent events fed by
watches). Without --port it listens on 8480, or on a free port when 8480 is taken.

Examples:
  upstart ui                                        prints `web view: http://127.0.0.1:8480/`
  upstart ui --port 9000 --context staging")]
    Ui(ui::UiArgs),

    /// Print a completion script for a shell.
    #[command(after_help = "\
Examples:
  source <(upstart completions bash)
  upstart completions zsh > ~/.zfunc/_upstart
  upstart completions fish > ~/.config/fish/completions/upstart.fish")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let terminal = std::io::stderr().is_terminal();
    let json = match format {
        LogFormat::Auto => !terminal,
        LogFormat::Text => false,
        LogFormat::Json => true,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        // NO_COLOR (https://no-color.org) holds for logs too.
        builder
            .with_ansi(terminal && std::env::var_os("NO_COLOR").is_none())
            .init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The offline commands answer on stdout/stderr themselves and need no runtime.
    match &cli.command {
        Command::Validate(args) => return exit(validate::run(args)),
        Command::Plan(args) => return exit(plan::run(args)),
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "upstart",
                &mut std::io::stdout(),
            );
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    init_logs(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("upstart: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // `env` has exit codes of its own (diff, --wait timeouts) and prints its errors itself.
    let command = match cli.command {
        Command::Env(args) => return runtime.block_on(env::run(args)),
        command => command,
    };
    // `dev` is a long-running process whose logs are its record; the other commands answer
    // on stderr once.
    let log_failure = matches!(command, Command::Dev(_) | Command::Ui(_));
    let result = runtime.block_on(async {
        match command {
            Command::Dev(args) => dev::run(args).await.map(|()| true),
            Command::Charts(args) => charts::run(args).await.map(|()| true),
            Command::Graph(args) => graph::run(&args).await,
            Command::Status(args) => status::run(&args).await.map(|()| true),
            Command::Ui(args) => ui::run(&args).await.map(|()| true),
            Command::Validate(_)
            | Command::Plan(_)
            | Command::Env(_)
            | Command::Completions { .. } => Ok(true),
        }
    });
    match result {
        Ok(passed) => exit(passed),
        Err(error) => {
            let error = error_text::user_text(&error);
            if log_failure {
                tracing::error!(%error, "upstart failed");
            }
            eprintln!("upstart: {error}");
            ExitCode::FAILURE
        }
    }
}

fn exit(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
