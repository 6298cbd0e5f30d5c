use super::*;
use std::time::Instant;
use upstart_failure::Classify;

const NS: &str = "pr-1234";

fn scope_with<'a>(
    allow: &'a ClusterScopedAllowList,
    is_namespaced: &'a dyn Fn(&str, &str) -> Option<bool>,
) -> ReleaseScope<'a> {
    ReleaseScope {
        namespace: NS,
        name: "example-postgres",
        cluster_scoped_allow_list: allow,
        is_namespaced,
    }
}

/// Discovery as a small cluster answers it.
fn discovery(api_version: &str, kind: &str) -> Option<bool> {
    match (api_version, kind) {
        ("v1", "Namespace" | "PersistentVolume") => Some(false),
        ("rbac.authorization.k8s.io/v1", "ClusterRole" | "ClusterRoleBinding") => Some(false),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => Some(false),
        ("scheduling.k8s.io/v1", "PriorityClass") => Some(false),
        ("v1", _) | ("apps/v1", _) | ("batch/v1", _) | ("networking.k8s.io/v1", _) => Some(true),
        ("rbac.authorization.k8s.io/v1", _) | ("policy/v1", _) => Some(true),
        _ => None,
    }
}

fn plan_with(manifest: &str, allow: &[&str]) -> Result<Plan> {
    let allow = ClusterScopedAllowList::new(allow.iter().copied());
    plan(
        manifest,
        &scope_with(&allow, &discovery),
        &Limits::default(),
    )
}

fn ok(manifest: &str) -> Plan {
    plan_with(manifest, &[]).expect("the render is accepted")
}

fn obj(kind: &str, name: &str) -> String {
    let api = match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" => "apps/v1",
        "Job" | "CronJob" => "batch/v1",
        "Ingress" => "networking.k8s.io/v1",
        "Role" | "RoleBinding" | "ClusterRole" => "rbac.authorization.k8s.io/v1",
        "CustomResourceDefinition" => "apiextensions.k8s.io/v1",
        _ => "v1",
    };
    format!("---\napiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n")
}

fn kinds(plan: &Plan) -> Vec<String> {
    plan.resources.iter().map(|o| o.display_name()).collect()
}

fn hook_doc(kind: &str, name: &str, events: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: batch/v1\nkind: {kind}\nmetadata:\n  name: {name}\n  annotations:\n    helm.sh/hook: {events}\n{extra}"
    )
}

#[test]
fn namespaced_objects_without_a_namespace_get_the_release_namespace() {
    let p = ok(&obj("ConfigMap", "cfg"));
    let o = &p.resources[0];
    assert_eq!(o.entry.namespace.as_deref(), Some(NS));
    assert_eq!(o.object.pointer("/metadata/namespace"), Some(&json(NS)));
}

#[test]
fn objects_naming_the_release_namespace_are_accepted() {
    let p = ok("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: pr-1234\n");
    assert_eq!(p.resources[0].entry.namespace.as_deref(), Some(NS));
}

#[test]
fn an_object_naming_another_namespace_refuses_the_whole_render() {
    let manifest = format!(
        "{}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n  namespace: kube-system\ndata:\n  password: aHVudGVyMg==\n",
        obj("ConfigMap", "fine")
    );
    let err = plan_with(&manifest, &[]).expect_err("refused");
    let text = err.to_string();
    assert!(matches!(err, Error::ForeignNamespace { .. }));
    assert!(text.contains("Secret/creds"), "{text}");
    assert!(text.contains("kube-system"), "{text}");
    assert!(!text.contains("aHVudGVyMg"), "values never appear: {text}");
    assert!(err.needs_spec_change());
}

#[test]
fn a_cluster_scoped_kind_not_on_the_allow_list_is_refused() {
    let err = plan_with(&obj("ClusterRole", "admin"), &[]).expect_err("refused");
    assert!(matches!(err, Error::ClusterScopedNotAllowed { .. }));
    assert!(err.to_string().contains("ClusterRole/admin"));
}

