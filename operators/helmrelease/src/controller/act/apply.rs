//! The `Apply` and `Reapply` actions: which run a decision asks for ([`ApplyRun`]), one
//! [`apply_release`] pass of it, and the status and requeue that pass ends in.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use serde_json::Value;
use tracing::info;
use upstart_api::v1alpha1::{DependencyKind, HelmRelease};
use upstart_operator_runtime::Action;
use upstart_release_engine::render::Scrubber;

use crate::Error;
use crate::controller::accounts::Account;
use crate::controller::act::hooks::{HookRun, hook_run};
use crate::controller::act::install::{Progress, Render, apply_release};
use crate::controller::act::prune::delete_entry;
use crate::controller::observe::Observed;
use crate::controller::{APPLY_RECHECK, Context, write_status};
use crate::decide::{Apply, Decision, Reapply, hooks_already_succeeded};
use crate::status::{applying_status, failure_status, next_status, with_repository_reachability};

/// Value strings at least this long are scrubbed from failure messages (as the renderer does).
const MIN_SCRUB_LEN: usize = 4;

/// How one apply run goes, chosen from the decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::controller) struct ApplyRun {
    /// Rendered as an upgrade (`.Release.IsUpgrade`), with the upgrade hooks.
    pub(in crate::controller) upgrade: bool,
    /// Hooks may run: not on a re-apply of the same render (nothing was upgraded).
    pub(in crate::controller) hooks: bool,
}

/// The apply run a decision asks for, with the objects changed by hand it puts back; `None`
/// when the decision applies nothing.
pub(in crate::controller) fn apply_run<'d>(
    decision: &'d Decision,
    ctx: &Context,
    key: &ObjectRef<HelmRelease>,
) -> Option<(ApplyRun, &'d [String])> {
    match decision {
        Decision::Apply(Apply { upgrade, drift }) => Some((
            ApplyRun {
                upgrade: *upgrade,
                hooks: true,
            },
            drift.as_slice(),
        )),
        // The same render again: no hooks (nothing was upgraded), status stays Ready.
        Decision::Reapply(Reapply { drift }) => Some((
            ApplyRun {
                upgrade: ctx.last_apply_was_upgrade(key),
                hooks: false,
            },
            drift.as_slice(),
        )),
        _ => None,
    }
}

