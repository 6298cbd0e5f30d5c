//! The observe step: reads what a decision depends on (dependencies and their outputs,
//! `valuesFrom`, the environment, the live inventory and its health, the release's own
//! outputs) into an [`Observation`], plus what the apply step needs besides.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use serde_json::Value;
use upstart_api::conditions::{READY, find, is_ready_for_generation};
use upstart_api::v1alpha1::{
    DependencyKind, HelmRelease, InventoryEntry, UpstartEnvironment, UpstartService,
};
use upstart_dag::{
    EnvironmentInfo, ExpressionContext, Objects, Outputs, ReleaseInfo, collect_release_outputs,
    collect_service_outputs, release_values,
};
use upstart_failure::Classify;
use upstart_operator_runtime::{Cache, Cached};
use upstart_release_engine::digest::{FieldDigest, canonical_json};
use upstart_release_engine::health::{self, Health};
use upstart_release_engine::manifests;

use crate::Error;
use crate::constants::{CHART_DIGEST_ANNOTATION, FIELD_MANAGER, reasons};
use crate::controller::applied::Live;
use crate::controller::{Context, pins};
use crate::decide::{
    DependencyObservation, DependencyState, Observation, ValuesState, alias_problems,
    cycle_problems,
};
use crate::error::ApiStep;
use crate::roots;

/// Largest `valuesFrom` document read (SPEC §7: hostile inputs have size limits).
pub const MAX_VALUES_DOCUMENT_BYTES: usize = 1024 * 1024;

/// What observe found, plus what the apply step needs and the decision does not.
pub(in crate::controller) struct Observed {
    pub(in crate::controller) observation: Observation,
    pub(in crate::controller) values: Option<Value>,
    /// While waiting for dependencies: the values with the outputs they publish so far.
    pub(in crate::controller) early_values: Option<Value>,
    pub(in crate::controller) digest: Option<String>,
    pub(in crate::controller) published_keys: Vec<String>,
    /// How long until the health timeout, when it is counting.
    pub(in crate::controller) timeout_in: Option<Duration>,
    /// Applied objects changed by hand, with the time of the newest foreign write: recorded
    /// as corrected once the apply putting them back succeeds.
    pub(in crate::controller) edits: Vec<(String, Timestamp)>,
    /// The manifest the chart's OCI tag points at now, or the commit its git ref points at now
    /// (an input of the release; the fetch reads this manifest or commit), see
    /// [`pins`](crate::controller::pins).
    pub(in crate::controller) manifest_digest: Option<String>,
    /// The chart's git ref no longer exists: `manifest_digest` is the commit status records,
    /// and this says so (the RepositoryReachable condition).
    pub(in crate::controller) ref_gone: Option<upstart_chart_source::Stale>,
    /// The `imageDigest` images of the values -> the digest each was pinned to, for status.
    pub(in crate::controller) image_digests: std::collections::BTreeMap<String, String>,
    /// The release's environment sleeps: its workloads are applied with zero replicas.
    pub(in crate::controller) asleep: bool,
}

