//! The HelmRelease operator's own metrics (SPEC §6), beside the shared reconcile metrics of the
//! runtime. Labels are bounded: phases only, never object names.

use prometheus::{Histogram, HistogramOpts, IntCounter};
use upstart_api::v1alpha1::HelmReleasePhase;
use upstart_operator_runtime::{Metrics, PhaseGauge};

use crate::Error;

/// Buckets for chart fetches and renders: from a cache hit to a slow repository.
const DURATION_BUCKETS: &[f64] = &[0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Registered once per process.
#[derive(Clone)]
pub struct ReleaseMetrics {
    pub releases_by_phase: PhaseGauge<HelmReleasePhase>,
    pub objects_applied: IntCounter,
    pub objects_pruned: IntCounter,
    pub drift_corrections: IntCounter,
    pub chart_fetch_seconds: Histogram,
    pub render_seconds: Histogram,
    pub dependency_handoff_seconds: Histogram,
}

impl ReleaseMetrics {
    /// Registers the metrics in the operator's registry.
    pub fn register(metrics: &Metrics) -> Result<Self, Error> {
        let register_error = |e: upstart_operator_runtime::Error| Error::Config(e.to_string());
        let prometheus_error = |e: prometheus::Error| Error::Config(e.to_string());
        let histogram = |name: &str, help: &str| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(DURATION_BUCKETS.to_vec()))
        };
        Ok(ReleaseMetrics {
            releases_by_phase: PhaseGauge::register(
                metrics,
                "upstart_helmreleases",
                "HelmReleases by phase.",
            )
            .map_err(register_error)?,
            objects_applied: metrics
                .register(
                    IntCounter::new(
                        "upstart_helmrelease_objects_applied_total",
                        "Objects applied with server-side apply (hooks included).",
                    )
                    .map_err(prometheus_error)?,
                )
                .map_err(register_error)?,
            objects_pruned: metrics
                .register(
                    IntCounter::new(
                        "upstart_helmrelease_objects_pruned_total",
                        "Objects deleted because a new render no longer has them.",
                    )
                    .map_err(prometheus_error)?,
                )
                .map_err(register_error)?,
            drift_corrections: metrics
                .register(
                    IntCounter::new(
                        "upstart_helmrelease_drift_corrections_total",
                        "Applies that put back objects deleted by hand.",
                    )
                    .map_err(prometheus_error)?,
                )
                .map_err(register_error)?,
            chart_fetch_seconds: metrics
                .register(
                    histogram(
                        "upstart_helmrelease_chart_fetch_duration_seconds",
                        "Time to resolve and fetch a chart (cache hits included).",
                    )
                    .map_err(prometheus_error)?,
                )
                .map_err(register_error)?,
            render_seconds: metrics
                .register(
                    histogram(
                        "upstart_helmrelease_render_duration_seconds",
                        "Time to render a chart (render cache hits included).",
                    )
                    .map_err(prometheus_error)?,
                )
                .map_err(register_error)?,
            dependency_handoff_seconds: metrics
                .register(
                    histogram(
                        "upstart_dependency_handoff_seconds",
                        "From the last dependency becoming Ready to its dependent starting to apply.",
                    )
                    .map_err(prometheus_error)?,
                )
                .map_err(register_error)?,
        })
    }
}