#[test]
fn allow_list_entries_match_by_kind_or_by_group_and_kind() {
    let p = plan_with(&obj("ClusterRole", "reader"), &["ClusterRole"]).expect("allowed by kind");
    assert_eq!(p.resources[0].entry.namespace, None);
    plan_with(
        &obj("ClusterRole", "reader"),
        &["rbac.authorization.k8s.io/ClusterRole"],
    )
    .expect("allowed by group and kind");
    plan_with(&obj("ClusterRole", "reader"), &["example.com/ClusterRole"])
        .expect_err("another group's kind of that name is not allowed");
    plan_with(&obj("Namespace", "extra"), &["Namespace"]).expect("core kinds by bare kind");
}

#[test]
fn a_namespace_on_a_cluster_scoped_object_is_dropped() {
    let p = plan_with(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: r\n  namespace: elsewhere\n",
        &["ClusterRole"],
    )
    .expect("allowed");
    assert_eq!(p.resources[0].entry.namespace, None);
    assert!(
        p.resources[0]
            .object
            .pointer("/metadata/namespace")
            .is_none()
    );
}

#[test]
fn a_kind_the_cluster_does_not_serve_is_refused_as_unknown() {
    let err = plan_with(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n",
        &[],
    )
    .expect_err("unknown");
    assert!(matches!(err, Error::UnknownKind { .. }));
    assert!(err.to_string().contains("Widget/w"));
    assert!(!err.needs_spec_change(), "a CRD installed later heals it");
}

#[test]
fn custom_resources_take_their_scope_from_a_crd_in_the_same_render() {
    let crd = "---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {kind: Widget, plural: widgets}\n  versions: [{name: v1, served: true, storage: true}]\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n";
    let p = plan_with(crd, &["CustomResourceDefinition"]).expect("accepted");
    assert_eq!(
        kinds(&p),
        ["CustomResourceDefinition/widgets.example.com", "Widget/w"]
    );
    assert_eq!(p.resources[1].entry.namespace.as_deref(), Some(NS));

    let cluster = crd.replace("Namespaced", "Cluster");
    let err = plan_with(&cluster, &["CustomResourceDefinition"]).expect_err("cluster-scoped");
    assert!(matches!(err, Error::ClusterScopedNotAllowed { .. }));
}

#[test]
fn every_object_is_labelled_for_the_release_and_managed_by_upstart() {
    let p = ok(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels:\n    app.kubernetes.io/managed-by: Helm\n    app: web\n",
    );
    let labels = p.resources[0].object.pointer("/metadata/labels").unwrap();
    assert_eq!(labels[MANAGED_BY_LABEL], "upstart");
    assert_eq!(labels[RELEASE_LABEL], "pr-1234.example-postgres");
    assert_eq!(labels["app"], "web");
}

#[test]
fn hooks_are_labelled_too() {
    let p = ok(&hook_doc("Job", "migrate", "pre-install", ""));
    let labels = p.hooks[0]
        .object
        .object
        .pointer("/metadata/labels")
        .unwrap();
    assert_eq!(labels[RELEASE_LABEL], "pr-1234.example-postgres");
}

#[test]
fn crds_and_namespaces_come_first_then_helms_install_order() {
    let manifest = [
        obj("Deployment", "web"),
        obj("Service", "web"),
        obj("ConfigMap", "cfg"),
        obj("Namespace", "extra"),
        obj("Secret", "creds"),
        obj("ServiceAccount", "sa"),
        obj("Ingress", "web"),
        obj("Job", "once"),
        obj("CustomResourceDefinition", "widgets.example.com"),
        obj("Role", "r"),
        obj("StatefulSet", "db"),
        obj("PersistentVolumeClaim", "data"),
    ]
    .concat();
    let p = plan_with(&manifest, &["Namespace", "CustomResourceDefinition"]).unwrap();
    assert_eq!(
        kinds(&p),
        [
            "CustomResourceDefinition/widgets.example.com",
            "Namespace/extra",
            "ServiceAccount/sa",
            "Secret/creds",
            "ConfigMap/cfg",
            "PersistentVolumeClaim/data",
            "Role/r",
            "Service/web",
            "Deployment/web",
            "StatefulSet/db",
            "Job/once",
            "Ingress/web",
        ]
    );
}

