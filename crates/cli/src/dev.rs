//! `upstart dev`: a local control plane with the workload simulator, the chart repository
//! and the operators, with the given files applied.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use upstart_chart_repo::{ChartRepo, RunningRepo};
use upstart_control_plane::ControlPlane;
use upstart_workload_simulator::Simulator;

use crate::apply::{apply_all, wait_ready};
use crate::error::Error;
use crate::manifests::{apply_order, read_files};
use crate::operators::{self, CHARTS_ALIAS, ChartRepository, OperatorContext};

/// Arguments of `upstart dev`.
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Manifest files to apply (multi-document YAML): CustomResourceDefinitions first, then
    /// the rest, with server-side apply (field manager `upstart-dev`).
    pub files: Vec<PathBuf>,

    /// Where to write the kubeconfig for kubectl.
    #[arg(long, default_value = ".upstart/kubeconfig")]
    pub kubeconfig: PathBuf,

    /// Do not start the Upstart operators (this build has none yet; they plug in at one place
    /// in the CLI, `operators::start`).
    #[arg(long)]
    pub no_operators: bool,

    /// Port of the API server on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 6443)]
    pub port: u16,

    /// Exit once every applied object that has a Ready condition is Ready=True (at once when
    /// none has one); exit non-zero if that takes longer than --ready-timeout.
    #[arg(long)]
    pub exit_when_ready: bool,

    /// How long --exit-when-ready waits.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub ready_timeout: Duration,

    /// Directory of charts served as the `upstart-charts` repository (edits are picked up).
    #[arg(long, default_value = "./charts")]
    pub charts: PathBuf,

    /// How long simulated workloads (Deployments, Jobs, ...) take to become ready.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub workload_delay: Duration,
}

/// Runs `upstart dev` until it is interrupted (or, with `--exit-when-ready`, until ready).
pub async fn run(args: DevArgs) -> Result<(), Error> {
    // Read everything first, so a typo fails before anything starts.
    let manifests = apply_order(read_files(&args.files)?);
    let mut shutdown = Box::pin(shutdown_signal()?);

    let control_plane = ControlPlane::start(upstart_control_plane::Options::default());
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let endpoint = control_plane
        .serve_https(addr)
        .await
        .map_err(|source| Error::ControlPlane {
            addr,
            source: Box::new(source),
        })?;
    write_kubeconfig(&endpoint, &args.kubeconfig)?;
    tracing::info!(url = %endpoint.url, kubeconfig = %args.kubeconfig.display(), "control plane serving");

    let client = control_plane.client();
    let simulator = Simulator::new(
        client.clone(),
        upstart_workload_simulator::Options {
            ready_after: args.workload_delay,
            fail: false,
        },
    )
    .spawn();

    let charts = serve_charts(&args.charts).await?;
    let chart_repositories: Vec<ChartRepository> = charts
        .iter()
        .map(|repo| ChartRepository {
            alias: CHARTS_ALIAS.to_owned(),
            url: repo.url.clone(),
        })
        .collect();

    let running_operators = if args.no_operators {
        tracing::info!("--no-operators: not starting the operators");
        None
    } else {
        Some(operators::start(&OperatorContext {
            client: client.clone(),
            chart_repositories,
        }))
    };

    // stdout carries only what a user copies: how to reach the control plane and the charts.
    println!("export KUBECONFIG={}", absolute(&args.kubeconfig).display());
    if let Some(repo) = &charts {
        println!("# chart repository {CHARTS_ALIAS}: {}", repo.url);
    }

    let outcome = tokio::select! {
        result = apply_and_wait(&client, manifests, &args) => result,
        () = &mut shutdown => {
            tracing::info!("interrupted");
            // A script waiting for readiness must not mistake an interruption for success.
            if args.exit_when_ready { Err(Error::Interrupted) } else { Ok(()) }
        }
    };
    if outcome.is_ok() && !args.exit_when_ready {
        tracing::info!("running; press Ctrl-C to stop");
        shutdown.await;
    }

    tracing::info!("shutting down");
    if let Some(running) = running_operators {
        running.shutdown().await;
    }
    simulator.shutdown().await;
    if let Some(repo) = charts {
        repo.shutdown().await;
    }
    control_plane.shutdown();
    outcome
}

async fn apply_and_wait(
    client: &kube::Client,
    manifests: Vec<crate::manifests::Manifest>,
    args: &DevArgs,
) -> Result<(), Error> {
    let applied = apply_all(client, manifests).await?;
    if args.exit_when_ready {
        wait_ready(&applied, args.ready_timeout).await?;
    }
    Ok(())
}

fn write_kubeconfig(endpoint: &upstart_control_plane::Endpoint, path: &Path) -> Result<(), Error> {
    let fail = |message: String| Error::Kubeconfig {
        path: path.to_path_buf(),
        message,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    }
    endpoint
        .write_kubeconfig(path)
        .map_err(|e| fail(e.to_string()))
}

async fn serve_charts(dir: &Path) -> Result<Option<RunningRepo>, Error> {
    if !dir.is_dir() {
        tracing::warn!(
            dir = %dir.display(),
            "no chart directory: the {CHARTS_ALIAS} repository is not served"
        );
        return Ok(None);
    }
    let fail = |source| Error::ChartRepo {
        path: dir.to_path_buf(),
        source,
    };
    let repo = ChartRepo::from_dir(dir).map_err(fail)?.auto_reload(true);
    let count = repo.charts().len();
    let running = repo
        .serve(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .map_err(fail)?;
    tracing::info!(alias = CHARTS_ALIAS, url = %running.url, charts = count, "chart repository serving");
    Ok(Some(running))
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Resolves on Ctrl-C or SIGTERM.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, Error> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(Error::Signal)?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}
