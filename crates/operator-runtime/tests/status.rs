//! `apply_status` writes a status only when it changed and publishes an event only when the
//! phase changed, against the local control plane.

use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, PostParams};
use kube::{Api, CustomResource};
use serde::{Deserialize, Serialize};
use upstart_control_plane::{ControlPlane, Options};
use upstart_operator_runtime::{
    CommonArgs, EventRecorder, OperatorContext, PhaseSummary, StatusWrite, apply_status,
};

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "example.com",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    schema = "disabled"
)]
struct WidgetSpec {
    size: i64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
struct WidgetStatus {
    phase: Option<String>,
    message: Option<String>,
}

fn status(phase: &str, message: &str) -> WidgetStatus {
    WidgetStatus {
        phase: Some(phase.into()),
        message: Some(message.into()),
    }
}

fn summary(status: &WidgetStatus) -> Option<PhaseSummary<'_>> {
    status.phase.as_deref().map(|phase| PhaseSummary {
        phase,
        failed: phase == "Failed",
        note: status.message.as_deref(),
    })
}

fn widget_crd() -> CustomResourceDefinition {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                        "status": {"type": "object", "properties": {
                            "phase": {"type": "string"}, "message": {"type": "string"}
                        }}
                    }
                }}
            }]
        }
    }))
    .expect("valid CRD")
}

/// (type, reason, note) of every event, oldest first.
async fn events(api: &Api<Event>) -> anyhow::Result<Vec<(String, String, String)>> {
    let mut list = api.list(&ListParams::default()).await?.items;
    list.sort_by_key(|e| e.metadata.creation_timestamp.clone());
    Ok(list
        .into_iter()
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect())
}

/// Applies `status` to `widget` as the field manager `widget-operator`.
async fn write(
    widgets: &Api<Widget>,
    widget: &Widget,
    status: &WidgetStatus,
    recorder: &EventRecorder,
) -> kube::Result<StatusWrite> {
    apply_status(
        widgets,
        widget,
        status,
        "widget-operator",
        recorder,
        summary,
    )
    .await
}

#[tokio::test]
async fn status_is_written_only_when_changed_and_an_event_marks_each_new_phase()
-> anyhow::Result<()> {
    let cp = ControlPlane::start(Options::default());
    let client = cp.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &widget_crd()).await?;
    let widgets: Api<Widget> = Api::namespaced(client.clone(), "default");
    let event_api: Api<Event> = Api::namespaced(client.clone(), "default");
    let recorder =
        OperatorContext::new("test-operator", client, CommonArgs::default()).recorder("widget");
    let mut widget = widgets
        .create(
            &PostParams::default(),
            &Widget::new("w", WidgetSpec { size: 1 }),
        )
        .await?;

    // 1. A first phase is written and announced with a Normal event noting its message.
    let written = write(
        &widgets,
        &widget,
        &status("Provisioning", "starting"),
        &recorder,
    )
    .await?;
    assert!(matches!(
        written,
        StatusWrite::Written {
            phase_changed: true,
            ..
        }
    ));
    widget = widgets.get("w").await?;
    assert_eq!(widget.status, Some(status("Provisioning", "starting")));
    let managers: Vec<_> = widget
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.subresource.as_deref() == Some("status"))
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(managers, ["widget-operator"]);
    assert_eq!(
        events(&event_api).await?,
        [("Normal".into(), "Provisioning".into(), "starting".into())]
    );

    // 2. The same status again: nothing is written, no event.
    let version = widget.metadata.resource_version.clone();
    let written = write(
        &widgets,
        &widget,
        &status("Provisioning", "starting"),
        &recorder,
    )
    .await?;
    assert_eq!(written, StatusWrite::Unchanged);
    assert_eq!(widgets.get("w").await?.metadata.resource_version, version);
    assert_eq!(events(&event_api).await?.len(), 1);

    // 3. A new message in the same phase is written without an event.
    let written = write(
        &widgets,
        &widget,
        &status("Provisioning", "half way"),
        &recorder,
    )
    .await?;
    assert!(matches!(
        written,
        StatusWrite::Written {
            phase_changed: false,
            ..
        }
    ));
    widget = widgets.get("w").await?;
    assert_eq!(widget.status, Some(status("Provisioning", "half way")));
    assert_eq!(events(&event_api).await?.len(), 1);

    // 4. The failed phase is announced with a Warning.
    write(&widgets, &widget, &status("Failed", "broken"), &recorder).await?;
    assert_eq!(
        widgets.get("w").await?.status,
        Some(status("Failed", "broken"))
    );
    assert_eq!(
        events(&event_api).await?,
        [
            ("Normal".into(), "Provisioning".into(), "starting".into()),
            ("Warning".into(), "Failed".into(), "broken".into()),
        ]
    );
    Ok(())
}
