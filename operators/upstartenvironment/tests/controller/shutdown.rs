//! The operator stopped before its first sync: it stops at once instead of waiting for one.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_shut_down_before_its_first_sync_stops_at_once() {
    let cp = ControlPlane::start(upstart_control_plane::Options::default());
    let client = cp.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in upstart_api::crd::crds() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let op = OperatorContext::new("environment-operator", client, CommonArgs::default());
    let shutdown = Shutdown::new();
    shutdown.trigger();
    let run =
        upstart_operator_runtime::run(op, RunOptions::in_process(), shutdown, |op, shutdown| {
            controller::run(op, Config::default(), shutdown)
        });
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("stops without waiting for a sync that will never come")
        .unwrap();
}
