//! The HTTPS endpoint: TLS with the generated CA, bearer-token authentication, kubeconfig.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

#[tokio::test]
async fn a_kube_client_from_the_kubeconfig_works_over_tls() {
    let cp = common::control_plane();
    let endpoint = cp
        .serve_https("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert!(endpoint.url.starts_with("https://127.0.0.1:"));
    let client = endpoint.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "tls"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let items = cms.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(items.len(), 1);
    // The in-process client sees the same store.
    let local: Api<ConfigMap> = Api::default_namespaced(cp.client());
    assert!(local.get_opt("tls").await.unwrap().is_some());
}

#[tokio::test]
async fn watches_stream_over_tls() {
    let cp = common::control_plane();
    let endpoint = cp
        .serve_https("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(endpoint.client().await.unwrap());
    let mut s = cms
        .watch(&WatchParams::default().disable_bookmarks(), "0")
        .await
        .unwrap()
        .boxed();
    let local: Api<ConfigMap> = Api::default_namespaced(cp.client());
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "w"}})).unwrap();
    local.create(&PostParams::default(), &cm).await.unwrap();
    let ev = tokio::time::timeout(std::time::Duration::from_secs(5), s.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(ev, WatchEvent::Added(_)));
}

#[tokio::test]
async fn requests_without_the_bearer_token_are_401_unauthorized() {
    let cp = common::control_plane();
    let endpoint = cp
        .serve_https("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let kubeconfig = endpoint
        .kubeconfig_yaml()
        .replace(endpoint.token(), "wrong-token");
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::from_yaml(&kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let err = common::api_error(cms.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(err.code, 401);
}

#[tokio::test]
async fn the_kubeconfig_file_is_written_owner_readable_only() {
    let cp = common::control_plane();
    let endpoint = cp
        .serve_https("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    endpoint.write_kubeconfig(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(&endpoint.url));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

#[tokio::test]
async fn a_client_certificate_from_the_ca_authenticates_without_a_token() {
    let cp = common::control_plane();
    let endpoint = cp
        .serve_https("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let kubeconfig = endpoint.kubeconfig_yaml_with_client_certificate();
    assert!(!kubeconfig.contains(endpoint.token()));
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::from_yaml(&kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    cms.list(&ListParams::default()).await.unwrap();
}
