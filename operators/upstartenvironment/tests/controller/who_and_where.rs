//! Who asked for an environment and where it can be reached: the requester annotation and
//! the endpoints of what its releases applied, in status.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use upstart_api::labels::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, REQUESTER_ANNOTATION};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_the_requester_and_the_endpoints_of_the_releases() {
    let h = Harness::start().await;
    h.create_environment_with(
        "where",
        json!({ REQUESTER_ANNOTATION: "alice" }),
        json!({"helmReleases": {"web": {"chart": "test/app", "version": "0.1.0",
                                        "values": {"readyAfter": "2s"}}}}),
    )
    .await;
    eventually("the namespace", || async {
        h.namespaces().get_opt("where").await.unwrap().map(|_| ())
    })
    .await;
    // What the web release's chart would apply (the test chart has neither).
    let labels = json!({
        "upstartoperators.upstart.com/release": "where.where-web",
        MANAGED_BY_LABEL: MANAGED_BY_VALUE
    });
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "where", "labels": labels},
        "spec": {"tls": [{"hosts": ["where.preview.example.com"]}],
                 "rules": [{"host": "where.preview.example.com"}]}
    }))
    .unwrap();
    Api::<Ingress>::namespaced(h.client.clone(), "where")
        .create(&PostParams::default(), &ingress)
        .await
        .unwrap();
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "where", "labels": labels},
        "spec": {"ports": [{"port": 80}]}
    }))
    .unwrap();
    Api::<Service>::namespaced(h.client.clone(), "where")
        .create(&PostParams::default(), &service)
        .await
        .unwrap();

    let env = h.phase("where", EnvironmentPhase::Ready).await;
    let status = env.status.unwrap();
    assert_eq!(status.requester.as_deref(), Some("alice"));
    let endpoints: Vec<(&str, &str, &str)> = status
        .endpoints
        .iter()
        .map(|e| (e.service.as_str(), e.kind.as_str(), e.url.as_str()))
        .collect();
    assert_eq!(
        endpoints,
        [
            ("where-web", "Ingress", "https://where.preview.example.com"),
            ("where-web", "Service", "web.where.svc:80"),
        ]
    );
    h.stop().await;
}
