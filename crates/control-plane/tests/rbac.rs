//! RBAC enforced by the control plane (opt-in, `ControlPlane::enable_rbac`), checked against
//! the behaviour the Kubernetes RBAC documentation describes: bindings grant roles' rules to
//! users, groups and ServiceAccounts; resourceNames, subresources, nonResourceURLs and
//! aggregation; the escalation and bind checks; impersonation; access reviews and
//! `kubectl auth can-i`; and the API server's 403 messages, word for word.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use upstart_control_plane::{ControlPlane, Endpoint};

const ROBOT: &str = "system:serviceaccount:default:robot";

/// A control plane with RBAC enforced, its HTTPS endpoint, and the ServiceAccount
/// `default/robot` with a client holding its token.
async fn setup() -> (ControlPlane, Endpoint, kube::Client) {
    let cp = common::control_plane();
    cp.enable_rbac().unwrap();
    let endpoint = cp
        .serve_https("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    endpoint.enable_service_account_tokens();
    for ns in ["team", "other"] {
        let _: Namespace = create(&cp.client(), None, json!({"metadata": {"name": ns}})).await;
    }
    let robot = account_client(&cp, &endpoint, "default", "robot").await;
    (cp, endpoint, robot)
}

/// Creates ServiceAccount `namespace/name` and returns a client presenting a token for it.
async fn account_client(
    cp: &ControlPlane,
    endpoint: &Endpoint,
    namespace: &str,
    name: &str,
) -> kube::Client {
    let _: ServiceAccount = create(
        &cp.client(),
        Some(namespace),
        json!({"metadata": {"name": name}}),
    )
    .await;
    let issued = Api::<ServiceAccount>::namespaced(endpoint.client().await.unwrap(), namespace)
        .create_token_request(
            name,
            &PostParams::default(),
            &TokenRequest {
                spec: TokenRequestSpec::default(),
                ..TokenRequest::default()
            },
        )
        .await
        .unwrap();
    let token = issued.status.unwrap().token;
    let kubeconfig = endpoint.kubeconfig_yaml().replace(endpoint.token(), &token);
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::from_yaml(&kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// Creates `object` (typed by the caller) with `client` in `namespace`, or cluster-wide.
async fn create<K>(client: &kube::Client, namespace: Option<&str>, object: Value) -> K
where
    K: Creatable,
{
    try_create(client, namespace, object).await.unwrap()
}

async fn try_create<K>(
    client: &kube::Client,
    namespace: Option<&str>,
    object: Value,
) -> Result<K, kube::Error>
where
    K: Creatable,
{
    K::api(client.clone(), namespace)
        .create(
            &PostParams::default(),
            &serde_json::from_value(object).unwrap(),
        )
        .await
}

/// A kind the tests create, namespaced or not.
trait Creatable:
    kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug
{
    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self>;
}

macro_rules! namespaced {
    ($($kind:ty),*) => {$(
        impl Creatable for $kind {
            fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self> {
                Api::namespaced(client, namespace.expect("a namespaced kind"))
            }
        }
    )*};
}
macro_rules! cluster_scoped {
    ($($kind:ty),*) => {$(
        impl Creatable for $kind {
            fn api(client: kube::Client, _namespace: Option<&str>) -> Api<Self> {
                Api::all(client)
            }
        }
    )*};
}
namespaced!(
    ConfigMap,
    Secret,
    ServiceAccount,
    Role,
    RoleBinding,
    Deployment
);
cluster_scoped!(Namespace, ClusterRole, ClusterRoleBinding);

/// A Role `name` in `namespace` with `rules`, bound to the robot.
async fn grant(cp: &ControlPlane, namespace: &str, name: &str, rules: Value) {
    let admin = cp.client();
    let _: Role = create(
        &admin,
        Some(namespace),
        json!({"metadata": {"name": name}, "rules": rules}),
    )
    .await;
    let _: RoleBinding = create(
        &admin,
        Some(namespace),
        json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "default"}],
        }),
    )
    .await;
}

/// A ClusterRole `name` with `rules`, bound cluster-wide to the robot.
async fn grant_cluster(cp: &ControlPlane, name: &str, rules: Value) {
    let admin = cp.client();
    let _: ClusterRole = create(
        &admin,
        None,
        json!({"metadata": {"name": name}, "rules": rules}),
    )
    .await;
    bind_cluster_role(cp, name, name).await;
}

async fn bind_cluster_role(cp: &ControlPlane, binding: &str, role: &str) {
    let _: ClusterRoleBinding = create(
        &cp.client(),
        None,
        json!({
            "metadata": {"name": binding},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "default"}],
        }),
    )
    .await;
}

