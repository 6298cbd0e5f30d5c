//! One pass of an install or upgrade: fetch and render the chart into a plan, pre hooks, the
//! objects in plan order, post hooks, prune; and the render ahead while dependencies finish.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use serde_json::Value;
use tracing::debug;
use upstart_api::v1alpha1::{
    HelmRelease, HelmReleaseStatus, HookStatus, InventoryEntry, JOB_CHART,
};
use upstart_release_engine::health::{self, Health};
use upstart_release_engine::lookup::ClusterReader;
use upstart_release_engine::manifests::{self, HookEvent, ReleaseScope};
use upstart_release_engine::render::RenderRequest;

use crate::Error;
use crate::controller::act::apply::ApplyRun;
use crate::controller::act::hooks::{HookPass, HookRun, HookStep};
use crate::controller::act::objects::{apply_object, crd_not_established, install_crd};
use crate::controller::act::prune::{Removal, delete_unless_kept};
use crate::controller::observe::release_name;
use crate::controller::{Context, write_status};

/// Renders while the dependencies finish becoming Ready, with the outputs they already
/// publish: when they are Ready with the same outputs, the apply finds the render in the cache
/// and starts without a helm run, so a hand-off costs no render (SPEC §9). Nothing is applied;
/// a failure here is left for the real apply to report.
pub(in crate::controller) async fn render_ahead(
    hr: &HelmRelease,
    ctx: &Context,
    namespace: &str,
    values: &Value,
    is_upgrade: bool,
) {
    if let Err(error) = render_plan(hr, ctx, namespace, values, is_upgrade).await {
        debug!(reason = error.metric_label(), "rendering ahead failed");
    }
}

/// Fetches the chart (an OCI chart from the manifest status records, the one last applied),
/// renders it with `values` and plans the result.
pub(in crate::controller) async fn render_plan(
    hr: &HelmRelease,
    ctx: &Context,
    namespace: &str,
    values: &Value,
    is_upgrade: bool,
) -> Result<(upstart_chart_source::FetchedChart, manifests::Plan), Error> {
    let recorded = hr
        .status
        .as_ref()
        .and_then(|s| s.manifest_digest.as_deref().or(s.commit.as_deref()));
    render_plan_at(hr, ctx, namespace, values, is_upgrade, recorded).await
}

/// As [`render_plan`], an OCI chart read from the manifest `manifest` (the one its tag was
/// resolved to when the release was observed), else from where its tag points now.
pub(in crate::controller) async fn render_plan_at(
    hr: &HelmRelease,
    ctx: &Context,
    namespace: &str,
    values: &Value,
    is_upgrade: bool,
    manifest: Option<&str>,
) -> Result<(upstart_chart_source::FetchedChart, manifests::Plan), Error> {
    if hr.spec.chart == JOB_CHART {
        return job_plan(hr, ctx, namespace, values).await;
    }
    let started = std::time::Instant::now();
    let chart = ctx
        .chart_source(&hr.spec.chart)
        .await?
        .fetch_at(&hr.spec.chart, hr.spec.version.as_deref(), manifest)
        .await
        .map_err(Error::ChartFetch)?;
    ctx.release_metrics
        .chart_fetch_seconds
        .observe(started.elapsed().as_secs_f64());
    let release_name = release_name(hr);
    let started = std::time::Instant::now();
    let capabilities = ctx.discovered.read().await.catalog.capabilities();
    // `lookup` reads as the release's account too, when it acts as one.
    let reader = match ctx.accounts.account(hr, namespace) {
        Some(_) => {
            let reader: Arc<dyn ClusterReader> = Arc::new(ctx.accounts.client(hr, namespace)?);
            Some(reader)
        }
        None => None,
    };
    let rendered = ctx
        .renderer
        .render_as(
            &RenderRequest {
                chart_dir: &chart.path,
                chart_digest: &chart.content_digest,
                release_name: &release_name,
                namespace,
                values,
                capabilities: &capabilities,
                is_upgrade,
            },
            reader,
        )
        .await
        .map_err(Error::Render)?;
    ctx.release_metrics
        .render_seconds
        .observe(started.elapsed().as_secs_f64());
    let plan = plan_manifest(hr, ctx, namespace, &rendered.manifest).await?;
    Ok((chart, plan))
}

