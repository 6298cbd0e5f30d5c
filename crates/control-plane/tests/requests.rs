//! Request counting: every request served is counted once, by the way it came in and its verb.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use upstart_control_plane::VerbCounts;

#[tokio::test]
async fn requests_are_counted_by_way_in_and_verb() {
    let cp = common::control_plane();
    let endpoint = cp
        .serve_https("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let remote: Api<ConfigMap> = Api::default_namespaced(endpoint.client().await.unwrap());
    let local: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let before = cp.request_counts();

    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "counted"}})).unwrap();
    remote.create(&PostParams::default(), &cm).await.unwrap();
    remote
        .patch(
            "counted",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": "b"}})),
        )
        .await
        .unwrap();
    local.get("counted").await.unwrap();
    local.get_opt("missing").await.unwrap();
    cp.client().apiserver_version().await.unwrap();

    let counted = cp.request_counts().since(&before);
    assert_eq!(
        counted.https,
        VerbCounts {
            create: 1,
            patch: 1,
            ..VerbCounts::default()
        }
    );
    assert_eq!(
        counted.in_process,
        VerbCounts {
            get: 2,
            other: 1,
            ..VerbCounts::default()
        }
    );
}
