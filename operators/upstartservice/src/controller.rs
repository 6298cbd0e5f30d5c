//! The kube-facing side of the operator: read the service and its namespace, apply the
//! children of [`crate::plan()`], delete orphans, write the status of [`crate::status`]. Thin
//! on purpose.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use tracing::{debug, info, instrument, warn};
use upstart_api::conditions::{READY, find, is_ready_for_generation};
use upstart_api::v1alpha1::{
    HelmRelease, OutputSource, ServicePhase, UpstartService, UpstartServiceStatus,
};
use upstart_dag::{Expressions, collect_service_outputs, validate_template};
use upstart_operator_runtime::outputs::read_output_objects;
use upstart_operator_runtime::{
    Action, Cache, Controller, ControllerMetrics, EventRecorder, FailureBackoff, OperatorContext,
    PhaseGauge, PhaseSummary, Shutdown, apply_status, objects,
};

use crate::Error;
use crate::children::{build_child, is_child_of, never_installed, orphans};
use crate::constants::{CONTROLLER, FIELD_MANAGER};
use crate::error::ApiStep;
use crate::plan::{Plan, plan, switched};
use crate::status::{ChildState, Observation, deleting_status, next_status, template_status};
use crate::wakeups;

/// The safety net: watch events are what wake a service; this only bounds how long a missed
/// event could go unnoticed.
const RESYNC: Duration = Duration::from_secs(300);

/// What the operator is configured with.
#[derive(Clone, Debug)]
pub struct Config {
    /// Services of this namespace are catalog templates: validated, never deployed (SPEC §3).
    pub catalog_namespace: String,
}

impl Default for Config {
    /// The defaults of the binary's flags.
    fn default() -> Self {
        Config {
            catalog_namespace: upstart_operator_runtime::CommonArgs::default().catalog_namespace,
        }
    }
}

/// Shared by every reconcile.
pub struct Context {
    client: Client,
    metrics: ControllerMetrics,
    recorder: EventRecorder,
    backoff: FailureBackoff<ObjectRef<UpstartService>>,
    expressions: Expressions,
    catalog_namespace: String,
    /// Every UpstartService, kept by the watch that wakes services for a change of another.
    services: Cache<UpstartService>,
    /// Every HelmRelease, kept by the watch that wakes services for a change of one.
    releases: Cache<HelmRelease>,
}

/// Runs the controller until `shutdown` fires: the work handed to the shared runtime
/// (`upstart_operator_runtime::run`), in the binary and in process alike.
pub async fn run(op: OperatorContext, config: Config, shutdown: Shutdown) -> Result<(), Error> {
    // Registered before the watch starts, so /readyz never reports ready before the cache.
    let ready = op.readiness.register(CONTROLLER);
    let services: Api<UpstartService> = op.api();
    let synced = ready.clone();
    let services_by_phase = PhaseGauge::register(
        &op.metrics,
        "upstart_upstartservices",
        "UpstartServices by phase.",
    )
    .map_err(|e| Error::Config(e.to_string()))?;
    let by_phase = services_by_phase.clone();
    let (store, trigger) =
        ready.watch_counting(services.clone(), op.watcher_config(), move |store| {
            by_phase.count(
                store
                    .state()
                    .iter()
                    .map(|s| s.status.as_ref().and_then(|s| s.phase)),
            );
        });
    // Not the store above: with --label-selector that holds this shard's services only, and a
    // plan reads the whole namespace. These caches are filled by the watches that wake the
    // services a change concerns, and hold the change before the wake-up is passed on.
    let (service_cache, service_changes) = Cache::watch(services, watcher::Config::default());
    let (release_cache, release_changes) =
        Cache::watch(op.api::<HelmRelease>(), watcher::Config::default());
    let context = Arc::new(Context {
        client: op.client.clone(),
        metrics: op.metrics.controller(CONTROLLER),
        recorder: op.recorder(CONTROLLER),
        backoff: FailureBackoff::default(),
        expressions: Expressions::new(),
        catalog_namespace: config.catalog_namespace,
        services: service_cache,
        releases: release_cache,
    });
    let by_release = store.clone();
    let by_service = store.clone();
    let controller = Controller::for_stream(trigger, store)
        .with_config(op.controller_config())
        .watches_stream(release_changes, move |release| {
            wakeups::woken_by_release(&by_release.state(), &release)
        })
        .watches_stream(service_changes, move |service| {
            wakeups::woken_by_service(&by_service.state(), &service)
        })
        // Stop taking work on SIGTERM or lost leadership; in-flight reconciles finish.
        .graceful_shutdown_on(shutdown.wait())
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            match result {
                Ok(_) => {}
                // Errors name objects and API answers about HelmReleases and UpstartServices,
                // whose specs hold no output values (those are substituted by the HelmRelease
                // operator, at render time).
                Err(upstart_operator_runtime::ControllerError::ReconcilerFailed(error, object)) => {
                    warn!(reason = error.metric_label(), %object, %error, "reconcile failed");
                }
                // A wake-up for a service deleted meanwhile (a namespace being torn down).
                Err(upstart_operator_runtime::ControllerError::ObjectNotFound(object)) => {
                    debug!(%object, "woken service no longer exists");
                }
                Err(error) => warn!(%error, "controller error"),
            }
        });
    synced.run_until_stopped(controller, &shutdown).await;
    Ok(())
}