#[test]
fn unknown_kinds_go_last_alphabetically_and_equal_kinds_keep_their_rendered_order() {
    let is_namespaced = |_: &str, _: &str| Some(true);
    let allow = ClusterScopedAllowList::default();
    let manifest = "apiVersion: x.io/v1\nkind: Zebra\nmetadata: {name: z}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n---\napiVersion: x.io/v1\nkind: Aardvark\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n";
    let p = plan(
        manifest,
        &scope_with(&allow, &is_namespaced),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(
        kinds(&p),
        ["ConfigMap/b", "ConfigMap/a", "Aardvark/a", "Zebra/z"]
    );
}

#[test]
fn helms_install_order_list_is_copied_whole() {
    assert_eq!(HELM_INSTALL_ORDER.len(), 38);
    assert_eq!(HELM_INSTALL_ORDER[0], "PriorityClass");
    assert_eq!(HELM_INSTALL_ORDER[37], "ValidatingWebhookConfiguration");
    let unique: HashSet<&str> = HELM_INSTALL_ORDER.iter().copied().collect();
    assert_eq!(unique.len(), HELM_INSTALL_ORDER.len());
}

#[test]
fn uninstall_order_is_install_order_reversed() {
    let entries: Vec<InventoryEntry> = [
        "Deployment",
        "Namespace",
        "Widget",
        "ConfigMap",
        "CustomResourceDefinition",
        "Service",
    ]
    .iter()
    .map(|k| entry(k, "x"))
    .collect();
    let order: Vec<String> = uninstall_order(&entries)
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        order,
        [
            "Widget",
            "Deployment",
            "Service",
            "ConfigMap",
            "Namespace",
            "CustomResourceDefinition"
        ]
    );
}

fn entry(kind: &str, name: &str) -> InventoryEntry {
    InventoryEntry {
        api_version: "v1".into(),
        kind: kind.into(),
        namespace: Some(NS.into()),
        name: name.into(),
    }
}

#[test]
fn hooks_are_separated_from_the_inventory() {
    let manifest = format!(
        "{}{}",
        obj("Deployment", "web"),
        hook_doc("Job", "migrate", "pre-install,pre-upgrade", "")
    );
    let p = ok(&manifest);
    assert_eq!(kinds(&p), ["Deployment/web"]);
    assert_eq!(
        p.inventory(),
        vec![InventoryEntry {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some(NS.into()),
            name: "web".into(),
        }]
    );
    let hook = &p.hooks[0];
    assert_eq!(
        hook.events,
        BTreeSet::from([HookEvent::PreInstall, HookEvent::PreUpgrade])
    );
    assert_eq!(p.hooks_for(HookEvent::PreUpgrade).len(), 1);
    assert!(p.hooks_for(HookEvent::PostInstall).is_empty());
}

#[test]
fn hooks_run_by_weight_then_name() {
    let manifest = [
        hook_doc(
            "Job",
            "b-late",
            "post-install",
            "    helm.sh/hook-weight: \"10\"\n",
        ),
        hook_doc(
            "Job",
            "z-early",
            "post-install",
            "    helm.sh/hook-weight: \"-5\"\n",
        ),
        hook_doc("Job", "a-zero", "post-install", ""),
        hook_doc(
            "Job",
            "c-zero",
            "post-install",
            "    helm.sh/hook-weight: \"0\"\n",
        ),
    ]
    .concat();
    let p = ok(&manifest);
    let names: Vec<&str> = p
        .hooks_for(HookEvent::PostInstall)
        .iter()
        .map(|h| h.object.entry.name.as_str())
        .collect();
    assert_eq!(names, ["z-early", "a-zero", "c-zero", "b-late"]);
    assert_eq!(p.hooks[0].weight, -5);
}

#[test]
fn an_unparsable_hook_weight_counts_as_zero_as_in_helm() {
    let p = ok(&hook_doc(
        "Job",
        "j",
        "post-install",
        "    helm.sh/hook-weight: heavy\n",
    ));
    assert_eq!(p.hooks[0].weight, 0);
}

#[test]
fn hook_delete_policy_defaults_to_before_hook_creation() {
    let p = ok(&hook_doc("Job", "j", "post-install", ""));
    assert_eq!(
        p.hooks[0].delete_policies,
        BTreeSet::from([HookDeletePolicy::BeforeHookCreation])
    );
}

