//! Prometheus metrics shared by the operators (SPEC §6): reconciles, errors by bounded reason
//! and reconcile duration per controller, on one registry the operators add their own metrics to.

use std::marker::PhantomData;
use std::time::Instant;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use upstart_api::phase::Phase;

use crate::{Error, MetricLabel};

/// Reconcile duration buckets, in seconds: from a no-op pass (milliseconds) to a slow Helm
/// install (minutes).
pub const RECONCILE_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// The operator's metrics registry with the shared reconcile metrics. Cheap to clone; clones
/// share everything.
///
/// Every label is bounded: `controller` is a constant per controller and `reason` a
/// [`MetricLabel`]; never label by object name.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    reconciles: IntCounterVec,
    errors: IntCounterVec,
    duration: HistogramVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry holding the shared metrics.
    pub fn new() -> Self {
        let registry = Registry::new();
        // Constant names, help texts and buckets on a fresh registry: creating and registering
        // these cannot fail.
        let reconciles = IntCounterVec::new(
            Opts::new(
                "upstart_reconciles_total",
                "Reconciles started, by controller.",
            ),
            &["controller"],
        )
        .expect("constant metric definition is valid");
        let errors = IntCounterVec::new(
            Opts::new(
                "upstart_reconcile_errors_total",
                "Reconciles that failed, by controller and bounded reason.",
            ),
            &["controller", "reason"],
        )
        .expect("constant metric definition is valid");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "upstart_reconcile_duration_seconds",
                "Duration of reconciles, by controller.",
            )
            .buckets(RECONCILE_DURATION_BUCKETS.to_vec()),
            &["controller"],
        )
        .expect("constant metric definition is valid");
        for collector in [
            Box::new(reconciles.clone()) as Box<dyn Collector>,
            Box::new(errors.clone()),
            Box::new(duration.clone()),
        ] {
            registry
                .register(collector)
                .expect("distinct metric names on a fresh registry");
        }
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
        }
    }

    /// The registry, for operators that register metric families themselves.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Registers an operator's own metric (releases by phase, hand-off latency, …) on the same
    /// registry and hands it back.
    ///
    /// ```
    /// use prometheus::{IntGaugeVec, Opts};
    /// # fn demo() -> Result<(), upstart_operator_runtime::Error> {
    /// let metrics = upstart_operator_runtime::Metrics::new();
    /// let by_phase = metrics.register(IntGaugeVec::new(
    ///     Opts::new("upstart_helmreleases", "HelmReleases by phase."),
    ///     &["phase"],
    /// )?)?;
    /// by_phase.with_label_values(&["Ready"]).set(3);
    /// assert!(metrics.encode()?.contains("upstart_helmreleases{phase=\"Ready\"} 3"));
    /// # Ok(()) }
    /// # demo().expect("demo");
    /// ```
    pub fn register<C>(&self, collector: C) -> Result<C, Error>
    where
        C: Collector + Clone + 'static,
    {
        self.registry.register(Box::new(collector.clone()))?;
        Ok(collector)
    }

    /// The shared metrics of one controller. `controller` is a constant name
    /// (`"helmrelease"`, `"upstartservice"`, …).
    pub fn controller(&self, controller: &'static str) -> ControllerMetrics {
        ControllerMetrics {
            controller,
            reconciles: self.reconciles.with_label_values(&[controller]),
            duration: self.duration.with_label_values(&[controller]),
            errors: self.errors.clone(),
        }
    }

    /// Every metric in the Prometheus text exposition format.
    pub fn encode(&self) -> Result<String, Error> {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .map_err(|e| Error::MetricsEncoding(e.to_string()))?;
        String::from_utf8(buffer).map_err(|e| Error::MetricsEncoding(e.to_string()))
    }
}

/// A gauge of objects by phase (`upstart_helmreleases{phase}` and its siblings): every phase
/// is reported, zeros included, so a phase that empties drops to 0 rather than keeping its last
/// count.
#[derive(Clone)]
pub struct PhaseGauge<P: Phase> {
    gauge: IntGaugeVec,
    phases: PhantomData<P>,
}

impl<P: Phase> PhaseGauge<P> {
    /// Registers the gauge `name` with one `phase` label.
    pub fn register(metrics: &Metrics, name: &str, help: &str) -> Result<Self, Error> {
        let gauge = metrics.register(IntGaugeVec::new(Opts::new(name, help), &["phase"])?)?;
        Ok(PhaseGauge {
            gauge,
            phases: PhantomData,
        })
    }

    /// Sets the gauge from the phases of the objects in a cache (`None`: no phase yet, not
    /// counted).
    pub fn count(&self, phases: impl IntoIterator<Item = Option<P>>) {
        let mut counts = vec![0i64; P::ALL.len()];
        for phase in phases.into_iter().flatten() {
            if let Some(index) = P::ALL.iter().position(|p| *p == phase) {
                counts[index] += 1;
            }
        }
        for (phase, count) in P::ALL.iter().zip(counts) {
            self.gauge.with_label_values(&[phase.as_str()]).set(count);
        }
    }
}

/// The shared metrics of one controller, with the `controller` label bound.
#[derive(Clone)]
pub struct ControllerMetrics {
    controller: &'static str,
    reconciles: IntCounter,
    duration: Histogram,
    errors: IntCounterVec,
}