/// One reconcile: a template is validated; a deployed service gets its children applied,
/// its orphans deleted and its status written.
#[instrument(skip_all, fields(namespace = service.namespace(), name = service.name_any()))]
pub async fn reconcile(service: Arc<UpstartService>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.count_and_measure();
    let key = ObjectRef::from_obj(service.as_ref());
    let namespace = service.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<UpstartService> = Api::namespaced(ctx.client.clone(), &namespace);
    // The newest object, not the cached one: our own status write may not be in the cache yet.
    let Some(service) = api.get_opt(&service.name_any()).await.map_err(Error::kube(
        ApiStep::ReadService,
        "reading the UpstartService",
    ))?
    else {
        return Ok(Action::await_change());
    };
    let now = Time(Timestamp::now());
    let generation = service.metadata.generation;
    // Children are owned: the garbage collector deletes them, and each child's finalizer
    // waits for its dependents (SPEC §2.8). Only a foreground deletion leaves the service
    // there meanwhile, to say so.
    if service.metadata.deletion_timestamp.is_some() {
        if namespace != ctx.catalog_namespace {
            let status = deleting_status(service.status.as_ref(), generation, &now);
            match write_status(&ctx, &api, &service, status).await {
                // Gone meanwhile: nothing left to report on.
                Err(Error::Kube {
                    source: kube::Error::Api(status),
                    ..
                }) if status.code == 404 => {}
                other => other?,
            }
        }
        return Ok(Action::await_change());
    }
    if namespace == ctx.catalog_namespace {
        let problems = validate_template(&service.name_any(), &service.spec, &ctx.expressions);
        let status = template_status(
            service.status.as_ref(),
            &problems,
            service.spec.helm_releases.len(),
            generation,
            &now,
        );
        write_status(&ctx, &api, &service, status).await?;
        ctx.backoff.on_success(&key);
        return Ok(Action::await_change());
    }
    if service.uid().is_none() {
        return Err(Error::NoUid);
    }

    // From the watch caches, which may lag the API server a little. That is safe: every
    // change they have not shown yet wakes this service again once they hold it; a child
    // missing from them is applied (server-side apply of what is already there changes
    // nothing) and the API server's answer is used; an orphan is deleted by name, whatever its
    // state; a withheld child is deleted only as the copy judged (see `apply_children`).
    let services = ctx
        .services
        .in_namespace_or_list(&api, &namespace)
        .await
        .map_err(Error::kube(
            ApiStep::ListNamespace,
            "listing the UpstartServices of the namespace",
        ))?;
    let releases_api: Api<HelmRelease> = Api::namespaced(ctx.client.clone(), &namespace);
    let releases = ctx
        .releases
        .in_namespace_or_list(&releases_api, &namespace)
        .await
        .map_err(Error::kube(
            ApiStep::ListNamespace,
            "listing the HelmReleases of the namespace",
        ))?;
    // Planned as switched: disabled keys are left out (their children are orphans, torn down
    // dependents first), jobs are keys like any other.
    let (service, switch_problems) = switched(&service);
    let services: Vec<UpstartService> = services.iter().map(|s| switched(s).0).collect();
    let mut plan = plan(&service, &services, &releases);
    plan.problems.splice(0..0, switch_problems);

    let (children, apply_failures) =
        apply_children(&releases_api, &service, &plan, &releases).await?;
    for orphan in orphans(&service, &releases) {
        info!(
            child = orphan.name_any(),
            "deleting the child of a removed release key"
        );
        delete_child(&releases_api, &orphan.name_any()).await?;
        let note = format!(
            "deleting {} (its release key was removed)",
            orphan.name_any()
        );
        ctx.recorder
            .normal(
                &service.object_ref(&()),
                "ReleaseRemoved",
                "Delete",
                Some(&note),
            )
            .await;
    }

    let exported_outputs = exported_outputs(&ctx, &namespace, &service).await?;
    let observation = Observation {
        plan: &plan,
        children: children
            .iter()
            .map(|(key, child)| (key.clone(), child_state(child)))
            .collect(),
        apply_failures,
        exported_outputs,
    };
    let status = next_status(service.status.as_ref(), &observation, generation, &now);
    write_status(&ctx, &api, &service, status).await?;
    ctx.backoff.on_success(&key);
    Ok(Action::requeue(RESYNC))
}

