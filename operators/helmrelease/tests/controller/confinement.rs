//! Tenant confinement (SPEC §7, issue 16): with RBAC enforced, a release acting as a
//! ServiceAccount of its namespace writes only what that account may. A chart that tries to
//! write outside its namespace or to bind cluster-admin fails with the API server's 403 in its
//! status, nothing is created, and a well-behaved release beside it becomes Ready.

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};

use super::*;

const TENANT: &str = "tenant";
const ACCOUNT: &str = "upstart-release";

/// `trespasser`: one attempt per release (value `attempt`) at leaving its namespace: a
/// Namespace of its own (`ns`), a ConfigMap in namespace `victim` (`out`), a RoleBinding to
/// cluster-admin in its own namespace (`rb`) or a ClusterRoleBinding to cluster-admin (`crb`);
/// each beside a harmless ConfigMap. The values are shorter than four characters: failure
/// messages are scrubbed of longer value strings, which would hide words of the 403.
pub(super) fn charts(root: &Path) {
    write(
        root,
        "trespasser/Chart.yaml",
        "apiVersion: v2\nname: trespasser\nversion: 0.1.0\n",
    );
    write(
        root,
        "trespasser/templates/objects.yaml",
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  attempt: {{ .Values.attempt | quote }}
{{- if eq .Values.attempt "ns" }}
---
apiVersion: v1
kind: Namespace
metadata:
  name: {{ .Release.Name }}-annex
{{- end }}
{{- if eq .Values.attempt "out" }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-planted
  namespace: victim
data: {planted: "yes"}
{{- end }}
{{- if eq .Values.attempt "rb" }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ .Release.Name }}-admin
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects:
  - {kind: ServiceAccount, name: default, namespace: {{ .Release.Namespace }}}
{{- end }}
{{- if eq .Values.attempt "crb" }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ .Release.Name }}-admin
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects:
  - {kind: ServiceAccount, name: default, namespace: {{ .Release.Namespace }}}
{{- end }}
"#,
    );
}

/// Creates `object` through `api`.
async fn create<K>(api: Api<K>, object: serde_json::Value)
where
    K: Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + k8s_openapi::serde::Serialize
        + std::fmt::Debug,
{
    let object: K = serde_json::from_value(object).unwrap();
    api.create(&PostParams::default(), &object).await.unwrap();
}

/// The tenant namespace's release account, bound there to an edit-like ClusterRole (the
/// kinds of the test charts, RBAC objects included), as the environment operator binds it.
async fn tenant_account(h: &Harness) {
    for namespace in [TENANT, "victim"] {
        h.cluster.create_namespace(namespace).await;
    }
    let all = [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    create(
        Api::<ClusterRole>::all(h.client.clone()),
        json!({
            "metadata": {"name": "tenant-edit"},
            "rules": [
                {"apiGroups": [""], "resources": ["configmaps", "secrets", "services"], "verbs": all},
                {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": all},
                {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": all},
            ],
        }),
    )
    .await;
    create(
        Api::<ServiceAccount>::namespaced(h.client.clone(), TENANT),
        json!({"metadata": {"name": ACCOUNT}}),
    )
    .await;
    create(
        Api::<RoleBinding>::namespaced(h.client.clone(), TENANT),
        json!({
            "metadata": {"name": ACCOUNT},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "tenant-edit"},
            "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": TENANT}],
        }),
    )
    .await;
}