impl std::fmt::Debug for ControllerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerMetrics")
            .field("controller", &self.controller)
            .finish_non_exhaustive()
    }
}

impl ControllerMetrics {
    /// Counts a reconcile and times it until the returned guard is dropped. Call it first thing
    /// in `reconcile` and keep the guard alive to the end:
    ///
    /// ```
    /// # let metrics = upstart_operator_runtime::Metrics::new().controller("demo");
    /// let _timer = metrics.count_and_measure();
    /// // … observe, decide, act …
    /// # drop(_timer);
    /// assert_eq!(metrics.reconciles(), 1);
    /// ```
    pub fn count_and_measure(&self) -> ReconcileMeasurer {
        self.reconciles.inc();
        ReconcileMeasurer {
            start: Instant::now(),
            histogram: self.duration.clone(),
        }
    }

    /// Counts a failed reconcile under the error's bounded reason (call it from
    /// `error_policy`).
    pub fn set_failure(&self, error: &impl MetricLabel) {
        self.errors
            .with_label_values(&[self.controller, error.metric_label()])
            .inc();
    }

    /// Reconciles counted so far.
    pub fn reconciles(&self) -> u64 {
        self.reconciles.get()
    }

    /// Failures counted so far under `reason`.
    pub fn failures(&self, reason: &str) -> u64 {
        self.errors
            .with_label_values(&[self.controller, reason])
            .get()
    }

    /// Reconcile durations observed so far.
    pub fn measured(&self) -> u64 {
        self.duration.get_sample_count()
    }
}

/// Times one reconcile: the duration is observed when the guard is dropped, whichever way the
/// reconcile ends (success, error, cancellation).
#[must_use = "the reconcile is timed until this guard is dropped"]
pub struct ReconcileMeasurer {
    start: Instant,
    histogram: Histogram,
}

impl std::fmt::Debug for ReconcileMeasurer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconcileMeasurer")
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

impl Drop for ReconcileMeasurer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_is_reported_with_zeros_included() {
        use upstart_api::v1alpha1::EnvironmentPhase;
        let registry = Metrics::new();
        let gauge = PhaseGauge::<EnvironmentPhase>::register(
            &registry,
            "upstart_environments",
            "UpstartEnvironments by phase.",
        )
        .expect("registers");
        gauge.count([
            None,
            Some(EnvironmentPhase::Ready),
            Some(EnvironmentPhase::Ready),
        ]);
        let text = registry.encode().expect("encodes");
        for phase in EnvironmentPhase::ALL {
            let count = if phase == EnvironmentPhase::Ready {
                2
            } else {
                0
            };
            assert!(
                text.contains(&format!(
                    "upstart_environments{{phase=\"{}\"}} {count}",
                    phase.as_str()
                )),
                "{text}"
            );
        }
    }

    struct Failure(&'static str);
    impl MetricLabel for Failure {
        fn metric_label(&self) -> &'static str {
            self.0
        }
    }

    #[test]
    fn a_measured_reconcile_is_counted_and_timed_once_the_guard_drops() {
        let metrics = Metrics::new();
        let controller = metrics.controller("helmrelease");
        let guard = controller.count_and_measure();
        assert_eq!(controller.reconciles(), 1);
        assert_eq!(controller.measured(), 0);
        drop(guard);
        assert_eq!(controller.measured(), 1);
    }

    #[test]
    fn failures_are_counted_per_controller_and_reason() {
        let metrics = Metrics::new();
        let a = metrics.controller("a");
        let b = metrics.controller("b");
        a.set_failure(&Failure("apply_failed"));
        a.set_failure(&Failure("apply_failed"));
        b.set_failure(&Failure("render_failed"));
        assert_eq!(a.failures("apply_failed"), 2);
        assert_eq!(a.failures("render_failed"), 0);
        assert_eq!(b.failures("render_failed"), 1);
        let text = metrics.encode().expect("encode");
        assert!(text.contains(
            "upstart_reconcile_errors_total{controller=\"a\",reason=\"apply_failed\"} 2"
        ));
    }

    #[test]
    fn exposition_lists_the_shared_metric_families_with_their_buckets() {
        let metrics = Metrics::new();
        drop(metrics.controller("x").count_and_measure());
        let text = metrics.encode().expect("encode");
        assert!(text.contains("# TYPE upstart_reconciles_total counter"));
        assert!(text.contains("upstart_reconciles_total{controller=\"x\"} 1"));
        assert!(text.contains("# TYPE upstart_reconcile_duration_seconds histogram"));
        assert!(
            text.contains(
                "upstart_reconcile_duration_seconds_bucket{controller=\"x\",le=\"300\"} 1"
            )
        );
        assert!(
            text.contains(
                "upstart_reconcile_duration_seconds_bucket{controller=\"x\",le=\"0.005\"}"
            )
        );
    }

    #[test]
    fn registering_a_metric_twice_is_refused() {
        let metrics = Metrics::new();
        let gauge = || prometheus::IntGauge::new("upstart_things", "Things.").expect("gauge");
        metrics.register(gauge()).expect("first registration");
        assert!(matches!(metrics.register(gauge()), Err(Error::Metrics(_))));
    }
}