/// Runs one pass of the apply `decision` asks for, writes the status it ends in and says when
/// to look again.
pub(in crate::controller) async fn apply(
    hr: &HelmRelease,
    ctx: &Context,
    namespace: &str,
    observed: &Observed,
    decision: &Decision,
    (how, drift): (ApplyRun, &[String]),
    now: &Time,
) -> Result<Action, Error> {
    let generation = hr.metadata.generation;
    let old = hr.status.as_ref();
    let api: Api<HelmRelease> = Api::namespaced(ctx.client.clone(), namespace);
    let key = ObjectRef::from_obj(hr);
    if let Some(waited) = handoff_latency(hr, ctx, namespace).await {
        ctx.release_metrics
            .dependency_handoff_seconds
            .observe(waited.as_secs_f64());
    }
    if !drift.is_empty() {
        info!(
            objects = drift.join(", "),
            "putting back objects changed or deleted by hand"
        );
        ctx.release_metrics.drift_corrections.inc();
        let note = format!("putting back {}", drift.join(", "));
        ctx.recorder
            .warning(&hr.object_ref(&()), "DriftCorrected", "Apply", Some(&note))
            .await;
    }
    let values = observed.values.clone().unwrap_or(Value::Null);
    // Any failure message may quote what was applied: values never reach status or Events.
    let scrubber = Scrubber::new(&values, MIN_SCRUB_LEN);
    // Hooks run when what is applied changed, not when deleted objects are put back.
    let inputs_changed =
        observed.digest.as_deref() != old.and_then(|s| s.applied_digest.as_deref());
    let with_hooks = how.hooks && inputs_changed;
    let digest = observed.digest.as_deref().unwrap_or_default();
    let run = HookRun {
        id: hook_run(hr, digest),
        succeeded: old.map_or_else(Vec::new, |s| {
            hooks_already_succeeded(&s.hooks, s.hooks_digest.as_deref(), digest)
        }),
    };
    let mut recorded = hr.status.clone();
    let progress = apply_release(
        hr,
        ctx,
        namespace,
        Render {
            values: &values,
            manifest: observed.manifest_digest.as_deref(),
            asleep: observed.asleep,
        },
        ApplyRun {
            upgrade: how.upgrade,
            hooks: with_hooks,
        },
        &run,
        &mut recorded,
    )
    .await;
    // The status the apply may have written (its inventory) is the base from here on.
    let old = recorded.as_ref();
    match progress {
        Ok(Progress::Waiting { message, hooks }) => {
            let mut status = applying_status(old, decision, &message, generation, now);
            if with_hooks {
                status.hooks = hooks;
                status.hooks_digest = observed.digest.clone();
            }
            status.outputs = observed.published_keys.clone();
            write_status(ctx, &api, hr, status).await?;
            // The watch on the awaited object starts the next pass; this is the safety
            // net (and the pace of a CRD, whose Established condition is not watched).
            Ok(Action::requeue(APPLY_RECHECK))
        }
        Ok(Progress::Done(applied)) => {
            ctx.record_apply(&key, how.upgrade);
            ctx.record_corrected(&key, &observed.edits);
            let mut status = next_status(old, decision, generation, now);
            status.applied_digest = observed.digest.clone();
            // Kept objects stay listed until a render takes them back.
            for entry in applied.kept {
                if !status.kept.contains(&entry) {
                    status.kept.push(entry);
                }
            }
            status.kept.retain(|k| !applied.inventory.contains(k));
            status.inventory = applied.inventory;
            status.version = Some(applied.version);
            status.chart_digest = Some(applied.chart_digest);
            status.manifest_digest = applied.manifest_digest;
            status.commit = applied.commit;
            status.image_digests = observed.image_digests.clone();
            status.asleep = observed.asleep;
            if with_hooks {
                status.hooks = applied.hooks;
                status.hooks_digest = observed.digest.clone();
            }
            status.outputs = observed.published_keys.clone();
            let outage = applied.stale.as_ref().or(observed.ref_gone.as_ref());
            let status = with_repository_reachability(status, outage, generation, now);
            if matches!(decision, Decision::Reapply(_)) {
                write_status(ctx, &api, hr, status).await?;
                return Ok(Action::requeue(hr.spec.interval()));
            }
            write_status(ctx, &api, hr, status).await?;
            for entry in &applied.succeeded_hooks {
                delete_entry(hr, ctx, namespace, entry).await?;
            }
            // The status write wakes the release again; this is only the safety net.
            Ok(Action::requeue(Duration::from_secs(1)))
        }
        Err(error) if error.needs_spec_change() => {
            let decision = Decision::SpecError {
                reason: error.reason().to_owned(),
                message: scrubber.scrub(&error.to_string()),
            };
            let status = next_status(old, &decision, generation, now);
            write_status(ctx, &api, hr, status).await?;
            Ok(Action::requeue(hr.spec.interval()))
        }
        Err(error) => {
            let mut message = scrubber.scrub(&error.to_string());
            if error.is_forbidden()
                && let Some(account) = ctx.accounts.account(hr, namespace)
            {
                message.push_str(&refused_as(&account));
            }
            let status = failure_status(old, error.reason(), &message, generation, now);
            write_status(ctx, &api, hr, status).await?;
            Err(error)
        }
    }
}

/// What a refusal (403) means when the release acts as `account`: the chart asked for more
/// than the account may do, and how to fix it.
fn refused_as(account: &Account) -> String {
    format!(
        " (the release's objects are written as {account}, from spec.serviceAccountName or the \
         operator's --default-service-account: grant that account the access with a Role and \
         RoleBinding in {namespace}, or take the object out of the chart)",
        namespace = account.namespace
    )
}

/// On the first apply of a generation: how long since the last of its HelmRelease dependencies
/// became Ready (from their status timings in the cache).
async fn handoff_latency(hr: &HelmRelease, ctx: &Context, namespace: &str) -> Option<Duration> {
    let first_apply = hr
        .status
        .as_ref()
        .and_then(|s| s.timings.as_ref())
        .and_then(|t| t.started_at.as_ref())
        .is_none()
        || hr.status.as_ref().and_then(|s| s.observed_generation) != hr.metadata.generation;
    if !first_apply || hr.spec.dependencies.is_empty() {
        return None;
    }
    // The last dependency to become Ready is the one with the shortest time since. Precise
    // when this process wrote that Ready; else from status (whole seconds: up to 1 s high).
    let api: Api<HelmRelease> = Api::namespaced(ctx.client.clone(), namespace);
    let mut shortest: Option<Duration> = None;
    for dependency in &hr.spec.dependencies {
        if dependency.kind == Some(DependencyKind::UpstartService) {
            continue;
        }
        let key = ObjectRef::<HelmRelease>::new(&dependency.name).within(namespace);
        let since = match ctx.since_became_ready(&key) {
            Some(since) => Some(since),
            // Read directly: the cache may not hold the dependency's newest status yet.
            None => api
                .get_opt(&dependency.name)
                .await
                .ok()
                .flatten()
                .and_then(|r| r.status?.timings?.ready_at)
                .map(|at| Timestamp::now().duration_since(at.0).unsigned_abs()),
        };
        if let Some(since) = since {
            shortest = Some(shortest.map_or(since, |s| s.min(since)));
        }
    }
    shortest
}
