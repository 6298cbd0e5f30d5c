//! Where an environment can be reached, per service: the hosts of its Ingresses (with the
//! scheme their TLS section gives them), the addresses of its LoadBalancer Services, and the
//! cluster DNS names of its Services. Read from the objects the releases applied (their
//! release label says which release, and so which service, each belongs to). Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::ResourceExt;
use upstart_api::v1alpha1::Endpoint;
use upstart_release_engine::manifests::RELEASE_LABEL;

/// How many endpoints the status lists at most (a chart with hundreds of Services must not
/// bloat it).
pub const MAX_ENDPOINTS: usize = 50;

/// Endpoint kinds, in the order they are listed (the first is what `kubectl get` shows).
pub mod kinds {
    pub const INGRESS: &str = "Ingress";
    pub const LOAD_BALANCER: &str = "LoadBalancer";
    pub const SERVICE: &str = "Service";
}

/// The endpoints of the objects of `namespace`. `owners` maps a HelmRelease name to the
/// service (or environment release) it belongs to; objects of other releases, or of none, are
/// left out. Ingresses first, then LoadBalancer addresses, then Service DNS names; each group
/// by service and object name; at most [`MAX_ENDPOINTS`].
pub fn endpoints(
    namespace: &str,
    owners: &BTreeMap<String, String>,
    ingresses: &[Ingress],
    services: &[Service],
) -> Vec<Endpoint> {
    let owner = |labels: &BTreeMap<String, String>| -> Option<String> {
        let release = labels
            .get(RELEASE_LABEL)?
            .strip_prefix(namespace)?
            .strip_prefix('.')?;
        owners.get(release).cloned()
    };
    let mut found: Vec<(usize, Endpoint)> = Vec::new();
    let mut push = |rank: usize, service: &str, kind: &str, object: String, url: String| {
        found.push((
            rank,
            Endpoint {
                service: service.to_owned(),
                kind: kind.to_owned(),
                object,
                url,
            },
        ));
    };
    for ingress in ingresses {
        let Some(service) = owner(ingress.labels()) else {
            continue;
        };
        let Some(spec) = &ingress.spec else { continue };
        let tls_hosts: Vec<&str> = spec
            .tls
            .iter()
            .flatten()
            .flat_map(|t| t.hosts.iter().flatten())
            .map(String::as_str)
            .collect();
        for rule in spec.rules.iter().flatten() {
            let Some(host) = rule.host.as_deref().filter(|h| !h.is_empty()) else {
                continue;
            };
            let scheme = if tls_hosts.iter().any(|t| host_matches(t, host)) {
                "https"
            } else {
                "http"
            };
            let path = rule
                .http
                .as_ref()
                .and_then(|h| h.paths.first())
                .and_then(|p| p.path.as_deref())
                .filter(|p| *p != "/")
                .unwrap_or_default();
            push(
                0,
                &service,
                kinds::INGRESS,
                ingress.name_any(),
                format!("{scheme}://{host}{path}"),
            );
        }
    }
    for object in services {
        let Some(service) = owner(object.labels()) else {
            continue;
        };
        let Some(spec) = &object.spec else { continue };
        let ports: Vec<i32> = spec.ports.iter().flatten().map(|p| p.port).collect();
        if spec.type_.as_deref() == Some("LoadBalancer") {
            let addresses = object
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|l| l.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| i.hostname.clone().or_else(|| i.ip.clone()));
            for address in addresses {
                for port in &ports {
                    push(
                        1,
                        &service,
                        kinds::LOAD_BALANCER,
                        object.name_any(),
                        format!("{address}:{port}"),
                    );
                }
            }
        }
        let dns = format!("{}.{namespace}.svc", object.name_any());
        for port in &ports {
            push(
                2,
                &service,
                kinds::SERVICE,
                object.name_any(),
                format!("{dns}:{port}"),
            );
        }
    }
    found.sort_by(|(a_rank, a), (b_rank, b)| {
        (a_rank, &a.service, &a.object, &a.url).cmp(&(b_rank, &b.service, &b.object, &b.url))
    });
    found.dedup_by(|(_, a), (_, b)| a == b);
    found
        .into_iter()
        .map(|(_, e)| e)
        .take(MAX_ENDPOINTS)
        .collect()
}