pub(in crate::controller) async fn observe(
    hr: &HelmRelease,
    ctx: &Context,
    namespace: &str,
) -> Result<Observed, Error> {
    let mut dependencies = Vec::new();
    let mut expression_context = ExpressionContext {
        release: ReleaseInfo {
            name: hr.name_any(),
            namespace: namespace.to_owned(),
        },
        ..ExpressionContext::default()
    };
    for dependency in &hr.spec.dependencies {
        let (state, outputs) =
            observe_dependency(ctx, namespace, &dependency.name, dependency.kind).await?;
        expression_context
            .dependencies
            .insert(dependency.alias().to_owned(), outputs);
        dependencies.push(DependencyObservation {
            name: dependency.name.clone(),
            state,
        });
    }
    let all_ready = dependencies
        .iter()
        .all(|d| d.state == DependencyState::Ready);
    expression_context.service = roots::service_info(hr);

    let mut manifest_digest = None;
    let mut ref_gone = None;
    let (values_state, values, digest) = if all_ready {
        match resolve_values(hr, ctx, namespace, &mut expression_context).await? {
            Ok(values) => {
                (manifest_digest, ref_gone) = pins::chart_manifest(hr, ctx).await;
                let mut inputs = FieldDigest::new()
                    .field("chart", &hr.spec.chart)
                    .field("version", hr.spec.version.as_deref().unwrap_or(""))
                    .field("releaseName", release_name(hr).as_str())
                    .field("namespace", namespace)
                    .field("values", &canonical_json(&values));
                // Only when set, so the digest of every other release stays what it was.
                if let Some(chart_digest) = hr.annotations().get(CHART_DIGEST_ANNOTATION) {
                    inputs = inputs.field("chartDigest", chart_digest);
                }
                // A moved OCI tag or git ref is a new input (images pinned by `imageDigest` are
                // in the values already).
                if let Some(manifest) = &manifest_digest {
                    inputs = inputs.field("manifestDigest", manifest);
                }
                let digest = inputs.finish();
                (
                    ValuesState::Resolved {
                        digest: digest.clone(),
                    },
                    Some(values),
                    Some(digest),
                )
            }
            Err(state) => (state, None, None),
        }
    } else {
        (ValuesState::NotObserved, None, None)
    };
    // Waiting for dependencies that are installed but not Ready yet: the values as their
    // outputs stand now, to render ahead (see `render_ahead`).
    let early_values = if !all_ready
        && dependencies.iter().all(|d| {
            matches!(
                d.state,
                DependencyState::Ready | DependencyState::NotReady { .. }
            )
        }) {
        resolve_values(hr, ctx, namespace, &mut expression_context)
            .await
            .ok()
            .and_then(Result::ok)
    } else {
        None
    };

    let status = hr.status.clone().unwrap_or_default();
    let mut healths = Vec::new();
    let mut inventory_missing = Vec::new();
    let mut inventory_edited = Vec::new();
    let mut edits = Vec::new();
    let release = ObjectRef::from_obj(hr);
    for entry in &status.inventory {
        let api = match ctx.dynamic_api(hr, entry, namespace).await {
            Ok(api) => api,
            Err(Error::UnknownKind { .. }) => {
                inventory_missing.push(manifests::display_name(entry));
                healths.push(Health::missing(entry));
                continue;
            }
            Err(error) => return Err(error),
        };
        let key = object_key(entry, namespace);
        let applied = ctx
            .recall(&release, |m| m.applied.get(&key).cloned())
            .flatten();
        let read = match ctx.applied_objects.live(entry, namespace, applied.as_ref()) {
            Live::Known(found) => found,
            Live::Read => match api.get_opt(&entry.name).await {
                // Not allowed to read it (the release's account lost its rights): counted as
                // missing, so the apply that follows puts the refusal, worded, in status.
                Err(kube::Error::Api(status)) if status.code == 403 => None,
                read => read
                    .map_err(Error::kube(
                        ApiStep::ReadObject,
                        "reading an applied object",
                    ))?
                    .map(Arc::new),
            },
        };
        match read {
            Some(live) => {
                if let Some(at) = edited_at(live.managed_fields(), FIELD_MANAGER)
                    && ctx.is_uncorrected(&release, &key, at)
                {
                    inventory_edited.push(manifests::display_name(entry));
                    edits.push((key, at));
                }
                let live = serde_json::to_value(live.as_ref()).unwrap_or(Value::Null);
                healths.push(health::assess(&live));
            }
            None => {
                // Whoever creates it next, the apply that puts it back checks first.
                ctx.remember(&release, |m| m.applied.remove(&key));
                inventory_missing.push(manifests::display_name(entry));
                healths.push(Health::missing(entry));
            }
        }
    }
    let health = health::combine(healths);

    let own = objects_for(ctx, namespace, &hr.spec.outputs_from).await?;
    let (published_missing, published_keys) =
        match collect_release_outputs(&hr.spec.outputs_from, &own) {
            Ok(collected) => (
                collected.missing.iter().map(ToString::to_string).collect(),
                collected.outputs.key_names(),
            ),
            Err(error) => (vec![error.to_string()], Vec::new()),
        };

    // Measured from the last apply of this process (a drift correction restarts the clock),
    // else from when this generation started applying (after a restart).
    let since_apply = ctx.since_last_apply(&ObjectRef::from_obj(hr)).or_else(|| {
        status
            .timings
            .as_ref()
            .and_then(|t| t.started_at.as_ref())
            .map(|started| Timestamp::now().duration_since(started.0).unsigned_abs())
    });
    let health_timed_out =
        !health.is_healthy() && since_apply.is_some_and(|waited| waited > hr.spec.timeout());

    Ok(Observed {
        observation: Observation {
            suspended: hr.spec.suspend,
            spec_problems: {
                let mut problems = alias_problems(&hr.name_any(), &hr.spec.dependencies);
                let releases = ctx.releases.state();
                problems.extend(cycle_problems(
                    &hr.name_any(),
                    releases
                        .iter()
                        .filter(|r| r.namespace().as_deref() == Some(namespace))
                        .map(|r| {
                            (
                                r.metadata.name.as_deref().unwrap_or_default(),
                                r.spec.dependencies.as_slice(),
                            )
                        }),
                ));
                problems
            },
            dependencies,
            values: values_state,
            applied_digest: status.applied_digest.clone(),
            inventory_missing,
            inventory_edited,
            wait: hr.spec.wait(),
            health,
            health_timed_out,
            published_missing,
            reapply_due: ctx.reapply_due(&ObjectRef::from_obj(hr), hr.spec.interval()),
            sleep_changed: hr.is_marked_asleep() != status.asleep,
        },
        asleep: hr.is_marked_asleep(),
        values,
        early_values,
        digest,
        published_keys,
        timeout_in: since_apply.map(|waited| hr.spec.timeout().saturating_sub(waited)),
        edits,
        manifest_digest,
        ref_gone,
        image_digests: pins::image_digests(&expression_context.images),
    })
}

