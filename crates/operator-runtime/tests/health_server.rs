//! `/metrics`, `/healthz` and `/readyz` over a real socket, alone and as started by `run`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use upstart_control_plane::{ControlPlane, Options};
use upstart_operator_runtime::{
    CommonArgs, Error, HealthServer, LeaseConfig, MetricLabel, Metrics, OperatorContext, Readiness,
    RunOptions, Shutdown, run,
};

/// A minimal HTTP/1.1 GET: status code and body.
async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("no status line in {response:?}"))?
        .parse()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

struct Failure;
impl MetricLabel for Failure {
    fn metric_label(&self) -> &'static str {
        "apply_failed"
    }
}

#[tokio::test]
async fn readyz_answers_503_with_the_unsynced_controllers_then_200_once_they_synced()
-> anyhow::Result<()> {
    let readiness = Readiness::new();
    let server = HealthServer::start(loopback(), Metrics::new(), readiness.clone()).await?;
    let addr = server.local_addr();

    let (status, body) = get(addr, "/readyz").await?;
    assert_eq!(status, 503);
    assert!(body.contains("no controller started"), "{body}");

    let releases = readiness.register("helmrelease");
    let services = readiness.register("upstartservice");
    let (status, body) = get(addr, "/readyz").await?;
    assert_eq!(status, 503);
    assert!(body.contains("helmrelease, upstartservice"), "{body}");

    releases.set_ready();
    let (status, body) = get(addr, "/readyz").await?;
    assert_eq!(status, 503);
    assert!(
        body.contains("upstartservice") && !body.contains("helmrelease"),
        "{body}"
    );

    services.set_ready();
    assert_eq!(get(addr, "/readyz").await?.0, 200);
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn healthz_answers_200_and_metrics_serve_the_prometheus_text() -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let controller = metrics.controller("helmrelease");
    drop(controller.count_and_measure());
    controller.set_failure(&Failure);
    let server = HealthServer::start(loopback(), metrics, Readiness::new()).await?;
    let addr = server.local_addr();

    assert_eq!(get(addr, "/healthz").await?, (200, "ok\n".to_string()));
    let (status, body) = get(addr, "/metrics").await?;
    assert_eq!(status, 200);
    assert!(
        body.contains("upstart_reconciles_total{controller=\"helmrelease\"} 1"),
        "{body}"
    );
    assert!(body.contains(
        "upstart_reconcile_errors_total{controller=\"helmrelease\",reason=\"apply_failed\"} 1"
    ));
    assert!(
        body.contains("upstart_reconcile_duration_seconds_count{controller=\"helmrelease\"} 1")
    );
    assert_eq!(get(addr, "/nothing").await?.0, 404);

    server.shutdown().await?;
    assert!(get(addr, "/healthz").await.is_err(), "the server stopped");
    Ok(())
}

#[tokio::test]
async fn binding_a_busy_address_is_an_error_naming_it() -> anyhow::Result<()> {
    let busy = tokio::net::TcpListener::bind(loopback()).await?;
    let addr = busy.local_addr()?;
    let result = HealthServer::start(addr, Metrics::new(), Readiness::new()).await;
    assert!(matches!(result, Err(Error::Bind { addr: a, .. }) if a == addr));
    Ok(())
}

#[tokio::test]
async fn run_serves_health_while_standby_then_runs_the_work_once_leading() -> anyhow::Result<()> {
    let cp = ControlPlane::start(Options::default());
    let lease = |identity: &str| LeaseConfig {
        namespace: "default".into(),
        name: "run-operator".into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(10),
        renew_deadline: Duration::from_secs(6),
        retry_period: Duration::from_millis(100),
    };

    // Instance A leads.
    let ctx_a = OperatorContext::new("run-operator", cp.client(), CommonArgs::default());
    let shutdown_a = Shutdown::new();
    let (a_leads_tx, a_leads_rx) = tokio::sync::oneshot::channel();
    let a = tokio::spawn(run(
        ctx_a,
        RunOptions {
            health_addr: None,
            leader_election: Some(lease("a")),
        },
        shutdown_a.clone(),
        |ctx, shutdown| async move {
            let _ = a_leads_tx.send(ctx.readiness.clone());
            shutdown.wait().await;
            Ok::<(), std::io::Error>(())
        },
    ));
    a_leads_rx.await?;

    // Instance B, with a server on a free port, waits as a ready standby.
    let port = tokio::net::TcpListener::bind(loopback())
        .await?
        .local_addr()?;
    let ctx_b = OperatorContext::new("run-operator", cp.client(), CommonArgs::default());
    let readiness_b = ctx_b.readiness.clone();
    let shutdown_b = Shutdown::new();
    let (flag_tx, flag_rx) = tokio::sync::oneshot::channel();
    let b = tokio::spawn(run(
        ctx_b,
        RunOptions {
            health_addr: Some(port),
            leader_election: Some(lease("b")),
        },
        shutdown_b.clone(),
        |ctx, shutdown| async move {
            let flag = ctx.readiness.register("example");
            let _ = flag_tx.send(flag);
            shutdown.wait().await;
            Ok::<(), std::io::Error>(())
        },
    ));
    let mut standby_answer = None;
    for _ in 0..50 {
        if let Ok(answer) = get(port, "/readyz").await {
            standby_answer = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = standby_answer.ok_or_else(|| anyhow::anyhow!("B never served"))?;
    assert_eq!(status, 200);
    assert!(body.contains("standby"), "{body}");
    assert_eq!(get(port, "/healthz").await?.0, 200);
    assert!(get(port, "/metrics").await?.1.contains("upstart_leader 0"));

    // A stops and releases; B leads, is not ready until its controller synced.
    shutdown_a.trigger();
    a.await??;
    let flag = tokio::time::timeout(Duration::from_secs(3), flag_rx).await??;
    let (status, body) = get(port, "/readyz").await?;
    assert_eq!(status, 503);
    assert!(body.contains("example"), "{body}");
    flag.set_ready();
    assert_eq!(get(port, "/readyz").await?.0, 200);
    assert!(get(port, "/metrics").await?.1.contains("upstart_leader 1"));
    assert!(readiness_b.is_ready());

    shutdown_b.trigger();
    b.await??;
    assert!(
        get(port, "/healthz").await.is_err(),
        "the server stopped with the operator"
    );
    Ok(())
}

#[tokio::test]
async fn run_in_process_hands_back_the_works_error() -> anyhow::Result<()> {
    let cp = ControlPlane::start(Options::default());
    let ctx = OperatorContext::new("failing-operator", cp.client(), CommonArgs::default());
    let result = run(
        ctx,
        RunOptions::in_process(),
        Shutdown::new(),
        |_, _| async { Err::<(), _>(std::io::Error::other("boom")) },
    )
    .await;
    match result {
        Err(Error::Operator { name, source }) => {
            assert_eq!(name, "failing-operator");
            assert_eq!(source.to_string(), "boom");
        }
        other => panic!("unexpected {other:?}"),
    }
    Ok(())
}