fn error_policy(service: Arc<UpstartService>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.set_failure(error);
    Action::requeue(
        ctx.backoff
            .on_failure(ObjectRef::from_obj(service.as_ref())),
    )
}

/// Applies every child that is not withheld, in install order, with server-side apply; a child
/// already as planned is not sent again. Returns the children by key (as the API server
/// returned them) and the keys whose child the API server refused.
async fn apply_children(
    api: &Api<HelmRelease>,
    service: &UpstartService,
    plan: &Plan,
    releases: &[HelmRelease],
) -> Result<(BTreeMap<String, HelmRelease>, BTreeMap<String, String>), Error> {
    let mut children = BTreeMap::new();
    let mut failures = BTreeMap::new();
    for key in &plan.order {
        let key_plan = &plan.keys[key];
        let existing = releases
            .iter()
            .find(|r| r.name_any() == key_plan.child && is_child_of(r, service));
        if key_plan.withheld.is_some() {
            // Nothing on a cycle or in a conflict is installed or changed: a child created
            // before the problem appeared goes if it never ran, and is left as it is if it does.
            if let Some(existing) = existing {
                if never_installed(existing)
                    && existing.metadata.deletion_timestamp.is_none()
                    && delete_unchanged(api, existing).await?
                {
                    info!(
                        child = existing.name_any(),
                        "deleted a withheld child that never ran"
                    );
                } else {
                    children.insert(key.clone(), existing.clone());
                }
            }
            continue;
        }
        let desired = build_child(service, key, key_plan);
        if let Some(existing) = existing
            && objects::is_as_desired(existing, &desired)
        {
            children.insert(key.clone(), existing.clone());
            continue;
        }
        let applied = objects::apply(api, &key_plan.child, &desired, FIELD_MANAGER).await;
        match applied {
            Ok(applied) => {
                children.insert(key.clone(), applied);
            }
            // Refused for its content (validation): only a spec change helps; say so on the
            // service rather than retrying.
            Err(kube::Error::Api(status)) if status.code == 422 || status.code == 400 => {
                failures.insert(key.clone(), status.message.clone());
            }
            Err(source) => {
                return Err(Error::Kube {
                    step: ApiStep::ApplyChild,
                    action: format!("applying HelmRelease {}", key_plan.child),
                    source,
                });
            }
        }
    }
    Ok((children, failures))
}

async fn delete_child(api: &Api<HelmRelease>, name: &str) -> Result<(), Error> {
    objects::delete_if_present(api, name)
        .await
        .map(drop)
        .map_err(|source| Error::Kube {
            step: ApiStep::DeleteChild,
            action: format!("deleting HelmRelease {name}"),
            source,
        })
}

/// Deletes `child` only as it is here (its resourceVersion): the copy may come from the cache,
/// and one that started installing meanwhile must stay. False when it changed meanwhile: its
/// change wakes the service, which judges it again.
async fn delete_unchanged(api: &Api<HelmRelease>, child: &HelmRelease) -> Result<bool, Error> {
    let name = child.name_any();
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: child.resource_version(),
            uid: child.uid(),
        }),
        ..DeleteParams::background()
    };
    match api.delete(&name, &params).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(source) => Err(Error::Kube {
            step: ApiStep::DeleteChild,
            action: format!("deleting HelmRelease {name}"),
            source,
        }),
    }
}

