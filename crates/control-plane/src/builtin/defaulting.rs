//! Defaulting of built-in kinds, as the API server defaults a decoded object before it
//! validates it: one function per `SetDefaults_*` of Kubernetes 1.33's
//! `pkg/apis/{core,apps,batch,rbac}/v1/defaults.go` (and the `+default=` markers of the
//! types, e.g. a port's protocol), applied by the schema walk to every object of that type
//! wherever it appears. A default never overwrites a value the client set.

use serde_json::{Map, Value, json};

use super::schema;
use crate::registry::ResourceType;

type Fields = Map<String, Value>;

/// One `SetDefaults_*`: it defaults the fields of one object of its type.
type Defaulter = fn(&mut Fields);

/// The defaulting functions by definition, in the API server's order for one object (the
/// object's own function, then its children's as the walk reaches them).
const DEFAULTERS: &[(&str, Defaulter)] = &[
    ("io.k8s.api.apps.v1.Deployment", deployment),
    ("io.k8s.api.apps.v1.StatefulSet", stateful_set),
    ("io.k8s.api.apps.v1.DaemonSet", daemon_set),
    ("io.k8s.api.apps.v1.ReplicaSet", replica_set),
    ("io.k8s.api.batch.v1.Job", job),
    ("io.k8s.api.batch.v1.CronJob", cron_job),
    ("io.k8s.api.core.v1.Pod", pod),
    ("io.k8s.api.core.v1.PodSpec", pod_spec),
    ("io.k8s.api.core.v1.Container", container),
    ("io.k8s.api.core.v1.ContainerPort", protocol_tcp),
    ("io.k8s.api.core.v1.ServicePort", protocol_tcp),
    ("io.k8s.api.core.v1.Probe", probe),
    ("io.k8s.api.core.v1.HTTPGetAction", http_get),
    (
        "io.k8s.api.core.v1.ObjectFieldSelector",
        object_field_selector,
    ),
    ("io.k8s.api.core.v1.SecretVolumeSource", default_mode),
    ("io.k8s.api.core.v1.ConfigMapVolumeSource", default_mode),
    ("io.k8s.api.core.v1.DownwardAPIVolumeSource", default_mode),
    ("io.k8s.api.core.v1.ProjectedVolumeSource", default_mode),
    ("io.k8s.api.core.v1.HostPathVolumeSource", host_path),
    ("io.k8s.api.core.v1.PersistentVolumeClaimSpec", claim_spec),
    ("io.k8s.api.core.v1.Service", service),
    ("io.k8s.api.core.v1.Secret", secret),
    ("io.k8s.api.rbac.v1.Subject", subject),
];

/// Applies the API server's defaults to a built-in object (no-op for kinds without a schema).
pub fn apply(t: &ResourceType, obj: &mut Value) {
    let Some((root, definitions)) = schema::of_kind(t, obj) else {
        return;
    };
    schema::walk_mut(definitions, root, obj, &mut |definition, fields| {
        for (_, defaulter) in DEFAULTERS.iter().filter(|(d, _)| *d == definition) {
            defaulter(fields);
        }
    });
}

/// Sets `key` when it is unset (absent or null), as `if x == nil` / `if x == ""` in Go.
fn or_default(fields: &mut Fields, key: &str, value: Value) {
    let unset = match fields.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    };
    if unset {
        fields.insert(key.to_string(), value);
    }
}

/// Sets `key` when it is unset or zero: the check Go makes for a non-pointer number
/// (`if x == 0`), where an explicit 0 cannot be told from unset.
fn or_default_if_zero(fields: &mut Fields, key: &str, value: Value) {
    if fields.get(key).is_some_and(|v| v == &json!(0)) {
        fields.remove(key);
    }
    or_default(fields, key, value);
}

/// The object under `key`, created empty when unset.
fn object<'a>(fields: &'a mut Fields, key: &str) -> &'a mut Fields {
    if !fields.get(key).is_some_and(Value::is_object) {
        fields.insert(key.to_string(), json!({}));
    }
    fields
        .get_mut(key)
        .and_then(Value::as_object_mut)
        .expect("inserted above")
}

