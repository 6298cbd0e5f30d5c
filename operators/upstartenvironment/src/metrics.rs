//! The environment operator's own metrics (SPEC §6), beside the shared reconcile metrics of the
//! runtime. Labels are bounded: phases only, never environment names.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts};
use upstart_api::v1alpha1::EnvironmentPhase;
use upstart_operator_runtime::{Metrics, PhaseGauge};

use crate::Error;

/// Buckets for time-to-ready: from a few seconds to an hour.
const TIME_TO_READY_BUCKETS: &[f64] = &[
    1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0,
];

/// Registered once per process.
#[derive(Clone)]
pub struct EnvironmentMetrics {
    /// `upstart_environments{phase}`.
    pub environments_by_phase: PhaseGauge<EnvironmentPhase>,
    /// `upstart_environment_time_to_ready_seconds`.
    pub time_to_ready: Histogram,
    /// `upstart_environments_expired_total`.
    pub expired: IntCounter,
    /// `upstart_environments_refused_total{reason}` (`CapReached`, `QuotaAboveMaximum`): each
    /// refusal counted once, when it is first said.
    pub refused: IntCounterVec,
    /// `upstart_environment_sleep_transitions_total{to}` (`asleep`, `awake`): releases marked
    /// asleep or awake, the HelmRelease operator then scaling them.
    pub sleep_transitions: IntCounterVec,
}

impl EnvironmentMetrics {
    /// Registers the metrics in the operator's registry.
    pub fn register(metrics: &Metrics) -> Result<Self, Error> {
        let register_error = |e: upstart_operator_runtime::Error| Error::Config(e.to_string());
        let prometheus_error = |e: prometheus::Error| Error::Config(e.to_string());
        Ok(EnvironmentMetrics {
            environments_by_phase: PhaseGauge::register(
                metrics,
                "upstart_environments",
                "UpstartEnvironments by phase.",
            )
            .map_err(register_error)?,
            time_to_ready: metrics
                .register(
                    Histogram::with_opts(
                        HistogramOpts::new(
                            "upstart_environment_time_to_ready_seconds",
                            "From an environment's creation to the first time all of it was Ready.",
                        )
                        .buckets(TIME_TO_READY_BUCKETS.to_vec()),
                    )
                    .map_err(prometheus_error)?,
                )
                .map_err(register_error)?,
            expired: metrics
                .register(
                    IntCounter::new(
                        "upstart_environments_expired_total",
                        "Environments deleted because their ttl passed.",
                    )
                    .map_err(prometheus_error)?,
                )
                .map_err(register_error)?,
            refused: metrics
                .register(
                    IntCounterVec::new(
                        Opts::new(
                            "upstart_environments_refused_total",
                            "Environments refused before anything of them was created, by reason.",
                        ),
                        &["reason"],
                    )
                    .map_err(prometheus_error)?,
                )
                .map_err(register_error)?,
            sleep_transitions: metrics
                .register(
                    IntCounterVec::new(
                        Opts::new(
                            "upstart_environment_sleep_transitions_total",
                            "HelmReleases of environments marked asleep or awake.",
                        ),
                        &["to"],
                    )
                    .map_err(prometheus_error)?,
                )
                .map_err(register_error)?,
        })
    }
}
