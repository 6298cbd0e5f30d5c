//! The environment operator's own metrics (SPEC §6), beside the shared reconcile metrics of the
//! runtime. Labels are bounded: phases only, never environment names.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGaugeVec, Opts};
use upstart_api::v1alpha1::{EnvironmentPhase, UpstartEnvironment};
use upstart_operator_runtime::Metrics;

use crate::Error;

/// Buckets for time-to-ready: from a few seconds to an hour.
const TIME_TO_READY_BUCKETS: &[f64] = &[
    1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0,
];

/// Registered once per process.
#[derive(Clone)]
pub struct EnvironmentMetrics {
    /// `upstart_environments{phase}`.
    pub environments_by_phase: IntGaugeVec,
    /// `upstart_environment_time_to_ready_seconds`.
    pub time_to_ready: Histogram,
    /// `upstart_environments_expired_total`.
    pub expired: IntCounter,
}

impl EnvironmentMetrics {
    /// Registers the metrics in the operator's registry.
    pub fn register(metrics: &Metrics) -> Result<Self, Error> {
        let register_error = |e: upstart_operator_runtime::Error| Error::Config(e.to_string());
        let prometheus_error = |e: prometheus::Error| Error::Config(e.to_string());
        Ok(EnvironmentMetrics {
            environments_by_phase: metrics
                .register(
                    IntGaugeVec::new(
                        Opts::new("upstart_environments", "UpstartEnvironments by phase."),
                        &["phase"],
                    )
                    .map_err(prometheus_error)?,
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
        })
    }

    /// Sets the phase gauge from the environments in the cache (every phase, zeros included).
    pub fn count_phases<'a>(&self, environments: impl IntoIterator<Item = &'a UpstartEnvironment>) {
        let mut counts = [0i64; EnvironmentPhase::ALL.len()];
        for environment in environments {
            let phase = environment.status.as_ref().and_then(|s| s.phase);
            if let Some(index) =
                phase.and_then(|p| EnvironmentPhase::ALL.iter().position(|q| *q == p))
            {
                counts[index] += 1;
            }
        }
        for (phase, count) in EnvironmentPhase::ALL.iter().zip(counts) {
            self.environments_by_phase
                .with_label_values(&[phase_name(*phase)])
                .set(count);
        }
    }
}

/// The phase as written in status.
pub fn phase_name(phase: EnvironmentPhase) -> &'static str {
    match phase {
        EnvironmentPhase::Provisioning => "Provisioning",
        EnvironmentPhase::Ready => "Ready",
        EnvironmentPhase::Degraded => "Degraded",
        EnvironmentPhase::Failed => "Failed",
        EnvironmentPhase::Expiring => "Expiring",
        EnvironmentPhase::Deleting => "Deleting",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_names_are_what_status_serializes() {
        for phase in EnvironmentPhase::ALL {
            assert_eq!(
                serde_json::to_value(phase).expect("serializes"),
                serde_json::json!(phase_name(phase))
            );
        }
    }

    #[test]
    fn every_phase_is_reported_with_zeros_included() {
        let registry = Metrics::new();
        let metrics = EnvironmentMetrics::register(&registry).expect("registers");
        metrics.count_phases([]);
        let text = registry.encode().expect("encodes");
        for phase in EnvironmentPhase::ALL {
            assert!(
                text.contains(&format!(
                    "upstart_environments{{phase=\"{}\"}} 0",
                    phase_name(phase)
                )),
                "{text}"
            );
        }
    }
}