/// The spec of a top-level object, when it has one (a missing spec stays missing: validation
/// then names what it lacks).
fn spec(fields: &mut Fields) -> Option<&mut Fields> {
    fields.get_mut("spec").and_then(Value::as_object_mut)
}

/// `SetDefaults_Deployment`.
fn deployment(d: &mut Fields) {
    let Some(spec) = spec(d) else { return };
    or_default(spec, "replicas", json!(1));
    let strategy = object(spec, "strategy");
    or_default(strategy, "type", json!("RollingUpdate"));
    if strategy["type"] == "RollingUpdate" {
        let rolling = object(strategy, "rollingUpdate");
        or_default(rolling, "maxUnavailable", json!("25%"));
        or_default(rolling, "maxSurge", json!("25%"));
    }
    or_default(spec, "revisionHistoryLimit", json!(10));
    or_default(spec, "progressDeadlineSeconds", json!(600));
}

/// `SetDefaults_StatefulSet` (MaxUnavailableStatefulSet is off in 1.33).
fn stateful_set(s: &mut Fields) {
    let Some(spec) = spec(s) else { return };
    or_default(spec, "podManagementPolicy", json!("OrderedReady"));
    let strategy = object(spec, "updateStrategy");
    if strategy.get("type").is_none_or(|t| t.is_null() || t == "") {
        strategy.insert("type".into(), json!("RollingUpdate"));
        object(strategy, "rollingUpdate");
    }
    if strategy["type"] == "RollingUpdate"
        && let Some(rolling) = strategy
            .get_mut("rollingUpdate")
            .and_then(Value::as_object_mut)
    {
        or_default(rolling, "partition", json!(0));
    }
    let retention = object(spec, "persistentVolumeClaimRetentionPolicy");
    or_default(retention, "whenDeleted", json!("Retain"));
    or_default(retention, "whenScaled", json!("Retain"));
    or_default(spec, "replicas", json!(1));
    or_default(spec, "revisionHistoryLimit", json!(10));
}

/// `SetDefaults_DaemonSet`.
fn daemon_set(d: &mut Fields) {
    let Some(spec) = spec(d) else { return };
    let strategy = object(spec, "updateStrategy");
    or_default(strategy, "type", json!("RollingUpdate"));
    if strategy["type"] == "RollingUpdate" {
        let rolling = object(strategy, "rollingUpdate");
        or_default(rolling, "maxUnavailable", json!(1));
        or_default(rolling, "maxSurge", json!(0));
    }
    or_default(spec, "revisionHistoryLimit", json!(10));
}

/// `SetDefaults_ReplicaSet`.
fn replica_set(r: &mut Fields) {
    if let Some(spec) = spec(r) {
        or_default(spec, "replicas", json!(1));
    }
}