/// The 403 a request was refused with: its message.
fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> String {
    let status = common::api_error(result.expect_err("the request is refused"));
    assert_eq!(
        (status.code, status.reason.as_str()),
        (403, "Forbidden"),
        "{status:?}"
    );
    status.message
}

/// A raw GET of `path` with extra headers: the status code and the body.
async fn raw_get(client: &kube::Client, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = http::Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    match client.request_text(request.body(Vec::new()).unwrap()).await {
        Ok(text) => (200, text),
        Err(kube::Error::Api(status)) => (status.code, status.message),
        Err(e) => panic!("GET {path}: {e}"),
    }
}

#[tokio::test]
async fn a_service_account_without_bindings_is_refused_with_the_api_servers_message() {
    let (_cp, _endpoint, robot) = setup().await;
    let secrets: Api<Secret> = Api::namespaced(robot.clone(), "team");
    assert_eq!(
        forbidden(secrets.get("db").await),
        format!(
            r#"secrets "db" is forbidden: User "{ROBOT}" cannot get resource "secrets" in API group "" in the namespace "team""#
        )
    );
    assert_eq!(
        forbidden(secrets.list(&ListParams::default()).await),
        format!(
            r#"secrets is forbidden: User "{ROBOT}" cannot list resource "secrets" in API group "" in the namespace "team""#
        )
    );
    assert_eq!(
        forbidden(
            Api::<Namespace>::all(robot.clone())
                .list(&ListParams::default())
                .await
        ),
        format!(
            r#"namespaces is forbidden: User "{ROBOT}" cannot list resource "namespaces" in API group "" at the cluster scope"#
        )
    );
    let deployments: Api<Deployment> = Api::namespaced(robot, "team");
    assert_eq!(
        forbidden(deployments.get("web").await),
        format!(
            r#"deployments.apps "web" is forbidden: User "{ROBOT}" cannot get resource "deployments" in API group "apps" in the namespace "team""#
        )
    );
}

#[tokio::test]
async fn the_admin_is_in_system_masters_and_bypasses_rbac() {
    let (_cp, endpoint, _robot) = setup().await;
    let admin = endpoint.client().await.unwrap();
    Api::<Secret>::namespaced(admin.clone(), "team")
        .list(&ListParams::default())
        .await
        .unwrap();
    let (code, _) = raw_get(&admin, "/metrics-of-nothing", &[]).await;
    assert_eq!(code, 404, "the admin gets past authorization to the 404");
}

#[tokio::test]
async fn a_role_binding_grants_its_role_in_its_own_namespace_only() {
    let (cp, _endpoint, robot) = setup().await;
    grant(
        &cp,
        "team",
        "read-config",
        json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]),
    )
    .await;
    Api::<ConfigMap>::namespaced(robot.clone(), "team")
        .list(&ListParams::default())
        .await
        .unwrap();
    forbidden(
        Api::<ConfigMap>::namespaced(robot.clone(), "other")
            .list(&ListParams::default())
            .await,
    );
    assert!(
        forbidden(
            Api::<ConfigMap>::all(robot.clone())
                .list(&ListParams::default())
                .await
        )
        .ends_with("at the cluster scope"),
        "a RoleBinding gives nothing across namespaces"
    );
    forbidden(
        try_create::<ConfigMap>(&robot, Some("team"), json!({"metadata": {"name": "c"}})).await,
    );
}