/// Whether a TLS host (possibly a `*.` wildcard) covers `host`.
fn host_matches(tls: &str, host: &str) -> bool {
    match tls.strip_prefix("*.") {
        Some(domain) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == domain),
        None => tls == host,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn owners() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("web-app".to_owned(), "web".to_owned()),
            ("db-postgres".to_owned(), "db".to_owned()),
        ])
    }

    fn labels(release: &str) -> serde_json::Value {
        json!({ RELEASE_LABEL: format!("pr-1.{release}") })
    }

    fn ingress(name: &str, release: &str, spec: serde_json::Value) -> Ingress {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "pr-1", "labels": labels(release)},
            "spec": spec
        }))
        .expect("ingress")
    }

    fn service(
        name: &str,
        release: &str,
        spec: serde_json::Value,
        status: serde_json::Value,
    ) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "pr-1", "labels": labels(release)},
            "spec": spec,
            "status": status
        }))
        .expect("service")
    }

    fn urls(endpoints: &[Endpoint]) -> Vec<(String, String, String)> {
        endpoints
            .iter()
            .map(|e| (e.service.clone(), e.kind.clone(), e.url.clone()))
            .collect()
    }

    #[test]
    fn ingress_hosts_get_https_when_tls_covers_them_and_http_otherwise() {
        let web = ingress(
            "web",
            "web-app",
            json!({
                "tls": [{"hosts": ["*.preview.example.com"]}],
                "rules": [
                    {"host": "pr-1.preview.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}},
                    {"host": "admin.example.com", "http": {"paths": [{"path": "/admin", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}},
                    {"http": {"paths": []}}
                ]
            }),
        );
        assert_eq!(
            urls(&endpoints("pr-1", &owners(), &[web], &[])),
            [
                (
                    "web".into(),
                    "Ingress".into(),
                    "http://admin.example.com/admin".into()
                ),
                (
                    "web".into(),
                    "Ingress".into(),
                    "https://pr-1.preview.example.com".into()
                ),
            ]
        );
    }

    #[test]
    fn load_balancers_list_their_addresses_and_every_service_its_dns_name() {
        let lb = service(
            "web",
            "web-app",
            json!({"type": "LoadBalancer", "ports": [{"port": 443}]}),
            json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}),
        );
        let db = service(
            "postgres",
            "db-postgres",
            json!({"ports": [{"port": 5432}]}),
            json!({}),
        );
        assert_eq!(
            urls(&endpoints("pr-1", &owners(), &[], &[db, lb])),
            [
                (
                    "web".into(),
                    "LoadBalancer".into(),
                    "203.0.113.7:443".into()
                ),
                (
                    "db".into(),
                    "Service".into(),
                    "postgres.pr-1.svc:5432".into()
                ),
                ("web".into(), "Service".into(), "web.pr-1.svc:443".into()),
            ]
        );
    }

    #[test]
    fn objects_of_no_known_release_are_left_out() {
        let stray = service(
            "x",
            "someone-else",
            json!({"ports": [{"port": 80}]}),
            json!({}),
        );
        let mut unlabelled = stray.clone();
        unlabelled.metadata.labels = None;
        let mut other_namespace =
            service("y", "web-app", json!({"ports": [{"port": 80}]}), json!({}));
        other_namespace
            .labels_mut()
            .insert(RELEASE_LABEL.to_owned(), "pr-2.web-app".to_owned());
        assert!(
            endpoints(
                "pr-1",
                &owners(),
                &[],
                &[stray, unlabelled, other_namespace]
            )
            .is_empty()
        );
    }

    #[test]
    fn a_pending_load_balancer_has_only_its_dns_name_and_the_list_is_bounded() {
        let lb = service(
            "web",
            "web-app",
            json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
            json!({}),
        );
        assert_eq!(
            urls(&endpoints("pr-1", &owners(), &[], &[lb])),
            [("web".into(), "Service".into(), "web.pr-1.svc:80".into())]
        );
        let many: Vec<Service> = (0..80)
            .map(|i| {
                service(
                    &format!("s{i}"),
                    "web-app",
                    json!({"ports": [{"port": 80}]}),
                    json!({}),
                )
            })
            .collect();
        assert_eq!(
            endpoints("pr-1", &owners(), &[], &many).len(),
            MAX_ENDPOINTS
        );
    }

    #[test]
    fn wildcard_tls_hosts_cover_one_label_only() {
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(!host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(host_matches("a.example.com", "a.example.com"));
    }
}
