//! The OpenAPI v3 document of each group version: every resource accepts `fieldValidation` (so
//! kubectl validates on the server, not from schemas), with the schemas of the built-in kinds
//! (k8s-openapi's, through schemars: what `kubectl explain` reads) and of CRDs.

use std::hash::{Hash, Hasher};

use serde_json::{Value, json};

use crate::registry::Registry;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the group versions and where their documents are.
pub fn root(registry: &Registry) -> Value {
    let mut gvs: Vec<(String, String)> = Vec::new();
    for t in registry.all() {
        for v in &t.versions {
            let gv = (t.group.clone(), v.clone());
            if !gvs.contains(&gv) {
                gvs.push(gv);
            }
        }
    }
    let mut paths = serde_json::Map::new();
    for (g, v) in gvs {
        let doc = group_version(registry, &g, &v).unwrap_or_default();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        doc.to_string().hash(&mut h);
        let p = gv_path(&g, &v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={:016X}", h.finish())}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v3/apis/{group}/{version}`.
pub fn group_version(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    let params = json!([
        {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}},
    ]);
    let mut any = false;
    for t in registry
        .all()
        .filter(|t| t.group == group && t.serves(version))
    {
        any = true;
        let gvk = json!({"group": group, "version": version, "kind": t.kind});
        let base = if t.namespaced {
            format!(
                "/{}/namespaces/{{namespace}}/{}",
                gv_path(group, version),
                t.plural
            )
        } else {
            format!("/{}/{}", gv_path(group, version), t.plural)
        };
        let op = |action: &str| json!({"x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": {}});
        paths.insert(base.clone(), json!({"post": op("post"), "get": op("list")}));
        paths.insert(
            format!("{base}/{{name}}"),
            json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}),
        );
        let builtin = t
            .builtin
            .then(|| builtin_schemas(group, version, &t.plural))
            .flatten();
        let (schema_name, mut schema) = match builtin {
            Some((name, definitions)) => {
                for (def_name, def) in definitions {
                    schemas.insert(def_name.clone(), def.clone());
                }
                (
                    name.clone(),
                    definitions.get(name).cloned().unwrap_or_default(),
                )
            }
            None => (
                format!(
                    "{}.{version}.{}",
                    if group.is_empty() {
                        "io.k8s.api.core".to_string()
                    } else {
                        reverse_domain(group)
                    },
                    t.kind
                ),
                t.crd_versions
                    .get(version)
                    .and_then(|v| v.schema.clone())
                    .unwrap_or_else(
                        || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
                    ),
            ),
        };
        if schema.is_object() {
            schema["x-kubernetes-group-version-kind"] = json!([gvk]);
        }
        schemas.insert(schema_name, schema);
    }
    if !any {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

fn reverse_domain(group: &str) -> String {
    group.split('.').rev().collect::<Vec<_>>().join(".")
}

/// The schema name of a built-in kind's k8s-openapi type and the definitions it needs (its
/// own included), in OpenAPI v3 form with `$ref`s into `#/components/schemas/`; cached, as
/// kubectl fetches them often and they never change.
pub(crate) fn builtin_schemas(
    group: &str,
    version: &str,
    plural: &str,
) -> Option<&'static (String, serde_json::Map<String, Value>)> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Cache = Mutex<HashMap<String, Option<&'static (String, serde_json::Map<String, Value>)>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key = format!("{group}/{version}/{plural}");
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache.lock().ok()?.get(&key) {
        return *hit;
    }
    let generated = generate(group, version, plural).map(|g| &*Box::leak(Box::new(g)));
    cache.lock().ok()?.insert(key, generated);
    generated
}

fn generate(
    group: &str,
    version: &str,
    plural: &str,
) -> Option<(String, serde_json::Map<String, Value>)> {
    use k8s_openapi::api as k;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as ext;
    use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as reg;
    use k8s_openapi::schemars::{JsonSchema, generate::SchemaSettings};
    fn of<T: JsonSchema>() -> (String, serde_json::Map<String, Value>) {
        let mut generator = SchemaSettings::openapi3().into_generator();
        let root = generator.subschema_for::<T>();
        let _ = root;
        let definitions = generator.take_definitions(true);
        (T::schema_name().into_owned(), definitions)
    }
    Some(match (group, version, plural) {
        ("", "v1", "pods") => of::<k::core::v1::Pod>(),
        ("", "v1", "services") => of::<k::core::v1::Service>(),
        ("", "v1", "configmaps") => of::<k::core::v1::ConfigMap>(),
        ("", "v1", "secrets") => of::<k::core::v1::Secret>(),
        ("", "v1", "serviceaccounts") => of::<k::core::v1::ServiceAccount>(),
        ("", "v1", "endpoints") => of::<k::core::v1::Endpoints>(),
        ("", "v1", "events") => of::<k::core::v1::Event>(),
        ("", "v1", "persistentvolumeclaims") => of::<k::core::v1::PersistentVolumeClaim>(),
        ("", "v1", "persistentvolumes") => of::<k::core::v1::PersistentVolume>(),
        ("", "v1", "replicationcontrollers") => of::<k::core::v1::ReplicationController>(),
        ("", "v1", "resourcequotas") => of::<k::core::v1::ResourceQuota>(),
        ("", "v1", "limitranges") => of::<k::core::v1::LimitRange>(),
        ("", "v1", "podtemplates") => of::<k::core::v1::PodTemplate>(),
        ("", "v1", "namespaces") => of::<k::core::v1::Namespace>(),
        ("", "v1", "nodes") => of::<k::core::v1::Node>(),
        ("apps", "v1", "deployments") => of::<k::apps::v1::Deployment>(),
        ("apps", "v1", "statefulsets") => of::<k::apps::v1::StatefulSet>(),
        ("apps", "v1", "daemonsets") => of::<k::apps::v1::DaemonSet>(),
        ("apps", "v1", "replicasets") => of::<k::apps::v1::ReplicaSet>(),
        ("apps", "v1", "controllerrevisions") => of::<k::apps::v1::ControllerRevision>(),
        ("batch", "v1", "jobs") => of::<k::batch::v1::Job>(),
        ("batch", "v1", "cronjobs") => of::<k::batch::v1::CronJob>(),
        ("networking.k8s.io", "v1", "ingresses") => of::<k::networking::v1::Ingress>(),
        ("networking.k8s.io", "v1", "ingressclasses") => of::<k::networking::v1::IngressClass>(),
        ("networking.k8s.io", "v1", "networkpolicies") => of::<k::networking::v1::NetworkPolicy>(),
        ("rbac.authorization.k8s.io", "v1", "roles") => of::<k::rbac::v1::Role>(),
        ("rbac.authorization.k8s.io", "v1", "rolebindings") => of::<k::rbac::v1::RoleBinding>(),
        ("rbac.authorization.k8s.io", "v1", "clusterroles") => of::<k::rbac::v1::ClusterRole>(),
        ("rbac.authorization.k8s.io", "v1", "clusterrolebindings") => {
            of::<k::rbac::v1::ClusterRoleBinding>()
        }
        ("policy", "v1", "poddisruptionbudgets") => of::<k::policy::v1::PodDisruptionBudget>(),
        ("coordination.k8s.io", "v1", "leases") => of::<k::coordination::v1::Lease>(),
        ("events.k8s.io", "v1", "events") => of::<k::events::v1::Event>(),
        ("autoscaling", "v2", "horizontalpodautoscalers") => {
            of::<k::autoscaling::v2::HorizontalPodAutoscaler>()
        }
        ("autoscaling", "v1", "horizontalpodautoscalers") => {
            of::<k::autoscaling::v1::HorizontalPodAutoscaler>()
        }
        ("storage.k8s.io", "v1", "storageclasses") => of::<k::storage::v1::StorageClass>(),
        ("discovery.k8s.io", "v1", "endpointslices") => of::<k::discovery::v1::EndpointSlice>(),
        ("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations") => {
            of::<k::admissionregistration::v1::ValidatingWebhookConfiguration>()
        }
        ("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations") => {
            of::<k::admissionregistration::v1::MutatingWebhookConfiguration>()
        }
        ("scheduling.k8s.io", "v1", "priorityclasses") => of::<k::scheduling::v1::PriorityClass>(),
        ("node.k8s.io", "v1", "runtimeclasses") => of::<k::node::v1::RuntimeClass>(),
        ("apiregistration.k8s.io", "v1", "apiservices") => of::<reg::APIService>(),
        ("certificates.k8s.io", "v1", "certificatesigningrequests") => {
            of::<k::certificates::v1::CertificateSigningRequest>()
        }
        ("apiextensions.k8s.io", "v1", "customresourcedefinitions") => {
            of::<ext::CustomResourceDefinition>()
        }
        ("authorization.k8s.io", "v1", "selfsubjectaccessreviews") => {
            of::<k::authorization::v1::SelfSubjectAccessReview>()
        }
        ("authentication.k8s.io", "v1", "selfsubjectreviews") => {
            of::<k::authentication::v1::SelfSubjectReview>()
        }
        _ => return None,
    })
}