/// Identifies an applied object across releases and reconciles.
pub(in crate::controller) fn object_key(entry: &InventoryEntry, namespace: &str) -> String {
    format!(
        "{}/{}/{}/{}",
        entry.namespace.as_deref().unwrap_or(namespace),
        entry.api_version,
        entry.kind,
        entry.name
    )
}

/// When an applied object was last changed by hand: the time of the newest write to its main
/// resource by a field manager other than `ours`, when it is not older than our own last apply
/// of it (or when our apply no longer owns anything, e.g. the object was replaced).
/// Writes through a subresource (`/status`, `/scale`) are controllers at work, not drift.
/// So are writes that own nothing but metadata (labels, annotations): controllers annotate what
/// they manage (kube-controller-manager's `deployment.kubernetes.io/revision` after every
/// rollout), and counting that as drift would announce a false correction after each install
/// or upgrade. A label or annotation changed by hand is put back on the interval instead.
/// managedFields times have whole seconds, so a write in the same second as our apply counts:
/// at worst one re-apply that changes nothing.
pub fn edited_at(fields: &[ManagedFieldsEntry], ours: &str) -> Option<Timestamp> {
    let main = |f: &&ManagedFieldsEntry| f.subresource.as_deref().is_none_or(str::is_empty);
    let our_apply = fields
        .iter()
        .filter(main)
        .filter(|f| f.manager.as_deref() == Some(ours) && f.operation.as_deref() == Some("Apply"))
        .filter_map(|f| f.time.as_ref().map(|t| t.0))
        .max();
    let foreign = fields
        .iter()
        .filter(main)
        .filter(|f| f.manager.as_deref() != Some(ours))
        .filter(|f| our_apply.is_none() || !owns_only_metadata(f))
        .map(|f| f.time.as_ref().map_or(Timestamp::UNIX_EPOCH, |t| t.0))
        .max()?;
    match our_apply {
        Some(ours) if foreign < ours => None,
        _ => Some(foreign),
    }
}