/// `SetDefaults_Job`, then the selector and labels the job strategy generates on create
/// (`generateSelector`, unless `manualSelector`): the pods of a Job are its own through the
/// `controller-uid` labels, and the Job takes its template's labels when it has none.
fn job(j: &mut Fields) {
    let metadata = j.get("metadata").cloned().unwrap_or_default();
    let name = metadata["name"].as_str().unwrap_or_default().to_string();
    let uid = metadata["uid"].as_str().unwrap_or_default().to_string();
    let Some(spec) = spec(j) else { return };
    // Both unset is one pod to completion; a parallelism alone is a work queue.
    if spec.get("completions").is_none_or(Value::is_null)
        && spec.get("parallelism").is_none_or(Value::is_null)
    {
        spec.insert("completions".into(), json!(1));
        spec.insert("parallelism".into(), json!(1));
    }
    or_default(spec, "parallelism", json!(1));
    let backoff = if spec
        .get("backoffLimitPerIndex")
        .is_some_and(|v| !v.is_null())
    {
        json!(i32::MAX)
    } else {
        json!(6)
    };
    or_default(spec, "backoffLimit", backoff);
    or_default(spec, "completionMode", json!("NonIndexed"));
    or_default(spec, "suspend", json!(false));
    let replacement = if spec.get("podFailurePolicy").is_some_and(|v| !v.is_null()) {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    or_default(spec, "podReplacementPolicy", json!(replacement));
    if let Some(rules) = spec
        .get_mut("podFailurePolicy")
        .and_then(|p| p.get_mut("rules"))
        .and_then(Value::as_array_mut)
    {
        for pattern in rules
            .iter_mut()
            .filter_map(|r| r.get_mut("onPodConditions").and_then(Value::as_array_mut))
            .flatten()
            .filter_map(Value::as_object_mut)
        {
            or_default(pattern, "status", json!("True"));
        }
    }
    // The uid is set on create only; an update keeps the selector and labels it got then.
    if spec.get("manualSelector") != Some(&json!(true)) && !uid.is_empty() {
        let template_labels = object(object(object(spec, "template"), "metadata"), "labels");
        for (key, value) in [
            ("job-name", &name),
            ("batch.kubernetes.io/job-name", &name),
            ("controller-uid", &uid),
            ("batch.kubernetes.io/controller-uid", &uid),
        ] {
            or_default(template_labels, key, json!(value));
        }
        let selector = object(object(spec, "selector"), "matchLabels");
        or_default(selector, "batch.kubernetes.io/controller-uid", json!(uid));
    }
    let template_labels = spec
        .get("template")
        .map(|t| t["metadata"]["labels"].clone())
        .unwrap_or_default();
    let metadata = object(j, "metadata");
    if template_labels.as_object().is_some_and(|l| !l.is_empty())
        && metadata
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
    {
        metadata.insert("labels".into(), template_labels);
    }
}

/// `SetDefaults_CronJob`.
fn cron_job(c: &mut Fields) {
    let Some(spec) = spec(c) else { return };
    or_default(spec, "concurrencyPolicy", json!("Allow"));
    or_default(spec, "suspend", json!(false));
    or_default(spec, "successfulJobsHistoryLimit", json!(3));
    or_default(spec, "failedJobsHistoryLimit", json!(1));
}

/// `SetDefaults_Pod`: requests default to limits; service links on.
fn pod(p: &mut Fields) {
    let Some(spec) = spec(p) else { return };
    for list in ["containers", "initContainers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(limits) = c["resources"]["limits"].as_object().cloned() else {
                continue;
            };
            let Some(resources) = c.get_mut("resources").and_then(Value::as_object_mut) else {
                continue;
            };
            let requests = object(resources, "requests");
            for (resource, quantity) in limits {
                requests.entry(resource).or_insert(quantity);
            }
        }
    }
    or_default(spec, "enableServiceLinks", json!(true));
}

/// `SetDefaults_PodSpec`.
fn pod_spec(s: &mut Fields) {
    or_default(s, "dnsPolicy", json!("ClusterFirst"));
    or_default(s, "restartPolicy", json!("Always"));
    or_default(s, "securityContext", json!({}));
    or_default(s, "terminationGracePeriodSeconds", json!(30));
    or_default(s, "schedulerName", json!("default-scheduler"));
}

/// `SetDefaults_Container`: images tagged `latest`, or not tagged nor pinned by digest, are
/// pulled every time.
fn container(c: &mut Fields) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    let policy = if image_tag(image).is_some_and(|tag| tag == "latest") {
        "Always"
    } else {
        "IfNotPresent"
    };
    or_default(c, "imagePullPolicy", json!(policy));
    or_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    or_default(c, "terminationMessagePolicy", json!("File"));
}

/// The tag of an image reference, `latest` when it has neither tag nor digest (as
/// `parsers.ParseImageName`), None when pinned by digest alone.
fn image_tag(image: &str) -> Option<&str> {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    // A colon before the last slash belongs to a registry's port, not a tag.
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, tag)) => Some(tag),
        None if digest.is_some() => None,
        None => Some("latest"),
    }
}