/// A job's release (chart `builtin:job`): its one Job rendered from the values without helm,
/// standing in for a fetched chart whose digest is the manifest's.
async fn job_plan(
    hr: &HelmRelease,
    ctx: &Context,
    namespace: &str,
    values: &Value,
) -> Result<(upstart_chart_source::FetchedChart, manifests::Plan), Error> {
    let manifest = upstart_release_engine::job::job_manifest(&release_name(hr), values)
        .map_err(Error::Render)?;
    let digest = upstart_release_engine::digest::bytes_digest(manifest.as_bytes());
    let chart = upstart_chart_source::FetchedChart {
        path: std::path::PathBuf::new(),
        name: "job".to_owned(),
        version: JOB_CHART.trim_start_matches("builtin:").to_owned(),
        digest: digest.clone(),
        manifest_digest: None,
        content_digest: digest,
        dependencies: Vec::new(),
        stale: None,
        commit: None,
    };
    let plan = plan_manifest(hr, ctx, namespace, &manifest).await?;
    Ok((chart, plan))
}

/// The install plan of a rendered manifest, confined to the release's namespace.
async fn plan_manifest(
    hr: &HelmRelease,
    ctx: &Context,
    namespace: &str,
    manifest: &str,
) -> Result<manifests::Plan, Error> {
    let name = hr.name_any();
    let discovered = ctx.discovered.read().await;
    let is_namespaced =
        |api_version: &str, kind: &str| discovered.catalog.is_namespaced(api_version, kind);
    let scope = ReleaseScope {
        namespace,
        name: &name,
        cluster_scoped_allow_list: &ctx.allow_list,
        is_namespaced: &is_namespaced,
    };
    manifests::plan(manifest, &scope, &ctx.limits).map_err(Error::Render)
}

/// What an apply pass renders: the values, and the OCI manifest the chart is read from (the
/// one its tag was resolved to when the release was observed).
pub(in crate::controller) struct Render<'a> {
    pub(in crate::controller) values: &'a Value,
    pub(in crate::controller) manifest: Option<&'a str>,
    /// The environment sleeps: Deployments and StatefulSets are applied with zero replicas.
    pub(in crate::controller) asleep: bool,
}

pub(in crate::controller) struct Applied {
    pub(in crate::controller) hooks: Vec<HookStatus>,
    pub(in crate::controller) inventory: Vec<InventoryEntry>,
    pub(in crate::controller) version: String,
    pub(in crate::controller) chart_digest: String,
    /// The OCI manifest the chart was read from.
    pub(in crate::controller) manifest_digest: Option<String>,
    /// The git commit the chart was read from.
    pub(in crate::controller) commit: Option<String>,
    /// Hooks that succeeded with the `hook-succeeded` policy: deleted once status records the
    /// apply, so that a restart before that finds them and does not run them again.
    pub(in crate::controller) succeeded_hooks: Vec<InventoryEntry>,
    /// Objects the prune left in place (`helm.sh/resource-policy: keep`).
    pub(in crate::controller) kept: Vec<InventoryEntry>,
    /// Set when the chart came from the cache because its repository was down.
    pub(in crate::controller) stale: Option<upstart_chart_source::Stale>,
}

/// Where one pass of an apply got to. A pass never waits: a hook still running or a CRD not
/// yet Established ends it, the watch on that object starts the next one.
pub(in crate::controller) enum Progress {
    Done(Applied),
    Waiting {
        message: String,
        hooks: Vec<HookStatus>,
    },
}