#[tokio::test]
async fn a_role_binding_may_grant_a_cluster_role_in_its_namespace() {
    let (cp, _endpoint, robot) = setup().await;
    let admin = cp.client();
    let _: ClusterRole = create(
        &admin,
        None,
        json!({"metadata": {"name": "config-reader"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]}),
    )
    .await;
    let _: RoleBinding = create(
        &admin,
        Some("team"),
        json!({
            "metadata": {"name": "config-reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "config-reader"},
            "subjects": [{"kind": "Group", "name": "system:serviceaccounts:default"}],
        }),
    )
    .await;
    Api::<ConfigMap>::namespaced(robot.clone(), "team")
        .list(&ListParams::default())
        .await
        .unwrap();
    forbidden(
        Api::<ConfigMap>::namespaced(robot, "other")
            .list(&ListParams::default())
            .await,
    );
}

#[tokio::test]
async fn resource_names_limit_a_rule_to_the_named_objects() {
    let (cp, _endpoint, robot) = setup().await;
    for name in ["mine", "theirs"] {
        let _: Secret = create(
            &cp.client(),
            Some("team"),
            json!({"metadata": {"name": name}}),
        )
        .await;
    }
    grant(
        &cp,
        "team",
        "one-secret",
        json!([{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["mine"], "verbs": ["get", "list", "watch"]}]),
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(robot, "team");
    secrets.get("mine").await.unwrap();
    forbidden(secrets.get("theirs").await);
    forbidden(secrets.list(&ListParams::default()).await);
    // A list by name is asked about that name.
    let listed = secrets
        .list(&ListParams::default().fields("metadata.name=mine"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
}

#[tokio::test]
async fn a_subresource_needs_a_rule_naming_it() {
    let (cp, _endpoint, robot) = setup().await;
    let deployment = json!({
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}},
        },
    });
    let _: Deployment = create(&cp.client(), Some("team"), deployment).await;
    grant(
        &cp,
        "team",
        "deployments",
        json!([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]}]),
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(robot.clone(), "team");
    deployments.get("web").await.unwrap();
    let status = Patch::Merge(json!({"status": {"observedGeneration": 1}}));
    assert_eq!(
        forbidden(
            deployments
                .patch_status("web", &PatchParams::default(), &status)
                .await
        ),
        format!(
            r#"deployments.apps "web" is forbidden: User "{ROBOT}" cannot patch resource "deployments/status" in API group "apps" in the namespace "team""#
        )
    );
    grant(
        &cp,
        "team",
        "deployment-status",
        json!([{"apiGroups": ["apps"], "resources": ["deployments/status"], "verbs": ["patch"]}]),
    )
    .await;
    deployments
        .patch_status("web", &PatchParams::default(), &status)
        .await
        .unwrap();
}

#[tokio::test]
async fn non_resource_urls_are_granted_by_path() {
    let (cp, _endpoint, robot) = setup().await;
    // system:discovery and system:public-info-viewer, bound to every authenticated user.
    assert_eq!(raw_get(&robot, "/version", &[]).await.0, 200);
    assert_eq!(raw_get(&robot, "/apis/apps/v1", &[]).await.0, 200);
    let (code, message) = raw_get(&robot, "/metrics", &[]).await;
    assert_eq!(
        (code, message.as_str()),
        (
            403,
            format!(r#"forbidden: User "{ROBOT}" cannot get path "/metrics""#).as_str()
        )
    );
    grant_cluster(
        &cp,
        "metrics-reader",
        json!([{"nonResourceURLs": ["/metrics*"], "verbs": ["get"]}]),
    )
    .await;
    assert_eq!(
        raw_get(&robot, "/metrics", &[]).await.0,
        404,
        "allowed, and then not served"
    );
}

#[tokio::test]
async fn an_aggregated_cluster_role_gathers_the_rules_of_the_roles_its_selector_matches() {
    let (cp, _endpoint, robot) = setup().await;
    let admin = cp.client();
    let _: ClusterRole = create(
        &admin,
        None,
        json!({
            "metadata": {"name": "monitoring"},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"example.com/aggregate-to-monitoring": "true"}}]},
            "rules": [],
        }),
    )
    .await;
    bind_cluster_role(&cp, "monitoring", "monitoring").await;
    let configmaps: Api<ConfigMap> = Api::namespaced(robot.clone(), "team");
    forbidden(configmaps.list(&ListParams::default()).await);
    let _: ClusterRole = create(
        &admin,
        None,
        json!({
            "metadata": {"name": "monitoring-configmaps", "labels": {"example.com/aggregate-to-monitoring": "true"}},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
        }),
    )
    .await;
    configmaps.list(&ListParams::default()).await.unwrap();

    // The bootstrap `view` role gathers system:aggregate-to-view's rules, and a chart's role
    // labelled aggregate-to-view.
    bind_cluster_role(&cp, "view", "view").await;
    Api::<Deployment>::namespaced(robot.clone(), "team")
        .list(&ListParams::default())
        .await
        .unwrap();
    forbidden(
        Api::<Secret>::namespaced(robot, "team")
            .list(&ListParams::default())
            .await,
    );
}

