//! Kubernetes Events for humans (`kubectl describe`), published under the controller's name.
//!
//! **Never put a secret value in an event.** Reasons and notes are read by anyone who may list
//! Events in the namespace: pass names, phases and reasons only, never an output value, a
//! rendered values document or an error text that may echo one (SPEC §7).

use std::sync::{Arc, Mutex};

use hashlink::LruCache;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;

use crate::Error;

/// The apiserver refuses an Event whose reason or action is longer than this.
const MAX_REASON_LEN: usize = 128;
/// The apiserver refuses an Event whose note is longer than this (bytes).
const MAX_NOTE_LEN: usize = 1024;
/// How many series are remembered for folding repeats, least recently published forgotten
/// first (client-go's event correlator keeps as many): memory stays bounded however many
/// objects the operator manages; a repeat of a forgotten series starts a new Event.
const SERIES_REMEMBERED: usize = 4096;
/// A repeat joins its series only this soon after the series' last occurrence (client-go's and
/// kube-runtime's six minutes).
const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// Publishes Normal and Warning events on objects, as `reportingController` = the controller's
/// name. A repeat of an event (same type, reason and action on the same object) within
/// [`SERIES_WINDOW`] is folded into the first one's `series` (its count and last time).
/// Cheap to clone; clones share what is remembered of the series.
///
/// Messages must never contain secret values: see the module documentation.
#[derive(Clone)]
pub struct EventRecorder {
    client: kube::Client,
    controller: String,
    instance: String,
    series: Arc<Mutex<LruCache<SeriesKey, Series>>>,
}

/// What makes two events one series (client-go's and kube-runtime's key: the note is not part
/// of it, a series keeps its first note).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    warning: bool,
    reason: String,
    action: String,
    /// The object's API version, kind, namespace, name, uid and field path.
    regarding: [Option<String>; 6],
}

/// The Event a series was published as, and how far it has counted.
#[derive(Debug, Clone)]
struct Series {
    name: String,
    count: i32,
    last: Timestamp,
}

impl std::fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRecorder")
            .field("controller", &self.controller)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl EventRecorder {
    /// A recorder reporting as `controller`, instance `instance` (the pod name, or the leader
    /// election identity; the controller's name when `None`).
    pub fn new(
        client: kube::Client,
        controller: impl Into<String>,
        instance: Option<String>,
    ) -> Self {
        let controller = controller.into();
        EventRecorder {
            client,
            instance: instance.unwrap_or_else(|| controller.clone()),
            controller,
            series: Arc::new(Mutex::new(LruCache::new(SERIES_REMEMBERED))),
        }
    }

    /// The reporting controller's name.
    pub fn controller(&self) -> &str {
        &self.controller
    }

    /// Publishes an event on `regarding` (get it with `Resource::object_ref(&obj, &())`), in
    /// its namespace (`default` for a cluster-scoped object). `reason` is a `PascalCase`
    /// constant (`Installed`, `ApplyFailed`), `action` what the controller did (`Apply`,
    /// `Render`), `note` a short human sentence; none of them may contain a secret value.
    /// Over-long texts are cut to the apiserver's limits.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: Option<&str>,
    ) -> Result<(), Error> {
        let reason = truncate(reason, MAX_REASON_LEN);
        let action = truncate(action, MAX_REASON_LEN);
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let key = SeriesKey {
            warning: matches!(type_, EventType::Warning),
            reason: reason.to_owned(),
            action: action.to_owned(),
            regarding: [
                regarding.api_version.clone(),
                regarding.kind.clone(),
                regarding.namespace.clone(),
                regarding.name.clone(),
                regarding.uid.clone(),
                regarding.field_path.clone(),
            ],
        };
        let now = Timestamp::now();
        let repeat = self
            .remembered()
            .get(&key)
            .filter(|series| series.last + SERIES_WINDOW > now)
            .map(|series| (series.name.clone(), series.count + 1));
        if let Some((name, count)) = repeat {
            let patch = serde_json::json!({
                "series": {"count": count, "lastObservedTime": MicroTime(now)}
            });
            match events
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.remembered().insert(
                        key,
                        Series {
                            name,
                            count,
                            last: now,
                        },
                    );
                    return Ok(());
                }
                // The Event expired (the apiserver keeps them an hour) or was deleted: the
                // repeat starts a new series, as client-go does.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(Error::Event(error)),
            }
        }
        let name = format!(
            "{}.{:x}",
            regarding.name.as_deref().unwrap_or(&self.controller),
            now.as_nanosecond()
        );
        let event = K8sEvent {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(if key.warning { "Warning" } else { "Normal" }.to_owned()),
            reason: Some(key.reason.clone()),
            action: Some(key.action.clone()),
            note: note.map(|n| truncate(n, MAX_NOTE_LEN).to_owned()),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..K8sEvent::default()
        };
        events
            .create(&PostParams::default(), &event)
            .await
            .map_err(Error::Event)?;
        self.remembered().insert(
            key,
            Series {
                name,
                count: 1,
                last: now,
            },
        );
        Ok(())
    }

    /// Publishes a Normal event; a failure to publish is logged, never returned, since an
    /// event must not fail a reconcile.
    pub async fn normal(
        &self,
        regarding: &ObjectReference,
        reason: &str,
        action: &str,
        note: Option<&str>,
    ) {
        self.best_effort(regarding, EventType::Normal, reason, action, note)
            .await;
    }

    /// Publishes a Warning event; a failure to publish is logged, never returned.
    pub async fn warning(
        &self,
        regarding: &ObjectReference,
        reason: &str,
        action: &str,
        note: Option<&str>,
    ) {
        self.best_effort(regarding, EventType::Warning, reason, action, note)
            .await;
    }

    async fn best_effort(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: Option<&str>,
    ) {
        if let Err(e) = self.publish(regarding, type_, reason, action, note).await {
            tracing::warn!(
                error = %e,
                reason,
                object = regarding.name.as_deref().unwrap_or(""),
                namespace = regarding.namespace.as_deref().unwrap_or(""),
                "publishing an event failed"
            );
        }
    }

    /// The series remembered (a lock held only between awaits).
    fn remembered(&self) -> std::sync::MutexGuard<'_, LruCache<SeriesKey, Series>> {
        self.series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("short", 128), "short");
        assert_eq!(truncate("ééé", 3), "é");
        assert_eq!(truncate(&"x".repeat(2000), 1024).len(), 1024);
    }
}
