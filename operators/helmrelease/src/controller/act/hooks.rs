//! Helm hooks in passes (SPEC §2.5, §2.8): each pass looks at the hooks of one event in
//! order, creates the next one, and stops at the first still running; progress lives in the
//! hook objects (marked with their run) and in status (a success outlives its object).

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use upstart_api::v1alpha1::{HelmRelease, HookStatus, InventoryEntry};
use upstart_operator_runtime::objects;
use upstart_release_engine::manifests::{self, HookEvent, HookOutcome};

use crate::Error;
use crate::constants::HOOK_RUN_ANNOTATION;
use crate::controller::Context;
use crate::controller::act::objects::{apply_object, older_than};
use crate::error::ApiStep;

use crate::controller::act::prune::delete_entry;
use crate::decide::HOOK_SUCCEEDED;

/// What a pass over the hooks of one event found.
pub(super) enum HookStep {
    Done,
    Waiting(String),
}

/// The hooks of one apply run, or of the deletion.
pub(super) struct HookPass<'a> {
    pub(super) ctx: &'a Context,
    pub(super) hr: &'a HelmRelease,
    pub(super) namespace: &'a str,
    pub(super) plan: &'a manifests::Plan,
    pub(super) release_label: &'a str,
    pub(super) run: &'a str,
    /// Hooks status already records as ended in this run, not looked at again: at an install
    /// or upgrade those that succeeded ([`crate::decide::hooks_already_succeeded`]); at
    /// deletion every one ended (delete hooks appear in status only during the deletion, so
    /// they are unambiguous).
    pub(super) ended: &'a [HookStatus],
    /// At deletion a hook that ended badly is announced and left as it is, never run again.
    pub(super) for_deletion: bool,
}