#[tokio::test]
async fn creating_a_role_with_rules_the_requester_does_not_hold_needs_escalate() {
    let (cp, _endpoint, robot) = setup().await;
    grant(
        &cp,
        "team",
        "role-writer",
        json!([
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["create", "update", "patch"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        ]),
    )
    .await;
    let _: Role = create(
        &robot,
        Some("team"),
        json!({"metadata": {"name": "held"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
    )
    .await;
    let wider = json!({"metadata": {"name": "wider"}, "rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "delete"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
    ]});
    assert_eq!(
        forbidden(try_create::<Role>(&robot, Some("team"), wider.clone()).await),
        format!(
            "roles.rbac.authorization.k8s.io \"wider\" is forbidden: user \"{ROBOT}\" (groups=[\"system:serviceaccounts\" \"system:serviceaccounts:default\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}}\n{{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}}"
        )
    );
    // Widening by a patch is the same escalation.
    let roles: Api<Role> = Api::namespaced(robot.clone(), "team");
    let widen =
        Patch::Merge(json!({"rules": [{"apiGroups": [""], "resources": ["*"], "verbs": ["*"]}]}));
    assert!(
        forbidden(roles.patch("held", &PatchParams::default(), &widen).await)
            .contains("is attempting to grant RBAC permissions not currently held")
    );
    grant(
        &cp,
        "team",
        "escalate",
        json!([{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"]}]),
    )
    .await;
    let _: Role = create(&robot, Some("team"), wider).await;
}

#[tokio::test]
async fn binding_a_role_the_requester_does_not_hold_needs_bind_on_that_role() {
    let (cp, _endpoint, robot) = setup().await;
    grant(
        &cp,
        "team",
        "binder",
        json!([
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
        ]),
    )
    .await;
    let _: ClusterRole = create(
        &cp.client(),
        None,
        json!({"metadata": {"name": "configmap-getter"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
    )
    .await;
    let binding = |name: &str, role: &str| {
        json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "User", "name": "someone"}],
        })
    };
    let _: RoleBinding = create(&robot, Some("team"), binding("held", "configmap-getter")).await;
    let message = forbidden(
        try_create::<RoleBinding>(&robot, Some("team"), binding("admin", "cluster-admin")).await,
    );
    assert!(
        message.starts_with(&format!(
            "rolebindings.rbac.authorization.k8s.io \"admin\" is forbidden: user \"{ROBOT}\" (groups=["
        )) && message.contains("is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}"),
        "{message}"
    );
    grant(
        &cp,
        "team",
        "bind-admin",
        json!([{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "resourceNames": ["cluster-admin"], "verbs": ["bind"]}]),
    )
    .await;
    let _: RoleBinding = create(&robot, Some("team"), binding("admin", "cluster-admin")).await;
}

#[tokio::test]
async fn impersonation_needs_the_impersonate_verb_on_the_user_group_or_service_account() {
    let (cp, _endpoint, robot) = setup().await;
    let (code, message) = raw_get(
        &robot,
        "/api/v1/namespaces/team/configmaps",
        &[("Impersonate-User", "bob")],
    )
    .await;
    assert_eq!(
        (code, message),
        (
            403,
            format!(
                r#"users "bob" is forbidden: User "{ROBOT}" cannot impersonate resource "users" in API group "" at the cluster scope"#
            )
        )
    );
    let (code, message) = raw_get(
        &robot,
        "/api/v1/namespaces/team/configmaps",
        &[("Impersonate-User", "system:serviceaccount:team:builder")],
    )
    .await;
    assert_eq!(
        (code, message),
        (
            403,
            format!(
                r#"serviceaccounts "builder" is forbidden: User "{ROBOT}" cannot impersonate resource "serviceaccounts" in API group "" in the namespace "team""#
            )
        )
    );
    grant_cluster(
        &cp,
        "impersonate-bob",
        json!([{"apiGroups": [""], "resources": ["users"], "resourceNames": ["bob"], "verbs": ["impersonate"]}]),
    )
    .await;
    // Now the request is bob's, and bob may not list ConfigMaps.
    let (code, message) = raw_get(
        &robot,
        "/api/v1/namespaces/team/configmaps",
        &[("Impersonate-User", "bob")],
    )
    .await;
    assert_eq!(
        (code, message),
        (
            403,
            r#"configmaps is forbidden: User "bob" cannot list resource "configmaps" in API group "" in the namespace "team""#.to_string()
        )
    );
    let (code, _) = raw_get(
        &robot,
        "/api/v1/namespaces/team/configmaps",
        &[
            ("Impersonate-User", "bob"),
            ("Impersonate-Group", "system:masters"),
        ],
    )
    .await;
    assert_eq!(
        code, 403,
        "impersonating a group needs impersonate on that group"
    );
}

#[tokio::test]
async fn access_reviews_are_answered_from_the_bindings() {
    let (cp, endpoint, robot) = setup().await;
    grant(
        &cp,
        "team",
        "read-config",
        json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]),
    )
    .await;
    let review = |user: &str, namespace: &str| {
        json!({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"],
                "resourceAttributes": {"namespace": namespace, "verb": "get", "resource": "configmaps"},
            },
        })
    };
    let admin = endpoint.client().await.unwrap();
    let post = |client: kube::Client, path: &'static str, body: Value| async move {
        let request = http::Request::post(path)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap();
        let text = client.request_text(request).await.unwrap();
        serde_json::from_str::<Value>(&text).unwrap()["status"].clone()
    };
    let sar = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    assert_eq!(
        post(admin.clone(), sar, review(ROBOT, "team")).await,
        json!({"allowed": true, "reason": "RBAC: allowed by RoleBinding \"read-config/team\" of Role \"read-config\" to ServiceAccount \"robot/default\""})
    );
    assert_eq!(
        post(admin.clone(), sar, review(ROBOT, "other")).await,
        json!({"allowed": false})
    );
    // A ServiceAccount may ask about itself (system:basic-user), not about others.
    let ssar = json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"namespace": "team", "verb": "get", "resource": "configmaps"}},
    });
    assert_eq!(
        post(
            robot.clone(),
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            ssar
        )
        .await["allowed"],
        true
    );
    let rules = post(
        robot.clone(),
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": "team"}}),
    )
    .await;
    assert!(
        rules["resourceRules"]
            .as_array()
            .unwrap()
            .contains(&json!({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]})),
        "{rules}"
    );
    let request = http::Request::post(sar)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&review(ROBOT, "team")).unwrap())
        .unwrap();
    let refused = robot.request_text(request).await;
    assert!(
        forbidden(refused).starts_with("subjectaccessreviews.authorization.k8s.io is forbidden")
    );
}

