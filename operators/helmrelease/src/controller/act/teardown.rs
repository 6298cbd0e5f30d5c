//! Deletion (SPEC §2.8), the finalizer's cleanup branch: reverse-dependency teardown, then
//! delete hooks and the inventory in passes; each pass ends in "done" or "wait".

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::info;
use upstart_api::v1alpha1::{HelmRelease, HookStatus};
use upstart_operator_runtime::{Action, Cleanup};
use upstart_release_engine::manifests::{self, HookEvent};

use crate::Error;
use crate::constants::reasons;
use crate::controller::act::hooks::{HookPass, HookStep, hook_run};
use crate::controller::act::install::render_plan;
use crate::controller::observe::{Observed, observe};
use crate::controller::{APPLY_RECHECK, Context, write_status};
use crate::error::ApiStep;
use crate::status::deleting_status;
use crate::wakeups;

use crate::controller::act::prune::{delete_entry, delete_unless_kept};

/// Reverse-dependency teardown (SPEC §2.8): a deleted release whose dependents are still in the
/// namespace (releases depending on it or on an UpstartService owning it) waits for them
/// (their deletion wakes it), up to the teardown timeout, after which it proceeds and says so
/// in an Event. `None`: go ahead with the teardown.
pub(in crate::controller) async fn wait_for_dependents(
    hr: &HelmRelease,
    ctx: &Context,
    api: &Api<HelmRelease>,
) -> Result<Option<Action>, Error> {
    let candidates = wakeups::teardown_blockers(&ctx.releases.state(), hr);
    // The cache may still hold a dependent whose deletion woke us: only what the API server
    // still has holds the teardown, else the release would sleep until the safety requeue.
    let mut dependents = Vec::new();
    for candidate in candidates {
        if api
            .get_opt(&candidate.name)
            .await
            .map_err(Error::kube(
                ApiStep::ReadDependent,
                "reading a dependent release",
            ))?
            .is_some()
        {
            dependents.push(candidate.name);
        }
    }
    if dependents.is_empty() {
        return Ok(None);
    }
    let waited = deleting_for(hr);
    if waited >= ctx.teardown_timeout {
        let note = format!(
            "teardown timeout reached; deleting although {} still depend on it",
            dependents.join(", ")
        );
        ctx.recorder
            .warning(
                &hr.object_ref(&()),
                reasons::TEARDOWN_TIMEOUT,
                "Delete",
                Some(&note),
            )
            .await;
        return Ok(None);
    }
    let message = format!(
        "waiting for dependents to be deleted first: {}",
        dependents.join(", ")
    );
    let status = deleting_status(
        hr.status.as_ref(),
        &message,
        hr.metadata.generation,
        &Time(Timestamp::now()),
    );
    write_status(ctx, api, hr, status).await?;
    Ok(Some(Action::requeue(
        ctx.teardown_timeout.saturating_sub(waited),
    )))
}

/// Deletion (SPEC §2.8), in passes like an apply: pre-delete hooks, the inventory in reverse
/// install order, post-delete hooks. A hook still running ends the pass (status says so, the
/// watch on it starts the next one); a hook that fails or times out is announced and the
/// deletion goes on. `None`: all done, the finalizer may go.
pub(in crate::controller) async fn teardown(
    hr: &HelmRelease,
    ctx: &Context,
    api: &Api<HelmRelease>,
    namespace: &str,
) -> Result<Option<Action>, Error> {
    let status = hr.status.clone().unwrap_or_default();
    let plan = if hr.spec.disable_hooks || status.inventory.is_empty() {
        None
    } else {
        delete_hook_plan(hr, ctx, namespace).await
    };
    let release_label = upstart_api::names::release_label_value(namespace, &hr.name_any());
    let run = hook_run(
        hr,
        &format!(
            "delete-{}",
            status.applied_digest.as_deref().unwrap_or("unapplied")
        ),
    );
    let mut hooks = Vec::new();
    let mut succeeded = Vec::new();
    let pass = plan.as_ref().map(|plan| HookPass {
        ctx,
        hr,
        namespace,
        plan,
        release_label: &release_label,
        run: &run,
        ended: &status.hooks,
        for_deletion: true,
    });
    let waiting = |message: String, hooks: Vec<HookStatus>| async move {
        let mut next = deleting_status(
            hr.status.as_ref(),
            &message,
            hr.metadata.generation,
            &Time(Timestamp::now()),
        );
        next.hooks = hooks;
        write_status(ctx, api, hr, next).await?;
        Ok::<_, Error>(Some(Action::requeue(APPLY_RECHECK)))
    };
    if let Some(pass) = &pass {
        match pass
            .step(HookEvent::PreDelete, &mut hooks, &mut succeeded)
            .await
        {
            Ok(HookStep::Done) => {}
            Ok(HookStep::Waiting(message)) => return waiting(message, hooks).await,
            Err(error) => announce_delete_hook_failure(hr, ctx, &error).await,
        }
    }
    for entry in manifests::uninstall_order(&status.inventory) {
        if let Err(error) = delete_unless_kept(hr, ctx, namespace, &entry).await {
            // Retried with backoff until the teardown timeout; past it, deletion never hangs
            // (SPEC §2.8): the object is left behind and said so.
            if deleting_for(hr) < ctx.teardown_timeout {
                return Err(error);
            }
            let note = format!(
                "{} left behind: deleting it kept failing past the teardown timeout ({})",
                manifests::display_name(&entry),
                error.api_status().unwrap_or(error.metric_label())
            );
            ctx.recorder
                .warning(
                    &hr.object_ref(&()),
                    reasons::OBJECT_LEFT_BEHIND,
                    "Delete",
                    Some(&note),
                )
                .await;
        }
    }
    if let Some(pass) = &pass {
        match pass
            .step(HookEvent::PostDelete, &mut hooks, &mut succeeded)
            .await
        {
            Ok(HookStep::Done) => {}
            Ok(HookStep::Waiting(message)) => return waiting(message, hooks).await,
            Err(error) => announce_delete_hook_failure(hr, ctx, &error).await,
        }
    }
    for entry in &succeeded {
        delete_entry(hr, ctx, namespace, entry).await?;
    }
    info!(objects = status.inventory.len(), "release deleted");
    Ok(None)
}