/// One pass of fetch, render, plan, pre hooks, apply in order, post hooks, prune (SPEC §2.4,
/// §2.5). Every step is idempotent and its progress lives in the cluster (hook objects are
/// marked with `run`, the digest being applied; status records the hooks that succeeded), so a
/// pass after a restart carries on where the last one stopped: a hook that completed is not run
/// again, even once its object is gone.
/// `recorded` is the status as last written: when the plan holds objects its inventory does not,
/// they are added to it (and written) before anything is applied.
pub(in crate::controller) async fn apply_release(
    hr: &HelmRelease,
    ctx: &Context,
    namespace: &str,
    render: Render<'_>,
    how: ApplyRun,
    run: &HookRun,
    recorded: &mut Option<HelmReleaseStatus>,
) -> Result<Progress, Error> {
    let Render {
        values,
        manifest,
        asleep,
    } = render;
    let (chart, plan) = render_plan_at(hr, ctx, namespace, values, how.upgrade, manifest).await?;
    let inventory = plan.inventory();
    let known = recorded
        .as_ref()
        .map(|s| s.inventory.as_slice())
        .unwrap_or_default();
    let unknown: Vec<InventoryEntry> = inventory
        .iter()
        .filter(|e| !known.contains(e))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        // Recorded before anything is applied: an apply that fails or is interrupted leaves
        // nothing that the next prune or the deletion would not find.
        let mut status = recorded.clone().unwrap_or_default();
        status.inventory.extend(unknown);
        let api: Api<HelmRelease> = Api::namespaced(ctx.client.clone(), namespace);
        write_status(ctx, &api, hr, status.clone()).await?;
        *recorded = Some(status);
    }
    let name = hr.name_any();
    let release_label = upstart_api::names::release_label_value(namespace, &name);
    let mut hooks = Vec::new();
    let mut succeeded_hooks = Vec::new();
    let (pre, post) = HookEvent::around_apply(how.upgrade);
    let with_hooks = how.hooks && !hr.spec.disable_hooks;
    let hook_pass = HookPass {
        ctx,
        hr,
        namespace,
        plan: &plan,
        release_label: &release_label,
        run: &run.id,
        ended: &run.succeeded,
        for_deletion: false,
    };
    // As Helm: the CRDs of `crds/` directories before anything else, hooks included.
    for crd in &plan.crds {
        if let Some(message) = install_crd(hr, ctx, namespace, crd, hr.spec.timeout()).await? {
            return Ok(Progress::Waiting { message, hooks });
        }
    }
    if with_hooks
        && let HookStep::Waiting(message) = hook_pass
            .step(pre, &mut hooks, &mut succeeded_hooks)
            .await?
    {
        return Ok(Progress::Waiting { message, hooks });
    }
    // As `helm install --wait`: post hooks start once the release's objects are healthy (a
    // migration Job must not run before its database is up); without `wait`, right away. Only
    // then is the health of what was applied worth assessing.
    let hooks_wait_for_health = with_hooks && hr.spec.wait() && !plan.hooks_for(post).is_empty();
    let mut healths = Vec::new();
    for object in &plan.resources {
        let asleep_copy = asleep.then(|| manifests::asleep(&object.entry, &object.object));
        let live = apply_object(
            hr,
            ctx,
            namespace,
            &object.entry,
            asleep_copy.flatten().as_ref().unwrap_or(&object.object),
            &release_label,
        )
        .await?;
        if hooks_wait_for_health {
            healths.push(health::assess(
                &serde_json::to_value(&live).unwrap_or(Value::Null),
            ));
        }
        if object.entry.kind == "CustomResourceDefinition"
            && let Some(message) = crd_not_established(&object.entry, &live, hr.spec.timeout())?
        {
            // Custom resources of the same render are refused until their CRD is served.
            return Ok(Progress::Waiting { message, hooks });
        }
    }
    if hooks_wait_for_health
        && let Health::Progressing(progress) | Health::Failed(progress) = health::combine(healths)
    {
        let started = recorded
            .as_ref()
            .and_then(|s| s.timings.as_ref()?.started_at.as_ref());
        if started.is_some_and(|t| {
            Timestamp::now().duration_since(t.0).unsigned_abs() > hr.spec.timeout()
        }) {
            return Err(Error::NotHealthyForHooks {
                event: post.as_str(),
                message: progress,
                seconds: hr.spec.timeout().as_secs(),
            });
        }
        let message = format!(
            "{} hooks wait for the release to be healthy: {progress}",
            post.as_str()
        );
        return Ok(Progress::Waiting { message, hooks });
    }
    if with_hooks
        && let HookStep::Waiting(message) = hook_pass
            .step(post, &mut hooks, &mut succeeded_hooks)
            .await?
    {
        return Ok(Progress::Waiting { message, hooks });
    }
    let old = recorded
        .as_ref()
        .map(|s| s.inventory.as_slice())
        .unwrap_or_default();
    let mut kept = Vec::new();
    // A CRD recorded before it was known to come from `crds/` is never pruned either.
    let from_crds_directory = |entry: &InventoryEntry| plan.crds.iter().any(|c| &c.entry == entry);
    for entry in manifests::prune_set(old, &inventory)
        .into_iter()
        .filter(|e| !from_crds_directory(e))
    {
        match delete_unless_kept(hr, ctx, namespace, &entry).await? {
            Removal::Deleted => ctx.release_metrics.objects_pruned.inc(),
            Removal::Kept => kept.push(entry),
            Removal::Forbidden => {}
        }
    }
    Ok(Progress::Done(Applied {
        inventory,
        kept,
        version: chart.version,
        chart_digest: chart.digest,
        manifest_digest: chart.manifest_digest,
        commit: chart.commit,
        stale: chart.stale,
        hooks,
        succeeded_hooks,
    }))
}
