//! ServiceAccount tokens on the HTTPS endpoint (opt-in): TokenRequest issues them as the
//! apiserver does (defaults, validation, binding to a Pod or Secret), and they authenticate
//! while the account (and the bound object) lives, for the API audience only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;
use upstart_control_plane::{ControlPlane, Endpoint};

async fn endpoint(enabled: bool) -> (ControlPlane, Endpoint) {
    let cp = common::control_plane();
    let endpoint = cp
        .serve_https("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    if enabled {
        endpoint.enable_service_account_tokens();
    }
    (cp, endpoint)
}

/// A client of the endpoint presenting `token` instead of the admin's.
async fn client_with_token(endpoint: &Endpoint, token: &str) -> kube::Client {
    let kubeconfig = endpoint.kubeconfig_yaml().replace(endpoint.token(), token);
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::from_yaml(&kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

async fn create_account(cp: &ControlPlane, namespace: &str, name: &str) -> ServiceAccount {
    let accounts: Api<ServiceAccount> = Api::namespaced(cp.client(), namespace);
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .unwrap()
}

fn token_request(spec: TokenRequestSpec) -> TokenRequest {
    TokenRequest {
        spec,
        ..TokenRequest::default()
    }
}

async fn request_token(
    client: kube::Client,
    namespace: &str,
    name: &str,
    spec: TokenRequestSpec,
) -> Result<TokenRequest, kube::Error> {
    Api::<ServiceAccount>::namespaced(client, namespace)
        .create_token_request(name, &PostParams::default(), &token_request(spec))
        .await
}

/// The status code a request with `client` gets (200 when it works).
async fn status_of_list(client: kube::Client) -> u16 {
    match Api::<Namespace>::all(client)
        .list(&ListParams::default())
        .await
    {
        Ok(_) => 200,
        Err(e) => {
            let e = common::api_error(e);
            assert_eq!(
                (e.reason.as_str(), e.message.as_str()),
                ("Unauthorized", "Unauthorized"),
                "the apiserver's bare 401"
            );
            e.code
        }
    }
}

#[tokio::test]
async fn an_issued_token_authenticates_until_its_account_is_deleted() {
    let (cp, endpoint) = endpoint(true).await;
    create_account(&cp, "default", "robot").await;
    let admin = endpoint.client().await.unwrap();

    let issued = request_token(
        admin.clone(),
        "default",
        "robot",
        TokenRequestSpec::default(),
    )
    .await
    .unwrap();
    let status = issued.status.expect("the token is in status");
    assert_eq!(
        issued.spec.audiences,
        vec!["https://kubernetes.default.svc.cluster.local".to_string()],
        "no audience asked: the API's"
    );
    assert_eq!(issued.spec.expiration_seconds, Some(3600));
    let lifetime = status.expiration_timestamp.0 - jiff::Timestamp::now();
    assert!(
        (3590..=3600).contains(&lifetime.get_seconds()),
        "expires in an hour: {lifetime:?}"
    );

    let robot = client_with_token(&endpoint, &status.token).await;
    assert_eq!(status_of_list(robot.clone()).await, 200);
    assert_eq!(
        status_of_list(client_with_token(&endpoint, "not-a-token").await).await,
        401
    );

    // Deleted, then recreated under the same name: a new account, which the old token is not.
    let accounts: Api<ServiceAccount> = Api::namespaced(cp.client(), "default");
    accounts
        .delete("robot", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(status_of_list(robot.clone()).await, 401);
    create_account(&cp, "default", "robot").await;
    assert_eq!(status_of_list(robot).await, 401);
}

#[tokio::test]
async fn service_account_tokens_are_off_unless_enabled() {
    let (cp, endpoint) = endpoint(false).await;
    create_account(&cp, "default", "robot").await;
    let admin = endpoint.client().await.unwrap();
    let refused = request_token(admin, "default", "robot", TokenRequestSpec::default())
        .await
        .unwrap_err();
    assert_eq!(common::api_error(refused).code, 404);
}

#[tokio::test]
async fn token_requests_are_validated_as_the_apiserver_does() {
    let (cp, endpoint) = endpoint(true).await;
    create_account(&cp, "default", "robot").await;
    let admin = endpoint.client().await.unwrap();

    let missing = common::api_error(
        request_token(
            admin.clone(),
            "default",
            "nobody",
            TokenRequestSpec::default(),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        (missing.code, missing.message.as_str()),
        (404, "serviceaccounts \"nobody\" not found")
    );

    let short = common::api_error(
        request_token(
            admin.clone(),
            "default",
            "robot",
            TokenRequestSpec {
                expiration_seconds: Some(60),
                ..TokenRequestSpec::default()
            },
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        (short.code, short.message.as_str()),
        (
            422,
            "TokenRequest.authentication.k8s.io \"robot\" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"
        )
    );

    let unbindable = common::api_error(
        request_token(
            admin,
            "default",
            "robot",
            TokenRequestSpec {
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("apps/v1".into()),
                    kind: Some("Deployment".into()),
                    name: Some("web".into()),
                    uid: None,
                }),
                ..TokenRequestSpec::default()
            },
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(unbindable.code, 400);
    assert!(
        unbindable.message.contains("Deployment"),
        "{}",
        unbindable.message
    );
}

#[tokio::test]
async fn a_token_for_another_audience_is_not_accepted_by_the_api() {
    let (cp, endpoint) = endpoint(true).await;
    create_account(&cp, "default", "robot").await;
    let admin = endpoint.client().await.unwrap();
    let vault = request_token(
        admin,
        "default",
        "robot",
        TokenRequestSpec {
            audiences: vec!["vault".into()],
            ..TokenRequestSpec::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(vault.spec.audiences, vec!["vault".to_string()]);
    let token = vault.status.unwrap().token;
    assert_eq!(
        status_of_list(client_with_token(&endpoint, &token).await).await,
        401
    );
}

#[tokio::test]
async fn a_token_bound_to_a_secret_ends_with_the_secret() {
    let (cp, endpoint) = endpoint(true).await;
    create_account(&cp, "default", "robot").await;
    let secrets: Api<Secret> = Api::namespaced(cp.client(), "default");
    let secret = secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "holder"}})).unwrap(),
        )
        .await
        .unwrap();
    let admin = endpoint.client().await.unwrap();
    let reference = |uid: &str| BoundObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Secret".into()),
        name: Some("holder".into()),
        uid: Some(uid.into()),
    };

    let stale = common::api_error(
        request_token(
            admin.clone(),
            "default",
            "robot",
            TokenRequestSpec {
                bound_object_ref: Some(reference("some-other-uid")),
                ..TokenRequestSpec::default()
            },
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(stale.code, 409);
    assert!(stale.message.contains("does not match the UID in record"));

    let uid = secret.metadata.uid.unwrap();
    let bound = request_token(
        admin,
        "default",
        "robot",
        TokenRequestSpec {
            bound_object_ref: Some(reference(&uid)),
            ..TokenRequestSpec::default()
        },
    )
    .await
    .unwrap();
    let robot = client_with_token(&endpoint, &bound.status.unwrap().token).await;
    assert_eq!(status_of_list(robot.clone()).await, 200);
    secrets
        .delete("holder", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(status_of_list(robot).await, 401);
}

#[tokio::test]
async fn kubectl_create_token_gets_a_working_token() {
    let (cp, endpoint) = endpoint(true).await;
    create_account(&cp, "default", "robot").await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    endpoint.write_kubeconfig(&kubeconfig).unwrap();
    // kubectl blocks; the endpoint must keep serving on this test's runtime meanwhile.
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(upstart_test_support::kubectl())
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["create", "token", "robot", "--duration=15m"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).unwrap();
    let robot = client_with_token(&endpoint, token.trim()).await;
    assert_eq!(status_of_list(robot).await, 200);
}

/// Waits for the token controller to act on Secret `name`: `Some` once it holds a token,
/// `None` once it is gone.
async fn settled_token_secret(cp: &ControlPlane, name: &str) -> Option<Secret> {
    let secrets: Api<Secret> = Api::namespaced(cp.client(), "default");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match secrets.get_opt(name).await.unwrap() {
            None => return None,
            Some(secret)
                if secret
                    .data
                    .as_ref()
                    .is_some_and(|d| d.contains_key("token")) =>
            {
                return Some(secret);
            }
            Some(_) => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the token controller did not fill in or delete Secret {name} within 10s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn create_token_secret(cp: &ControlPlane, name: &str, account: &str) {
    Api::<Secret>::namespaced(cp.client(), "default")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {
                    "name": name,
                    "annotations": {"kubernetes.io/service-account.name": account},
                },
                "type": "kubernetes.io/service-account-token",
            }))
            .unwrap(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_legacy_token_secret_gets_a_token_that_lives_as_long_as_the_secret() {
    let (cp, endpoint) = endpoint(true).await;
    let account = create_account(&cp, "default", "robot").await;
    create_token_secret(&cp, "robot-token", "robot").await;
    let secret = settled_token_secret(&cp, "robot-token")
        .await
        .expect("the Secret of an existing account is kept");
    let data = secret.data.unwrap();
    assert_eq!(data["namespace"].0, b"default");
    assert_eq!(data["ca.crt"].0, endpoint.ca_pem().as_bytes());
    assert_eq!(
        secret.metadata.annotations.unwrap()["kubernetes.io/service-account.uid"],
        account.metadata.uid.unwrap()
    );

    let token = String::from_utf8(data["token"].0.clone()).unwrap();
    let robot = client_with_token(&endpoint, &token).await;
    assert_eq!(status_of_list(robot.clone()).await, 200);
    Api::<Secret>::namespaced(cp.client(), "default")
        .delete("robot-token", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(status_of_list(robot).await, 401);

    // A token Secret of an account that does not exist is deleted, as the token controller does.
    create_token_secret(&cp, "ghost-token", "ghost").await;
    assert!(settled_token_secret(&cp, "ghost-token").await.is_none());
}

#[tokio::test]
async fn legacy_token_secrets_are_left_alone_unless_enabled() {
    let (cp, _endpoint) = endpoint(false).await;
    create_token_secret(&cp, "ghost-token", "ghost").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let secret = Api::<Secret>::namespaced(cp.client(), "default")
        .get("ghost-token")
        .await
        .unwrap();
    assert!(secret.data.is_none_or(|d| d.is_empty()));
}