/// The `+default="TCP"` of container and service ports.
fn protocol_tcp(p: &mut Fields) {
    or_default(p, "protocol", json!("TCP"));
}

/// `SetDefaults_Probe`.
fn probe(p: &mut Fields) {
    or_default_if_zero(p, "timeoutSeconds", json!(1));
    or_default_if_zero(p, "periodSeconds", json!(10));
    or_default_if_zero(p, "successThreshold", json!(1));
    or_default_if_zero(p, "failureThreshold", json!(3));
}

/// `SetDefaults_HTTPGetAction`.
fn http_get(h: &mut Fields) {
    or_default(h, "path", json!("/"));
    or_default(h, "scheme", json!("HTTP"));
}

/// `SetDefaults_ObjectFieldSelector`.
fn object_field_selector(s: &mut Fields) {
    or_default(s, "apiVersion", json!("v1"));
}

/// The volume sources' `defaultMode` 0644 (420).
fn default_mode(v: &mut Fields) {
    or_default(v, "defaultMode", json!(420));
}

/// `SetDefaults_HostPathVolumeSource`: the type stays "" (no checks), but is written.
fn host_path(h: &mut Fields) {
    if h.get("type").is_none_or(Value::is_null) {
        h.insert("type".into(), json!(""));
    }
}

/// `SetDefaults_PersistentVolumeClaimSpec`.
fn claim_spec(s: &mut Fields) {
    or_default(s, "volumeMode", json!("Filesystem"));
}

/// `SetDefaults_Service`, with what the service REST storage adds on create for a
/// single-stack IPv4 cluster (the IP families; the cluster IP is allocated in `prepare`).
fn service(svc: &mut Fields) {
    let spec = object(svc, "spec");
    or_default(spec, "type", json!("ClusterIP"));
    or_default(spec, "sessionAffinity", json!("None"));
    let ty = spec["type"].as_str().unwrap_or_default().to_string();
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            // Go's zero port, so an absent port is refused naming both fields.
            let port = p.get("port").cloned().unwrap_or(json!(0));
            or_default_if_zero(p, "targetPort", port);
        }
    }
    if ty != "ExternalName" {
        or_default(spec, "internalTrafficPolicy", json!("Cluster"));
        or_default(spec, "ipFamilyPolicy", json!("SingleStack"));
        or_default(spec, "ipFamilies", json!(["IPv4"]));
    }
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
        or_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
}

/// `SetDefaults_Secret`.
fn secret(s: &mut Fields) {
    or_default(s, "type", json!("Opaque"));
}