#[tokio::test]
async fn a_server_side_apply_that_creates_needs_create_too() {
    let (cp, _endpoint, robot) = setup().await;
    grant(
        &cp,
        "team",
        "patch-config",
        json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "patch"]}]),
    )
    .await;
    let configmaps: Api<ConfigMap> = Api::namespaced(robot, "team");
    let apply = Patch::Apply(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}),
    );
    assert_eq!(
        forbidden(
            configmaps
                .patch("c", &PatchParams::apply("test"), &apply)
                .await
        ),
        format!(
            r#"configmaps "c" is forbidden: User "{ROBOT}" cannot create resource "configmaps" in API group "" in the namespace "team""#
        )
    );
    let _: ConfigMap = create(
        &cp.client(),
        Some("team"),
        json!({"metadata": {"name": "c"}}),
    )
    .await;
    configmaps
        .patch("c", &PatchParams::apply("test"), &apply)
        .await
        .unwrap();
}

#[tokio::test]
async fn kubectl_auth_can_i_as_a_service_account_answers_from_its_bindings() {
    let (cp, endpoint, _robot) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    endpoint.write_kubeconfig(&kubeconfig).unwrap();
    let can_i = |args: &'static [&'static str]| {
        let kubeconfig = kubeconfig.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(upstart_test_support::kubectl())
                    .arg("--kubeconfig")
                    .arg(&kubeconfig)
                    .args(["auth", "can-i"])
                    .args(args)
                    .arg(format!("--as={ROBOT}"))
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let before = can_i(&["get", "secrets", "-n", "team"]).await;
    assert_eq!(
        String::from_utf8_lossy(&before.stdout).trim(),
        "no",
        "{before:?}"
    );
    assert_eq!(before.status.code(), Some(1));
    grant(
        &cp,
        "team",
        "read-secrets",
        json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]),
    )
    .await;
    let after = can_i(&["get", "secrets", "-n", "team"]).await;
    assert_eq!(
        String::from_utf8_lossy(&after.stdout).trim(),
        "yes",
        "{after:?}"
    );
    let elsewhere = can_i(&["get", "secrets", "-n", "other"]).await;
    assert_eq!(String::from_utf8_lossy(&elsewhere.stdout).trim(), "no");

    // --list asks a SelfSubjectRulesReview: the namespace's rules and the bootstrap ones.
    let listed = can_i(&["--list", "-n", "team"]).await;
    let text = String::from_utf8_lossy(&listed.stdout);
    let row = |first: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(first))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    assert_eq!(
        row("secrets").as_deref(),
        Some("secrets [] [] [get]"),
        "{text}"
    );
    assert!(
        row("selfsubjectaccessreviews.authorization.k8s.io").is_some(),
        "system:basic-user's rules are listed: {text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("[/version]") && l.ends_with("[get]")),
        "system:public-info-viewer's paths are listed: {text}"
    );
    let other = can_i(&["--list", "-n", "other"]).await;
    assert!(
        !String::from_utf8_lossy(&other.stdout).contains("secrets "),
        "a RoleBinding's rules are listed in its namespace only"
    );
}