/// Whether a managedFields entry owns nothing outside `metadata` (unknown fields: no).
fn owns_only_metadata(entry: &ManagedFieldsEntry) -> bool {
    entry
        .fields_v1
        .as_ref()
        .and_then(|fields| fields.0.as_object())
        .is_some_and(|owned| owned.keys().all(|k| k == "f:metadata"))
}

/// `environment.*` (SPEC §5): the UpstartEnvironment named by the namespace's environment
/// label, when it owns that namespace. Read directly, as dependencies are: a variables change
/// wakes the release and must be seen by that very reconcile.
async fn observe_environment(
    ctx: &Context,
    namespace: &str,
) -> Result<Option<EnvironmentInfo>, Error> {
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let Some(found) = cached_or_read(&ctx.caches.namespaces, &namespaces, namespace)
        .await
        .map_err(Error::kube(
            ApiStep::ReadEnvironment,
            "reading the release's Namespace",
        ))?
    else {
        return Ok(None);
    };
    let Some(name) = roots::environment_of_namespace(found.labels()) else {
        return Ok(None);
    };
    let environments: Api<UpstartEnvironment> = Api::all(ctx.client.clone());
    Ok(
        cached_or_read(&ctx.caches.environments, &environments, name)
            .await
            .map_err(Error::kube(
                ApiStep::ReadEnvironment,
                "reading the namespace's UpstartEnvironment",
            ))?
            .and_then(|environment| roots::environment_info(&environment, namespace)),
    )
}

/// The object `name` of `api` from `cache`, read from the API while the cache's first list
/// is not complete.
async fn cached_or_read<K>(
    cache: &Cache<K>,
    api: &Api<K>,
    name: &str,
) -> Result<Option<Arc<K>>, kube::Error>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + for<'de> k8s_openapi::serde::Deserialize<'de>
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let mut key = ObjectRef::<K>::new(name);
    if let Some(namespace) = api.namespace() {
        key = key.within(namespace);
    }
    match cache.get(&key) {
        Cached::Found(found) => Ok(Some(found)),
        Cached::Absent => Ok(None),
        Cached::Unknown => Ok(api.get_opt(name).await?.map(Arc::new)),
    }
}

pub(in crate::controller) fn release_name(hr: &HelmRelease) -> String {
    hr.spec.release_name_of_object(&hr.name_any())
}

