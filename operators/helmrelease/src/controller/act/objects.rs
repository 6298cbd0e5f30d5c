//! Applying one planned object: server-side apply after the release conflict check, and
//! whether an applied CRD is Established yet; the CRDs of `crds/` directories, created once.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::reflector::ObjectRef;
use serde_json::Value;
use upstart_api::v1alpha1::{HelmRelease, InventoryEntry};
use upstart_operator_runtime::objects;
use upstart_release_engine::health::{self, Health};
use upstart_release_engine::manifests::{self, ManifestObject};

use crate::Error;
use crate::constants::FIELD_MANAGER;
use crate::controller::Context;
use crate::controller::applied::{AppliedVersion, Live};
use crate::controller::observe::object_key;
use crate::error::ApiStep;

/// A CRD that is not Established yet: what to say while waiting, or an error once the release's
/// timeout has passed since the CRD was created.
pub(in crate::controller) fn crd_not_established(
    entry: &InventoryEntry,
    live: &DynamicObject,
    timeout: Duration,
) -> Result<Option<String>, Error> {
    let object = manifests::display_name(entry);
    match health::assess(&serde_json::to_value(live).unwrap_or(Value::Null)) {
        Health::Healthy => Ok(None),
        Health::Failed(message) => Err(Error::CrdNotEstablished { object, message }),
        Health::Progressing(message) if older_than(live, timeout) => {
            Err(Error::CrdNotEstablished { object, message })
        }
        Health::Progressing(_) => Ok(Some(format!("waiting for {object} to be Established"))),
    }
}

/// Whether `live` was created more than `age` ago.
pub(in crate::controller) fn older_than(live: &DynamicObject, age: Duration) -> bool {
    live.metadata
        .creation_timestamp
        .as_ref()
        .is_some_and(|created| Timestamp::now().duration_since(created.0).unsigned_abs() > age)
}

/// A CRD of a chart's `crds/` directory, installed as Helm installs it: created when missing,
/// left exactly as it is when it exists (never updated, whoever created it). `Some`: the
/// release waits for it to be Established (its watch event starts the next pass).
pub(in crate::controller) async fn install_crd(
    hr: &HelmRelease,
    ctx: &Context,
    namespace: &str,
    crd: &ManifestObject,
    timeout: Duration,
) -> Result<Option<String>, Error> {
    let api = ctx.dynamic_api(hr, &crd.entry, namespace).await?;
    let display = crd.display_name();
    let live = api.get_opt(&crd.entry.name).await.map_err(Error::kube(
        ApiStep::ReadObject,
        format!("reading {display}"),
    ))?;
    let live = match live {
        Some(live) => live,
        None => {
            let created = objects::apply(&api, &crd.entry.name, &crd.object, FIELD_MANAGER)
                .await
                .map_err(Error::kube(
                    ApiStep::ApplyObject,
                    format!("creating {display}"),
                ))?;
            ctx.release_metrics.objects_applied.inc();
            created
        }
    };
    crd_not_established(&crd.entry, &live, timeout)
}

/// Server-side applies one object after checking it is not another release's.
pub(in crate::controller) async fn apply_object(
    hr: &HelmRelease,
    ctx: &Context,
    namespace: &str,
    entry: &InventoryEntry,
    object: &Value,
    release_label: &str,
) -> Result<DynamicObject, Error> {
    let display = manifests::display_name(entry);
    let api = ctx.dynamic_api(hr, entry, namespace).await?;
    let release = ObjectRef::from_obj(hr);
    let key = object_key(entry, namespace);
    // Applied by this process before: it carries our label, no other release took it.
    let ours = ctx
        .recall(&release, |m| m.applied.contains_key(&key))
        .unwrap_or(false);
    if !ours {
        // Another release's object carries its label: the caches of the watched kinds hold
        // every such object (and every Secret and ConfigMap), so they answer without a read.
        let live = match ctx.applied_objects.live(entry, namespace, None) {
            Live::Known(found) => found,
            Live::Read => api
                .get_opt(&entry.name)
                .await
                .map_err(Error::kube(
                    ApiStep::ReadObject,
                    format!("reading {display}"),
                ))?
                .map(Arc::new),
        };
        manifests::check_conflict(entry, live.as_ref().map(|l| l.labels()), release_label)
            .map_err(Error::Render)?;
    }
    let applied = objects::apply(&api, &entry.name, object, FIELD_MANAGER)
        .await
        .map_err(Error::kube(
            ApiStep::ApplyObject,
            format!("applying {display}"),
        ))?;
    ctx.release_metrics.objects_applied.inc();
    let version = AppliedVersion::of(&applied);
    ctx.remember(&release, |m| m.applied.insert(key, version));
    Ok(applied)
}