impl HookPass<'_> {
    /// Moves the hooks of `event` on, in order (SPEC §2.5): a hook object of this run is
    /// looked at, never created twice; one left by an earlier run (or by a failed attempt) is
    /// replaced; a hook still running ends the pass. A failed hook fails the apply.
    pub(super) async fn step(
        &self,
        event: HookEvent,
        statuses: &mut Vec<HookStatus>,
        succeeded: &mut Vec<InventoryEntry>,
    ) -> Result<HookStep, Error> {
        for hook in self.plan.hooks_for(event) {
            let entry = &hook.object.entry;
            let display = hook.display_name();
            if let Some(ended) = self
                .ended
                .iter()
                .find(|h| h.event == event.as_str() && h.object == display && h.phase != RUNNING)
            {
                // Ended in an earlier pass of this run: a success still owes its deletion
                // (`hook-succeeded`), done with this pass's, or it would be left behind.
                if ended.phase == HOOK_SUCCEEDED && hook.delete_after(HookOutcome::Succeeded) {
                    succeeded.push(entry.clone());
                }
                statuses.push(ended.clone());
                continue;
            }
            let api = self.ctx.dynamic_api(self.hr, entry, self.namespace).await?;
            let mut live = api.get_opt(&entry.name).await.map_err(Error::kube(
                ApiStep::Hook,
                format!("reading hook {display}"),
            ))?;
            if let Some(stale) = &live
                && stale
                    .annotations()
                    .get(HOOK_RUN_ANNOTATION)
                    .map(String::as_str)
                    != Some(self.run)
            {
                match &stale.metadata.deletion_timestamp {
                    None => delete_entry(self.hr, self.ctx, self.namespace, entry).await?,
                    // Held by a finalizer longer than the release's timeout: a failure (retried
                    // with backoff, or announced at deletion), not an endless wait.
                    Some(since)
                        if Timestamp::now().duration_since(since.0).unsigned_abs()
                            > self.hr.spec.timeout() =>
                    {
                        return Err(Error::HookTimeout {
                            event: "before-hook-creation",
                            object: display,
                            seconds: self.hr.spec.timeout().as_secs(),
                        });
                    }
                    Some(_) => {}
                }
                live = api.get_opt(&entry.name).await.map_err(Error::kube(
                    ApiStep::Hook,
                    format!("reading hook {display}"),
                ))?;
                if live.is_some() {
                    // Its deletion event starts the next pass.
                    return Ok(HookStep::Waiting(format!(
                        "replacing hook {display} left by an earlier run"
                    )));
                }
            }
            let live = match live {
                Some(live) => live,
                None => {
                    let mut object = hook.object.object.clone();
                    object["metadata"]["annotations"][HOOK_RUN_ANNOTATION] =
                        Value::String(self.run.to_owned());
                    apply_object(
                        self.hr,
                        self.ctx,
                        self.namespace,
                        entry,
                        &object,
                        self.release_label,
                    )
                    .await?
                }
            };
            let outcome =
                manifests::hook_outcome(&serde_json::to_value(&live).unwrap_or(Value::Null));
            let timed_out = outcome.is_none() && older_than(&live, self.hr.spec.timeout());
            let phase = match outcome {
                None if timed_out => "Failed",
                None => RUNNING,
                Some(HookOutcome::Succeeded) => HOOK_SUCCEEDED,
                Some(HookOutcome::Failed) => "Failed",
            };
            statuses.push(HookStatus {
                event: event.as_str().to_owned(),
                object: display.clone(),
                phase: phase.to_owned(),
            });
            match outcome {
                None if timed_out => {
                    self.retire(&api, entry, hook, HookOutcome::Failed).await?;
                    return Err(Error::HookTimeout {
                        event: event.as_str(),
                        object: display,
                        seconds: self.hr.spec.timeout().as_secs(),
                    });
                }
                None => {
                    return Ok(HookStep::Waiting(format!(
                        "waiting for hook {display} ({})",
                        event.as_str()
                    )));
                }
                Some(HookOutcome::Succeeded) => {
                    if hook.delete_after(HookOutcome::Succeeded) {
                        succeeded.push(entry.clone());
                    }
                }
                Some(HookOutcome::Failed) => {
                    self.retire(&api, entry, hook, HookOutcome::Failed).await?;
                    return Err(Error::HookFailed {
                        event: event.as_str(),
                        object: display,
                    });
                }
            }
        }
        Ok(HookStep::Done)
    }

    /// A hook that ended without success: deleted when its policy says so, else kept for
    /// inspection but no longer counted as this run's, so the retry runs it again (at deletion
    /// there is no retry: status records it as ended).
    async fn retire(
        &self,
        api: &Api<DynamicObject>,
        entry: &InventoryEntry,
        hook: &manifests::Hook,
        outcome: HookOutcome,
    ) -> Result<(), Error> {
        if hook.delete_after(outcome) {
            return delete_entry(self.hr, self.ctx, self.namespace, entry).await;
        }
        if self.for_deletion {
            return Ok(());
        }
        let patch = json!({"metadata": {"annotations": {HOOK_RUN_ANNOTATION: "retired"}}});
        objects::unless_gone(
            api.patch(&entry.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await,
        )
        .map(drop)
        .map_err(|source| Error::Kube {
            step: ApiStep::Hook,
            action: format!("marking hook {} as ended", manifests::display_name(entry)),
            source,
        })
    }
}

/// The hooks of one install or upgrade: what marks their objects, and what status already
/// records of them.
pub(in crate::controller) struct HookRun {
    /// The value of [`HOOK_RUN_ANNOTATION`] on its hooks ([`hook_run`]).
    pub(in crate::controller) id: String,
    /// Its hooks status records as succeeded ([`crate::decide::hooks_already_succeeded`]).
    pub(in crate::controller) succeeded: Vec<HookStatus>,
}

/// `status.hooks[].phase` of a hook that has not ended.
pub(in crate::controller) const RUNNING: &str = "Running";

/// The value of [`HOOK_RUN_ANNOTATION`] on the hooks of one run: the release object's uid and
/// what the run applies. The uid keeps a release deleted and created again with the same spec
/// from taking the hooks its earlier self left behind for its own (and skipping them).
pub(in crate::controller) fn hook_run(hr: &HelmRelease, what: &str) -> String {
    format!("{}-{what}", hr.uid().unwrap_or_default())
}