/// A dependency's state and, once Ready, the outputs it publishes.
async fn observe_dependency(
    ctx: &Context,
    namespace: &str,
    name: &str,
    kind: Option<DependencyKind>,
) -> Result<(DependencyState, Outputs), Error> {
    let releases: Api<HelmRelease> = Api::namespaced(ctx.client.clone(), namespace);
    let services: Api<UpstartService> = Api::namespaced(ctx.client.clone(), namespace);
    // From the store, which held the change that woke this reconcile before it was passed
    // on; a release not there yet (just created, or in another shard) is read directly.
    let release = match kind {
        Some(DependencyKind::UpstartService) => None,
        _ => match ctx.releases.get(&ObjectRef::new(name).within(namespace)) {
            Some(cached) => Some(cached),
            None => releases
                .get_opt(name)
                .await
                .map_err(Error::kube(ApiStep::ReadDependency, "reading a dependency"))?
                .map(Arc::new),
        },
    };
    let service = match kind {
        Some(DependencyKind::HelmRelease) => None,
        _ => cached_or_read(&ctx.caches.services, &services, name)
            .await
            .map_err(Error::kube(ApiStep::ReadDependency, "reading a dependency"))?,
    };
    match (release, service) {
        (Some(_), Some(_)) => Ok((DependencyState::Ambiguous, Outputs::new())),
        (None, None) => Ok((DependencyState::Missing, Outputs::new())),
        (Some(release), None) => {
            let conditions = release
                .status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or_default();
            let objects = objects_for(ctx, namespace, &release.spec.outputs_from).await?;
            if !is_ready_for_generation(conditions, release.metadata.generation) {
                // What it publishes so far (outputs usually exist from its apply on): only
                // for rendering ahead, never applied before it is Ready.
                let early = collect_release_outputs(&release.spec.outputs_from, &objects)
                    .map(|collected| collected.outputs)
                    .unwrap_or_default();
                return Ok((not_ready(conditions), early));
            }
            match collect_release_outputs(&release.spec.outputs_from, &objects) {
                Ok(collected) => Ok((DependencyState::Ready, collected.outputs)),
                Err(error) => Ok((
                    DependencyState::NotReady {
                        message: error.to_string(),
                    },
                    Outputs::new(),
                )),
            }
        }
        (None, Some(service)) => {
            let conditions = service
                .status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or_default();
            if !is_ready_for_generation(conditions, service.metadata.generation) {
                return Ok((not_ready(conditions), Outputs::new()));
            }
            let uid = service.metadata.uid.clone().unwrap_or_default();
            let children: Vec<HelmRelease> = ctx
                .releases
                .state()
                .iter()
                .filter(|r| r.namespace().as_deref() == Some(namespace))
                .filter(|r| r.owner_references().iter().any(|o| o.uid == uid))
                .map(|r| (**r).clone())
                .collect();
            let mut sources = Vec::new();
            for child in &children {
                sources.extend(child.spec.outputs_from.iter().cloned());
            }
            let objects = objects_for(ctx, namespace, &sources).await?;
            let entries: Vec<(String, &[upstart_api::v1alpha1::OutputSource])> = children
                .iter()
                .map(|c| (c.name_any(), c.spec.outputs_from.as_slice()))
                .collect();
            match collect_service_outputs(entries.iter().map(|(k, s)| (k.as_str(), *s)), &objects) {
                Ok(collected) => Ok((DependencyState::Ready, collected.outputs)),
                Err(error) => Ok((
                    DependencyState::NotReady {
                        message: error.to_string(),
                    },
                    Outputs::new(),
                )),
            }
        }
    }
}

