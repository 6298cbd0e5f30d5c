//! Helm's `lookup` answered as `helm upgrade` answers it: a password generated once with the
//! Bitnami `common.secrets.passwords.manage` pattern (a vendored library chart) is kept across a
//! values change, an operator restart and a chart upgrade; a chart sees its own namespace and
//! never another one, nor a cluster-wide list.

use k8s_openapi::api::core::v1::Secret;

use super::*;

/// `safe` 0.1.0 and 0.2.0: a Secret whose password the vendored `common` library keeps with
/// `lookup` (else `randAlphaNum`), and a ConfigMap of `.Values.message`. `peek`: a ConfigMap
/// telling what `lookup` answered in the release's namespace, in another one, and cluster-wide.
pub(super) fn charts(root: &Path) {
    for (dir, version) in [("safe-1", "0.1.0"), ("safe-2", "0.2.0")] {
        write(
            root,
            &format!("{dir}/Chart.yaml"),
            &format!(
                "apiVersion: v2\nname: safe\nversion: {version}\ndependencies:\n  - name: common\n    version: 2.x.x\n    repository: oci://registry-1.docker.io/bitnamicharts\n"
            ),
        );
        write(
            root,
            &format!("{dir}/charts/common/Chart.yaml"),
            "apiVersion: v2\nname: common\nversion: 2.31.0\ntype: library\n",
        );
        write(
            root,
            &format!("{dir}/charts/common/templates/_secrets.tpl"),
            r#"{{/* The shape of bitnami/common's helper: a provided value wins, else the value the
Secret already holds, else a new random one. */}}
{{- define "common.secrets.passwords.manage" -}}
{{- $password := "" -}}
{{- $provided := index .context.Values .providedValue -}}
{{- $secretData := (lookup "v1" "Secret" .context.Release.Namespace .secret).data -}}
{{- if $provided -}}
{{- $password = $provided | toString | b64enc -}}
{{- else if and $secretData (hasKey $secretData .key) -}}
{{- $password = index $secretData .key -}}
{{- else -}}
{{- $password = randAlphaNum (int .length) | b64enc -}}
{{- end -}}
{{- $password -}}
{{- end -}}
"#,
        );
        write(
            root,
            &format!("{dir}/templates/secret.yaml"),
            r#"apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-auth
data:
  postgres-password: {{ include "common.secrets.passwords.manage" (dict "secret" (printf "%s-auth" .Release.Name) "key" "postgres-password" "providedValue" "password" "length" 16 "context" $) }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  message: {{ .Values.message | quote }}
  chart: {{ .Chart.Version | quote }}
"#,
        );
    }
    write(
        root,
        "peek/Chart.yaml",
        "apiVersion: v2\nname: peek\nversion: 0.1.0\n",
    );
    write(
        root,
        "peek/templates/seen.yaml",
        r#"{{- $own := lookup "v1" "ConfigMap" .Release.Namespace "lookup-here" }}
{{- $ownList := lookup "v1" "ConfigMap" .Release.Namespace "" }}
{{- $other := lookup "v1" "Secret" "lookup-elsewhere" "guarded" }}
{{- $otherList := lookup "v1" "Secret" "lookup-elsewhere" "" }}
{{- $clusterWide := lookup "v1" "Secret" "" "" }}
{{- $namespace := lookup "v1" "Namespace" "" "lookup-elsewhere" }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-seen
data:
  own: {{ dig "data" "greeting" "absent" $own | quote }}
  {{- $names := list }}
  {{- range (dig "items" list $ownList) }}{{ $names = append $names .metadata.name }}{{ end }}
  ownListHasIt: {{ has "lookup-here" $names | quote }}
  other: {{ if $other }}{{ dig "data" "token" "present" $other | quote }}{{ else }}"absent"{{ end }}
  otherList: {{ len (dig "items" list $otherList) | quote }}
  clusterWide: {{ len (dig "items" list $clusterWide) | quote }}
  namespace: {{ if $namespace }}"present"{{ else }}"absent"{{ end }}
"#,
    );
}