/// Whether the live child already has the planned spec, labels and owner.
fn child_state(child: &HelmRelease) -> ChildState {
    let status = child.status.as_ref();
    let conditions = status.map(|s| s.conditions.as_slice()).unwrap_or_default();
    ChildState {
        phase: status.and_then(|s| s.phase).map(|p| p.as_str().to_owned()),
        ready: is_ready_for_generation(conditions, child.metadata.generation)
            && child.metadata.deletion_timestamp.is_none(),
        message: find(conditions, READY)
            .map(|c| c.message.clone())
            .filter(|m| !m.is_empty()),
    }
}

/// Names of the output keys the service exports: its releases' `scope: external` outputs, as
/// far as their Secrets and ConfigMaps exist now. Only key names leave this function.
async fn exported_outputs(
    ctx: &Context,
    namespace: &str,
    service: &UpstartService,
) -> Result<Vec<String>, Error> {
    let external: Vec<(&str, Vec<OutputSource>)> = service
        .spec
        .helm_releases
        .iter()
        .map(|(key, spec)| {
            let sources = spec
                .outputs_from
                .iter()
                .filter(|s| !s.scope.is_internal())
                .cloned()
                .collect::<Vec<_>>();
            (key.as_str(), sources)
        })
        .filter(|(_, sources)| !sources.is_empty())
        .collect();
    if external.is_empty() {
        return Ok(Vec::new());
    }
    let sources: Vec<OutputSource> = external
        .iter()
        .flat_map(|(_, sources)| sources.iter().cloned())
        .collect();
    let objects = read_output_objects(&ctx.client, namespace, &sources)
        .await
        .map_err(|(kind, source)| Error::Kube {
            step: ApiStep::ReadOutputs,
            action: format!("reading an exported {kind:?}"),
            source,
        })?;
    // A duplicate key between two releases is reported by the HelmRelease operator to the
    // dependents; here it only means the names are not known.
    Ok(collect_service_outputs(
        external
            .iter()
            .map(|(key, sources)| (*key, sources.as_slice())),
        &objects,
    )
    .map(|collected| collected.outputs.key_names())
    .unwrap_or_default())
}

/// Writes status with server-side apply, only when it changed (no self-triggered loops), and
/// announces a phase change with an Event (names and reasons only).
async fn write_status(
    ctx: &Context,
    api: &Api<UpstartService>,
    service: &UpstartService,
    status: UpstartServiceStatus,
) -> Result<(), Error> {
    apply_status(
        api,
        service,
        &status,
        FIELD_MANAGER,
        &ctx.recorder,
        |s: &UpstartServiceStatus| {
            s.phase.map(|phase| PhaseSummary {
                phase: phase.as_str(),
                failed: phase == ServicePhase::Failed,
                note: find(&s.conditions, READY).map(|c| c.message.as_str()),
            })
        },
    )
    .await
    .map_err(Error::kube(ApiStep::WriteStatus, "writing status"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn child(extra: serde_json::Value) -> HelmRelease {
        let mut object = json!({
            "apiVersion": "upstartoperators.upstart.com/v1alpha1",
            "kind": "HelmRelease",
            "metadata": {
                "name": "svc-db", "namespace": "pr-1", "generation": 2,
                "labels": {"upstartoperators.upstart.com/service": "svc", "other": "kept"},
                "ownerReferences": [{
                    "apiVersion": "upstartoperators.upstart.com/v1alpha1",
                    "kind": "UpstartService", "name": "svc", "uid": "u", "controller": true,
                    "blockOwnerDeletion": true
                }]
            },
            "spec": {"chart": "c/postgres", "releaseName": "db"}
        });
        if let (Some(target), Some(extra)) = (object.as_object_mut(), extra.as_object()) {
            target.extend(extra.clone());
        }
        serde_json::from_value(object).expect("valid HelmRelease")
    }

    #[test]
    fn child_state_counts_ready_only_for_the_current_generation() {
        let ready_for = |generation: i64| {
            child(json!({"status": {"phase": "Ready", "conditions": [{
                "type": "Ready", "status": "True", "reason": "Succeeded",
                "message": "applied and healthy", "observedGeneration": generation,
                "lastTransitionTime": "2026-01-01T00:00:00Z"
            }]}}))
        };
        let state = child_state(&ready_for(2));
        assert!(state.ready);
        assert_eq!(state.phase.as_deref(), Some("Ready"));
        assert_eq!(state.message.as_deref(), Some("applied and healthy"));
        assert!(!child_state(&ready_for(1)).ready);
        let fresh = child_state(&child(json!({})));
        assert_eq!(fresh, ChildState::default());
    }
}