fn not_ready(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> DependencyState {
    let message = match find(conditions, READY) {
        Some(c) if c.status == "True" => "not yet reconciled for its current generation".to_owned(),
        // Not its message: that names its own dependencies and theirs, so a change at the head
        // of a chain would rewrite the status of every release below it.
        Some(c) if c.reason == reasons::DEPENDENCIES_NOT_READY => {
            "waiting for its own dependencies".to_owned()
        }
        Some(c) if !c.message.is_empty() => c.message.clone(),
        Some(c) => c.reason.clone(),
        None => "not reconciled yet".to_owned(),
    };
    DependencyState::NotReady { message }
}

/// The Secrets and ConfigMaps the given output sources name, as they are now.
async fn objects_for(
    ctx: &Context,
    namespace: &str,
    sources: &[upstart_api::v1alpha1::OutputSource],
) -> Result<Objects, Error> {
    ctx.outputs
        .read(&ctx.client, namespace, sources)
        .await
        .map_err(|(kind, source)| Error::Kube {
            step: ApiStep::ReadOutputs,
            action: format!("reading an output {kind:?}"),
            source,
        })
}

/// The final values (SPEC §2.3), or why there are none yet.
async fn resolve_values(
    hr: &HelmRelease,
    ctx: &Context,
    namespace: &str,
    context: &mut ExpressionContext,
) -> Result<Result<Value, ValuesState>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
    let mut documents = Vec::new();
    for source in &hr.spec.values_from {
        let (origin, reference, text) = if let Some(reference) = &source.secret_ref {
            let text = secrets
                .get_opt(&reference.name)
                .await
                .map_err(Error::kube(
                    ApiStep::ReadValuesFrom,
                    "reading a valuesFrom Secret",
                ))?
                .and_then(|s| s.data?.get(reference.key()).map(|b| b.0.clone()));
            (format!("Secret/{}", reference.name), reference, text)
        } else if let Some(reference) = &source.config_map_ref {
            let text = config_maps
                .get_opt(&reference.name)
                .await
                .map_err(Error::kube(
                    ApiStep::ReadValuesFrom,
                    "reading a valuesFrom ConfigMap",
                ))?
                .and_then(|c| c.data?.get(reference.key()).map(|s| s.clone().into_bytes()));
            (format!("ConfigMap/{}", reference.name), reference, text)
        } else {
            continue;
        };
        let origin = format!("{origin} key {}", reference.key());
        let Some(text) = text else {
            if reference.optional {
                continue;
            }
            return Ok(Err(ValuesState::Wait {
                reason: "ValuesSourceMissing".to_owned(),
                message: format!("{origin} does not exist"),
            }));
        };
        match parse_values_document(&text) {
            Ok(document) => documents.push((origin, document)),
            Err(why) => {
                return Ok(Err(ValuesState::SpecError {
                    reason: "InvalidValuesDocument".to_owned(),
                    message: format!("{origin}: {why}"),
                }));
            }
        }
    }
    let merged = match release_values(documents, hr.spec.values.as_ref()) {
        Ok(merged) => merged,
        Err(error) => {
            return Ok(Err(ValuesState::SpecError {
                reason: error.reason().to_owned(),
                message: error.to_string(),
            }));
        }
    };
    // An expression reading `environment.*` names it: without the word, the environment's
    // two reads are saved.
    if serde_json::to_string(&merged).is_ok_and(|text| text.contains("environment")) {
        context.environment = observe_environment(ctx, namespace).await?;
    }
    let images = ctx.expressions.images(&merged, context);
    if !images.is_empty() {
        match pins::resolve_images(ctx, &images, hr.spec.interval()).await {
            Ok(pinned) => context.images.extend(pinned),
            Err(state) => return Ok(Err(state)),
        }
    }
    Ok(
        match ctx.expressions.substitute(merged, "spec.values", context) {
            Ok(values) => Ok(values),
            Err(error) if error.is_wait() => Err(ValuesState::Wait {
                reason: error.reason().to_owned(),
                message: error.to_string(),
            }),
            Err(error) => Err(ValuesState::SpecError {
                reason: error.reason().to_owned(),
                message: error.to_string(),
            }),
        },
    )
}

