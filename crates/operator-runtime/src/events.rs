//! Kubernetes Events for humans (`kubectl describe`), published under the controller's name.
//!
//! **Never put a secret value in an event.** Reasons and notes are read by anyone who may list
//! Events in the namespace: pass names, phases and reasons only, never an output value, a
//! rendered values document or an error text that may echo one (SPEC §7).

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::Error;

/// The apiserver refuses an Event whose reason or action is longer than this.
const MAX_REASON_LEN: usize = 128;
/// The apiserver refuses an Event whose note is longer than this (bytes).
const MAX_NOTE_LEN: usize = 1024;

/// Publishes Normal and Warning events on objects, as `reportingController` = the controller's
/// name. Repeated identical events are folded into one with a count (kube-runtime's series).
/// Cheap to clone; clones share the folding cache.
///
/// Messages must never contain secret values: see the module documentation.
#[derive(Clone)]
pub struct EventRecorder {
    recorder: Recorder,
    controller: String,
}

impl std::fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRecorder")
            .field("controller", &self.controller)
            .finish_non_exhaustive()
    }
}

impl EventRecorder {
    /// A recorder reporting as `controller`, instance `instance` (the pod name, or the leader
    /// election identity).
    pub fn new(
        client: kube::Client,
        controller: impl Into<String>,
        instance: Option<String>,
    ) -> Self {
        let controller = controller.into();
        let reporter = Reporter {
            controller: controller.clone(),
            instance,
        };
        EventRecorder {
            recorder: Recorder::new(client, reporter),
            controller,
        }
    }

    /// The reporting controller's name.
    pub fn controller(&self) -> &str {
        &self.controller
    }

    /// Publishes an event on `regarding` (get it with `Resource::object_ref(&obj, &())`).
    /// `reason` is a `PascalCase` constant (`Installed`, `ApplyFailed`), `action` what the
    /// controller did (`Apply`, `Render`), `note` a short human sentence; none of them may
    /// contain a secret value. Over-long texts are cut to the apiserver's limits.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: Option<&str>,
    ) -> Result<(), Error> {
        let event = Event {
            type_,
            reason: truncate(reason, MAX_REASON_LEN).to_string(),
            action: truncate(action, MAX_REASON_LEN).to_string(),
            note: note.map(|n| truncate(n, MAX_NOTE_LEN).to_string()),
            secondary: None,
        };
        self.recorder
            .publish(&event, regarding)
            .await
            .map_err(Error::Event)
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
