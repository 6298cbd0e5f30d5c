//! Secrets: output values appear in no status, Event or log.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_values_of_a_chain_appear_in_no_status_event_or_log() {
    const PASSWORD: &str = "chain-secret-7781";
    let h = Harness::start().await;
    h.create(
        "db",
        json!({
            "chart": "test/producer",
            "version": "0.1.0",
            "values": {"password": PASSWORD},
            "outputsFrom": [{"secretRef": {"name": "db-creds"}}]
        }),
    )
    .await;
    h.create(
        "relay",
        json!({
            "chart": "test/relay",
            "version": "0.1.0",
            "dependencies": [{"name": "db"}],
            "values": {"url": "postgres://app:<< db.outputs.PASSWORD >>@db:5432/app"},
            "outputsFrom": [{"configMapRef": {"name": "relay-out"}}]
        }),
    )
    .await;
    h.create(
        "app",
        json!({
            "chart": "test/app",
            "version": "0.1.0",
            "dependencies": [{"name": "relay", "as": "upstream"}],
            "values": {"password": "<< upstream.outputs.URL >>", "message": "<< upstream.outputs.MISSING >>"}
        }),
    )
    .await;
    h.ready("relay").await;
    // app first waits on a missing key (its message is built next to the values) ...
    ready_condition(&h, "app", "MissingOutput").await;
    // ... then is fixed and installed with the URL.
    h.releases()
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"values": {"message": "plain"}}})),
        )
        .await
        .unwrap();
    h.ready("app").await;
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), NS);
    let url = env_password(&deployments.get("app").await.unwrap()).unwrap();
    assert!(
        url.contains(PASSWORD),
        "the value did travel down the chain"
    );

    // As Secret data appears in JSON: base64.
    let encoded =
        serde_json::to_value(k8s_openapi::ByteString(PASSWORD.as_bytes().to_vec())).unwrap();
    let encoded = encoded.as_str().unwrap().to_owned();
    let leaks = |text: &str| text.contains(PASSWORD) || text.contains(&encoded);

    let statuses: Vec<_> = h
        .releases()
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| (r.name_any(), r.status))
        .collect();
    assert_eq!(statuses.len(), 3);
    let statuses = serde_json::to_string(&statuses).unwrap();
    assert!(!leaks(&statuses), "a status holds a value: {statuses}");

    let new_events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(h.client.clone(), NS);
    let new_events = new_events.list(&Default::default()).await.unwrap().items;
    let core_events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(h.client.clone(), NS);
    let core_events = core_events.list(&Default::default()).await.unwrap().items;
    assert!(
        !new_events.is_empty() || !core_events.is_empty(),
        "phase changes were announced"
    );
    let events = format!(
        "{}{}",
        serde_json::to_string(&new_events).unwrap(),
        serde_json::to_string(&core_events).unwrap()
    );
    assert!(!leaks(&events), "an Event holds a value: {events}");

    let logs = logs::captured();
    assert!(
        logs.contains("reconcile") && logs.contains("relay"),
        "the capture holds this test's reconciles"
    );
    assert!(!leaks(&logs), "a log line holds a value");
    h.stop().await;
}
