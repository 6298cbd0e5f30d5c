//! Events published through the recorder land in `events.k8s.io/v1` with the controller as
//! reporter.

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, PostParams};
use kube::{Api, Resource};
use upstart_control_plane::{ControlPlane, Options};
use upstart_operator_runtime::{CommonArgs, EventType, OperatorContext};

/// A ConfigMap `app` in `default` to publish events on, and an operator's context.
async fn config_map_and_context(
    cp: &ControlPlane,
) -> anyhow::Result<(ObjectReference, OperatorContext)> {
    let client = cp.client();
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("app".into());
    let cm = configmaps.create(&PostParams::default(), &cm).await?;
    let ctx = OperatorContext::new("helmrelease-operator", client, CommonArgs::default());
    Ok((cm.object_ref(&()), ctx))
}

#[tokio::test]
async fn normal_and_warning_events_are_attached_to_the_object_under_the_controllers_name()
-> anyhow::Result<()> {
    let cp = ControlPlane::start(Options::default());
    let client = cp.client();
    let (reference, ctx) = config_map_and_context(&cp).await?;
    let recorder = ctx.recorder("helmrelease");
    recorder
        .normal(
            &reference,
            "Installed",
            "Install",
            Some("release app installed"),
        )
        .await;
    recorder
        .publish(
            &reference,
            EventType::Warning,
            &"R".repeat(300),
            "Apply",
            Some(&"x".repeat(5000)),
        )
        .await?;

    let events: Api<Event> = Api::namespaced(client, "default");
    let list = events.list(&ListParams::default()).await?;
    assert_eq!(list.items.len(), 2);
    let installed = list
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("Installed"))
        .ok_or_else(|| anyhow::anyhow!("no Installed event"))?;
    assert_eq!(installed.type_.as_deref(), Some("Normal"));
    assert_eq!(
        installed.reporting_controller.as_deref(),
        Some("helmrelease")
    );
    assert_eq!(
        installed.reporting_instance.as_deref(),
        Some(ctx.identity())
    );
    assert_eq!(installed.note.as_deref(), Some("release app installed"));
    let regarding = installed
        .regarding
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no regarding"))?;
    assert_eq!(regarding.name.as_deref(), Some("app"));
    assert_eq!(regarding.kind.as_deref(), Some("ConfigMap"));

    let warning = list
        .items
        .iter()
        .find(|e| e.type_.as_deref() == Some("Warning"))
        .ok_or_else(|| anyhow::anyhow!("no Warning event"))?;
    assert_eq!(
        warning.reason.as_deref().map(str::len),
        Some(128),
        "cut to the API limit"
    );
    assert_eq!(
        warning.note.as_deref().map(str::len),
        Some(1024),
        "cut to the API limit"
    );
    Ok(())
}

#[tokio::test]
async fn a_repeat_is_folded_into_the_first_events_series_and_a_deleted_one_starts_anew()
-> anyhow::Result<()> {
    let cp = ControlPlane::start(Options::default());
    let (reference, ctx) = config_map_and_context(&cp).await?;
    let recorder = ctx.recorder("helmrelease");
    let events: Api<Event> = Api::namespaced(cp.client(), "default");
    let retrying = |note: &'static str| {
        let recorder = recorder.clone();
        let reference = reference.clone();
        async move {
            recorder
                .publish(
                    &reference,
                    EventType::Warning,
                    "ApplyFailed",
                    "Apply",
                    Some(note),
                )
                .await
        }
    };

    retrying("first").await?;
    retrying("second").await?;
    retrying("third").await?;
    recorder
        .normal(&reference, "Installed", "Install", Some("installed"))
        .await;
    let list = events.list(&ListParams::default()).await?.items;
    assert_eq!(list.len(), 2, "{list:?}");
    let failed = list
        .iter()
        .find(|e| e.reason.as_deref() == Some("ApplyFailed"))
        .ok_or_else(|| anyhow::anyhow!("no ApplyFailed event"))?;
    assert_eq!(failed.series.as_ref().map(|s| s.count), Some(3));
    assert_eq!(
        failed.note.as_deref(),
        Some("first"),
        "a series keeps its first note"
    );
    let installed = list
        .iter()
        .find(|e| e.reason.as_deref() == Some("Installed"))
        .ok_or_else(|| anyhow::anyhow!("no Installed event"))?;
    assert!(installed.series.is_none(), "{installed:?}");

    // The apiserver drops Events after their TTL: a repeat then starts a new series.
    events
        .delete(
            failed.metadata.name.as_deref().unwrap_or_default(),
            &Default::default(),
        )
        .await?;
    retrying("after the first expired").await?;
    let list = events.list(&ListParams::default()).await?.items;
    let failed: Vec<_> = list
        .iter()
        .filter(|e| e.reason.as_deref() == Some("ApplyFailed"))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].note.as_deref(), Some("after the first expired"));
    assert!(failed[0].series.is_none());
    Ok(())
}
