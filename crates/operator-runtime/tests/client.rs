//! The client comes from `--kubeconfig` when given (here: the local control plane over HTTPS).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use upstart_control_plane::{ControlPlane, Fault, Options, Verb};
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

#[tokio::test]
async fn the_lease_defaults_to_the_operator_name_in_the_clients_namespace() {
    let cp = ControlPlane::start(Options::default());
    let ctx = upstart_operator_runtime::OperatorContext::new(
        "helmrelease-operator",
        cp.client(),
        CommonArgs::default(),
    );
    let lease = ctx.lease_config();
    assert_eq!(lease.name, "helmrelease-operator");
    assert_eq!(lease.identity, ctx.identity());
    assert_eq!(lease.lease_duration, std::time::Duration::from_secs(15));
    let in_a_pod = std::env::var_os("POD_NAMESPACE").is_some()
        || std::path::Path::new("/var/run/secrets/kubernetes.io/serviceaccount/namespace").exists();
    if !in_a_pod {
        assert_eq!(lease.namespace, "default");
    }

    let ctx = upstart_operator_runtime::OperatorContext::new(
        "helmrelease-operator",
        cp.client(),
        CommonArgs {
            leader_election_namespace: Some("upstart-system".into()),
            lease_name: Some("hr-shard-a".into()),
            ..CommonArgs::default()
        },
    );
    let lease = ctx.lease_config();
    assert_eq!(
        (lease.namespace.as_str(), lease.name.as_str()),
        ("upstart-system", "hr-shard-a")
    );
}

/// A client from `client_from_args` against the local control plane over HTTPS.
async fn client_of(
    cp: &ControlPlane,
) -> anyhow::Result<(
    kube::Client,
    upstart_control_plane::Endpoint,
    tempfile::TempDir,
)> {
    let endpoint = cp.serve_https("127.0.0.1:0".parse()?).await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kubeconfig");
    endpoint.write_kubeconfig(&path)?;
    let args = CommonArgs {
        kubeconfig: Some(path),
        ..CommonArgs::default()
    };
    Ok((client_from_args(&args).await?, endpoint, dir))
}

#[tokio::test]
async fn a_429_is_retried_once_after_its_retry_after() -> anyhow::Result<()> {
    let cp = ControlPlane::start(Options::default());
    let (client, _endpoint, _dir) = client_of(&cp).await?;
    let fault = cp.faults().inject(
        Fault::on(Verb::List)
            .resource("namespaces")
            .times(1)
            .too_many_requests(Duration::from_secs(1)),
    );
    let started = Instant::now();
    let namespaces = Api::<Namespace>::all(client.clone())
        .list(&Default::default())
        .await?;
    let waited = started.elapsed();
    assert!(!namespaces.items.is_empty());
    assert_eq!(cp.faults().hits(fault), 1, "answered 429 once");
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}"
    );

    // A Retry-After of an hour is waited for at most the client's cap (5 s), then the second
    // 429 is the caller's: a reconcile is never held for the server's whole hour.
    let max_wait = Duration::from_secs(5);
    let fault = cp.faults().inject(
        Fault::on(Verb::List)
            .resource("namespaces")
            .always()
            .too_many_requests(Duration::from_secs(3600)),
    );
    let started = Instant::now();
    let result = tokio::time::timeout(
        max_wait + Duration::from_secs(5),
        Api::<Namespace>::all(client).list(&Default::default()),
    )
    .await?;
    let waited = started.elapsed();
    match result {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 429),
        other => panic!("expected the second 429, got {other:?}"),
    }
    assert_eq!(cp.faults().hits(fault), 2, "one retry, not more");
    assert!(waited >= max_wait - Duration::from_millis(50), "{waited:?}");
    cp.shutdown();
    Ok(())
}
