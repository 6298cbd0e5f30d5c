//! Version `v1alpha1` of the Upstart API.

mod helm_release;
mod jobs;
mod references;
mod sleep;
mod upstart_environment;
mod upstart_service;
pub(crate) mod validation;

pub use helm_release::{
    DEFAULT_INTERVAL, DEFAULT_TIMEOUT, HelmRelease, HelmReleasePhase, HelmReleaseSpec,
    HelmReleaseStatus, HookStatus, InventoryEntry, ReleaseTimings,
};
pub use jobs::{JOB_CHART, JobNameTaken, JobSpec, JobWhen, Switch, is_job, with_jobs};
pub use references::{
    Dependency, DependencyKind, KeyReference, ObjectReference, OutputScope, OutputSource,
    ValuesReference,
};
pub use sleep::{CRON, ManualSleep, QuotaSpec, SleepSchedule, SleepSpec, SleepStatus, TIME_ZONE};
pub use upstart_environment::{
    AddedService, CriticalPathStep, Endpoint, EnvironmentPhase, EnvironmentService,
    ReleaseOverride, TemplateReference, TemplateRevision, TemplateUpdates, UpstartEnvironment,
    UpstartEnvironmentSpec, UpstartEnvironmentStatus, rewrite_chart,
};
pub use upstart_service::{
    ReleaseSummary, ServicePhase, UpstartService, UpstartServiceSpec, UpstartServiceStatus,
};
pub use validation::version_constraint_pattern;