#[test]
fn hook_delete_policies_are_read_as_a_list() {
    let p = ok(&hook_doc(
        "Job",
        "j",
        "post-install",
        "    helm.sh/hook-delete-policy: \"hook-succeeded, Hook-Failed\"\n",
    ));
    let hook = &p.hooks[0];
    assert!(hook.has_policy(HookDeletePolicy::HookSucceeded));
    assert!(hook.has_policy(HookDeletePolicy::HookFailed));
    assert!(!hook.has_policy(HookDeletePolicy::BeforeHookCreation));
}

#[test]
fn test_hooks_and_unknown_events_are_not_applied_at_all() {
    let manifest = [
        hook_doc("Pod", "t", "test", ""),
        hook_doc("Pod", "t2", "test-success", ""),
        hook_doc("Job", "old", "crd-install", ""),
    ]
    .concat()
    .replace("batch/v1", "v1")
    .replace("kind: Job", "kind: ConfigMap");
    let p = ok(&manifest);
    assert!(p.resources.is_empty());
    assert!(p.hooks.is_empty());
}

#[test]
fn a_hook_naming_another_namespace_is_refused_like_any_object() {
    let manifest = hook_doc("Job", "j", "pre-install", "")
        .replace("  annotations:", "  namespace: other\n  annotations:");
    assert!(matches!(
        plan_with(&manifest, &[]),
        Err(Error::ForeignNamespace { .. })
    ));
}

#[test]
fn an_object_rendered_twice_is_refused() {
    let manifest = format!("{}{}", obj("ConfigMap", "c"), obj("ConfigMap", "c"));
    let err = plan_with(&manifest, &[]).expect_err("duplicate");
    assert!(matches!(err, Error::DuplicateObject { .. }));
    assert!(err.to_string().contains("ConfigMap/c"));
}

#[test]
fn objects_without_kind_or_name_are_refused_naming_their_template() {
    let err = plan_with(
        "# Source: app/templates/bad.yaml\napiVersion: v1\nmetadata: {name: x}\n",
        &[],
    )
    .expect_err("no kind");
    assert!(err.to_string().contains("app/templates/bad.yaml"), "{err}");
    let err = plan_with(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: x-\n",
        &[],
    )
    .expect_err("no name");
    assert!(err.to_string().contains("metadata.name"), "{err}");
    let err = plan_with("- just\n- a list\n", &[]).expect_err("not a mapping");
    assert!(matches!(err, Error::InvalidObject { .. }));
}

#[test]
fn empty_and_comment_only_documents_are_skipped_and_sources_recorded() {
    let manifest = "---\n# Source: app/templates/empty.yaml\n\n---\n---\n# Source: app/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n---\nnull\n";
    let p = ok(manifest);
    assert_eq!(kinds(&p), ["ConfigMap/c"]);
    assert_eq!(
        p.resources[0].source.as_deref(),
        Some("app/templates/cm.yaml")
    );
}

#[test]
fn a_v1_list_is_flattened_into_its_items() {
    let p = ok(
        "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- {apiVersion: v1, kind: Secret, metadata: {name: b}}\n",
    );
    assert_eq!(kinds(&p), ["Secret/b", "ConfigMap/a"]);
}

#[test]
fn a_document_marker_inside_a_block_scalar_at_column_zero_ends_the_document_as_in_yaml() {
    // YAML itself treats `---` at column 0 as a document marker; so does Helm.
    let docs = split_documents("a: 1\n---\nb: 2\n--- \nc: 3\n");
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[1].trim(), "b: 2");
}

