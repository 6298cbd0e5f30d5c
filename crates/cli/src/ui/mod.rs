//! `upstart ui`: a local web view of environments (list, one environment's live graph, the
//! catalog), served by the CLI with the user's own kubeconfig — so it shows nothing the user
//! cannot read — and bound to loopback by default. `upstart dev` starts it too.
//!
//! The server ([`server`]) answers JSON and pushes server-sent events fed by kube watches; the
//! pages are static files embedded in the binary ([`assets`]); what they show is built by pure
//! functions ([`model`]).

mod assets;
pub mod model;
mod server;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use kube::Client;

use crate::error::Error;

/// The port tried first when none is given; a free one is taken when it is in use.
pub const DEFAULT_PORT: u16 = 8480;

/// Arguments of `upstart ui`.
#[derive(Debug, clap::Args)]
pub struct UiArgs {
    /// Port to listen on (0: any free port). Default: 8480, or a free port when 8480 is taken
    /// (the URL printed says which).
    #[arg(long)]
    pub port: Option<u16>,

    /// Address to listen on. The default, loopback, keeps the view (which acts with your
    /// credentials) to this machine.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub address: IpAddr,

    /// Kubeconfig (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use (default: its current context).
    #[arg(long)]
    pub context: Option<String>,

    /// Where the catalog templates are (the operators' --catalog-namespace).
    #[arg(long, default_value = crate::model::CATALOG_NAMESPACE)]
    pub catalog_namespace: String,
}

/// A running web view.
pub struct Running {
    /// `http://ADDRESS:PORT/`.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops serving.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Binds `address:port` (`None`: [`DEFAULT_PORT`], else any free port) and serves the view in
/// the background with `client`.
pub async fn start(
    client: Client,
    address: IpAddr,
    port: Option<u16>,
    catalog_namespace: &str,
) -> Result<Running, Error> {
    let listener = match port {
        Some(port) => bind(SocketAddr::new(address, port)).await?,
        None => match tokio::net::TcpListener::bind(SocketAddr::new(address, DEFAULT_PORT)).await {
            Ok(listener) => listener,
            Err(_) => bind(SocketAddr::new(address, 0)).await?,
        },
    };
    let local = listener.local_addr().map_err(|source| Error::Ui {
        what: "reading the listening address".to_owned(),
        source,
    })?;
    let url = format!("http://{local}/");
    let app = server::router(server::State::new(client, catalog_namespace, local));
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the web view stopped");
        }
    });
    Ok(Running { url, task })
}

async fn bind(address: SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| Error::Ui {
            what: format!("listening on {address}"),
            source,
        })
}

/// Runs `upstart ui` until Ctrl-C.
pub async fn run(args: &UiArgs) -> Result<(), Error> {
    let client = crate::cluster::connect(args.kubeconfig.as_deref(), args.context.as_deref())
        .await?
        .client;
    let running = start(client, args.address, args.port, &args.catalog_namespace).await?;
    println!("web view: {}", running.url);
    tokio::signal::ctrl_c().await.map_err(Error::Signal)?;
    running.stop();
    Ok(())
}