/// Waits until release `name` of the tenant namespace is not Ready for `reason`; its Ready
/// condition's message.
async fn refused(releases: &Api<HelmRelease>, name: &str, reason: &str) -> String {
    eventually(&format!("{name} Ready=False for {reason}"), || async {
        let status = releases.get(name).await.ok()?.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (ready.status == "False"
            && ready.reason == reason
            && status.phase == Some(HelmReleasePhase::Failed))
        .then(|| ready.message.clone())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_cannot_write_outside_its_namespace_nor_bind_a_cluster_admin_role_even_when_its_chart_tries()
 {
    let mut h = Harness::boot().await;
    tenant_account(&h).await;
    // Through HTTPS as the admin: authorized, and allowed to impersonate. The allow list lets
    // Namespaces and ClusterRoleBindings through on purpose: the account's rights must stop
    // them, not the operator's own checks.
    let admin = h.cluster.enforce_rbac().await;
    let config = Config {
        default_service_account: Some(ACCOUNT.to_owned()),
        cluster_scoped_allow_list: ClusterScopedAllowList::new([
            "Namespace",
            "rbac.authorization.k8s.io/ClusterRoleBinding",
        ]),
        ..h.cluster.helmrelease_config()
    };
    h.operator = Some(RunningOperator::helmrelease(admin, config));

    let releases: Api<HelmRelease> = Api::namespaced(h.client.clone(), TENANT);
    let release = |name: &str, chart: &str, values: serde_json::Value| -> HelmRelease {
        serde_json::from_value(json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": TENANT},
            "spec": {"chart": chart, "values": values},
        }))
        .unwrap()
    };
    for (name, attempt) in [
        ("annex", "ns"),
        ("stray", "out"),
        ("grab", "rb"),
        ("crown", "crb"),
    ] {
        releases
            .create(
                &PostParams::default(),
                &release(name, "test/trespasser", json!({"attempt": attempt})),
            )
            .await
            .unwrap();
    }
    releases
        .create(
            &PostParams::default(),
            &release("good", "test/app", json!({"message": "hello"})),
        )
        .await
        .unwrap();

    // The well-behaved release, written as the same account, becomes Ready.
    object_where(&releases, "good", WAIT, "Ready", |r| {
        r.status
            .as_ref()
            .is_some_and(|s| is_ready_for_generation(&s.conditions, r.metadata.generation))
    })
    .await;

    let user = format!("system:serviceaccount:{TENANT}:{ACCOUNT}");
    let hint = format!("written as ServiceAccount {TENANT}/{ACCOUNT}");
    let grab = refused(&releases, "grab", "KubernetesApiError").await;
    assert!(
        grab.contains(&format!(
            "rolebindings.rbac.authorization.k8s.io \"grab-admin\" is forbidden: user \"{user}\""
        )) && grab.contains("is attempting to grant RBAC permissions not currently held")
            && grab.contains(&hint),
        "{grab}"
    );
    for (name, resource) in [("annex", "namespaces"), ("crown", "clusterrolebindings")] {
        let message = refused(&releases, name, "KubernetesApiError").await;
        assert!(
            message.contains(&format!("User \"{user}\" cannot"))
                && message.contains(&format!("resource \"{resource}\""))
                && message.contains(&hint),
            "{name}: {message}"
        );
    }
    // An object in another namespace never reaches the API: the plan refuses it.
    let stray = refused(&releases, "stray", "ForeignNamespace").await;
    assert!(stray.contains("victim"), "{stray}");

    // Nothing was created outside the namespace, nor any binding to cluster-admin.
    assert!(
        Api::<Namespace>::all(h.client.clone())
            .get_opt("annex-annex")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<ClusterRoleBinding>::all(h.client.clone())
            .get_opt("crown-admin")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<RoleBinding>::namespaced(h.client.clone(), TENANT)
            .get_opt("grab-admin")
            .await
            .unwrap()
            .is_none()
    );
    let planted = Api::<ConfigMap>::namespaced(h.client.clone(), "victim")
        .list(&Default::default())
        .await
        .unwrap();
    assert!(planted.items.is_empty(), "{:?}", planted.items);
    // What the account may write was written.
    let settings = Api::<ConfigMap>::namespaced(h.client.clone(), TENANT);
    assert!(settings.get_opt("good-settings").await.unwrap().is_some());

    // A refused release is still deleted: what it may not read or delete holds nothing back.
    releases
        .delete("grab", &DeleteParams::default())
        .await
        .unwrap();
    eventually("release grab to disappear", || async {
        releases
            .get_opt("grab")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    h.stop().await;
}