/// `SetDefaults_Subject` (rbac/v1): the API group follows the kind.
fn subject(s: &mut Fields) {
    let group = match s.get("kind").and_then(Value::as_str) {
        Some("ServiceAccount") => "",
        Some("User" | "Group") => "rbac.authorization.k8s.io",
        _ => return,
    };
    if s.get("apiGroup").is_none_or(Value::is_null) {
        s.insert("apiGroup".into(), json!(group));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted(group: &str, plural: &str, mut obj: Value) -> Value {
        let t = crate::registry::Registry::with_builtins()
            .lookup(group, "v1", plural)
            .cloned()
            .unwrap();
        apply(&t, &mut obj);
        obj
    }

    #[test]
    fn a_deployment_gets_the_rolling_update_strategy_and_its_pods_the_pod_defaults() {
        let d = defaulted(
            "apps",
            "deployments",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                   "spec": {"selector": {"matchLabels": {"app": "web"}},
                            "template": {"metadata": {"labels": {"app": "web"}},
                                         "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}}}),
        );
        let spec = &d["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["schedulerName"], "default-scheduler");
        assert_eq!(pod["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["securityContext"], json!({}));
        let c = &pod["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        // Pod-only defaults do not reach templates.
        assert!(pod.get("enableServiceLinks").is_none());
    }

    #[test]
    fn a_recreate_strategy_gets_no_rolling_update_parameters() {
        let d = defaulted(
            "apps",
            "deployments",
            json!({"metadata": {"name": "web"}, "spec": {"strategy": {"type": "Recreate"}}}),
        );
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn images_tagged_latest_or_untagged_are_always_pulled() {
        for (image, policy) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("registry:5000/team/nginx", "Always"),
            ("registry:5000/team/nginx:1.2", "IfNotPresent"),
            ("nginx@sha256:abc", "IfNotPresent"),
            ("nginx:latest@sha256:abc", "Always"),
        ] {
            let p = defaulted(
                "",
                "pods",
                json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": image}]}}),
            );
            assert_eq!(
                p["spec"]["containers"][0]["imagePullPolicy"], policy,
                "{image}"
            );
        }
    }

    #[test]
    fn a_set_value_is_never_overwritten_by_a_default() {
        let p = defaulted(
            "",
            "pods",
            json!({"metadata": {"name": "p"}, "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                   "containers": [{"name": "c", "image": "i", "imagePullPolicy": "Never",
                                   "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "500m"}}}]}}),
        );
        assert_eq!(p["spec"]["restartPolicy"], "Never");
        assert_eq!(p["spec"]["terminationGracePeriodSeconds"], 0);
        assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Never");
        assert_eq!(
            p["spec"]["containers"][0]["resources"]["requests"]["cpu"],
            "500m"
        );
        assert_eq!(p["spec"]["enableServiceLinks"], true);
    }

    #[test]
    fn a_job_selects_its_pods_by_its_uid_and_labels_them_with_its_name() {
        let j = defaulted(
            "batch",
            "jobs",
            json!({"metadata": {"name": "pi", "uid": "u-1"},
                   "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl"}]}}}}),
        );
        let spec = &j["spec"];
        assert_eq!(
            spec["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        let labels = json!({"job-name": "pi", "batch.kubernetes.io/job-name": "pi",
                            "controller-uid": "u-1", "batch.kubernetes.io/controller-uid": "u-1"});
        assert_eq!(spec["template"]["metadata"]["labels"], labels);
        assert_eq!(j["metadata"]["labels"], labels);
        assert_eq!(
            (
                &spec["completions"],
                &spec["parallelism"],
                &spec["backoffLimit"]
            ),
            (&json!(1), &json!(1), &json!(6))
        );
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
    }

    #[test]
    fn a_cron_jobs_template_gets_pod_defaults_but_not_job_defaults() {
        let c = defaulted(
            "batch",
            "cronjobs",
            json!({"metadata": {"name": "c"}, "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}}),
        );
        let spec = &c["spec"];
        assert_eq!(spec["concurrencyPolicy"], "Allow");
        assert_eq!(spec["successfulJobsHistoryLimit"], 3);
        assert_eq!(spec["failedJobsHistoryLimit"], 1);
        assert!(spec["jobTemplate"]["spec"].get("backoffLimit").is_none());
        assert_eq!(
            spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
    }

    /// A probe's numbers are not pointers in Go: 0 is unset there, and gets the default.
    #[test]
    fn a_probe_with_zero_numbers_gets_the_defaults() {
        let p = defaulted(
            "",
            "pods",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i",
                   "readinessProbe": {"httpGet": {"port": 80}, "timeoutSeconds": 0, "periodSeconds": 5}}]}}),
        );
        assert_eq!(
            p["spec"]["containers"][0]["readinessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                   "periodSeconds": 5, "successThreshold": 1, "failureThreshold": 3})
        );
    }

    #[test]
    fn a_service_port_targets_its_own_port_over_tcp() {
        let s = defaulted(
            "",
            "services",
            json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}),
        );
        assert_eq!(
            s["spec"]["ports"][0],
            json!({"port": 80, "targetPort": 80, "protocol": "TCP"})
        );
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["sessionAffinity"], "None");
        assert_eq!(s["spec"]["internalTrafficPolicy"], "Cluster");
        assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4"]));
    }
}