async fn password(h: &Harness) -> String {
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), NS);
    let secret = secrets.get("vault-auth").await.unwrap();
    let data = secret.data.unwrap();
    String::from_utf8(data["postgres-password"].0.clone()).unwrap()
}

async fn settings(h: &Harness, key: &str) -> Option<String> {
    let config_maps: Api<ConfigMap> = Api::namespaced(h.client.clone(), NS);
    config_maps
        .get_opt("vault-settings")
        .await
        .unwrap()?
        .data?
        .remove(key)
}

async fn patch_spec(h: &Harness, spec: serde_json::Value) {
    h.releases()
        .patch(
            "vault",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": spec})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_lookup_kept_password_survives_a_values_change_a_restart_and_a_chart_upgrade() {
    let mut h = Harness::start().await;
    h.create(
        "vault",
        json!({"chart": "test/safe", "version": "0.1.0", "values": {"message": "one"}}),
    )
    .await;
    h.ready("vault").await;
    let first = password(&h).await;
    assert_eq!(first.len(), 16, "a generated password");

    patch_spec(&h, json!({"values": {"message": "two"}})).await;
    eventually("the values change applied", || async {
        (settings(&h, "message").await? == "two").then_some(())
    })
    .await;
    h.ready("vault").await;
    assert_eq!(
        password(&h).await,
        first,
        "a values change keeps the password"
    );

    // A new process: no render cache, no memory. A restart alone renders nothing (see
    // restarts.rs); an object deleted meanwhile makes it render and apply the release again.
    h.shut_down().await;
    Api::<ConfigMap>::namespaced(h.client.clone(), NS)
        .delete("vault-settings", &DeleteParams::default())
        .await
        .unwrap();
    h.run_operator(h.config());
    eventually(
        "the restarted operator to apply the release again",
        || async {
            let text = h.metrics().encode().unwrap();
            let applied = text
                .lines()
                .find_map(|l| l.strip_prefix("upstart_helmrelease_objects_applied_total "))?;
            (applied.trim().parse::<f64>().ok()? >= 2.0).then_some(())
        },
    )
    .await;
    h.ready("vault").await;
    assert_eq!(password(&h).await, first, "a restart keeps the password");

    patch_spec(&h, json!({"version": "0.2.0"})).await;
    eventually("the chart upgrade applied", || async {
        (settings(&h, "chart").await? == "0.2.0").then_some(())
    })
    .await;
    h.ready("vault").await;
    assert_eq!(
        password(&h).await,
        first,
        "a chart upgrade keeps the password"
    );
    assert!(
        !logs::captured().contains(&first),
        "the password read through lookup is never logged"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_chart_looks_up_its_own_namespace_and_nothing_beyond_it() {
    let h = Harness::start().await;
    h.cluster.create_namespace("lookup-elsewhere").await;
    let guarded: Secret = serde_json::from_value(json!({
        "metadata": {"name": "guarded", "namespace": "lookup-elsewhere"},
        "stringData": {"token": "elsewhere-token-value"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(h.client.clone(), "lookup-elsewhere")
        .create(&PostParams::default(), &guarded)
        .await
        .unwrap();
    let here: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "lookup-here", "namespace": NS},
        "data": {"greeting": "hello"}
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(h.client.clone(), NS)
        .create(&PostParams::default(), &here)
        .await
        .unwrap();

    h.create("spy", json!({"chart": "test/peek", "version": "0.1.0"}))
        .await;
    h.ready("spy").await;
    let seen = Api::<ConfigMap>::namespaced(h.client.clone(), NS)
        .get("spy-seen")
        .await
        .unwrap()
        .data
        .unwrap();
    let seen: Vec<(&str, &str)> = seen.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        seen,
        [
            ("clusterWide", "0"),
            ("namespace", "absent"),
            ("other", "absent"),
            ("otherList", "0"),
            ("own", "hello"),
            ("ownListHasIt", "true"),
        ]
    );
    assert!(!logs::captured().contains("elsewhere-token-value"));
    h.stop().await;
}