/// Parses one `valuesFrom` document with a size limit, as Helm reads values (YAML 1.1, see
/// `upstart_release_engine::yaml`), its alias expansion bounded by the default `YamlLimits`.
/// The reason never quotes the content.
pub fn parse_values_document(bytes: &[u8]) -> Result<Value, String> {
    if bytes.len() > MAX_VALUES_DOCUMENT_BYTES {
        return Err(format!(
            "document is {} bytes, more than the limit of {MAX_VALUES_DOCUMENT_BYTES}",
            bytes.len()
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "document is not UTF-8".to_owned())?;
    use upstart_release_engine::yaml::{YamlError, YamlLimits, to_json_documents};
    let mut documents = to_json_documents(text, &YamlLimits::default()).map_err(|e| match e {
        YamlError::TooLarge { .. } => e.to_string(),
        other => format!("invalid YAML: {other}"),
    })?;
    if documents.len() > 1 {
        return Err("holds more than one YAML document".to_owned());
    }
    Ok(documents.pop().unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn entry(
        manager: &str,
        operation: &str,
        second: i64,
        subresource: Option<&str>,
    ) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            time: Some(Time(
                Timestamp::from_second(1_700_000_000 + second).expect("a valid time"),
            )),
            subresource: subresource.map(str::to_owned),
            ..ManagedFieldsEntry::default()
        }
    }

    fn at(second: i64) -> Option<Timestamp> {
        Some(Timestamp::from_second(1_700_000_000 + second).expect("a valid time"))
    }

    fn owning(mut entry: ManagedFieldsEntry, fields: serde_json::Value) -> ManagedFieldsEntry {
        entry.fields_v1 = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1(
            fields,
        ));
        entry
    }

    #[test]
    fn annotation_written_by_a_controller_is_not_an_edit() {
        let fields = [
            entry(FIELD_MANAGER, "Apply", 5, None),
            owning(
                entry("kube-controller-manager", "Update", 9, None),
                json!({"f:metadata": {"f:annotations": {"f:deployment.kubernetes.io/revision": {}}}}),
            ),
        ];
        assert_eq!(edited_at(&fields, FIELD_MANAGER), None);
    }

    #[test]
    fn data_written_by_hand_is_an_edit() {
        let fields = [
            entry(FIELD_MANAGER, "Apply", 5, None),
            owning(
                entry("kubectl-edit", "Update", 9, None),
                json!({"f:data": {"f:message": {}}}),
            ),
        ];
        assert_eq!(edited_at(&fields, FIELD_MANAGER), at(9));
    }

    #[test]
    fn object_only_we_wrote_is_not_edited() {
        assert_eq!(
            edited_at(&[entry(FIELD_MANAGER, "Apply", 5, None)], FIELD_MANAGER),
            None
        );
    }

    #[test]
    fn status_written_by_a_controller_is_not_an_edit() {
        let fields = [
            entry(FIELD_MANAGER, "Apply", 5, None),
            entry("upstart-simulator", "Apply", 9, Some("status")),
        ];
        assert_eq!(edited_at(&fields, FIELD_MANAGER), None);
    }

    #[test]
    fn write_by_another_manager_after_our_apply_is_an_edit_at_its_time() {
        let fields = [
            entry(FIELD_MANAGER, "Apply", 5, None),
            entry("kubectl-edit", "Update", 9, None),
        ];
        assert_eq!(edited_at(&fields, FIELD_MANAGER), at(9));
    }

    #[test]
    fn write_in_the_same_second_as_our_apply_counts_as_an_edit() {
        let fields = [
            entry(FIELD_MANAGER, "Apply", 5, None),
            entry("kubectl-edit", "Update", 5, None),
        ];
        assert_eq!(edited_at(&fields, FIELD_MANAGER), at(5));
    }

    #[test]
    fn write_our_later_apply_answered_is_not_an_edit() {
        let fields = [
            entry("kubectl-edit", "Update", 5, None),
            entry(FIELD_MANAGER, "Apply", 9, None),
        ];
        assert_eq!(edited_at(&fields, FIELD_MANAGER), None);
    }

    #[test]
    fn object_we_no_longer_own_anything_of_is_edited() {
        let fields = [entry("kubectl", "Update", 3, None)];
        assert_eq!(edited_at(&fields, FIELD_MANAGER), at(3));
    }

    #[test]
    fn a_dependency_waiting_for_its_own_dependencies_is_named_without_its_message() {
        let waiting = |message: &str| {
            vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                type_: READY.to_owned(),
                status: "False".to_owned(),
                reason: reasons::DEPENDENCIES_NOT_READY.to_owned(),
                message: message.to_owned(),
                last_transition_time: Time(Timestamp::UNIX_EPOCH),
                observed_generation: Some(1),
            }]
        };
        // Whatever happens further up the chain, what a dependent says does not change.
        assert_eq!(
            not_ready(&waiting("waiting for a: waiting for b")),
            not_ready(&waiting("waiting for a: Deployment/b 0/1 available"))
        );
    }

    #[test]
    fn values_document_too_large_is_refused_without_quoting_it() {
        let big = vec![b'a'; MAX_VALUES_DOCUMENT_BYTES + 1];
        let error = parse_values_document(&big).expect_err("too large");
        assert!(error.contains("limit"));
        assert!(!error.contains("aaa"));
    }

    #[test]
    fn invalid_values_document_names_the_position_not_the_content() {
        let error = parse_values_document(b"password: hunter2\n  : [").expect_err("invalid");
        assert!(!error.contains("hunter2"), "{error}");
        assert!(error.contains("line"), "{error}");
    }

    #[test]
    fn values_document_is_parsed_as_yaml() {
        let value = parse_values_document(b"a:\n  b: 1\n").expect("valid");
        assert_eq!(value, json!({"a": {"b": 1}}));
    }
}
