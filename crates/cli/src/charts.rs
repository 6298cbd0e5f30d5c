//! `upstart charts`: a chart directory served as a development overlay of upstream
//! repositories (with the publish endpoint), and packs that carry it with its cache to a
//! machine without network. The repository itself is `upstart_chart_repo`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use upstart_chart_repo::{ChartRepo, OverlayOptions, Upstream};

use crate::dev::{announce, shutdown_signal};
use crate::error::Error;

/// Arguments of `upstart charts`.
#[derive(Debug, clap::Args)]
pub struct ChartsArgs {
    #[command(subcommand)]
    command: ChartsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ChartsCommand {
    /// Serve DIR as a Helm chart repository (index.yaml and NAME-VERSION.tgz) on 127.0.0.1:
    /// its chart directories and packaged charts first, then every chart and version of the
    /// upstreams it does not have (fetched on first use, checked against the upstream's digest
    /// and kept in the cache, so they are served with the upstream down). Charts are published
    /// with ChartMuseum's API: `curl --data-binary @CHART.tgz URL/api/charts` (409 when the
    /// version exists, unless `?force`), `curl -X DELETE URL/api/charts/NAME/VERSION`,
    /// `curl URL/api/charts`. Runs until Ctrl-C / SIGTERM.
    Serve(ServeArgs),
    /// Pack a chart directory and its cache (upstream indexes and archives) into FILE
    /// (.tar.gz), to serve them elsewhere without network.
    Pack(PackArgs),
    /// Unpack a pack made by `upstart charts pack` into a new directory, which
    /// `upstart charts serve` and `upstart dev --charts` then serve, upstream charts included,
    /// with no upstream reachable.
    Unpack(UnpackArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The chart directory: subdirectories holding a Chart.yaml, and NAME-VERSION.tgz files
    /// (pushed charts are stored there).
    dir: PathBuf,

    /// An upstream Helm repository, as NAME=URL (repeatable; earlier ones win for the same
    /// chart version). NAME names its cache directory.
    #[arg(long = "upstream", value_name = "NAME=URL")]
    upstreams: Vec<String>,

    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8879)]
    port: u16,

    /// Where upstream indexes and archives are kept (default: DIR/.upstart-cache, which
    /// `upstart charts pack` carries).
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,

    /// How long an upstream's index is used before it is read again.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    refresh: Duration,
}

#[derive(Debug, clap::Args)]
struct PackArgs {
    /// The pack to write (.tar.gz).
    file: PathBuf,

    /// The chart directory to pack.
    #[arg(long, default_value = "./charts")]
    charts: PathBuf,

    /// The cache to pack with it (default: CHARTS/.upstart-cache).
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct UnpackArgs {
    /// The pack to read.
    file: PathBuf,

    /// The directory to create (it must not exist or be empty).
    #[arg(long, default_value = "./charts")]
    into: PathBuf,
}

/// Runs `upstart charts`.
pub async fn run(args: ChartsArgs) -> Result<(), Error> {
    match args.command {
        ChartsCommand::Serve(args) => serve(args).await,
        ChartsCommand::Pack(args) => {
            let summary =
                upstart_chart_repo::pack(&args.charts, args.cache.as_deref(), &args.file)?;
            announce(format_args!(
                "packed {} local chart(s) and {} cached upstream archive(s) into {}",
                summary.local_charts,
                summary.cached_archives,
                args.file.display()
            ));
            Ok(())
        }
        ChartsCommand::Unpack(args) => {
            let summary = upstart_chart_repo::unpack(&args.file, &args.into)?;
            announce(format_args!(
                "unpacked {} local chart(s) and {} cached upstream archive(s) into {}",
                summary.local_charts,
                summary.cached_archives,
                args.into.display()
            ));
            Ok(())
        }
    }
}

/// Parses `--upstream` values; not by clap, whose error would repeat the value (and a
/// password in its URL).
pub(crate) fn upstreams(given: &[String]) -> Result<Vec<Upstream>, Error> {
    given
        .iter()
        .map(|u| u.parse::<Upstream>().map_err(Error::from))
        .collect()
}

async fn serve(args: ServeArgs) -> Result<(), Error> {
    let upstreams = upstreams(&args.upstreams)?;
    let shutdown = shutdown_signal()?;
    let repo = ChartRepo::from_dir(&args.dir)?.auto_reload(true);
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), args.port);
    let running = repo
        .serve_overlay(
            addr,
            OverlayOptions {
                upstreams,
                cache_dir: args.cache,
                refresh: args.refresh,
                ..OverlayOptions::default()
            },
        )
        .await?;
    announce(format_args!("# chart repository: {}", running.url()));
    announce(format_args!(
        "# publish: curl --data-binary @CHART.tgz {}/api/charts",
        running.url()
    ));
    shutdown.await;
    running.shutdown().await;
    Ok(())
}
