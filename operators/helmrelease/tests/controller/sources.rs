//! Chart sources other than the local chart repository: an OCI registry with credentials
//! from the operator's namespace; OCI tags and `imageDigest` images re-resolved every interval.

use super::*;
use upstart_test_support::registry::Registry;

/// Packages the chart in `chart_dir` and pushes it into `oci://HOST/charts` (as `robot` /
/// `hunter2`, which the registries of these tests require).
fn push_chart(registry: &Registry, chart_dir: &std::path::Path) {
    let chart = upstart_chart_package::package_chart(chart_dir).unwrap();
    registry.push_chart(
        &format!("{}-{}.tgz", chart.name, chart.version),
        &chart.archive,
    );
}

/// The Secret `name` in the operator's namespace `upstart-system` (created first) holding
/// `robot` / `hunter2`, the credentials the registries and git servers of these tests require.
async fn robot_credentials(h: &Harness, name: &str) {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(h.client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "upstart-system"}})).unwrap(),
        )
        .await
        .unwrap();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(h.client.clone(), "upstart-system");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": name},
                "stringData": {"username": "robot", "password": "hunter2"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_from_an_oci_registry_with_credentials_from_the_operator_namespace_installs() {
    let registry = Registry::start_with_basic_auth();
    let mut h = Harness::boot().await;
    push_chart(&registry, &h.cluster.dir().join("charts/app"));

    robot_credentials(&h, "reg-auth").await;
    let repositories = RepositoryConfig::from_yaml(&format!(
        "repositories: {{reg: {{url: \"oci://{}/charts\", plainHttp: true, credentialsSecret: reg-auth}}}}",
        registry.host()
    ))
    .unwrap();
    let credentials = controller::load_credentials(&h.client, "upstart-system", &repositories)
        .await
        .unwrap();
    assert!(credentials.contains_key("reg"));
    let config = Config {
        repositories,
        credentials,
        ..h.config()
    };
    h.run_operator(config);

    h.create(
        "from-oci",
        json!({"chart": "reg/app", "version": "^0.1", "values": {"message": "pulled"}}),
    )
    .await;
    let release = h.ready("from-oci").await;
    let status = release.status.unwrap();
    assert_eq!(status.version.as_deref(), Some("0.1.0"));
    assert!(status.chart_digest.unwrap().starts_with("sha256:"));
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    let settings = config_maps.get("from-oci-settings").await.unwrap();
    assert_eq!(settings.data.unwrap()["message"], "pulled");
    let shown = serde_json::to_string(&h.releases().get("from-oci").await.unwrap()).unwrap();
    assert!(!shown.contains("hunter2"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credentials_secret_missing_at_start_fails_only_its_repository_until_it_is_created() {
    let registry = Registry::start_with_basic_auth();
    let mut h = Harness::boot().await;
    push_chart(&registry, &h.cluster.dir().join("charts/app"));
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(h.client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "upstart-system"}})).unwrap(),
        )
        .await
        .unwrap();
    // `test` needs no credentials; `reg` names a Secret nobody has created yet.
    let mut repositories = h.config().repositories;
    repositories.repositories.extend(
        RepositoryConfig::from_yaml(&format!(
            "repositories: {{reg: {{url: \"oci://{}/charts\", plainHttp: true, credentialsSecret: reg-auth}}}}",
            registry.host()
        ))
        .unwrap()
        .repositories,
    );
    let credentials = controller::load_credentials(&h.client, "upstart-system", &repositories)
        .await
        .expect("a missing credentials Secret does not stop the operator");
    assert!(credentials.is_empty());
    h.run_operator(Config {
        repositories,
        credentials,
        credentials_namespace: Some("upstart-system".into()),
        ..h.config()
    });

    h.create(
        "from-oci",
        json!({"chart": "reg/app", "version": "^0.1", "values": {"message": "pulled"}}),
    )
    .await;
    h.create(
        "from-test",
        json!({"chart": "test/app", "version": "0.1.0"}),
    )
    .await;
    let api = h.releases();
    let condition = eventually("the release to fail naming the missing Secret", || async {
        let status = api.get("from-oci").await.ok()?.status?;
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")?
            .clone();
        (ready.reason == "ChartFetchFailed").then_some(ready)
    })
    .await;
    assert_eq!(condition.status, "False");
    for part in [
        "credentials Secret upstart-system/reg-auth",
        "repository reg",
        "create it in upstart-system",
    ] {
        assert!(
            condition.message.contains(part),
            "{part:?} not in {:?}",
            condition.message
        );
    }
    let status = api.get("from-oci").await.unwrap().status.unwrap();
    assert!(
        !status
            .conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True"),
        "creating the Secret is enough: the release keeps retrying"
    );
    // A repository with its credentials, or needing none, is not held up.
    h.ready("from-test").await;

    // Created later, the Secret is read at the next attempt: no restart.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(h.client.clone(), "upstart-system");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "reg-auth"},
                "stringData": {"username": "robot", "password": "hunter2"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let release = h.ready("from-oci").await;
    assert_eq!(release.status.unwrap().version.as_deref(), Some("0.1.0"));
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    let settings = config_maps.get("from-oci-settings").await.unwrap();
    assert_eq!(settings.data.unwrap()["message"], "pulled");
    let shown = serde_json::to_string(&h.releases().get("from-oci").await.unwrap()).unwrap();
    assert!(!shown.contains("hunter2"));
    h.stop().await;
}

/// An operator reading repository `test` (the local chart repository) and `reg`
/// (`oci://REGISTRY/charts`, with robot's credentials from `upstart-system/reg-auth`).
async fn operator_with_registry(h: &mut Harness, registry: &Registry) {
    robot_credentials(h, "reg-auth").await;
    operator_with_repositories(
        h,
        &format!(
            "repositories: {{reg: {{url: \"oci://{}/charts\", plainHttp: true, credentialsSecret: reg-auth}}}}",
            registry.host()
        ),
    )
    .await;
}

/// An operator reading repository `test` (the local chart repository) and those of the
/// repository configuration `yaml`, with their credentials loaded.
async fn operator_with_repositories(h: &mut Harness, yaml: &str) {
    let mut repositories = h.config().repositories;
    repositories
        .repositories
        .extend(RepositoryConfig::from_yaml(yaml).unwrap().repositories);
    let credentials = controller::load_credentials(&h.client, "upstart-system", &repositories)
        .await
        .unwrap();
    h.run_operator(Config {
        repositories,
        credentials,
        ..h.config()
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_pushed_oci_tag_re_renders_the_release_within_its_interval() {
    let registry = Registry::start_with_basic_auth();
    let mut h = Harness::boot().await;
    push_chart(&registry, &h.cluster.dir().join("charts/app"));
    operator_with_registry(&mut h, &registry).await;

    let chart = format!("oci://{}/charts/app:0.1.0", registry.host());
    h.create(
        "tagged",
        json!({"chart": chart, "interval": "1s", "values": {"message": "pulled"}}),
    )
    .await;
    let first = h.ready("tagged").await.status.unwrap();
    let first_manifest = first.manifest_digest.clone().expect("the manifest digest");
    assert!(first_manifest.starts_with("sha256:"), "{first_manifest}");
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    let data = config_maps
        .get("tagged-settings")
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(data.get("edition"), None);

    // The same version pushed again with another template: the tag moves.
    let edited = tempfile::tempdir().unwrap();
    write(
        edited.path(),
        "app/Chart.yaml",
        "apiVersion: v2\nname: app\nversion: 0.1.0\n",
    );
    write(
        edited.path(),
        "app/templates/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-settings\ndata:\n  message: {{ .Values.message | quote }}\n  edition: two\n",
    );
    push_chart(&registry, &edited.path().join("app"));
    let data = eventually("the re-pushed chart to be applied", || async {
        let data = config_maps.get("tagged-settings").await.ok()?.data?;
        (data.get("edition").map(String::as_str) == Some("two")).then_some(data)
    })
    .await;
    assert_eq!(data["message"], "pulled");
    let api = h.releases();
    let status = eventually("status to record the new manifest", || async {
        let status = api.get("tagged").await.ok()?.status?;
        (status.manifest_digest.as_deref() != Some(first_manifest.as_str())).then_some(status)
    })
    .await;
    assert!(status.manifest_digest.unwrap().starts_with("sha256:"));
    assert_ne!(status.chart_digest, first.chart_digest);
    assert_ne!(
        status.applied_digest, first.applied_digest,
        "a moved tag is a new input: an upgrade, not the interval's re-apply"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_pushed_image_tag_re_renders_only_the_release_using_it() {
    let registry = Registry::start_with_basic_auth();
    let mut h = Harness::boot().await;
    let first = registry.push_image("charts/api", "1.4", "first").await;
    operator_with_registry(&mut h, &registry).await;

    let image = format!("{}/charts/api:1.4", registry.host());
    let pinned_to = |digest: &str| format!("{}/charts/api@{digest}", registry.host());
    h.create(
        "pinned",
        json!({"chart": "test/app", "version": "0.1.0", "interval": "1s",
               "values": {"message": format!("<< imageDigest \"{image}\" >>")}}),
    )
    .await;
    h.create(
        "plain",
        json!({"chart": "test/app", "version": "0.1.0", "interval": "1s",
               "values": {"message": "no image"}}),
    )
    .await;
    let status = h.ready("pinned").await.status.unwrap();
    assert_eq!(status.image_digests.get(&image), Some(&first));
    let plain = h.ready("plain").await.status.unwrap().applied_digest;
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    let message = |name: &'static str| {
        let config_maps = config_maps.clone();
        async move {
            let data = config_maps
                .get(&format!("{name}-settings"))
                .await
                .ok()?
                .data?;
            data.get("message").cloned()
        }
    };
    assert_eq!(message("pinned").await, Some(pinned_to(&first)));

    let second = registry.push_image("charts/api", "1.4", "second").await;
    assert_ne!(first, second);
    eventually("the release to be applied with the new digest", || async {
        (message("pinned").await == Some(pinned_to(&second))).then_some(())
    })
    .await;
    let api = h.releases();
    eventually("status to record the new digest", || async {
        let status = api.get("pinned").await.ok()?.status?;
        (status.image_digests.get(&image) == Some(&second)).then_some(())
    })
    .await;
    // The release without the image was not upgraded.
    assert_eq!(
        api.get("plain")
            .await
            .unwrap()
            .status
            .unwrap()
            .applied_digest,
        plain
    );
    let shown = serde_json::to_string(&api.get("pinned").await.unwrap()).unwrap();
    assert!(!shown.contains("hunter2"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_from_git_follows_its_branch_and_keeps_its_last_chart_when_the_branch_is_deleted() {
    use upstart_test_support::git_server::{GitServer, git};

    // A repository on the system git's http-backend, requiring robot / hunter2, with chart
    // `app` under charts/app on branch `feature`.
    let dirs = tempfile::tempdir().unwrap();
    let served = dirs.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let server = GitServer::start(&served, Some(("robot", "hunter2")));
    let work = server.create_repository("charts", &dirs.path().join("work"));
    write(
        &work,
        "charts/app/Chart.yaml",
        "apiVersion: v2\nname: app\nversion: 0.1.0\n",
    );
    let template = |edition: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{{{ .Release.Name }}}}-settings\ndata:\n  edition: {edition}\n"
        )
    };
    write(
        &work,
        "charts/app/templates/configmap.yaml",
        &template("one"),
    );
    git(&work, &["checkout", "-q", "-b", "feature"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "one"]);
    git(&work, &["push", "-q", "origin", "feature"]);
    let first_commit = git(&work, &["rev-parse", "HEAD"]);

    let mut h = Harness::boot().await;
    robot_credentials(&h, "git-auth").await;
    let repository = format!("git+{}/charts.git", server.url());
    operator_with_repositories(
        &mut h,
        &format!("repositories: {{team: {{url: \"{repository}\", credentialsSecret: git-auth}}}}"),
    )
    .await;

    h.create(
        "from-git",
        json!({"chart": format!("{repository}@charts/app?ref=feature"), "interval": "1s"}),
    )
    .await;
    let first = h.ready("from-git").await.status.unwrap();
    assert_eq!(first.commit.as_deref(), Some(first_commit.as_str()));
    assert_eq!(first.version.as_deref(), Some("0.1.0"));

    // A pushed commit is applied within the interval, and status names it.
    write(
        &work,
        "charts/app/templates/configmap.yaml",
        &template("two"),
    );
    git(&work, &["commit", "-q", "-am", "two"]);
    git(&work, &["push", "-q", "origin", "feature"]);
    let second_commit = git(&work, &["rev-parse", "HEAD"]);
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    eventually("the pushed commit to be applied", || async {
        let data = config_maps.get("from-git-settings").await.ok()?.data?;
        (data.get("edition").map(String::as_str) == Some("two")).then_some(())
    })
    .await;
    let api = h.releases();
    let status = eventually("status to record the new commit", || async {
        let status = api.get("from-git").await.ok()?.status?;
        (status.commit.as_deref() == Some(second_commit.as_str())).then_some(status)
    })
    .await;
    assert_ne!(status.chart_digest, first.chart_digest);

    // The branch deleted (merged, say): the release keeps its chart and says why.
    git(&work, &["push", "-q", "origin", "--delete", "feature"]);
    let status = eventually("RepositoryReachable=False with GitRefNotFound", || async {
        let status = api.get("from-git").await.ok()?.status?;
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "RepositoryReachable" && c.reason == "GitRefNotFound")
            .then_some(status)
    })
    .await;
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True", "{:?}", status.conditions);
    assert_eq!(status.commit.as_deref(), Some(second_commit.as_str()));
    let data = config_maps
        .get("from-git-settings")
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(data["edition"], "two");

    // The credentials show nowhere: status, Events, logs.
    let shown = serde_json::to_string(&api.get("from-git").await.unwrap()).unwrap();
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(h.client.clone(), NS);
    let events = serde_json::to_string(&events.list(&Default::default()).await.unwrap()).unwrap();
    for text in [&shown, &events, &logs::captured()] {
        assert!(!text.contains("hunter2"), "a credential is shown");
        assert!(
            !text.contains("cm9ib3Q6aHVudGVyMg"),
            "an Authorization header is shown"
        );
    }
    h.stop().await;
}