/// The finalizer's cleanup of a deleted release: dependents first ([`wait_for_dependents`]),
/// then its own objects ([`teardown`]); once both are through, the release is forgotten and
/// the finalizer may go.
pub(in crate::controller) async fn cleanup(
    hr: &HelmRelease,
    ctx: &Context,
    api: &Api<HelmRelease>,
    namespace: &str,
) -> Result<Cleanup, Error> {
    if let Some(action) = wait_for_dependents(hr, ctx, api).await? {
        return Ok(Cleanup::Wait(action));
    }
    if let Some(action) = teardown(hr, ctx, api, namespace).await? {
        return Ok(Cleanup::Wait(action));
    }
    ctx.forget(&ObjectRef::from_obj(hr));
    ctx.accounts
        .keep_only_used(ctx.releases.state().iter().map(AsRef::as_ref));
    Ok(Cleanup::Done)
}

/// The plan whose delete hooks run at deletion. Deletion never waits on what may never come
/// back (SPEC §2.8): when the values, the chart or the render are unavailable, the hooks are
/// skipped and an Event says so.
async fn delete_hook_plan(
    hr: &HelmRelease,
    ctx: &Context,
    namespace: &str,
) -> Option<manifests::Plan> {
    let skipped = |why: String| async move {
        let note = format!("delete hooks skipped: {why}");
        ctx.recorder
            .warning(
                &hr.object_ref(&()),
                reasons::DELETE_HOOKS_SKIPPED,
                "Delete",
                Some(&note),
            )
            .await;
    };
    let values = match observe(hr, ctx, namespace).await {
        Ok(Observed {
            values: Some(values),
            ..
        }) => values,
        Ok(_) => {
            skipped("the values cannot be resolved any more".to_owned()).await;
            return None;
        }
        Err(error) => {
            skipped(error.to_string()).await;
            return None;
        }
    };
    match render_plan(hr, ctx, namespace, &values, true).await {
        Ok((_, plan))
            if plan.hooks_for(HookEvent::PreDelete).is_empty()
                && plan.hooks_for(HookEvent::PostDelete).is_empty() =>
        {
            None
        }
        Ok((_, plan)) => Some(plan),
        Err(error) => {
            skipped(error.to_string()).await;
            None
        }
    }
}

/// How long the release has been deleting (measured against the teardown timeout).
fn deleting_for(hr: &HelmRelease) -> Duration {
    hr.metadata
        .deletion_timestamp
        .as_ref()
        .map_or(Duration::ZERO, |at| {
            Timestamp::now().duration_since(at.0).unsigned_abs()
        })
}

/// A delete hook that failed is announced; it never blocks the deletion.
async fn announce_delete_hook_failure(hr: &HelmRelease, ctx: &Context, error: &Error) {
    let note = format!("{error}; deleting anyway");
    ctx.recorder
        .warning(&hr.object_ref(&()), error.reason(), "Delete", Some(&note))
        .await;
}
