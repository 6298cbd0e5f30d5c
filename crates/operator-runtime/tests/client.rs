//! The client comes from `--kubeconfig` when given (here: the local control plane over HTTPS).

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use upstart_control_plane::{ControlPlane, Options};
use upstart_operator_runtime::{CommonArgs, Error, client_from_args};

#[tokio::test]
async fn the_kubeconfig_flag_points_the_client_at_that_cluster() -> anyhow::Result<()> {
    let cp = ControlPlane::start(Options::default());
    let endpoint = cp.serve_https("127.0.0.1:0".parse()?).await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kubeconfig");
    endpoint.write_kubeconfig(&path)?;
    let args = CommonArgs {
        kubeconfig: Some(path),
        ..CommonArgs::default()
    };
    let client = client_from_args(&args).await?;
    let namespaces = Api::<Namespace>::all(client)
        .list(&Default::default())
        .await?;
    assert!(
        namespaces
            .items
            .iter()
            .any(|ns| ns.metadata.name.as_deref() == Some("kube-system"))
    );
    cp.shutdown();
    Ok(())
}

#[tokio::test]
async fn a_missing_kubeconfig_is_an_error_naming_the_file() {
    let args = CommonArgs {
        kubeconfig: Some("does/not/exist".into()),
        ..CommonArgs::default()
    };
    match client_from_args(&args).await {
        Err(e @ Error::Kubeconfig { .. }) => assert!(e.to_string().contains("does/not/exist")),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a client from a missing file"),
    }
}