#[test]
fn a_billion_laughs_document_is_refused_quickly() {
    let mut doc = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\na0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        let refs = [prev.as_str(); 9].join(",");
        doc.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let start = Instant::now();
    let err = plan_with(&doc, &[]).expect_err("refused");
    assert!(err.to_string().contains("more than 1000000 nodes"), "{err}");
    assert!(matches!(err, Error::YamlTooLarge { .. }), "{err}");
    assert!(
        start.elapsed() < crate::yaml::REFUSED_WITHIN,
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn a_manifest_over_the_size_limit_is_refused_before_parsing() {
    let allow = ClusterScopedAllowList::default();
    let limits = Limits {
        max_bytes: 100,
        max_documents: 10,
        ..Limits::default()
    };
    let manifest = obj("ConfigMap", &"x".repeat(200));
    let err = plan(&manifest, &scope_with(&allow, &discovery), &limits).expect_err("too big");
    assert!(matches!(
        err,
        Error::ManifestTooLarge {
            size: _,
            limit: 100
        }
    ));
}

#[test]
fn a_manifest_with_too_many_documents_is_refused() {
    let allow = ClusterScopedAllowList::default();
    let limits = Limits {
        max_bytes: 1 << 20,
        max_documents: 3,
        ..Limits::default()
    };
    let manifest: String = (0..4).map(|i| obj("ConfigMap", &format!("c{i}"))).collect();
    let err = plan(&manifest, &scope_with(&allow, &discovery), &limits).expect_err("too many");
    assert!(matches!(err, Error::TooManyDocuments { limit: 3 }));
}

#[test]
fn invalid_yaml_names_the_template_and_quotes_no_content() {
    let manifest = "# Source: app/templates/bad.yaml\napiVersion: v1\nkind: ConfigMap\ndata:\n  password: \"hunter2\n  x: [\n";
    let err = plan_with(manifest, &[]).expect_err("invalid");
    let text = err.to_string();
    assert!(text.contains("app/templates/bad.yaml"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn yaml_type_errors_that_would_quote_a_value_are_reduced_to_a_position() {
    // A non-string key cannot become JSON; the parser's message would quote it.
    let err = plan_with(
        "apiVersion: v1\nkind: ConfigMap\ndata:\n  ? [secretkey123]\n  : v\n",
        &[],
    )
    .expect_err("invalid");
    assert!(err.to_string().contains("line 4"), "{err}");
    assert!(!err.to_string().contains("secretkey123"), "{err}");
}

#[test]
fn rendered_yaml_1_1_scalars_become_what_kubectl_sends() {
    // Bitnami redis: `defaultMode: 0755` is the integer 493 for kubectl and Helm (YAML 1.1).
    let manifest = "# Source: redis/templates/sts.yaml\napiVersion: apps/v1\nkind: StatefulSet\n\
        metadata:\n  name: redis\nspec:\n  template:\n    spec:\n      volumes:\n      \
        - name: scripts\n        configMap:\n          name: scripts\n          defaultMode: 0755\n      \
        automountServiceAccountToken: no\n";
    let docs = parse_documents(manifest, &Limits::default()).expect("parses");
    let spec = &docs[0].object["spec"]["template"]["spec"];
    assert_eq!(
        spec["volumes"][0]["configMap"]["defaultMode"],
        serde_json::json!(493)
    );
    assert_eq!(
        spec["automountServiceAccountToken"],
        serde_json::json!(false)
    );
}

#[test]
fn a_rendered_quadratic_alias_document_is_refused_with_the_limit() {
    // 2000 items replayed by 1000 aliases: 2 M nodes from 14 KB, which serde_yaml_ng's alias
    // guard (counting alias uses, not what they replay) let through.
    let manifest = format!(
        "# Source: bomb/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\n\
         data:\n  a: &a [{}]\n  b: [{}]\n",
        vec!["lol"; 2000].join(","),
        vec!["*a"; 1000].join(",")
    );
    let started = std::time::Instant::now();
    let err = parse_documents(&manifest, &Limits::default())
        .err()
        .expect("refused");
    assert!(started.elapsed() < crate::yaml::REFUSED_WITHIN);
    assert!(
        matches!(
            err,
            Error::YamlTooLarge {
                limit: 1_000_000,
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("bomb/templates/cm.yaml"), "{text}");
    assert!(text.contains("more than 1000000 nodes"), "{text}");
    assert!(err.needs_spec_change());
}

#[test]
fn the_prune_set_is_the_old_inventory_minus_the_new_in_uninstall_order() {
    let old = vec![
        entry("ConfigMap", "a"),
        entry("Deployment", "web"),
        entry("Service", "web"),
        entry("Secret", "s"),
    ];
    let new = vec![entry("Service", "web"), entry("Secret", "s2")];
    assert_eq!(
        prune_set(&old, &new),
        vec![
            entry("Deployment", "web"),
            entry("ConfigMap", "a"),
            entry("Secret", "s")
        ]
    );
    assert!(prune_set(&new, &new).is_empty());
}

#[test]
fn an_object_labelled_for_another_release_is_a_conflict() {
    let labels = BTreeMap::from([(RELEASE_LABEL.to_owned(), "pr-1234.other".to_owned())]);
    assert_eq!(
        ownership(Some(&labels), "pr-1234.example-postgres"),
        Ownership::OtherRelease("pr-1234.other".into())
    );
    let err = check_conflict(
        &entry("Deployment", "web"),
        Some(&labels),
        "pr-1234.example-postgres",
    )
    .expect_err("conflict");
    assert_eq!(
        err.to_string(),
        "Deployment/web already exists and belongs to release pr-1234.other"
    );
}

#[test]
fn our_own_and_unlabelled_objects_are_not_conflicts() {
    let ours = BTreeMap::from([(
        RELEASE_LABEL.to_owned(),
        "pr-1234.example-postgres".to_owned(),
    )]);
    assert_eq!(
        ownership(Some(&ours), "pr-1234.example-postgres"),
        Ownership::Ours
    );
    assert_eq!(
        ownership(None, "pr-1234.example-postgres"),
        Ownership::Unlabelled
    );
    let other_labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
    assert_eq!(
        ownership(Some(&other_labels), "pr-1234.example-postgres"),
        Ownership::Unlabelled
    );
    check_conflict(
        &entry("Deployment", "web"),
        Some(&ours),
        "pr-1234.example-postgres",
    )
    .expect("ours");
}

#[test]
fn the_plan_digest_is_stable_and_follows_content() {
    let a = ok(&obj("ConfigMap", "c")).digest();
    assert_eq!(a, ok(&obj("ConfigMap", "c")).digest());
    assert_ne!(a, ok(&obj("ConfigMap", "d")).digest());
    assert!(a.starts_with("sha256:"));
}

#[test]
fn the_inventory_is_in_apply_order() {
    let p = ok(&[
        obj("Service", "b"),
        obj("ConfigMap", "z"),
        obj("ConfigMap", "a"),
    ]
    .concat());
    let inv: Vec<String> = p.inventory().iter().map(display_name).collect();
    assert_eq!(inv, ["ConfigMap/z", "ConfigMap/a", "Service/b"]);
    let applied: Vec<String> = p.resources.iter().map(|o| o.display_name()).collect();
    assert_eq!(inv, applied);
}

fn json(s: &str) -> Value {
    Value::String(s.into())
}

#[test]
fn install_runs_install_hooks_and_upgrade_runs_upgrade_hooks() {
    assert_eq!(
        HookEvent::around_apply(false),
        (HookEvent::PreInstall, HookEvent::PostInstall)
    );
    assert_eq!(
        HookEvent::around_apply(true),
        (HookEvent::PreUpgrade, HookEvent::PostUpgrade)
    );
}

#[test]
fn hook_objects_are_deleted_after_the_outcomes_their_policy_names() {
    let p = ok(&[
        hook_doc("Job", "default", "post-install", ""),
        hook_doc(
            "Job",
            "on-success",
            "post-install",
            "    helm.sh/hook-delete-policy: hook-succeeded,before-hook-creation\n",
        ),
        hook_doc(
            "Job",
            "on-failure",
            "post-install",
            "    helm.sh/hook-delete-policy: hook-failed\n",
        ),
    ]
    .concat());
    let by_name = |n: &str| p.hooks.iter().find(|h| h.object.entry.name == n).unwrap();
    let default = by_name("default");
    assert!(default.delete_before_creation());
    assert!(!default.delete_after(HookOutcome::Succeeded));
    assert!(!default.delete_after(HookOutcome::Failed));
    let on_success = by_name("on-success");
    assert!(on_success.delete_before_creation());
    assert!(on_success.delete_after(HookOutcome::Succeeded));
    assert!(!on_success.delete_after(HookOutcome::Failed));
    let on_failure = by_name("on-failure");
    assert!(!on_failure.delete_before_creation());
    assert!(on_failure.delete_after(HookOutcome::Failed));
    assert_eq!(on_failure.display_name(), "Job/on-failure");
}

#[test]
fn a_hook_job_has_ended_only_when_complete_or_failed() {
    let running = serde_json::json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "seed"}, "status": {"active": 1}});
    assert_eq!(hook_outcome(&running), None);
    let complete = serde_json::json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "seed"},
        "status": {"conditions": [{"type": "Complete", "status": "True"}]}});
    assert_eq!(hook_outcome(&complete), Some(HookOutcome::Succeeded));
    let failed = serde_json::json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "seed"},
        "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}});
    assert_eq!(hook_outcome(&failed), Some(HookOutcome::Failed));
}

