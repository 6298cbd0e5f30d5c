//! Serves a control plane on loopback until interrupted and writes its kubeconfig, for trying
//! kubectl against it: `cargo run -p upstart-control-plane --example serve -- /tmp/kubeconfig`.

#![allow(clippy::print_stdout)] // a command-line example

use upstart_control_plane::{ControlPlane, Options};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "kubeconfig".to_string());
    let cp = ControlPlane::start(Options::default());
    let endpoint = cp.serve_https("127.0.0.1:0".parse()?).await?;
    endpoint.write_kubeconfig(std::path::Path::new(&path))?;
    println!("serving {} (kubeconfig: {path})", endpoint.url);
    tokio::signal::ctrl_c().await?;
    cp.shutdown();
    Ok(())
}