#[test]
fn a_hook_pod_has_ended_only_when_it_succeeded_or_failed_not_when_ready() {
    let pod = |phase: &str| {
        serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True"}]}})
    };
    assert_eq!(hook_outcome(&pod("Running")), None);
    assert_eq!(
        hook_outcome(&pod("Succeeded")),
        Some(HookOutcome::Succeeded)
    );
    assert_eq!(hook_outcome(&pod("Failed")), Some(HookOutcome::Failed));
}

#[test]
fn other_hook_kinds_have_done_their_work_once_they_exist() {
    let cm =
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    assert_eq!(hook_outcome(&cm), Some(HookOutcome::Succeeded));
}

#[test]
fn debug_output_of_planned_objects_shows_identity_not_data() {
    let p = ok(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: hunter2-secret\n",
    );
    let text = format!("{p:?}");
    assert!(text.contains("Secret"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn a_source_in_a_crds_directory_of_the_chart_or_a_subchart_is_recognised() {
    assert!(is_in_crds_directory("mychart/crds/widgets.yaml"));
    assert!(is_in_crds_directory("mychart/charts/sub/crds/gadgets.yaml"));
    assert!(is_in_crds_directory(
        "mychart/charts/sub/charts/inner/crds/x.yaml"
    ));
    assert!(!is_in_crds_directory("mychart/templates/crds/x.yaml"));
    assert!(!is_in_crds_directory("mychart/templates/crd.yaml"));
    assert!(!is_in_crds_directory("mychart/charts/crds/x.yaml"));
    assert!(!is_in_crds_directory("crds"));
}

#[test]
fn crds_of_the_crds_directory_stay_out_of_the_inventory_and_templated_ones_stay_in() {
    let crd = |name: &str, group: &str, kind: &str| {
        format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {name}\n\
             spec:\n  group: {group}\n  scope: Namespaced\n  names: {{kind: {kind}, plural: x}}\n"
        )
    };
    let manifest = format!(
        "---\n# Source: app/crds/widgets.yaml\n{}---\n# Source: app/charts/sub/crds/gadgets.yaml\n{}\
         ---\n# Source: app/templates/things.yaml\n{}---\n# Source: app/templates/cm.yaml\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
        crd("widgets.example.com", "example.com", "Widget"),
        crd("gadgets.example.com", "example.com", "Gadget"),
        crd("things.example.com", "example.com", "Thing"),
    );
    let plan = plan_with(&manifest, &["CustomResourceDefinition"]).expect("accepted");
    let crds: Vec<String> = plan.crds.iter().map(|o| o.display_name()).collect();
    assert_eq!(
        crds,
        [
            "CustomResourceDefinition/widgets.example.com",
            "CustomResourceDefinition/gadgets.example.com"
        ]
    );
    assert_eq!(
        kinds(&plan),
        ["CustomResourceDefinition/things.example.com", "ConfigMap/c"]
    );
    assert!(
        plan.inventory()
            .iter()
            .all(|e| e.name != "widgets.example.com" && e.name != "gadgets.example.com")
    );
}

#[test]
fn asleep_deployments_and_statefulsets_have_zero_replicas_and_nothing_else_changes() {
    let entry = |api_version: &str, kind: &str| InventoryEntry {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: None,
        name: "web".into(),
    };
    let deployment =
        serde_json::json!({"kind": "Deployment", "spec": {"replicas": 3, "template": {}}});
    let slept = asleep(&entry("apps/v1", "Deployment"), &deployment).unwrap();
    assert_eq!(slept["spec"]["replicas"], 0);
    assert_eq!(slept["spec"]["template"], serde_json::json!({}));
    let no_replicas = serde_json::json!({"kind": "StatefulSet", "spec": {}});
    let slept = asleep(&entry("apps/v1", "StatefulSet"), &no_replicas).unwrap();
    assert_eq!(slept["spec"]["replicas"], 0);
    assert_eq!(asleep(&entry("apps/v1", "DaemonSet"), &deployment), None);
    assert_eq!(asleep(&entry("v1", "Service"), &deployment), None);
    assert_eq!(
        asleep(&entry("example.com/v1", "Deployment"), &deployment),
        None
    );
}
